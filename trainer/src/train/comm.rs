//! The worker's view of its process group: a real [`ProcessGroup`] when started by
//! `vigil launch` (or any torchrun-style environment), or a single process when
//! run alone, so `vigil worker CONFIG` works without a launcher.
//!
//! Where the group is comes from the worker environment contract ([`WorkerEnv`], the
//! launcher's side of it writes the same type); how the collective behaves (transport,
//! timeouts) comes from the contract where the launcher set it, else from the config's
//! `launch` section ([`vigil_config::LaunchSection::collective_env`], the one mapping of those settings,
//! which the launcher uses too).
//!
//! Gradients are reduced in a [`CommBuffer`] the collective allocates — shared
//! memory under the shm transport — and the trainer writes gradients straight into
//! it, so the all-reduce needs no extra copy.

#[cfg(feature = "cuda")]
use vigil_collective::CudaChoice;
use vigil_collective::{CommBuffer, ProcessGroup, ReduceOp, WorkerEnv};
use vigil_config::LaunchSection;

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};

use super::error::TrainError;

/// The CUDA device of this worker: `LOCAL_RANK` (0 when alone) among
/// `CUDA_VISIBLE_DEVICES`, as torchrun does ([`vigil_collective::cuda_device`]).
#[cfg(feature = "cuda")]
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
        let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
        let cfg = launch.group_config(env, visible.as_deref())?;
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

    /// Sums `t` (a `f32` gradient bucket on the training device) over ranks.
    ///
    /// Under NCCL on CUDA the reduction runs in place on the tensor's device buffer:
    /// burn-cubecl 0.21 exposes it (`ComputeClient::get_resource` gives the CUDA
    /// address of a handle, in the device's primary context, which cudarc's NCCL
    /// context shares), so no byte goes through the host. Any other transport (a CUDA
    /// run whose `auto` fell back to shm/tcp, the CPU backend in tests) reduces a host
    /// copy and uploads the result.
    pub fn sum_tensor<B: Backend>(&mut self, t: Tensor<B, 1>) -> Result<Tensor<B, 1>, TrainError> {
        let Self::Group(g) = self else {
            return Ok(t);
        };
        #[cfg(feature = "cuda")]
        let t = match cuda_sum_in_place(g, t)? {
            Ok(reduced) => return Ok(reduced),
            Err(t) => t,
        };
        let device = t.device();
        let n = t.shape().num_elements();
        let mut v = t
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .expect("converted to f32");
        g.all_reduce(&mut v, ReduceOp::Sum)?;
        Ok(Tensor::from_data(
            TensorData::new(v, [n]),
            (&device, DType::F32),
        ))
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

/// [`Comm::sum_tensor`]'s NCCL path: `Ok(reduced)` when `t` is a CUDA tensor and the
/// group reduces over NCCL, else `Err(t)` back for the host path.
#[cfg(feature = "cuda")]
fn cuda_sum_in_place<B: Backend>(
    g: &mut ProcessGroup,
    t: Tensor<B, 1>,
) -> Result<Result<Tensor<B, 1>, Tensor<B, 1>>, TrainError> {
    use vigil_model::backend::CudaBackend;
    if g.transport() != vigil_collective::TransportKind::Nccl {
        return Ok(Err(t));
    }
    let t: Tensor<CudaBackend, 1> = match same_type(t) {
        Ok(t) => t,
        Err(t) => return Ok(Err(t)),
    };
    // A bucket is a fresh `cat` (or a reshape of one parameter's gradient): f32; made
    // contiguous first so its buffer is exactly its elements in order.
    let n = t.shape().num_elements();
    let t = t.reshape([n]);
    let prim = t.clone().into_primitive().tensor();
    if prim.dtype != DType::F32 {
        return Ok(Err(
            same_type(t).unwrap_or_else(|_| unreachable!("B is CudaBackend"))
        ));
    }
    let prim = if prim.is_contiguous() && prim.is_contiguous_buffer() {
        prim
    } else {
        burn_cubecl_contiguous(t.clone())
    };
    let device = prim.device.clone();
    // Everything burn queued (the backward, the flattening) must have run before NCCL
    // reads the buffer on its own stream.
    <CudaBackend as Backend>::sync(&device).map_err(|e| TrainError::Device {
        what: "synchronise before the all-reduce",
        source: Box::new(e),
    })?;
    let resource =
        prim.client
            .get_resource(prim.handle.clone())
            .map_err(|e| TrainError::Device {
                what: "the gradient bucket's device address",
                source: Box::new(e),
            })?;
    // SAFETY: the resource is the bucket's own allocation (`n` f32 from its start, the
    // handle's offset included), kept alive by `resource` and `prim`; burn's queue is
    // drained above and nothing else touches it until the wait inside returns.
    unsafe { g.all_reduce_device_f32(resource.resource().ptr, n, ReduceOp::Sum)? };
    drop(resource);
    let reduced =
        Tensor::<CudaBackend, 1>::from_primitive(burn::tensor::TensorPrimitive::Float(prim));
    Ok(Ok(
        same_type(reduced).unwrap_or_else(|_| unreachable!("B is CudaBackend"))
    ))
}

/// A copy of `t` with a contiguous buffer (burn's identity ops would keep the layout).
#[cfg(feature = "cuda")]
fn burn_cubecl_contiguous(
    t: Tensor<vigil_model::backend::CudaBackend, 1>,
) -> burn::tensor::ops::FloatTensor<vigil_model::backend::CudaBackend> {
    let n = t.shape().num_elements();
    let zeros =
        Tensor::<vigil_model::backend::CudaBackend, 1>::zeros([n], (&t.device(), DType::F32));
    (zeros + t).into_primitive().tensor()
}

/// `value` as a `U` when `T` and `U` are the same type, else `value` back.
#[cfg(feature = "cuda")]
fn same_type<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let mut slot = Some(value);
    match (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<U>>() {
        Some(same) => Ok(same.take().expect("slot is filled")),
        None => Err(slot.expect("slot is filled")),
    }
}
