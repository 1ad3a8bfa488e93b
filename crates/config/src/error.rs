//! Errors of loading a run config. Each names where the user must look: the file
//! with line and column, or the `--set` override, and the key path.

use std::path::PathBuf;

use super::validate::Problem;

/// Where a value came from, for messages.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// A file, with the position of the key when known.
    File {
        /// The config file.
        path: PathBuf,
        /// 1-based line and column.
        pos: Option<(usize, usize)>,
    },
    /// A `--set KEY=VALUE` override, as typed.
    Override(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File {
                path,
                pos: Some((l, c)),
            } => write!(f, "{}:{l}:{c}", path.display()),
            Self::File { path, pos: None } => write!(f, "{}", path.display()),
            Self::Override(spec) => write!(f, "--set {spec}"),
        }
    }
}

/// A problem located at an origin and key.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    /// File position or override.
    pub origin: Origin,
    /// The problem.
    pub problem: Problem,
}

impl std::fmt::Display for Located {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.origin, self.problem.key, self.problem.message
        )
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {}: {source}", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A `--set` argument is not `KEY=VALUE` or its value is not YAML.
    #[error("--set {spec}: {message}")]
    OverrideSyntax {
        /// The argument as typed.
        spec: String,
        /// What is wrong.
        message: String,
    },
    /// Parsing, expansion or validation found problems; all of them are listed.
    #[error("{}", render(problems))]
    Invalid {
        /// Every problem found, in file order.
        problems: Vec<Located>,
    },
    /// A published run description ([`RunDescription`](crate::RunDescription)) does
    /// not parse as this build's config: another vigil version resolved it.
    #[error("node 0's resolved config does not parse here (are all nodes running the same vigil?)")]
    Published {
        /// The parser's error.
        #[source]
        source: serde_yaml_ng::Error,
    },
}

fn render(problems: &[Located]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    match lines.len() {
        1 => lines[0].clone(),
        n => format!("{n} problems in the run config:\n  {}", lines.join("\n  ")),
    }
}
