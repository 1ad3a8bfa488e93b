//! `vigil embed`'s library side: encoder embeddings and a trained model's export.

use vigil_config::{
    DataSection, FusionKind, ImageEncoder, ImageTower, ModelSection, TextEncoder, TextTower,
};
use vigil_infer::{EmbedOptions, EmbedSource, run_embed};
use vigil_model::backend::CpuBackend;
use vigil_model::{ModelInput, ModerationModel};

use super::util::{HIDDEN, write_tiny_bert, write_tokenizer};

type B = CpuBackend;

fn write_rows(dir: &std::path::Path) -> std::path::PathBuf {
    let img = image::RgbImage::from_fn(20, 12, |x, y| {
        image::Rgb([(x * 12) as u8, (y * 20) as u8, 90])
    });
    img.save(dir.join("pic.png")).unwrap();
    let rows = [
        r#"{"id": "a", "text": "i will hurt you", "image": "pic.png"}"#,
        r#"{"id": 7, "text": "the cat"}"#,
        r#"{"id": "c", "image": "pic.png"}"#,
    ];
    let path = dir.join("items.jsonl");
    std::fs::write(&path, rows.join("\n") + "\n").unwrap();
    path
}

/// Embeds `input` on one thread and on three; the outputs must be byte-identical
/// (whole batches run side by side, written in input order).
fn run(source: EmbedSource, input: std::path::PathBuf) -> Vec<serde_json::Value> {
    let embed = |threads: usize| {
        let opts = EmbedOptions {
            source: source.clone(),
            input: input.clone(),
            batch_size: 2,
            max_text_len: 16,
            image_size: 16,
            threads,
            scores: false,
        };
        let mut out = Vec::new();
        let n = run_embed::<B>(&opts, &mut out, &Default::default()).unwrap();
        (n, String::from_utf8(out).unwrap())
    };
    let (n, text) = embed(1);
    assert_eq!(embed(3), (n, text.clone()), "threads change the output");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(n, lines.len());
    lines
}

#[test]
fn text_encoder_embeds_rows_with_text_and_keeps_ids() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_bert(&dir.path().join("bert"), "");
    let input = write_rows(dir.path());
    let out = run(
        EmbedSource::Encoders {
            text: Some(dir.path().join("bert")),
            image: None,
        },
        input,
    );
    assert_eq!(out.len(), 3);
    assert_eq!(out[0]["id"], "a");
    assert_eq!(out[1]["id"], 7);
    assert_eq!(out[0]["text_embedding"].as_array().unwrap().len(), HIDDEN);
    assert!(out[2].get("text_embedding").is_none());
}

#[test]
fn export_round_trips_and_embeds_with_the_fused_vector() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = ModelSection {
        labels: vec!["hate".into(), "spam".into()],
        ..Default::default()
    };
    m.text = Some(TextTower {
        encoder: TextEncoder::Scratch,
        tokenizer: Some(write_tokenizer(dir.path()).display().to_string()),
        hidden: 8,
        layers: 1,
        heads: 2,
        ..Default::default()
    });
    m.image = Some(ImageTower {
        encoder: ImageEncoder::ScratchCnn,
        channels: 4,
        ..Default::default()
    });
    m.fusion.kind = FusionKind::Interaction;
    m.fusion.dim = 4;
    let data = DataSection {
        max_text_len: 16,
        image_size: 16,
        ..Default::default()
    };
    let device = Default::default();
    let loaded = ModerationModel::<B>::from_config(&m, &data, &device).unwrap();
    let export = dir.path().join("export/1");
    loaded
        .model
        .write_model_files(&export, &m, &data, loaded.tokenizer.as_ref())
        .unwrap();
    let back = ModerationModel::<B>::from_export(&export, &device).unwrap();

    let input = write_rows(dir.path());
    let out = run(EmbedSource::Model(export), input);
    assert_eq!(out.len(), 3);
    for row in &out {
        assert_eq!(row["embedding"].as_array().unwrap().len(), 16); // dim² interaction
    }
    assert!(out[1].get("image_embedding").is_none());
    assert_eq!(out[0]["image_embedding"].as_array().unwrap().len(), 8);

    // The reloaded model computes what the original computes.
    let texts = vec![Some("the cat".to_string())];
    let x = |tok| ModelInput::<B>::from_vecs(tok, &texts, &[], &[false], 16, &device).unwrap();
    let a: Vec<f32> = loaded
        .model
        .forward(&x(loaded.tokenizer.as_ref()))
        .into_data()
        .into_vec()
        .unwrap();
    let b: Vec<f32> = back
        .model
        .forward(&x(back.tokenizer.as_ref()))
        .into_data()
        .into_vec()
        .unwrap();
    assert_eq!(a, b);
}

#[test]
fn a_bad_row_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_bert(&dir.path().join("bert"), "");
    let input = dir.path().join("bad.jsonl");
    std::fs::write(
        &input,
        "{\"id\": 1, \"text\": \"ok\"}\n{\"text\": \"no id\"}\n",
    )
    .unwrap();
    let opts = EmbedOptions {
        source: EmbedSource::Encoders {
            text: Some(dir.path().join("bert")),
            image: None,
        },
        input,
        batch_size: 8,
        max_text_len: 16,
        image_size: 16,
        threads: 1,
        scores: false,
    };
    let err = run_embed::<B>(&opts, &mut Vec::new(), &Default::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("bad.jsonl:2: field 'id' is missing"),
        "{err}"
    );
}
