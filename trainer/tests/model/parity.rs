//! Parity of the pretrained towers with their reference implementations.
//!
//! `fixtures/reference.json` was written by `fixtures/make_reference.py`
//! (transformers `BertModel` + tokenizers, torchvision EfficientNet-B0) from the
//! weights `scripts/fetch-pretrained.sh` installs. These tests need that cache:
//! without it they print why they skip, except under CI (`CI` set), where a missing
//! cache is a failure — `.ci/run` fetches it first.

use super::util::{fixtures, pretrained_or_skip};

use burn::tensor::{Int, Tensor, TensorData};
use serde::Deserialize;
use vigil_config::Pooling;
use vigil_data::load_normalised;
use vigil_model::backend::CpuBackend;
use vigil_model::{EfficientNetB0, TextTokenizer, TextTower};

type B = CpuBackend;

#[derive(Deserialize)]
struct Reference {
    max_text_len: usize,
    sentences: Vec<String>,
    token_ids: Vec<Vec<i64>>,
    attention_mask: Vec<Vec<u8>>,
    text_embeddings: Vec<Vec<f32>>,
    images: Vec<String>,
    image_features: Vec<Vec<f32>>,
}

fn reference() -> Reference {
    let text = std::fs::read_to_string(fixtures().join("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn minilm_tokenizer_matches_reference_ids() {
    let Some(dir) = pretrained_or_skip("all-minilm-l6-v2") else {
        return;
    };
    let r = reference();
    let tok = TextTokenizer::from_file(&dir.join("tokenizer.json"), r.max_text_len).unwrap();
    let texts: Vec<&str> = r.sentences.iter().map(String::as_str).collect();
    let enc = tok.encode_batch(&texts).unwrap();
    let want_ids: Vec<i64> = r.token_ids.concat();
    let want_mask: Vec<f32> = r
        .attention_mask
        .concat()
        .iter()
        .map(|&m| f32::from(m))
        .collect();
    assert_eq!(enc.ids, want_ids);
    assert_eq!(enc.mask, want_mask);
}

#[test]
fn minilm_mean_pooled_embeddings_match_reference() {
    let Some(dir) = pretrained_or_skip("all-minilm-l6-v2") else {
        return;
    };
    let r = reference();
    let device = Default::default();
    let b = r.token_ids.len();
    let s = r.token_ids[0].len();
    let ids =
        Tensor::<B, 2, Int>::from_data(TensorData::new(r.token_ids.concat(), [b, s]), &device);
    let mask: Vec<f32> = r
        .attention_mask
        .concat()
        .iter()
        .map(|&m| f32::from(m))
        .collect();
    let mask = Tensor::<B, 2>::from_data(TensorData::new(mask, [b, s]), &device);
    let tower = TextTower::<B>::pretrained(&dir, Pooling::Mean, &device).unwrap();
    let got: Vec<f32> = tower.forward(ids, mask).into_data().into_vec().unwrap();
    let diff = max_abs_diff(&got, &r.text_embeddings.concat());
    println!("MiniLM mean-pooled embeddings: max abs diff {diff:.2e} (limit 1e-4)");
    assert!(diff < 1e-4, "max abs diff {diff}");
}

#[test]
fn efficientnet_b0_pooled_features_match_reference() {
    let Some(pth) = pretrained_or_skip("efficientnet-b0/best_efficientnet_b0.pth") else {
        return;
    };
    let r = reference();
    let device = Default::default();
    // The training data layer's image pipeline, as every caller of the tower uses.
    let n = r.images.len();
    let plane = 3 * 224 * 224;
    let mut pixels = vec![0.0f32; n * plane];
    for (i, name) in r.images.iter().enumerate() {
        let path = fixtures().join("images").join(name);
        load_normalised(&path, name, 224, &mut pixels[i * plane..(i + 1) * plane]).unwrap();
    }
    let images = Tensor::<B, 1>::from_floats(pixels.as_slice(), &device).reshape([n, 3, 224, 224]);
    let net = EfficientNetB0::<B>::from_pth(&pth, &device).unwrap();
    let got: Vec<f32> = net.forward(images).into_data().into_vec().unwrap();
    let diff = max_abs_diff(&got, &r.image_features.concat());
    println!("EfficientNet-B0 pooled features: max abs diff {diff:.2e} (limit 1e-3)");
    assert!(diff < 1e-3, "max abs diff {diff}");
}
