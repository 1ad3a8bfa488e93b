//! DeBERTa-v2/v3 parity with `transformers`: the tiny random checkpoint in
//! `fixtures/encoders/deberta-v2` (DeBERTa-v3's shape, written by
//! `fixtures/encoders/generate.py`) is loaded strictly, its tokenizer must give
//! the reference's ids and mask, and our token states must match
//! `DebertaV2Model`'s `last_hidden_state` on every real token within 1e-4.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::tensor::{Int, Tensor, TensorData};
use serde::Deserialize;
use vigil_model::backend::CpuBackend;
use vigil_model::deberta::{DebertaV2Config, deberta_file_key, deberta_ignorable};
use vigil_model::{KeyMap, ModelError, TextTokenizer, WeightsFormat, load_strict};

type B = CpuBackend;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/encoders/deberta-v2")
}

#[derive(Deserialize)]
struct Reference {
    max_text_len: usize,
    sentences: Vec<String>,
    token_ids: Vec<Vec<i64>>,
    attention_mask: Vec<Vec<i64>>,
    last_hidden_state: Vec<Vec<Vec<f32>>>,
}

fn read_json(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    Ok(serde_json::from_str(&text)?)
}

#[test]
fn deberta_v2_matches_transformers() -> anyhow::Result<()> {
    let dir = fixture();
    let config_path = dir.join("config.json");
    let config = DebertaV2Config::from_value(read_json(&config_path)?, &config_path)?;
    let device = Default::default();
    let model = load_strict(
        config.init::<B>(&device),
        &dir.join("model.safetensors"),
        WeightsFormat::Safetensors,
        &KeyMap {
            to_file: &deberta_file_key,
            ignorable: &deberta_ignorable,
            optional_prefix: Some("deberta."),
        },
    )?;
    let reference: Reference = serde_json::from_value(read_json(&dir.join("reference.json"))?)?;

    let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"), reference.max_text_len)?;
    let texts: Vec<&str> = reference.sentences.iter().map(String::as_str).collect();
    let batch = tokenizer.encode_batch(&texts)?;
    let (rows, seq) = (reference.token_ids.len(), reference.token_ids[0].len());
    assert_eq!((batch.batch, batch.seq_len), (rows, seq));
    assert_eq!(batch.ids, reference.token_ids.concat(), "token ids");
    let want_mask: Vec<f32> = reference
        .attention_mask
        .concat()
        .into_iter()
        .map(|m| m as f32)
        .collect();
    assert_eq!(batch.mask, want_mask, "attention mask");

    let ids = Tensor::<B, 2, Int>::from_data(
        TensorData::new(reference.token_ids.concat(), [rows, seq]),
        &device,
    );
    let mask = Tensor::<B, 2>::from_data(TensorData::new(want_mask.clone(), [rows, seq]), &device);
    let states = model.forward(ids, mask);
    let h = model.hidden_size();
    assert_eq!(states.dims(), [rows, seq, h]);
    let got = states.into_data().to_vec::<f32>()?;
    let want: Vec<f32> = reference.last_hidden_state.concat().concat();
    let mut max_diff = 0f32;
    for (t, _) in want_mask.iter().enumerate().filter(|(_, m)| **m > 0.5) {
        for k in 0..h {
            max_diff = max_diff.max((got[t * h + k] - want[t * h + k]).abs());
        }
    }
    println!("deberta-v2: max |diff| over real tokens = {max_diff:e}");
    assert!(max_diff <= 1e-4, "max |diff| {max_diff}");
    Ok(())
}

#[test]
fn unsupported_settings_name_their_key() -> anyhow::Result<()> {
    let path = fixture().join("config.json");
    let base = read_json(&path)?;
    for (key, value) in [
        ("conv_kernel_size", serde_json::json!(3)),
        ("hidden_act", serde_json::json!("gelu_new")),
        ("relative_attention", serde_json::json!(false)),
        ("pos_att_type", serde_json::json!(["p2p"])),
        ("pos_att_type", serde_json::json!("c2p|p2p")),
        ("norm_rel_ebd", serde_json::json!("none")),
        ("num_attention_heads", serde_json::json!(5)),
    ] {
        let mut value_json = base.clone();
        value_json[key] = value.clone();
        match DebertaV2Config::from_value(value_json, &path) {
            Err(err @ ModelError::BadConfig { .. }) => {
                let ModelError::BadConfig { key: named, .. } = &err else {
                    unreachable!()
                };
                assert_eq!(named, key, "{err}");
                assert!(err.to_string().contains("config.json"), "{err}");
                assert!(err.is_user_error());
            }
            other => panic!("{key} = {value}: expected BadConfig, got {other:?}"),
        }
    }
    Ok(())
}
