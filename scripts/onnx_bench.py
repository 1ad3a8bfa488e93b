#!/usr/bin/env python3
"""ONNX Runtime CPU latency and throughput of an export's model.onnx.

    python scripts/onnx_bench.py EXPORT_DIR/MODEL_NAME [--batches 1,32] [--seconds 10]

Inputs are random rows of the model's own signature, at the full sequence length
(max_text_len) and image size, every modality present; only session.run is timed
(after two warm-up runs). Prints, per batch size, the median and p90 latency and
rows per second. Compare with `vigil predict --batch-size N` on the same model
(docs/src/guides/exporting.md, "ONNX and Triton").
"""

import argparse
import json
import os
import time

import numpy as np
import onnxruntime as ort


def main():
    p = argparse.ArgumentParser()
    p.add_argument("repo")
    p.add_argument("--batches", default="1,32")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: ORT's default)")
    args = p.parse_args()
    versions = sorted(int(n) for n in os.listdir(args.repo) if n.isdigit())
    vdir = os.path.join(args.repo, str(versions[-1]))
    with open(os.path.join(vdir, "config.json")) as f:
        config = json.load(f)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(os.path.join(vdir, "model.onnx"), opts,
                                providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    pre = config["preprocessing"]
    rng = np.random.default_rng(0)
    for b in (int(x) for x in args.batches.split(",")):
        feed = {}
        if "input_ids" in names:
            seq = pre["max_text_len"]
            feed.update(input_ids=rng.integers(1000, 2000, size=(b, seq)).astype(np.int64),
                        attention_mask=np.ones((b, seq), dtype=np.int64),
                        has_text=np.ones(b, dtype=bool))
        if "pixel_values" in names:
            s = pre["image_size"]
            feed.update(pixel_values=rng.standard_normal((b, 3, s, s)).astype(np.float32),
                        has_image=np.ones(b, dtype=bool))
        for _ in range(2):
            sess.run(["scores"], feed)
        times = []
        start = time.perf_counter()
        while time.perf_counter() - start < args.seconds or len(times) < 5:
            t = time.perf_counter()
            sess.run(["scores"], feed)
            times.append(time.perf_counter() - t)
        times.sort()
        med, p90 = times[len(times) // 2], times[int(len(times) * 0.9)]
        print(f"batch {b:3d}: median {med * 1e3:8.1f} ms  p90 {p90 * 1e3:8.1f} ms  "
              f"{b / med:8.1f} rows/s  ({len(times)} runs)")


if __name__ == "__main__":
    main()
