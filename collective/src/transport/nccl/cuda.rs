//! The real NCCL communicator on cudarc.

use std::ffi::{CStr, CString};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DeviceRepr};
use cudarc::nccl::safe::{Comm, Id, NcclType, ReduceOp as NcclOp};

use crate::element::{Element, ReduceOp, as_bytes_mut};
use crate::error::{Error, Result};
use crate::group::{Device, GroupConfig};
use crate::store::StoreClient;

/// An NCCL communicator bound to one CUDA device and its default stream.
pub struct NcclComm {
    comm: Comm,
    stream: Arc<CudaStream>,
}

// SAFETY: an NCCL communicator may be driven from any thread as long as calls on it are
// not concurrent; `ProcessGroup` only reaches it through `&mut self`. cudarc binds the CUDA
// context to the calling thread on every stream operation.
unsafe impl Send for NcclComm {}

impl std::fmt::Debug for NcclComm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NcclComm")
            .field("rank", &self.comm.rank())
            .finish_non_exhaustive()
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

fn nccl_err(what: &str, e: cudarc::nccl::result::NcclError) -> Error {
    Error::Nccl {
        reason: format!("{what}: {:?}", e.0),
    }
}

fn cuda_err(what: &str, e: cudarc::driver::DriverError) -> Error {
    Error::Nccl {
        reason: format!("{what}: {e}"),
    }
}

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
            let id = guarded("ncclGetUniqueId", Id::new)?.map_err(|e| nccl_err("unique id", e))?;
            let bytes: Vec<u8> = id.internal().iter().map(|c| *c as u8).collect();
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
            Id::uninit(internal)
        };
        let s = stream.clone();
        let comm = guarded("ncclCommInitRank", move || {
            Comm::from_rank(s, cfg.rank, cfg.world_size, id)
        })?
        .map_err(|e| nccl_err("communicator", e))?;
        Ok(NcclComm { comm, stream })
    }

    /// The stream operations are issued on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// All-reduce a device buffer in place (asynchronous on [`NcclComm::stream`]).
    pub fn all_reduce_device<T: NcclType + DeviceRepr>(
        &mut self,
        buf: &mut CudaSlice<T>,
        op: ReduceOp,
    ) -> Result<()> {
        let nop = match op {
            ReduceOp::Sum => NcclOp::Sum,
            ReduceOp::Mean => NcclOp::Avg,
            ReduceOp::Max => NcclOp::Max,
            ReduceOp::Min => NcclOp::Min,
        };
        self.comm
            .all_reduce_in_place(buf, &nop)
            .map_err(|e| nccl_err("all_reduce", e))?;
        Ok(())
    }

    fn host_typed<T: NcclType + DeviceRepr + Element>(
        &mut self,
        buf: &mut [T],
        op: ReduceOp,
    ) -> Result<()> {
        let int_mean = op == ReduceOp::Mean && T::CODE >= 3;
        let mut dev = self
            .stream
            .clone_htod(buf)
            .map_err(|e| cuda_err("copy to device", e))?;
        self.all_reduce_device(&mut dev, if int_mean { ReduceOp::Sum } else { op })?;
        self.stream
            .memcpy_dtoh(&dev, buf)
            .map_err(|e| cuda_err("copy to host", e))?;
        self.stream
            .synchronize()
            .map_err(|e| cuda_err("synchronize", e))?;
        if int_mean {
            T::divide(buf, self.comm.world_size());
        }
        Ok(())
    }

    /// All-reduce a host buffer through the device (copy in, reduce, copy out).
    pub fn all_reduce_host<T: Element>(&mut self, buf: &mut [T], op: ReduceOp) -> Result<()> {
        let bytes = as_bytes_mut(buf);
        macro_rules! typed {
            ($t:ty) => {{
                let n = bytes.len() / std::mem::size_of::<$t>();
                // SAFETY: `T::CODE` identifies `T` as exactly `$t`, so the cast is the identity.
                let typed =
                    unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<$t>(), n) };
                self.host_typed::<$t>(typed, op)
            }};
        }
        match T::CODE {
            1 => typed!(f32),
            2 => typed!(f64),
            3 => typed!(i64),
            _ => typed!(u64),
        }
    }
}
