//! Turning NCCL's asynchronous failures into the errors the CPU transports give.
//!
//! An NCCL collective is enqueued on a CUDA stream and returns at once; a dead or
//! stalled peer shows up later, as a kernel that never finishes, or as an error that
//! `ncclCommGetAsyncError` reports. So the caller records an event after the
//! operation and polls it, asking [`decide`] at each poll: done, keep waiting, or
//! abort (`ncclCommAbort`, which makes the stuck kernel return) because NCCL reported
//! an error or `launch.collective_timeout_s` passed. After an abort the group is
//! poisoned, as after a CPU transport's failure, and the launcher's restart policy
//! sees [`Error::Timeout`] / [`Error::PeerLost`] instead of a hang.
//!
//! Naming the rank: every rank that aborts publishes the sequence number it was in
//! under `nccl-fault/<rank>` in the store; after a short grace it reads everybody's,
//! and [`culprit`] names the first rank that filed nothing (a dead or stopped
//! process cannot) — the same rule as `group::diagnose` for the ring. This file is
//! the pure part, compiled and tested without the `nccl` feature.

use std::time::Duration;

use crate::error::{Error, Op};

/// `ncclSuccess`.
pub const NCCL_SUCCESS: i32 = 0;
/// `ncclInProgress`: a non-blocking communicator still working (not an error).
pub const NCCL_IN_PROGRESS: i32 = 7;
/// `ncclRemoteError`: a peer failed or the network between us did.
pub const NCCL_REMOTE_ERROR: i32 = 6;

/// What to do after one poll of an enqueued operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watch {
    /// The operation finished.
    Done,
    /// Not yet: poll again.
    Wait,
    /// Abort the communicator: NCCL reported `code` asynchronously.
    AsyncError {
        /// The `ncclResult_t` value.
        code: i32,
    },
    /// Abort the communicator: the operation ran past the timeout.
    TimedOut,
}

/// One poll: `complete` (the event after the operation has fired), `async_code` (what
/// `ncclCommGetAsyncError` returned), `elapsed` since the operation was enqueued.
pub fn decide(complete: bool, async_code: i32, elapsed: Duration, timeout: Duration) -> Watch {
    if async_code != NCCL_SUCCESS && async_code != NCCL_IN_PROGRESS {
        return Watch::AsyncError { code: async_code };
    }
    if complete {
        Watch::Done
    } else if elapsed >= timeout {
        Watch::TimedOut
    } else {
        Watch::Wait
    }
}

/// How long to sleep before the next poll: spin briefly (an all-reduce of a few
/// megabytes takes well under a millisecond on NVLink), then back off to 1 ms.
pub fn poll_interval(polls: u32) -> Duration {
    match polls {
        0..=63 => Duration::ZERO,
        64..=255 => Duration::from_micros(50),
        _ => Duration::from_millis(1),
    }
}

/// NCCL's name for an `ncclResult_t` (its `ncclGetErrorString` family).
pub fn code_name(code: i32) -> &'static str {
    match code {
        0 => "ncclSuccess",
        1 => "ncclUnhandledCudaError",
        2 => "ncclSystemError",
        3 => "ncclInternalError",
        4 => "ncclInvalidArgument",
        5 => "ncclInvalidUsage",
        6 => "ncclRemoteError",
        7 => "ncclInProgress",
        _ => "unknown NCCL result",
    }
}

/// The rank to blame: the first of `reports` (indexed by rank; `None`: that rank
/// published nothing) other than `me` without a report; `None` when every rank
/// reported (all were inside the operation: NCCL or the network itself failed).
pub fn culprit(reports: &[Option<u64>], me: usize) -> Option<usize> {
    reports
        .iter()
        .enumerate()
        .find(|(r, rep)| *r != me && rep.is_none())
        .map(|(r, _)| r)
}

/// The error of an aborted operation `op` #`seq`, given the verdict that aborted it
/// and the rank [`culprit`] named.
pub fn abort_error(
    op: Op,
    seq: u64,
    why: Watch,
    blamed: Option<usize>,
    timeout: Duration,
) -> Error {
    match (why, blamed) {
        (Watch::TimedOut, Some(rank)) => Error::Timeout {
            op,
            seq,
            rank,
            after: timeout,
        },
        (Watch::AsyncError { code }, Some(rank)) if code == NCCL_REMOTE_ERROR => {
            Error::PeerLost { rank, op, seq }
        }
        (Watch::AsyncError { code }, Some(rank)) => Error::Nccl {
            reason: format!(
                "{op} #{seq}: {} ({code}); rank {rank} did not report, it is the likely cause",
                code_name(code)
            ),
        },
        (Watch::AsyncError { code }, None) => Error::Nccl {
            reason: format!("{op} #{seq}: {} ({code}) on every rank", code_name(code)),
        },
        (_, None) => Error::Nccl {
            reason: format!(
                "{op} #{seq}: did not finish within {timeout:?} although every rank \
                 entered it (NCCL or the network between the GPUs hung)"
            ),
        },
        (Watch::Done | Watch::Wait, Some(rank)) => Error::Nccl {
            reason: format!("{op} #{seq}: aborted (rank {rank} did not report)"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(10);

    #[test]
    fn completion_wins_until_nccl_reports_an_error() {
        assert_eq!(decide(true, 0, Duration::ZERO, T), Watch::Done);
        assert_eq!(decide(true, 0, T * 2, T), Watch::Done);
        assert_eq!(decide(false, 0, Duration::from_secs(1), T), Watch::Wait);
        assert_eq!(
            decide(false, NCCL_IN_PROGRESS, Duration::ZERO, T),
            Watch::Wait
        );
        assert_eq!(
            decide(true, NCCL_REMOTE_ERROR, Duration::ZERO, T),
            Watch::AsyncError { code: 6 }
        );
    }

    #[test]
    fn the_timeout_aborts() {
        assert_eq!(decide(false, 0, T, T), Watch::TimedOut);
    }

    #[test]
    fn polling_backs_off() {
        assert_eq!(poll_interval(0), Duration::ZERO);
        assert!(poll_interval(100) < poll_interval(1000));
        assert_eq!(poll_interval(u32::MAX), Duration::from_millis(1));
    }

    #[test]
    fn the_silent_rank_is_blamed() {
        assert_eq!(culprit(&[Some(4), None, Some(4)], 0), Some(1));
        assert_eq!(
            culprit(&[None, Some(4)], 0),
            None,
            "my own report may be missing"
        );
        assert_eq!(culprit(&[Some(4), Some(4)], 1), None);
    }

    #[test]
    fn errors_name_the_operation_and_the_rank() {
        let e = abort_error(Op::AllReduce, 7, Watch::TimedOut, Some(3), T);
        assert!(
            matches!(
                e,
                Error::Timeout {
                    seq: 7,
                    rank: 3,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.is_peer_failure());
        assert_eq!(
            e.to_string(),
            "all_reduce #7: rank 3 did not respond within 10s"
        );
        let e = abort_error(Op::AllReduce, 7, Watch::AsyncError { code: 6 }, Some(2), T);
        assert!(matches!(e, Error::PeerLost { rank: 2, .. }), "{e}");
        let e = abort_error(Op::AllReduce, 7, Watch::AsyncError { code: 2 }, Some(2), T);
        assert!(e.to_string().contains("ncclSystemError (2); rank 2"), "{e}");
        let e = abort_error(Op::AllReduce, 7, Watch::TimedOut, None, T);
        assert!(e.to_string().contains("every rank entered it"), "{e}");
    }
}
