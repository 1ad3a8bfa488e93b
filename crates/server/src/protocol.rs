//! The KServe v2 / Open Inference Protocol request and response bodies, with
//! Triton's binary tensor data extension — parsing and validation without I/O.
//!
//! A request body is a JSON header, optionally followed by raw tensor bytes: the
//! header's length is `Inference-Header-Content-Length`, and each input whose
//! `parameters.binary_data_size` is set takes that many bytes from the tail, in
//! input order. A BYTES tensor's raw form is each element as a 4-byte
//! little-endian length and its bytes (Triton's serialisation, what `tritonclient`
//! sends by default). In the JSON form a BYTES element is a string: the text
//! itself for `text`, base64 of the encoded image file for `image`.
//!
//! An output is returned raw (FP32 little-endian, BOOL one byte per element) when
//! its `parameters.binary_data` is true, or, for outputs without that parameter,
//! when the request's `parameters.binary_data_output` is. Every check here names
//! the input (or output) and, where it is about one element, the row: the HTTP
//! layer turns [`BadInput`] into a 400 with that message. `/v1/moderate`'s
//! plain JSON body is parsed beside it, in `moderate.rs`, into the same [`Rows`].

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::limits::Limits;

/// A request the client must fix: HTTP 400 naming the input and row.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{}: {message}", match input { Some(i) => format!("input '{i}'"), None => "request".into() },
        match row { Some(r) => format!(" row {r}"), None => String::new() })]
pub struct BadInput {
    /// The tensor (input or output name) at fault; None: the request as a whole.
    pub input: Option<String>,
    /// The row (batch element, from 0) at fault.
    pub row: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl BadInput {
    pub(crate) fn new(input: Option<&str>, row: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            input: input.map(str::to_string),
            row,
            message: message.into(),
        }
    }

    /// The JSON error body: KServe's `{"error": message}` plus the input and row.
    pub fn to_json(&self) -> Value {
        json!({ "error": self.to_string(), "input": self.input, "row": self.row })
    }
}

/// Which towers the loaded version runs: which inputs it accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Towers {
    /// The model has a text tower (input `text`).
    pub text: bool,
    /// The model has an image tower (input `image`).
    pub image: bool,
}

/// Rows to score: per row an optional text and an optional encoded image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    /// Texts (None: the row has no text).
    pub texts: Vec<Option<String>>,
    /// Encoded image files (None: the row has no image).
    pub images: Vec<Option<Vec<u8>>>,
}

impl Rows {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.texts.len()
    }
}

/// How each output is returned; None: not asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutputSpec {
    /// `scores` (FP32 `[n, labels]`): Some(binary?).
    pub scores: Option<bool>,
    /// `decisions` (BOOL `[n, labels]`): Some(binary?).
    pub decisions: Option<bool>,
}

/// A parsed, validated infer request.
#[derive(Debug, Clone, PartialEq)]
pub struct InferRequest {
    /// The request `id`, echoed in the response.
    pub id: Option<String>,
    /// The rows.
    pub rows: Rows,
    /// The outputs asked for, in response order (scores first).
    pub outputs: OutputSpec,
}

/// The input names, datatypes and output names of the protocol.
pub const TEXT: &str = "text";
/// Encoded image files, one per row.
pub const IMAGE: &str = "image";
/// Probabilities `[n, labels]`.
pub const SCORES: &str = "scores";
/// Decisions at the shipped thresholds `[n, labels]`.
pub const DECISIONS: &str = "decisions";

/// Parses an infer body. `header_len` is `Inference-Header-Content-Length`
/// (None: the whole body is JSON).
pub fn parse_infer(
    body: &[u8],
    header_len: Option<usize>,
    towers: Towers,
    limits: &Limits,
) -> Result<InferRequest, BadInput> {
    let json_len = header_len.unwrap_or(body.len());
    if json_len > body.len() {
        return Err(BadInput::new(
            None,
            None,
            format!(
                "Inference-Header-Content-Length is {json_len} but the body holds {} bytes",
                body.len()
            ),
        ));
    }
    let (head, mut tail) = body.split_at(json_len);
    let req: Value = serde_json::from_slice(head)
        .map_err(|e| BadInput::new(None, None, format!("malformed JSON: {e}")))?;
    let req = req
        .as_object()
        .ok_or_else(|| BadInput::new(None, None, "the request must be a JSON object"))?;
    let id = match req.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(BadInput::new(None, None, "'id' must be a string")),
    };
    let inputs = req
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or_else(|| BadInput::new(None, None, "'inputs' must be an array of tensors"))?;
    let mut texts: Option<Vec<Option<String>>> = None;
    let mut images: Option<Vec<Option<Vec<u8>>>> = None;
    for input in inputs {
        let input = input
            .as_object()
            .ok_or_else(|| BadInput::new(None, None, "each input must be a JSON object"))?;
        let name = input
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| BadInput::new(None, None, "an input has no 'name'"))?;
        let (known, present) = match name {
            TEXT => (towers.text, texts.is_some()),
            IMAGE => (towers.image, images.is_some()),
            other => {
                return Err(BadInput::new(
                    Some(other),
                    None,
                    format!("unknown input (the model takes: {})", input_names(towers)),
                ));
            }
        };
        if !known {
            return Err(BadInput::new(
                Some(name),
                None,
                format!(
                    "this model has no {name} tower (it takes: {})",
                    input_names(towers)
                ),
            ));
        }
        if present {
            return Err(BadInput::new(Some(name), None, "given twice"));
        }
        let elements = tensor_elements(name, input, &mut tail, limits)?;
        if name == TEXT {
            texts = Some(to_texts(elements, limits)?);
        } else {
            images = Some(
                elements
                    .into_iter()
                    .map(|e| (!e.is_empty()).then_some(e))
                    .collect(),
            );
        }
    }
    if !tail.is_empty() {
        return Err(BadInput::new(
            None,
            None,
            format!(
                "{} bytes of binary data follow the inputs' binary_data_size",
                tail.len()
            ),
        ));
    }
    let rows = combine(texts, images, limits)?;
    let outputs = parse_outputs(req)?;
    Ok(InferRequest { id, rows, outputs })
}

fn input_names(towers: Towers) -> String {
    let mut names = Vec::new();
    if towers.text {
        names.push(TEXT);
    }
    if towers.image {
        names.push(IMAGE);
    }
    names.join(", ")
}

/// The elements of one BYTES input, from its JSON `data` or from the binary tail.
fn tensor_elements(
    name: &str,
    input: &Map<String, Value>,
    tail: &mut &[u8],
    limits: &Limits,
) -> Result<Vec<Vec<u8>>, BadInput> {
    let bad = |msg: String| BadInput::new(Some(name), None, msg);
    match input.get("datatype").and_then(Value::as_str) {
        Some("BYTES") => {}
        Some(other) => return Err(bad(format!("datatype must be BYTES, not {other}"))),
        None => return Err(bad("has no 'datatype' (BYTES)".into())),
    }
    let shape: Vec<u64> = input
        .get("shape")
        .and_then(Value::as_array)
        .and_then(|s| s.iter().map(Value::as_u64).collect())
        .ok_or_else(|| bad("'shape' must be an array of non-negative integers".into()))?;
    let n = match shape.as_slice() {
        [n] | [n, 1] => *n as usize,
        _ => return Err(bad(format!("shape must be [n] (or [n, 1]), not {shape:?}"))),
    };
    if n > limits.max_rows {
        return Err(bad(format!(
            "{n} rows is more than --max-rows {}",
            limits.max_rows
        )));
    }
    let binary_size = input
        .get("parameters")
        .and_then(|p| p.get("binary_data_size"))
        .map(|v| {
            v.as_u64()
                .ok_or_else(|| bad("binary_data_size must be a non-negative integer".into()))
        })
        .transpose()?;
    let elements = match (binary_size, input.get("data")) {
        (Some(_), Some(_)) => {
            return Err(bad("has both 'data' and parameters.binary_data_size".into()));
        }
        (None, None) => return Err(bad("has neither 'data' nor binary_data_size".into())),
        (Some(size), None) => {
            let size = size as usize;
            if size > tail.len() {
                return Err(bad(format!(
                    "binary_data_size {size} is more than the {} bytes left in the body",
                    tail.len()
                )));
            }
            let (mine, rest) = tail.split_at(size);
            *tail = rest;
            split_bytes(name, mine, n)?
        }
        (None, Some(data)) => {
            let mut flat = Vec::with_capacity(n);
            flatten(data, &mut flat);
            if flat.len() != n {
                return Err(bad(format!(
                    "shape says {n} elements but 'data' holds {}",
                    flat.len()
                )));
            }
            flat.into_iter()
                .enumerate()
                .map(|(row, v)| json_element(name, row, v))
                .collect::<Result<_, _>>()?
        }
    };
    Ok(elements)
}

fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

/// One JSON BYTES element: the text, or base64 of the image file.
pub(crate) fn json_element(name: &str, row: usize, v: &Value) -> Result<Vec<u8>, BadInput> {
    let s = v
        .as_str()
        .ok_or_else(|| BadInput::new(Some(name), Some(row), "a BYTES element must be a string"))?;
    if name == IMAGE {
        base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map_err(|e| BadInput::new(Some(name), Some(row), format!("bad base64: {e}")))
    } else {
        Ok(s.as_bytes().to_vec())
    }
}

/// Splits Triton's serialised BYTES tensor: per element a u32 LE length, then bytes.
pub fn split_bytes(name: &str, mut raw: &[u8], n: usize) -> Result<Vec<Vec<u8>>, BadInput> {
    let mut out = Vec::with_capacity(n);
    for row in 0..n {
        let Some((len, rest)) = raw.split_first_chunk::<4>() else {
            return Err(BadInput::new(
                Some(name),
                Some(row),
                format!("binary data ends before element {row} of {n}"),
            ));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len > rest.len() {
            return Err(BadInput::new(
                Some(name),
                Some(row),
                format!("element length {len} runs past the binary data"),
            ));
        }
        let (elem, rest) = rest.split_at(len);
        out.push(elem.to_vec());
        raw = rest;
    }
    if !raw.is_empty() {
        return Err(BadInput::new(
            Some(name),
            None,
            format!("{} bytes of binary data after the {n} elements", raw.len()),
        ));
    }
    Ok(out)
}

/// Serialises BYTES elements in Triton's binary form (what a client sends).
pub fn join_bytes<'a>(elements: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for e in elements {
        out.extend_from_slice(&(e.len() as u32).to_le_bytes());
        out.extend_from_slice(e);
    }
    out
}

/// Texts from raw elements: UTF-8, bounded; empty or whitespace-only is no text
/// (as the data layer reads a row).
pub(crate) fn to_texts(
    elements: Vec<Vec<u8>>,
    limits: &Limits,
) -> Result<Vec<Option<String>>, BadInput> {
    elements
        .into_iter()
        .enumerate()
        .map(|(row, e)| {
            if e.len() > limits.max_text_bytes {
                return Err(BadInput::new(
                    Some(TEXT),
                    Some(row),
                    format!(
                        "{} bytes of text is more than --max-text-bytes {}",
                        e.len(),
                        limits.max_text_bytes
                    ),
                ));
            }
            let s = String::from_utf8(e)
                .map_err(|_| BadInput::new(Some(TEXT), Some(row), "text is not valid UTF-8"))?;
            Ok((!s.trim().is_empty()).then_some(s))
        })
        .collect()
}

/// Rows from the inputs given: one missing input means that modality is absent
/// in every row; both must have the same length; a row needs text or an image.
pub fn combine(
    texts: Option<Vec<Option<String>>>,
    images: Option<Vec<Option<Vec<u8>>>>,
    limits: &Limits,
) -> Result<Rows, BadInput> {
    let n = match (&texts, &images) {
        (None, None) => return Err(BadInput::new(None, None, "no inputs (text and/or image)")),
        (Some(t), Some(i)) if t.len() != i.len() => {
            return Err(BadInput::new(
                Some(IMAGE),
                None,
                format!("has {} rows but input 'text' has {}", i.len(), t.len()),
            ));
        }
        (Some(t), _) => t.len(),
        (None, Some(i)) => i.len(),
    };
    if n == 0 {
        return Err(BadInput::new(None, None, "no rows (shape [0])"));
    }
    if n > limits.max_rows {
        return Err(BadInput::new(
            None,
            None,
            format!("{n} rows is more than --max-rows {}", limits.max_rows),
        ));
    }
    let texts = texts.unwrap_or_else(|| vec![None; n]);
    let images = images.unwrap_or_else(|| vec![None; n]);
    if let Some(row) = (0..n).find(|&r| texts[r].is_none() && images[r].is_none()) {
        return Err(BadInput::new(
            Some(TEXT),
            Some(row),
            "the row has neither text nor an image (both elements are empty)",
        ));
    }
    Ok(Rows { texts, images })
}

fn parse_outputs(req: &Map<String, Value>) -> Result<OutputSpec, BadInput> {
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
        return Ok(OutputSpec {
            scores: Some(default_binary),
            decisions: Some(default_binary),
        });
    };
    let outputs = outputs
        .as_array()
        .ok_or_else(|| BadInput::new(None, None, "'outputs' must be an array"))?;
    let mut spec = OutputSpec {
        scores: None,
        decisions: None,
    };
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
        match name {
            SCORES => spec.scores = Some(binary),
            DECISIONS => spec.decisions = Some(binary),
            other => {
                return Err(BadInput::new(
                    Some(other),
                    None,
                    "unknown output (the model returns: scores, decisions)",
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

    const BOTH: Towers = Towers {
        text: true,
        image: true,
    };

    fn parse(v: Value) -> Result<InferRequest, BadInput> {
        parse_infer(v.to_string().as_bytes(), None, BOTH, &Limits::default())
    }

    fn text_input(data: Value, shape: Value) -> Value {
        json!({ "name": "text", "datatype": "BYTES", "shape": shape, "data": data })
    }

    #[test]
    fn json_text_and_base64_images_with_empty_elements_as_missing() {
        let png = base64::engine::general_purpose::STANDARD.encode(b"\x89PNG");
        let req = parse(json!({
            "id": "r1",
            "inputs": [
                text_input(json!(["hello", ""]), json!([2])),
                { "name": "image", "datatype": "BYTES", "shape": [2], "data": ["", png] },
            ],
        }))
        .unwrap();
        assert_eq!(req.id.as_deref(), Some("r1"));
        assert_eq!(req.rows.texts, vec![Some("hello".to_string()), None]);
        assert_eq!(req.rows.images, vec![None, Some(b"\x89PNG".to_vec())]);
        assert_eq!(
            req.outputs,
            OutputSpec {
                scores: Some(false),
                decisions: Some(false)
            }
        );
    }

    #[test]
    fn binary_inputs_follow_the_json_header_in_order() {
        let text = join_bytes([&b"hi"[..], b"there"]);
        let image = join_bytes([&b""[..], b"IMG"]);
        let head = json!({
            "inputs": [
                { "name": "text", "datatype": "BYTES", "shape": [2, 1],
                  "parameters": { "binary_data_size": text.len() } },
                { "name": "image", "datatype": "BYTES", "shape": [2],
                  "parameters": { "binary_data_size": image.len() } },
            ],
            "outputs": [{ "name": "scores", "parameters": { "binary_data": true } }],
        })
        .to_string();
        let mut body = head.clone().into_bytes();
        body.extend_from_slice(&text);
        body.extend_from_slice(&image);
        let req = parse_infer(&body, Some(head.len()), BOTH, &Limits::default()).unwrap();
        assert_eq!(req.rows.texts[1].as_deref(), Some("there"));
        assert_eq!(req.rows.images, vec![None, Some(b"IMG".to_vec())]);
        assert_eq!(
            req.outputs,
            OutputSpec {
                scores: Some(true),
                decisions: None
            }
        );
        // A binary size past the body, and bytes left over, are both refused.
        let err = parse_infer(
            &body[..body.len() - 1],
            Some(head.len()),
            BOTH,
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(err.input.as_deref(), Some("image"));
        let mut long = body.clone();
        long.push(0);
        assert!(parse_infer(&long, Some(head.len()), BOTH, &Limits::default()).is_err());
        let err = parse_infer(&body, Some(body.len() + 1), BOTH, &Limits::default()).unwrap_err();
        assert!(
            err.message.contains("Inference-Header-Content-Length"),
            "{err}"
        );
    }

    #[test]
    fn every_bad_input_names_the_input_and_row() {
        let cases: Vec<(Value, Option<&str>, Option<usize>, &str)> = vec![
            (
                json!({"inputs": [{"name": "txt", "datatype": "BYTES", "shape": [1], "data": ["a"]}]}),
                Some("txt"),
                None,
                "unknown input",
            ),
            (
                json!({"inputs": [{"name": "text", "datatype": "FP32", "shape": [1], "data": [1.0]}]}),
                Some("text"),
                None,
                "datatype must be BYTES",
            ),
            (
                json!({"inputs": [text_input(json!(["a", "b"]), json!([3]))]}),
                Some("text"),
                None,
                "shape says 3",
            ),
            (
                json!({"inputs": [text_input(json!(["a"]), json!([1, 2]))]}),
                Some("text"),
                None,
                "shape must be",
            ),
            (
                json!({"inputs": [text_input(json!(["a", 5]), json!([2]))]}),
                Some("text"),
                Some(1),
                "must be a string",
            ),
            (
                json!({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2], "data": ["", ""]}]}),
                Some("text"),
                Some(0),
                "neither text nor an image",
            ),
            (
                json!({"inputs": [text_input(json!(["a"]), json!([1])),
                    {"name": "image", "datatype": "BYTES", "shape": [1], "data": ["%%%"]}]}),
                Some("image"),
                Some(0),
                "bad base64",
            ),
            (
                json!({"inputs": [text_input(json!(["a"]), json!([1]))], "outputs": [{"name": "logits"}]}),
                Some("logits"),
                None,
                "unknown output",
            ),
            (
                json!({"inputs": [text_input(json!(["a", "b"]), json!([2])),
                    {"name": "image", "datatype": "BYTES", "shape": [1], "data": [""]}]}),
                Some("image"),
                None,
                "has 1 rows",
            ),
        ];
        for (req, input, row, words) in cases {
            let err = parse(req.clone()).unwrap_err();
            assert_eq!(err.input.as_deref(), input, "{req}: {err}");
            assert_eq!(err.row, row, "{req}: {err}");
            assert!(err.to_string().contains(words), "{req}: {err}");
            let body = err.to_json();
            assert_eq!(body["error"], err.to_string());
        }
        let err = parse_infer(b"{not json", None, BOTH, &Limits::default()).unwrap_err();
        assert!(err.message.contains("malformed JSON"), "{err}");
        let text_only = Towers {
            text: true,
            image: false,
        };
        let req =
            json!({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [""]}]});
        let err = parse_infer(
            req.to_string().as_bytes(),
            None,
            text_only,
            &Limits::default(),
        )
        .unwrap_err();
        assert!(err.message.contains("no image tower"), "{err}");
    }

    #[test]
    fn limits_bound_rows_and_text() {
        let limits = Limits {
            max_rows: 2,
            max_text_bytes: 4,
            ..Limits::default()
        };
        let req = json!({"inputs": [text_input(json!(["a", "b", "c"]), json!([3]))]});
        let err = parse_infer(req.to_string().as_bytes(), None, BOTH, &limits).unwrap_err();
        assert!(err.message.contains("--max-rows 2"), "{err}");
        let req = json!({"inputs": [text_input(json!(["abcd", "abcde"]), json!([2]))]});
        let err = parse_infer(req.to_string().as_bytes(), None, BOTH, &limits).unwrap_err();
        assert_eq!(err.row, Some(1));
        assert!(err.message.contains("--max-text-bytes 4"), "{err}");
    }

    #[test]
    fn truncated_binary_elements_are_refused() {
        assert!(split_bytes("text", &[1, 0, 0], 1).is_err());
        let err = split_bytes("text", &[9, 0, 0, 0, b'a'], 1).unwrap_err();
        assert_eq!(err.row, Some(0));
        assert_eq!(
            split_bytes("text", &join_bytes([&b"ab"[..]]), 1).unwrap(),
            vec![b"ab".to_vec()]
        );
    }

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
