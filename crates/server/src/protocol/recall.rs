//! The `<model>-recall` model's request and response (pure): the same rows as
//! the model's infer body, a bounded `k` and an optional `label` among its
//! parameters ([`parse_recall`]), and per row the `k` nearest indexed items —
//! their ids, cosine similarities and the model's build-time score — as KServe
//! outputs ([`encode_recall`]).
//!
//! Why a table `[rows, k']` padded rather than ragged rows: a KServe tensor is
//! rectangular. `k'` is the most neighbours any row got (`k`, unless the index
//! holds fewer live items); a row with fewer is padded with an empty id, the
//! similarity -1 (the least a cosine can be) and no score, so a client tells
//! padding by the empty id (indexed ids are never empty).

use serde_json::{Value, json};

use super::request::{Parsed, parse_rows};
use super::response::{Encoded, requested_outputs};
use super::{BadInput, Rows, Towers, join_bytes};
use crate::limits::Limits;

/// Output: the neighbours' ids, BYTES `[rows, k']`.
pub const IDS: &str = "ids";
/// Output: their cosine similarity to the row, FP32 `[rows, k']`.
pub const SIMILARITY: &str = "similarity";
/// Output: the model's probability for one label when they were indexed, FP32
/// `[rows, k']` (only when the index holds scores).
pub const SCORE: &str = "score";
/// The request parameter naming how many neighbours each row gets.
pub const K: &str = "k";
/// The request parameter naming the label of the `score` output.
pub const LABEL: &str = "label";
/// Neighbours per row when a request names no `k` (at most the limit).
pub const DEFAULT_K: usize = 10;

/// The recall model's outputs, in response order.
pub const RECALL_OUTPUTS: [&str; 3] = [IDS, SIMILARITY, SCORE];

/// A parsed, validated recall request.
#[derive(Debug, Clone, PartialEq)]
pub struct RecallRequest {
    /// The request `id`, echoed in the response.
    pub id: Option<String>,
    /// The rows to embed and search for.
    pub rows: Rows,
    /// Neighbours per row, within `1..=max_k`.
    pub k: usize,
    /// `parameters.label`: the label of the `score` output (None: the index's first).
    pub label: Option<String>,
    /// [`RECALL_OUTPUTS`] asked for: `Some(binary?)` each; all three without
    /// an `outputs` list (`score` then only where the index has scores).
    pub outputs: [Option<bool>; 3],
    /// Whether the request listed its outputs (an explicit `score` is refused
    /// by an index without scores; a default one is left out).
    pub explicit_outputs: bool,
}

/// Parses a recall infer body: the rows as [`super::parse_infer`] reads them
/// (the same limits), `parameters.k` (default [`DEFAULT_K`], at most `max_k`)
/// and `parameters.label`.
pub fn parse_recall(
    body: &[u8],
    header_len: Option<usize>,
    towers: Towers,
    limits: &Limits,
    max_k: usize,
) -> Result<RecallRequest, BadInput> {
    let Parsed { head, id, rows } = parse_rows(body, header_len, towers, limits)?;
    let params = head.get("parameters");
    let k = match params.and_then(|p| p.get(K)) {
        None | Some(Value::Null) => DEFAULT_K.min(max_k),
        Some(v) => match v.as_u64() {
            Some(0) | None => {
                return Err(BadInput::new(
                    None,
                    None,
                    format!("parameters.k must be a positive integer, not {v}"),
                ));
            }
            Some(k) => check_k(k, max_k)?,
        },
    };
    let label = match params.and_then(|p| p.get(LABEL)) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => {
            return Err(BadInput::new(
                None,
                None,
                format!("parameters.label must be a label name (a string), not {v}"),
            ));
        }
    };
    let outputs = requested_outputs(&head, RECALL_OUTPUTS)?;
    Ok(RecallRequest {
        id,
        rows,
        k,
        label,
        outputs,
        explicit_outputs: head.contains_key("outputs"),
    })
}

/// `k` within `1..=max_k`; over it, a 400 naming the limit and its flag.
pub fn check_k(k: u64, max_k: usize) -> Result<usize, BadInput> {
    match usize::try_from(k) {
        Ok(k) if (1..=max_k).contains(&k) => Ok(k),
        _ if k == 0 => Err(BadInput::new(None, None, "k must be at least 1")),
        _ => Err(BadInput::new(
            None,
            None,
            format!("k {k} exceeds the limit {max_k} (--recall-max-k)"),
        )),
    }
}

/// Which of the index's `labels` the `score` output carries: the one
/// `requested`, else the first; None when the index holds no scores. An unknown
/// label is refused naming the index's.
pub fn choose_label(labels: &[String], requested: Option<&str>) -> Result<Option<usize>, BadInput> {
    match requested {
        None => Ok((!labels.is_empty()).then_some(0)),
        Some(l) => labels.iter().position(|x| x == l).map(Some).ok_or_else(|| {
            BadInput::new(
                None,
                None,
                if labels.is_empty() {
                    format!("parameters.label '{l}': the index holds no scores")
                } else {
                    format!(
                        "parameters.label '{l}' is not a label of the index ({})",
                        labels.join(", ")
                    )
                },
            )
        }),
    }
}

/// One neighbour of a row: id, similarity, and the chosen label's score.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbour {
    /// The indexed item's id.
    pub id: String,
    /// Cosine similarity to the row.
    pub similarity: f32,
    /// The model's build-time probability for the chosen label (None: not asked,
    /// or the item has none).
    pub score: Option<f32>,
}

/// What a recall response carries besides the neighbours.
#[derive(Debug, Clone, Copy)]
pub struct RecallHeader<'a> {
    /// `<model>-recall`.
    pub model: &'a str,
    /// The index version searched (the response's `model_version`).
    pub index_version: u64,
    /// The model version that embedded the rows (`parameters.embedding_model_version`).
    pub model_version: u64,
    /// The request `id`.
    pub id: Option<&'a str>,
    /// The label of `score`, when it is returned.
    pub label: Option<&'a str>,
}

/// Encodes per-row neighbours (each row most similar first) as the outputs
/// asked for, `[rows, k']` with `k'` the longest row (see the module docs for
/// the padding).
pub fn encode_recall(
    head: &RecallHeader<'_>,
    outputs: [Option<bool>; 3],
    rows: &[Vec<Neighbour>],
) -> Encoded {
    let n = rows.len();
    let k = rows.iter().map(Vec::len).max().unwrap_or(0);
    let cell = |r: usize, c: usize| rows[r].get(c);
    let ids: Vec<&str> = (0..n)
        .flat_map(|r| (0..k).map(move |c| (r, c)))
        .map(|(r, c)| cell(r, c).map_or("", |x| x.id.as_str()))
        .collect();
    let sims: Vec<f32> = (0..n)
        .flat_map(|r| (0..k).map(move |c| (r, c)))
        .map(|(r, c)| cell(r, c).map_or(-1.0, |x| x.similarity))
        .collect();
    let scores: Vec<f32> = (0..n)
        .flat_map(|r| (0..k).map(move |c| (r, c)))
        .map(|(r, c)| cell(r, c).and_then(|x| x.score).unwrap_or(f32::NAN))
        .collect();
    let mut out = Vec::new();
    let mut tail: Vec<u8> = Vec::new();
    let mut any_binary = false;
    let [want_ids, want_sims, want_scores] = outputs;
    if let Some(binary) = want_ids {
        let mut o = json!({ "name": IDS, "datatype": "BYTES", "shape": [n, k] });
        if binary {
            any_binary = true;
            let raw = join_bytes(ids.iter().map(|s| s.as_bytes()));
            o["parameters"] = json!({ "binary_data_size": raw.len() });
            tail.extend_from_slice(&raw);
        } else {
            o["data"] = json!(ids);
        }
        out.push(o);
    }
    for (name, want, values) in [
        (SIMILARITY, want_sims, &sims),
        (SCORE, want_scores, &scores),
    ] {
        let Some(binary) = want else { continue };
        let mut o = json!({ "name": name, "datatype": "FP32", "shape": [n, k] });
        if binary {
            any_binary = true;
            o["parameters"] = json!({ "binary_data_size": values.len() * 4 });
            values
                .iter()
                .for_each(|v| tail.extend_from_slice(&v.to_le_bytes()));
        } else {
            // A missing score is JSON null (NaN in the binary form).
            o["data"] = json!(values);
        }
        out.push(o);
    }
    let mut params = json!({ "embedding_model_version": head.model_version.to_string() });
    if let (Some(label), Some(_)) = (head.label, want_scores) {
        params["label"] = json!(label);
    }
    let mut v = json!({
        "model_name": head.model,
        "model_version": head.index_version.to_string(),
        "outputs": out,
        "parameters": params,
    });
    if let Some(id) = head.id {
        v["id"] = json!(id);
    }
    Encoded {
        json: serde_json::to_vec(&v).expect("a response serializes"),
        binary: any_binary.then_some(tail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT_ONLY: Towers = Towers {
        text: true,
        image: false,
    };

    fn parse(v: Value, max_k: usize) -> Result<RecallRequest, BadInput> {
        parse_recall(
            v.to_string().as_bytes(),
            None,
            TEXT_ONLY,
            &Limits::default(),
            max_k,
        )
    }

    fn body(params: Value) -> Value {
        json!({
            "inputs": [{ "name": "text", "datatype": "BYTES", "shape": [2], "data": ["a", "b"] }],
            "parameters": params,
        })
    }

    #[test]
    fn k_defaults_and_is_bounded_by_the_limit_named_in_the_error() {
        let r = parse(body(json!({})), 100).unwrap();
        assert_eq!((r.k, r.rows.len()), (DEFAULT_K, 2));
        assert_eq!(r.outputs, [Some(false); 3]);
        assert!(!r.explicit_outputs);
        assert_eq!(
            parse(body(json!({})), 3).unwrap().k,
            3,
            "default within a lower limit"
        );
        assert_eq!(parse(body(json!({"k": 100})), 100).unwrap().k, 100);
        let err = parse(body(json!({"k": 500})), 100).unwrap_err();
        assert_eq!(
            err.to_string(),
            "request: k 500 exceeds the limit 100 (--recall-max-k)"
        );
        for bad in [json!(0), json!(-1), json!(2.5), json!("10")] {
            let err = parse(body(json!({ "k": bad })), 100).unwrap_err();
            assert!(err.message.contains("positive integer"), "{bad}: {err}");
        }
        assert!(
            check_k(u64::MAX, 100)
                .unwrap_err()
                .message
                .contains("limit 100")
        );
        let err = parse(body(json!({"label": 3})), 100).unwrap_err();
        assert!(err.message.contains("parameters.label"), "{err}");
    }

    #[test]
    fn the_rows_are_bound_by_the_same_limits_as_infer() {
        let limits = Limits {
            max_rows: 1,
            ..Limits::default()
        };
        let err = parse_recall(
            body(json!({})).to_string().as_bytes(),
            None,
            TEXT_ONLY,
            &limits,
            10,
        )
        .unwrap_err();
        assert!(err.message.contains("--max-rows 1"), "{err}");
        let req =
            json!({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [""]}]});
        assert!(
            parse(req, 10)
                .unwrap_err()
                .message
                .contains("no image tower")
        );
        let req = json!({
            "inputs": [{ "name": "text", "datatype": "BYTES", "shape": [1], "data": ["a"] }],
            "outputs": [{ "name": "scores" }],
        });
        let err = parse(req, 10).unwrap_err();
        assert!(
            err.message
                .contains("the model returns: ids, similarity, score"),
            "{err}"
        );
    }

    #[test]
    fn the_label_is_the_requested_one_or_the_first() {
        let labels = vec!["hate".to_string(), "spam".to_string()];
        assert_eq!(choose_label(&labels, None), Ok(Some(0)));
        assert_eq!(choose_label(&labels, Some("spam")), Ok(Some(1)));
        assert_eq!(choose_label(&[], None), Ok(None));
        let err = choose_label(&labels, Some("x")).unwrap_err();
        assert!(err.message.contains("(hate, spam)"), "{err}");
        let err = choose_label(&[], Some("x")).unwrap_err();
        assert!(err.message.contains("no scores"), "{err}");
    }

    fn hit(id: &str, similarity: f32, score: Option<f32>) -> Neighbour {
        Neighbour {
            id: id.into(),
            similarity,
            score,
        }
    }

    #[test]
    fn short_rows_are_padded_and_binary_outputs_follow_the_header() {
        let rows = vec![
            vec![hit("a", 0.875, Some(0.5)), hit("b", 0.25, Some(0.75))],
            vec![hit("c", 0.5, None)],
        ];
        let head = RecallHeader {
            model: "tiny-recall",
            index_version: 3,
            model_version: 7,
            id: Some("q"),
            label: Some("hate"),
        };
        let e = encode_recall(&head, [Some(false); 3], &rows);
        assert!(e.binary.is_none());
        let v: Value = serde_json::from_slice(&e.json).unwrap();
        assert_eq!(v["model_name"], "tiny-recall");
        assert_eq!(v["model_version"], "3");
        assert_eq!(v["id"], "q");
        assert_eq!(v["parameters"]["embedding_model_version"], "7");
        assert_eq!(v["parameters"]["label"], "hate");
        assert_eq!(v["outputs"][0]["shape"], json!([2, 2]));
        assert_eq!(v["outputs"][0]["data"], json!(["a", "b", "c", ""]));
        assert_eq!(v["outputs"][1]["data"], json!([0.875, 0.25, 0.5, -1.0]));
        assert_eq!(v["outputs"][2]["data"], json!([0.5, 0.75, null, null]));

        let e = encode_recall(&head, [Some(true), Some(true), None], &rows);
        let tail = e.binary.unwrap();
        let v: Value = serde_json::from_slice(&e.json).unwrap();
        let ids_len = v["outputs"][0]["parameters"]["binary_data_size"]
            .as_u64()
            .unwrap() as usize;
        assert_eq!(
            &tail[..ids_len],
            join_bytes([&b"a"[..], b"b", b"c", b""]).as_slice()
        );
        assert_eq!(tail.len() - ids_len, 16);
        assert_eq!(&tail[ids_len..ids_len + 4], &0.875f32.to_le_bytes());
        assert!(v["parameters"].get("label").is_none(), "no score, no label");
        assert_eq!(v["outputs"].as_array().unwrap().len(), 2);
    }
}
