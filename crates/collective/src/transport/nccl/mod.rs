//! NCCL transport for CUDA devices (feature `nccl`).
//!
//! Rank 0 creates the NCCL unique id and publishes it through the store (`nccl/id`); every
//! rank builds its communicator from it on device `LOCAL_RANK` (or the configured CUDA
//! ordinal). Before touching cudarc, whose dynamic loading panics when a library is
//! missing, [`check_libraries`] dlopens `libcuda` and `libnccl` and turns absence into
//! [`crate::Error::Unavailable`]. Without the feature the same API exists and returns
//! [`crate::Error::NotCompiledWith`].
//!
//! NCCL operations are asynchronous on a CUDA stream: each is followed by an event that
//! is polled together with `ncclCommGetAsyncError`, and an error or the per-operation
//! timeout aborts the communicator (`ncclCommAbort`) and poisons the group, whose error
//! names the rank that did not report ([`watch`], the pure part, tested without the
//! feature). This code is compiled and type-checked in CI but has not yet run on a GPU.

pub mod watch;

#[cfg(feature = "nccl")]
mod cuda;
#[cfg(not(feature = "nccl"))]
mod stub;

#[cfg(feature = "nccl")]
pub use cuda::{Aborted, NcclComm, Polled, check_libraries};
#[cfg(not(feature = "nccl"))]
pub use stub::{Aborted, NcclComm, Polled, check_libraries};
