#!/usr/bin/env python3
"""The crate graph's never-arrows (CONTRIBUTING.md, "Crate map"), checked from
`cargo metadata`'s resolved graph: normal dependencies only (dev-dependencies may
cross layers), followed transitively, so an arrow through a third crate counts —
except where a rule is about what a crate's code may name, which only its direct
dependencies can be (marked `direct`).

    python3 scripts/check_arrows.py [--manifest-path Cargo.toml] [--graph]

Exits 1 naming every forbidden arrow and the path that makes it; `--graph` prints
each workspace crate's direct workspace dependencies (the crate map).

`--plant FROM=TO` copies the workspace's manifests and sources to a temporary
directory, adds `TO` as a normal dependency of `FROM` there, and checks that copy:
CI runs it to show the check fails on a planted bad dependency.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

# Crates that never link burn: the launcher's supervision, the report and the
# data/config/storage layers must build and run without the model.
BURN_FREE = [
    "vigil-collective",
    "vigil-tensorboard",
    "vigil-store",
    "vigil-config",
    "vigil-data",
    "vigil-eval",
    "vigil-report",
    "vigil-launch",
    "vigil-curate",
    "vigil-recall",
]

# (crate, forbidden dependency, direct only, why)
NEVER = [(c, "burn", False, "burn-free crate") for c in BURN_FREE] + [
    ("vigil-store", "vigil-config", False, "storage takes typed locations, never a run config"),
    # The model links the store's code through the data layer (its atomic writes of
    # rejected rows) but cannot name it: it takes verified bytes, never reads a store.
    ("vigil-model", "vigil-store", True, "the model takes verified bytes, it never reads a store"),
    ("vigil-server", "vigil-trainer", False, "serving never links the training loop"),
    ("vigil-infer", "vigil-trainer", False, "offline scoring never links the training loop"),
    ("vigil-launch", "vigil-trainer", False, "supervision never links the training loop"),
    ("vigil-launch", "vigil-model", False, "supervision never links the model"),
]
# Only the binary may depend on the report (it is a leaf).
REPORT = "vigil-report"
REPORT_USERS = {"vigil-launcher"}


def metadata(manifest):
    run = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--manifest-path", manifest],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        # A planted arrow that closes a cycle is refused by cargo itself.
        print(f"cargo metadata refused the graph:\n{run.stderr.strip()}", file=sys.stderr)
        sys.exit(1)
    return json.loads(run.stdout)


def normal_graph(meta):
    """name -> set of names of normal (non-dev, non-build) dependencies."""
    names = {p["id"]: p["name"] for p in meta["packages"]}
    graph = {}
    for node in meta["resolve"]["nodes"]:
        deps = set()
        for d in node["deps"]:
            if any(k["kind"] is None for k in d["dep_kinds"]):
                deps.add(names[d["pkg"]])
        graph.setdefault(names[node["id"]], set()).update(deps)
    members = {names[i] for i in meta["workspace_members"]}
    return graph, members


def path_to(graph, start, goal):
    """A dependency path start -> ... -> goal, or None."""
    seen = {start}
    stack = [(start, [start])]
    while stack:
        node, path = stack.pop()
        for d in sorted(graph.get(node, ())):
            if d == goal:
                return path + [d]
            if d not in seen:
                seen.add(d)
                stack.append((d, path + [d]))
    return None


def check(manifest, show_graph=False):
    graph, members = normal_graph(metadata(manifest))
    if show_graph:
        for m in sorted(members):
            inner = sorted(d for d in graph.get(m, ()) if d in members)
            print(f"{m} -> {', '.join(inner) if inner else '(no workspace crate)'}")
    problems = []
    for crate, bad, direct, why in NEVER:
        if crate not in members:
            problems.append(f"{crate}: not a workspace member (the crate map changed?)")
            continue
        if direct:
            p = [crate, bad] if bad in graph.get(crate, ()) else None
        else:
            p = path_to(graph, crate, bad)
        if p:
            problems.append(f"{crate} -> {bad} ({why}): {' -> '.join(p)}")
    for m in sorted(members - REPORT_USERS - {REPORT}):
        p = path_to(graph, m, REPORT)
        if p:
            problems.append(f"{m} -> {REPORT} (only the binary uses the report): {' -> '.join(p)}")
    return problems


def planted_copy(root, frm, to, dest):
    """The workspace's tracked manifests and sources under dest, with `to` added to
    `frm`'s dependencies; returns the copy's root manifest."""
    files = subprocess.run(
        ["git", "-C", root, "ls-files"], check=True, capture_output=True, text=True
    ).stdout.split()
    for f in files:
        if f.endswith((".rs", "Cargo.toml", "Cargo.lock")):
            os.makedirs(os.path.join(dest, os.path.dirname(f)), exist_ok=True)
            shutil.copy(os.path.join(root, f), os.path.join(dest, f))
    meta = metadata(os.path.join(dest, "Cargo.toml"))
    target = [p for p in meta["packages"] if p["name"] == frm and p["id"] in meta["workspace_members"]]
    if not target:
        sys.exit(f"--plant: {frm} is not a workspace crate")
    manifest = target[0]["manifest_path"]
    with open(manifest) as f:
        text = f.read()
    line = f"{to}.workspace = true\n"
    if "[dependencies]\n" not in text:
        sys.exit(f"--plant: {manifest} has no [dependencies] table")
    with open(manifest, "w") as f:
        f.write(text.replace("[dependencies]\n", "[dependencies]\n" + line, 1))
    return os.path.join(dest, "Cargo.toml")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest-path", default="Cargo.toml")
    ap.add_argument("--graph", action="store_true", help="print the crate map")
    ap.add_argument("--plant", metavar="FROM=TO", help="check a copy with FROM -> TO added")
    a = ap.parse_args()
    manifest = a.manifest_path
    tmp = None
    if a.plant:
        frm, _, to = a.plant.partition("=")
        tmp = tempfile.mkdtemp(prefix="vigil-arrows-")
        root = os.path.dirname(os.path.abspath(manifest))
        manifest = planted_copy(root, frm, to, tmp)
        print(f"planted {frm} -> {to} in a copy at {tmp}")
    try:
        problems = check(manifest, a.graph)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    if problems:
        print("forbidden dependency arrows:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        sys.exit(1)
    print(f"crate graph: no forbidden arrow ({len(NEVER) + 1} rules)")


if __name__ == "__main__":
    main()
