//! Stand-in for builds without the `nccl` feature: same API, every call returns
//! [`Error::NotCompiledWith`].

use std::time::Instant;

use crate::element::{Element, ReduceOp};
use crate::error::{Error, Result};
use crate::group::GroupConfig;
use crate::store::StoreClient;

/// Why an operation was aborted (never, in this build).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aborted(pub super::watch::Watch);

/// An operation's outcome, as in the `nccl` build.
pub type Polled = std::result::Result<Result<()>, Aborted>;

/// An NCCL communicator (unavailable in this build).
#[derive(Debug)]
pub struct NcclComm {
    _private: (),
}

/// Always fails: this build has no NCCL support.
pub fn check_libraries() -> Result<()> {
    Err(Error::NotCompiledWith { feature: "nccl" })
}

impl NcclComm {
    /// Always fails: this build has no NCCL support.
    pub fn new(_cfg: &GroupConfig, _store: &mut StoreClient, _deadline: Instant) -> Result<Self> {
        Err(Error::NotCompiledWith { feature: "nccl" })
    }

    /// Always fails: this build has no NCCL support.
    pub fn all_reduce_host<T: Element>(&mut self, _buf: &mut [T], _op: ReduceOp) -> Polled {
        Ok(Err(Error::NotCompiledWith { feature: "nccl" }))
    }

    /// Always fails: this build has no NCCL support.
    ///
    /// # Safety
    /// Never touches `_ptr`; `unsafe` only to match the `nccl` build's signature.
    pub unsafe fn all_reduce_raw_f32(&mut self, _ptr: u64, _n: usize, _op: ReduceOp) -> Polled {
        Ok(Err(Error::NotCompiledWith { feature: "nccl" }))
    }
}
