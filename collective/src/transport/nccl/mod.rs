//! NCCL transport for CUDA devices (feature `nccl`).
//!
//! Rank 0 creates the NCCL unique id and publishes it through the store (`nccl/id`); every
//! rank builds its communicator from it on device `LOCAL_RANK` (or the configured CUDA
//! ordinal). Before touching cudarc, whose dynamic loading panics when a library is
//! missing, [`check_libraries`] dlopens `libcuda` and `libnccl` and turns absence into
//! [`crate::Error::Unavailable`]. Without the feature the same API exists and returns
//! [`crate::Error::NotCompiledWith`].
//!
//! Limitation: NCCL operations are asynchronous on a CUDA stream; a dead peer is noticed by
//! NCCL itself (or its watchdog settings such as `NCCL_TIMEOUT`), not by our per-operation
//! timeout.

#[cfg(feature = "nccl")]
mod cuda;
#[cfg(not(feature = "nccl"))]
mod stub;

#[cfg(feature = "nccl")]
pub use cuda::{NcclComm, check_libraries};
#[cfg(not(feature = "nccl"))]
pub use stub::{NcclComm, check_libraries};
