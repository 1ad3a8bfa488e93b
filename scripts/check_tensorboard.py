#!/usr/bin/env python3
"""Check a Vigil run's TensorBoard events with TensorBoard's own reader.

Opens RUN_DIR/tensorboard/ with
`tensorboard.backend.event_processing.event_accumulator.EventAccumulator` (the
reader that applies `SessionLog START` purging, as TensorBoard does) and asserts
what a reviewer must see:

* every expected scalar tag, with the expected steps (and values, when given);
* histograms whose bucket counts add up to `num`, with increasing limits;
* PR curves as float tensors of shape [6, num_thresholds] for the `pr_curves`
  plugin, with consistent TP/FP/TN/FN rows;
* the hparams experiment, session start and session end, parsed with
  `tensorboard.plugins.hparams.plugin_data_pb2`;
* with --error-images: one image per label (`errors/<label>`, the grid of top
  false positives and negatives) at each evaluation step, a PNG whose decoded
  size is the size the event declares;
* the resolved config as text (equal to RUN_DIR/config.resolved.yaml if present);
* exactly the expected number of event files, none written concurrently (one
  writer: rank 0), each starting with `brain.Event:2`;
* no step appearing twice in any series after purging (a resumed run shows one
  curve);
* with --serve: the same, as served over HTTP by the real `tensorboard` program
  and its Rust data server (which drops superseded steps by its own rule).

Expectations come from `--expect FILE.json` (written by
`cargo run -p vigil-trainer --example tensorboard_demo`), or, for a real run,
from the defaults below plus flags, e.g. for the tiny config resumed once:
`--event-files 2 --resumed-at 21 --train-steps 5:40:5 --labels hate,spam
--eval-steps 20,40`. Exit status: 0 if all checks pass, 1 with every failure listed otherwise.
"""

import argparse
import glob
import json
import math
import os
import sys

# Keep in sync with trainer/src/logging/tags.rs.
TRAIN_SCALARS = [
    "train/loss", "train/lr", "train/lr_head", "train/grad_norm",
    "train/samples_per_sec", "train/epoch", "time/data_wait_ms",
    "time/forward_ms", "time/backward_ms", "time/allreduce_ms",
    "time/optimizer_ms", "time/step_ms",
]
CONFIG_TEXT = "config/resolved"
HPARAMS_TAGS = {
    "experiment": "_hparams_/experiment",
    "session_start_info": "_hparams_/session_start_info",
    "session_end_info": "_hparams_/session_end_info",
}


class Checker:
    def __init__(self):
        self.failures = []
        self.passed = 0

    def check(self, ok, message):
        if ok:
            self.passed += 1
        else:
            self.failures.append(message)
        return ok


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", help="run directory (contains tensorboard/)")
    p.add_argument("--expect", help="expectations JSON (the demo writes RUN_DIR/expected.json)")
    p.add_argument("--scalars", help="comma-separated scalar tags that must exist besides "
                   "the training scalars of tags.rs (e.g. val/loss,val/macro_auroc)")
    p.add_argument("--labels", help="comma-separated labels: expects the PR curve "
                   "pr_curve/<label> of each")
    p.add_argument("--event-files", type=int, help="number of event files (one per process "
                   "start of rank 0; default 1, or as in --expect)")
    p.add_argument("--resumed-at", help="comma-separated steps at which SessionLog START "
                   "markers must appear besides the first (a resumed run)")
    p.add_argument("--train-steps", help="START:STOP:STEP (inclusive): the steps every "
                   "--scalars tag must have, e.g. 5:40:5")
    p.add_argument("--eval-steps", help="comma-separated evaluation steps: the steps of "
                   "every pr_curve/<label>")
    p.add_argument("--error-images", action="store_true", help="expects the image "
                   "errors/<label> of each --labels label at each --eval-steps step")
    p.add_argument("--serve", action="store_true",
                   help="also serve the run with the real tensorboard (Rust data server) "
                   "and check what its dashboards return over HTTP")
    p.add_argument("--no-hparams-end", action="store_true",
                   help="do not require a session end (run still going)")
    return p.parse_args()


def load_expectations(args):
    exp = {}
    if args.expect:
        with open(args.expect) as f:
            exp = json.load(f)
    if "scalars" not in exp:
        exp["scalars"] = {t: {} for t in TRAIN_SCALARS}
    if args.scalars:
        for tag in args.scalars.split(","):
            exp["scalars"].setdefault(tag, {})
    if args.train_steps:
        start, stop, step = (int(x) for x in args.train_steps.split(":"))
        for want in exp["scalars"].values():
            want.setdefault("steps", list(range(start, stop + 1, step)))
    if args.labels:
        exp.setdefault("pr_curves", {})
        for label in args.labels.split(","):
            want = exp["pr_curves"].setdefault("pr_curve/" + label, {})
            if args.eval_steps:
                want.setdefault("steps", [int(x) for x in args.eval_steps.split(",")])
    if args.error_images and args.labels:
        exp.setdefault("images", {})
        for label in args.labels.split(","):
            want = exp["images"].setdefault("errors/" + label, {})
            if args.eval_steps:
                want.setdefault("steps", [int(x) for x in args.eval_steps.split(",")])
    exp.setdefault("text", {CONFIG_TEXT: {"config_file": "config.resolved.yaml"}})
    exp.setdefault("hparams", {"status": None if args.no_hparams_end else "STATUS_SUCCESS"})
    if args.event_files is not None:
        exp["event_files"] = args.event_files
    exp.setdefault("event_files", 1)
    if args.resumed_at:
        exp["resumed_at"] = [int(s) for s in args.resumed_at.split(",")]
    exp.setdefault("resumed_at", [])
    return exp


def check_files(c, tb_dir, exp):
    """One writer: the expected number of files, none overlapping in time."""
    from tensorboard.backend.event_processing import event_file_loader
    from tensorboard.compat.proto import event_pb2

    files = sorted(glob.glob(os.path.join(tb_dir, "*tfevents*")))
    c.check(len(files) == exp["event_files"],
            f"expected {exp['event_files']} event file(s) (rank 0 only, one per process "
            f"start), found {len(files)}: {[os.path.basename(f) for f in files]}")
    spans, starts = [], []
    for path in files:
        name = os.path.basename(path)
        parts = name.split(".")
        c.check(name.startswith("events.out.tfevents.") and len(parts) >= 6
                and parts[3].isdigit() and parts[-1].isdigit() and parts[-2].isdigit(),
                f"{name}: not events.out.tfevents.<secs>.<host>.<pid>.<n>")
        events = list(event_file_loader.RawEventFileLoader(path).Load())
        events = [event_pb2.Event.FromString(e) for e in events]
        if not c.check(events, f"{name}: no events"):
            continue
        c.check(events[0].file_version == "brain.Event:2",
                f"{name}: first record is not file_version brain.Event:2")
        times = [e.wall_time for e in events]
        spans.append((min(times), max(times), name))
        starts += [e.step for e in events
                   if e.HasField("session_log") and e.session_log.status == event_pb2.SessionLog.START]
    spans.sort()
    for (a0, a1, an), (b0, b1, bn) in zip(spans, spans[1:]):
        c.check(a1 <= b0, f"{an} and {bn} were written at the same time: two writers "
                f"(only rank 0 may write)")
    expected_starts = exp["resumed_at"]
    c.check(starts[1:] == expected_starts,
            f"SessionLog START markers after the first: expected {expected_starts}, found {starts[1:]}")


def plugin_content(acc, plugin):
    """Tag -> plugin metadata content of one plugin ({} if none)."""
    try:
        return acc.PluginTagToContent(plugin)
    except KeyError:
        return {}


def check_no_duplicates(c, acc):
    tags = acc.Tags()
    for kind, getter in (("scalars", acc.Scalars), ("histograms", acc.Histograms),
                         ("tensors", acc.Tensors), ("images", acc.Images)):
        for tag in tags.get(kind, []):
            steps = [e.step for e in getter(tag)]
            c.check(steps == sorted(set(steps)),
                    f"{kind} {tag}: steps not strictly increasing after purging "
                    f"(duplicated or overlapping curves): {steps}")


def check_scalars(c, acc, exp):
    have = set(acc.Tags()["scalars"])
    for tag, want in sorted(exp["scalars"].items()):
        if not c.check(tag in have, f"scalar {tag}: missing"):
            continue
        events = acc.Scalars(tag)
        steps = [e.step for e in events]
        if "steps" in want:
            c.check(steps == want["steps"], f"scalar {tag}: steps {steps}, expected {want['steps']}")
        if "values" in want and steps == want.get("steps"):
            for e, v in zip(events, want["values"]):
                if not c.check(math.isclose(e.value, v, rel_tol=1e-6, abs_tol=1e-9),
                               f"scalar {tag} step {e.step}: value {e.value}, expected {v}"):
                    break
        c.check(all(math.isfinite(e.value) for e in events), f"scalar {tag}: non-finite values")


def check_histograms(c, acc, exp):
    have = acc.Tags()["histograms"]
    for tag, want in sorted(exp.get("histograms", {}).items()):
        if c.check(tag in have, f"histogram {tag}: missing") and "steps" in want:
            steps = [e.step for e in acc.Histograms(tag)]
            c.check(steps == want["steps"], f"histogram {tag}: steps {steps}, expected {want['steps']}")
    for tag in have:
        for e in acc.Histograms(tag):
            h = e.histogram_value
            where = f"histogram {tag} step {e.step}"
            c.check(len(h.bucket) == len(h.bucket_limit) and len(h.bucket) > 0,
                    f"{where}: {len(h.bucket)} counts for {len(h.bucket_limit)} limits")
            c.check(sum(h.bucket) == h.num and h.num > 0,
                    f"{where}: bucket counts add up to {sum(h.bucket)}, num is {h.num}")
            c.check(all(a < b for a, b in zip(h.bucket_limit, h.bucket_limit[1:])),
                    f"{where}: bucket limits not increasing")
            c.check(h.min <= h.max and h.bucket_limit[-1] >= h.max,
                    f"{where}: min {h.min} / max {h.max} outside the buckets")
            mean = h.sum / h.num
            c.check(h.min - 1e-9 <= mean <= h.max + 1e-9 and h.sum_squares >= 0,
                    f"{where}: inconsistent sum {h.sum} / sum_squares {h.sum_squares}")


def check_pr_curves(c, acc, exp):
    from tensorboard.plugins.pr_curve import metadata as pr_metadata
    from tensorboard.util import tensor_util

    content = plugin_content(acc, pr_metadata.PLUGIN_NAME)
    for tag, want in sorted(exp.get("pr_curves", {}).items()):
        if not c.check(tag in content, f"PR curve {tag}: missing (no pr_curves plugin data)"):
            continue
        n = pr_metadata.parse_plugin_metadata(content[tag]).num_thresholds
        if "num_thresholds" in want:
            c.check(n == want["num_thresholds"], f"PR curve {tag}: {n} thresholds, "
                    f"expected {want['num_thresholds']}")
        events = acc.Tensors(tag)
        if "steps" in want:
            steps = [e.step for e in events]
            c.check(steps == want["steps"], f"PR curve {tag}: steps {steps}, expected {want['steps']}")
        for e in events:
            a = tensor_util.make_ndarray(e.tensor_proto)
            where = f"PR curve {tag} step {e.step}"
            if not c.check(a.shape == (6, n) and a.dtype.name == "float32",
                           f"{where}: tensor {a.dtype} {a.shape}, expected float32 (6, {n})"):
                continue
            tp, fp, tn, fn, precision, recall = a
            total = tp + fp + tn + fn
            c.check((total == total[0]).all() and (tp + fn == tp[0]).all(),
                    f"{where}: TP+FP+TN+FN or TP+FN not constant over thresholds")
            c.check(((precision >= 0) & (precision <= 1) & (recall >= 0) & (recall <= 1)).all(),
                    f"{where}: precision/recall outside [0, 1]")


def check_images(c, acc, exp):
    import io

    try:
        from PIL import Image
    except ImportError:  # tensorboard depends on Pillow; without it, sizes are not decoded
        Image = None
    have = set(acc.Tags().get("images", []))
    for tag, want in sorted(exp.get("images", {}).items()):
        if not c.check(tag in have, f"image {tag}: missing (tags: {sorted(have)})"):
            continue
        events = acc.Images(tag)
        steps = [e.step for e in events]
        if "steps" in want:
            c.check(steps == want["steps"], f"image {tag}: steps {steps}, expected {want['steps']}")
        for e in events:
            png = e.encoded_image_string
            if not c.check(png[:8] == b"\x89PNG\r\n\x1a\n", f"image {tag} step {e.step}: not a PNG"):
                continue
            c.check(e.width > 0 and e.height > 0, f"image {tag} step {e.step}: size {e.width}x{e.height}")
            if Image is not None:
                img = Image.open(io.BytesIO(png))
                c.check(img.size == (e.width, e.height),
                        f"image {tag} step {e.step}: PNG is {img.size}, event says {(e.width, e.height)}")


def check_text(c, acc, exp, run_dir):
    from tensorboard.util import tensor_util

    content = plugin_content(acc, "text")
    for tag, want in sorted(exp.get("text", {}).items()):
        if not c.check(tag in content, f"text {tag}: missing (no text plugin data)"):
            continue
        events = acc.Tensors(tag)
        if "steps" in want:
            steps = [e.step for e in events]
            c.check(steps == want["steps"], f"text {tag}: steps {steps}, expected {want['steps']}")
        config_file = want.get("config_file")
        config_path = os.path.join(run_dir, config_file) if config_file else None
        for e in events:
            value = tensor_util.make_ndarray(e.tensor_proto)
            text = value.item().decode("utf-8") if value.shape == () else None
            if not c.check(text is not None, f"text {tag} step {e.step}: not a scalar string"):
                continue
            if config_path and os.path.exists(config_path):
                with open(config_path) as f:
                    config = f.read()
                c.check(config.strip() in text,
                        f"text {tag} step {e.step}: does not contain {config_file}")


def check_hparams(c, acc, exp):
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

    want = exp.get("hparams", {})
    content = plugin_content(acc, "hparams")
    data = {}
    for field, tag in HPARAMS_TAGS.items():
        if field == "session_end_info" and want.get("status") is None:
            continue
        if c.check(tag in content, f"hparams {tag}: missing"):
            pd = plugin_data_pb2.HParamsPluginData.FromString(content[tag])
            c.check(pd.version == 0 and pd.WhichOneof("data") == field,
                    f"hparams {tag}: holds {pd.WhichOneof('data')}, expected {field}")
            data[field] = getattr(pd, field)
    exp_pb, start, end = (data.get(k) for k in HPARAMS_TAGS)
    if exp_pb is not None and start is not None:
        info_names = {h.name for h in exp_pb.hparam_infos}
        c.check(info_names == set(start.hparams.keys()) and info_names,
                "hparams: experiment columns and session values name different keys")
        for key in want.get("keys", []):
            c.check(key in start.hparams, f"hparams: no value for {key}")
        for key, value in want.get("values", {}).items():
            v = start.hparams.get(key)
            got = None if v is None else getattr(v, v.WhichOneof("kind"))
            ok = got == value or (isinstance(value, float) and isinstance(got, float)
                                  and math.isclose(got, value, rel_tol=1e-9))
            c.check(ok, f"hparams: {key} = {got!r}, expected {value!r}")
        metric_tags = [m.name.tag for m in exp_pb.metric_infos]
        for tag in want.get("metrics", []):
            c.check(tag in metric_tags, f"hparams: metric {tag} not in the experiment")
        scalar_tags = set(acc.Tags()["scalars"])
        for tag in metric_tags:
            c.check(tag in scalar_tags, f"hparams: metric {tag} has no scalar series")
    if want.get("status") is not None and end is not None:
        status = api_pb2.Status.Name(end.status)
        c.check(status == want["status"], f"hparams: end status {status}, expected {want['status']}")


def check_served(c, tb_dir, exp, timeout_s=60.0):
    """Serve tb_dir with the real `tensorboard` (Rust data server, --load_fast=true)
    and check over HTTP what its dashboards would draw: the steps of every expected
    series, the PR curves, the text, and the HParams session group with its status."""
    import queue
    import re
    import subprocess
    import threading
    import time
    import urllib.parse
    import urllib.request

    proc = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", tb_dir, "--host", "127.0.0.1",
         "--port", "0", "--load_fast=true", "--reload_interval", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l) for l in proc.stdout], daemon=True).start()
    deadline = time.monotonic() + timeout_s
    try:
        url = None
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                m = re.search(r"(http://127\.0\.0\.1:\d+)/", lines.get(timeout=1))
                url = m.group(1) if m else None
            except queue.Empty:
                pass
        if not c.check(url, "tensorboard did not start serving"):
            return

        def get(path, **params):
            q = urllib.parse.urlencode(params)
            with urllib.request.urlopen(f"{url}{path}?{q}", timeout=10) as r:
                return json.loads(r.read())

        def post(path, body):
            req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read())

        # The data server loads in the background: wait until every expected series
        # has its last expected step.
        def last_steps_loaded():
            tags = get("/data/plugin/scalars/tags").get(".", {})
            for tag, want in exp["scalars"].items():
                if tag not in tags:
                    return False
                if "steps" in want and want["steps"]:
                    steps = [p[1] for p in get("/data/plugin/scalars/scalars", run=".", tag=tag)]
                    if not steps or steps[-1] != want["steps"][-1]:
                        return False
            return True

        while not last_steps_loaded():
            if time.monotonic() > deadline:
                c.check(False, "tensorboard server: expected scalar series never appeared")
                return
            time.sleep(1)
        for tag, want in sorted(exp["scalars"].items()):
            points = get("/data/plugin/scalars/scalars", run=".", tag=tag)
            steps = [p[1] for p in points]
            c.check(steps == sorted(set(steps)), f"served scalar {tag}: duplicated steps {steps}")
            if "steps" in want:
                c.check(steps == want["steps"],
                        f"served scalar {tag}: steps {steps}, expected {want['steps']}")
            if "values" in want and steps == want.get("steps"):
                c.check(all(math.isclose(p[2], v, rel_tol=1e-6, abs_tol=1e-9)
                            for p, v in zip(points, want["values"])),
                        f"served scalar {tag}: values differ from the expected ones")
        for tag, want in sorted(exp.get("histograms", {}).items()):
            steps = [h[1] for h in get("/data/plugin/histograms/histograms", run=".", tag=tag)]
            c.check(steps == want.get("steps", sorted(set(steps))),
                    f"served histogram {tag}: steps {steps}")
        for tag, want in sorted(exp.get("pr_curves", {}).items()):
            entries = get("/data/plugin/pr_curves/pr_curves", run=".", tag=tag)["."]
            steps = [e["step"] for e in entries]
            c.check(steps == want.get("steps", sorted(set(steps))) and entries,
                    f"served PR curve {tag}: steps {steps}")
            c.check(all(len(e["precision"]) == len(e["recall"]) > 0 for e in entries),
                    f"served PR curve {tag}: empty or ragged curve")
        for tag, want in sorted(exp.get("text", {}).items()):
            steps = [e["step"] for e in get("/data/plugin/text/text", run=".", tag=tag)]
            c.check(steps == want.get("steps", sorted(set(steps))) and steps,
                    f"served text {tag}: steps {steps}")
        groups = post("/data/plugin/hparams/session_groups", {
            "experimentName": "", "startIndex": 0, "sliceSize": 10,
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE",
                                "STATUS_RUNNING"], "colParams": []}).get("sessionGroups", [])
        if c.check(len(groups) == 1, f"served hparams: {len(groups)} session groups, expected 1"):
            session = groups[0]["sessions"][0]
            want = exp.get("hparams", {})
            if want.get("status"):
                c.check(session.get("status") == want["status"],
                        f"served hparams: status {session.get('status')}, expected {want['status']}")
            c.check(groups[0].get("hparams") and groups[0].get("metricValues"),
                    "served hparams: session group without hyper-parameters or metric values")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    args = parse_args()
    from tensorboard.backend.event_processing import event_accumulator as ea

    exp = load_expectations(args)
    tb_dir = os.path.join(args.run_dir, "tensorboard")
    if not os.path.isdir(tb_dir):
        print(f"check_tensorboard: {tb_dir}: no such directory", file=sys.stderr)
        return 1
    c = Checker()
    check_files(c, tb_dir, exp)
    acc = ea.EventAccumulator(tb_dir, size_guidance={k: 0 for k in ea.DEFAULT_SIZE_GUIDANCE},
                              purge_orphaned_data=True)
    acc.Reload()
    check_no_duplicates(c, acc)
    check_scalars(c, acc, exp)
    check_histograms(c, acc, exp)
    check_pr_curves(c, acc, exp)
    check_images(c, acc, exp)
    check_text(c, acc, exp, args.run_dir)
    check_hparams(c, acc, exp)
    if args.serve:
        check_served(c, tb_dir, exp)
    tags = acc.Tags()
    print(f"check_tensorboard: {tb_dir}: {len(tags['scalars'])} scalar, "
          f"{len(tags['histograms'])} histogram, {len(tags['tensors'])} tensor, "
          f"{len(tags.get('images', []))} image tags; "
          f"{c.passed} checks passed, {len(c.failures)} failed")
    for f in c.failures:
        print(f"  FAIL {f}", file=sys.stderr)
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main())
