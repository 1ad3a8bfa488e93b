#!/usr/bin/env python3
"""Recall of known violations on a real corpus: 20 confirmed spam e-mails as seeds,
the nearest test-split e-mails by `vigil recall`, next to exact search and to the
classifier's own ranking by score.

    scripts/fetch-corpus.sh && scripts/fetch-pretrained.sh
    python3 benches/recall_corpus.py --vigil target/release/vigil [--work DIR]

Steps, all with the real `vigil` binary:

1. Train the model of benches/label_issues.yaml (frozen all-MiniLM-L6-v2 + an MLP
   head) on the SpamAssassin train split (`vigil launch`), published to a model
   repository.
2. `vigil index build --model` over the 1,250-row test split (never seen in
   training): each row's fused embedding and the model's spam score.
3. Seeds: 20 spam rows of the train split (seeded draw). `vigil recall --seeds`
   (HNSW, then `--exact`) for the top 1,000.
4. The classifier's own ranking: the test rows by the index's stored spam score.
5. The same seeds against an index of the pretrained encoder alone
   (`--text-encoder`, no classifier: a harm no model was trained for).

Prints, per ranking, the violations (spam) among the top 200 and top 1,000 as
precision and as recall of all test-split spam; writes `<work>/results.json`.
"""

import argparse
import json
import os
import random
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


def at(ranked_ids, spam, n):
    top = ranked_ids[:n]
    found = sum(1 for i in top if i in spam)
    return {"precision": found / max(len(top), 1), "recall": found / len(spam), "found": found}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vigil", required=True)
    ap.add_argument("--work", default="/tmp/vigil-recall-corpus")
    ap.add_argument("--corpus", default=os.path.expanduser(
        os.environ.get("VIGIL_CORPORA", "~/.cache/vigil/corpora") + "/spam-assassin"))
    ap.add_argument("--pretrained", default=os.path.expanduser(
        os.environ.get("VIGIL_PRETRAINED", "~/.cache/vigil/pretrained")))
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    vigil = os.path.abspath(args.vigil)
    os.makedirs(args.work, exist_ok=True)
    w = lambda *p: os.path.join(args.work, *p)
    train, test = os.path.join(args.corpus, "train.jsonl"), os.path.join(args.corpus, "test.jsonl")
    test_rows = read_jsonl(test)
    spam = {r["id"] for r in test_rows if r["labels"].get("spam") == 1}
    times = {}

    repo = w("export")
    model = os.path.join(repo, "spam")
    if not os.path.isdir(model):
        times["train_s"] = run([vigil, "launch", CONFIG, "--set", f"run.output_dir={w('run')}",
                                "--set", f"export.dir={repo}", "--set", "export.model_name=spam",
                                "--set", f"data.train={train}", "--set", f"data.val={test}"],
                               w("train.log"))
    index = os.path.join(repo, "spam-recall")
    times["index_build_s"] = run([vigil, "index", "build", "--model", model, "--data", test,
                                  "--out", index], w("index.log"))
    enc_index = w("encoder-recall")
    times["encoder_index_build_s"] = run([vigil, "index", "build", "--text-encoder",
                                          os.path.join(args.pretrained, "all-minilm-l6-v2"),
                                          "--data", test, "--out", enc_index], w("enc-index.log"))

    train_spam = [r for r in read_jsonl(train) if r["labels"].get("spam") == 1]
    seeds = random.Random(args.seed).sample(train_spam, args.seeds)
    write_jsonl(w("seeds.jsonl"), [{"id": r["id"], "text": r["text"]} for r in seeds])

    rankings = {}
    for name, idx, extra in [("recall, HNSW (classifier's embedding)", index, []),
                             ("recall, exact (classifier's embedding)", index, ["--exact"]),
                             ("recall, HNSW (pretrained encoder only)", enc_index, []),
                             ("recall, exact (pretrained encoder only)", enc_index, ["--exact"])]:
        out = w(f"hits-{len(rankings)}.jsonl")
        t = run([vigil, "recall", "--index", idx, "--seeds", w("seeds.jsonl"), "--k", "1000",
                 "--out", out] + extra, out + ".log")
        rankings[name] = ([h["id"] for h in read_jsonl(out)], t)
    # The classifier's own ranking: the scores the index stored at build time.
    info = json.loads(subprocess.run([vigil, "index", "info", "--index", index], check=True,
                                     capture_output=True, text=True).stdout)
    version_dir = info["location"]
    items = read_jsonl(os.path.join(version_dir, "items.jsonl"))
    spam_at = info["manifest"]["labels"].index("spam")
    by_score = sorted((i for i in items if not i.get("deleted")), key=lambda i: -i["scores"][spam_at])
    rankings["classifier's own top by spam score"] = ([i["id"] for i in by_score], 0.0)

    results = {"test_rows": len(test_rows), "test_spam": len(spam), "seeds": args.seeds,
               "times": times, "rankings": {}}
    print(f"\nSpamAssassin test split: {len(test_rows)} rows, {len(spam)} spam; "
          f"{args.seeds} spam seeds from the train split (seed {args.seed})\n")
    print("| ranking | spam in top 200 | precision@200 | recall@200 | spam in top 1000 | recall@1000 | seconds |")
    print("|---|---|---|---|---|---|---|")
    for name, (ids, secs) in rankings.items():
        a, b = at(ids, spam, 200), at(ids, spam, 1000)
        results["rankings"][name] = {"top200": a, "top1000": b, "seconds": secs}
        print(f"| {name} | {a['found']} | {a['precision']:.3f} | {a['recall']:.3f} | "
              f"{b['found']} | {b['recall']:.3f} | {secs:.2f} |")
    print(f"\ntimes: {json.dumps(times)}")
    with open(w("results.json"), "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
