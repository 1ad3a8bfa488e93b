//! Integration tests of the model module: loading published formats, parity with
//! the reference implementations, one training step per fusion mode, freezing.

mod embed;
mod loading;
mod onnx;
mod parity;
mod training;
mod util;
