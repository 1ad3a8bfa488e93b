//! Small closed vocabularies of the run config (`backend: shm`, `schedule: cosine`).
//!
//! They are plain lowercase YAML words; [`TrainLayers`] and [`Resume`] also take a
//! number or a path, so they have hand-written serde impls. [`Backend`] and [`Device`] map
//! onto `vigil_collective`'s own enums here, once.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! word_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal),+ $(,)? }
     default $default:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $word)] $variant),+
        }

        impl Default for $name {
            fn default() -> Self {
                Self::$default
            }
        }

        impl $name {
            /// The YAML word for this value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $word),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

word_enum! {
    /// Collective transport.
    Backend {
        /// nccl on CUDA, shm within a node, tcp across nodes.
        Auto = "auto",
        /// TCP ring.
        Tcp = "tcp",
        /// Shared memory (one node).
        Shm = "shm",
        /// NCCL (CUDA devices, feature `nccl`).
        Nccl = "nccl",
    } default Auto
}

word_enum! {
    /// Training device.
    Device {
        /// CPU backend.
        Cpu = "cpu",
        /// CUDA backend (feature `cuda`).
        Cuda = "cuda",
    } default Cpu
}

/// `launch.backend` as the collective's transport: the one place the two vocabularies meet.
impl From<MonitorMode> for vigil_store::checkpoint::Ranking {
    fn from(mode: MonitorMode) -> Self {
        match mode {
            MonitorMode::Max => Self::HigherFirst,
            MonitorMode::Min => Self::LowerFirst,
        }
    }
}

impl From<Backend> for vigil_collective::TransportKind {
    fn from(b: Backend) -> Self {
        use vigil_collective::TransportKind as T;
        match b {
            Backend::Auto => T::Auto,
            Backend::Tcp => T::Tcp,
            Backend::Shm => T::Shm,
            Backend::Nccl => T::Nccl,
        }
    }
}

impl Device {
    /// `launch.device` as the collective's device of the worker with local rank `ordinal`
    /// (one CUDA device per local rank).
    pub fn collective(self, ordinal: usize) -> vigil_collective::Device {
        match self {
            Device::Cpu => vigil_collective::Device::Cpu,
            Device::Cuda => vigil_collective::Device::Cuda(ordinal),
        }
    }
}

word_enum! {
    /// Text encoder architecture.
    TextEncoder {
        /// A pretrained encoder from a Hugging Face directory, of the architecture
        /// its `config.json`'s `model_type` names (bert, roberta, xlm-roberta,
        /// distilbert, deberta-v2); `pretrained` is accepted as a synonym.
        #[serde(alias = "pretrained")]
        Bert = "bert",
        /// Small randomly initialised encoder.
        Scratch = "scratch",
    } default Bert
}

word_enum! {
    /// Image encoder architecture.
    ImageEncoder {
        /// torchvision EfficientNet-B0.
        EfficientnetB0 = "efficientnet_b0",
        /// Small randomly initialised CNN.
        ScratchCnn = "scratch_cnn",
        /// A Hugging Face vision directory, of the architecture its `config.json`'s
        /// `model_type` names: `vit`, `clip` / `clip_vision_model` (the vision half),
        /// `siglip` / `siglip_vision_model`.
        Pretrained = "pretrained",
    } default EfficientnetB0
}

word_enum! {
    /// How an image is brought to the tower's square input (`data.image_transform.resize`).
    ImageResize {
        /// Straight to `image_size`² (edges kept: moderation images carry text there).
        Square = "square",
        /// The shorter side to `shortest_edge`, then a centred `image_size`² crop (CLIP).
        ShortestEdge = "shortest_edge",
    } default Square
}

word_enum! {
    /// The resampling filter (`data.image_transform.filter`).
    ImageFilter {
        /// Vigil's triangle filter in float (area-weighted when shrinking).
        Triangle = "triangle",
        /// Pillow's `BILINEAR`, byte-exact (Hugging Face processors' resample 2).
        Bilinear = "bilinear",
        /// Pillow's `BICUBIC`, byte-exact (Hugging Face processors' resample 3).
        Bicubic = "bicubic",
    } default Triangle
}

word_enum! {
    /// Where Triton runs an exported model (`export.triton_instance`).
    TritonInstance {
        /// `KIND_CPU`.
        Cpu = "cpu",
        /// `KIND_GPU`.
        Gpu = "gpu",
    } default Cpu
}

word_enum! {
    /// Pooling of token states.
    Pooling {
        /// Masked mean over tokens.
        Mean = "mean",
        /// The first (`[CLS]`) token.
        Cls = "cls",
    } default Mean
}

word_enum! {
    /// Fusion of text and image features.
    FusionKind {
        /// Concatenation.
        Concat = "concat",
        /// Learned per-modality gates.
        Gated = "gated",
        /// Outer-product feature interaction (Hate-CLIPper).
        Interaction = "interaction",
    } default Concat
}

word_enum! {
    /// Classification task.
    Task {
        /// Independent sigmoid per label, BCE loss.
        MultiLabel = "multi_label",
        /// One softmax over labels.
        MultiClass = "multi_class",
    } default MultiLabel
}

word_enum! {
    /// Input file format.
    DataFormat {
        /// Vigil JSONL.
        Vigil = "vigil",
        /// Hateful Memes JSONL.
        HatefulMemes = "hateful_memes",
    } default Vigil
}

word_enum! {
    /// What to do with a bad data row.
    OnBadRow {
        /// Stop before training, naming the row.
        Fail = "fail",
        /// Drop it, count it, write it to the rejects file.
        Skip = "skip",
    } default Fail
}

word_enum! {
    /// How ranks get equal numbers of batches.
    UnevenTail {
        /// Repeat examples to fill the last batches.
        Pad = "pad",
        /// Drop the tail.
        Drop = "drop",
    } default Pad
}

word_enum! {
    /// Learning-rate schedule after warmup.
    Schedule {
        /// Constant.
        Constant = "constant",
        /// Linear decay to zero.
        Linear = "linear",
        /// Cosine decay to zero.
        Cosine = "cosine",
    } default Linear
}

word_enum! {
    /// Numeric precision of training.
    Precision {
        /// 32-bit floats.
        F32 = "f32",
        /// bfloat16 (CUDA).
        Bf16 = "bf16",
        /// float16 (CUDA).
        F16 = "f16",
    } default F32
}

word_enum! {
    /// Direction in which a metric improves.
    MonitorMode {
        /// Higher is better.
        Max = "max",
        /// Lower is better.
        Min = "min",
    } default Max
}

word_enum! {
    /// When a model is exported.
    ExportWhen {
        /// After an evaluation that improves the monitored metric.
        Best = "best",
        /// Once, at the end of training.
        End = "end",
        /// After every evaluation.
        Every = "every",
    } default End
}

word_enum! {
    /// Console progress format.
    LogFormat {
        /// A progress bar on a terminal, JSON lines otherwise.
        Auto = "auto",
        /// Plain text lines.
        Text = "text",
        /// One JSON object per logging interval.
        Json = "json",
    } default Auto
}

word_enum! {
    /// Which ranks' output the launcher echoes.
    ConsoleRanks {
        /// Every rank, prefixed `[rank N]`.
        All = "all",
        /// Rank 0 only.
        Rank0 = "rank0",
    } default All
}

/// Which layers of a pretrained tower train: `all`, `none`, or the top N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrainLayers {
    /// Every layer trains.
    #[default]
    All,
    /// The tower is frozen.
    None,
    /// Only the top N layers (or stages) train.
    Top(u32),
}

impl Serialize for TrainLayers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::All => s.serialize_str("all"),
            Self::None => s.serialize_str("none"),
            Self::Top(n) => s.serialize_u32(*n),
        }
    }
}

impl<'de> Deserialize<'de> for TrainLayers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TrainLayers;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`all`, `none` or a number of top layers")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TrainLayers, E> {
                match v {
                    "all" => Ok(TrainLayers::All),
                    "none" | "frozen" => Ok(TrainLayers::None),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TrainLayers, E> {
                u32::try_from(v)
                    .map(TrainLayers::Top)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TrainLayers, E> {
                u64::try_from(v)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
                    .and_then(|v| self.visit_u64(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// Where training starts: `auto` (the latest checkpoint if any), `never`, or a path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Resume {
    /// Resume from `checkpoints/LATEST` when it exists.
    #[default]
    Auto,
    /// Always start fresh.
    Never,
    /// Resume from this checkpoint directory.
    Path(String),
}

impl Serialize for Resume {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Auto => s.serialize_str("auto"),
            Self::Never => s.serialize_str("never"),
            Self::Path(p) => s.serialize_str(p),
        }
    }
}

impl<'de> Deserialize<'de> for Resume {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "auto" => Self::Auto,
            "never" => Self::Never,
            _ => Self::Path(s),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_collective::TransportKind;

    #[test]
    fn launch_words_map_onto_the_collectives_enums() {
        for (b, t) in [
            (Backend::Auto, TransportKind::Auto),
            (Backend::Tcp, TransportKind::Tcp),
            (Backend::Shm, TransportKind::Shm),
            (Backend::Nccl, TransportKind::Nccl),
        ] {
            assert_eq!(TransportKind::from(b), t);
            // The same word on both sides, so VIGIL_TRANSPORT reads back as launch.backend.
            assert_eq!(b.as_str().parse::<TransportKind>().unwrap(), t);
        }
        assert_eq!(Device::Cpu.collective(3), vigil_collective::Device::Cpu);
        assert_eq!(
            Device::Cuda.collective(3),
            vigil_collective::Device::Cuda(3)
        );
    }
}
