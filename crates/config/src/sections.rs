//! The run-config sections, as users write them in YAML.
//!
//! Every struct denies unknown keys and carries defaults, so a minimal config is
//! short and a typo is an error instead of a silently ignored option. Options that
//! only make sense together (early stopping, the export gate, a monitored metric)
//! live in one optional struct.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::enums::{
    Backend, ConsoleRanks, Device, ExportWhen, FusionKind, ImageEncoder, ImageFilter, ImageResize,
    LogFormat, MonitorMode, OnBadRow, Pooling, Precision, Resume, Schedule, Task, TextEncoder,
    TrainLayers, TritonInstance, UnevenTail,
};

/// `run`: what the run is called, where it writes, and its seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSection {
    /// Name of the run (used in TensorBoard and default paths).
    pub name: String,
    /// Run directory; `null` means `checkpoints/<name>`. A bucket URL
    /// (`s3://…`, `gs://…`, `az://…`) keeps checkpoints, `LATEST`, eval reports
    /// and the resolved config there; what must stay local goes to `local_dir`.
    pub output_dir: Option<String>,
    /// Local working directory when `output_dir` is a URL (logs, heartbeats, the
    /// lock, TensorBoard events, caches); `null` means
    /// `<system temp>/vigil/<name>-<hash of output_dir>`.
    pub local_dir: Option<String>,
    /// Seed for initialisation, shuffling and dropout.
    pub seed: u64,
}

impl Default for RunSection {
    fn default() -> Self {
        Self {
            name: "vigil-run".into(),
            output_dir: None,
            local_dir: None,
            seed: 42,
        }
    }
}

/// `launch`: how many workers, where they meet, and how failures are handled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LaunchSection {
    /// Worker processes on this node.
    pub nproc_per_node: u32,
    /// Nodes in the job.
    pub nnodes: u32,
    /// This node's index, `0..nnodes`.
    pub node_rank: u32,
    /// `HOST:PORT` of the rendezvous store; `null` on a single node picks a free port.
    pub rdzv_endpoint: Option<String>,
    /// How many times the whole group is restarted after a failure.
    pub max_restarts: u32,
    /// Seconds between SIGTERM and SIGKILL when stopping workers.
    pub grace_s: f64,
    /// Seconds a node waits for the rendezvous store and its peers.
    pub rdzv_timeout_s: f64,
    /// Seconds without a heartbeat after which a worker counts as hung.
    pub heartbeat_timeout_s: f64,
    /// Seconds any collective operation may take before it fails.
    pub collective_timeout_s: f64,
    /// Collective transport.
    pub backend: Backend,
    /// Device the workers train on.
    pub device: Device,
}

impl Default for LaunchSection {
    fn default() -> Self {
        Self {
            nproc_per_node: 1,
            nnodes: 1,
            node_rank: 0,
            rdzv_endpoint: None,
            max_restarts: 0,
            grace_s: 30.0,
            rdzv_timeout_s: 300.0,
            heartbeat_timeout_s: 300.0,
            collective_timeout_s: 600.0,
            backend: Backend::Auto,
            device: Device::Cpu,
        }
    }
}

/// `model.text`: the text tower.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TextTower {
    /// `bert` (a pretrained Hugging Face directory) or `scratch`.
    pub encoder: TextEncoder,
    /// Hugging Face model directory (`config.json`, `model.safetensors`, `tokenizer.json`).
    pub path: Option<String>,
    /// Tokenizer file; `null` means `<path>/tokenizer.json`.
    pub tokenizer: Option<String>,
    /// How token states become one vector.
    pub pooling: Pooling,
    /// Which encoder layers train: `all`, `none` (frozen) or the top N.
    pub train_layers: TrainLayers,
    /// Hidden size of a `scratch` tower.
    pub hidden: usize,
    /// Layers of a `scratch` tower.
    pub layers: usize,
    /// Attention heads of a `scratch` tower.
    pub heads: usize,
    /// Dropout of a `scratch` tower (pretrained towers use their `config.json`).
    pub dropout: f64,
}

impl Default for TextTower {
    fn default() -> Self {
        Self {
            encoder: TextEncoder::Bert,
            path: None,
            tokenizer: None,
            pooling: Pooling::Mean,
            train_layers: TrainLayers::All,
            hidden: 64,
            layers: 2,
            heads: 4,
            dropout: 0.1,
        }
    }
}

/// `model.image`: the image tower.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageTower {
    /// `efficientnet_b0` (a torchvision `.pth` state_dict) or `scratch_cnn`.
    pub encoder: ImageEncoder,
    /// Path of the `.pth` file for `efficientnet_b0`.
    pub path: Option<String>,
    /// Which encoder stages train: `all`, `none` (frozen) or the top N.
    pub train_layers: TrainLayers,
    /// Output channels of the `scratch_cnn` tower.
    pub channels: usize,
}

impl Default for ImageTower {
    fn default() -> Self {
        Self {
            encoder: ImageEncoder::EfficientnetB0,
            path: None,
            train_layers: TrainLayers::None,
            channels: 32,
        }
    }
}

/// `model.fusion`: how text and image features are combined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FusionSection {
    /// `concat`, `gated` or `interaction` (Hate-CLIPper style).
    pub kind: FusionKind,
    /// Width each modality is projected to before fusion.
    pub dim: usize,
    /// Standardise a frozen, cached tower's features per feature with their
    /// training-set mean and standard deviation (false: identity).
    pub standardize: bool,
}

impl Default for FusionSection {
    fn default() -> Self {
        Self {
            kind: FusionKind::Concat,
            dim: 128,
            standardize: true,
        }
    }
}

/// `model.head`: the classifier on top of the fused features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeadSection {
    /// Hidden layer widths of the MLP (empty: a single linear layer).
    pub hidden: Vec<usize>,
    /// Dropout before each layer of the head.
    pub dropout: f64,
    /// Positive-class weight per label for the BCE loss.
    pub pos_weight: BTreeMap<String, f64>,
}

impl Default for HeadSection {
    fn default() -> Self {
        Self {
            hidden: vec![128],
            dropout: 0.1,
            pos_weight: BTreeMap::new(),
        }
    }
}

/// `model`: labels, towers, fusion and head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// Label names, one logit each.
    pub labels: Vec<String>,
    /// `multi_label` (sigmoid, BCE) or `multi_class` (softmax).
    pub task: Task,
    /// Text tower; `null` for an image-only model.
    pub text: Option<TextTower>,
    /// Image tower; `null` for a text-only model.
    pub image: Option<ImageTower>,
    /// Fusion of the two towers.
    pub fusion: FusionSection,
    /// Classifier head.
    pub head: HeadSection,
    /// Warm start: an export version directory or checkpoint to take weights from.
    pub init_from: Option<String>,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            labels: Vec::new(),
            task: Task::MultiLabel,
            text: None,
            image: None,
            fusion: FusionSection::default(),
            head: HeadSection::default(),
            init_from: None,
        }
    }
}

/// `data`: where the examples are and how they are read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSection {
    /// Training file.
    pub train: String,
    /// Validation file; `null` disables evaluation.
    pub val: Option<String>,
    /// `vigil` JSONL or `hateful_memes` JSONL.
    pub format: super::enums::DataFormat,
    /// Label the `hateful_memes` format's `label` maps to.
    pub hateful_memes_label: Option<String>,
    /// Root of image paths; `null` means the data file's directory.
    pub image_root: Option<String>,
    /// Maximum tokens per text (truncation).
    pub max_text_len: usize,
    /// Maximum characters per text; longer rows are bad rows.
    pub max_text_chars: usize,
    /// Side of the square image fed to the image tower.
    pub image_size: u32,
    /// How images are resized and normalised; `null`: the image tower's own (a
    /// Hugging Face directory's `preprocessor_config.json`, else Vigil's square
    /// triangle resize with ImageNet statistics). Filled in when a run starts, so
    /// an export records what it trained with.
    pub image_transform: Option<ImageTransform>,
    /// `fail` stops on a bad row; `skip` drops and reports it.
    pub on_bad_row: OnBadRow,
    /// Image-decoding threads per worker.
    pub loader_threads: usize,
    /// Batches decoded ahead of the training step.
    pub prefetch_batches: usize,
    /// Equal batches per rank by `pad` (repeat examples) or `drop` (the tail).
    pub uneven: UnevenTail,
}

impl Default for DataSection {
    fn default() -> Self {
        Self {
            train: String::new(),
            val: None,
            format: super::enums::DataFormat::Vigil,
            hateful_memes_label: None,
            image_root: None,
            max_text_len: 64,
            max_text_chars: 10_000,
            image_size: 224,
            image_transform: None,
            on_bad_row: OnBadRow::Fail,
            loader_threads: 2,
            prefetch_batches: 4,
            uneven: UnevenTail::Pad,
        }
    }
}

/// `data.image_transform`: decoded RGB → the tower's `[3, image_size, image_size]`
/// input.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageTransform {
    /// `square` or `shortest_edge` (resize, then centre crop).
    pub resize: ImageResize,
    /// The shorter side before the crop (`shortest_edge`); `null`: `image_size`.
    pub shortest_edge: Option<u32>,
    /// Resampling filter.
    pub filter: ImageFilter,
    /// Per-channel mean subtracted after scaling to 0–1 (RGB).
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by (RGB).
    pub std: [f32; 3],
}

impl Default for ImageTransform {
    /// Vigil's own: a square triangle resize, ImageNet statistics.
    fn default() -> Self {
        Self {
            resize: ImageResize::Square,
            shortest_edge: None,
            filter: ImageFilter::Triangle,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }
}

/// `optim`: AdamW and the learning-rate schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimSection {
    /// Learning rate of the encoders.
    pub lr: f64,
    /// Learning rate of fusion and head.
    pub head_lr: f64,
    /// Decoupled weight decay (not applied to norms and biases).
    pub weight_decay: f64,
    /// AdamW beta1 and beta2.
    pub betas: [f64; 2],
    /// AdamW epsilon.
    pub eps: f64,
    /// `constant`, `linear` or `cosine` after warmup.
    pub schedule: Schedule,
    /// Linear warmup steps.
    pub warmup_steps: u64,
    /// Clip gradients to this global L2 norm; `null` disables clipping.
    pub grad_clip: Option<f64>,
}

impl Default for OptimSection {
    fn default() -> Self {
        Self {
            lr: 2e-5,
            head_lr: 1e-3,
            weight_decay: 0.01,
            betas: [0.9, 0.999],
            eps: 1e-8,
            schedule: Schedule::Linear,
            warmup_steps: 0,
            grad_clip: Some(1.0),
        }
    }
}

/// `train.early_stopping`: stop when the monitored metric stops improving.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStopping {
    /// Metric to watch, e.g. `val/macro_auroc`.
    pub monitor: String,
    /// `max` or `min`.
    #[serde(default)]
    pub mode: MonitorMode,
    /// Evaluations without improvement before stopping.
    #[serde(default = "default_patience")]
    pub patience: u32,
    /// Smallest change that counts as improvement.
    #[serde(default)]
    pub min_delta: f64,
}

fn default_patience() -> u32 {
    3
}

/// `train`: batches, length of training, evaluation and resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    /// Examples per worker per micro-step.
    pub batch_size: usize,
    /// Epochs to train; `null` when `max_steps` decides.
    pub epochs: Option<u32>,
    /// Optimizer steps to train; `null` when `epochs` decides.
    pub max_steps: Option<u64>,
    /// Micro-steps per optimizer step (gradients communicated on the last only).
    pub grad_accum: u32,
    /// `f32`, `bf16` or `f16`: mixed precision, on CUDA and on the CPU alike.
    pub precision: Precision,
    /// Evaluate every N optimizer steps (and at the end); `null`: only at the end.
    pub eval_every: Option<u64>,
    /// Optional early stopping.
    pub early_stopping: Option<EarlyStopping>,
    /// `auto` (latest checkpoint if any), `never`, or a checkpoint path.
    pub resume: Resume,
    /// Compute a frozen tower's features once per dataset, cache them under the
    /// run directory, and train on them (`false`: run the tower every step).
    pub feature_cache: bool,
    /// Other runs' `feature-cache/` directories: a table this run lacks is gathered
    /// row by row from their tables of the same tower (same weights and
    /// preprocessing) before any row is computed. Empty: compute.
    pub feature_cache_search: Vec<String>,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            batch_size: 16,
            epochs: Some(1),
            max_steps: None,
            grad_accum: 1,
            precision: Precision::F32,
            eval_every: None,
            early_stopping: None,
            resume: Resume::Auto,
            feature_cache: true,
            feature_cache_search: Vec::new(),
        }
    }
}

/// A metric to rank checkpoints or models by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Monitor {
    /// Metric name, e.g. `val/macro_auroc`.
    pub metric: String,
    /// `max` or `min`.
    #[serde(default)]
    pub mode: MonitorMode,
}

/// `checkpoint`: how often and how many.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointSection {
    /// Save every N optimizer steps (and at the end); `null`: only at the end.
    pub every_steps: Option<u64>,
    /// Newest checkpoints kept.
    pub keep_last: usize,
    /// Best checkpoints kept by `monitor` (needs `monitor`).
    pub keep_best: usize,
    /// Metric that ranks checkpoints.
    pub monitor: Option<Monitor>,
}

impl CheckpointSection {
    /// The retention this section asks for and the metric it ranks by (`keep_best`
    /// counts only with a `monitor`).
    pub fn retention(&self) -> (vigil_store::checkpoint::RetentionPolicy, Option<String>) {
        let policy = vigil_store::checkpoint::RetentionPolicy {
            keep_last: self.keep_last,
            keep_best: if self.monitor.is_some() {
                self.keep_best
            } else {
                0
            },
            mode: self
                .monitor
                .as_ref()
                .map(|m| m.mode)
                .unwrap_or_default()
                .into(),
        };
        (policy, self.monitor.as_ref().map(|m| m.metric.clone()))
    }
}

impl Default for CheckpointSection {
    fn default() -> Self {
        Self {
            every_steps: None,
            keep_last: 2,
            keep_best: 0,
            monitor: None,
        }
    }
}

/// `export.gate`: champion/challenger comparison before publishing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// Metric both models are scored on, e.g. `val/macro_auprc`.
    pub metric: String,
    /// `max` or `min`.
    #[serde(default)]
    pub mode: MonitorMode,
    /// Margin by which the challenger must beat the champion.
    #[serde(default)]
    pub min_delta: f64,
}

/// `export`: the serving model repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportSection {
    /// Model repository root; `null` disables export.
    pub dir: Option<String>,
    /// Model name (the folder under `dir`).
    pub model_name: String,
    /// `best`, `end` or `every` evaluation.
    pub when: ExportWhen,
    /// Publish only when the new model beats the newest published one.
    pub gate: Option<Gate>,
    /// Published versions kept.
    pub keep_versions: usize,
    /// Write `model.onnx` into every version and Triton's `config.pbtxt` /
    /// `labels.txt` into the repository.
    pub onnx: bool,
    /// Triton's `instance_group` kind in `config.pbtxt`: `cpu` or `gpu`.
    pub triton_instance: TritonInstance,
}

impl Default for ExportSection {
    fn default() -> Self {
        Self {
            dir: None,
            model_name: "moderation".into(),
            when: ExportWhen::End,
            gate: None,
            keep_versions: 5,
            onnx: true,
            triton_instance: TritonInstance::Cpu,
        }
    }
}

/// `logging`: TensorBoard and console output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingSection {
    /// Write TensorBoard events (rank 0).
    pub tensorboard: bool,
    /// Log training scalars every N steps.
    pub interval: u64,
    /// Weight and gradient histograms every N steps; `null` disables them.
    pub histogram_every: Option<u64>,
    /// Console progress: `auto` (bar on a terminal, JSON otherwise), `text` or `json`.
    pub format: LogFormat,
    /// Which ranks the launcher echoes to the console: `all` or `rank0`.
    pub console: ConsoleRanks,
}

impl Default for LoggingSection {
    fn default() -> Self {
        Self {
            tensorboard: true,
            interval: 10,
            histogram_every: None,
            format: LogFormat::Auto,
            console: ConsoleRanks::All,
        }
    }
}

impl LaunchSection {
    /// The collective's knobs these settings ask for: `backend` as the transport,
    /// `collective_timeout_s` per operation, `rdzv_timeout_s` to reach the store and peers.
    pub fn collective_env(&self) -> vigil_collective::CollectiveEnv {
        let secs = |s: f64| std::time::Duration::try_from_secs_f64(s).ok();
        vigil_collective::CollectiveEnv {
            transport: Some(self.backend.into()),
            timeout: secs(self.collective_timeout_s),
            connect_timeout: secs(self.rdzv_timeout_s),
            ..vigil_collective::CollectiveEnv::default()
        }
    }

    /// The group a worker with contract `env` joins under these settings when
    /// `CUDA_VISIBLE_DEVICES` is `visible`: the contract's knobs first, this section's
    /// where it leaves them unset, and on `device: cuda` the device of `LOCAL_RANK`
    /// among the visible ones — which is what makes `backend: auto` pick NCCL
    /// ([`vigil_collective::resolve_transport`]). Pure: what the trainer's
    /// `Comm::join` builds, and what tests of the launcher's rendered jobs check
    /// without a GPU.
    pub fn group_config(
        &self,
        env: &vigil_collective::WorkerEnv,
        visible: Option<&str>,
    ) -> Result<vigil_collective::GroupConfig, vigil_collective::Error> {
        let mut env = env.clone();
        env.collective = env.collective.or(&self.collective_env());
        let mut cfg = env.group_config()?;
        if self.device == Device::Cuda {
            let choice =
                vigil_collective::cuda_device(env.local_rank, env.local_world_size, visible)?;
            cfg.device = self.device.collective(choice.ordinal);
        }
        Ok(cfg)
    }
}
