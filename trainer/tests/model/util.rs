//! Helpers: a tiny BERT-style tokenizer and a tiny Hugging Face BERT directory
//! with random weights, written into a tempdir.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

/// The committed fixtures directory.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Whether this run is CI's: `CI` set to anything but empty, `0` or `false` (CI
/// services set `CI=true`; `.ci/run` exports `CI=1`).
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// `sub` inside the pretrained cache (`$VIGIL_PRETRAINED`, default
/// `~/.cache/vigil/pretrained`), or None after printing why the test skips.
///
/// Under CI a missing file fails the test instead: CI fetches the cache first, so a
/// skip there would hide a test that never ran.
pub fn pretrained_or_skip(sub: &str) -> Option<PathBuf> {
    let root = vigil_model::pretrained_cache().unwrap_or_default();
    let path = root.join(sub);
    if path.exists() {
        return Some(path);
    }
    assert!(
        !in_ci(),
        "{} is missing under CI (CI is set): run scripts/fetch-pretrained.sh before the \
         tests (.ci/run does), or set VIGIL_PRETRAINED to the cache",
        path.display()
    );
    eprintln!(
        "SKIPPED: {} not found; run scripts/fetch-pretrained.sh (or set VIGIL_PRETRAINED)",
        path.display()
    );
    None
}

/// Words of the tiny vocabulary (after the four special tokens).
const WORDS: &[&str] = &[
    "the", "a", "cat", "dog", "hate", "you", "i", "love", "buy", "now", "cheap", "spam", "hurt",
    "will", "friendly", "message", "##s", "##ing", "!", ".", ",", "?",
];

/// Writes a BERT-like WordPiece `tokenizer.json` ([PAD]=0, [UNK]=1, [CLS]=2,
/// [SEP]=3) that hard-codes padding and truncation at 128 like the MiniLM file.
pub fn write_tokenizer(dir: &Path) -> PathBuf {
    let special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"];
    let mut vocab = serde_json::Map::new();
    for (i, t) in special.iter().chain(WORDS).enumerate() {
        vocab.insert((*t).to_string(), serde_json::json!(i));
    }
    let added: Vec<_> = special
        .iter()
        .enumerate()
        .map(|(i, t)| {
            serde_json::json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let tok = serde_json::json!({
        "version": "1.0",
        "truncation": {"direction": "Right", "max_length": 128, "strategy": "LongestFirst", "stride": 0},
        "padding": {"strategy": {"Fixed": 128}, "direction": "Right", "pad_to_multiple_of": null,
                    "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"},
        "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                       "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
        "decoder": null,
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab}
    });
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, serde_json::to_string_pretty(&tok).unwrap()).unwrap();
    path
}

/// Vocabulary size of [`write_tokenizer`]'s file.
pub fn tiny_vocab() -> usize {
    4 + WORDS.len()
}

/// Shape of the tiny BERT: hidden 16, 2 layers, 2 heads, FFN 32, 40 positions.
pub const HIDDEN: usize = 16;
/// Layers of the tiny BERT.
pub const LAYERS: usize = 2;

/// The Hugging Face tensors of the tiny BERT (names without prefix), with a pooler.
pub fn tiny_bert_tensors(seed: u64) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut t = BTreeMap::new();
    let mut add = |name: String, shape: Vec<usize>| {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.random_range(-0.2..0.2)).collect();
        t.insert(name, (shape, v));
    };
    let (h, f) = (HIDDEN, 2 * HIDDEN);
    add(
        "embeddings.word_embeddings.weight".into(),
        vec![tiny_vocab(), h],
    );
    add("embeddings.position_embeddings.weight".into(), vec![40, h]);
    add("embeddings.token_type_embeddings.weight".into(), vec![2, h]);
    add("embeddings.LayerNorm.weight".into(), vec![h]);
    add("embeddings.LayerNorm.bias".into(), vec![h]);
    for i in 0..LAYERS {
        let p = format!("encoder.layer.{i}");
        for m in [
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
        ] {
            add(format!("{p}.{m}.weight"), vec![h, h]);
            add(format!("{p}.{m}.bias"), vec![h]);
        }
        add(format!("{p}.intermediate.dense.weight"), vec![f, h]);
        add(format!("{p}.intermediate.dense.bias"), vec![f]);
        add(format!("{p}.output.dense.weight"), vec![h, f]);
        add(format!("{p}.output.dense.bias"), vec![h]);
        for ln in ["attention.output.LayerNorm", "output.LayerNorm"] {
            add(format!("{p}.{ln}.weight"), vec![h]);
            add(format!("{p}.{ln}.bias"), vec![h]);
        }
    }
    add("pooler.dense.weight".into(), vec![h, h]);
    add("pooler.dense.bias".into(), vec![h]);
    t
}

/// Writes `tensors` as `model.safetensors` (names prefixed with `prefix`).
pub fn write_safetensors(
    path: &Path,
    tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    prefix: &str,
) {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(k, (shape, v))| {
            let b = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            (format!("{prefix}{k}"), shape.clone(), b)
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(k, shape, b)| {
            (
                k.clone(),
                TensorView::new(Dtype::F32, shape.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// Writes a complete tiny Hugging Face model directory and returns its tensors.
pub fn write_tiny_bert(dir: &Path, prefix: &str) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    std::fs::create_dir_all(dir).unwrap();
    let config = serde_json::json!({
        "architectures": ["BertModel"], "model_type": "bert",
        "vocab_size": tiny_vocab(), "hidden_size": HIDDEN, "num_hidden_layers": LAYERS,
        "num_attention_heads": 2, "intermediate_size": 2 * HIDDEN,
        "max_position_embeddings": 40, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "pad_token_id": 0, "position_embedding_type": "absolute"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    write_tokenizer(dir);
    let tensors = tiny_bert_tensors(7);
    write_safetensors(&dir.join("model.safetensors"), &tensors, prefix);
    tensors
}
