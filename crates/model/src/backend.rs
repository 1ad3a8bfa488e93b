//! The burn backends Vigil trains on, named in one place.
//!
//! The CPU default is [`burn::backend::Flex`]: on this model (MiniLM text tower,
//! batch 16 × 64 tokens, forward + backward + AdamW, one thread) it measured faster
//! than `ndarray` — see the model module's notes and the book's
//! `docs/src/explanations/performance.md` for the figures. Swapping
//! the CPU backend means changing [`CpuBackend`] here and nothing else.
//!
//! burn's ndarray backend is compiled only with the `bench-ndarray` feature, for
//! `vigil bench train --backend ndarray` side by side with Flex; nothing else uses it.
//!
//! CUDA (feature `cuda`) is one backend type: `train.precision: bf16 | f16` does not
//! pick another type (burn 0.21 tensors carry their dtype) but sets the device's
//! default float dtype before any tensor exists, so weights and activations are half
//! while the loss, master weights and AdamW moments stay f32 (`train/precision.rs`).
//! Code that needs CUDA is behind `#[cfg(feature = "cuda")]` so the default build
//! stays CPU-only.

/// The CPU backend for inference and as the inner backend of training.
pub type CpuBackend = burn::backend::Flex;

/// The CPU backend with automatic differentiation, for training.
pub type CpuAutodiff = burn::backend::Autodiff<CpuBackend>;

/// The other CPU backend, kept for side-by-side measurements (feature `bench-ndarray`).
#[cfg(feature = "bench-ndarray")]
pub type NdArrayBackend = burn::backend::NdArray<f32>;

/// [`NdArrayBackend`] with automatic differentiation.
#[cfg(feature = "bench-ndarray")]
pub type NdArrayAutodiff = burn::backend::Autodiff<NdArrayBackend>;

/// CUDA in f32 (`train.precision: f32`).
#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Cuda<f32, i32>;

/// CUDA f32 with automatic differentiation.
#[cfg(feature = "cuda")]
pub type CudaAutodiff = burn::backend::Autodiff<CudaBackend>;

/// Keeps freed tensor buffers inside the process (glibc only; a no-op elsewhere).
///
/// A training step allocates and frees the same activation and gradient buffers
/// every step. glibc's defaults hand large blocks back to the kernel (mmap/munmap,
/// heap trimming) and fault them in again zeroed the next step. Serving every
/// block from the heap (`M_MMAP_MAX = 0`; the threshold is raised too, for the
/// record) and disabling trimming makes the allocator reuse them, including the
/// 47 MB word-embedding-sized gradient and optimizer buffers of MiniLM (about
/// 3% off the MiniLM step for the threshold and trimming, AdamW 173 → 146 ms in
/// `vigil bench train --optim burn` for `M_MMAP_MAX`; peak RSS unchanged).
/// Call once at process start, before any tensor exists (workers, `vigil bench`,
/// `vigil embed`).
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before the
    // process allocates tensors and takes plain integers.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_MMAP_MAX, 0);
    }
}
