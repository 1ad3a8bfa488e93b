//! Parity of the Hugging Face text encoders with transformers, on the tiny random
//! checkpoints `fixtures/encoders/generate.py` wrote (`BertModel`, `RobertaModel`,
//! `XLMRobertaModel`, `DistilBertModel`, `DebertaV2Model`): the directory's `model_type` picks the
//! architecture, the tokenizer gives the reference's ids (padding, one row
//! truncated), and every real token's last hidden state is within 1e-4.

use std::path::{Path, PathBuf};

use burn::tensor::{Int, Tensor, TensorData};
use serde::Deserialize;
use vigil_config::Pooling;
use vigil_model::backend::CpuBackend;
use vigil_model::{TextTokenizer, TextTower};

type B = CpuBackend;

#[derive(Deserialize)]
struct Reference {
    model_type: String,
    max_text_len: usize,
    sentences: Vec<String>,
    token_ids: Vec<Vec<i64>>,
    attention_mask: Vec<Vec<u8>>,
    last_hidden_state: Vec<Vec<Vec<f32>>>,
}

fn fixture(name: &str) -> (PathBuf, Reference) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/encoders")
        .join(name);
    let text = std::fs::read_to_string(dir.join("reference.json")).unwrap();
    (dir, serde_json::from_str(&text).unwrap())
}

/// Max |ours − reference| over real tokens, and the mean-pooled vectors' max diff.
fn compare(tower: &TextTower<B>, r: &Reference) -> (f32, f32) {
    let device = Default::default();
    let (b, s) = (r.token_ids.len(), r.token_ids[0].len());
    let ids =
        Tensor::<B, 2, Int>::from_data(TensorData::new(r.token_ids.concat(), [b, s]), &device);
    let mask: Vec<f32> = r
        .attention_mask
        .concat()
        .iter()
        .map(|&m| f32::from(m))
        .collect();
    let mask = Tensor::<B, 2>::from_data(TensorData::new(mask, [b, s]), &device);
    let states = tower.token_states(ids.clone(), mask.clone());
    let h = states.dims()[2];
    let ours: Vec<f32> = states.into_data().into_vec().unwrap();
    let pooled: Vec<f32> = tower.forward(ids, mask).into_data().into_vec().unwrap();
    let (mut token_diff, mut pooled_diff) = (0f32, 0f32);
    for (row, mask_row) in r.attention_mask.iter().enumerate() {
        let mut mean = vec![0f32; h];
        let n = mask_row.iter().filter(|&&m| m == 1).count() as f32;
        for (t, &m) in mask_row.iter().enumerate() {
            if m == 0 {
                continue;
            }
            for k in 0..h {
                let want = r.last_hidden_state[row][t][k];
                token_diff = token_diff.max((ours[(row * s + t) * h + k] - want).abs());
                mean[k] += want / n;
            }
        }
        for k in 0..h {
            pooled_diff = pooled_diff.max((pooled[row * h + k] - mean[k]).abs());
        }
    }
    (token_diff, pooled_diff)
}

#[test]
fn each_text_directory_embeds_at_parity_with_transformers() {
    for name in ["bert", "roberta", "xlm-roberta", "distilbert", "deberta-v2"] {
        let (dir, r) = fixture(name);
        let tower = TextTower::<B>::pretrained(&dir, Pooling::Mean, &Default::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(tower.config().model_type(), r.model_type, "{name}");

        let tok = TextTokenizer::from_file(&dir.join("tokenizer.json"), r.max_text_len).unwrap();
        let texts: Vec<&str> = r.sentences.iter().map(String::as_str).collect();
        let enc = tok.encode_batch(&texts).unwrap();
        assert_eq!(enc.ids, r.token_ids.concat(), "{name}: token ids");
        let want_mask: Vec<f32> = r
            .attention_mask
            .concat()
            .iter()
            .map(|&m| f32::from(m))
            .collect();
        assert_eq!(enc.mask, want_mask, "{name}: attention mask");

        let (token_diff, pooled_diff) = compare(&tower, &r);
        println!(
            "{name}: max |diff| last hidden state {token_diff:.2e}, mean-pooled {pooled_diff:.2e}"
        );
        assert!(
            token_diff <= 1e-4,
            "{name}: last hidden state differs by {token_diff}"
        );
        assert!(
            pooled_diff <= 1e-4,
            "{name}: mean-pooled output differs by {pooled_diff}"
        );
    }
}

#[test]
fn xlm_roberta_read_as_bert_would_embed_wrongly() {
    // What the dispatch prevents: the same directory with `model_type: bert` loads
    // cleanly (the tensors fit) and, with positions from 0, gives other states.
    let (dir, r) = fixture("xlm-roberta");
    let copy = tempfile::tempdir().unwrap();
    for file in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(dir.join(file), copy.path().join(file)).unwrap();
    }
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let config = config.replace(r#""model_type": "xlm-roberta""#, r#""model_type": "bert""#);
    std::fs::write(copy.path().join("config.json"), config).unwrap();
    let as_bert =
        TextTower::<B>::pretrained(copy.path(), Pooling::Mean, &Default::default()).unwrap();
    assert_eq!(as_bert.config().model_type(), "bert");
    let (token_diff, _) = compare(&as_bert, &r);
    assert!(
        token_diff > 1e-2,
        "positions from 0 should differ, got {token_diff}"
    );
}

#[derive(Deserialize)]
struct JointReference {
    max_text_len: usize,
    sentences: Vec<String>,
    token_ids: Vec<Vec<i64>>,
    text_embeds: Vec<Vec<f32>>,
}

#[test]
fn clip_and_siglip_directories_as_text_towers_give_the_joint_text_embeddings() {
    // `model.text` pointing at a CLIP or SigLIP directory: its text half with the
    // projection; normalised, the vectors are transformers' `text_embeds`.
    for name in ["clip", "siglip"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/encoders")
            .join(name);
        let r: JointReference =
            serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
                .unwrap();
        let tower = TextTower::<B>::pretrained(&dir, Pooling::Mean, &Default::default()).unwrap();
        assert_eq!(tower.config().model_type(), name);
        let mut tok =
            TextTokenizer::from_file(&dir.join("tokenizer.json"), r.max_text_len).unwrap();
        if tower.pads_to_max_length() {
            tok = tok.with_max_length_padding();
        }
        assert_eq!(tower.pads_to_max_length(), name == "siglip");
        let texts: Vec<&str> = r.sentences.iter().map(String::as_str).collect();
        let enc = tok.encode_batch(&texts).unwrap();
        assert_eq!(enc.ids, r.token_ids.concat(), "{name}: token ids");
        let device = Default::default();
        let ids = Tensor::<B, 2, Int>::from_data(
            TensorData::new(enc.ids, [enc.batch, enc.seq_len]),
            &device,
        );
        let mask =
            Tensor::<B, 2>::from_data(TensorData::new(enc.mask, [enc.batch, enc.seq_len]), &device);
        let embeds = vigil_model::vision::l2_normalize(tower.forward(ids, mask));
        let ours: Vec<f32> = embeds.into_data().into_vec().unwrap();
        let worst = ours
            .iter()
            .zip(r.text_embeds.concat())
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        println!("{name}: text_embeds max |diff| {worst:.2e}");
        assert!(worst <= 1e-4, "{name}: {worst}");
    }
}
