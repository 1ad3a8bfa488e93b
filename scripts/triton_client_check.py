#!/usr/bin/env python3
"""Checks `vigil serve` with the real tritonclient[http]: server and model
metadata, liveness and readiness, and an infer call with binary tensor data
(tritonclient's default) whose scores equal `vigil predict`'s on the same rows
within 1e-5, plus the same call in the JSON form.

Usage: triton_client_check.py --url HOST:PORT --model NAME --rows ROWS.jsonl
       --predict PREDICT.jsonl   (the output of `vigil predict` on ROWS.jsonl)
"""
import argparse
import base64
import json
import os
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def fail(msg):
    print(f"triton_client_check: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--rows", required=True)
    ap.add_argument("--predict", required=True)
    args = ap.parse_args()

    client = httpclient.InferenceServerClient(url=args.url)
    if not client.is_server_live():
        fail("server not live")
    if not client.is_server_ready():
        fail("server not ready")
    if not client.is_model_ready(args.model):
        fail("model not ready")
    server = client.get_server_metadata()
    if "binary_tensor_data" not in server.get("extensions", []):
        fail(f"server metadata lacks binary_tensor_data: {server}")
    meta = client.get_model_metadata(args.model)
    inputs = {i["name"]: i for i in meta["inputs"]}
    outputs = {o["name"]: o for o in meta["outputs"]}
    if set(inputs) != {"text", "image"} or set(outputs) != {"scores", "decisions"}:
        fail(f"unexpected metadata: {meta}")
    labels = meta["parameters"]["labels"]
    version = meta["versions"][0]

    rows = [json.loads(l) for l in open(args.rows) if l.strip()]
    base = os.path.dirname(os.path.abspath(args.rows))
    texts = np.array([r.get("text", "").encode() for r in rows], dtype=np.object_)
    images = np.array(
        [open(os.path.join(base, r["image"]), "rb").read() if "image" in r else b"" for r in rows],
        dtype=np.object_,
    )
    expected = {}
    for line in open(args.predict):
        if line.strip():
            p = json.loads(line)
            expected[p["id"]] = ([p["scores"][l] for l in labels], [p["decisions"][l] for l in labels])
    want = np.array([expected[r["id"]][0] for r in rows], dtype=np.float64)
    want_dec = np.array([expected[r["id"]][1] for r in rows], dtype=bool)

    for binary in (True, False):
        text_in = httpclient.InferInput("text", [len(rows)], "BYTES")
        text_in.set_data_from_numpy(texts, binary_data=binary)
        image_in = httpclient.InferInput("image", [len(rows)], "BYTES")
        # The JSON form carries BYTES as UTF-8 strings: images go base64-encoded.
        data = images if binary else np.array(
            [base64.b64encode(i) for i in images], dtype=np.object_)
        image_in.set_data_from_numpy(data, binary_data=binary)
        outs = [
            httpclient.InferRequestedOutput("scores", binary_data=binary),
            httpclient.InferRequestedOutput("decisions", binary_data=binary),
        ]
        result = client.infer(args.model, [text_in, image_in], outputs=outs, request_id="ci-1")
        resp = result.get_response()
        if resp.get("id") != "ci-1" or resp.get("model_version") != version:
            fail(f"response header: {resp}")
        scores = result.as_numpy("scores")
        decisions = result.as_numpy("decisions")
        if scores.shape != (len(rows), len(labels)) or scores.dtype != np.float32:
            fail(f"scores {scores.shape} {scores.dtype}")
        diff = float(np.max(np.abs(scores.astype(np.float64) - want)))
        if diff > 1e-5:
            fail(f"binary={binary}: scores differ from vigil predict's by {diff}")
        if not np.array_equal(decisions.astype(bool), want_dec):
            fail(f"binary={binary}: decisions differ from vigil predict's")
        print(f"triton_client_check: infer binary={binary}: {len(rows)} rows, version {version}, "
              f"max |served - predict| = {diff:.2e}")

    # Default outputs (tritonclient then asks for every output in binary form).
    text_in = httpclient.InferInput("text", [len(rows)], "BYTES")
    text_in.set_data_from_numpy(texts)
    image_in = httpclient.InferInput("image", [len(rows)], "BYTES")
    image_in.set_data_from_numpy(images)
    result = client.infer(args.model, [text_in, image_in])
    if result.as_numpy("scores") is None:
        fail("no scores with the default outputs")
    # A pinned-version call on another version is a 404 the client reports.
    try:
        client.infer(args.model, [text_in, image_in], model_version=str(int(version) + 1))
        fail("a version that is not loaded answered")
    except InferenceServerException as e:
        if "not loaded" not in str(e):
            fail(f"unexpected error: {e}")
    print("triton_client_check: OK")


if __name__ == "__main__":
    main()
