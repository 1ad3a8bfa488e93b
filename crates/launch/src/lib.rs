//! `vigil launch` and its kin, free of burn and of the trainer: starting one
//! worker per device, supervising them (restarts, preemption, hung workers),
//! hosting the rendezvous store, reading cluster environments (Slurm,
//! Kubeflow), rendering batch jobs, and the launcher's console.
//!
//! Workers are processes that follow the worker contract
//! ([`vigil_collective::WorkerEnv`], [`vigil_collective::progress`],
//! [`vigil_collective::PREEMPTED_EXIT`]); this crate never links the model or
//! the training loop (checked by `scripts/check_arrows.py` in `.ci/run`).
//!
//! # Layout
//! - [`resolve`]: `vigil launch`'s arguments, resolved with the run config and the
//!   cluster environment into the agent's spec.
//! - [`supervise`]: the agent: workers, restarts, signals, the output lock, the store.
//! - [`cluster`]: Slurm and Kubeflow environments.
//! - [`render`]: Slurm batch scripts and Kubernetes manifests (`vigil render`).
//! - [`console`]: rank 0's console (bar, text or JSON lines).
//! - [`exit`]: the exit codes of `vigil`.

pub mod cluster;
pub mod console;
pub mod exit;
pub mod render;
pub mod resolve;
pub mod supervise;
