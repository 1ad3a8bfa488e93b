//! Parsing an infer body: the JSON header, each input's tensor (from its `data`
//! or from the binary tail, in input order), the outputs asked for, and the
//! checks that bind them to the loaded version's towers and the limits.

use serde_json::{Map, Value};

use super::response::parse_outputs;
use super::rows::{combine, to_texts};
use super::tensor::tensor_elements;
use super::{BadInput, IMAGE, OutputSpec, Rows, TEXT, Towers};
use crate::limits::Limits;

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

/// Parses an infer body. `header_len` is `Inference-Header-Content-Length`
/// (None: the whole body is JSON).
pub fn parse_infer(
    body: &[u8],
    header_len: Option<usize>,
    towers: Towers,
    limits: &Limits,
) -> Result<InferRequest, BadInput> {
    let Parsed { head, id, rows } = parse_rows(body, header_len, towers, limits)?;
    let outputs = parse_outputs(&head)?;
    Ok(InferRequest { id, rows, outputs })
}

/// What every model served here reads alike from an infer body.
pub(crate) struct Parsed {
    /// The JSON header, for the caller's outputs and parameters.
    pub head: Map<String, Value>,
    /// The request `id`.
    pub id: Option<String>,
    /// The rows of its `text` and `image` inputs.
    pub rows: Rows,
}

/// The part of an infer body every model served here reads alike ([`Parsed`]),
/// the rows bound by the limits.
pub(crate) fn parse_rows(
    body: &[u8],
    header_len: Option<usize>,
    towers: Towers,
    limits: &Limits,
) -> Result<Parsed, BadInput> {
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
    let Value::Object(req) = req else {
        return Err(BadInput::new(
            None,
            None,
            "the request must be a JSON object",
        ));
    };
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
    Ok(Parsed {
        head: req,
        id,
        rows,
    })
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

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use serde_json::json;

    use super::*;
    use crate::protocol::join_bytes;

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
}
