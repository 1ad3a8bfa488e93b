//! Exit codes of `vigil`, documented in the book (`docs/src/reference/exit-codes.md`).
//!
//! Schedulers branch on them, so each has one meaning: 0 success, 1 a runtime
//! failure, 2 a usage or config error (the user must change something), 3 audit
//! findings (`vigil datasets audit --strict`), 65 a non-finite training loss, 75 preempted
//! (the workers were stopped on request after checkpointing: requeue the job).
//!
//! Only the numbers live here, at the bottom of the crate, so the supervision policy and
//! every subcommand can name them; which error maps to which code is
//! `cli::errors::code_for`, above the subcommands whose error types it knows.

/// A runtime failure (a worker crashed, I/O failed).
pub const FAILURE: u8 = 1;
/// A usage or config error: bad flags, bad YAML, a missing file.
pub const USAGE: u8 = 2;
/// The training loss became NaN or infinite: `EX_DATAERR` from `sysexits.h`. Like
/// [`USAGE`] it is deterministic (a resumed run reaches the same loss), so `vigil launch`
/// does not restart a worker that exits with it.
pub const NON_FINITE_LOSS: u8 = 65;
/// `vigil launch` was told to stop (SIGTERM/SIGINT, or another node was) and stopped its
/// workers: the run can resume from its checkpoint. `EX_TEMPFAIL` from `sysexits.h`
/// ("temporary failure, retry"), distinct from 128+N codes of processes killed by a signal,
/// so Slurm requeue scripts and Kubernetes `podFailurePolicy` can match it exactly.
pub const PREEMPTED: u8 = vigil_collective::PREEMPTED_EXIT;
/// `vigil datasets audit --strict` found errors in the data.
pub const AUDIT_FINDINGS: u8 = 3;
