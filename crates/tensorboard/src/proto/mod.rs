//! The protobuf messages of TensorBoard's event files, as hand-written `prost`
//! structs (no `protoc` at build time; `tensorboard-rs` pulled protobuf 2 for this).
//!
//! # Layout
//! - `tensorboard.rs`: `Event`, `Summary`, `SummaryMetadata`, `HistogramProto`,
//!   `TensorProto`, `SessionLog` (`tensorboard/compat/proto/`).
//! - `plugins.rs`: hparams, PR-curve and text plugin data, `google.protobuf.Value`.

mod plugins;
mod tensorboard;

pub use plugins::*;
pub use tensorboard::*;
