//! The worker's view of its process group: a real [`ProcessGroup`] when started by
//! `vigil launch` (or any torchrun-style environment), or a single process when
//! run alone, so `vigil worker CONFIG` works without a launcher.
//!
//! Gradients are reduced in a [`CommBuffer`] the collective allocates — shared
//! memory under the shm transport — and the trainer writes gradients straight into
//! it, so the all-reduce needs no extra copy.

use std::time::Duration;

use vigil_collective::{CommBuffer, GroupConfig, ProcessGroup, ReduceOp, TransportKind};

use super::error::TrainError;
use crate::config::{Backend, LaunchSection};

/// A process group of one or more ranks.
#[derive(Debug)]
pub enum Comm {
    /// Alone: every collective is the identity.
    Single,
    /// A member of a group.
    Group(Box<ProcessGroup>),
}

impl Comm {
    /// Joins the group the environment describes, or runs alone when `WORLD_SIZE` is
    /// unset (or 1 without a `MASTER_ADDR`).
    pub fn from_env(launch: &LaunchSection) -> Result<Self, TrainError> {
        let world: usize = match std::env::var("WORLD_SIZE") {
            Ok(v) => v.parse().map_err(|_| TrainError::Env {
                var: "WORLD_SIZE".into(),
                reason: format!("'{v}' is not a number"),
            })?,
            Err(_) => 1,
        };
        if world <= 1 && std::env::var_os("MASTER_ADDR").is_none() {
            return Ok(Self::Single);
        }
        let mut cfg = GroupConfig::from_env()?;
        if std::env::var_os("VIGIL_TRANSPORT").is_none() {
            cfg.transport = match launch.backend {
                Backend::Auto => TransportKind::Auto,
                Backend::Tcp => TransportKind::Tcp,
                Backend::Shm => TransportKind::Shm,
                Backend::Nccl => TransportKind::Nccl,
            };
        }
        if std::env::var_os("VIGIL_COLLECTIVE_TIMEOUT_MS").is_none() {
            cfg.timeout = Duration::from_secs_f64(launch.collective_timeout_s);
        }
        if std::env::var_os("VIGIL_CONNECT_TIMEOUT_MS").is_none() {
            cfg.connect_timeout = Duration::from_secs_f64(launch.rdzv_timeout_s);
        }
        Ok(Self::Group(Box::new(ProcessGroup::new(cfg)?)))
    }

    /// This rank.
    pub fn rank(&self) -> usize {
        match self {
            Self::Single => 0,
            Self::Group(g) => g.rank(),
        }
    }

    /// Number of ranks.
    pub fn world_size(&self) -> usize {
        match self {
            Self::Single => 1,
            Self::Group(g) => g.world_size(),
        }
    }

    /// A buffer of `len` floats placed where the transport reduces it fastest.
    pub fn alloc(&mut self, len: usize) -> Result<CommBuffer, TrainError> {
        match self {
            Self::Single => Ok(CommBuffer::Heap(vec![0.0; len])),
            Self::Group(g) => Ok(g.alloc_buffer(len)?),
        }
    }

    /// Averages `buf` over ranks in place.
    pub fn mean_buffer(&mut self, buf: &mut CommBuffer) -> Result<(), TrainError> {
        match self {
            Self::Single => Ok(()),
            Self::Group(g) => Ok(g.all_reduce_buffer(buf, ReduceOp::Mean)?),
        }
    }

    /// Sums `buf` over ranks in place (the gradients with the step's counters in
    /// the same reduction).
    pub fn sum_buffer(&mut self, buf: &mut CommBuffer) -> Result<(), TrainError> {
        match self {
            Self::Single => Ok(()),
            Self::Group(g) => Ok(g.all_reduce_buffer(buf, ReduceOp::Sum)?),
        }
    }

    /// Sums `buf` over ranks in place (f64: losses and counters).
    pub fn sum_f64(&mut self, buf: &mut [f64]) -> Result<(), TrainError> {
        match self {
            Self::Single => Ok(()),
            Self::Group(g) => Ok(g.all_reduce(buf, ReduceOp::Sum)?),
        }
    }

    /// Copies rank `root`'s `buf` to every rank.
    pub fn broadcast(&mut self, buf: &mut [f32], root: usize) -> Result<(), TrainError> {
        match self {
            Self::Single => Ok(()),
            Self::Group(g) => Ok(g.broadcast(buf, root)?),
        }
    }

    /// Every rank's `mine`, in rank order.
    pub fn all_gather_f32(&mut self, mine: &[f32]) -> Result<Vec<Vec<f32>>, TrainError> {
        match self {
            Self::Single => Ok(vec![mine.to_vec()]),
            Self::Group(g) => Ok(g.all_gather(mine)?),
        }
    }

    /// Every rank's `mine`, in rank order.
    pub fn all_gather_u64(&mut self, mine: u64) -> Result<Vec<u64>, TrainError> {
        match self {
            Self::Single => Ok(vec![mine]),
            Self::Group(g) => Ok(g.all_gather(&[mine])?.into_iter().flatten().collect()),
        }
    }

    /// Waits for every rank.
    pub fn barrier(&mut self) -> Result<(), TrainError> {
        match self {
            Self::Single => Ok(()),
            Self::Group(g) => Ok(g.barrier()?),
        }
    }

    /// The largest of every rank's `v` (agreeing on a stop request or a step).
    pub fn max_u64(&mut self, v: u64) -> Result<u64, TrainError> {
        Ok(self.all_gather_u64(v)?.into_iter().max().unwrap_or(v))
    }
}
