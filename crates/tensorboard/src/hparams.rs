//! The hparams plugin's three summaries: the experiment (which hyper-parameters and
//! metrics are columns), the session start (this run's values) and the session end
//! (its status).
//!
//! The plugin reads metric values itself, from the last point of each metric's
//! scalar tag in the run, so "final metrics" need no extra summary. Hyper-parameters
//! come in as a flat `BTreeMap<String, HParamValue>`: how a config is flattened into
//! names (Vigil uses dotted keys such as `optim.lr`) is the caller's business, so
//! this crate needs no serde and no config format.
//!
//! A metric's dataset (the dashboard's training / validation column) is read from
//! its tag's first component: `train/...` is training, `val/...` validation,
//! anything else unknown (the dashboard then shows the metric without a dataset).

use std::collections::BTreeMap;

use prost::Message;

use crate::proto::h_params_plugin_data::Data;
use crate::proto::summary::{self, value};
use crate::proto::value::Kind;
use crate::proto::{
    DataType, DatasetType, Experiment, HParamDataType, HParamInfo, HParamStatus, HParamsPluginData,
    MetricInfo, MetricName, SessionEndInfo, SessionStartInfo, TensorProto, TensorShapeProto, Value,
};
use crate::summary::tensor_metadata;

/// Plugin name of the HParams dashboard.
pub const HPARAMS_PLUGIN: &str = "hparams";
/// Tag of the experiment summary.
pub const EXPERIMENT_TAG: &str = "_hparams_/experiment";
/// Tag of the session-start summary.
pub const SESSION_START_INFO_TAG: &str = "_hparams_/session_start_info";
/// Tag of the session-end summary.
pub const SESSION_END_INFO_TAG: &str = "_hparams_/session_end_info";

/// A hyper-parameter value: the three types the plugin knows.
#[derive(Debug, Clone, PartialEq)]
pub enum HParamValue {
    /// A boolean.
    Bool(bool),
    /// A number (integers too).
    Number(f64),
    /// A string (also lists and enums, as written in YAML).
    Text(String),
}

impl From<bool> for HParamValue {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}
impl From<f64> for HParamValue {
    fn from(v: f64) -> Self {
        Self::Number(v)
    }
}
impl From<i64> for HParamValue {
    fn from(v: i64) -> Self {
        Self::Number(v as f64)
    }
}
impl From<u64> for HParamValue {
    fn from(v: u64) -> Self {
        Self::Number(v as f64)
    }
}
impl From<&str> for HParamValue {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}
impl From<String> for HParamValue {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}

impl HParamValue {
    fn data_type(&self) -> HParamDataType {
        match self {
            Self::Bool(_) => HParamDataType::Bool,
            Self::Number(_) => HParamDataType::Float64,
            Self::Text(_) => HParamDataType::String,
        }
    }

    fn to_proto(&self) -> Value {
        Value {
            kind: Some(match self {
                Self::Bool(b) => Kind::BoolValue(*b),
                Self::Number(n) => Kind::NumberValue(*n),
                Self::Text(s) => Kind::StringValue(s.clone()),
            }),
        }
    }
}

/// What a run declares to the HParams dashboard when it starts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HParamsStart {
    /// Sessions with one group name form one row; use the run name.
    pub group_name: String,
    /// Hyper-parameter values by name.
    pub hparams: BTreeMap<String, HParamValue>,
    /// Scalar tags shown as metric columns (e.g. `val/macro_auroc`).
    pub metrics: Vec<String>,
    /// Seconds since the Unix epoch.
    pub start_time_secs: f64,
}

/// How a run ended, for the HParams dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Finished normally.
    Success,
    /// Failed and will not be restarted.
    Failure,
    /// Still running (e.g. stopped for a later resume).
    Running,
}

impl RunStatus {
    fn to_proto(self) -> HParamStatus {
        match self {
            Self::Success => HParamStatus::Success,
            Self::Failure => HParamStatus::Failure,
            Self::Running => HParamStatus::Running,
        }
    }
}

fn hparams_value(tag: &str, data: Data) -> summary::Value {
    let content = HParamsPluginData {
        version: 0,
        data: Some(data),
    }
    .encode_to_vec();
    summary::Value {
        tag: tag.to_owned(),
        metadata: Some(tensor_metadata(HPARAMS_PLUGIN, content)),
        // The plugin reads only the metadata; this is its NULL_TENSOR.
        value: Some(value::Value::Tensor(TensorProto {
            dtype: DataType::DtFloat as i32,
            tensor_shape: Some(TensorShapeProto::of(&[0])),
            ..Default::default()
        })),
    }
}

fn dataset_of(metric: &str) -> DatasetType {
    if metric.starts_with("val/") {
        DatasetType::Validation
    } else if metric.starts_with("train/") {
        DatasetType::Training
    } else {
        DatasetType::Unknown
    }
}

/// The experiment and session-start summaries, in that order.
pub fn start_values(start: &HParamsStart) -> [summary::Value; 2] {
    let experiment = Experiment {
        name: start.group_name.clone(),
        time_created_secs: start.start_time_secs,
        hparam_infos: start
            .hparams
            .iter()
            .map(|(name, v)| HParamInfo {
                name: name.clone(),
                r#type: v.data_type() as i32,
                ..Default::default()
            })
            .collect(),
        metric_infos: start
            .metrics
            .iter()
            .map(|tag| MetricInfo {
                name: Some(MetricName {
                    group: String::new(),
                    tag: tag.clone(),
                }),
                dataset_type: dataset_of(tag) as i32,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let session = SessionStartInfo {
        hparams: start
            .hparams
            .iter()
            .map(|(k, v)| (k.clone(), v.to_proto()))
            .collect(),
        group_name: start.group_name.clone(),
        start_time_secs: start.start_time_secs,
        ..Default::default()
    };
    [
        hparams_value(EXPERIMENT_TAG, Data::Experiment(experiment)),
        hparams_value(SESSION_START_INFO_TAG, Data::SessionStartInfo(session)),
    ]
}

/// The session-end summary.
pub fn end_value(status: RunStatus, end_time_secs: f64) -> summary::Value {
    hparams_value(
        SESSION_END_INFO_TAG,
        Data::SessionEndInfo(SessionEndInfo {
            status: status.to_proto() as i32,
            end_time_secs,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_values_decode_as_plugin_data() {
        let start = HParamsStart {
            group_name: "run".into(),
            hparams: [("optim.lr".to_owned(), HParamValue::Number(0.1))].into(),
            metrics: vec!["val/loss".into()],
            start_time_secs: 1.0,
        };
        let [exp, sess] = start_values(&start);
        assert_eq!(exp.tag, EXPERIMENT_TAG);
        let content = exp.metadata.unwrap().plugin_data.unwrap().content;
        let Some(Data::Experiment(e)) = HParamsPluginData::decode(&content[..]).unwrap().data
        else {
            panic!("not an experiment")
        };
        assert_eq!(e.hparam_infos[0].r#type, HParamDataType::Float64 as i32);
        assert_eq!(
            e.metric_infos[0].dataset_type,
            DatasetType::Validation as i32
        );
        let content = sess.metadata.unwrap().plugin_data.unwrap().content;
        let Some(Data::SessionStartInfo(s)) = HParamsPluginData::decode(&content[..]).unwrap().data
        else {
            panic!("not a session start")
        };
        assert_eq!(s.hparams["optim.lr"].kind, Some(Kind::NumberValue(0.1)));
    }
}
