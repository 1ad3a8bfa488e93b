//! One optimizer step of the whole multimodal model on CPU lowers the loss on a
//! fixed batch, for every fusion mode; frozen parameters do not move.

use std::collections::HashMap;

use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use vigil_config::{
    DataSection, FusionKind, ImageEncoder, ImageTower, ModelSection, Task, TextEncoder, TextTower,
    TrainLayers,
};
use vigil_model::backend::{CpuAutodiff, CpuBackend};
use vigil_model::{
    ModelInput, ModerationModel, ParamGroup, Targets, TextTokenizer, all_params, trainable_params,
};

use super::util::{write_tiny_bert, write_tokenizer};

type AB = CpuAutodiff;
const IMG: usize = 16;
const LABELS: usize = 3;

fn section(
    dir: &std::path::Path,
    fusion: FusionKind,
    task: Task,
    pretrained: bool,
) -> ModelSection {
    let mut m = ModelSection {
        labels: vec!["hate".into(), "spam".into(), "violence".into()],
        task,
        ..Default::default()
    };
    m.text = Some(if pretrained {
        TextTower {
            encoder: TextEncoder::Bert,
            path: Some(dir.join("bert").display().to_string()),
            train_layers: TrainLayers::Top(1),
            ..Default::default()
        }
    } else {
        TextTower {
            encoder: TextEncoder::Scratch,
            tokenizer: Some(write_tokenizer(dir).display().to_string()),
            hidden: 16,
            layers: 2,
            heads: 2,
            train_layers: TrainLayers::Top(1),
            ..Default::default()
        }
    });
    m.image = Some(ImageTower {
        encoder: ImageEncoder::ScratchCnn,
        channels: 4,
        train_layers: TrainLayers::Top(2),
        ..Default::default()
    });
    m.fusion.kind = fusion;
    m.fusion.dim = 8;
    m.head.hidden = vec![16];
    m.head.dropout = 0.0;
    m.head.pos_weight.insert("spam".into(), 2.0);
    m
}

fn data() -> DataSection {
    DataSection {
        max_text_len: 12,
        image_size: IMG as u32,
        ..Default::default()
    }
}

/// Four rows: both modalities, text only, image only, both; some labels unknown.
fn batch<B: Backend>(
    tok: Option<&TextTokenizer>,
    device: &B::Device,
) -> (ModelInput<B>, Targets<B>) {
    let texts = vec![
        Some("i will hurt you".to_string()),
        Some("buy cheap spam now!".to_string()),
        None,
        Some("the friendly cat".to_string()),
    ];
    let present = [true, false, true, true];
    let mut images = Vec::new();
    for (r, p) in present.iter().enumerate() {
        for i in 0..3 * IMG * IMG {
            images.push(if *p {
                ((i * (r + 3)) % 17) as f32 / 8.0 - 1.0
            } else {
                0.0
            });
        }
    }
    let input = ModelInput::from_vecs(tok, &texts, &images, &present, IMG, device).unwrap();
    let labels = [1., 0., 1., 0., 1., 0., 0., 0., 1., 0., 0., 0.];
    let known = [
        true, true, false, true, true, true, true, false, true, true, true, true,
    ];
    let targets = Targets::from_vecs(&labels, &known, 4, LABELS, device).unwrap();
    (input, targets)
}

fn eval_loss(model: &ModerationModel<AB>, tok: Option<&TextTokenizer>) -> f32 {
    let inner = model.valid();
    let (input, targets) = batch::<CpuBackend>(tok, &Default::default());
    inner.loss(inner.forward(&input), &targets).into_scalar()
}

fn values(model: &ModerationModel<AB>) -> HashMap<String, Vec<f32>> {
    // Read through the inner model: the visitor sees every tensor, frozen or not.
    let inner = model.valid();
    let mut out = HashMap::new();
    struct V<'a>(&'a mut HashMap<String, Vec<f32>>, Vec<String>);
    impl burn::module::ModuleVisitor<CpuBackend> for V<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.1.push(name.into());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.1.pop();
        }
        fn visit_float<const D: usize>(
            &mut self,
            p: &burn::module::Param<burn::tensor::Tensor<CpuBackend, D>>,
        ) {
            self.0
                .insert(self.1.join("."), p.val().into_data().into_vec().unwrap());
        }
    }
    burn::module::Module::visit(&inner, &mut V(&mut out, Vec::new()));
    out
}

fn one_step(fusion: FusionKind, task: Task, pretrained: bool) {
    let dir = tempfile::tempdir().unwrap();
    if pretrained {
        write_tiny_bert(&dir.path().join("bert"), "bert.");
    }
    let device = Default::default();
    <AB as Backend>::seed(&device, 3);
    let loaded = ModerationModel::<AB>::from_config(
        &section(dir.path(), fusion, task, pretrained),
        &data(),
        &device,
    )
    .unwrap();
    let (model, tok) = (loaded.model, loaded.tokenizer);
    let params = all_params(&model);
    let frozen: Vec<_> = params
        .iter()
        .filter(|p| p.group == ParamGroup::Frozen)
        .collect();
    // Embeddings and the bottom text block, and the first CNN block, are frozen.
    assert!(
        frozen
            .iter()
            .any(|p| p.path.starts_with("text.encoder.embeddings."))
    );
    assert!(
        frozen
            .iter()
            .any(|p| p.path.starts_with("text.encoder.layers.0."))
    );
    assert!(
        frozen
            .iter()
            .any(|p| p.path.starts_with("image.Cnn.blocks.0."))
    );
    assert!(params.iter().any(|p| p.group == ParamGroup::Encoder && p.path.starts_with("text.encoder.layers.1.")));
    assert!(
        params
            .iter()
            .any(|p| p.group == ParamGroup::Head && p.path.starts_with("fusion."))
    );

    let before_loss = eval_loss(&model, tok.as_ref());
    let before = values(&model);

    let (input, targets) = batch::<AB>(tok.as_ref(), &device);
    let loss = model.loss(model.forward(&input), &targets);
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    assert!(!grads.is_empty());
    let mut optim = AdamWConfig::new()
        .with_weight_decay(0.0)
        .init::<AB, ModerationModel<AB>>();
    // Small enough that Adam's first (sign-like) step is first-order for any
    // initialisation: the global RNG is shared with the tests running beside this
    // one, so the weights drawn after `seed` are not always the same.
    let model = optim.step(1e-3, model, grads);

    let after_loss = eval_loss(&model, tok.as_ref());
    assert!(
        after_loss < before_loss,
        "{fusion:?}/{task:?}: loss {before_loss} → {after_loss} did not decrease"
    );
    let after = values(&model);
    for p in &frozen {
        assert_eq!(before[&p.path], after[&p.path], "frozen {} changed", p.path);
    }
    let moved = trainable_params(&model)
        .iter()
        .filter(|p| before[&p.path] != after[&p.path])
        .count();
    assert!(moved > 0);
}

#[test]
fn one_step_lowers_loss_concat() {
    one_step(FusionKind::Concat, Task::MultiLabel, false);
}

#[test]
fn one_step_lowers_loss_gated() {
    one_step(FusionKind::Gated, Task::MultiLabel, false);
}

#[test]
fn one_step_lowers_loss_interaction() {
    one_step(FusionKind::Interaction, Task::MultiLabel, false);
}

#[test]
fn one_step_lowers_loss_multi_class_with_pretrained_bert() {
    one_step(FusionKind::Interaction, Task::MultiClass, true);
}

#[test]
fn trainable_parameters_come_in_a_fixed_order() {
    let dir = tempfile::tempdir().unwrap();
    let device = Default::default();
    let build = || {
        ModerationModel::<AB>::from_config(
            &section(dir.path(), FusionKind::Concat, Task::MultiLabel, false),
            &data(),
            &device,
        )
        .unwrap()
        .model
    };
    let paths = |m: &ModerationModel<AB>| {
        trainable_params(m)
            .into_iter()
            .map(|p| p.path)
            .collect::<Vec<_>>()
    };
    // The order is a property of the config, not of the instance.
    let first = paths(&build());
    assert!(!first.is_empty());
    assert_eq!(first, paths(&build()));
}

#[test]
fn rows_without_any_modality_of_a_kind_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let device = Default::default();
    let loaded = ModerationModel::<CpuBackend>::from_config(
        &section(dir.path(), FusionKind::Gated, Task::MultiLabel, false),
        &data(),
        &device,
    )
    .unwrap();
    let texts = vec![None, None];
    let images = vec![0.5; 2 * 3 * IMG * IMG];
    let input = ModelInput::from_vecs(
        loaded.tokenizer.as_ref(),
        &texts,
        &images,
        &[true, true],
        IMG,
        &device,
    )
    .unwrap();
    let logits = loaded.model.forward(&input);
    assert_eq!(logits.dims(), [2, LABELS]);
    // No image at all: the image tower is skipped, placeholders stand in.
    let texts = vec![Some("the cat".to_string()), None];
    let input = ModelInput::from_vecs(
        loaded.tokenizer.as_ref(),
        &texts,
        &[],
        &[false, false],
        IMG,
        &device,
    )
    .unwrap();
    let emb = loaded.model.embed(&input);
    assert!(emb.image.is_none() && emb.text.is_some());
    assert_eq!(loaded.model.forward(&input).dims(), [2, LABELS]);
    let values: Vec<f32> = loaded.model.forward(&input).into_data().into_vec().unwrap();
    assert!(values.iter().all(|v| v.is_finite()));
}
