//! Rendezvous store, like torch's `TCPStore`: a small authenticated key-value server the
//! launcher hosts and every worker connects to.
//!
//! # Layout
//! - `codec`: frame splitting and field encoding, the frame limit, [`ProtocolError`].
//! - [`protocol`]: messages on top of the codec, pure encode/decode (fuzzed by a seeded
//!   test).
//! - [`state`]: the key-value semantics (set/get/add/compare-set/delete), pure.
//! - [`server`]: [`serve`] over a tokio listener, plus [`BackgroundStore`] for sync hosts.
//! - [`client`]: the blocking [`StoreClient`].
//! - [`keys`]: the key names launcher and workers share (generation prefix, heartbeats,
//!   the resolved config).
//! - [`coordination`]: store heartbeats, on top of the client.
//!
//! Why a custom protocol rather than HTTP or Redis: the store must refuse anybody without
//! the run's token before parsing anything else, bound every allocation by a frame limit,
//! and support blocking `wait(keys, timeout)`; a 9-message binary protocol does all three in
//! a few hundred lines without another dependency.

pub mod client;
mod codec;
pub mod coordination;
pub mod keys;
pub mod protocol;
pub mod server;
pub mod state;

pub use client::{CasOutcome, StoreClient};
pub use protocol::{MAX_FRAME, ProtocolError, Request, Response};
pub use server::{BackgroundStore, serve};
