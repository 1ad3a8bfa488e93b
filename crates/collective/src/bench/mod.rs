//! `vigil bench allreduce`: an nccl-tests style all-reduce benchmark, as a library so the
//! CLI only needs a thin clap wrapper.
//!
//! The parent ([`run_parent`]) hosts a store, measures single-core memcpy bandwidth as the
//! physical reference, spawns `nproc` rank processes through a caller-supplied closure
//! (the `vigil` binary re-executes itself with a hidden subcommand; the example
//! `allreduce_bench` does the same), and prints one row per size as rank 0 publishes it.
//! Each rank ([`run_rank_from_env`]) joins the group from the environment and times
//! `iters` all-reduces per size; the time of an iteration is the slowest rank's.
//!
//! Figures follow nccl-tests: `algbw = bytes / time`, `busbw = algbw · 2(n−1)/n`, GB = 1e9.
//! Under shm the buffers are [`crate::CommBuffer`]s living in shared memory (what the
//! trainer's gradient buffer is) unless `copy` asks for the copying path.
//!
//! # Layout
//! - [`options`]: options ([`BenchOptions`]), sizes, env hand-over to ranks.
//! - [`report`]: rows ([`BenchRow`]), statistics and formatting (pure).
//! - [`parent`]: the parent side, [`run_parent`] and [`memcpy_gbps`].
//! - [`rank`]: the rank side, [`run_rank_from_env`].

pub mod options;
pub mod parent;
pub mod rank;
pub mod report;

pub use options::{BenchOptions, OPTS_ENV, parse_size, parse_sizes};
pub use parent::{memcpy_gbps, run_parent};
pub use rank::run_rank_from_env;
pub use report::BenchRow;
