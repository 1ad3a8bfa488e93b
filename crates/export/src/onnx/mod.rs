//! `model.onnx`: the whole trained model — towers, fusion, head and the final
//! sigmoid or softmax — as an ONNX graph that Triton's ONNX Runtime backend,
//! KServe or any ONNX Runtime service loads, with scores equal to `vigil
//! predict`'s (the parity tests hold them within 1e-4).
//!
//! # Layout
//! - [`proto`]: the `onnx.proto` messages, hand-written `prost` structs.
//! - [`graph`]: a small builder (fresh names, initializers from burn tensors,
//!   linear / layer norm / convolution helpers).
//! - [`text`], [`image`]: one emitter per tower; [`model`]: fusion, head, inputs,
//!   outputs and metadata, and [`to_onnx`], the entry point.
//! - [`signature`]: the input and output names, dtypes and shapes — one
//!   definition for the graph, `config.json` and Triton's `config.pbtxt`.
//! - [`triton`]: `config.pbtxt` and `labels.txt` of the model repository.
//!
//! Why our own writer: the graph is a fixed, small vocabulary of opset-17
//! operators (`LayerNormalization` exists from 17) and every weight is already a
//! burn tensor; a converter would need a traced framework graph we do not have.
//! Each emitter reads the same module fields the burn forward uses and writes the
//! same arithmetic in the same order (BatchNorm as the same folded scale and
//! shift, the attention mask as the same −1e4 bias), so the two agree to float
//! rounding. Weights are initializers inside the file: protobuf caps a message
//! at 2 GB and the largest supported model (MiniLM + EfficientNet-B0) is about
//! 110 MB, so external data files are not needed now.

pub mod deberta;
pub mod graph;
pub mod image;
pub mod model;
pub mod proto;
pub mod signature;
pub mod text;
pub mod triton;
pub mod vision;

pub use model::{IR_VERSION, OPSET, to_onnx};
pub use signature::{ElemType, Signature, TensorSpec};

/// Why a model could not be written as ONNX.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// A weight could not be read back as `f32`.
    #[error("weight '{name}' could not be read as f32 values")]
    Tensor {
        /// The initializer being written.
        name: String,
        /// burn's error.
        #[source]
        source: burn::tensor::DataError,
    },
    /// A layer configuration the exporter does not write.
    #[error("cannot export to ONNX: {0}")]
    Unsupported(String),
}
