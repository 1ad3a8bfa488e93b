//! The run config: what users write in `configs/*.yaml`.
//!
//! Loading goes parse → overrides → environment expansion → validation:
//! 1. the file is deserialized straight from its text, so an unknown key or a wrong
//!    type is reported with its line and column (every struct denies unknown keys);
//! 2. the config is turned into a YAML value tree and each `--set KEY=VALUE` is
//!    applied and re-checked on its own, so an error names the override that caused
//!    it; a key that does not exist is an error, never silently added;
//! 3. `${VAR}` / `${VAR:-default}` are expanded in string values;
//! 4. [`validate`] checks cross-field rules and every problem is reported at once,
//!    located by a [`KeyIndex`] of the file (or by the override that set the key).
//!
//! Nothing here touches the run directory: a config that fails to load writes nothing.
//!
//! # Layout
//! - `sections.rs`: the structs, one per YAML section, with defaults.
//! - `enums.rs`: the closed vocabularies (`backend`, `schedule`, ...).
//! - `validate.rs`: cross-field rules.
//! - `features.rs`: the build's optional features and what a config needs of them.
//! - `schedule.rs`: the run's length in steps, and the step counts that must fit in it.
//! - `locate.rs`: key path → line/column in the file.
//! - `expand.rs`: environment-variable expansion.
//! - `description.rs`: [`RunDescription`], the validated config a launcher hands its
//!   workers.
//! - `error.rs`: [`ConfigError`].

mod description;
mod enums;
mod error;
mod expand;
mod features;
mod locate;
mod schedule;
mod sections;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

pub use description::RunDescription;
pub use enums::*;
pub use error::{ConfigError, Located, Origin};
pub use expand::{ExpandError, expand};
pub use features::{BuildFeatures, missing_features};
pub use locate::{KeyIndex, Pos};
pub use schedule::{
    batches_per_epoch, count_jsonl_rows, length_source, planned_steps, schedule_problems,
};
pub use sections::*;
pub use validate::{Problem, validate};

/// A whole run config.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Name, output directory and seed.
    pub run: RunSection,
    /// Workers, rendezvous and failure handling.
    pub launch: LaunchSection,
    /// Labels, towers, fusion, head.
    pub model: ModelSection,
    /// Data files and loading.
    pub data: DataSection,
    /// Optimizer and schedule.
    pub optim: OptimSection,
    /// Batches, length, evaluation, resume.
    pub train: TrainSection,
    /// Checkpointing and retention.
    pub checkpoint: CheckpointSection,
    /// Serving export.
    pub export: ExportSection,
    /// TensorBoard and console.
    pub logging: LoggingSection,
}

impl RunConfig {
    /// Loads `path`, applies `overrides` (`KEY=VALUE`), expands environment variables
    /// and validates.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(&text, path, overrides, &|v| std::env::var(v).ok())
    }

    /// [`RunConfig::load`], then the schedule against the run's length (`train.max_steps`,
    /// or the epochs' steps when `data.train` is readable here and its rows are counted):
    /// `optim.warmup_steps` not shorter than the run, `train.eval_every` or
    /// `checkpoint.every_steps` longer than it are errors, each located at its key —
    /// `vigil validate`, `vigil launch`. When the length is not known here (`data.train`
    /// not readable), the worker warns at start instead.
    pub fn load_checking_schedule(path: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        let config = Self::load(path, overrides)?;
        let rows = match config.train.epochs {
            Some(_) => count_jsonl_rows(Path::new(&config.data.train)),
            None => None,
        };
        let Some(total) = planned_steps(&config, rows) else {
            return Ok(config);
        };
        let how = length_source(&config, rows, total);
        let problems = schedule_problems(&config, total, &how);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(located(path, overrides, problems))
        }
    }

    /// [`RunConfig::load_checking_schedule`], and the cargo features the config needs
    /// of this build (`vigil launch`: refused before any worker starts).
    pub fn load_for_launch(path: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        Self::load_for_launch_on(path, overrides, BuildFeatures::compiled())
    }

    /// [`RunConfig::load_for_launch`] for a build with the features `have` (tests of
    /// what a GPU build's launcher would resolve, on a CPU build).
    pub fn load_for_launch_on(
        path: &Path,
        overrides: &[String],
        have: BuildFeatures,
    ) -> Result<Self, ConfigError> {
        let config = Self::load_checking_schedule(path, overrides)?;
        let missing = missing_features(&config, have);
        if missing.is_empty() {
            Ok(config)
        } else {
            Err(located(path, overrides, missing))
        }
    }

    /// [`RunConfig::load`] on text already read, with an explicit environment.
    pub fn from_yaml(
        text: &str,
        path: &Path,
        overrides: &[String],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let index = KeyIndex::build(text);
        let file_origin = |key: &str| Origin::File {
            path: path.to_path_buf(),
            pos: index.find(key).map(|p| (p.line, p.col)),
        };
        let source = if text.trim().is_empty() { "{}" } else { text };
        let parsed: RunConfig = from_deserializer(serde_yaml_ng::Deserializer::from_str(source))
            .map_err(|(problem, pos)| {
                let pos = pos.or_else(|| index.find(&problem.key).map(|p| (p.line, p.col)));
                invalid(
                    Origin::File {
                        path: path.to_path_buf(),
                        pos,
                    },
                    problem,
                )
            })?;

        let mut tree = serde_yaml_ng::to_value(&parsed).expect("a config always serializes");
        let mut set_by: BTreeMap<String, String> = BTreeMap::new();
        for spec in overrides {
            apply_override(&mut tree, spec)?;
            let key = spec
                .split_once('=')
                .map_or(spec.as_str(), |(k, _)| k.trim());
            set_by.insert(key.to_string(), spec.clone());
        }
        let origin_of = |key: &str| -> Origin {
            set_by
                .iter()
                .rev()
                .find(|(k, _)| key == k.as_str() || key.starts_with(&format!("{k}.")))
                .map_or_else(
                    || file_origin(key),
                    |(_, spec)| Origin::Override(spec.clone()),
                )
        };

        let mut problems = Vec::new();
        expand_tree(&mut tree, String::new(), env, &mut |key, err| {
            let message = match err {
                ExpandError::Unset { var } => format!(
                    "environment variable {var} is not set (write ${{{var}:-default}} to give a fallback)"
                ),
                ExpandError::Unterminated => "'${' without a closing '}'".to_string(),
            };
            problems.push(Located {
                origin: origin_of(&key),
                problem: Problem { key, message },
            });
        });
        if !problems.is_empty() {
            return Err(ConfigError::Invalid { problems });
        }
        let config: RunConfig = from_deserializer(tree).map_err(|(problem, _)| {
            let origin = origin_of(&problem.key);
            invalid(origin, problem)
        })?;

        let problems: Vec<Located> = validate(&config)
            .into_iter()
            .map(|problem| Located {
                origin: origin_of(&problem.key),
                problem,
            })
            .collect();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid { problems })
        }
    }

    /// The config as YAML, every key written out (what `config.resolved.yaml` holds).
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("a config always serializes")
    }

    /// The local run directory: `run.output_dir` (a `file://` URL's path), or
    /// `checkpoints/<run.name>`; when `run.output_dir` is a bucket URL, the local
    /// working directory ([`Self::local_dir`]) — logs, heartbeats, the lock and
    /// TensorBoard events live there, [`Self::output_url`] holds the rest.
    pub fn output_dir(&self) -> PathBuf {
        match &self.run.output_dir {
            Some(d) => match vigil_store::storage::Location::parse(d) {
                Ok(vigil_store::storage::Location::Local(p)) => p,
                // A URL (or one `validate` rejects): never a directory named `s3:`.
                _ => self.local_dir(),
            },
            None => Path::new("checkpoints").join(&self.run.name),
        }
    }

    /// `run.output_dir` when it is a bucket URL.
    pub fn output_url(&self) -> Option<vigil_store::storage::RemoteUrl> {
        let d = self.run.output_dir.as_deref()?;
        vigil_store::storage::Location::parse(d)
            .ok()?
            .remote()
            .cloned()
    }

    /// The local working directory: `run.local_dir`, else (for a bucket
    /// `run.output_dir`) `<system temp>/vigil/<run.name>-<hash>`, else the run
    /// directory itself.
    pub fn local_dir(&self) -> PathBuf {
        if let Some(d) = &self.run.local_dir {
            return PathBuf::from(d);
        }
        match &self.run.output_dir {
            Some(d) if vigil_store::storage::is_url(d) => {
                let hash = vigil_store::checkpoint::config_hash(d);
                std::env::temp_dir().join("vigil").join(format!(
                    "{}-{}",
                    self.run.name,
                    &hash[..12]
                ))
            }
            _ => self.output_dir(),
        }
    }
}

/// Problems found after loading, located in the file (or at the override that set
/// the key).
fn located(path: &Path, overrides: &[String], problems: Vec<Problem>) -> ConfigError {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let index = KeyIndex::build(&text);
    let problems = problems
        .into_iter()
        .map(|problem| {
            let set = overrides.iter().rev().find(|o| {
                o.split_once('=')
                    .is_some_and(|(k, _)| k.trim() == problem.key)
            });
            let origin = match set {
                Some(spec) => Origin::Override(spec.clone()),
                None => Origin::File {
                    path: path.to_path_buf(),
                    pos: index.find(&problem.key).map(|p| (p.line, p.col)),
                },
            };
            Located { origin, problem }
        })
        .collect();
    ConfigError::Invalid { problems }
}

fn invalid(origin: Origin, problem: Problem) -> ConfigError {
    ConfigError::Invalid {
        problems: vec![Located { origin, problem }],
    }
}

/// Deserializes with key-path tracking and turns serde's message into a [`Problem`]
/// (plus the parser's position when it has one).
fn from_deserializer<'de, D>(de: D) -> Result<RunConfig, (Problem, Option<(usize, usize)>)>
where
    D: serde::Deserializer<'de, Error = serde_yaml_ng::Error>,
{
    serde_path_to_error::deserialize(de).map_err(|e| {
        let mut key = e.path().to_string();
        if key == "." {
            key.clear();
        }
        let inner = e.into_inner();
        let pos = inner.location().map(|l| (l.line(), l.column()));
        let message = strip_location(&inner.to_string());
        (describe(key, &message), pos)
    })
}

/// serde_yaml_ng appends " at line L column C" and may prefix the path; we report
/// both ourselves.
fn strip_location(msg: &str) -> String {
    let msg = match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    msg.to_string()
}

fn describe(key: String, message: &str) -> Problem {
    if let Some(rest) = message.split("unknown field `").nth(1) {
        let field = rest.split('`').next().unwrap_or_default();
        let full = if key.is_empty() {
            field.to_string()
        } else if key == field || key.ends_with(&format!(".{field}")) {
            key.clone()
        } else {
            format!("{key}.{field}")
        };
        let expected: Vec<&str> = message
            .split("expected ")
            .nth(1)
            .map(|list| list.split('`').skip(1).step_by(2).collect())
            .unwrap_or_default();
        let message = match suggest(field, &expected) {
            Some(s) => format!("unknown key '{full}' (did you mean '{s}'?)"),
            None => format!("unknown key '{full}'"),
        };
        return Problem { key: full, message };
    }
    let message = match message.split_once(": ") {
        Some((prefix, rest)) if !prefix.contains(' ') && !prefix.is_empty() => rest,
        _ => message,
    };
    Problem {
        key,
        message: message.to_string(),
    }
}

/// The closest known key, when it is close enough to be a typo.
fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Maps whose keys are user data (label names), where `--set` may add a key.
const FREE_MAPS: &[&str] = &["model.head.pos_weight"];

fn apply_override(tree: &mut Value, spec: &str) -> Result<(), ConfigError> {
    let syntax = |message: &str| ConfigError::OverrideSyntax {
        spec: spec.to_string(),
        message: message.to_string(),
    };
    let (key, raw) = spec
        .split_once('=')
        .ok_or_else(|| syntax("expected KEY=VALUE"))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(syntax("the key must be a dotted path such as optim.lr"));
    }
    let value: Value = if raw.trim().is_empty() {
        Value::Null
    } else {
        serde_yaml_ng::from_str(raw).map_err(|e| {
            syntax(&format!(
                "value is not YAML: {}",
                strip_location(&e.to_string())
            ))
        })?
    };
    let unknown = |path: &str, choices: Vec<String>| {
        let refs: Vec<&str> = choices.iter().map(String::as_str).collect();
        let last = path.rsplit('.').next().unwrap_or(path);
        let message = match suggest(last, &refs) {
            Some(s) => format!("unknown key '{key}' (did you mean '{s}'?)"),
            None => format!("unknown key '{key}'"),
        };
        invalid(
            Origin::Override(spec.to_string()),
            Problem {
                key: key.to_string(),
                message,
            },
        )
    };

    let parts: Vec<&str> = key.split('.').collect();
    let mut node = &mut *tree;
    for (i, part) in parts.iter().enumerate() {
        let here = parts[..=i].join(".");
        let parent = parts[..i].join(".");
        if node.is_null() {
            *node = Value::Mapping(Default::default());
        }
        let Value::Mapping(map) = node else {
            return Err(unknown(&here, Vec::new()));
        };
        let k = Value::String((*part).to_string());
        if !map.contains_key(&k) {
            if !FREE_MAPS.contains(&parent.as_str()) && !map.is_empty() {
                let choices = map
                    .keys()
                    .filter_map(|k| k.as_str().map(String::from))
                    .collect();
                return Err(unknown(&here, choices));
            }
            map.insert(k.clone(), Value::Null);
        }
        node = map.get_mut(&k).expect("inserted above");
    }
    *node = value;
    // Re-check now so a bad value is blamed on this override, not a later one.
    from_deserializer(tree.clone())
        .map(drop)
        .map_err(|(problem, _)| invalid(Origin::Override(spec.to_string()), problem))
}

fn expand_tree(
    node: &mut Value,
    key: String,
    env: &dyn Fn(&str) -> Option<String>,
    report: &mut dyn FnMut(String, ExpandError),
) {
    match node {
        Value::String(s) if s.contains('$') => match expand(s, env) {
            Ok(v) => *s = v,
            Err(e) => report(key, e),
        },
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let name = k.as_str().unwrap_or_default();
                let child = if key.is_empty() {
                    name.to_string()
                } else {
                    format!("{key}.{name}")
                };
                expand_tree(v, child, env, report);
            }
        }
        Value::Sequence(items) => {
            for v in items {
                expand_tree(v, key.clone(), env, report);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
