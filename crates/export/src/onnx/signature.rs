//! The graph's inputs and outputs: names, element types and shapes, defined once
//! for the ONNX graph, the version's `config.json` and Triton's `config.pbtxt`.
//!
//! A text tower brings `input_ids`, `attention_mask` (int64 `[batch, seq]`) and
//! `has_text` (bool `[batch]`); an image tower `pixel_values` (float32 `[batch,
//! 3, S, S]`, resized and ImageNet-normalised) and `has_image`. The output is
//! `scores` (float32 `[batch, labels]`, after the sigmoid or softmax).

use super::graph::Dim;
use super::proto;

/// An element type of an input or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    /// 64-bit integers (token ids, masks).
    Int64,
    /// 32-bit floats.
    Float32,
    /// Booleans (modality presence).
    Bool,
}

impl ElemType {
    /// The `TensorProto.DataType` code.
    pub fn onnx(self) -> i32 {
        match self {
            Self::Int64 => proto::INT64,
            Self::Float32 => proto::FLOAT,
            Self::Bool => proto::BOOL,
        }
    }

    /// The numpy name (`config.json`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Int64 => "int64",
            Self::Float32 => "float32",
            Self::Bool => "bool",
        }
    }

    /// Triton's `DataType` name.
    pub fn triton(self) -> &'static str {
        match self {
            Self::Int64 => "TYPE_INT64",
            Self::Float32 => "TYPE_FP32",
            Self::Bool => "TYPE_BOOL",
        }
    }
}

/// One input or output.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// Its name in the graph.
    pub name: &'static str,
    /// Element type.
    pub dtype: ElemType,
    /// Shape; the first axis is always the dynamic `batch`.
    pub shape: Vec<Dim>,
}

/// The inputs and outputs of a model's graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    /// Inputs, text first.
    pub inputs: Vec<TensorSpec>,
    /// Outputs (`scores`).
    pub outputs: Vec<TensorSpec>,
}

/// `input_ids`.
pub const INPUT_IDS: &str = "input_ids";
/// `attention_mask`.
pub const ATTENTION_MASK: &str = "attention_mask";
/// `has_text`.
pub const HAS_TEXT: &str = "has_text";
/// `pixel_values`.
pub const PIXEL_VALUES: &str = "pixel_values";
/// `has_image`.
pub const HAS_IMAGE: &str = "has_image";
/// `scores`.
pub const SCORES: &str = "scores";

impl Signature {
    /// The signature of a model with the given towers, `image_size` and labels.
    pub fn of(text: bool, image: bool, image_size: u32, labels: usize) -> Self {
        let batch = Dim::Named("batch");
        let seq = Dim::Named("seq");
        let spec = |name, dtype, shape| TensorSpec { name, dtype, shape };
        let mut inputs = Vec::new();
        if text {
            inputs.push(spec(
                INPUT_IDS,
                ElemType::Int64,
                vec![batch.clone(), seq.clone()],
            ));
            inputs.push(spec(
                ATTENTION_MASK,
                ElemType::Int64,
                vec![batch.clone(), seq],
            ));
            inputs.push(spec(HAS_TEXT, ElemType::Bool, vec![batch.clone()]));
        }
        if image {
            let s = Dim::Fixed(i64::from(image_size));
            inputs.push(spec(
                PIXEL_VALUES,
                ElemType::Float32,
                vec![batch.clone(), Dim::Fixed(3), s.clone(), s],
            ));
            inputs.push(spec(HAS_IMAGE, ElemType::Bool, vec![batch.clone()]));
        }
        let outputs = vec![spec(
            SCORES,
            ElemType::Float32,
            vec![batch, Dim::Fixed(labels as i64)],
        )];
        Self { inputs, outputs }
    }

    /// `{"inputs": [{"name", "dtype", "shape"}], "outputs": [...]}`, dynamic axes
    /// by name (`"batch"`, `"seq"`).
    pub fn to_json(&self) -> serde_json::Value {
        let list = |specs: &[TensorSpec]| {
            specs
                .iter()
                .map(|s| {
                    let shape: Vec<serde_json::Value> = s
                        .shape
                        .iter()
                        .map(|d| match d {
                            Dim::Fixed(n) => (*n).into(),
                            Dim::Named(n) => (*n).into(),
                        })
                        .collect();
                    serde_json::json!({ "name": s.name, "dtype": s.dtype.name(), "shape": shape })
                })
                .collect::<Vec<_>>()
        };
        serde_json::json!({ "inputs": list(&self.inputs), "outputs": list(&self.outputs) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_tower_model_has_only_its_inputs() {
        let names = |s: &Signature| s.inputs.iter().map(|i| i.name).collect::<Vec<_>>();
        assert_eq!(
            names(&Signature::of(true, false, 32, 2)),
            [INPUT_IDS, ATTENTION_MASK, HAS_TEXT]
        );
        assert_eq!(
            names(&Signature::of(false, true, 32, 2)),
            [PIXEL_VALUES, HAS_IMAGE]
        );
        let both = Signature::of(true, true, 96, 5);
        assert_eq!(both.inputs.len(), 5);
        let json = both.to_json();
        assert_eq!(
            json["inputs"][3]["shape"],
            serde_json::json!(["batch", 3, 96, 96])
        );
        assert_eq!(json["outputs"][0]["shape"], serde_json::json!(["batch", 5]));
        assert_eq!(json["inputs"][2]["dtype"], "bool");
    }
}
