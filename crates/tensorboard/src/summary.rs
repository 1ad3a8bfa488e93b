//! Summary values for each dashboard: pure constructors of `Summary.Value` protos,
//! with the plugin metadata TensorBoard's plugins look for.
//!
//! Scalars use `simple_value` and histograms `HistogramProto`, the legacy forms
//! every reader (Python `EventAccumulator`, the Rust data server) migrates itself.
//! Text and PR curves are tensors whose metadata names the plugin and sets
//! `DATA_CLASS_TENSOR`, so the data server serves them without guessing.

use prost::Message;

use crate::histogram::Histogram;
use crate::pr_curve::PrCurve;
use crate::proto::summary::{self, value};
use crate::proto::summary_metadata::PluginData;
use crate::proto::{
    DataClass, DataType, PrCurvePluginData, SummaryMetadata, TensorProto, TensorShapeProto,
    TextPluginData,
};

/// Plugin name of the text dashboard.
pub const TEXT_PLUGIN: &str = "text";
/// Plugin name of the PR-curves dashboard.
pub const PR_CURVES_PLUGIN: &str = "pr_curves";

/// Metadata naming `plugin` with its serialized `content`, tensor data class.
pub fn tensor_metadata(plugin: &str, content: Vec<u8>) -> SummaryMetadata {
    SummaryMetadata {
        plugin_data: Some(PluginData {
            plugin_name: plugin.to_owned(),
            content,
        }),
        display_name: String::new(),
        summary_description: String::new(),
        data_class: DataClass::Tensor as i32,
    }
}

/// A scalar for the scalars dashboard (stored as float32, as TensorBoard does).
pub fn scalar_value(tag: &str, value: f64) -> summary::Value {
    summary::Value {
        tag: tag.to_owned(),
        metadata: None,
        value: Some(value::Value::SimpleValue(value as f32)),
    }
}

/// A histogram for the histograms and distributions dashboards.
pub fn histogram_value(tag: &str, histogram: &Histogram) -> summary::Value {
    summary::Value {
        tag: tag.to_owned(),
        metadata: None,
        value: Some(value::Value::Histo(histogram.to_proto())),
    }
}

/// An encoded PNG for the images dashboard (the legacy `Summary.Image` form,
/// which every reader migrates to the images plugin). `colorspace` 3 is RGB.
pub fn image_value(
    tag: &str,
    png: &[u8],
    width: u32,
    height: u32,
    colorspace: i32,
) -> summary::Value {
    summary::Value {
        tag: tag.to_owned(),
        metadata: None,
        value: Some(value::Value::Image(summary::Image {
            height: i32::try_from(height).unwrap_or(i32::MAX),
            width: i32::try_from(width).unwrap_or(i32::MAX),
            colorspace,
            encoded_image_string: png.to_vec(),
        })),
    }
}

/// Markdown for the text dashboard: a rank-0 string tensor.
pub fn text_value(tag: &str, markdown: &str) -> summary::Value {
    summary::Value {
        tag: tag.to_owned(),
        metadata: Some(tensor_metadata(
            TEXT_PLUGIN,
            TextPluginData { version: 0 }.encode_to_vec(),
        )),
        value: Some(value::Value::Tensor(TensorProto {
            dtype: DataType::DtString as i32,
            tensor_shape: Some(TensorShapeProto::of(&[])),
            string_val: vec![markdown.as_bytes().to_vec()],
            ..Default::default()
        })),
    }
}

/// A PR curve for the PR-curves dashboard.
pub fn pr_curve_value(tag: &str, curve: &PrCurve) -> summary::Value {
    summary::Value {
        tag: tag.to_owned(),
        metadata: Some(tensor_metadata(
            PR_CURVES_PLUGIN,
            PrCurvePluginData {
                version: 0,
                num_thresholds: curve.num_thresholds,
            }
            .encode_to_vec(),
        )),
        value: Some(value::Value::Tensor(curve.to_tensor())),
    }
}

/// Wraps YAML (or any preformatted text) in a fenced block, so the text
/// dashboard's markdown renderer keeps its indentation.
pub fn code_block(language: &str, text: &str) -> String {
    let fence = if text.contains("```") { "~~~~" } else { "```" };
    let newline = if text.ends_with('\n') { "" } else { "\n" };
    format!("{fence}{language}\n{text}{newline}{fence}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_a_rank0_string_tensor_for_the_text_plugin() {
        let v = text_value("config", "a: 1");
        let md = v.metadata.unwrap();
        assert_eq!(md.plugin_data.unwrap().plugin_name, "text");
        assert_eq!(md.data_class, DataClass::Tensor as i32);
        let Some(value::Value::Tensor(t)) = v.value else {
            panic!("not a tensor")
        };
        assert_eq!(t.dtype, DataType::DtString as i32);
        assert!(t.tensor_shape.unwrap().dim.is_empty());
        assert_eq!(t.string_val, vec![b"a: 1".to_vec()]);
    }

    #[test]
    fn code_block_fences_text() {
        assert_eq!(code_block("yaml", "a: 1\n"), "```yaml\na: 1\n```\n");
        assert_eq!(code_block("", "x ```"), "~~~~\nx ```\n~~~~\n");
    }
}
