//! The recall pairing decision (pure): which index version serves beside which
//! model version, given what the model pickup ([`crate::pickup`]) wants and what
//! the index repository holds now.
//!
//! A model version and the index embedded by it are served as one pair, swapped
//! together: a recall request embeds its rows with the pair's model and searches
//! the pair's index, so vectors from different weights never meet. The rules:
//!
//! - A new model version is loaded with the newest index version that names it
//!   (its `MANIFEST.json` sha256): both load in the background, then swap as one.
//! - While the new model version has no index yet, the served pair stays, model
//!   included, until one is published (logged once) — recall never goes dark
//!   because a model was published before its index was built. When the served
//!   pair has no index either, there is nothing to keep and the model swaps alone.
//! - A newer (or, after a deletion, older) index version for the served model
//!   swaps in alone, the model staying.
//! - An index version that failed to load is not tried again; with none usable,
//!   the loaded one keeps serving.
//!
//! The poller (`engine/poller.rs`) gathers the facts and does the loading.

/// What the poller saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts<'a> {
    /// The index version served with the model (None: none yet).
    pub served_index: Option<u64>,
    /// The newest index version for the served model now.
    pub index_for_served: Option<u64>,
    /// The model version the pickup wants to load (None: keep the served one).
    pub new_model: Option<u64>,
    /// The newest index version for that new model.
    pub index_for_new: Option<u64>,
    /// Index versions that failed to load before.
    pub failed: &'a [u64],
}

/// What the poller does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pairing {
    /// Keep serving the pair.
    Keep,
    /// Load and swap as one: `model` (None: the served one stays) with `index`
    /// (None: no index).
    Load {
        /// The model version to load, if it changes.
        model: Option<u64>,
        /// The index version to serve with it.
        index: Option<u64>,
    },
    /// The new model version has no usable index yet: keep the served pair.
    Hold {
        /// The model version waiting for its index.
        model: u64,
    },
}

/// The decision over `f` (see the module docs).
pub fn decide(f: Facts<'_>) -> Pairing {
    let usable = |i: Option<u64>| i.filter(|v| !f.failed.contains(v));
    if let Some(model) = f.new_model {
        return match (usable(f.index_for_new), f.served_index) {
            (Some(index), _) => Pairing::Load {
                model: Some(model),
                index: Some(index),
            },
            (None, Some(_)) => Pairing::Hold { model },
            (None, None) => Pairing::Load {
                model: Some(model),
                index: None,
            },
        };
    }
    match usable(f.index_for_served) {
        Some(index) if Some(index) != f.served_index => Pairing::Load {
            model: None,
            index: Some(index),
        },
        _ => Pairing::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts<'static> {
        Facts {
            served_index: Some(1),
            index_for_served: Some(1),
            new_model: None,
            index_for_new: None,
            failed: &[],
        }
    }

    #[test]
    fn a_new_model_swaps_with_its_index_or_waits_for_it() {
        assert_eq!(decide(facts()), Pairing::Keep);
        let new = Facts {
            new_model: Some(2),
            ..facts()
        };
        assert_eq!(decide(new), Pairing::Hold { model: 2 });
        let indexed = Facts {
            index_for_new: Some(3),
            ..new
        };
        assert_eq!(
            decide(indexed),
            Pairing::Load {
                model: Some(2),
                index: Some(3)
            }
        );
        let failed = Facts {
            failed: &[3],
            ..indexed
        };
        assert_eq!(decide(failed), Pairing::Hold { model: 2 });
    }

    #[test]
    fn without_an_index_to_keep_the_model_swaps_alone() {
        let f = Facts {
            served_index: None,
            index_for_served: None,
            new_model: Some(2),
            ..facts()
        };
        assert_eq!(
            decide(f),
            Pairing::Load {
                model: Some(2),
                index: None
            }
        );
    }

    #[test]
    fn a_new_index_for_the_served_model_swaps_alone() {
        let f = Facts {
            index_for_served: Some(4),
            ..facts()
        };
        let load = Pairing::Load {
            model: None,
            index: Some(4),
        };
        assert_eq!(decide(f), load);
        // The first index for a model served without one.
        let first = Facts {
            served_index: None,
            ..f
        };
        assert_eq!(decide(first), load);
        // A rollback (the newer index deleted) is followed; a failed one is not
        // tried again; none at all keeps the loaded one.
        let older = Facts {
            served_index: Some(5),
            ..f
        };
        assert_eq!(decide(older), load);
        assert_eq!(decide(Facts { failed: &[4], ..f }), Pairing::Keep);
        let gone = Facts {
            index_for_served: None,
            ..facts()
        };
        assert_eq!(decide(gone), Pairing::Keep);
    }
}
