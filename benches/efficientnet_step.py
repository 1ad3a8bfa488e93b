#!/usr/bin/env python3
"""PyTorch eager counterpart of `vigil bench image`.

Same model, batch and rows: torchvision's EfficientNet-B0 features with global
average pooling (the fetched `.pth` when present), one thread, batch 16, pixels a
fixed pattern in [-1, 1].
- frozen forward at each --sizes side: eval mode, no_grad, ms per image;
- training step at --train-size: the whole tower trainable with BatchNorm
  statistics frozen (eval-mode BN, as Vigil keeps them; no dropout / stochastic
  depth, which eval mode also skips), a linear head to 5 labels, BCE with logits,
  AdamW (lr 1e-4, weight decay 0.01, eps 1e-8), in images per second.
Every figure is the median of its rounds after one untimed round; the lines are
`vigil bench image`'s.

  pip install torch==2.15.0 torchvision
  scripts/fetch-pretrained.sh
  python3 benches/efficientnet_step.py [--image-encoder PTH] [--batch 16]

Run both in the same session on the same machine, alternately, and compare.
"""

import argparse
import os
import pathlib
import statistics
import time

import torch
from torch import nn
from torchvision.models import efficientnet_b0


def pixels(batch, side):
    i = torch.arange(batch * 3 * side * side, dtype=torch.int64)
    return (((i * 2654435761) % 1000).float() / 500.0 - 1.0).reshape(batch, 3, side, side)


def main():
    default = pathlib.Path(
        os.environ.get("VIGIL_PRETRAINED", pathlib.Path.home() / ".cache/vigil/pretrained")
    ) / "efficientnet-b0/best_efficientnet_b0.pth"
    p = argparse.ArgumentParser()
    p.add_argument("--image-encoder", default=str(default))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--sizes", default="160,224")
    p.add_argument("--train-size", type=int, default=224)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    net = efficientnet_b0()
    source = "random weights"
    if pathlib.Path(a.image_encoder).is_file():
        state = torch.load(a.image_encoder, map_location="cpu")
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
        net.load_state_dict(state, strict=False)
        source = a.image_encoder
    tower = nn.Sequential(net.features, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    b = a.batch
    print(f"pytorch {torch.__version__} eager: EfficientNet-B0 ({source}), batch {b}, "
          f"{a.threads} thread(s), medians after one untimed round")

    tower.eval()
    for side in [int(s) for s in a.sizes.split(",") if s]:
        x = pixels(b, side)
        times = []
        with torch.no_grad():
            for i in range(a.rounds + 1):
                t = time.perf_counter()
                tower(x)
                if i > 0:
                    times.append((time.perf_counter() - t) * 1e3 / b)
        print(f"frozen forward {side} px: {statistics.median(times):>8.2f} ms/image")

    if a.train_size:
        head = nn.Linear(1280, 5)
        model = nn.Sequential(tower, head)
        model.eval()  # BatchNorm statistics frozen, no dropout; gradients still flow
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, eps=1e-8)
        loss_fn = nn.BCEWithLogitsLoss()
        x = pixels(b, a.train_size)
        y = torch.tensor([[1.0 if ((r * 5 + l) * 37) % 3 == 0 else 0.0 for l in range(5)]
                          for r in range(b)])
        fwd, bwd, opt_t, step = [], [], [], []
        for i in range(a.steps + 1):
            t0 = time.perf_counter()
            loss = loss_fn(model(x), y)
            t1 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            t2 = time.perf_counter()
            opt.step()
            t3 = time.perf_counter()
            if i > 0:
                fwd.append(t1 - t0)
                bwd.append(t2 - t1)
                opt_t.append(t3 - t2)
                step.append(t3 - t0)
        med = statistics.median
        s = med(step)
        print(f"training step {a.train_size} px: {b / s:>8.2f} images/s "
              f"(step {s * 1e3:.0f} ms: forward {med(fwd) * 1e3:.0f}, "
              f"backward {med(bwd) * 1e3:.0f}, adamw {med(opt_t) * 1e3:.0f})")


if __name__ == "__main__":
    main()
