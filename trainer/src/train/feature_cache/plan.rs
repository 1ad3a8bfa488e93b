//! Which towers a run caches: the frozen ones, when `train.feature_cache` is on.

use vigil_config::{RunConfig, TrainLayers};

/// Which towers are cached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CachePlan {
    /// The text tower is frozen and cached.
    pub text: bool,
    /// The image tower is frozen and cached.
    pub image: bool,
}

impl CachePlan {
    /// Towers with `train_layers: none`, when `train.feature_cache` is on.
    pub fn from_config(cfg: &RunConfig) -> Self {
        if !cfg.train.feature_cache {
            return Self::default();
        }
        Self {
            text: cfg
                .model
                .text
                .as_ref()
                .is_some_and(|t| t.train_layers == TrainLayers::None),
            image: cfg
                .model
                .image
                .as_ref()
                .is_some_and(|i| i.train_layers == TrainLayers::None),
        }
    }

    /// Whether any tower is cached.
    pub fn any(&self) -> bool {
        self.text || self.image
    }
}
