//! Shared-memory transport for ranks on one node.
//!
//! # Layout
//! - [`segment`]: a mapped `/dev/shm` file with per-rank slots and barrier counters.
//! - [`group`]: [`ShmGroup`], the node's staging segment and the copying all-reduce.
//! - [`buffer`]: [`SharedBuffer`], caller-owned buffers that *are* shared memory.
//! - `kernel`: the reduce-and-spread step both all-reduces share.
//!
//! Both all-reduces use the same algorithm: every rank reduces its own `1/n` of the buffer
//! (reading that range from every slot) and writes the result into every slot; after a
//! barrier every slot holds the full result. The copying variant first copies the caller's
//! buffer into its slot and finally copies the result back, which on the development
//! machine caps it near 2.7 GB/s busbw; [`SharedBuffer`] skips both copies because the
//! caller fills the slot directly (the trainer writes its gradients into one), which is
//! the only way to approach the ~5 GB/s memory-bandwidth limit (`vigil bench allreduce`
//! prints both).

pub mod buffer;
pub mod group;
pub(crate) mod kernel;
pub mod segment;

pub use buffer::SharedBuffer;
pub use group::ShmGroup;
pub use segment::{ShmSegment, cleanup_stale};
