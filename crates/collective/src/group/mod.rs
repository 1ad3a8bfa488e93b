//! The process group: configuration from the environment, joining, collective operations,
//! and failure diagnosis.
//!
//! # Layout
//! - [`env`]: [`WorkerEnv`], the worker environment contract (`RANK`, `WORLD_SIZE`, ...)
//!   that the launcher writes and the worker reads.
//! - [`config`]: [`GroupConfig`], what a rank needs to join (from a [`WorkerEnv`] or built
//!   explicitly), validated.
//! - [`process_group`]: [`ProcessGroup`] and its operations.
//! - [`choice`]: pure decisions: a rank's CUDA device (`LOCAL_RANK` among
//!   `CUDA_VISIBLE_DEVICES`) and what `auto` resolves to.
//! - [`buffer`]: [`CommBuffer`], a buffer placed where the transport reduces it fastest.
//! - [`diagnose`]: pure logic that names the failed rank from every survivor's report.
//! - `hierarchical`: shm within nodes + a TCP ring of node leaders.

pub mod buffer;
pub mod choice;
pub mod config;
pub mod diagnose;
pub mod env;
mod hierarchical;
pub mod process_group;

pub use buffer::CommBuffer;
pub use choice::{CudaChoice, Resolved, cuda_device, resolve_transport};
pub use config::{Device, GroupConfig, TransportKind};
pub use env::{CollectiveEnv, PREEMPTED_EXIT, WorkerEnv};
pub use process_group::ProcessGroup;
