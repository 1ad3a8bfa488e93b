#!/usr/bin/env python3
"""PyTorch eager counterpart of `vigil bench encoders`.

Same models (transformers classes, random init at the real shapes), batches, heads
and steps, one thread:
- `xlmr-base step`: XLMRobertaModel(XLMRobertaConfig of xlm-roberta-base,
  add_pooling_layer=False), all parameters trainable, train mode (dropout 0.1),
  mean pooling over the mask, nn.Linear(768, 5), BCEWithLogitsLoss, AdamW (lr 2e-5,
  weight decay 0.01, eps 1e-8); batch 8 x seq 128 where row r ends in
  [0, 8, 16, 24, 32, 24, 16, 8][r % 8] * seq / 64 padding tokens (25 %);
  `--freeze-embeddings` adds the same step with `roberta.embeddings` frozen;
- `vit-b16 step`: ViTModel(ViTConfig() = vit-base-patch16-224, add_pooling_layer=False),
  train mode (ViT's dropout is 0), the final LayerNorm's CLS state, nn.Linear(768, 5),
  BCE, AdamW (lr 1e-4); batch 8 at 224 px;
- `clip-b32 image forward`: CLIPVisionModelWithProjection(clip-vit-base-patch32's
  vision config, projection 512), eval mode, no_grad, `image_embeds`; batch 16.
Pixels are `vigil bench image`'s fixed pattern in [-1, 1]. AdamW is torch's default
implementation (foreach=None, fused=None), which on CPU tensors is the per-tensor
for-loop (`_single_tensor_adamw`); `--adamw foreach|fused` picks the others. The
embeddings' parameters get their own AdamW instance (same arithmetic: the update is
per element) so their share of the step ("emb ms") is timed; "adamw ms" is both.
Attention is transformers' default (`sdpa`; `--attn eager` for the other).
Every figure is the median of `--rounds` timed steps after one untimed; the table
is `vigil bench encoders`'s.

  pip install torch==2.15.0 transformers
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python3 benches/encoder_steps.py \\
      [--only xlmr,vit,clip-image] [--batch N] [--seq 128] [--rounds 3] [--freeze-embeddings]

Run both in the same session on the same machine, alternately, and compare.
"""

import argparse
import statistics
import time

import torch
from torch import nn
from transformers import (CLIPVisionConfig, CLIPVisionModelWithProjection, ViTConfig, ViTModel,
                          XLMRobertaConfig, XLMRobertaModel)

LABELS = 5
DEFAULT_BATCH = {"xlmr": 8, "vit": 8, "clip-image": 16}


def pixels(batch, side):
    i = torch.arange(batch * 3 * side * side, dtype=torch.int64)
    return (((i * 2654435761) % 1000).float() / 500.0 - 1.0).reshape(batch, 3, side, side)


def labels(b):
    return torch.tensor([[1.0 if ((r * LABELS + l) * 37) % 3 == 0 else 0.0 for l in range(LABELS)]
                         for r in range(b)])


def header():
    return (f"{'row':<30} {'batch':>5} {'tokens':>6} {'trainable':>11} {'a-r MB':>9} "
            f"{'fwd ms':>8} {'bwd ms':>8} {'adamw ms':>8} {'emb ms':>8} {'step ms':>8}")


def render(r):
    opt = lambda v: "-" if v is None else f"{v:.0f}"
    trainable = "-" if not r["trainable"] else str(r["trainable"])
    mb = "-" if not r["trainable"] else f"{r['trainable'] * 4 / 1e6:.1f}"
    return (f"{r['label']:<30} {r['batch']:>5} {r['tokens']:>6} {trainable:>11} {mb:>9} "
            f"{r['fwd']:>8.0f} {opt(r.get('bwd')):>8} {opt(r.get('adamw')):>8} "
            f"{opt(r.get('emb')):>8} {r['step']:>8.0f}")


def render_split(r):
    if r.get("bwd") is None:
        return f"  {r['label']}: inference forward only"
    pct = lambda v: 100.0 * v / max(r["step"], 1e-9)
    s = (f"  {r['label']}: forward {pct(r['fwd']):.0f}%, backward {pct(r['bwd']):.0f}%, "
         f"adamw {pct(r['adamw']):.0f}%")
    if r.get("emb") is not None:
        s += f"; embeddings' update {r['emb']:.0f} ms = {100.0 * r['emb'] / r['adamw']:.0f}% of adamw"
    return s


def adamw(params, lr, kind):
    extra = {"foreach": {"foreach": True}, "fused": {"fused": True}}.get(kind, {})
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.01, eps=1e-8, **extra)


def time_steps(model, loss_of, emb_params, lr, rounds, kind):
    """Median ms of forward, backward, AdamW (embeddings' instance alone) and step."""
    emb_ids = {id(p) for p in emb_params}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in emb_ids]
    opts = [adamw(emb_params, lr, kind)] if emb_params else []
    opts.append(adamw(rest, lr, kind))
    fwd, bwd, opt_t, emb_t, step = [], [], [], [], []
    for i in range(rounds + 1):
        t0 = time.perf_counter()
        loss = loss_of()
        t1 = time.perf_counter()
        for o in opts:
            o.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        opts[0].step()
        t3 = time.perf_counter()
        for o in opts[1:]:
            o.step()
        t4 = time.perf_counter()
        if i > 0:
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
            opt_t.append(t4 - t2)
            emb_t.append(t3 - t2)
            step.append(t4 - t0)
    med = lambda v: statistics.median(v) * 1e3
    return {"fwd": med(fwd), "bwd": med(bwd), "adamw": med(opt_t),
            "emb": med(emb_t) if emb_params else None, "step": med(step)}


def xlmr_config(attn):
    return XLMRobertaConfig(vocab_size=250002, hidden_size=768, num_hidden_layers=12,
                            num_attention_heads=12, intermediate_size=3072,
                            max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5,
                            hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                            pad_token_id=1, bos_token_id=0, eos_token_id=2,
                            attn_implementation=attn)


def xlmr_row(a, frozen, attn):
    b, s = a.batch or DEFAULT_BATCH["xlmr"], a.seq
    enc = XLMRobertaModel(xlmr_config(attn), add_pooling_layer=False)
    head = nn.Linear(768, LABELS)
    model = nn.ModuleDict({"enc": enc, "head": head}).train()
    emb = list(enc.embeddings.parameters())
    if frozen:
        for p in emb:
            p.requires_grad_(False)
        emb = []
    vocab = enc.config.vocab_size
    ids = torch.ones(b, s, dtype=torch.long)
    mask = torch.zeros(b, s, dtype=torch.long)
    for r in range(b):
        real = s - [0, 8, 16, 24, 32, 24, 16, 8][r % 8] * s // 64
        for j in range(real):
            ids[r, j] = 0 if j == 0 else 2 if j + 1 == real else \
                1000 + (r * 7919 + j * 104729) % (vocab - 1000)
            mask[r, j] = 1
    y = labels(b)
    loss_fn = nn.BCEWithLogitsLoss()
    m = mask.unsqueeze(-1).float()

    def loss_of():
        states = enc(input_ids=ids, attention_mask=mask).last_hidden_state
        pooled = (states * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return loss_fn(head(pooled), y)

    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    t = time_steps(model, loss_of, emb, 2e-5, a.rounds, a.adamw)
    label = "xlmr-base step, frozen emb" if frozen else "xlmr-base step"
    return {"label": label, "batch": b, "tokens": s, "trainable": trainable, **t}


def vit_row(a, attn):
    b = a.batch or DEFAULT_BATCH["vit"]
    vit = ViTModel(ViTConfig(attn_implementation=attn), add_pooling_layer=False)
    head = nn.Linear(768, LABELS)
    model = nn.ModuleDict({"vit": vit, "head": head}).train()
    x, y = pixels(b, 224), labels(b)
    loss_fn = nn.BCEWithLogitsLoss()

    def loss_of():
        return loss_fn(head(vit(pixel_values=x).last_hidden_state[:, 0]), y)

    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    t = time_steps(model, loss_of, [], 1e-4, a.rounds, a.adamw)
    return {"label": "vit-b16 step", "batch": b, "tokens": (224 // 16) ** 2 + 1,
            "trainable": trainable, **t}


def clip_row(a, attn):
    b = a.batch or DEFAULT_BATCH["clip-image"]
    config = CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                              num_attention_heads=12, image_size=224, patch_size=32,
                              hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=512,
                              attn_implementation=attn)
    model = CLIPVisionModelWithProjection(config).eval()
    x = pixels(b, 224)
    times = []
    with torch.no_grad():
        for i in range(a.rounds + 1):
            t = time.perf_counter()
            model(pixel_values=x).image_embeds
            if i > 0:
                times.append(time.perf_counter() - t)
    ms = statistics.median(times) * 1e3
    return {"label": "clip-b32 image forward", "batch": b, "tokens": (224 // 32) ** 2 + 1,
            "trainable": 0, "fwd": ms, "step": ms}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--only", default="xlmr,vit,clip-image")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--freeze-embeddings", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--adamw", choices=["default", "foreach", "fused"], default="default")
    p.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    only = [o for o in a.only.split(",") if o]
    bad = [o for o in only if o not in DEFAULT_BATCH]
    if bad:
        p.error(f"--only: unknown {bad} (xlmr, vit, clip-image)")
    emb = 250002 + 514 + 1
    all_ = 277453056 + 768 * LABELS + LABELS
    frozen = all_ - emb * 768 - 2 * 768
    print(f"pytorch {torch.__version__} eager: random weights at the real shapes, "
          f"{a.threads} thread(s), train-mode dropout (XLM-R 0.1, ViT 0), AdamW {a.adamw} "
          f"(CPU: per-tensor loop unless foreach/fused), attention {a.attn}, "
          f"medians of {a.rounds} timed steps after 1 untimed")
    print(f"xlmr-base all-reduce per step: {all_ * 4 / 1e6:.1f} MB ({all_} trainable), "
          f"embeddings frozen {frozen * 4 / 1e6:.1f} MB ({frozen})")
    print(header(), flush=True)
    rows = []
    for name in ["xlmr", "vit", "clip-image"]:
        if name not in only:
            continue
        if name == "xlmr":
            variants = [False, True] if a.freeze_embeddings else [False]
            new = (xlmr_row(a, f, a.attn) for f in variants)
        elif name == "vit":
            new = [vit_row(a, a.attn)]
        else:
            new = [clip_row(a, a.attn)]
        for r in new:
            print(render(r), flush=True)
            rows.append(r)
    print("where the time goes:")
    for r in rows:
        print(render_split(r))


if __name__ == "__main__":
    main()
