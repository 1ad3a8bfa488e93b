//! Transports: how bytes move between ranks.
//!
//! # Layout
//! - [`ring`]: the ring all-reduce schedule, pure and unit-tested.
//! - `handshake`: building the ring's links (address exchange, hello with the token).
//! - `header`: the per-operation header neighbours compare.
//! - `link`: one TCP link (sender thread + deadline reads).
//! - `tcp`: the TCP ring (all-reduce, broadcast, all-gather).
//! - [`shm`]: shared memory within a node.
//! - [`nccl`]: NCCL on CUDA devices (feature `nccl`; a stub returning
//!   [`crate::Error::NotCompiledWith`] otherwise).
//!
//! The transports are an enum inside [`crate::ProcessGroup`] rather than a trait object
//! because the operations are generic over the element type (monomorphic reduction loops),
//! which a `dyn` trait cannot express.

pub(crate) mod handshake;
pub(crate) mod header;
pub(crate) mod link;
pub mod nccl;
pub(crate) mod polled;
pub mod ring;
pub mod shm;
pub(crate) mod tcp;

pub use tcp::{DEFAULT_CHUNK_BYTES, LOCAL_SOCKET_BUFFER};
