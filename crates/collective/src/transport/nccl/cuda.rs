//! The real NCCL communicator on cudarc's `result`/`sys` layer.
//!
//! cudarc's safe `Comm` hides the raw `ncclComm_t`, which `ncclCommGetAsyncError`
//! and `ncclCommAbort` need, so the communicator is built here from the same calls
//! (`ncclCommInitRank` with the id rank 0 publishes). Every operation is enqueued on
//! the stream, followed by an event that is polled (see [`super::watch`]): an async
//! error or `launch.collective_timeout_s` aborts the communicator instead of hanging.
//! Host buffers go through one device staging buffer allocated once and grown when
//! needed (never a fresh allocation per step); a device buffer of burn's (the CUDA
//! trainer's gradient buckets) is reduced in place at its address
//! ([`NcclComm::all_reduce_raw_f32`]).

use std::ffi::{CStr, CString};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DevicePtrMut, DeviceRepr};
use cudarc::nccl::safe::NcclType;
use cudarc::nccl::{result as nres, sys as nsys};

use super::watch::{self, Watch};
use crate::element::{Element, ReduceOp, as_bytes_mut};
use crate::error::{Error, Result};
use crate::group::{Device, GroupConfig};
use crate::store::StoreClient;

/// An NCCL communicator bound to one CUDA device and its default stream.
pub struct NcclComm {
    comm: nsys::ncclComm_t,
    stream: Arc<CudaStream>,
    rank: usize,
    world_size: usize,
    timeout: Duration,
    /// Set once the communicator was aborted (it must not be used or freed again).
    aborted: bool,
    /// Device staging for host `f32` buffers, allocated once (grown on demand).
    staging: Option<CudaSlice<f32>>,
}

// SAFETY: an NCCL communicator may be driven from any thread as long as calls on it are
// not concurrent; `ProcessGroup` only reaches it through `&mut self`. cudarc binds the CUDA
// context to the calling thread on every stream operation.
unsafe impl Send for NcclComm {}

impl std::fmt::Debug for NcclComm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NcclComm")
            .field("rank", &self.rank)
            .field("world_size", &self.world_size)
            .field("aborted", &self.aborted)
            .finish_non_exhaustive()
    }
}

impl Drop for NcclComm {
    fn drop(&mut self) {
        if !self.aborted {
            // SAFETY: the communicator is valid and no operation is in flight once the
            // owner drops it; abort (not destroy) never blocks on peers.
            let _ = unsafe { nres::comm_abort(self.comm) };
        }
    }
}

fn dlopen(name: &str) -> std::result::Result<(), String> {
    let c = CString::new(name).map_err(|_| "bad library name".to_string())?;
    // SAFETY: dlopen/dlerror/dlclose with a valid C string; the handle is closed at once.
    unsafe {
        let h = libc::dlopen(c.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL);
        if h.is_null() {
            let e = libc::dlerror();
            let msg = if e.is_null() {
                format!("cannot load {name}")
            } else {
                CStr::from_ptr(e).to_string_lossy().into_owned()
            };
            return Err(msg);
        }
        libc::dlclose(h);
    }
    Ok(())
}

/// Check that `libcuda` and `libnccl` can be loaded (cudarc would panic otherwise).
pub fn check_libraries() -> Result<()> {
    let libs: [(&'static str, &[&str]); 2] = [
        ("libcuda", &["libcuda.so.1", "libcuda.so"]),
        ("libnccl", &["libnccl.so.2", "libnccl.so"]),
    ];
    for (library, names) in libs {
        let mut last = String::new();
        if !names.iter().any(|n| match dlopen(n) {
            Ok(()) => true,
            Err(e) => {
                last = e;
                false
            }
        }) {
            return Err(Error::Unavailable {
                library,
                reason: last,
            });
        }
    }
    Ok(())
}

fn guarded<R>(what: &str, f: impl FnOnce() -> R) -> Result<R> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| Error::Nccl {
        reason: format!("cudarc panicked during {what}"),
    })
}

fn nccl_err(what: &str, e: nres::NcclError) -> Error {
    Error::Nccl {
        reason: format!("{what}: {:?}", e.0),
    }
}

fn cuda_err(what: &str, e: cudarc::driver::DriverError) -> Error {
    Error::Nccl {
        reason: format!("{what}: {e}"),
    }
}

fn nccl_op(op: ReduceOp) -> nsys::ncclRedOp_t {
    match op {
        ReduceOp::Sum => nsys::ncclRedOp_t::ncclSum,
        ReduceOp::Mean => nsys::ncclRedOp_t::ncclAvg,
        ReduceOp::Max => nsys::ncclRedOp_t::ncclMax,
        ReduceOp::Min => nsys::ncclRedOp_t::ncclMin,
    }
}

/// Why an enqueued operation did not finish: the verdict, for the group to turn into
/// a named-rank error once it has read the other ranks' reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aborted(pub Watch);

/// An operation's outcome: `Err(Aborted)` when the communicator had to be aborted (the
/// group names the culprit), else the operation's own result.
pub type Polled = std::result::Result<Result<()>, Aborted>;

impl NcclComm {
    /// Build the communicator: rank 0 publishes the unique id through the store.
    pub fn new(cfg: &GroupConfig, store: &mut StoreClient, deadline: Instant) -> Result<Self> {
        check_libraries()?;
        let ordinal = match cfg.device {
            Device::Cuda(i) => i,
            Device::Cpu => cfg.local_rank,
        };
        let ctx = guarded("CUDA init", || CudaContext::new(ordinal))?
            .map_err(|e| cuda_err("CUDA context", e))?;
        let stream = ctx.default_stream();
        let id = if cfg.rank == 0 {
            let id = guarded("ncclGetUniqueId", nres::get_uniqueid)?
                .map_err(|e| nccl_err("unique id", e))?;
            let bytes: Vec<u8> = id.internal.iter().map(|c| *c as u8).collect();
            store.set("nccl/id", bytes)?;
            id
        } else {
            let left = deadline.saturating_duration_since(Instant::now());
            let bytes = store.wait_get("nccl/id", left)?;
            let mut internal = [0 as std::ffi::c_char; 128];
            if bytes.len() != internal.len() {
                return Err(Error::BadValue {
                    key: "nccl/id".into(),
                    reason: "not 128 bytes".into(),
                });
            }
            for (d, s) in internal.iter_mut().zip(&bytes) {
                *d = *s as std::ffi::c_char;
            }
            nsys::ncclUniqueId { internal }
        };
        let (rank, world) = (cfg.rank, cfg.world_size);
        let bad = |what: &str| Error::Config {
            reason: format!("{what} does not fit NCCL's int"),
        };
        let nranks = i32::try_from(world).map_err(|_| bad("WORLD_SIZE"))?;
        let me = i32::try_from(rank).map_err(|_| bad("RANK"))?;
        let mut comm = std::mem::MaybeUninit::<nsys::ncclComm_t>::uninit();
        // SAFETY: `comm` is a valid out pointer; the id is the group's. The CUDA
        // context of `stream` is current on this thread (cudarc made it so above).
        let comm = guarded("ncclCommInitRank", || unsafe {
            ctx.bind_to_thread()
                .map(|()| nres::comm_init_rank(comm.as_mut_ptr(), nranks, id, me))
        })?
        .map_err(|e| cuda_err("bind CUDA context", e))?
        .map_err(|e| nccl_err("communicator", e))
        // SAFETY: initialised by the successful ncclCommInitRank above.
        .map(|_| unsafe { comm.assume_init() })?;
        Ok(NcclComm {
            comm,
            stream,
            rank,
            world_size: world,
            timeout: cfg.timeout,
            aborted: false,
            staging: None,
        })
    }

    /// The stream operations are issued on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// This rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// All-reduce a device buffer in place and wait for it (polling; see module docs).
    /// On a failure the communicator is aborted and [`Aborted`] says why.
    pub fn all_reduce_device<T: NcclType + DeviceRepr>(
        &mut self,
        buf: &mut CudaSlice<T>,
        op: ReduceOp,
    ) -> Polled {
        let n = buf.len();
        self.all_reduce_prefix(buf, n, op)
    }

    /// Polls the stream's progress until done, an async error or the timeout.
    fn wait(&mut self) -> Polled {
        let event = match self.stream.record_event(None) {
            Ok(e) => e,
            Err(e) => return Ok(Err(cuda_err("record event", e))),
        };
        let start = Instant::now();
        let mut polls = 0u32;
        loop {
            let mut code = nsys::ncclResult_t::ncclSuccess;
            // SAFETY: valid communicator and out pointer.
            let _ = unsafe { nsys::ncclCommGetAsyncError(self.comm, &mut code) };
            match watch::decide(
                event.is_complete(),
                code as i32,
                start.elapsed(),
                self.timeout,
            ) {
                Watch::Done => return Ok(Ok(())),
                Watch::Wait => {
                    std::thread::sleep(watch::poll_interval(polls));
                    polls = polls.saturating_add(1);
                }
                why => {
                    self.abort();
                    return Err(Aborted(why));
                }
            }
        }
    }

    /// `ncclCommAbort`: the stuck kernels return, the communicator is unusable.
    pub fn abort(&mut self) {
        if !self.aborted {
            self.aborted = true;
            // SAFETY: valid communicator, aborted once.
            let _ = unsafe { nres::comm_abort(self.comm) };
        }
    }

    fn host_f32(&mut self, buf: &mut [f32], op: ReduceOp) -> Polled {
        let n = buf.len();
        if self.staging.as_ref().is_none_or(|s| s.len() < n) {
            match self.stream.alloc_zeros::<f32>(n) {
                Ok(s) => self.staging = Some(s),
                Err(e) => return Ok(Err(cuda_err("allocate staging", e))),
            }
        }
        let mut dev = self.staging.take().expect("allocated above");
        let res = self.host_f32_through(&mut dev, buf, op);
        self.staging = Some(dev);
        res
    }

    fn host_f32_through(
        &mut self,
        dev: &mut CudaSlice<f32>,
        buf: &mut [f32],
        op: ReduceOp,
    ) -> Polled {
        let n = buf.len();
        {
            let mut view = dev.slice_mut(0..n);
            if let Err(e) = self.stream.memcpy_htod(buf, &mut view) {
                return Ok(Err(cuda_err("copy to device", e)));
            }
        }
        if let Err(e) = self.all_reduce_prefix(dev, n, op)? {
            return Ok(Err(e));
        }
        let view = dev.slice(0..n);
        if let Err(e) = self.stream.memcpy_dtoh(&view, buf) {
            return Ok(Err(cuda_err("copy to host", e)));
        }
        Ok(self
            .stream
            .synchronize()
            .map_err(|e| cuda_err("synchronize", e)))
    }

    /// All-reduce the first `n` elements of `buf` in place.
    fn all_reduce_prefix<T: NcclType + DeviceRepr>(
        &mut self,
        buf: &mut CudaSlice<T>,
        n: usize,
        op: ReduceOp,
    ) -> Polled {
        if self.aborted {
            return Ok(Err(Error::Nccl {
                reason: "the communicator was aborted by an earlier failure".into(),
            }));
        }
        let stream = self.stream.clone();
        let enqueued = {
            let (ptr, _sync) = buf.device_ptr_mut(&stream);
            // SAFETY: `n` <= the buffer's length; in place on this communicator's stream.
            unsafe {
                nres::all_reduce(
                    ptr as *const std::ffi::c_void,
                    ptr as *mut std::ffi::c_void,
                    n,
                    T::as_nccl_type(),
                    nccl_op(op),
                    self.comm,
                    stream.cu_stream() as nsys::cudaStream_t,
                )
            }
        };
        if let Err(e) = enqueued {
            return Ok(Err(nccl_err("all_reduce", e)));
        }
        self.wait()
    }

    /// All-reduce `n` `f32` at device address `ptr` in place and wait for it — a buffer
    /// another CUDA library (burn's) allocated in this device's primary context, which
    /// cudarc's context shares.
    ///
    /// # Safety
    /// `ptr` must be the start of a device allocation of at least `n` `f32` on this
    /// communicator's device, kept alive and written by no other work until this
    /// returns (the caller synchronises its own streams first).
    pub unsafe fn all_reduce_raw_f32(&mut self, ptr: u64, n: usize, op: ReduceOp) -> Polled {
        if self.aborted {
            return Ok(Err(Error::Nccl {
                reason: "the communicator was aborted by an earlier failure".into(),
            }));
        }
        // SAFETY: the caller guarantees `ptr` holds `n` f32 on this device; in place on
        // this communicator's stream, waited for below.
        let enqueued = unsafe {
            nres::all_reduce(
                ptr as *const std::ffi::c_void,
                ptr as *mut std::ffi::c_void,
                n,
                f32::as_nccl_type(),
                nccl_op(op),
                self.comm,
                self.stream.cu_stream() as nsys::cudaStream_t,
            )
        };
        if let Err(e) = enqueued {
            return Ok(Err(nccl_err("all_reduce", e)));
        }
        self.wait()
    }

    fn host_typed<T: NcclType + DeviceRepr + Element>(
        &mut self,
        buf: &mut [T],
        op: ReduceOp,
    ) -> Polled {
        let int_mean = op == ReduceOp::Mean && T::CODE >= 3;
        let mut dev = match self.stream.clone_htod(buf) {
            Ok(d) => d,
            Err(e) => return Ok(Err(cuda_err("copy to device", e))),
        };
        let op = if int_mean { ReduceOp::Sum } else { op };
        if let Err(e) = self.all_reduce_device(&mut dev, op)? {
            return Ok(Err(e));
        }
        if let Err(e) = self.stream.memcpy_dtoh(&dev, buf) {
            return Ok(Err(cuda_err("copy to host", e)));
        }
        if let Err(e) = self.stream.synchronize() {
            return Ok(Err(cuda_err("synchronize", e)));
        }
        if int_mean {
            T::divide(buf, self.world_size);
        }
        Ok(Ok(()))
    }

    /// All-reduce a host buffer through the device: `f32` (the gradients) through the
    /// staging buffer allocated once, the small `f64`/`i64`/`u64` counters through a
    /// temporary one. `Err(Aborted)`: the communicator was aborted (see module docs).
    pub fn all_reduce_host<T: Element>(&mut self, buf: &mut [T], op: ReduceOp) -> Polled {
        if self.aborted {
            return Ok(Err(Error::Nccl {
                reason: "the communicator was aborted by an earlier failure".into(),
            }));
        }
        let bytes = as_bytes_mut(buf);
        macro_rules! typed {
            ($t:ty) => {{
                let n = bytes.len() / std::mem::size_of::<$t>();
                // SAFETY: `T::CODE` identifies `T` as exactly `$t`, so the cast is the identity.
                unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<$t>(), n) }
            }};
        }
        match T::CODE {
            1 => self.host_f32(typed!(f32), op),
            2 => self.host_typed::<f64>(typed!(f64), op),
            3 => self.host_typed::<i64>(typed!(i64), op),
            _ => self.host_typed::<u64>(typed!(u64), op),
        }
    }
}
