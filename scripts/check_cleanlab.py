#!/usr/bin/env python3
"""Checks `vigil datasets issues` against cleanlab 2.9.0's `find_label_issues`.

Usage: check_cleanlab.py [VIGIL_BINARY]   (default: target/debug/vigil)

Needs numpy and cleanlab==2.9.0 (CI: `~/.cache/vigil-ci/venv/bin/pip install
cleanlab==2.9.0`). For seeded, noisily labelled out-of-fold probabilities it writes
the OOF scores file `vigil crossval` writes, runs the real binary for every
`--filter-by` and both `--rank-by`, runs cleanlab on the same probabilities (rounded
to float32, as the file holds them) and asserts that the flagged rows AND their
ranked order are identical. Cases:

- multi-class, 4 classes (`--multi-class`; cleanlab's default mode);
- binary, one label (Vigil: multi-label with one label; cleanlab: both the plain
  binary call on [1 - p, p] and `multi_label=True`);
- multi-label, 3 labels without nulls (cleanlab `multi_label=True`);
- multi-label, 3 labels with nulls: cleanlab cannot mask a null, so each label's
  flags are compared with cleanlab's binary call on the rows where that label is
  known (what Vigil's mask means), and the ranking with cleanlab's own
  exponential-moving-average aggregator over each row's known labels.

Rows whose scores are exactly equal may be ordered differently (numpy's default
sort is not stable); such a swap is reported and accepted, nothing else is.
Exits 1 with a diff on any disagreement.
"""

import json
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np

warnings.filterwarnings("ignore")

import cleanlab  # noqa: E402
from cleanlab.filter import find_label_issues  # noqa: E402
from cleanlab.internal.multilabel_scorer import exponential_moving_average  # noqa: E402

FILTERS = [
    "prune_by_noise_rate",
    "prune_by_class",
    "both",
    "confident_learning",
    "predicted_neq_given",
]
RANKINGS = ["self_confidence", "normalized_margin"]
FAILURES = []


def f32(a):
    """Probabilities as the scores file holds them (float32), in float64."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def write_oof(path, names, probs, labels):
    """labels: rows of 0/1/None per name."""
    with open(path, "w") as f:
        for i, (p, y) in enumerate(zip(probs, labels)):
            row = {
                "id": f"r{i}",
                "line": i + 1,
                "text": f"row {i}",
                "scores": {n: float(np.float32(v)) for n, v in zip(names, p)},
                "labels": {n: v for n, v in zip(names, y)},
                "fold": i % 5,
            }
            f.write(json.dumps(row) + "\n")


def run_vigil(binary, oof, filter_by, rank_by, extra):
    out = oof + f".{filter_by}.{rank_by}.issues.jsonl"
    cmd = [binary, "datasets", "issues", "--scores", oof, "--out", out,
           "--filter-by", filter_by, "--rank-by", rank_by] + extra
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        print(" ".join(cmd), "\n", r.stderr, file=sys.stderr)
        sys.exit(1)
    rows = [json.loads(line) for line in open(out)]
    ranked, per_label = [], {}
    for row in rows:
        errs = [i for i in row["issues"] if i["kind"] == "label_error"]
        if errs:
            ranked.append(int(row["id"][1:]))
        for e in errs:
            per_label.setdefault(e["label"], set()).add(int(row["id"][1:]))
    return ranked, per_label


def compare(case, got, want, scores):
    """got/want: ranked index lists; scores: per-row quality score for tie checks."""
    got, want = [int(x) for x in got], [int(x) for x in want]
    if set(got) != set(want):
        FAILURES.append(
            f"{case}: flagged sets differ: only vigil {sorted(set(got) - set(want))}, "
            f"only cleanlab {sorted(set(want) - set(got))} ({len(got)} vs {len(want)})"
        )
        return
    if got == want:
        print(f"ok   {case}: {len(got)} issues, same set and order")
        return
    bad = [k for k, (g, w) in enumerate(zip(got, want)) if g != w and scores[g] != scores[w]]
    if bad:
        k = bad[0]
        FAILURES.append(
            f"{case}: order differs at rank {k + 1}: vigil {got[max(0, k - 2):k + 3]} "
            f"cleanlab {want[max(0, k - 2):k + 3]}"
        )
    else:
        print(f"ok   {case}: {len(got)} issues, same set; order equal up to exactly tied scores")


def self_conf(labels, probs):
    return probs[np.arange(len(labels)), labels]


def norm_margin(labels, probs):
    sc = self_conf(labels, probs)
    other = probs.copy()
    other[np.arange(len(labels)), labels] = -np.inf
    return (sc - other.max(axis=1) + 1) / 2


def multiclass(binary, tmp, rng, skewed=False):
    n, k = 800, 4
    # Skewed: class 3 is rare (a few rows) and class 2 is never given (cleanlab's
    # missing-class threshold of 2, the calibration and min-examples paths).
    weights = [0.6, 0.38, 0.0, 0.02] if skewed else [0.25] * 4
    truth = rng.choice(k, n, p=weights)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), truth] += rng.uniform(0.5, 3.5, n)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    given = truth.copy()
    flip = rng.random(n) < 0.15
    given[flip] = rng.choice(k, flip.sum(), p=weights)
    names = [f"c{j}" for j in range(k)]
    oof = os.path.join(tmp, f"multiclass{'-skewed' if skewed else ''}.jsonl")
    write_oof(oof, names, probs, [[int(j == g) for j in range(k)] for g in given])
    P = f32(probs)
    for fb in FILTERS:
        for rb in RANKINGS:
            got, _ = run_vigil(binary, oof, fb, rb, ["--multi-class"])
            want = find_label_issues(given, P, filter_by=fb, return_indices_ranked_by=rb)
            s = self_conf(given, P) if rb == "self_confidence" else norm_margin(given, P)
            compare(f"multi-class 4{' skewed' if skewed else ''} {fb} {rb}", got, want, s)


def ml_scores(y_one, P, rb, known):
    """cleanlab's multi-label ranking score, over each row's known labels."""
    per = np.where(y_one == 1, P, 1 - P)
    if rb == "normalized_margin":
        per = (per - (1 - per) + 1) / 2
    out = np.empty(len(P))
    for i in range(len(P)):
        s = per[i][known[i]]
        out[i] = exponential_moving_average(s[None, :], alpha=0.8)[0] if len(s) else np.nan
    return out


def multilabel(binary, tmp, rng, k, nulls, name):
    n = 700
    truth = (rng.random((n, k)) < rng.uniform(0.2, 0.5, k)).astype(int)
    z = rng.normal(0, 1, (n, k)) + np.where(truth == 1, 1, -1) * rng.uniform(0.3, 3.0, (n, k))
    probs = 1 / (1 + np.exp(-z))
    given = truth.copy()
    flip = rng.random((n, k)) < 0.1
    given[flip] = 1 - given[flip]
    known = rng.random((n, k)) >= (0.1 if nulls else 0.0)
    names = [f"l{j}" for j in range(k)]
    oof = os.path.join(tmp, f"{name}.jsonl")
    labels = [[int(given[i, j]) if known[i, j] else None for j in range(k)] for i in range(n)]
    write_oof(oof, names, probs, labels)
    P = f32(probs)
    for fb in FILTERS:
        for rb in RANKINGS:
            got, per_label = run_vigil(binary, oof, fb, rb, [])
            s = ml_scores(given, P, rb, known)
            if not nulls:
                lists = [list(np.flatnonzero(r)) for r in given]
                if k > 1:
                    want = find_label_issues(lists, P, filter_by=fb, return_indices_ranked_by=rb,
                                             multi_label=True)
                else:
                    # cleanlab's multi-label ranking rejects a single label: compare the
                    # set here, the order against the plain binary call below.
                    mask = find_label_issues(lists, P, filter_by=fb, multi_label=True)
                    want = sorted(np.flatnonzero(mask), key=lambda i: (s[i], i))
                compare(f"{name} multi_label=True {fb} {rb}", got, want, s)
            # Per label: cleanlab's binary call on the rows where the label is known.
            union = set()
            for j in range(k):
                rows = np.flatnonzero(known[:, j])
                pb = np.column_stack([1 - P[rows, j], P[rows, j]])
                mask = find_label_issues(given[rows, j], pb, filter_by=fb)
                want_j = set(rows[mask].tolist())
                union |= want_j
                got_j = per_label.get(names[j], set())
                if got_j != want_j:
                    FAILURES.append(f"{name} label {names[j]} {fb}: only vigil "
                                    f"{sorted(got_j - want_j)}, only cleanlab {sorted(want_j - got_j)}")
            want = sorted(union, key=lambda i: (s[i], i))
            compare(f"{name} per-label binary {fb} {rb}", got, want, s)
            if k == 1 and not nulls:
                y = given[:, 0]
                pb = np.column_stack([1 - P[:, 0], P[:, 0]])
                want = find_label_issues(y, pb, filter_by=fb, return_indices_ranked_by=rb)
                compare(f"{name} plain binary {fb} {rb}", got, want, s)


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/debug/vigil"
    binary = os.path.abspath(binary)
    if cleanlab.__version__ != "2.9.0":
        print(f"cleanlab {cleanlab.__version__}, want 2.9.0", file=sys.stderr)
        sys.exit(1)
    rng = np.random.default_rng(2026)
    with tempfile.TemporaryDirectory() as tmp:
        multiclass(binary, tmp, rng)
        multiclass(binary, tmp, rng, skewed=True)
        multilabel(binary, tmp, rng, 1, False, "binary")
        multilabel(binary, tmp, rng, 3, False, "multi-label 3")
        multilabel(binary, tmp, rng, 3, True, "multi-label 3 with nulls")
    if FAILURES:
        print("\nDIFFERENCES from cleanlab 2.9.0:", file=sys.stderr)
        for f in FAILURES:
            print("  " + f, file=sys.stderr)
        sys.exit(1)
    print("all cases identical to cleanlab 2.9.0")


if __name__ == "__main__":
    main()
