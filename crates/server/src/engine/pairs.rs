//! The poller's recall step: gathers what [`crate::pairing::decide`] needs (the
//! newest index version for the served model and for the model version the
//! pickup wants), loads what it decides in the background — the model version,
//! then its index, checked against it — and swaps the pair in as one.

use std::sync::Arc;

use vigil_recall::IndexRepo;

use super::poller::Poller;
use super::recall::{RecallIndex, model_identity};
use super::{Loaded, Serving, error_chain};
use crate::pairing::{Facts, Pairing, decide};
use crate::pickup::Pickup;

/// Where the recall index comes from and how it is loaded.
#[derive(Debug, Clone)]
pub struct RecallSource {
    /// The index repository.
    pub repo: IndexRepo,
    /// The search width for every version loaded (None: each version's own).
    pub ef_search: Option<usize>,
    /// Searches one index answers at once (the inference threads).
    pub threads: usize,
}

impl RecallSource {
    /// The newest index version for `model` (whose identity is set).
    fn index_for(&self, model: &Loaded) -> Result<Option<u64>, String> {
        let Some(id) = model.identity.as_deref() else {
            return Ok(None);
        };
        self.repo.newest_for_model(id).map_err(|e| error_chain(&e))
    }

    /// Loads index `version` for `model`.
    pub fn load(&self, version: u64, model: &Loaded) -> Result<RecallIndex, String> {
        RecallIndex::load(&self.repo, version, model, self.ef_search, self.threads)
            .map_err(|e| error_chain(&e))
    }
}

/// What the recall step remembers between polls.
#[derive(Debug, Default)]
pub struct Pairs {
    /// Index versions that failed to load: never tried again.
    failed: Vec<u64>,
    /// The model version last logged as waiting for its index.
    held: Option<u64>,
    /// The last error logged (each logged once until it changes).
    last_error: String,
}

impl Pairs {
    /// Starts remembering `failed` (index versions that failed at start).
    pub fn new(failed: Vec<u64>) -> Self {
        Self {
            failed,
            ..Self::default()
        }
    }

    fn warn(&mut self, msg: String) {
        if msg != self.last_error {
            eprintln!("vigil serve: warning: {msg}");
            self.last_error = msg;
        }
    }

    /// One poll: `pickup` is the model pickup's decision; `failed_models` the
    /// model versions that failed to load (a new one is added).
    pub fn step(
        &mut self,
        p: &Poller,
        source: &RecallSource,
        pickup: Pickup,
        failed_models: &mut Vec<u64>,
    ) {
        let serving = p.current.serving();
        let served = serving.model.version;
        let new_model = match pickup {
            Pickup::Load(v) => Some(v),
            Pickup::Keep => None,
        };
        let index_for_served = match source.index_for(&serving.model) {
            Ok(i) => i,
            Err(e) => return self.warn(format!("{e}; keeping the recall index loaded")),
        };
        let index_for_new = match new_model {
            None => None,
            Some(v) => {
                let found = model_identity(&p.repo, v).and_then(|id| {
                    source
                        .repo
                        .newest_for_model(&id)
                        .map_err(|e| error_chain(&e))
                });
                match found {
                    Ok(i) => i,
                    Err(e) => {
                        return self.warn(format!("version {v}: {e}; keeping version {served}"));
                    }
                }
            }
        };
        self.last_error.clear();
        let facts = Facts {
            served_index: serving.index.as_ref().map(|i| i.version),
            index_for_served,
            new_model,
            index_for_new,
            failed: &self.failed,
        };
        match decide(facts) {
            Pairing::Keep => {}
            Pairing::Hold { model } => {
                if self.held != Some(model) {
                    self.held = Some(model);
                    eprintln!(
                        "vigil serve: version {model} has no recall index in {} yet: still \
                         serving version {served}{} until one is published (vigil index build \
                         --model ... --out {})",
                        source.repo.location(),
                        index_text(&serving),
                        source.repo.location()
                    );
                }
            }
            Pairing::Load { model, index } => {
                self.load(p, source, &serving, model, index, failed_models)
            }
        }
    }

    fn load(
        &mut self,
        p: &Poller,
        source: &RecallSource,
        serving: &Serving,
        model: Option<u64>,
        index: Option<u64>,
        failed_models: &mut Vec<u64>,
    ) {
        let served = serving.model.version;
        let new_model = match model {
            None => serving.model.clone(),
            Some(v) => {
                eprintln!("vigil serve: loading version {v}");
                let loaded = match Loaded::load(&p.repo, Some(v), p.replicas) {
                    Ok(l) => l,
                    Err(e) => {
                        failed_models.push(v);
                        p.metrics.load_failed();
                        eprintln!(
                            "vigil serve: error: version {v} failed to load, still serving \
                             {served}: {}",
                            error_chain(&e)
                        );
                        return;
                    }
                };
                // Not remembered as failed: the manifest was readable a moment ago.
                match loaded.identified(&p.repo) {
                    Ok(l) => Arc::new(l),
                    Err(e) => return self.warn(format!("version {v}: {e}; keeping {served}")),
                }
            }
        };
        let new_index = match index {
            None => None,
            Some(i) => match source.load(i, &new_model) {
                Ok(x) => Some(Arc::new(x)),
                Err(e) => {
                    self.failed.push(i);
                    p.metrics.recall_load_failed();
                    eprintln!(
                        "vigil serve: error: recall index version {i} failed to load, still \
                         serving version {served}{}: {e}",
                        index_text(serving)
                    );
                    return;
                }
            },
        };
        let next = Serving {
            model: new_model,
            index: new_index,
        };
        let said = index_text(&next);
        let (v, i) = (next.model.version, next.index.as_ref().map(|x| x.version));
        let old = p.current.set(next);
        self.held = None;
        if model.is_some() {
            p.metrics.set_version(v, true);
            eprintln!("vigil serve: swapped: serving version {v} (was {served}){said}");
        } else {
            eprintln!(
                "vigil serve: swapped: recall index version {} (was {}) for version {v}",
                i.map_or("none".into(), |i| i.to_string()),
                old.index
                    .as_ref()
                    .map_or("none".into(), |x| x.version.to_string())
            );
        }
        if let Some(i) = i {
            p.metrics.set_recall_version(i, old.index.is_some());
        }
    }
}

/// `" with recall index N"`, or `" without a recall index"`.
fn index_text(s: &Serving) -> String {
    match &s.index {
        Some(i) => format!(" with recall index {}", i.version),
        None => " without a recall index".into(),
    }
}
