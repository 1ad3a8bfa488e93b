//! The process group: configuration from the environment, joining, collective operations,
//! and failure diagnosis.
//!
//! # Layout
//! - [`env`]: [`WorkerEnv`], the worker environment contract (`RANK`, `WORLD_SIZE`, ...)
//!   that the launcher writes and the worker reads.
//! - [`config`]: [`GroupConfig`], what a rank needs to join (from a [`WorkerEnv`] or built
//!   explicitly), validated.
//! - [`process_group`]: [`ProcessGroup`] and its operations.
//! - [`buffer`]: [`CommBuffer`], a buffer placed where the transport reduces it fastest.
//! - [`diagnose`]: pure logic that names the failed rank from every survivor's report.
//! - `hierarchical`: shm within nodes + a TCP ring of node leaders.

pub mod buffer;
pub mod config;
pub mod diagnose;
pub mod env;
mod hierarchical;
pub mod process_group;

pub use buffer::CommBuffer;
pub use config::{Device, GroupConfig, TransportKind};
pub use env::{CollectiveEnv, WorkerEnv};
pub use process_group::ProcessGroup;
