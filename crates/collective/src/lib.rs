//! Vigil's communication engine: what gloo is to PyTorch on CPU and NCCL on GPUs.
//!
//! It works on flat `f32` buffers (and `f64`/`i64`/`u64` for metrics and counters) and never
//! depends on burn, so it can be tested and benchmarked without a model. The trainer
//! writes every trainable parameter's gradient into one flat [`CommBuffer`] (allocated
//! here, in shared memory under the shm transport), reduces it with one all-reduce per
//! optimizer step, and reads the reduced values back.
//!
//! # Layout
//! - [`store`]: the rendezvous store (server the launcher hosts, blocking client).
//! - [`group`]: [`WorkerEnv`], the worker environment contract (torchrun's variable names
//!   plus `VIGIL_*`) that the launcher writes and workers read; [`ProcessGroup`] built from
//!   it, and its operations: `all_reduce`, `broadcast`, `barrier`, `all_gather(_bytes)`.
//! - [`transport`]: TCP ring, shared memory, NCCL.
//! - [`element`]: element types and [`ReduceOp`].
//! - [`bench`](mod@bench): the `vigil bench allreduce` logic.
//!
//! # Vocabulary
//! *rank*: one worker process; *node*: one machine; *local rank*: index on the node;
//! *seq*: the number of an operation within the group, which every rank agrees on.
//!
//! # Transport choice
//! `auto` picks NCCL for CUDA devices (falling back, with a warning, to what it picks on
//! the CPU when NCCL is not compiled in or `libnccl` does not load), shared memory when every rank is on one node, the
//! hierarchical transport when there are several nodes with several ranks each (shared
//! memory within each node, a TCP ring between one leader per node, shared memory again to
//! hand the result out), and the flat TCP ring otherwise (one rank per node, or ranks not
//! numbered node by node). Broadcast, barrier and all-gather always use the flat TCP ring
//! over all ranks (they carry little data); only all-reduce uses shm and the hierarchy.
//! The hierarchical path is tested with nodes simulated on one machine.
//!
//! # Failures
//! Every operation has a timeout. A rank that dies or stalls makes every other rank return
//! [`Error::PeerLost`] or [`Error::Timeout`] naming the operation, its sequence number and
//! the missing rank; the group is then poisoned and must be rebuilt (the launcher restarts
//! the generation).

pub mod bench;
pub mod element;
pub mod error;
pub mod group;
pub mod progress;
pub mod store;
pub mod transport;

pub use element::{Element, ReduceOp};
pub use error::{Error, Op, Result};
pub use group::{
    CollectiveEnv, CommBuffer, CudaChoice, Device, GroupConfig, PREEMPTED_EXIT, ProcessGroup,
    TransportKind, WorkerEnv, cuda_device, resolve_transport,
};

/// Whether this build has the `nccl` feature (for `vigil --version`).
pub const NCCL_COMPILED: bool = cfg!(feature = "nccl");
pub use store::{BackgroundStore, StoreClient};
pub use transport::shm::SharedBuffer;
