#!/usr/bin/env python3
"""HNSW side by side: faiss-cpu's IndexHNSWFlat vs Vigil's index graph (`vigil bench
recall`: usearch with Vigil's f32 inner product), same vectors, same machine, same run.

    python -m venv venv && venv/bin/pip install faiss-cpu==1.15.1 numpy==2.4.6
    venv/bin/python benches/recall_ann.py --vigil target/release/vigil [--out DIR]

Steps:

1. A deterministic clustered corpus (seeded): n/50 centres drawn from a standard
   Gaussian and L2-normalised; each vector is a random centre plus Gaussian noise of
   norm about --noise (per coordinate noise/sqrt(dims)), L2-normalised. --queries
   queries from the same distribution. Written as float32 .npy files under --out.
2. Exact top-k of every query by blocked matmul in numpy -> truth.npy (int64).
3. faiss `IndexHNSWFlat(d, M, METRIC_INNER_PRODUCT)` with efConstruction, built with
   --build-threads OpenMP threads (timed; resident-set growth around `add` from
   /proc/self/status); then per efSearch and thread count (`faiss.omp_set_num_threads`)
   one untimed batch search of all queries (its results give recall@k) and
   --repeats timed ones: queries/s of the best and of the median pass.
4. `<vigil> bench recall --json` on the same three files, same parameters and the same
   timing policy (a separate process: its resident-set figures are its own).
5. Markdown tables: build seconds and memory of both; per (efSearch, threads) recall@k
   and queries/s of both and the ratio vigil/faiss; and, per thread count, Vigil's
   queries/s at each faiss point's recall (interpolated along Vigil's own
   efSearch curve), the "at equal recall" ratio.

Writes <out>/results.json with every figure. Both engines run one after the other on
the same cores: run it on a quiet machine and compare ratios, not absolute figures.
"""

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

import faiss
import numpy as np


def rss_and_peak():
    """VmRSS and VmHWM of this process in bytes (None off Linux)."""
    try:
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        kb = lambda k: int(fields[k].split()[0]) * 1024  # noqa: E731
        return kb("VmRSS"), kb("VmHWM")
    except (OSError, KeyError, ValueError):
        return None


def reset_peak():
    """Resets VmHWM to the current RSS where the kernel allows it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def corpus(n, nq, dims, noise, seed):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 50), dims), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def draw(count):
        x = centres[rng.integers(0, len(centres), count)]
        x += rng.standard_normal((count, dims), dtype=np.float32) * np.float32(noise / math.sqrt(dims))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return np.ascontiguousarray(x, dtype=np.float32)

    return draw(n), draw(nq)


def exact_topk(xb, xq, k, block=256):
    out = np.empty((len(xq), k), dtype=np.int64)
    for s in range(0, len(xq), block):
        sims = xq[s:s + block] @ xb.T
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1, kind="stable")
        out[s:s + block] = np.take_along_axis(part, order, axis=1)
    return out


def recall_at_k(found, truth):
    k = truth.shape[1]
    hit = sum(len(set(f[:k].tolist()) & set(t.tolist())) for f, t in zip(found, truth))
    return hit / truth.size


def faiss_side(xb, xq, truth, a, efs, threads):
    k = truth.shape[1]
    faiss.omp_set_num_threads(a.build_threads)
    index = faiss.IndexHNSWFlat(xb.shape[1], a.m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = a.ef_construction
    before = rss_and_peak()
    peak_reset = reset_peak()
    t = time.perf_counter()
    index.add(xb)
    build_s = time.perf_counter() - t
    after = rss_and_peak()
    h = index.hnsw
    # The vectors (IndexFlat codes) and the graph's arrays, as Vigil's memory_bytes counts
    # its graph with its vectors.
    index_bytes = (index.ntotal * index.storage.sa_code_size() + h.neighbors.size() * 4
                   + h.offsets.size() * 8 + h.levels.size() * 4)
    out = {
        "engine": f"faiss-cpu {faiss.__version__} IndexHNSWFlat (METRIC_INNER_PRODUCT)",
        "build_threads": a.build_threads,
        "build_s": build_s,
        "index_bytes": index_bytes,
        "rss_delta_bytes": after[0] - before[0] if before and after else None,
        "peak_delta_bytes": after[1] - before[0] if before and after else None,
        "peak_reset": peak_reset,
        "rows": [],
    }
    for ef in efs:
        index.hnsw.efSearch = ef
        for t in threads:
            faiss.omp_set_num_threads(t)
            _, found = index.search(xq, k)
            recall = recall_at_k(found, truth)
            passes = []
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                index.search(xq, k)
                passes.append(time.perf_counter() - t0)
            out["rows"].append({
                "ef_search": ef, "threads": t, "recall": recall,
                "qps_best": len(xq) / min(passes),
                "qps_median": len(xq) / statistics.median(passes),
                "pass_s": passes,
            })
    return out


def vigil_side(a, files, efs, threads):
    cmd = [a.vigil, "bench", "recall", "--base", files["base"], "--queries", files["queries"],
           "--truth", files["truth"], "--k", str(a.k), "--m", str(a.m),
           "--ef-construction", str(a.ef_construction),
           "--ef-search", ",".join(map(str, efs)), "--threads", ",".join(map(str, threads)),
           "--build-threads", str(a.build_threads), "--repeats", str(a.repeats), "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stderr}")
    return cmd, json.loads(p.stdout.strip().splitlines()[-1])


def at_recall(rows, r):
    """Queries/s along one engine's (recall, qps) curve at recall r: its Pareto
    frontier (the fastest point reaching each recall), log-linear between the two
    frontier points around r. Below the frontier's lowest recall its fastest figure is
    a lower bound (">="); above its highest recall, None."""
    pts, fastest = [], -1.0
    for rec, q in sorted(((x["recall"], x["qps_best"]) for x in rows), reverse=True):
        if q > fastest:
            pts.append((rec, q))
            fastest = q
    pts.reverse()
    if r <= pts[0][0]:
        return pts[0][1], r < pts[0][0]
    for (r0, q0), (r1, q1) in zip(pts, pts[1:]):
        if r0 <= r <= r1:
            if r1 == r0:
                return max(q0, q1), False
            w = (r - r0) / (r1 - r0)
            return math.exp(math.log(q0) + w * (math.log(q1) - math.log(q0))), False
    return None, False


def mib(b):
    return "n/a" if b is None else f"{b / 2**20:.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vigil", default="target/release/vigil")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dims", type=int, default=384)
    ap.add_argument("--queries", type=int, default=2_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--ef-search", default="16,32,64,128")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--noise", type=float, default=0.6)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--out", default="/tmp/vigil-recall-ann")
    a = ap.parse_args()
    a.vigil = os.path.abspath(a.vigil)
    efs = [int(x) for x in a.ef_search.split(",")]
    threads = [int(x) for x in a.threads.split(",")]
    os.makedirs(a.out, exist_ok=True)
    files = {name: os.path.join(a.out, f"{name}.npy") for name in ("base", "queries", "truth")}
    load_start = os.getloadavg()

    t = time.perf_counter()
    xb, xq = corpus(a.n, a.queries, a.dims, a.noise, a.seed)
    np.save(files["base"], xb)
    np.save(files["queries"], xq)
    gen_s = time.perf_counter() - t
    t = time.perf_counter()
    truth = exact_topk(xb, xq, a.k)
    np.save(files["truth"], truth)
    exact_s = time.perf_counter() - t
    print(f"corpus {a.n} x {a.dims} ({a.n // 50} centres, noise {a.noise}, seed {a.seed}), "
          f"{a.queries} queries: {gen_s:.1f} s; exact top-{a.k} (numpy): {exact_s:.1f} s",
          flush=True)

    f = faiss_side(xb, xq, truth, a, efs, threads)
    print(f"faiss done: build {f['build_s']:.1f} s", flush=True)
    del xb
    cmd, v = vigil_side(a, files, efs, threads)
    print(f"vigil done: build {v['build_s']:.1f} s", flush=True)
    load_end = os.getloadavg()

    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
               f"load average {load_start[0]:.2f} at start, {load_end[0]:.2f} at end")
    lines = [
        f"## HNSW, faiss-cpu {faiss.__version__} vs vigil ({time.strftime('%Y-%m-%d')})",
        "",
        f"{a.n} x {a.dims} float32 clustered corpus ({a.n // 50} centres, noise {a.noise}, "
        f"seed {a.seed}), {a.queries} queries, inner product of unit vectors; M {a.m}, "
        f"efConstruction {a.ef_construction}, built with {a.build_threads} threads. "
        f"Queries/s: best of {a.repeats} timed passes over all queries after one untimed "
        f"pass (median in parentheses). Machine: {machine}.",
        "",
        "| | faiss | vigil | vigil/faiss |",
        "|---|---:|---:|---:|",
        f"| build s ({a.build_threads} threads) | {f['build_s']:.1f} | {v['build_s']:.1f} | "
        f"{v['build_s'] / f['build_s']:.2f} |",
        f"| index MiB (vectors + graph; faiss: its arrays, vigil: memory_bytes) | "
        f"{mib(f['index_bytes'])} | {mib(v['index_bytes'])} | "
        f"{v['index_bytes'] / f['index_bytes']:.2f} |",
        f"| RSS increase over the build, MiB | {mib(f['rss_delta_bytes'])} | "
        f"{mib(v['rss_delta_bytes'])} | |",
        f"| peak RSS increase over the build, MiB | {mib(f['peak_delta_bytes'])} | "
        f"{mib(v['peak_delta_bytes'])} | |",
        "",
        f"| efSearch | threads | recall@{a.k} faiss | recall@{a.k} vigil | qps faiss | "
        "qps vigil | vigil/faiss |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    vrows = {(r["ef_search"], r["threads"]): r for r in v["rows"]}
    for fr in f["rows"]:
        vr = vrows.get((fr["ef_search"], fr["threads"]))
        if vr is None:
            continue
        lines.append(
            f"| {fr['ef_search']} | {fr['threads']} | {fr['recall']:.4f} | {vr['recall']:.4f} | "
            f"{fr['qps_best']:.0f} ({fr['qps_median']:.0f}) | "
            f"{vr['qps_best']:.0f} ({vr['qps_median']:.0f}) | "
            f"{vr['qps_best'] / fr['qps_best']:.2f} |")
    lines += [
        "",
        f"At equal recall: vigil's queries/s at each faiss point's recall@{a.k}, "
        "log-linear between the neighbouring points of vigil's recall/qps frontier "
        "(\">=\": faiss's recall is below vigil's lowest, whose figure is then a lower "
        "bound).",
        "",
        f"| threads | faiss efSearch | recall@{a.k} | qps faiss | qps vigil at that recall "
        "| vigil/faiss |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    equal = []
    for t in threads:
        mine = [r for r in v["rows"] if r["threads"] == t]
        for fr in (r for r in f["rows"] if r["threads"] == t):
            q, bound = at_recall(mine, fr["recall"])
            equal.append({"threads": t, "faiss_ef_search": fr["ef_search"],
                          "recall": fr["recall"], "qps_faiss": fr["qps_best"],
                          "qps_vigil": q, "lower_bound": bound})
            ge = ">= " if bound else ""
            lines.append(
                f"| {t} | {fr['ef_search']} | {fr['recall']:.4f} | {fr['qps_best']:.0f} | "
                + (f"{ge}{q:.0f} | {ge}{q / fr['qps_best']:.2f} |" if q else "n/a | n/a |"))
    table = "\n".join(lines)
    print()
    print(table)
    with open(os.path.join(a.out, "results.json"), "w") as out:
        json.dump({"args": vars(a), "machine": machine, "exact_s": exact_s, "faiss": f,
                   "vigil_command": cmd, "vigil": v, "equal_recall": equal,
                   "table": table}, out, indent=1)
    print(f"\n(written {os.path.join(a.out, 'results.json')})")


if __name__ == "__main__":
    main()
