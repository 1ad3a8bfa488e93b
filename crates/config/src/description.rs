//! [`RunDescription`]: what `vigil launch` hands every worker.
//!
//! The launcher resolves a CONFIG once — `--set` overrides and its own flags applied,
//! `${VAR}`s expanded in node 0's environment, the whole config validated with this
//! build's features, the cluster's settings applied and the launch keys validated
//! again — and publishes the result in the rendezvous store and as the run
//! directory's `config.resolved.yaml`. Every worker of every node runs exactly that:
//! no overrides of its own, no second expansion (a literal `${` written `$${` stays
//! literal), no second validation. Only [`RunConfig::describe`] makes one, so a value
//! of this type is a config that passed validation.

use crate::{ConfigError, RunConfig};

/// A validated run config in the form the launcher publishes to its workers.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDescription {
    yaml: String,
}

impl RunConfig {
    /// The description of this config, for a launcher that loaded and validated it
    /// ([`RunConfig::load_for_launch_on`], then its cluster settings checked with
    /// [`validate`](crate::validate)).
    pub fn describe(&self) -> RunDescription {
        RunDescription {
            yaml: self.to_yaml(),
        }
    }
}

impl RunDescription {
    /// The YAML that is published and written to `config.resolved.yaml`.
    pub fn as_yaml(&self) -> &str {
        &self.yaml
    }

    /// The config a published description holds, taken as it is (a worker's side).
    pub fn read(yaml: &str) -> Result<RunConfig, ConfigError> {
        serde_yaml_ng::from_str(yaml).map_err(|source| ConfigError::Published { source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_description_is_read_back_as_it_is() {
        let mut c = RunConfig::default();
        c.run.name = "from-node-0".into();
        // A literal `${` (written `$${` in the YAML) survives the hand-over.
        c.run.output_dir = Some("/data/${NOT_EXPANDED}".into());
        let back = RunDescription::read(c.describe().as_yaml()).unwrap();
        assert_eq!(back, c);
        let err = RunDescription::read("run:\n  nmae: x\n").unwrap_err();
        assert!(err.to_string().contains("same vigil"), "{err}");
    }
}
