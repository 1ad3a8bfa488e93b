#!/usr/bin/env python3
"""Check an exported Vigil model with the Python `safetensors` package.

    check_export.py EXPORT [--print]

EXPORT is a version directory (`<export.dir>/<model_name>/<version>/`) or a model
repository (the highest integer version is checked). The script

1. verifies the version's MANIFEST.json (size and sha256 of every file),
2. loads `model.safetensors` with `safetensors.numpy.load_file` (what a Python
   serving process or converter would do), and
3. compares every tensor name and shape with the layout the book documents
   (docs/src/guides/exporting.md, "Tensors of model.safetensors"), derived
   from the version's own `config.json` and `text_config.json`: nothing missing,
   nothing extra, every shape exact, float32, finite.

Exit status 0 when everything matches, 1 with a list of problems otherwise.
`--print` also lists every tensor with its shape. CI (`.ci/run`) runs it on the
export of a real 2-worker run of configs/tiny.yaml.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

# torchvision EfficientNet-B0 stages: (expand ratio, kernel, stride, in, out, blocks).
B0_STAGES = [
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
]
B0_DIM = 1280


def pick_version(path: Path) -> Path:
    if (path / "MANIFEST.json").is_file():
        return path
    if not path.is_dir():
        sys.exit(f"{path}: no such directory")
    versions = [
        int(p.name)
        for p in path.iterdir()
        if p.is_dir() and p.name.isdigit() and (p.name == "0" or not p.name.startswith("0"))
    ]
    if not versions:
        sys.exit(f"{path}: neither a version directory nor a repository with versions")
    return path / str(max(versions))


def verify_manifest(version: Path) -> list[str]:
    manifest = json.loads((version / "MANIFEST.json").read_text())
    problems = []
    for name, want in manifest["files"].items():
        data = (version / name).read_bytes()
        if len(data) != want["size"]:
            problems.append(f"{name}: {len(data)} bytes, MANIFEST.json says {want['size']}")
        elif hashlib.sha256(data).hexdigest() != want["sha256"]:
            problems.append(f"{name}: sha256 differs from MANIFEST.json")
    return problems


def linear(out: dict, name: str, fan_in: int, fan_out: int) -> None:
    # burn stores Linear weights as [in, out] (PyTorch's nn.Linear is [out, in]).
    out[f"{name}.weight"] = (fan_in, fan_out)
    out[f"{name}.bias"] = (fan_out,)


def norm(out: dict, name: str, width: int) -> None:
    out[f"{name}.gamma"] = (width,)
    out[f"{name}.beta"] = (width,)


def text_tensors(out: dict, cfg: dict) -> int:
    # text_config.json: {"architecture", "config"} (a bare BERT config in older
    # exports). The BERT family (bert, roberta, xlm-roberta, distilbert) shares
    # the tensors below; DistilBERT has no token-type table.
    arch = cfg.get("architecture", "bert")
    cfg = cfg.get("config", cfg)
    if arch not in ("bert", "roberta", "xlm-roberta", "distilbert"):
        raise SystemExit(f"check_export.py: text architecture {arch!r} is not checked here")
    h, inter = cfg["hidden_size"], cfg["intermediate_size"]
    e = "text.encoder.embeddings"
    out[f"{e}.word_embeddings.weight"] = (cfg["vocab_size"], h)
    out[f"{e}.position_embeddings.weight"] = (cfg["max_position_embeddings"], h)
    if cfg["type_vocab_size"] > 0:
        out[f"{e}.token_type_embeddings.weight"] = (cfg["type_vocab_size"], h)
    norm(out, f"{e}.layer_norm", h)
    for i in range(cfg["num_hidden_layers"]):
        p = f"text.encoder.layers.{i}"
        for name in ("query", "key", "value", "attn_out"):
            linear(out, f"{p}.{name}", h, h)
        norm(out, f"{p}.attn_norm", h)
        linear(out, f"{p}.ffn_in", h, inter)
        linear(out, f"{p}.ffn_out", inter, h)
        norm(out, f"{p}.ffn_norm", h)
    return h


def conv_bn(out: dict, name: str, cin_per_group: int, cout: int, k: int) -> None:
    out[f"{name}.conv.weight"] = (cout, cin_per_group, k, k)
    out[f"{name}.bn.gamma"] = (cout,)
    out[f"{name}.bn.beta"] = (cout,)
    out[f"{name}.bn.running_mean"] = (cout,)
    out[f"{name}.bn.running_var"] = (cout,)


def image_tensors(out: dict, image: dict) -> int:
    if image["encoder"] == "scratch_cnn":
        c = max(1, image["channels"])
        for i, (a, b) in enumerate([(3, c), (c, 2 * c), (2 * c, 2 * c)]):
            out[f"image.Cnn.blocks.{i}.weight"] = (b, a, 3, 3)
            out[f"image.Cnn.blocks.{i}.bias"] = (b,)
        return 2 * c
    p = "image.EfficientNet"
    conv_bn(out, f"{p}.stem", 3, 32, 3)
    for s, (e, k, _stride, cin, cout, n) in enumerate(B0_STAGES):
        for j in range(n):
            bin_ = cin if j == 0 else cout
            mid, squeeze = bin_ * e, max(1, bin_ // 4)
            b = f"{p}.stages.{s}.{j}"
            if e != 1:
                conv_bn(out, f"{b}.expand", bin_, mid, 1)
            conv_bn(out, f"{b}.depthwise", 1, mid, k)
            out[f"{b}.se.fc1.weight"] = (squeeze, mid, 1, 1)
            out[f"{b}.se.fc1.bias"] = (squeeze,)
            out[f"{b}.se.fc2.weight"] = (mid, squeeze, 1, 1)
            out[f"{b}.se.fc2.bias"] = (mid,)
            conv_bn(out, f"{b}.project", mid, cout, 1)
    conv_bn(out, f"{p}.head", 320, B0_DIM, 1)
    return B0_DIM


def expected_tensors(version: Path) -> dict[str, tuple[int, ...]]:
    config = json.loads((version / "config.json").read_text())
    model = config["model"]
    out: dict[str, tuple[int, ...]] = {}
    text_dim = image_dim = None
    if model.get("text"):
        text_dim = text_tensors(out, json.loads((version / "text_config.json").read_text()))
    if model.get("image"):
        image_dim = image_tensors(out, model["image"])
    dim, kind = model["fusion"]["dim"], model["fusion"]["kind"]
    for name, width in (("text", text_dim), ("image", image_dim)):
        if width is not None:
            out[f"fusion.{name}_std.mean"] = (width,)
            out[f"fusion.{name}_std.inv_std"] = (width,)
            out[f"fusion.{name}_norm.gamma"] = (width,)
            out[f"fusion.{name}_norm.beta"] = (width,)
            linear(out, f"fusion.{name}_proj", width, dim)
            out[f"fusion.{name}_missing"] = (dim,)
    both = text_dim is not None and image_dim is not None
    if both and kind == "gated":
        linear(out, "fusion.gate", 2 * dim, dim)
    fused = {"concat": 2 * dim, "gated": dim, "interaction": dim * dim}[kind] if both else dim
    widths = [fused, *model["head"]["hidden"], len(model["labels"])]
    for i in range(len(widths) - 1):
        linear(out, f"head.layers.{i}", widths[i], widths[i + 1])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", type=Path)
    parser.add_argument("--print", action="store_true", help="list every tensor and shape")
    args = parser.parse_args()
    version = pick_version(args.export)
    problems = verify_manifest(version)
    weights = version / "model.safetensors"
    tensors = load_file(str(weights))
    with safe_open(str(weights), framework="numpy") as f:
        metadata = f.metadata() or {}
        if sorted(f.keys()) != sorted(tensors):
            problems.append("safe_open and load_file list different tensors")
    expected = expected_tensors(version)
    for name in sorted(set(expected) - set(tensors)):
        problems.append(f"missing tensor {name} {list(expected[name])}")
    for name in sorted(set(tensors) - set(expected)):
        problems.append(f"undocumented tensor {name} {list(tensors[name].shape)}")
    for name in sorted(set(expected) & set(tensors)):
        t = tensors[name]
        if tuple(t.shape) != expected[name]:
            problems.append(f"{name}: shape {list(t.shape)}, documented {list(expected[name])}")
        if t.dtype != np.float32:
            problems.append(f"{name}: dtype {t.dtype}, documented float32")
        elif not np.isfinite(t).all():
            problems.append(f"{name}: non-finite values")
    if args.print:
        for name in sorted(tensors):
            print(f"{name} {list(tensors[name].shape)}")
    if problems:
        print(f"{weights}: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    params = sum(int(t.size) for t in tensors.values())
    print(
        f"{weights}: ok: {len(tensors)} tensors, {params} parameters, as documented "
        f"(producer {metadata.get('producer', '?')} {metadata.get('version', '?')})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
