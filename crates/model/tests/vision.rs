//! Parity of the Vision Transformer towers and the CLIP / SigLIP joint models with
//! transformers, on the tiny random checkpoints `fixtures/encoders/generate.py`
//! wrote (`vit`, `clip`, `siglip`): the processor's pixel values (and the
//! reference's token ids) in, every output Hugging Face returns within 1e-4.
//! Each max difference is printed (`cargo test -p vigil-model --test vision --
//! --nocapture`).

use std::path::{Path, PathBuf};

use burn::tensor::{Int, Tensor, TensorData};
use serde::Deserialize;
use vigil_model::ModelError;
use vigil_model::backend::CpuBackend;
use vigil_model::vision::{JointModel, VisionKind, VitConfig, load_joint, load_vision_tower};

type B = CpuBackend;

const TOLERANCE: f32 = 1e-4;

#[derive(Deserialize)]
struct Reference {
    pixel_values: Vec<f32>,
    pixel_values_shape: Vec<usize>,
    #[serde(default)]
    last_hidden_state: Vec<Vec<Vec<f32>>>,
    #[serde(default)]
    token_ids: Vec<Vec<i64>>,
    #[serde(default)]
    attention_mask: Vec<Vec<u8>>,
    #[serde(default)]
    text_last_hidden_state: Vec<Vec<Vec<f32>>>,
    #[serde(default)]
    image_last_hidden_state: Vec<Vec<Vec<f32>>>,
    #[serde(default)]
    image_pooler_output: Vec<Vec<f32>>,
    #[serde(default)]
    text_embeds: Vec<Vec<f32>>,
    #[serde(default)]
    image_embeds: Vec<Vec<f32>>,
    #[serde(default)]
    logits_per_image: Vec<Vec<f32>>,
}

fn fixture(name: &str) -> (PathBuf, Reference) {
    let dir = fixtures().join(name);
    let text = std::fs::read_to_string(dir.join("reference.json")).unwrap();
    (dir, serde_json::from_str(&text).unwrap())
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/encoders")
}

fn pixels(r: &Reference) -> Tensor<B, 4> {
    let shape: [usize; 4] = r.pixel_values_shape.clone().try_into().unwrap();
    Tensor::from_data(
        TensorData::new(r.pixel_values.clone(), shape),
        &Default::default(),
    )
}

fn text_inputs(r: &Reference, with_mask: bool) -> (Tensor<B, 2, Int>, Tensor<B, 2>) {
    let device = Default::default();
    let (b, s) = (r.token_ids.len(), r.token_ids[0].len());
    let ids = Tensor::from_data(TensorData::new(r.token_ids.concat(), [b, s]), &device);
    let mask: Vec<f32> = if with_mask {
        r.attention_mask
            .concat()
            .iter()
            .map(|&m| f32::from(m))
            .collect()
    } else {
        vec![1.0; b * s]
    };
    (
        ids,
        Tensor::from_data(TensorData::new(mask, [b, s]), &device),
    )
}

fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().into_vec().unwrap()
}

/// Max |ours − reference| of a `[n, d]` output.
fn diff2(name: &str, ours: Tensor<B, 2>, reference: &[Vec<f32>]) -> f32 {
    assert_eq!(ours.dims(), [reference.len(), reference[0].len()], "{name}");
    let d = values(ours)
        .iter()
        .zip(reference.concat())
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    println!("{name}: max |diff| = {d:.3e}");
    assert!(d <= TOLERANCE, "{name}: max |diff| {d} > {TOLERANCE}");
    d
}

/// Max |ours − reference| of a `[b, s, h]` output over the rows `keep(b, s)` allows.
fn diff3(
    name: &str,
    ours: Tensor<B, 3>,
    reference: &[Vec<Vec<f32>>],
    keep: impl Fn(usize, usize) -> bool,
) -> f32 {
    let [b, s, h] = ours.dims();
    assert_eq!(
        [b, s, h],
        [reference.len(), reference[0].len(), reference[0][0].len()],
        "{name}"
    );
    let ours = values(ours);
    let mut d = 0f32;
    for (i, row) in reference.iter().enumerate() {
        for (t, token) in row.iter().enumerate() {
            if !keep(i, t) {
                continue;
            }
            for (k, v) in token.iter().enumerate() {
                d = d.max((ours[(i * s + t) * h + k] - v).abs());
            }
        }
    }
    println!("{name}: max |diff| = {d:.3e}");
    assert!(d <= TOLERANCE, "{name}: max |diff| {d} > {TOLERANCE}");
    d
}

#[test]
fn vit_matches_transformers() {
    let (dir, r) = fixture("vit");
    let tower = load_vision_tower::<B>(&dir, &Default::default()).unwrap();
    assert_eq!(tower.config().kind, VisionKind::Vit);
    assert_eq!((tower.output_dim(), tower.image_size()), (32, 32));
    let states = tower.token_states(pixels(&r));
    diff3(
        "vit last_hidden_state",
        states.clone(),
        &r.last_hidden_state,
        |_, _| true,
    );
    // Pooled = the CLS row of the final-LayerNormed states.
    let [b, _, h] = states.dims();
    let cls = states.slice([0..b, 0..1, 0..h]).reshape([b, h]);
    let pooled = tower.forward(pixels(&r));
    let d = values(pooled)
        .iter()
        .zip(values(cls))
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(d <= 1e-6, "pooled vs CLS state: {d}");
}

/// The joint outputs against the reference; `with_mask` gives the reference's
/// mask (CLIP) or all ones (SigLIP, called without one).
fn check_joint(name: &str, model: &JointModel<B>, r: &Reference, with_mask: bool) {
    let (ids, mask) = text_inputs(r, with_mask);
    let real = |i: usize, t: usize| !with_mask || r.attention_mask[i][t] == 1;
    diff3(
        &format!("{name} text last_hidden_state (real tokens)"),
        model.text.token_states(ids.clone(), mask.clone()),
        &r.text_last_hidden_state,
        real,
    );
    diff3(
        &format!("{name} image last_hidden_state"),
        model.vision.token_states(pixels(r)),
        &r.image_last_hidden_state,
        |_, _| true,
    );
    let text = model.text_embeds(ids, mask);
    let image = model.image_embeds(pixels(r));
    diff2(&format!("{name} text_embeds"), text.clone(), &r.text_embeds);
    diff2(
        &format!("{name} image_embeds"),
        image.clone(),
        &r.image_embeds,
    );
    let logits = model.logits_per_image(image, text);
    diff2(
        &format!("{name} logits_per_image"),
        logits.clone(),
        &r.logits_per_image,
    );
    let probs = values(model.probabilities(logits));
    assert!(probs.iter().all(|p| (0.0..=1.0).contains(p)));
}

#[test]
fn clip_matches_transformers() {
    let (dir, r) = fixture("clip");
    let model = load_joint::<B>(&dir, &Default::default()).unwrap();
    check_joint("clip", &model, &r, true);
    // Softmax over the texts: each image's row sums to 1.
    let (ids, mask) = text_inputs(&r, true);
    let logits =
        model.logits_per_image(model.image_embeds(pixels(&r)), model.text_embeds(ids, mask));
    for row in values(model.probabilities(logits)).chunks(r.token_ids.len()) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}

#[test]
fn siglip_matches_transformers() {
    let (dir, r) = fixture("siglip");
    let model = load_joint::<B>(&dir, &Default::default()).unwrap();
    check_joint("siglip", &model, &r, false);
    diff2(
        "siglip image_pooler_output",
        model.vision.forward(pixels(&r)),
        &r.image_pooler_output,
    );
}

#[test]
fn a_joint_directory_loads_as_an_image_tower() {
    for name in ["clip", "siglip"] {
        let (dir, r) = fixture(name);
        let tower = load_vision_tower::<B>(&dir, &Default::default()).unwrap();
        let joint = load_joint::<B>(&dir, &Default::default()).unwrap();
        assert_eq!(tower.output_dim(), joint.vision.output_dim());
        let ours = values(tower.forward(pixels(&r)));
        let theirs = values(joint.vision.forward(pixels(&r)));
        assert_eq!(ours, theirs, "{name}");
    }
    // CLIP's image features are the projected CLS state.
    let (dir, _) = fixture("clip");
    let tower = load_vision_tower::<B>(&dir, &Default::default()).unwrap();
    assert_eq!(tower.output_dim(), 16);
}

fn config_dir(json: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), json).unwrap();
    dir
}

#[test]
fn an_unsupported_model_type_is_refused_by_name() {
    let dir = config_dir(r#"{"model_type": "swin", "hidden_size": 32}"#);
    let err = load_vision_tower::<B>(dir.path(), &Default::default()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(&err, ModelError::BadConfig { key, .. } if key == "model_type"));
    assert!(
        text.contains("'swin'") && text.contains("vit, clip, clip_vision_model"),
        "{text}"
    );
    let err = load_joint::<B>(dir.path(), &Default::default()).unwrap_err();
    assert!(err.to_string().contains("'swin'") && err.to_string().contains("clip, siglip"));
    // A vision config is not a joint model.
    let dir = config_dir(r#"{"model_type": "vit"}"#);
    let err = load_joint::<B>(dir.path(), &Default::default()).unwrap_err();
    assert!(err.to_string().contains("'vit'"), "{err}");
}

#[test]
fn an_unsupported_activation_is_refused() {
    let path = Path::new("config.json");
    let value = serde_json::json!({
        "model_type": "clip",
        "vision_config": {"hidden_act": "relu", "hidden_size": 32, "num_attention_heads": 4}
    });
    let err = VitConfig::from_value(&value, path).unwrap_err();
    assert!(
        matches!(&err, ModelError::BadConfig { key, .. } if key == "vision_config.hidden_act"),
        "{err}"
    );
    assert!(err.to_string().contains("relu") && err.to_string().contains("quick_gelu"));
    let value = serde_json::json!({"model_type": "vit", "image_size": 30, "patch_size": 8});
    let err = VitConfig::from_value(&value, path).unwrap_err();
    assert!(matches!(&err, ModelError::BadConfig { key, .. } if key == "patch_size"));
}

#[test]
fn configs_read_the_fixtures() {
    let read = |name: &str| {
        let path = fixtures().join(name).join("config.json");
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        (value, path)
    };
    let (value, path) = read("clip");
    let c = vigil_model::vision::JointConfig::from_value(&value, &path).unwrap();
    assert_eq!(c.vision.projection_dim, Some(16));
    assert_eq!(c.text.projection_dim, 16);
    assert_eq!(c.vision.seq_len(), 17);
    let (value, path) = read("siglip");
    let c = vigil_model::vision::JointConfig::from_value(&value, &path).unwrap();
    assert_eq!(c.vision.seq_len(), 16);
    assert!(c.vision.use_head && c.vision.projection_dim.is_none());
    assert_eq!(c.text.projection_dim, 32);
    // Configs round-trip through serde (what an export writes).
    let again: vigil_model::vision::JointConfig =
        serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
    assert_eq!(again, c);
}

#[test]
fn shapes_a_tower_cannot_take_are_errors() {
    let (dir, _) = fixture("clip");
    let joint = load_joint::<B>(&dir, &Default::default()).unwrap();
    assert!(joint.vision.check_images([2, 3, 32, 32]).is_ok());
    let err = joint.vision.check_images([2, 3, 64, 64]).unwrap_err();
    assert!(err.to_string().contains("[batch, 3, 32, 32]"), "{err}");
    assert!(joint.text.check_tokens([2, 24]).is_ok());
    assert!(joint.text.check_tokens([2, 25]).is_err());
    assert!(joint.text.check_tokens([2, 0]).is_err());
}

/// Writes `dst/model.safetensors` with the tensors of `src`'s file renamed by
/// `rename` (None drops one) plus `extra` ones, and `dst/config.json`.
fn resave(
    src: &Path,
    dst: &Path,
    config: &serde_json::Value,
    rename: impl Fn(&str) -> Option<String>,
    extra: &[(&str, Vec<usize>)],
) {
    use burn_store::{ModuleStore, SafetensorsStore};
    let mut store = SafetensorsStore::from_file(src.join("model.safetensors"));
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = store
        .get_all_snapshots()
        .unwrap()
        .iter()
        .filter_map(|(k, snap)| {
            let name = rename(k)?;
            let values = snap.to_data().unwrap().convert::<f32>().into_vec().unwrap();
            Some((name, snap.shape.to_vec(), values))
        })
        .collect();
    for (name, shape) in extra {
        let n = shape.iter().product();
        tensors.push((name.to_string(), shape.clone(), vec![0.5; n]));
    }
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, shape, values) in &tensors {
        let start = data.len();
        data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut header = serde_json::Value::Object(header).to_string().into_bytes();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend(header);
    file.extend(data);
    std::fs::write(dst.join("model.safetensors"), file).unwrap();
    std::fs::write(dst.join("config.json"), config.to_string()).unwrap();
}

fn config_of(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
}

fn same(name: &str, a: Tensor<B, 2>, b: Tensor<B, 2>) {
    assert_eq!(values(a), values(b), "{name}");
}

#[test]
fn standalone_vision_checkpoints_load() {
    let device = Default::default();
    // ViTForImageClassification: `vit.` before every key, a classifier.
    let (vit_dir, r) = fixture("vit");
    let reference = load_vision_tower::<B>(&vit_dir, &device).unwrap();
    let dst = tempfile::tempdir().unwrap();
    resave(
        &vit_dir,
        dst.path(),
        &config_of(&vit_dir),
        |k| Some(format!("vit.{k}")),
        &[
            ("classifier.weight", vec![3, 32]),
            ("classifier.bias", vec![3]),
        ],
    );
    let tower = load_vision_tower::<B>(dst.path(), &device).unwrap();
    same(
        "vit.",
        tower.forward(pixels(&r)),
        reference.forward(pixels(&r)),
    );

    for name in ["clip", "siglip"] {
        let (dir, r) = fixture(name);
        let joint = load_joint::<B>(&dir, &device).unwrap();
        let mut config = config_of(&dir)["vision_config"].clone();
        let vision_only = |k: &str| k.strip_prefix("vision_model.").map(str::to_string);
        // As transformers 5 saves `CLIPVisionModel` / `SiglipVisionModel`: no prefix.
        let dst = tempfile::tempdir().unwrap();
        resave(&dir, dst.path(), &config, vision_only, &[]);
        let tower = load_vision_tower::<B>(dst.path(), &device).unwrap();
        assert!(tower.projection.is_none(), "{name}");
        let states = |t: &vigil_model::vision::VisionTransformer<B>| {
            let s = t.token_states(pixels(&r));
            let [b, n, h] = s.dims();
            s.reshape([b * n, h])
        };
        same(name, states(&tower), states(&joint.vision));
        if name == "siglip" {
            same(
                name,
                tower.forward(pixels(&r)),
                joint.vision.forward(pixels(&r)),
            );
            continue;
        }
        // `CLIPVisionModelWithProjection`: `vision_model.` keys and the projection.
        config["architectures"] = serde_json::json!(["CLIPVisionModelWithProjection"]);
        config["projection_dim"] = serde_json::json!(16);
        let dst = tempfile::tempdir().unwrap();
        resave(
            &dir,
            dst.path(),
            &config,
            |k| (k.starts_with("vision_model.") || k.starts_with("visual_")).then(|| k.to_string()),
            &[],
        );
        let tower = load_vision_tower::<B>(dst.path(), &device).unwrap();
        same(
            name,
            tower.forward(pixels(&r)),
            joint.vision.forward(pixels(&r)),
        );
    }
}

#[test]
fn a_missing_or_extra_tensor_is_named() {
    let (dir, _) = fixture("siglip");
    let dst = tempfile::tempdir().unwrap();
    resave(
        &dir,
        dst.path(),
        &config_of(&dir),
        |k| (k != "vision_model.head.probe").then(|| k.to_string()),
        &[("vision_model.extra.weight", vec![2])],
    );
    let err = load_vision_tower::<B>(dst.path(), &Default::default()).unwrap_err();
    assert!(
        matches!(&err, ModelError::MissingTensors { tensors, .. } if tensors == &["vision_model.head.probe"]),
        "{err}"
    );
    let dst = tempfile::tempdir().unwrap();
    resave(
        &dir,
        dst.path(),
        &config_of(&dir),
        |k| Some(k.to_string()),
        &[("vision_model.extra.weight", vec![2])],
    );
    let err = load_joint::<B>(dst.path(), &Default::default()).unwrap_err();
    assert!(
        err.to_string().contains("vision_model.extra.weight"),
        "{err}"
    );
    // The joint model needs its logit bias.
    let dst = tempfile::tempdir().unwrap();
    resave(
        &dir,
        dst.path(),
        &config_of(&dir),
        |k| (k != "logit_bias").then(|| k.to_string()),
        &[],
    );
    let err = load_joint::<B>(dst.path(), &Default::default()).unwrap_err();
    assert!(
        matches!(&err, ModelError::MissingTensors { tensors, .. } if tensors == &["logit_bias"]),
        "{err}"
    );
}

#[test]
fn an_empty_batch_gives_empty_outputs() {
    let (dir, _) = fixture("clip");
    let device = Default::default();
    let joint = load_joint::<B>(&dir, &device).unwrap();
    let images = Tensor::<B, 4>::zeros([0, 3, 32, 32], &device);
    assert_eq!(joint.vision.forward(images.clone()).dims(), [0, 16]);
    assert_eq!(joint.vision.token_states(images).dims(), [0, 17, 32]);
    let ids = Tensor::<B, 2, Int>::zeros([0, 5], &device);
    let mask = Tensor::<B, 2>::zeros([0, 5], &device);
    assert_eq!(joint.text.forward(ids, mask).dims(), [0, 16]);
}
