//! Loading published weights (Hugging Face safetensors, PyTorch `.pth`) into our
//! modules, strictly.
//!
//! burn-store reads the file; the name mapping is ours. Each tower gives a function
//! from its burn parameter path to the file's key (`layers.3.attn_norm.gamma` →
//! `encoder.layer.3.attention.output.LayerNorm.weight`). From the module's own
//! parameter list we derive the expected file keys, then:
//! - a key the model expects but the file lacks is [`ModelError::MissingTensors`];
//! - a key the file has that the model cannot place (and that is not a known
//!   by-product such as a pooler, a classifier or `num_batches_tracked`) is
//!   [`ModelError::UnusedTensors`];
//! - a shape that differs is [`ModelError::ShapeMismatch`], in the file's layout;
//! - a truncated or corrupt file is [`ModelError::WeightsFile`].
//!
//! Strictness is the point: a silently half-loaded encoder trains, just badly.
//! Linear weights are transposed by burn-store's PyTorch adapter; tensors stored in
//! f16/bf16/f64 are converted to f32.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use burn::module::Module;
use burn::tensor::DType;
use burn::tensor::backend::Backend;
use burn_store::{
    ModuleAdapter, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore,
    SafetensorsStore, TensorSnapshot,
};

use super::error::ModelError;

/// A normalisation parameter's name in published files: burn's LayerNorm and
/// BatchNorm `gamma` / `beta` are PyTorch's `weight` / `bias`; anything else as is.
/// Every tower's key map uses it.
pub(crate) fn norm_param(p: &str) -> &str {
    match p {
        "gamma" => "weight",
        "beta" => "bias",
        other => other,
    }
}

/// The pretrained-weights cache `scripts/fetch-pretrained.sh` fills:
/// `$VIGIL_PRETRAINED`, else `~/.cache/vigil/pretrained`; None when neither
/// variable is set.
pub fn pretrained_cache() -> Option<PathBuf> {
    std::env::var_os("VIGIL_PRETRAINED")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/vigil/pretrained"))
        })
}

/// The file formats we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsFormat {
    /// Hugging Face `model.safetensors`.
    Safetensors,
    /// A PyTorch `state_dict` saved with `torch.save`.
    Pytorch,
}

/// How one tower's parameter paths are spelled in a published file.
pub struct KeyMap<'a> {
    /// burn path → the file's key (without any prefix).
    pub to_file: &'a dyn Fn(&str) -> String,
    /// File keys that may be present and are dropped (pooler, classifier, buffers).
    pub ignorable: &'a dyn Fn(&str) -> bool,
    /// A prefix some files put before every key (`bert.`); stripped when present.
    pub optional_prefix: Option<&'a str>,
}

/// Reads every tensor of `path` (names and shapes; data stays lazy).
fn read_snapshots(
    path: &Path,
    format: WeightsFormat,
) -> Result<BTreeMap<String, TensorSnapshot>, ModelError> {
    if !path.is_file() {
        return Err(ModelError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "weights file not found"),
        ));
    }
    let file_err = |source: Box<dyn std::error::Error + Send + Sync>| ModelError::WeightsFile {
        path: path.to_path_buf(),
        source,
    };
    match format {
        WeightsFormat::Safetensors => {
            let mut store = SafetensorsStore::from_file(path);
            store
                .get_all_snapshots()
                .cloned()
                .map_err(|e| file_err(Box::new(e)))
        }
        WeightsFormat::Pytorch => {
            let mut store = PytorchStore::from_file(path);
            store
                .get_all_snapshots()
                .cloned()
                .map_err(|e| file_err(Box::new(e)))
        }
    }
}

/// Converts any float tensor to f32 on load.
#[derive(Clone)]
struct ToF32;

impl ModuleAdapter for ToF32 {
    fn adapt(&self, snapshot: &TensorSnapshot) -> TensorSnapshot {
        if snapshot.dtype == DType::F32 {
            return snapshot.clone();
        }
        let data_fn = snapshot.clone_data_fn();
        TensorSnapshot::from_closure(
            Rc::new(move || data_fn().map(|d| d.convert_dtype(DType::F32))),
            DType::F32,
            snapshot.shape.clone(),
            snapshot.path_stack.clone().unwrap_or_default(),
            snapshot.container_stack.clone().unwrap_or_default(),
            snapshot.tensor_id.unwrap_or_default(),
        )
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(self.clone())
    }
}

/// Loads `path` into `module` under `keys`, failing on any missing, unused,
/// mis-shaped or undecodable tensor.
pub fn load_strict<B: Backend, M: Module<B> + ModuleSnapshot<B>>(
    mut module: M,
    path: &Path,
    format: WeightsFormat,
    keys: &KeyMap<'_>,
) -> Result<M, ModelError> {
    let file = read_snapshots(path, format)?;

    // What the module expects, in the file's naming and layout.
    struct Expected {
        burn_path: String,
        file_shape: Vec<usize>,
    }
    let mut expected: HashMap<String, Expected> = HashMap::new();
    for target in module.collect(None, None, false) {
        let burn_path = target.full_path();
        let mut shape = target.shape.to_vec();
        let is_linear_weight = target.module_type().as_deref() == Some("Struct:Linear")
            && burn_path.ends_with(".weight")
            && shape.len() == 2;
        if is_linear_weight {
            shape.reverse();
        }
        expected.insert(
            (keys.to_file)(&burn_path),
            Expected {
                burn_path,
                file_shape: shape,
            },
        );
    }

    let strip = |k: &str| -> String {
        match keys.optional_prefix {
            Some(p) => k.strip_prefix(p).unwrap_or(k).to_string(),
            None => k.to_string(),
        }
    };

    let mut unused = Vec::new();
    let mut mismatch = None;
    let mut found = std::collections::HashSet::new();
    let mut snapshots = Vec::new();
    for (raw_key, snap) in &file {
        let key = strip(raw_key);
        let Some(exp) = expected.get(&key) else {
            if !(keys.ignorable)(&key) {
                unused.push(raw_key.clone());
            }
            continue;
        };
        found.insert(key.clone());
        if snap.shape.as_slice() != exp.file_shape.as_slice() && mismatch.is_none() {
            mismatch = Some(ModelError::ShapeMismatch {
                path: path.to_path_buf(),
                tensor: raw_key.clone(),
                expected: exp.file_shape.clone(),
                found: snap.shape.to_vec(),
            });
        }
        let mut renamed = snap.clone();
        renamed.path_stack = Some(exp.burn_path.split('.').map(String::from).collect());
        snapshots.push(renamed);
    }
    let prefix = keys
        .optional_prefix
        .filter(|p| file.keys().any(|k| k.starts_with(p)));
    let mut missing: Vec<String> = expected
        .keys()
        .filter(|k| !found.contains(*k))
        .map(|k| format!("{}{k}", prefix.unwrap_or("")))
        .collect();
    missing.sort();
    if !missing.is_empty() {
        return Err(ModelError::MissingTensors {
            path: path.to_path_buf(),
            tensors: missing,
        });
    }
    if let Some(err) = mismatch {
        return Err(err);
    }
    if !unused.is_empty() {
        return Err(ModelError::UnusedTensors {
            path: path.to_path_buf(),
            tensors: unused,
        });
    }

    let burn_to_file: HashMap<String, String> = file
        .keys()
        .filter_map(|raw| {
            expected
                .get(&strip(raw))
                .map(|e| (e.burn_path.clone(), raw.clone()))
        })
        .collect();
    let adapter = PyTorchToBurnAdapter.chain(ToF32);
    let result = module.apply(snapshots, None, Some(Box::new(adapter)), false);
    if let Some(err) = result.errors.first() {
        let (burn_path, message) = match err {
            burn_store::ApplyError::ShapeMismatch { path, .. }
            | burn_store::ApplyError::DTypeMismatch { path, .. }
            | burn_store::ApplyError::AdapterError { path, .. }
            | burn_store::ApplyError::LoadError { path, .. } => (path.clone(), err.to_string()),
        };
        return Err(ModelError::TensorData {
            path: path.to_path_buf(),
            tensor: burn_to_file.get(&burn_path).cloned().unwrap_or(burn_path),
            message,
        });
    }
    if let Some((burn_path, _)) = result.missing.first() {
        let key = (keys.to_file)(burn_path);
        return Err(ModelError::MissingTensors {
            path: path.to_path_buf(),
            tensors: vec![key],
        });
    }
    Ok(module)
}
