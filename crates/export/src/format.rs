//! The files of an export version, their names and formats, written and read by
//! this one module.
//!
//! ```text
//! <version>/
//!   model.onnx          the whole model as ONNX (export.onnx: true)
//!   model.safetensors   every weight (burn names), canonical byte order  ┐ written by
//!   config.json         {model, data} sections + serving metadata below  │ ModerationModel::
//!   text_config.json    the BERT shape (with a text tower)               │ write_model_files,
//!   tokenizer.json      the tokenizer, or `null` without a text tower    │ read back by
//!   labels.json         label names in logit order                       ┘ ::from_export
//!   thresholds.json     {label: decision threshold}
//!   metrics.json        {val/* metric: value} of the evaluation exported
//!   MANIFEST.json       sha256 of each file (the store writes it last)
//! ```
//!
//! [`VersionFiles::build`] turns the model's own files plus a [`ServingInfo`],
//! the thresholds and the metrics into the list a store publishes;
//! [`VersionFiles::read`] parses a version directory back into what a serving
//! process needs beside the weights (the `data` section that fixes
//! preprocessing, the thresholds in label order, the metrics). The training
//! export (`train::publish`), `vigil predict` / `vigil eval` / `vigil embed`
//! (`serve`) and the repository's completeness check ([`EXPORT_FILES`]) all use
//! these names, so a file renamed here is renamed everywhere.
//!
//! The model's part (weights, architecture, tokenizer, labels) stays with the
//! model code that produces and loads it; this module adds the serving metadata
//! and never reinterprets the model's sections.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vigil_config::{DataSection, ImageFilter, ImageResize, ImageTransform, Task};

pub use vigil_store::repo::files::{
    CONFIG_FILE, EXPORT_FILES, LABELS_FILE, METRICS_FILE, MODEL_FILE, ONNX_FILE, TEXT_CONFIG_FILE,
    THRESHOLDS_FILE, TOKENIZER_FILE,
};

/// `config.json`'s `format` value.
pub const FORMAT: &str = "vigil-moderation";
/// `config.json`'s `format_version` value.
pub const FORMAT_VERSION: u64 = 1;

/// A file of a version that cannot be written or used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct ExportFileError {
    /// The file (a version directory's file, or its name while building).
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

impl ExportFileError {
    fn new(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// What `config.json` records for a serving process beside the model's sections.
#[derive(Debug, Clone, PartialEq)]
pub struct ServingInfo {
    /// `run.name` of the run that trained it.
    pub run: String,
    /// The training step exported.
    pub step: u64,
    /// Label names in logit order.
    pub labels: Vec<String>,
    /// Multi-label or multi-class.
    pub task: Task,
    /// `data.max_text_len`.
    pub max_text_len: usize,
    /// `data.image_size`.
    pub image_size: u32,
    /// `data.image_transform` as trained (Vigil's own when unset).
    pub image_transform: ImageTransform,
    /// Whether the model has a text tower (and so a real `tokenizer.json`).
    pub has_tokenizer: bool,
    /// Whether rows are padded to `max_text_len` (SigLIP) rather than to the
    /// batch's longest row.
    pub pad_to_max_len: bool,
}

/// The files of one version, by name.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionFiles {
    /// `(name, bytes)` in publishing order.
    pub files: Vec<(String, Vec<u8>)>,
}

/// What a serving process reads from a version besides the weights.
#[derive(Debug, Clone, PartialEq)]
pub struct ServingFiles {
    /// The export's `data` section: format, text and image preprocessing.
    pub data: DataSection,
    /// One threshold per label, in label order.
    pub thresholds: Vec<f32>,
    /// `metrics.json`.
    pub metrics: BTreeMap<String, f64>,
}

impl VersionFiles {
    /// The version's files: the model's own (`model_files`, as its
    /// `write_model_files` wrote them, sorted by name) with the serving metadata
    /// added to `config.json`, a `null` `tokenizer.json` when the model has no
    /// text tower, then `thresholds.json` and `metrics.json`.
    pub fn build(
        mut model_files: Vec<(String, Vec<u8>)>,
        info: &ServingInfo,
        thresholds: &[(String, f32)],
        metrics: &BTreeMap<String, f64>,
    ) -> Result<Self, ExportFileError> {
        model_files.sort_by(|a, b| a.0.cmp(&b.0));
        let mut files = Vec::with_capacity(model_files.len() + 3);
        let mut has_config = false;
        for (name, bytes) in model_files {
            let bytes = if name == CONFIG_FILE {
                has_config = true;
                serving_config(&bytes, info)?
            } else {
                bytes
            };
            files.push((name, bytes));
        }
        if !has_config {
            return Err(ExportFileError::new(
                CONFIG_FILE,
                "the model wrote no config.json",
            ));
        }
        if !info.has_tokenizer {
            files.push((TOKENIZER_FILE.to_string(), b"null\n".to_vec()));
        }
        let thresholds: BTreeMap<&str, f32> =
            thresholds.iter().map(|(l, t)| (l.as_str(), *t)).collect();
        files.push((
            THRESHOLDS_FILE.to_string(),
            pretty(&serde_json::json!(thresholds)),
        ));
        files.push((
            METRICS_FILE.to_string(),
            pretty(&serde_json::json!(metrics)),
        ));
        Ok(Self { files })
    }

    /// Adds `model.onnx` (`bytes`) and records its inputs and outputs
    /// (`signature`, [`crate::onnx::Signature::to_json`]) in
    /// `config.json` under `"onnx"`.
    pub fn with_onnx(
        mut self,
        bytes: Vec<u8>,
        signature: serde_json::Value,
    ) -> Result<Self, ExportFileError> {
        let config = self
            .files
            .iter_mut()
            .find(|(name, _)| name == CONFIG_FILE)
            .ok_or_else(|| ExportFileError::new(CONFIG_FILE, "the version has no config.json"))?;
        let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&config.1)
            .map_err(|e| {
            ExportFileError::new(CONFIG_FILE, format!("not a JSON object: {e}"))
        })?;
        let mut onnx = match signature {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        onnx.insert("file".into(), ONNX_FILE.into());
        onnx.insert("opset".into(), crate::onnx::OPSET.into());
        v.insert("onnx".into(), onnx.into());
        config.1 = pretty(&v);
        self.files.retain(|(name, _)| name != ONNX_FILE);
        self.files.push((ONNX_FILE.to_string(), bytes));
        Ok(self)
    }

    /// Parses the serving files of the version directory `dir` for a model with
    /// `labels` (the thresholds must cover exactly those).
    pub fn read(dir: &Path, labels: &[String]) -> Result<ServingFiles, ExportFileError> {
        Ok(ServingFiles {
            data: read_data_section(dir)?,
            thresholds: read_thresholds(dir, labels)?,
            metrics: read_metrics(dir)?,
        })
    }
}

fn pretty<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(value).expect("json serializes")
}

/// The model's `config.json` plus what a serving process needs to know.
fn serving_config(model_config: &[u8], info: &ServingInfo) -> Result<Vec<u8>, ExportFileError> {
    let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(model_config)
        .map_err(|e| {
            ExportFileError::new(
                CONFIG_FILE,
                format!("the model wrote a bad config.json: {e}"),
            )
        })?;
    v.insert("format".into(), FORMAT.into());
    v.insert("format_version".into(), FORMAT_VERSION.into());
    v.insert("run".into(), info.run.clone().into());
    v.insert("step".into(), info.step.into());
    v.insert("labels".into(), serde_json::json!(info.labels));
    v.insert("task".into(), info.task.as_str().into());
    v.insert("preprocessing".into(), preprocessing(info));
    Ok(pretty(&v))
}

/// The preprocessing a client must reproduce: `config.json`'s `"preprocessing"`
/// and the ONNX file's metadata.
pub fn preprocessing(info: &ServingInfo) -> serde_json::Value {
    let t = &info.image_transform;
    serde_json::json!({
        "max_text_len": info.max_text_len,
        "text_padding": if info.pad_to_max_len { "max_length" } else { "longest" },
        "tokenizer": info.has_tokenizer.then_some(TOKENIZER_FILE),
        "image_size": info.image_size,
        "image_resize": match t.resize {
            ImageResize::Square => "exact square".to_string(),
            ImageResize::ShortestEdge => format!(
                "shortest edge to {}, centre crop",
                t.shortest_edge.unwrap_or(info.image_size)
            ),
        },
        "image_filter": match t.filter {
            ImageFilter::Triangle => "triangle (Vigil's, float)",
            ImageFilter::Bilinear => "bilinear (Pillow)",
            ImageFilter::Bicubic => "bicubic (Pillow)",
        },
        // The words of `data.image_transform` (its mean and std are the two
        // decimal lists above).
        "image_transform": {
            "resize": t.resize.as_str(),
            "shortest_edge": t.shortest_edge,
            "filter": t.filter.as_str(),
        },
        "image_mean": t.mean.map(decimal),
        "image_std": t.std.map(decimal),
    })
}

/// The f64 of an f32 constant's shortest decimal (`0.485`, not the widened
/// `0.48500001430511475`), so `config.json` shows the constants as written.
fn decimal(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

fn read_text(path: &Path) -> Result<String, ExportFileError> {
    std::fs::read_to_string(path).map_err(|e| ExportFileError::new(path, e.to_string()))
}

/// The `data` section of a version's `config.json`.
pub fn read_data_section(dir: &Path) -> Result<DataSection, ExportFileError> {
    let path = dir.join(CONFIG_FILE);
    let bad = |message: String| ExportFileError::new(&path, message);
    let v: serde_json::Value =
        serde_json::from_str(&read_text(&path)?).map_err(|e| bad(e.to_string()))?;
    let data = v
        .get("data")
        .cloned()
        .ok_or_else(|| bad("has no \"data\" section".into()))?;
    serde_json::from_value(data).map_err(|e| bad(format!("\"data\": {e}")))
}

/// `thresholds.json`: `{label: threshold}` for exactly the model's labels, in
/// label order.
pub fn read_thresholds(dir: &Path, labels: &[String]) -> Result<Vec<f32>, ExportFileError> {
    let path = dir.join(THRESHOLDS_FILE);
    parse_thresholds(&read_text(&path)?, labels).map_err(|m| ExportFileError::new(&path, m))
}

/// `metrics.json`: `{metric: value}`.
pub fn read_metrics(dir: &Path) -> Result<BTreeMap<String, f64>, ExportFileError> {
    let path = dir.join(METRICS_FILE);
    serde_json::from_str(&read_text(&path)?)
        .map_err(|e| ExportFileError::new(&path, format!("not a JSON object of metrics: {e}")))
}

/// Parses `thresholds.json` text against `labels`.
pub fn parse_thresholds(text: &str, labels: &[String]) -> Result<Vec<f32>, String> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON object of thresholds: {e}"))?;
    if let Some(extra) = map.keys().find(|k| !labels.contains(k)) {
        return Err(format!(
            "threshold for '{extra}', which is not a label of the model ({})",
            labels.join(", ")
        ));
    }
    labels
        .iter()
        .map(|l| match map.get(l).and_then(serde_json::Value::as_f64) {
            Some(t) if (0.0..=1.0).contains(&t) => Ok(t as f32),
            Some(t) => Err(format!("threshold of '{l}' is {t}, outside [0, 1]")),
            None => Err(format!("no numeric threshold for label '{l}'")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_config::ModelSection;

    fn labels() -> Vec<String> {
        vec!["hate".into(), "spam".into()]
    }

    fn info(has_tokenizer: bool) -> ServingInfo {
        ServingInfo {
            run: "r".into(),
            step: 40,
            labels: labels(),
            task: Task::MultiLabel,
            max_text_len: 64,
            image_size: 96,
            image_transform: Default::default(),
            pad_to_max_len: false,
            has_tokenizer,
        }
    }

    /// What `ModerationModel::write_model_files` writes, in miniature.
    fn model_files(data: &DataSection) -> Vec<(String, Vec<u8>)> {
        let config = serde_json::json!({ "model": ModelSection::default(), "data": data });
        vec![
            (MODEL_FILE.into(), b"weights".to_vec()),
            (LABELS_FILE.into(), pretty(&labels())),
            (CONFIG_FILE.into(), pretty(&config)),
        ]
    }

    #[test]
    fn a_built_version_reads_back() {
        let data = DataSection {
            image_size: 96,
            max_text_len: 64,
            ..DataSection::default()
        };
        let metrics = BTreeMap::from([("val/macro_auroc".to_string(), 0.75)]);
        let thresholds = [("spam".to_string(), 0.25), ("hate".to_string(), 0.5)];
        let built =
            VersionFiles::build(model_files(&data), &info(false), &thresholds, &metrics).unwrap();
        let names: Vec<&str> = built.files.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(
            names,
            [
                CONFIG_FILE,
                LABELS_FILE,
                MODEL_FILE,
                TOKENIZER_FILE,
                THRESHOLDS_FILE,
                METRICS_FILE
            ]
        );
        for required in EXPORT_FILES {
            assert!(names.contains(&required), "{required} is written");
        }
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in &built.files {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let read = VersionFiles::read(dir.path(), &labels()).unwrap();
        assert_eq!(read.data, data);
        assert_eq!(read.thresholds, vec![0.5, 0.25]);
        assert_eq!(read.metrics, metrics);
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(CONFIG_FILE)).unwrap()).unwrap();
        assert_eq!(config["format"], FORMAT);
        assert_eq!(config["step"], 40);
        assert_eq!(
            config["preprocessing"]["tokenizer"],
            serde_json::Value::Null
        );
        assert_eq!(config["preprocessing"]["image_size"], 96);
        assert_eq!(
            config["preprocessing"]["image_mean"],
            serde_json::json!([0.485, 0.456, 0.406])
        );
        assert!(
            config.get("model").is_some(),
            "the model's sections are kept"
        );
    }

    #[test]
    fn with_onnx_adds_the_file_and_its_signature_to_config_json() {
        let built = VersionFiles::build(
            model_files(&DataSection::default()),
            &info(false),
            &[],
            &BTreeMap::new(),
        )
        .unwrap();
        let sig = serde_json::json!({ "inputs": [{"name": "pixel_values"}], "outputs": [] });
        let built = built
            .clone()
            .with_onnx(b"onnx".to_vec(), sig.clone())
            .unwrap()
            .with_onnx(b"onnx2".to_vec(), sig)
            .unwrap();
        let onnx: Vec<&Vec<u8>> = built
            .files
            .iter()
            .filter(|f| f.0 == ONNX_FILE)
            .map(|f| &f.1)
            .collect();
        assert_eq!(onnx, [&b"onnx2".to_vec()], "one model.onnx, the last");
        let config = &built.files.iter().find(|f| f.0 == CONFIG_FILE).unwrap().1;
        let config: serde_json::Value = serde_json::from_slice(config).unwrap();
        assert_eq!(config["onnx"]["file"], ONNX_FILE);
        assert_eq!(config["onnx"]["opset"], crate::onnx::OPSET);
        assert_eq!(config["onnx"]["inputs"][0]["name"], "pixel_values");
        assert_eq!(config["format"], FORMAT, "the serving metadata stays");
    }

    #[test]
    fn the_tokenizer_is_the_models_when_it_has_one() {
        let mut files = model_files(&DataSection::default());
        files.push((TOKENIZER_FILE.into(), b"{\"real\": 1}".to_vec()));
        let built = VersionFiles::build(files, &info(true), &[], &BTreeMap::new()).unwrap();
        let toks: Vec<&Vec<u8>> = built
            .files
            .iter()
            .filter(|f| f.0 == TOKENIZER_FILE)
            .map(|f| &f.1)
            .collect();
        assert_eq!(toks, [&b"{\"real\": 1}".to_vec()]);
    }

    #[test]
    fn a_bad_file_is_named() {
        let err = VersionFiles::build(vec![], &info(false), &[], &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains(CONFIG_FILE), "{err}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), b"{}").unwrap();
        let err = read_data_section(dir.path()).unwrap_err();
        assert_eq!(err.path, dir.path().join(CONFIG_FILE));
        assert!(err.message.contains("no \"data\""), "{err}");
        assert!(read_thresholds(dir.path(), &labels()).is_err());
    }

    #[test]
    fn thresholds_come_in_label_order() {
        let t = parse_thresholds(r#"{"spam": 0.25, "hate": 0.5}"#, &labels()).unwrap();
        assert_eq!(t, vec![0.5, 0.25]);
    }

    #[test]
    fn thresholds_must_cover_exactly_the_labels() {
        let e = parse_thresholds(r#"{"hate": 0.5}"#, &labels()).unwrap_err();
        assert!(e.contains("'spam'"), "{e}");
        let e = parse_thresholds(r#"{"hate": 0.5, "spam": 0.5, "x": 1}"#, &labels()).unwrap_err();
        assert!(e.contains("'x'"), "{e}");
        let e = parse_thresholds(r#"{"hate": 1.5, "spam": 0.5}"#, &labels()).unwrap_err();
        assert!(e.contains("outside"), "{e}");
        assert!(parse_thresholds("[0.5]", &labels()).is_err());
    }
}
