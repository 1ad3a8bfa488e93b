//! The inference side: a loaded version ([`Loaded`]) and the recall index paired
//! with it ([`RecallIndex`], [`Serving`]), the bounded request queue with its
//! worker threads ([`Engine`]), and the poller that swaps them.
//!
//! Workers are plain OS threads (`--threads`), each with its own replica of the
//! model, so a forward pass never waits on the async runtime and the runtime's
//! threads never run a model. A request holds an `Arc` of the version it was
//! admitted on: a swap replaces the *current* version, and requests already in
//! the queue or in a batch finish on theirs; the old version is freed when the
//! last of them answers.
//!
//! Rows go through the same preprocessing as `vigil predict`: texts through the
//! export's tokenizer inside
//! [`ModelInput::from_vecs`](vigil_model::ModelInput::from_vecs), images decoded
//! (PNG, JPEG, WebP), resized and normalised by the data layer's functions
//! ([`ImageSpec`](vigil_data::ImageSpec)) at the export's
//! `data.image_size` and `data.image_transform`, and scored by the model in inference mode.
//!
//! # Layout
//! - `loaded.rs`: [`Loaded`] — one version with its replicas, scoring (and
//!   embedding) rows — and [`Current`], the pair served now.
//! - `recall.rs`: [`RecallIndex`] — one index version checked against its model,
//!   searched row by row — and [`model_identity`], the key pairing them.
//! - `queue.rs`: [`Engine`] — the bounded queue of [`Job`]s, the worker threads,
//!   batching and answering.
//! - `decode.rs`: image checks and decoding ([`check_image_header`], [`decode_image`]).
//! - `poller.rs`: [`start_poller`] — polling the repository and swapping versions.
//! - `pairs.rs`: the poller's recall step — the index for each model version,
//!   loaded with it and swapped in as one ([`crate::pairing`] decides).

mod decode;
mod loaded;
mod pairs;
mod poller;
mod queue;
mod recall;

pub use decode::{check_image_header, decode_image};
pub use loaded::{Current, Loaded, Serving};
pub use pairs::RecallSource;
pub use poller::{Poller, Stop, report_skipped, start_poller};
pub use queue::{BatchSettings, Engine, Job, JobError, Scored};
pub use recall::{RecallIndex, model_identity};

/// An error and its sources, `a: b: c`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}
