//! Plugin metadata protos: the hparams plugin (`plugins/hparams/api.proto`,
//! `plugin_data.proto`), the PR-curve and text plugins' `PrCurvePluginData` /
//! `TextPluginData`, and the `google.protobuf.Value` / `ListValue` the hparams
//! plugin stores values in. Field numbers are TensorBoard's (checked against the
//! `tensorboard` 2.21 descriptors).

use std::collections::BTreeMap;

/// `PrCurvePluginData`: the `content` of a `pr_curves` summary's plugin data.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PrCurvePluginData {
    /// Always 0.
    #[prost(int32, tag = "1")]
    pub version: i32,
    /// Thresholds evenly spaced in `[0, 1]`; the tensor is `[6, num_thresholds]`.
    #[prost(uint32, tag = "2")]
    pub num_thresholds: u32,
}

/// `TextPluginData`: the `content` of a `text` summary's plugin data.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TextPluginData {
    /// Always 0.
    #[prost(int32, tag = "1")]
    pub version: i32,
}

/// `HParamsPluginData`: the `content` of an `hparams` summary's plugin data.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HParamsPluginData {
    /// Always 0.
    #[prost(int32, tag = "1")]
    pub version: i32,
    /// Which of the three hparams summaries this is.
    #[prost(oneof = "h_params_plugin_data::Data", tags = "2, 3, 4")]
    pub data: Option<h_params_plugin_data::Data>,
}

/// Nested types of [`HParamsPluginData`].
pub mod h_params_plugin_data {
    /// The `oneof data` of [`HParamsPluginData`](super::HParamsPluginData).
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Data {
        /// Tag `_hparams_/experiment`: the columns of the HParams dashboard.
        #[prost(message, tag = "2")]
        Experiment(super::Experiment),
        /// Tag `_hparams_/session_start_info`: this run's values.
        #[prost(message, tag = "3")]
        SessionStartInfo(super::SessionStartInfo),
        /// Tag `_hparams_/session_end_info`: how the run ended.
        #[prost(message, tag = "4")]
        SessionEndInfo(super::SessionEndInfo),
    }
}

/// `Experiment`: the hyper-parameters and metrics the dashboard shows.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Experiment {
    /// Experiment name.
    #[prost(string, tag = "6")]
    pub name: String,
    /// Description (markdown).
    #[prost(string, tag = "1")]
    pub description: String,
    /// Who ran it.
    #[prost(string, tag = "2")]
    pub user: String,
    /// Seconds since the epoch.
    #[prost(double, tag = "3")]
    pub time_created_secs: f64,
    /// One per hyper-parameter column.
    #[prost(message, repeated, tag = "4")]
    pub hparam_infos: Vec<HParamInfo>,
    /// One per metric column.
    #[prost(message, repeated, tag = "5")]
    pub metric_infos: Vec<MetricInfo>,
}

/// `HParamInfo`: one hyper-parameter column.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HParamInfo {
    /// Key, as in [`SessionStartInfo::hparams`].
    #[prost(string, tag = "1")]
    pub name: String,
    /// Column title.
    #[prost(string, tag = "2")]
    pub display_name: String,
    /// Tooltip.
    #[prost(string, tag = "3")]
    pub description: String,
    /// A [`HParamDataType`] value.
    #[prost(enumeration = "HParamDataType", tag = "4")]
    pub r#type: i32,
}

/// `MetricInfo`: one metric column, read from a scalar tag of the session's run.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricInfo {
    /// The scalar series.
    #[prost(message, optional, tag = "1")]
    pub name: Option<MetricName>,
    /// Column title.
    #[prost(string, tag = "3")]
    pub display_name: String,
    /// Tooltip.
    #[prost(string, tag = "4")]
    pub description: String,
    /// A [`DatasetType`] value.
    #[prost(enumeration = "DatasetType", tag = "5")]
    pub dataset_type: i32,
}

/// `MetricName`: a scalar tag in a run relative to the session's run.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricName {
    /// Sub-directory of the session's run; empty for the run itself.
    #[prost(string, tag = "1")]
    pub group: String,
    /// Scalar tag.
    #[prost(string, tag = "2")]
    pub tag: String,
}

/// `SessionStartInfo`: the values of one run.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionStartInfo {
    /// Hyper-parameter values by name.
    #[prost(btree_map = "string, message", tag = "1")]
    pub hparams: BTreeMap<String, Value>,
    /// Where the model is.
    #[prost(string, tag = "2")]
    pub model_uri: String,
    /// Where to watch it.
    #[prost(string, tag = "3")]
    pub monitor_url: String,
    /// Sessions with one group name are one row (repeats of a trial).
    #[prost(string, tag = "4")]
    pub group_name: String,
    /// Seconds since the epoch.
    #[prost(double, tag = "5")]
    pub start_time_secs: f64,
}

/// `SessionEndInfo`: how a run ended.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionEndInfo {
    /// A [`HParamStatus`] value.
    #[prost(enumeration = "HParamStatus", tag = "1")]
    pub status: i32,
    /// Seconds since the epoch.
    #[prost(double, tag = "2")]
    pub end_time_secs: f64,
}

/// `tensorboard.hparams.DataType`: the type of a hyper-parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum HParamDataType {
    /// Not set.
    Unset = 0,
    /// String.
    String = 1,
    /// Boolean.
    Bool = 2,
    /// Number.
    Float64 = 3,
}

/// `tensorboard.hparams.DatasetType`: what a metric is measured on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DatasetType {
    /// Not said.
    Unknown = 0,
    /// Training data.
    Training = 1,
    /// Validation data.
    Validation = 2,
}

/// `tensorboard.hparams.Status`: the end state of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum HParamStatus {
    /// Not known.
    Unknown = 0,
    /// Finished normally.
    Success = 1,
    /// Failed.
    Failure = 2,
    /// Still running.
    Running = 3,
}

/// `google.protobuf.Value` (without `struct_value`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    /// The value.
    #[prost(oneof = "value::Kind", tags = "1, 2, 3, 4, 6")]
    pub kind: Option<value::Kind>,
}

/// Nested types of [`Value`].
pub mod value {
    /// The `oneof kind` of a [`Value`](super::Value).
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        /// `null` (`NullValue` enum, always 0).
        #[prost(int32, tag = "1")]
        NullValue(i32),
        /// A number.
        #[prost(double, tag = "2")]
        NumberValue(f64),
        /// A string.
        #[prost(string, tag = "3")]
        StringValue(String),
        /// A boolean.
        #[prost(bool, tag = "4")]
        BoolValue(bool),
        /// A list.
        #[prost(message, tag = "6")]
        ListValue(super::ListValue),
    }
}

/// `google.protobuf.ListValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListValue {
    /// The elements.
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<Value>,
}
