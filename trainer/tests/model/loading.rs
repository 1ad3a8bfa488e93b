//! Loading Hugging Face and PyTorch files: a correct file loads completely; a
//! wrong shape, a missing or unexpected tensor, or corrupt bytes is an error that
//! names the tensor or the file.

use burn::tensor::Tensor;
use vigil_config::Pooling;
use vigil_model::backend::CpuBackend;
use vigil_model::{EfficientNetB0, ModelError, TextTokenizer, TextTower};

use super::util::{HIDDEN, tiny_vocab, write_safetensors, write_tiny_bert, write_tokenizer};

type B = CpuBackend;

fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().into_vec().unwrap()
}

#[test]
fn tiny_hf_bert_loads_every_tensor_with_and_without_prefix() {
    for prefix in ["", "bert."] {
        let dir = tempfile::tempdir().unwrap();
        let tensors = write_tiny_bert(dir.path(), prefix);
        let tower = TextTower::<B>::pretrained(dir.path(), Pooling::Mean, &Default::default())
            .unwrap_or_else(|e| panic!("prefix {prefix:?}: {e}"));
        let Some(e) = &tower.encoder else {
            panic!("a BERT directory built another encoder");
        };
        assert_eq!(
            values(e.embeddings.word_embeddings.weight.val()),
            tensors["embeddings.word_embeddings.weight"].1
        );
        assert_eq!(
            values(e.layers[1].ffn_norm.gamma.val()),
            tensors["encoder.layer.1.output.LayerNorm.weight"].1
        );
        // Linear weights are transposed: PyTorch [out, in] → burn [in, out].
        let (shape, torch_w) = &tensors["encoder.layer.0.intermediate.dense.weight"];
        let burn_w = values(e.layers[0].ffn_in.weight.val());
        let (out, inp) = (shape[0], shape[1]);
        for o in 0..out {
            for i in 0..inp {
                assert_eq!(burn_w[i * out + o], torch_w[o * inp + i]);
            }
        }
        assert_eq!(tower.output_dim(), HIDDEN);
    }
}

fn load_err(dir: &std::path::Path) -> ModelError {
    TextTower::<B>::pretrained(dir, Pooling::Mean, &Default::default()).unwrap_err()
}

#[test]
fn wrong_shape_names_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = write_tiny_bert(dir.path(), "bert.");
    let name = "encoder.layer.0.attention.self.query.weight";
    tensors.insert(
        name.into(),
        (vec![HIDDEN, HIDDEN + 1], vec![0.0; HIDDEN * (HIDDEN + 1)]),
    );
    write_safetensors(&dir.path().join("model.safetensors"), &tensors, "bert.");
    let err = load_err(dir.path());
    assert!(matches!(err, ModelError::ShapeMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("bert.{name}")) && msg.contains("[16, 17]"),
        "{msg}"
    );
}

#[test]
fn missing_tensor_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = write_tiny_bert(dir.path(), "");
    tensors.remove("encoder.layer.1.output.dense.bias");
    write_safetensors(&dir.path().join("model.safetensors"), &tensors, "");
    let err = load_err(dir.path());
    assert!(matches!(err, ModelError::MissingTensors { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("encoder.layer.1.output.dense.bias"),
        "{err}"
    );
}

#[test]
fn unexpected_tensor_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = write_tiny_bert(dir.path(), "");
    tensors.insert(
        "encoder.layer.2.output.dense.bias".into(),
        (vec![HIDDEN], vec![0.0; HIDDEN]),
    );
    write_safetensors(&dir.path().join("model.safetensors"), &tensors, "");
    let err = load_err(dir.path());
    assert!(matches!(err, ModelError::UnusedTensors { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("encoder.layer.2.output.dense.bias"),
        "{err}"
    );
}

#[test]
fn corrupt_safetensors_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_bert(dir.path(), "");
    let file = dir.path().join("model.safetensors");
    // Truncated: the header promises more bytes than there are.
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_err(dir.path());
    assert!(matches!(err, ModelError::WeightsFile { .. }), "{err}");
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    // Garbage header.
    std::fs::write(&file, b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!").unwrap();
    let err = load_err(dir.path());
    assert!(err.to_string().contains("model.safetensors"), "{err}");
}

#[test]
fn missing_files_and_bad_config_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_err(dir.path());
    assert!(err.to_string().contains("config.json"), "{err}");
    write_tiny_bert(dir.path(), "");
    std::fs::write(dir.path().join("config.json"), r#"{"vocab_size": 10}"#).unwrap();
    let err = load_err(dir.path());
    assert!(matches!(err, ModelError::Json { .. }), "{err}");
}

#[test]
fn corrupt_pth_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let pth = dir.path().join("broken.pth");
    std::fs::write(&pth, b"PK\x03\x04 definitely not a torch zip").unwrap();
    let err = EfficientNetB0::<B>::from_pth(&pth, &Default::default()).unwrap_err();
    assert!(err.to_string().contains("broken.pth"), "{err}");
    let err = EfficientNetB0::<B>::from_pth(&dir.path().join("absent.pth"), &Default::default())
        .unwrap_err();
    assert!(err.to_string().contains("absent.pth"), "{err}");
}

#[test]
fn tokenizer_overrides_the_files_padding_and_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_tokenizer(dir.path());
    let tok = TextTokenizer::from_file(&path, 6).unwrap();
    assert_eq!(tok.vocab_size(), tiny_vocab());
    let enc = tok
        .encode_batch(&["the cat", "i will hurt you now cheap spam", ""])
        .unwrap();
    assert_eq!((enc.batch, enc.seq_len), (3, 6)); // truncated at 6, not padded to 128
    assert_eq!(&enc.ids[..6], &[2, 4, 6, 3, 0, 0]); // [CLS] the cat [SEP] [PAD] [PAD]
    assert_eq!(&enc.mask[..6], &[1.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
    assert_eq!(enc.ids[11], 3); // truncated rows still end with [SEP]
    assert_eq!(&enc.ids[12..14], &[2, 3]);
    let short = tok.encode_batch(&["the"]).unwrap();
    assert_eq!(short.seq_len, 3); // padded to the batch's longest row only
    assert!(TextTokenizer::from_file(&dir.path().join("nope.json"), 8).is_err());
}
