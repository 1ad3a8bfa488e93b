#!/usr/bin/env python3
"""Checks of a Vigil model repository's ONNX export (CI and the parity tests).

    python scripts/onnx_checks.py EXPORT_DIR/MODEL_NAME [--version V]

1. `onnx.checker.check_model(full_check=True)` passes on <version>/model.onnx, and
   its metadata_props carry the labels, task, thresholds and preprocessing.
2. The axes are really dynamic: 64 random rows scored as one batch, one row at a
   time, and padded to max_text_len give the same per-row scores (1e-5), and a
   sequence of length 1 runs.
3. config.pbtxt parses as Triton's ModelConfig (tritonclient's model_config_pb2,
   protobuf text format) and its inputs/outputs match the graph's names, dtypes
   and shapes; labels.txt holds the labels.
Exit status 0 when all hold; prints what failed otherwise.
"""

import argparse
import json
import os
import sys

import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("repo")
    p.add_argument("--version", type=int)
    args = p.parse_args()

    import onnx
    import onnxruntime as ort

    versions = sorted(int(n) for n in os.listdir(args.repo) if n.isdigit())
    v = args.version if args.version is not None else versions[-1]
    vdir = os.path.join(args.repo, str(v))
    path = os.path.join(vdir, "model.onnx")
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    with open(os.path.join(vdir, "config.json")) as f:
        config = json.load(f)
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["labels"]) == config["labels"], meta["labels"]
    assert meta["task"] == config["task"]
    assert json.loads(meta["preprocessing"]) == config["preprocessing"]
    with open(os.path.join(vdir, "thresholds.json")) as f:
        assert json.loads(meta["thresholds"]) == json.load(f)
    sig = config["onnx"]
    assert [i["name"] for i in sig["inputs"]] == [i.name for i in model.graph.input]

    # 2. Dynamic axes.
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    rng = np.random.default_rng(0)
    n, pre = 64, config["preprocessing"]
    max_len = pre["max_text_len"]
    feed = {}
    lengths = rng.integers(1, max_len + 1, size=n)
    lengths[0], lengths[1] = 1, max_len
    if "input_ids" in names:
        # BERT-family and DeBERTa: word_embeddings; CLIP / SigLIP: token_embedding.
        table = next(t for t in model.graph.initializer
                     if t.name in ("text.encoder.embeddings.word_embeddings.weight",
                                   "text.encoder.token_embedding.weight"))
        vocab = table.dims[0]
        # SigLIP reads rows padded to max_text_len (it attends to its padding).
        full = pre.get("text_padding") == "max_length"
        seq = max_len if full else int(lengths.max())
        ids = rng.integers(0, vocab, size=(n, seq)).astype(np.int64)
        mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
        ids = ids * mask
        feed.update(input_ids=ids, attention_mask=mask, has_text=rng.random(n) < 0.8)
    if "pixel_values" in names:
        s = pre["image_size"]
        feed.update(pixel_values=rng.standard_normal((n, 3, s, s)).astype(np.float32),
                    has_image=rng.random(n) < 0.8)
    (whole,) = sess.run(["scores"], feed)
    assert whole.shape == (n, len(config["labels"])), whole.shape
    worst = 0.0
    for r in range(n):
        row = {}
        for k, val in feed.items():
            row[k] = val[r:r + 1]
        if "input_ids" in row and not full:
            cut = int(lengths[r])
            row["input_ids"] = row["input_ids"][:, :cut]
            row["attention_mask"] = row["attention_mask"][:, :cut]
        (one,) = sess.run(["scores"], row)
        worst = max(worst, float(np.abs(one[0] - whole[r]).max()))
    if "input_ids" in names and not full and feed["input_ids"].shape[1] < max_len:
        padded = dict(feed)
        extra = max_len - feed["input_ids"].shape[1]
        padded["input_ids"] = np.pad(feed["input_ids"], ((0, 0), (0, extra)))
        padded["attention_mask"] = np.pad(feed["attention_mask"], ((0, 0), (0, extra)))
        (p,) = sess.run(["scores"], padded)
        worst = max(worst, float(np.abs(p - whole).max()))
    assert worst < 1e-5, f"scores depend on the batch or padding: {worst}"

    # 3. Triton's config.
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    with open(os.path.join(args.repo, "config.pbtxt")) as f:
        cfg = text_format.Parse(f.read(), mc.ModelConfig())
    assert cfg.platform == "onnxruntime_onnx", cfg.platform
    assert cfg.max_batch_size > 0 and cfg.HasField("dynamic_batching")
    assert cfg.version_policy.latest.num_versions == 1
    kinds = {mc.ModelInstanceGroup.KIND_CPU, mc.ModelInstanceGroup.KIND_GPU}
    assert cfg.instance_group and cfg.instance_group[0].kind in kinds
    dtype = {onnx.TensorProto.INT64: mc.TYPE_INT64, onnx.TensorProto.FLOAT: mc.TYPE_FP32,
             onnx.TensorProto.BOOL: mc.TYPE_BOOL}

    def shape(vi):
        return [d.dim_value if d.HasField("dim_value") else -1
                for d in vi.type.tensor_type.shape.dim]

    def compare(triton, graph, what):
        assert [t.name for t in triton] == [g.name for g in graph], what
        for t, g in zip(triton, graph):
            assert t.data_type == dtype[g.type.tensor_type.elem_type], (what, t.name)
            dims = shape(g)
            assert dims[0] == -1, (what, t.name, "batch axis must be dynamic")
            if len(dims) == 1:
                assert list(t.dims) == [1] and list(t.reshape.shape) == [], (what, t.name)
            else:
                assert list(t.dims) == dims[1:], (what, t.name, list(t.dims), dims)

    compare(cfg.input, model.graph.input, "inputs")
    compare(cfg.output, model.graph.output, "outputs")
    assert cfg.output[0].label_filename == "labels.txt"
    with open(os.path.join(args.repo, "labels.txt")) as f:
        assert f.read().split("\n")[:-1] == config["labels"]
    print(f"onnx_checks.py: {vdir}: checker, metadata, dynamic axes ({worst:.1e}), "
          f"config.pbtxt: ok")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"onnx_checks.py: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
