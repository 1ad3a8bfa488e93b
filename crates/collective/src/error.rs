//! The crate's one error type.
//!
//! Variants are shaped for the caller that has to *decide* something: the launcher's restart
//! policy matches [`Error::PeerLost`] and [`Error::Timeout`] (a peer died or stalled: restart
//! the group), [`Error::Env`] and [`Error::Config`] (a user mistake: do not restart), and
//! [`Error::NotCompiledWith`] / [`Error::Unavailable`] (pick another transport).

use std::fmt;
use std::io;
use std::time::Duration;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The collective operation an error happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Group setup: store connection, address exchange, transport links.
    Setup,
    /// `all_reduce` (any element type, any reduction).
    AllReduce,
    /// `broadcast`.
    Broadcast,
    /// `barrier`.
    Barrier,
    /// `all_gather` / `all_gather_bytes`.
    AllGather,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Setup => "setup",
            Op::AllReduce => "all_reduce",
            Op::Broadcast => "broadcast",
            Op::Barrier => "barrier",
            Op::AllGather => "all_gather",
        })
    }
}

/// Everything that can go wrong in `vigil-collective`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A peer's process is gone (connection closed or reset, or its pid no longer exists).
    #[error("{op} #{seq}: rank {rank} was lost (its connection closed or its process exited)")]
    PeerLost {
        /// The rank that disappeared.
        rank: usize,
        /// The operation that noticed.
        op: Op,
        /// Sequence number of the operation within the group (0-based).
        seq: u64,
    },
    /// A peer did not answer within the operation's timeout (stalled, stopped or very slow).
    #[error("{op} #{seq}: rank {rank} did not respond within {after:?}")]
    Timeout {
        /// The operation that timed out.
        op: Op,
        /// Sequence number of the operation within the group.
        seq: u64,
        /// The rank that was waited for.
        rank: usize,
        /// The timeout that expired.
        after: Duration,
    },
    /// A worker environment variable is missing or inconsistent.
    #[error("environment variable {var}: {reason}")]
    Env {
        /// The variable's name (e.g. `RANK`).
        var: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The group or an option was configured inconsistently (not from the environment).
    #[error("invalid configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// Ranks called different collectives (or the same one with different sizes or types)
    /// at the same point: a bug in the caller, so the launcher should not restart.
    #[error("{op} #{seq}: rank {rank} disagrees: {reason}")]
    Mismatch {
        /// The operation this rank was running.
        op: Op,
        /// Sequence number.
        seq: u64,
        /// The peer that disagrees.
        rank: usize,
        /// What differs.
        reason: String,
    },
    /// The requested transport needs a cargo feature this build does not have.
    #[error("this build of vigil-collective was compiled without the `{feature}` feature")]
    NotCompiledWith {
        /// The missing cargo feature.
        feature: &'static str,
    },
    /// A runtime library the transport needs (e.g. `libnccl.so.2`) cannot be loaded.
    #[error("{library} is not available on this machine: {reason}")]
    Unavailable {
        /// The library that is missing.
        library: &'static str,
        /// Why (e.g. the dlopen message).
        reason: String,
    },
    /// The rendezvous store refused us (bad token) or answered with an error.
    #[error("store refused the request: {reason}")]
    StoreRefused {
        /// The server's message.
        reason: String,
    },
    /// Waiting for store keys timed out.
    #[error("store keys {keys:?} did not appear within {after:?}")]
    StoreTimeout {
        /// The keys waited for.
        keys: Vec<String>,
        /// The timeout that expired.
        after: Duration,
    },
    /// A peer or the store sent bytes that do not follow the protocol.
    #[error("protocol error: {0}")]
    Protocol(#[from] crate::store::ProtocolError),
    /// A store value was not what the caller expected (e.g. a counter that is not an integer).
    #[error("store key {key}: {reason}")]
    BadValue {
        /// The key.
        key: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// An earlier operation failed; the group's links are torn down and it must be rebuilt.
    #[error("the process group failed in an earlier operation (#{failed_seq}); rebuild it")]
    Poisoned {
        /// Sequence number of the operation that failed first.
        failed_seq: u64,
    },
    /// NCCL or CUDA reported an error.
    #[error("nccl: {reason}")]
    Nccl {
        /// NCCL's / CUDA's message.
        reason: String,
    },
    /// A benchmark rank process failed.
    #[error("benchmark rank {rank} failed: {status}")]
    RankFailed {
        /// The rank.
        rank: usize,
        /// Its exit status, or what went wrong.
        status: String,
    },
    /// An I/O error outside a collective operation (connect, bind, mmap, spawn, ...).
    #[error("{context}")]
    Io {
        /// What we were doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// Wrap an I/O error with a description of what we were doing.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// `true` for the failures that mean "a peer died or stalled": the launcher restarts.
    pub fn is_peer_failure(&self) -> bool {
        matches!(
            self,
            Error::PeerLost { .. } | Error::Timeout { .. } | Error::Poisoned { .. }
        )
    }
}
