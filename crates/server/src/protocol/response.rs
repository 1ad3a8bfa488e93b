//! The outputs: which ones a request asks for and in which form ([`OutputSpec`],
//! from its `outputs` and `parameters.binary_data_output`), and the response
//! that carries them, JSON or JSON plus raw bytes ([`encode_response`]).

use serde_json::{Map, Value, json};

use super::{BadInput, DECISIONS, SCORES};

/// How each output is returned; None: not asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutputSpec {
    /// `scores` (FP32 `[n, labels]`): Some(binary?).
    pub scores: Option<bool>,
    /// `decisions` (BOOL `[n, labels]`): Some(binary?).
    pub decisions: Option<bool>,
}
pub(super) fn parse_outputs(req: &Map<String, Value>) -> Result<OutputSpec, BadInput> {
    let [scores, decisions] = requested_outputs(req, [SCORES, DECISIONS])?;
    Ok(OutputSpec { scores, decisions })
}

/// Which of the `known` outputs a request asks for, each `Some(binary?)` or
/// None, in `known`'s order: from its `outputs` (each output's
/// `parameters.binary_data`, else the request's `parameters.binary_data_output`),
/// every one of `known` when it names none. An output not in `known` is refused
/// naming the ones the model returns.
pub(crate) fn requested_outputs<const N: usize>(
    req: &Map<String, Value>,
    known: [&str; N],
) -> Result<[Option<bool>; N], BadInput> {
    let default_binary = match req
        .get("parameters")
        .and_then(|p| p.get("binary_data_output"))
    {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(BadInput::new(
                None,
                None,
                "parameters.binary_data_output must be true or false",
            ));
        }
    };
    let Some(outputs) = req.get("outputs") else {
        return Ok([Some(default_binary); N]);
    };
    let outputs = outputs
        .as_array()
        .ok_or_else(|| BadInput::new(None, None, "'outputs' must be an array"))?;
    let mut spec = [None; N];
    for out in outputs {
        let name = out
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| BadInput::new(None, None, "an output has no 'name'"))?;
        let binary = match out.get("parameters").and_then(|p| p.get("binary_data")) {
            None | Some(Value::Null) => default_binary,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(BadInput::new(
                    Some(name),
                    None,
                    "parameters.binary_data must be true or false",
                ));
            }
        };
        match known.iter().position(|k| *k == name) {
            Some(i) => spec[i] = Some(binary),
            None => {
                return Err(BadInput::new(
                    Some(name),
                    None,
                    format!("unknown output (the model returns: {})", known.join(", ")),
                ));
            }
        }
    }
    Ok(spec)
}

/// A response: the JSON header and, when an output is binary, the raw tail
/// (its length goes into `Inference-Header-Content-Length`).
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// The JSON header.
    pub json: Vec<u8>,
    /// Raw output bytes after it (None: a plain JSON response).
    pub binary: Option<Vec<u8>>,
}

/// Encodes the outputs of `n` rows × `labels` labels.
pub fn encode_response(
    model: &str,
    version: u64,
    id: Option<&str>,
    spec: OutputSpec,
    labels: usize,
    probs: &[f32],
    decisions: &[bool],
) -> Encoded {
    let n = probs.len().checked_div(labels).unwrap_or(0);
    let mut outputs = Vec::new();
    let mut tail: Vec<u8> = Vec::new();
    let mut any_binary = false;
    if let Some(binary) = spec.scores {
        let mut out = json!({ "name": SCORES, "datatype": "FP32", "shape": [n, labels] });
        if binary {
            any_binary = true;
            let start = tail.len();
            probs
                .iter()
                .for_each(|p| tail.extend_from_slice(&p.to_le_bytes()));
            out["parameters"] = json!({ "binary_data_size": tail.len() - start });
        } else {
            out["data"] = json!(probs);
        }
        outputs.push(out);
    }
    if let Some(binary) = spec.decisions {
        let mut out = json!({ "name": DECISIONS, "datatype": "BOOL", "shape": [n, labels] });
        if binary {
            any_binary = true;
            tail.extend(decisions.iter().map(|&d| u8::from(d)));
            out["parameters"] = json!({ "binary_data_size": decisions.len() });
        } else {
            out["data"] = json!(decisions);
        }
        outputs.push(out);
    }
    let mut head = json!({
        "model_name": model,
        "model_version": version.to_string(),
        "outputs": outputs,
    });
    if let Some(id) = id {
        head["id"] = json!(id);
    }
    Encoded {
        json: serde_json::to_vec(&head).expect("a response serializes"),
        binary: any_binary.then_some(tail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_json_or_json_plus_raw_outputs() {
        let all_json = OutputSpec {
            scores: Some(false),
            decisions: Some(false),
        };
        let e = encode_response("m", 3, Some("x"), all_json, 2, &[0.25, 0.5], &[false, true]);
        assert!(e.binary.is_none());
        let v: Value = serde_json::from_slice(&e.json).unwrap();
        assert_eq!(v["model_version"], "3");
        assert_eq!(v["id"], "x");
        assert_eq!(v["outputs"][0]["shape"], json!([1, 2]));
        assert_eq!(v["outputs"][1]["data"], json!([false, true]));
        let raw = OutputSpec {
            scores: Some(true),
            decisions: Some(true),
        };
        let e = encode_response("m", 3, None, raw, 2, &[0.25, 0.5], &[false, true]);
        let tail = e.binary.unwrap();
        assert_eq!(tail.len(), 8 + 2);
        assert_eq!(&tail[..4], &0.25f32.to_le_bytes());
        assert_eq!(&tail[8..], &[0, 1]);
        let v: Value = serde_json::from_slice(&e.json).unwrap();
        assert_eq!(v["outputs"][0]["parameters"]["binary_data_size"], 8);
        assert!(v.get("id").is_none());
    }
}
