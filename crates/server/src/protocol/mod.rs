//! The KServe v2 / Open Inference Protocol request and response bodies, with
//! Triton's binary tensor data extension — parsing and validation without I/O.
//!
//! A request body is a JSON header, optionally followed by raw tensor bytes: the
//! header's length is `Inference-Header-Content-Length`, and each input whose
//! `parameters.binary_data_size` is set takes that many bytes from the tail, in
//! input order. A BYTES tensor's raw form is each element as a 4-byte
//! little-endian length and its bytes (Triton's serialisation, what `tritonclient`
//! sends by default). In the JSON form a BYTES element is a string: the text
//! itself for `text`, base64 of the encoded image file for `image`.
//!
//! An output is returned raw (FP32 little-endian, BOOL one byte per element) when
//! its `parameters.binary_data` is true, or, for outputs without that parameter,
//! when the request's `parameters.binary_data_output` is. Every check here names
//! the input (or output) and, where it is about one element, the row: the HTTP
//! layer turns [`BadInput`] into a 400 with that message. `/v1/moderate`'s
//! plain JSON body is parsed beside it, in `moderate.rs`, into the same [`Rows`].
//!
//! # Layout
//! - `bad_input.rs`: [`BadInput`], the 400 every check returns.
//! - `request.rs`: [`parse_infer`] — the infer body's JSON header, its inputs and
//!   its binary tail, into an [`InferRequest`].
//! - `tensor.rs`: one BYTES tensor's elements, from JSON `data` or from Triton's
//!   binary form ([`split_bytes`](tensor::split_bytes), [`join_bytes`]).
//! - `rows.rs`: [`Rows`] — texts from raw elements, and the inputs combined into rows.
//! - `response.rs`: the outputs asked for ([`OutputSpec`]) and the response
//!   that carries them ([`encode_response`]).
//! - `recall.rs`: the `<model>-recall` model's body — the same rows, a bounded
//!   `k` — and its neighbours as outputs ([`parse_recall`], [`encode_recall`]).

mod bad_input;
mod recall;
mod request;
mod response;
mod rows;
mod tensor;

pub use bad_input::BadInput;
pub(crate) use recall::{DEFAULT_K, IDS, SCORE, SIMILARITY};
pub use recall::{Neighbour, RecallHeader, choose_label, encode_recall, parse_recall};
pub use request::{InferRequest, parse_infer};
pub use response::{Encoded, OutputSpec, encode_response};
pub(crate) use rows::to_texts;
pub use rows::{Rows, combine};
pub use tensor::join_bytes;
pub(crate) use tensor::json_element;

/// Which towers the loaded version runs: which inputs it accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Towers {
    /// The model has a text tower (input `text`).
    pub text: bool,
    /// The model has an image tower (input `image`).
    pub image: bool,
}

/// The input names, datatypes and output names of the protocol.
pub const TEXT: &str = "text";
/// Encoded image files, one per row.
pub const IMAGE: &str = "image";
/// Probabilities `[n, labels]`.
pub const SCORES: &str = "scores";
/// Decisions at the shipped thresholds `[n, labels]`.
pub const DECISIONS: &str = "decisions";
