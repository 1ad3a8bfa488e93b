//! The worker's view of its process group: a real [`ProcessGroup`] when started by
//! `vigil launch` (or any torchrun-style environment), or a single process when
//! run alone, so `vigil worker CONFIG` works without a launcher.
//!
//! Where the group is comes from the worker environment contract ([`WorkerEnv`], the
//! launcher's side of it writes the same type); how the collective behaves (transport,
//! timeouts) comes from the contract where the launcher set it, else from the config's
//! `launch` section ([`LaunchSection::collective_env`], the one mapping of those settings,
//! which the launcher uses too).
//!
//! Gradients are reduced in a [`CommBuffer`] the collective allocates — shared
//! memory under the shm transport — and the trainer writes gradients straight into
//! it, so the all-reduce needs no extra copy.

use std::time::Duration;

use vigil_collective::{CollectiveEnv, CommBuffer, CudaChoice, ProcessGroup, ReduceOp, WorkerEnv};

use super::error::TrainError;
use crate::config::LaunchSection;

impl LaunchSection {
    /// The collective's knobs these settings ask for: `backend` as the transport,
    /// `collective_timeout_s` per operation, `rdzv_timeout_s` to reach the store and peers.
    pub fn collective_env(&self) -> CollectiveEnv {
        let secs = |s: f64| Duration::try_from_secs_f64(s).ok();
        CollectiveEnv {
            transport: Some(self.backend.into()),
            timeout: secs(self.collective_timeout_s),
            connect_timeout: secs(self.rdzv_timeout_s),
            ..CollectiveEnv::default()
        }
    }
}

/// The CUDA device of this worker: `LOCAL_RANK` (0 when alone) among
/// `CUDA_VISIBLE_DEVICES`, as torchrun does ([`vigil_collective::cuda_device`]).
pub fn cuda_choice(env: Option<&WorkerEnv>) -> Result<CudaChoice, TrainError> {
    let (local, local_world) = env.map_or((0, 1), |e| (e.local_rank, e.local_world_size));
    let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    Ok(vigil_collective::cuda_device(
        local,
        local_world,
        visible.as_deref(),
    )?)
}

/// A process group of one or more ranks.
#[derive(Debug)]
pub enum Comm {
    /// Alone: every collective is the identity.
    Single,
    /// A member of a group.
    Group(Box<ProcessGroup>),
}

impl Comm {
    /// Joins the group the process environment describes, or runs alone when `WORLD_SIZE`
    /// is unset (or 1 without a `MASTER_ADDR`); see [`Comm::join`].
    pub fn from_env(launch: &LaunchSection) -> Result<Self, TrainError> {
        let env = WorkerEnv::detect(|k| std::env::var(k).ok())?;
        Self::join(env.as_ref(), launch)
    }

    /// Joins the group of `env` (alone when `None`); knobs the contract leaves unset come
    /// from `launch`.
    pub fn join(env: Option<&WorkerEnv>, launch: &LaunchSection) -> Result<Self, TrainError> {
        let Some(env) = env else {
            return Ok(Self::Single);
        };
        let mut env = env.clone();
        env.collective = env.collective.or(&launch.collective_env());
        let mut cfg = env.group_config()?;
        // The group's device decides what `auto` picks (NCCL on CUDA).
        if launch.device == crate::config::Device::Cuda {
            cfg.device = launch.device.collective(cuda_choice(Some(&env))?.ordinal);
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
