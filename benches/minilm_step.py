#!/usr/bin/env python3
"""PyTorch eager counterpart of `vigil bench train`.

Same model and step: the all-MiniLM-L6-v2 text tower (transformers BertModel, all
parameters trainable, dropout 0.1, mean pooling), a linear head to 5 labels, BCE
with logits, AdamW (lr 2e-5, weight decay 0.01, eps 1e-8); batch 16 x seq 64 where
row r ends in [0, 8, 16, 24, 32, 24, 16, 8][r % 8] padding tokens (25 % padding);
one thread. Prints the same columns as `vigil bench train`.

  pip install torch==2.15.0 transformers
  scripts/fetch-pretrained.sh
  python3 benches/minilm_step.py [--text-encoder DIR] [--batch 16] [--seq 64] [--steps 10]

Run both in the same session on the same machine and compare samples/s.
"""

import argparse
import os
import pathlib
import statistics
import time

import torch
from torch import nn
from transformers import BertConfig, BertModel


def main():
    default_dir = pathlib.Path(
        os.environ.get("VIGIL_PRETRAINED", pathlib.Path.home() / ".cache/vigil/pretrained")
    ) / "all-minilm-l6-v2"
    p = argparse.ArgumentParser()
    p.add_argument("--text-encoder", default=str(default_dir))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    if pathlib.Path(a.text_encoder, "model.safetensors").is_file():
        bert = BertModel.from_pretrained(a.text_encoder, add_pooling_layer=False)
        source = a.text_encoder
    else:
        bert = BertModel(BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6,
                                    num_attention_heads=12, intermediate_size=1536),
                         add_pooling_layer=False)
        source = "random weights"
    head = nn.Linear(384, 5)
    model = nn.ModuleDict({"bert": bert, "head": head}).train()
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01, eps=1e-8)

    b, s = a.batch, a.seq
    vocab = bert.config.vocab_size
    ids = torch.zeros(b, s, dtype=torch.long)
    mask = torch.zeros(b, s, dtype=torch.long)
    for r in range(b):
        real = s - [0, 8, 16, 24, 32, 24, 16, 8][r % 8] * s // 64
        for j in range(s):
            if j == 0:
                ids[r, j] = 101
            elif j + 1 == real:
                ids[r, j] = 102
            elif j < real:
                ids[r, j] = 1000 + (r * 7919 + j * 104729) % (vocab - 1000)
            mask[r, j] = 1 if j < real else 0
    labels = torch.tensor([[1.0 if ((r * 5 + l) * 37) % 3 == 0 else 0.0 for l in range(5)]
                           for r in range(b)])
    loss_fn = nn.BCEWithLogitsLoss()

    fwd, bwd, opt_t, steps = 0.0, 0.0, 0.0, []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        states = bert(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).float()
        pooled = (states * m).sum(1) / m.sum(1).clamp(min=1e-9)
        loss = loss_fn(head(pooled), labels)
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if i >= a.warmup:
            fwd += t1 - t0
            bwd += t2 - t1
            opt_t += t3 - t2
            steps.append(t3 - t0)
    n = len(steps)
    step = sum(steps) / n
    print(f"pytorch {torch.__version__} eager: MiniLM-L6 text tower ({source}), batch {b} x seq {s} "
          f"(25% padding), {a.threads} thread(s), {n} timed steps after {a.warmup} warmup")
    print(f"{'backend':<8} {'params':>10} {'fwd ms':>9} {'bwd ms':>9} {'adamw ms':>9} "
          f"{'step ms':>9} {'median ms':>11} {'samples/s':>10}")
    print(f"{'torch':<8} {params:>10} {fwd / n * 1e3:>9.1f} {bwd / n * 1e3:>9.1f} "
          f"{opt_t / n * 1e3:>9.1f} {step * 1e3:>9.1f} {statistics.median(steps) * 1e3:>11.1f} "
          f"{b / step:>10.2f}")


if __name__ == "__main__":
    main()
