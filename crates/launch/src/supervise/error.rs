//! Why a launch could not run (as opposed to workers failing, which is an
//! [`Outcome`](super::policy::Outcome)). Variants a user must act on name the endpoint,
//! file or flag.

use std::path::PathBuf;
use std::time::Duration;

use super::lock::LockError;

/// An error of the launcher itself.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The output directory is locked by another launch, or cannot be locked.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Node 0 could not bind the store's port.
    #[error("cannot host the rendezvous store on {addr}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: vigil_collective::Error,
    },
    /// The store could not be reached in time.
    #[error(
        "node {node_rank} could not reach the rendezvous store at {endpoint} within {}s \
         (launch.rdzv_timeout_s); is node 0's launcher running there?",
        timeout.as_secs_f64()
    )]
    Unreachable {
        /// This node.
        node_rank: u32,
        /// `HOST:PORT`.
        endpoint: String,
        /// The limit.
        timeout: Duration,
        /// The last error.
        #[source]
        source: vigil_collective::Error,
    },
    /// Not every node joined in time.
    #[error(
        "rendezvous at {endpoint} ({what}) did not complete within {}s (launch.rdzv_timeout_s)",
        timeout.as_secs_f64()
    )]
    RendezvousTimeout {
        /// `HOST:PORT`.
        endpoint: String,
        /// What was waited for.
        what: String,
        /// The limit.
        timeout: Duration,
    },
    /// The store answered with an error or went away.
    #[error("rendezvous store at {endpoint}: {what}")]
    Store {
        /// `HOST:PORT`.
        endpoint: String,
        /// What we were doing.
        what: String,
        /// Why.
        #[source]
        source: vigil_collective::Error,
    },
    /// Two launchers claimed one node rank.
    #[error(
        "node rank {node_rank} already joined the rendezvous at {endpoint}; give every launcher its own --node-rank"
    )]
    DuplicateNode {
        /// The rank claimed twice.
        node_rank: u32,
        /// `HOST:PORT`.
        endpoint: String,
    },
    /// A node other than 0 has no store token.
    #[error(
        "node {node_rank} needs the run's store token: set VIGIL_STORE_TOKEN (the same on \
         every node) or pass --store-token-file PATH{}",
        file.as_ref().map(|f| format!(" ({} did not appear within launch.rdzv_timeout_s)", f.display())).unwrap_or_default()
    )]
    NoToken {
        /// This node.
        node_rank: u32,
        /// The token file waited for, if any.
        file: Option<PathBuf>,
    },
    /// A file the launcher writes or reads.
    #[error("{what} {}", path.display())]
    Io {
        /// What we were doing.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A stop signal arrived while waiting for the store or other nodes (no workers ran).
    #[error("stopped by a signal while {during}")]
    Interrupted {
        /// What the launcher was waiting for.
        during: String,
    },
    /// Starting a worker failed.
    #[error("cannot start worker rank {rank} ({program})")]
    Spawn {
        /// Its global rank.
        rank: u32,
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}
