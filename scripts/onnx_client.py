#!/usr/bin/env python3
"""Score JSONL rows with a Vigil export's model.onnx: the smallest real client.

    python scripts/onnx_client.py --model EXPORT_DIR/MODEL_NAME --input rows.jsonl

Prints the same JSON lines as `vigil predict` ({"id", "version", "scores",
"decisions"}). It reproduces Vigil's preprocessing exactly: the version's
tokenizer.json through the `tokenizers` package with Vigil's truncation and
padding (truncate at max_text_len, pad to the longest row, pad id from the file,
else [PAD], else <pad>, else <|endoftext|>),
images decoded with Pillow and resized with Vigil's triangle filter written out
in float32 numpy (not Pillow's resize, which rounds to uint8 between passes),
then ImageNet-normalised. A row without text (absent, null or blank, as Vigil's
reader decides) is encoded as "" and flagged
has_text=false; a row without an image gets zeros and has_image=false.

Needs: numpy, onnxruntime, tokenizers (text models), pillow (image models).
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np


def fail(message):
    print(f"onnx_client.py: {message}", file=sys.stderr)
    sys.exit(2)


def verified(version_dir):
    """Whether every file in MANIFEST.json has its size and sha256."""
    try:
        with open(os.path.join(version_dir, "MANIFEST.json")) as f:
            manifest = json.load(f)
        for name, digest in manifest["files"].items():
            with open(os.path.join(version_dir, name), "rb") as f:
                data = f.read()
            if len(data) != digest["size"] or hashlib.sha256(data).hexdigest() != digest["sha256"]:
                return False
        return True
    except (OSError, ValueError, KeyError):
        return False


def locate(model, version):
    """(version directory, number): the newest complete one, as `vigil predict`."""
    if os.path.isfile(os.path.join(model, "MANIFEST.json")):
        with open(os.path.join(model, "MANIFEST.json")) as f:
            meta = json.load(f).get("meta") or {}
        return model, int(meta.get("version", os.path.basename(os.path.normpath(model))))
    names = [n for n in os.listdir(model) if n.isdigit() and (n == "0" or not n.startswith("0"))]
    for v in sorted((int(n) for n in names), reverse=True):
        if version is not None and v != version:
            continue
        d = os.path.join(model, str(v))
        if verified(d):
            return d, v
        if version is not None:
            fail(f"version {v} of {model} is damaged (MANIFEST.json does not verify)")
        print(f"onnx_client.py: warning: skipped damaged version {v}", file=sys.stderr)
    fail(f"no complete version in {model}")


class Tokenizer:
    """Vigil's TextTokenizer: truncate at max_len, pad to the batch's longest row."""

    def __init__(self, path, max_len):
        from tokenizers import Tokenizer as HfTokenizer

        self.inner = HfTokenizer.from_file(path)
        padding = self.inner.padding
        pad_id = padding["pad_id"] if padding else self.inner.token_to_id("[PAD]")
        if pad_id is None:
            pad_id = self.inner.token_to_id("<pad>")
        if pad_id is None:
            pad_id = self.inner.token_to_id("<|endoftext|>")
        self.pad_id = 0 if pad_id is None else pad_id
        pad_token = self.inner.id_to_token(self.pad_id) or "[PAD]"
        self.max_len = max_len
        self.inner.enable_truncation(max_len, stride=0, strategy="longest_first", direction="right")
        self.inner.enable_padding(direction="right", pad_id=self.pad_id, pad_type_id=0,
                                  pad_token=pad_token)

    def encode(self, texts):
        encodings = self.inner.encode_batch(texts, add_special_tokens=True)
        seq = min(max(max((len(e.ids) for e in encodings), default=0), 1), self.max_len)
        ids = np.full((len(texts), seq), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(texts), seq), dtype=np.int64)
        for r, e in enumerate(encodings):
            n = min(len(e.ids), seq)
            ids[r, :n] = e.ids[:n]
            mask[r, :n] = e.attention_mask[:n]
        return ids, mask


def taps(size_in, size_out):
    """Triangle-filter taps (first index, float32 weights), as Vigil computes them."""
    f = np.float32
    ratio = f(size_in) / f(size_out)
    sratio = max(ratio, f(1.0))
    support = sratio
    out = []
    for o in range(size_out):
        centre = (f(o) + f(0.5)) * ratio
        left = int(min(max(np.floor(centre - support), 0), size_in - 1))
        right = int(min(max(np.ceil(centre + support), left + 1), size_in))
        centre = centre - f(0.5)
        w = np.array([max(f(1.0) - abs((f(i) - centre) / sratio), f(0.0))
                      for i in range(left, right)], dtype=np.float32)
        total = f(0.0)
        for x in w:
            total = f(total + x)
        if total > 0:
            w = (w / total).astype(np.float32)
        out.append((left, w))
    return out


def load_image(path, size, mean, std, transform=None):
    """Decode, resize and normalise as the export's image transform says; [3, size, size].

    Vigil's own transform (filter "triangle", square) is its float triangle filter,
    written out below. A Hugging Face tower's (filter "bilinear" / "bicubic") is
    Pillow's resize itself (Vigil reproduces Pillow 13 byte for byte), for
    "shortest_edge" of the shorter side followed by a centre crop."""
    from PIL import Image

    if transform is not None and transform["filter"] != "triangle":
        resample = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[transform["filter"]]
        with Image.open(path) as img:
            img = img.convert("RGB")
            w, h = img.size
            if transform["resize"] == "shortest_edge":
                edge = transform.get("shortest_edge") or size
                short, long = min(w, h), max(w, h)
                scaled = max(int(edge * long / short), edge)
                rw, rh = (edge, scaled) if w <= h else (scaled, edge)
            else:
                rw, rh = size, size
            if (rw, rh) != (w, h):
                img = img.resize((rw, rh), resample=resample)
            top, left = (rh - size) // 2, (rw - size) // 2
            rgb = np.asarray(img, dtype=np.uint8)[top:top + size, left:left + size]
        scale = np.float32(1.0) / (np.float32(255.0) * std)
        return (rgb.astype(np.float32) * scale - mean / std).transpose(2, 0, 1)
    with Image.open(path) as img:
        rgb = np.asarray(img.convert("RGB"), dtype=np.uint8).astype(np.float32)
    h, w, _ = rgb.shape
    scale = np.float32(1.0) / (np.float32(255.0) * std)
    shift = mean / std
    if (h, w) == (size, size):
        return (rgb * scale - shift).transpose(2, 0, 1)
    rows = np.zeros((h, size, 3), dtype=np.float32)
    for ox, (left, wts) in enumerate(taps(w, size)):
        acc = np.zeros((h, 3), dtype=np.float32)
        for k, wt in enumerate(wts):
            acc = acc + rgb[:, left + k, :] * wt
        rows[:, ox, :] = acc
    out = np.zeros((size, size, 3), dtype=np.float32)
    for oy, (top, wts) in enumerate(taps(h, size)):
        acc = np.zeros((size, 3), dtype=np.float32)
        for k, wt in enumerate(wts):
            acc = acc + rows[top + k] * wt
        out[oy] = np.clip(acc, np.float32(0.0), np.float32(255.0)) * scale - shift
    return out.transpose(2, 0, 1)


def f32(x):
    """The shortest decimal of an f32, as Vigil's JSON writes it."""
    return float(np.format_float_positional(np.float32(x), unique=True, trim="-"))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="model repository or one version directory")
    p.add_argument("--version", type=int, help="version to use (default: newest complete)")
    p.add_argument("--input", required=True, help="JSONL rows {id, text?, image?}")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--pad-to-max", action="store_true",
                   help="pad every batch to max_text_len (the scores must not change)")
    args = p.parse_args()

    import onnxruntime as ort

    version_dir, version = locate(args.model, args.version)
    with open(os.path.join(version_dir, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(version_dir, "thresholds.json")) as f:
        thresholds_by_label = json.load(f)
    labels, task, pre = config["labels"], config["task"], config["preprocessing"]
    thresholds = [thresholds_by_label[label] for label in labels]
    session = ort.InferenceSession(os.path.join(version_dir, "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    tok = None
    if "input_ids" in wanted:
        tok = Tokenizer(os.path.join(version_dir, pre["tokenizer"]), pre["max_text_len"])
        # SigLIP's text tower reads rows padded to max_text_len, as it was trained.
        pad_all = pre.get("text_padding") == "max_length"
    size = pre["image_size"]
    mean = np.array(pre["image_mean"], dtype=np.float32)
    std = np.array(pre["image_std"], dtype=np.float32)
    transform = pre.get("image_transform")

    rows = []
    base = os.path.dirname(os.path.abspath(args.input))
    with open(args.input) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as e:
                    fail(f"{args.input}:{n}: not JSON: {e}")

    out = sys.stdout
    for start in range(0, len(rows), args.batch_size):
        batch = rows[start:start + args.batch_size]
        feed = {}
        if tok is not None:
            # As Vigil's reader: null, absent and blank texts are "no text".
            texts = [r.get("text") if isinstance(r.get("text"), str) and r["text"].strip()
                     else None for r in batch]
            ids, mask = tok.encode([t if t is not None else "" for t in texts])
            if (args.pad_to_max or pad_all) and ids.shape[1] < tok.max_len:
                extra = tok.max_len - ids.shape[1]
                ids = np.pad(ids, ((0, 0), (0, extra)), constant_values=tok.pad_id)
                mask = np.pad(mask, ((0, 0), (0, extra)))
            feed.update(input_ids=ids, attention_mask=mask,
                        has_text=np.array([t is not None for t in texts]))
        if "pixel_values" in wanted:
            pixels = np.zeros((len(batch), 3, size, size), dtype=np.float32)
            present = np.zeros(len(batch), dtype=bool)
            for i, r in enumerate(batch):
                if r.get("image") is not None:
                    pixels[i] = load_image(os.path.join(base, r["image"]), size, mean, std,
                                           transform)
                    present[i] = True
            feed.update(pixel_values=pixels, has_image=present)
        (scores,) = session.run(["scores"], feed)
        for r, s in zip(batch, scores):
            if task == "multi_class":
                top = int(np.argmax(s))
                decisions = [i == top for i in range(len(labels))]
            else:
                decisions = [bool(p >= t) for p, t in zip(s, thresholds)]
            line = {"id": str(r["id"]), "version": version,
                    "scores": {label: f32(p) for label, p in zip(labels, s)},
                    "decisions": dict(zip(labels, decisions))}
            out.write(json.dumps(line, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
