//! The model repository's Triton files: `<export.dir>/<model_name>/config.pbtxt`
//! (protobuf text format of Triton's `ModelConfig`) and `labels.txt` (one label
//! per line, the output's classification labels).
//!
//! Triton counts the batch axis outside `dims` when `max_batch_size > 0`, so
//! `input_ids` is `dims: [-1]` and the per-row flags `has_text` / `has_image` are
//! `dims: [1]` reshaped to scalars (`reshape: { shape: [] }`) to give the graph
//! its `[batch]` bool. Only the newest version is served
//! (`version_policy: { latest { num_versions: 1 } }`), matching `vigil predict`.

use super::graph::Dim;
use super::signature::Signature;

/// Triton's file name.
pub const CONFIG_PBTXT: &str = "config.pbtxt";
/// The output's label file.
pub const LABELS_TXT: &str = "labels.txt";
/// `max_batch_size` written (Triton's dynamic batcher merges requests up to it).
pub const MAX_BATCH_SIZE: u32 = 64;

pub use vigil_config::TritonInstance as Instance;

fn dims(shape: &[Dim]) -> String {
    // The first axis is the batch (implicit for Triton).
    let d: Vec<String> = shape[1..]
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => n.to_string(),
            Dim::Named(_) => "-1".to_string(),
        })
        .collect();
    if d.is_empty() {
        "dims: [ 1 ]\n    reshape: { shape: [ ] }".into()
    } else {
        format!("dims: [ {} ]", d.join(", "))
    }
}

/// The text of `config.pbtxt` for model `name` with `sig`.
pub fn config_pbtxt(name: &str, sig: &Signature, instance: Instance) -> String {
    let entries = |specs: &[super::TensorSpec], labels: bool| {
        specs
            .iter()
            .map(|s| {
                let label = if labels {
                    format!("\n    label_filename: \"{LABELS_TXT}\"")
                } else {
                    String::new()
                };
                format!(
                    "  {{\n    name: \"{}\"\n    data_type: {}\n    {}{label}\n  }}",
                    s.name,
                    s.dtype.triton(),
                    dims(&s.shape)
                )
            })
            .collect::<Vec<_>>()
            .join(",\n")
    };
    let kind = match instance {
        Instance::Cpu => "KIND_CPU",
        Instance::Gpu => "KIND_GPU",
    };
    format!(
        "# Written by vigil: the ONNX Runtime backend serves <version>/model.onnx.\n\
         name: \"{name}\"\n\
         platform: \"onnxruntime_onnx\"\n\
         default_model_filename: \"model.onnx\"\n\
         max_batch_size: {MAX_BATCH_SIZE}\n\
         version_policy: {{ latest {{ num_versions: 1 }} }}\n\
         input [\n{}\n]\n\
         output [\n{}\n]\n\
         dynamic_batching {{ }}\n\
         instance_group [ {{ kind: {kind} count: 1 }} ]\n",
        entries(&sig.inputs, false),
        entries(&sig.outputs, true),
    )
}

/// The text of `labels.txt`: the labels in output order, one per line.
pub fn labels_txt(labels: &[String]) -> String {
    labels.iter().map(|l| format!("{l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_reshaped_scalars_and_the_batch_axis_is_implicit() {
        let text = config_pbtxt("tiny", &Signature::of(true, true, 32, 5), Instance::Cpu);
        assert!(text.contains("platform: \"onnxruntime_onnx\""));
        assert!(text.contains("name: \"input_ids\"\n    data_type: TYPE_INT64\n    dims: [ -1 ]"));
        assert!(text.contains(
            "name: \"has_image\"\n    data_type: TYPE_BOOL\n    dims: [ 1 ]\n    reshape: { shape: [ ] }"
        ));
        assert!(text.contains("dims: [ 3, 32, 32 ]"));
        assert!(text.contains("dims: [ 5 ]\n    label_filename: \"labels.txt\""));
        assert!(text.contains("kind: KIND_CPU"));
        let gpu = config_pbtxt("tiny", &Signature::of(false, true, 32, 5), Instance::Gpu);
        assert!(gpu.contains("kind: KIND_GPU") && !gpu.contains("input_ids"));
        assert_eq!(labels_txt(&["a".into(), "b".into()]), "a\nb\n");
    }
}
