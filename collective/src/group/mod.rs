//! The process group: configuration from the environment, joining, collective operations,
//! and failure diagnosis.
//!
//! # Layout
//! - [`config`]: [`GroupConfig`], parsed from `RANK`, `WORLD_SIZE`, ... and validated.
//! - [`process_group`]: [`ProcessGroup`] and its operations.
//! - [`buffer`]: [`CommBuffer`], a buffer placed where the transport reduces it fastest.
//! - [`diagnose`]: pure logic that names the failed rank from every survivor's report.
//! - `hierarchical`: shm within nodes + a TCP ring of node leaders.

pub mod buffer;
pub mod config;
pub mod diagnose;
mod hierarchical;
pub mod process_group;

pub use buffer::CommBuffer;
pub use config::{Device, GroupConfig, TransportKind};
pub use process_group::ProcessGroup;
