#!/usr/bin/env python3
"""Label errors found by confident learning, Vigil vs cleanlab 2.9.0, on the
SpamAssassin corpus with 5% of the training labels flipped, and what fixing them
buys back.

    scripts/fetch-corpus.sh && scripts/fetch-pretrained.sh
    pip install cleanlab==2.9.0
    python3 benches/label_issues.py --vigil target/release/vigil [--work DIR]

Steps, all with the real `vigil` binary and the model of benches/label_issues.yaml
(frozen all-MiniLM-L6-v2 + an MLP head):

1. Flip the `spam` label of 5% of train.jsonl's rows (seeded) -> train-noisy.jsonl.
2. `vigil crossval --folds 5` on the noisy file -> out-of-fold scores (timed).
3. `vigil datasets issues` on those scores, and cleanlab's
   `find_label_issues(labels, pred_probs)` (its defaults: prune_by_noise_rate, ranked
   by self-confidence) on the same probabilities: precision and recall of each
   flagged set against the flipped rows.
4. A reviewer (an oracle: the corpus' own label) relabels the rows Vigil flagged;
   `vigil datasets apply-labels` folds the reviews back -> train-fixed.jsonl.
5. Train on the clean, the noisy and the fixed file (`vigil launch`, same config,
   same seed) and score the fixed test split: F1 at 0.5 and AUROC of `spam`.

Prints one table and writes `<work>/results.json`. The three trainings share the
frozen tower's features: the feature cache's key covers the tower, the
preprocessing and each row's id and text, not its labels, so the clean run's cache
is copied into the other two runs' directories and found valid there.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "label_issues.yaml")


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def run(cmd, log):
    t = time.time()
    with open(log, "w") as out:
        p = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {p.returncode}; see {log}")
    return time.time() - t


def last_eval(run_dir):
    ev = os.path.join(run_dir, "eval")
    steps = sorted(
        int(n[len("step-"):-len(".json")])
        for n in os.listdir(ev)
        if n.startswith("step-") and n.endswith(".json") and ".scores" not in n
    )
    with open(os.path.join(ev, f"step-{steps[-1]}.json")) as f:
        return json.load(f)


def spam_metrics(report):
    """F1 at 0.5 and AUROC of `spam` from an evaluation report."""
    for m in report.get("labels", report.get("report", {}).get("labels", [])):
        if m.get("label") == "spam":
            return m["f1"], m["auroc"]
    sys.exit(f"no spam metrics in {json.dumps(report)[:300]}")


def precision_recall(flagged, flipped):
    hit = len(flagged & flipped)
    p = hit / len(flagged) if flagged else float("nan")
    return p, hit / len(flipped)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigil", default="target/release/vigil")
    ap.add_argument("--corpus", default=os.path.join(
        os.environ.get("VIGIL_CORPORA", os.path.expanduser("~/.cache/vigil/corpora")),
        "spam-assassin"))
    ap.add_argument("--work", default="/tmp/vigil-label-issues")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--flip", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--nproc", default="2")
    a = ap.parse_args()
    vigil = os.path.abspath(a.vigil)
    os.makedirs(a.work, exist_ok=True)
    w = lambda *p: os.path.join(a.work, *p)  # noqa: E731

    train = read_jsonl(os.path.join(a.corpus, "train.jsonl"))
    test = os.path.join(a.corpus, "test.jsonl")
    rng = random.Random(a.seed)
    flipped = set(rng.sample([r["id"] for r in train], round(a.flip * len(train))))
    clean_of = {r["id"]: r["labels"]["spam"] for r in train}
    noisy = []
    for r in train:
        r = json.loads(json.dumps(r))
        if r["id"] in flipped:
            r["labels"]["spam"] = 1 - r["labels"]["spam"]
        noisy.append(r)
    write_jsonl(w("train-noisy.jsonl"), noisy)
    print(f"{len(train)} training rows, {len(flipped)} labels flipped (seed {a.seed})")

    common = ["--nproc-per-node", a.nproc, "--set", "logging.console=rank0",
              "--set", "logging.format=json", "--set", f"data.val={test}"]
    # 2. K-fold out-of-fold scores.
    cv_dir = w("crossval")
    cv_s = run([vigil, "crossval", CONFIG, "--folds", str(a.folds), "--output-dir", cv_dir,
                "--set", f"data.train={w('train-noisy.jsonl')}"] + common, w("crossval.log"))
    oof = os.path.join(cv_dir, "oof.jsonl")
    print(f"crossval: {a.folds} folds in {cv_s:.0f} s")

    # 3. Vigil's and cleanlab's flagged rows on the same probabilities.
    t = time.time()
    run([vigil, "datasets", "issues", "--scores", oof, "--out", w("issues.jsonl")], w("issues.log"))
    vigil_s = time.time() - t
    issues = read_jsonl(w("issues.jsonl"))
    vigil_flagged = {r["id"] for r in issues if any(i["kind"] == "label_error" for i in r["issues"])}

    import numpy as np
    from cleanlab.filter import find_label_issues
    rows = read_jsonl(oof)
    p = np.array([r["scores"]["spam"] for r in rows], dtype=np.float64)
    labels = np.array([r["labels"]["spam"] for r in rows], dtype=np.int64)
    t = time.time()
    mask = find_label_issues(labels, np.stack([1 - p, p], axis=1))
    cl_s = time.time() - t
    cl_flagged = {r["id"] for r, m in zip(rows, mask) if m}

    # 4. Reviews of Vigil's flagged rows, folded back.
    write_jsonl(w("reviews.jsonl"), [
        {"id": i, "labels": {"spam": clean_of[i]}, "reviewer": "oracle"} for i in sorted(vigil_flagged)
    ])
    fixed = w("train-fixed.jsonl")
    if os.path.exists(fixed):
        os.remove(fixed)
    run([vigil, "datasets", "apply-labels", "--data", w("train-noisy.jsonl"),
         "--reviews", w("reviews.jsonl"), "--out", fixed], w("apply.log"))

    # 5. Train on clean, noisy and fixed labels; score the test split.
    results = {}
    seeded_cache = None
    for name, path in [("clean", os.path.join(a.corpus, "train.jsonl")),
                       ("noisy", w("train-noisy.jsonl")), ("fixed", fixed)]:
        out = w(f"train-{name}")
        if seeded_cache and not os.path.exists(out):
            shutil.copytree(seeded_cache, os.path.join(out, "feature-cache"))
        secs = run([vigil, "launch", CONFIG, "--output-dir", out,
                    "--set", f"data.train={path}"] + common, w(f"train-{name}.log"))
        seeded_cache = seeded_cache or os.path.join(out, "feature-cache")
        f1, auroc = spam_metrics(last_eval(out))
        results[name] = {"f1": f1, "auroc": auroc, "seconds": secs}

    vp, vr = precision_recall(vigil_flagged, flipped)
    cp, cr = precision_recall(cl_flagged, flipped)
    summary = {
        "rows": len(train), "flipped": len(flipped), "folds": a.folds, "seed": a.seed,
        "crossval_seconds": cv_s,
        "vigil": {"flagged": len(vigil_flagged), "precision": vp, "recall": vr, "seconds": vigil_s},
        "cleanlab": {"flagged": len(cl_flagged), "precision": cp, "recall": cr, "seconds": cl_s},
        "same_flagged_set": vigil_flagged == cl_flagged,
        "retrain": results,
    }
    with open(w("results.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print()
    print(f"label errors among {len(train)} rows, {len(flipped)} flipped; "
          f"{a.folds}-fold crossval {cv_s:.0f} s")
    print(f"{'':10} {'flagged':>8} {'precision':>10} {'recall':>8} {'seconds':>8}")
    print(f"{'vigil':10} {len(vigil_flagged):8d} {vp:10.4f} {vr:8.4f} {vigil_s:8.2f}")
    print(f"{'cleanlab':10} {len(cl_flagged):8d} {cp:10.4f} {cr:8.4f} {cl_s:8.2f}")
    print(f"same flagged set: {vigil_flagged == cl_flagged}")
    print()
    print(f"{'train on':10} {'test F1':>8} {'AUROC':>8} {'seconds':>8}")
    for name, r in results.items():
        print(f"{name:10} {r['f1']:8.4f} {r['auroc']:8.4f} {r['seconds']:8.0f}")
    gap = 100 * (results["clean"]["f1"] - results["fixed"]["f1"])
    print(f"fixed is {gap:+.2f} F1 points below clean (goal: within 0.5)")


if __name__ == "__main__":
    main()
