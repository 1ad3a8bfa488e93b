//! The names of the files of a model version: what a [`ModelRepo`](super::ModelRepo)
//! requires in every version ([`EXPORT_FILES`]), what the exporter writes and what
//! `vigil serve`, `vigil predict` and the report read.

/// Every weight of the model.
pub const MODEL_FILE: &str = "model.safetensors";
/// The whole model as an ONNX graph (`export.onnx: true`, the default).
pub const ONNX_FILE: &str = "model.onnx";
/// The model and data sections plus serving metadata.
pub const CONFIG_FILE: &str = "config.json";
/// The text tower's BERT configuration (only with a text tower).
pub const TEXT_CONFIG_FILE: &str = "text_config.json";
/// The tokenizer (`null` without a text tower).
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// Label names in logit order.
pub const LABELS_FILE: &str = "labels.json";
/// Per-label decision thresholds.
pub const THRESHOLDS_FILE: &str = "thresholds.json";
/// The exported evaluation's metrics.
pub const METRICS_FILE: &str = "metrics.json";

/// Files every export version contains, in the order they are written.
pub const EXPORT_FILES: [&str; 6] = [
    MODEL_FILE,
    CONFIG_FILE,
    TOKENIZER_FILE,
    LABELS_FILE,
    THRESHOLDS_FILE,
    METRICS_FILE,
];
