#!/usr/bin/env bash
# CI step of the HTML evaluation report (docs/src/guides/evaluation-report.md): makes the
# report of a real tiny run (`vigil report`) and of a `vigil eval --html` call on
# a validation file with meta and a `<script>alert(1)</script>` row, opens each
# in headless Chromium (screenshot and DOM dump) and checks them with
# scripts/check_report.py. The screenshots stay in $CARGO_TARGET_DIR/report-ci/.
#
# Needs $CARGO_TARGET_DIR/debug/vigil (the test build) and $VENV (the CI
# virtualenv with Pillow, which tensorboard already pulls in).
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR}"
VENV="${VENV:-${VIGIL_CI_VENV:-$HOME/.cache/vigil-ci/venv}}"
VIGIL="$CARGO_TARGET_DIR/debug/vigil"
OUT="$CARGO_TARGET_DIR/report-ci"
LABELS=hate,harassment,violence,self_harm,spam

# Debian's chromium and a font for the charts' text; a marker records the set so a
# changed list reinstalls, and a present binary skips apt entirely.
APT_PKGS="chromium fonts-dejavu-core"
MARKER="$HOME/.cache/vigil-ci/.vigil-report-apt"
if [ "$(cat "$MARKER" 2>/dev/null)" != "$APT_PKGS" ] || ! command -v chromium >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  # shellcheck disable=SC2086  # the packages are separate words
  apt-get install -y --no-install-recommends $APT_PKGS >/dev/null 2>&1 || {
    apt-get update -q >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y --no-install-recommends $APT_PKGS >/dev/null
  }
  mkdir -p "$(dirname "$MARKER")"
  echo "$APT_PKGS" > "$MARKER"
fi
PIL_PIN="pillow==13.0.0"
if [ "$(cat "$VENV/.vigil-report-check" 2>/dev/null)" != "$PIL_PIN" ]; then
  "$VENV/bin/python" -c 'import PIL' 2>/dev/null \
    || "$VENV/bin/pip" install --quiet --disable-pip-version-check "$PIL_PIN"
  echo "$PIL_PIN" > "$VENV/.vigil-report-check"
fi

rm -rf "$OUT"
mkdir -p "$OUT/data/img"
PROFILES="$(mktemp -d)"
trap 'rm -rf "$PROFILES"' EXIT

# A validation file with meta.language on every row, its images beside it, and
# two rows whose text is a script (same inputs, opposite `hate` labels: one of
# them is an error at any threshold, so the report lists it).
"$VENV/bin/python" - "$OUT/data" <<'PY'
import json, shutil, sys
out = sys.argv[1]
rows, first = [], None
with open("datasets/sample/val.jsonl") as f:
    for i, line in enumerate(l for l in f if l.strip()):
        if i == 60:
            break
        row = json.loads(line)
        if row.get("image"):
            shutil.copy(f"datasets/sample/{row['image']}", f"{out}/{row['image']}")
            first = first or row["image"]
        row["meta"] = {"language": ["en", "fr", "de"][i % 3], "source": "sample"}
        rows.append(row)
for rid, hate in (("xss-1", 1), ("xss-2", 0)):
    rows.append({"id": rid, "text": "<script>alert(1)</script>", "image": first,
                 "labels": {"hate": hate}, "meta": {"language": "en"}})
with open(f"{out}/val-meta.jsonl", "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
PY

# The real tiny run: .ci/run's fresh run when it is there, else one made here.
RUN="$CARGO_TARGET_DIR/tb-fresh"
if ! ls "$RUN"/eval/step-*.scores.jsonl >/dev/null 2>&1; then
  RUN="$OUT/run"
  VIGIL_OUTPUT="$RUN" VIGIL_EXPORT="$RUN/export" \
    "$VIGIL" launch configs/tiny.yaml --set logging.console=rank0 >/dev/null
fi
# TensorBoard's own reader sees the per-label grids of top errors (images dashboard).
"$VENV/bin/python" scripts/check_tensorboard.py "$RUN" --train-steps 5:40:5 --labels "$LABELS" \
  --eval-steps 20,40 --error-images
"$VIGIL" report "$RUN" --out "$OUT/run-report.html" --slice-by meta.language
"$VIGIL" eval --model "$RUN/export/tiny" --data "$OUT/data/val-meta.jsonl" --top 100 \
  --html "$OUT/eval-report.html" --slice-by meta.language >/dev/null

browse() { # FILE.html NAME: screenshot and DOM of the page, as headless chromium sees it
  local flags=(--headless --no-sandbox --disable-gpu --disable-background-networking
    --disable-component-update --disable-sync --no-first-run --hide-scrollbars)
  timeout 120 chromium "${flags[@]}" --user-data-dir="$(mktemp -d -p "$PROFILES")" \
    --window-size=1400,4000 --screenshot="$OUT/$2.png" "file://$1" >/dev/null 2>&1
  timeout 120 chromium "${flags[@]}" --user-data-dir="$(mktemp -d -p "$PROFILES")" \
    --dump-dom "file://$1" > "$OUT/$2.dom.html" 2>/dev/null
}
browse "$OUT/run-report.html" run-report
browse "$OUT/eval-report.html" eval-report

"$VENV/bin/python" scripts/check_report.py --html "$OUT/run-report.html" \
  --dom "$OUT/run-report.dom.html" --screenshot "$OUT/run-report.png" --labels "$LABELS"
"$VENV/bin/python" scripts/check_report.py --html "$OUT/eval-report.html" \
  --dom "$OUT/eval-report.dom.html" --screenshot "$OUT/eval-report.png" --labels "$LABELS" \
  --expect-text '<script>alert(1)</script>' --expect-slices
# The checker must catch what it exists for: a page where the row became a script.
sed 's|&lt;script&gt;alert(1)&lt;/script&gt;|<script>alert(1)</script>|' \
  "$OUT/eval-report.dom.html" > "$OUT/unsafe.dom.html"
if "$VENV/bin/python" scripts/check_report.py --html "$OUT/eval-report.html" \
    --dom "$OUT/unsafe.dom.html" --screenshot "$OUT/eval-report.png" --labels "$LABELS" \
    --expect-text '<script>alert(1)</script>' >/dev/null 2>&1; then
  echo "check_report.py accepted a page with a script element" >&2
  exit 1
fi
echo "report screenshots: $OUT/run-report.png $OUT/eval-report.png"
