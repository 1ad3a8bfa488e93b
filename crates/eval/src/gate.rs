//! The champion/challenger gate: publish a retrained model only if it beats the
//! one in production, and say why in `<output_dir>/export-decision.json`.
//!
//! [`decide`] is a pure function of the gate config and the two scores, both
//! computed by the caller on the *same* validation data (the champion is the
//! newest complete version in the model repository, loaded and evaluated like the
//! new model). The rule: with `mode: max` the challenger wins when
//! `challenger - champion > min_delta`, with `mode: min` when
//! `champion - challenger > min_delta`; a tie never publishes, so retraining on
//! unchanged data does not churn versions. Without a gate, or without a champion
//! (the first version), the model is published. A challenger whose score is not a
//! number, or a champion that could not be scored on this data, is not published:
//! the gate exists to keep production safe, so doubt means "keep the champion".
//!
//! A rejected challenger is not a failure: the run exits 0. Schedulers tell the
//! outcomes apart by `published` (and `outcome`) in the decision file.

use std::path::Path;

use serde::{Deserialize, Serialize};

use vigil_config::{Gate, MonitorMode};
use vigil_store::checkpoint::{LocalFs, Store, StoreError};

/// File name of the decision, in the run's output directory.
pub const DECISION_FILE: &str = "export-decision.json";

/// The model currently published, as the gate sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Champion {
    /// Nothing is published yet.
    None,
    /// The newest complete version and its score on the validation data.
    Scored {
        /// Its version number.
        version: u64,
        /// Its value of the gate metric.
        score: f64,
    },
    /// The newest version could not be evaluated on this data (its labels differ,
    /// its files do not load).
    Unscorable {
        /// Its version number.
        version: u64,
        /// Why, for the decision file.
        why: String,
    },
}

/// How the gate decided; `published` says the same in one bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// No gate configured: every export is published.
    NoGate,
    /// Nothing was published before: the first version is published.
    FirstVersion,
    /// The challenger beat the champion by more than `min_delta`.
    Better,
    /// The challenger did not beat the champion by more than `min_delta`.
    NotBetter,
    /// The challenger's score is missing or not a number.
    InvalidChallengerScore,
    /// The champion could not be scored on this validation data.
    ChampionUnscorable,
    /// This run's export of this step was published before a crash or restart;
    /// the resumed run found it and publishes nothing again.
    AlreadyPublished,
}

/// The gate's decision, as written to `export-decision.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Whether the challenger is (to be) published.
    pub published: bool,
    /// Which rule decided.
    pub outcome: Outcome,
    /// One sentence explaining the decision, with the numbers.
    pub reason: String,
    /// The gate metric (`null` without a gate).
    pub metric: Option<String>,
    /// `max` or `min` (`null` without a gate).
    pub mode: Option<MonitorMode>,
    /// The required margin (`null` without a gate).
    pub min_delta: Option<f64>,
    /// The champion's version, if there is one.
    pub champion_version: Option<u64>,
    /// The champion's score (`null` if none or unscorable).
    pub champion_score: Option<f64>,
    /// The challenger's score (`null` without a gate or if not a number).
    pub challenger_score: Option<f64>,
    /// How much better the challenger is, in the metric's good direction.
    pub improvement: Option<f64>,
    /// The version the challenger was published as; set after publishing.
    pub published_version: Option<u64>,
}

fn finite(x: Option<f64>) -> Option<f64> {
    x.filter(|v| v.is_finite())
}

/// Decides whether to publish the challenger. See the module docs for the rule.
pub fn decide(gate: Option<&Gate>, champion: &Champion, challenger: Option<f64>) -> Decision {
    let champion_version = match champion {
        Champion::None => None,
        Champion::Scored { version, .. } | Champion::Unscorable { version, .. } => Some(*version),
    };
    let mut d = Decision {
        published: false,
        outcome: Outcome::NoGate,
        reason: String::new(),
        metric: gate.map(|g| g.metric.clone()),
        mode: gate.map(|g| g.mode),
        min_delta: gate.map(|g| g.min_delta),
        champion_version,
        champion_score: match champion {
            Champion::Scored { score, .. } => finite(Some(*score)),
            _ => None,
        },
        challenger_score: finite(challenger),
        improvement: None,
        published_version: None,
    };
    let Some(gate) = gate else {
        d.published = true;
        d.reason = "no export.gate is configured; every export is published".into();
        return d;
    };
    let metric = &gate.metric;
    let Some(new) = d.challenger_score else {
        d.outcome = Outcome::InvalidChallengerScore;
        d.reason = format!(
            "the new model's {metric} is {}; not publishing a model that cannot be compared",
            challenger.map_or("missing".to_string(), |v| v.to_string())
        );
        return d;
    };
    match champion {
        Champion::None => {
            d.published = true;
            d.outcome = Outcome::FirstVersion;
            d.reason =
                format!("no version is published yet; publishing the first ({metric} {new:.6})");
        }
        Champion::Unscorable { version, why } => {
            d.outcome = Outcome::ChampionUnscorable;
            d.reason = format!(
                "champion version {version} could not be scored on this validation data ({why}); \
                 keeping it. Publish by hand or remove export.gate if the change is intended"
            );
        }
        Champion::Scored { version, score } if !score.is_finite() => {
            d.published = true;
            d.outcome = Outcome::Better;
            d.reason = format!(
                "champion version {version} scores {score} on {metric}, which is not a number; \
                 the new model ({new:.6}) replaces it"
            );
        }
        Champion::Scored { version, score } => {
            let improvement = match gate.mode {
                MonitorMode::Max => new - score,
                MonitorMode::Min => score - new,
            };
            d.improvement = Some(improvement);
            let better = if gate.mode == MonitorMode::Max {
                "higher"
            } else {
                "lower"
            };
            if improvement > gate.min_delta {
                d.published = true;
                d.outcome = Outcome::Better;
                d.reason = format!(
                    "new model {metric} {new:.6} beats champion version {version} ({score:.6}) by \
                     {improvement:.6} > min_delta {} ({better} is better)",
                    gate.min_delta
                );
            } else {
                d.outcome = Outcome::NotBetter;
                d.reason = format!(
                    "new model {metric} {new:.6} does not beat champion version {version} \
                     ({score:.6}) by more than min_delta {} (improvement {improvement:.6}; {better} \
                     is better); keeping the champion",
                    gate.min_delta
                );
            }
        }
    }
    d
}

impl Decision {
    /// The decision of a resumed run whose export of `step` is `version` already
    /// (published before the process that published it ended).
    pub fn already_published(version: u64, step: u64) -> Self {
        Self {
            published: true,
            outcome: Outcome::AlreadyPublished,
            reason: format!(
                "this run's export of step {step} was published as version {version} before a \
                 restart; nothing published again"
            ),
            metric: None,
            mode: None,
            min_delta: None,
            champion_version: None,
            champion_score: None,
            challenger_score: None,
            improvement: None,
            published_version: Some(version),
        }
    }

    /// One line for the log and TensorBoard text.
    pub fn summary(&self) -> String {
        match (self.published, self.published_version) {
            (true, Some(v)) => format!("export: published version {v}: {}", self.reason),
            (true, None) => format!("export: publishing: {}", self.reason),
            (false, _) => format!(
                "export: challenger rejected, nothing published: {}",
                self.reason
            ),
        }
    }

    /// The decision as pretty JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("a decision always serializes");
        out.push(b'\n');
        out
    }

    /// Writes `<output_dir>/export-decision.json` atomically (temp file, fsync, rename).
    pub fn write(&self, output_dir: &Path) -> Result<(), StoreError> {
        LocalFs::new(output_dir)?.put_pointer(DECISION_FILE, &self.to_json())
    }

    /// Reads a decision file.
    pub fn read(path: &Path) -> Result<Self, StoreError> {
        let bytes = std::fs::read(path).map_err(|e| StoreError::io("read", path, e))?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
            op: "decode",
            what: path.display().to_string(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(mode: MonitorMode, min_delta: f64) -> Gate {
        Gate {
            metric: "val/macro_auprc".into(),
            mode,
            min_delta,
        }
    }

    fn scored(score: f64) -> Champion {
        Champion::Scored { version: 7, score }
    }

    #[test]
    fn a_worse_challenger_is_rejected_and_a_better_one_published() {
        let g = gate(MonitorMode::Max, 0.01);
        let worse = decide(Some(&g), &scored(0.80), Some(0.79));
        assert!(!worse.published);
        assert_eq!(worse.outcome, Outcome::NotBetter);
        assert_eq!(worse.champion_version, Some(7));
        assert_eq!(worse.champion_score, Some(0.80));
        assert_eq!(worse.challenger_score, Some(0.79));
        assert!(
            worse.reason.contains("does not beat champion version 7"),
            "{}",
            worse.reason
        );

        let better = decide(Some(&g), &scored(0.80), Some(0.85));
        assert!(better.published);
        assert_eq!(better.outcome, Outcome::Better);
        assert!((better.improvement.unwrap() - 0.05).abs() < 1e-12);
    }

    #[test]
    fn the_margin_must_be_exceeded() {
        let g = gate(MonitorMode::Max, 0.05);
        assert!(!decide(Some(&g), &scored(0.80), Some(0.84)).published);
        assert!(decide(Some(&g), &scored(0.80), Some(0.86)).published);
        // A tie with min_delta 0 keeps the champion.
        let g0 = gate(MonitorMode::Max, 0.0);
        assert!(!decide(Some(&g0), &scored(0.8), Some(0.8)).published);
    }

    #[test]
    fn min_mode_prefers_lower() {
        let g = gate(MonitorMode::Min, 0.0);
        assert!(decide(Some(&g), &scored(0.40), Some(0.35)).published);
        let d = decide(Some(&g), &scored(0.40), Some(0.45));
        assert!(!d.published);
        assert!(d.improvement.unwrap() < 0.0);
    }

    #[test]
    fn first_version_and_no_gate_publish() {
        let g = gate(MonitorMode::Max, 0.1);
        let first = decide(Some(&g), &Champion::None, Some(0.1));
        assert!(first.published);
        assert_eq!(first.outcome, Outcome::FirstVersion);
        let ungated = decide(None, &scored(0.9), None);
        assert!(ungated.published);
        assert_eq!(ungated.outcome, Outcome::NoGate);
        assert_eq!(ungated.metric, None);
    }

    #[test]
    fn doubt_keeps_the_champion() {
        let g = gate(MonitorMode::Max, 0.0);
        for challenger in [None, Some(f64::NAN), Some(f64::INFINITY)] {
            let d = decide(Some(&g), &scored(0.5), challenger);
            assert!(!d.published);
            assert_eq!(d.outcome, Outcome::InvalidChallengerScore);
            assert_eq!(d.challenger_score, None);
        }
        let d = decide(
            Some(&g),
            &Champion::Unscorable {
                version: 3,
                why: "labels differ".into(),
            },
            Some(0.9),
        );
        assert!(!d.published);
        assert_eq!(d.outcome, Outcome::ChampionUnscorable);
        assert!(d.reason.contains("labels differ"));
        // A champion scoring NaN is replaced.
        assert!(decide(Some(&g), &scored(f64::NAN), Some(0.1)).published);
    }

    #[test]
    fn decision_file_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let mut d = decide(Some(&gate(MonitorMode::Max, 0.0)), &scored(0.5), Some(0.6));
        d.published_version = Some(8);
        d.write(tmp.path()).unwrap();
        let back = Decision::read(&tmp.path().join(DECISION_FILE)).unwrap();
        assert_eq!(back, d);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(tmp.path().join(DECISION_FILE)).unwrap())
                .unwrap();
        assert_eq!(json["outcome"], "better");
        assert_eq!(json["mode"], "max");
        assert_eq!(json["published"], true);
        assert!(d.summary().starts_with("export: published version 8"));
    }
}
