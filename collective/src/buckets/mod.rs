//! Gradient buckets, as PyTorch DDP's `Reducer` does them.
//!
//! Parameters (given as a list of lengths, in the order the caller will produce their
//! gradients — for backprop, usually reverse definition order) are packed greedily into
//! buckets of about `bucket_cap_mb`. The plan is a pure function of the lengths, so every
//! rank computes the same buckets without talking. The caller writes gradients into
//! per-parameter slices of the bucket buffers, marks parameters ready, and a background
//! thread all-reduces bucket `k` while the caller is still producing bucket `k+1`.
//!
//! Buckets are launched strictly in index order (a bucket that becomes ready early waits
//! for its predecessors), because every rank must issue the same collectives in the same
//! order; this is DDP's rule too. Under the shm transport the bucket buffers *are* shared
//! memory ([`crate::CommBuffer::Shared`]), so reducing them needs no copy.
//!
//! # Layout
//! - [`plan`]: [`BucketPlan`], pure.
//! - [`reducer`]: [`GradBuckets`], the buffers and the communication thread.

pub mod plan;
pub mod reducer;

pub use plan::{BucketPlan, ParamSlot};
pub use reducer::{BucketOptions, GradBuckets};
