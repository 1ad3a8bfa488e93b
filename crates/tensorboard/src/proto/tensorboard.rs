//! TensorBoard's core event protos (`tensorboard/compat/proto/*.proto`), written by
//! hand as `prost` structs so the build needs no `protoc`.
//!
//! Only the fields Vigil writes or a test reads are declared; field numbers are
//! TensorBoard's (checked against the `tensorboard` 2.21 descriptors). prost skips
//! unknown fields when decoding, so files written by TensorFlow still decode.

/// One record of an event file (`event.proto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// Global training step.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// What the event carries.
    #[prost(oneof = "event::What", tags = "3, 5, 7")]
    pub what: Option<event::What>,
}

/// Nested types of [`Event`].
pub mod event {
    /// The `oneof what` of an [`Event`](super::Event).
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum What {
        /// The file header, `brain.Event:2`.
        #[prost(string, tag = "3")]
        FileVersion(String),
        /// Summary values (scalars, histograms, tensors).
        #[prost(message, tag = "5")]
        Summary(super::Summary),
        /// A session marker (START on resume).
        #[prost(message, tag = "7")]
        SessionLog(super::SessionLog),
    }
}

/// A session marker (`event.proto`). TensorBoard's reader purges every event of
/// the run with a step at or after a `START` marker's step.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionLog {
    /// A [`SessionStatus`] value.
    #[prost(enumeration = "SessionStatus", tag = "1")]
    pub status: i32,
    /// Checkpoint the session started from, if any.
    #[prost(string, tag = "2")]
    pub checkpoint_path: String,
    /// Free-form message.
    #[prost(string, tag = "3")]
    pub msg: String,
}

/// `SessionLog.SessionStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SessionStatus {
    /// Not set.
    Unspecified = 0,
    /// A (re)start: later-step events written before it are orphaned.
    Start = 1,
    /// The session stopped.
    Stop = 2,
    /// A checkpoint was written.
    Checkpoint = 3,
}

/// A set of tagged values at one step (`summary.proto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<summary::Value>,
}

/// Nested types of [`Summary`].
pub mod summary {
    /// One tagged value.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Value {
        /// The tag, e.g. `train/loss`.
        #[prost(string, tag = "1")]
        pub tag: String,
        /// Which plugin reads the value, and how.
        #[prost(message, optional, tag = "9")]
        pub metadata: Option<super::SummaryMetadata>,
        /// The payload.
        #[prost(oneof = "value::Value", tags = "2, 4, 5, 8")]
        pub value: Option<value::Value>,
    }

    /// An encoded image (`Summary.Image`): PNG bytes with their size.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Image {
        /// Height in pixels.
        #[prost(int32, tag = "1")]
        pub height: i32,
        /// Width in pixels.
        #[prost(int32, tag = "2")]
        pub width: i32,
        /// 1 grayscale, 2 grayscale + alpha, 3 RGB, 4 RGBA.
        #[prost(int32, tag = "3")]
        pub colorspace: i32,
        /// The encoded image (PNG).
        #[prost(bytes = "vec", tag = "4")]
        pub encoded_image_string: Vec<u8>,
    }

    /// Nested types of [`Value`].
    pub mod value {
        /// The `oneof value` of a summary value.
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            /// A scalar (the scalars dashboard).
            #[prost(float, tag = "2")]
            SimpleValue(f32),
            /// An encoded image (the images dashboard).
            #[prost(message, tag = "4")]
            Image(super::super::summary::Image),
            /// A histogram (the histograms and distributions dashboards).
            #[prost(message, tag = "5")]
            Histo(super::super::HistogramProto),
            /// A tensor read by the plugin named in the metadata.
            #[prost(message, tag = "8")]
            Tensor(super::super::TensorProto),
        }
    }
}

/// How a summary value is to be read (`summary.proto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryMetadata {
    /// The plugin that owns the value.
    #[prost(message, optional, tag = "1")]
    pub plugin_data: Option<summary_metadata::PluginData>,
    /// Name shown instead of the tag.
    #[prost(string, tag = "2")]
    pub display_name: String,
    /// Longer description shown in the dashboard.
    #[prost(string, tag = "3")]
    pub summary_description: String,
    /// A [`DataClass`] value.
    #[prost(enumeration = "DataClass", tag = "4")]
    pub data_class: i32,
}

/// Nested types of [`SummaryMetadata`].
pub mod summary_metadata {
    /// Plugin name and the plugin's own serialized metadata.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PluginData {
        /// `scalars`, `text`, `pr_curves`, `hparams`, ...
        #[prost(string, tag = "1")]
        pub plugin_name: String,
        /// The plugin's serialized metadata proto.
        #[prost(bytes = "vec", tag = "2")]
        pub content: Vec<u8>,
    }
}

/// `DataClass`: how the data server stores a time series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DataClass {
    /// Inferred from the plugin name.
    Unknown = 0,
    /// Rank-0 float.
    Scalar = 1,
    /// A tensor (text, PR curves, hparams).
    Tensor = 2,
    /// Blobs (images, audio).
    BlobSequence = 3,
}

/// A histogram (`histogram.proto`): bucket `i` counts values in
/// `[bucket_limit[i-1], bucket_limit[i])`, the first bucket starting at `min`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HistogramProto {
    /// Smallest value.
    #[prost(double, tag = "1")]
    pub min: f64,
    /// Largest value.
    #[prost(double, tag = "2")]
    pub max: f64,
    /// Number of values.
    #[prost(double, tag = "3")]
    pub num: f64,
    /// Sum of the values.
    #[prost(double, tag = "4")]
    pub sum: f64,
    /// Sum of the squared values.
    #[prost(double, tag = "5")]
    pub sum_squares: f64,
    /// Right edges of the buckets.
    #[prost(double, repeated, tag = "6")]
    pub bucket_limit: Vec<f64>,
    /// Counts of the buckets.
    #[prost(double, repeated, tag = "7")]
    pub bucket: Vec<f64>,
}

/// A tensor (`tensor.proto`); Vigil writes float and string tensors.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// A [`DataType`] value.
    #[prost(enumeration = "DataType", tag = "1")]
    pub dtype: i32,
    /// The shape.
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TensorShapeProto>,
    /// Little-endian packed values (alternative to the typed fields).
    #[prost(bytes = "vec", tag = "4")]
    pub tensor_content: Vec<u8>,
    /// `DT_FLOAT` values, row-major.
    #[prost(float, repeated, tag = "5")]
    pub float_val: Vec<f32>,
    /// `DT_DOUBLE` values, row-major.
    #[prost(double, repeated, tag = "6")]
    pub double_val: Vec<f64>,
    /// `DT_STRING` values, row-major.
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub string_val: Vec<Vec<u8>>,
}

/// A tensor's shape (`tensor_shape.proto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// Dimensions, outermost first; empty for a scalar.
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<tensor_shape_proto::Dim>,
    /// The rank is unknown.
    #[prost(bool, tag = "3")]
    pub unknown_rank: bool,
}

/// Nested types of [`TensorShapeProto`].
pub mod tensor_shape_proto {
    /// One dimension.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dim {
        /// Size of the dimension.
        #[prost(int64, tag = "1")]
        pub size: i64,
        /// Optional name.
        #[prost(string, tag = "2")]
        pub name: String,
    }
}

impl TensorShapeProto {
    /// A shape with the given dimension sizes.
    pub fn of(dims: &[i64]) -> Self {
        Self {
            dim: dims
                .iter()
                .map(|&size| tensor_shape_proto::Dim {
                    size,
                    name: String::new(),
                })
                .collect(),
            unknown_rank: false,
        }
    }
}

/// `DataType` (`types.proto`), the values Vigil uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DataType {
    /// Not set.
    DtInvalid = 0,
    /// 32-bit float.
    DtFloat = 1,
    /// 64-bit float.
    DtDouble = 2,
    /// Byte string.
    DtString = 7,
}
