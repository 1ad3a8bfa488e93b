//! Process supervision: what torchrun's elastic agent does, without burn.
//!
//! `vigil launch` runs one [`agent`] per node. The agent hosts (node 0) or reaches the
//! rendezvous store, agrees with the other nodes on the world, starts the workers with the
//! environment contract, and restarts, stops or kills them as the [`policy`] decides. The
//! decisions are a pure state machine; the modules around it do the I/O.
//!
//! # Layout
//! - `policy.rs`: restart policy, events in → actions out (pure).
//! - `env.rs`: the worker environment contract (pure).
//! - `watchdog.rs`: heartbeat tracking (pure) and heartbeat-file readings.
//! - `rendezvous.rs`: node-to-node coordination through the store.
//! - `process.rs`: spawn in a process group with PDEATHSIG, signal groups, reap.
//! - `guard.rs`: the helper that kills worker groups if the launcher is SIGKILLed.
//! - `logs.rs`: per-rank log files, console prefixes, tails for the failure summary.
//! - `signals.rs`: the launcher's SIGTERM/SIGINT/SIGHUP handling.
//! - `lock.rs`: one run per output directory.
//! - `token.rs`: the store token and run id.
//! - `agent/`: the supervision loop tying them together.
//! - `error.rs`: [`LaunchError`].
//!
//! Nothing here calls into burn: the tests run shell scripts as workers.

pub mod agent;
pub mod env;
pub mod error;
pub mod guard;
pub mod lock;
pub mod logs;
pub mod policy;
pub mod process;
pub mod rendezvous;
pub mod signals;
pub mod token;
pub mod watchdog;

pub use agent::{AgentSpec, run};
pub use error::LaunchError;
pub use policy::Outcome;
