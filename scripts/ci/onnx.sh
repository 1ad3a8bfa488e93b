#!/usr/bin/env bash
# CI step of the ONNX export (issue 14): pinned onnx / onnxruntime / tokenizers /
# pillow / tritonclient in the CI venv, then on the real tiny run's export
# ($CARGO_TARGET_DIR/tb-fresh, made earlier in .ci/run):
#   - scripts/onnx_checks.py: onnx.checker full_check, metadata, dynamic batch and
#     sequence axes, config.pbtxt parsed by tritonclient and matched to the graph;
#   - scripts/onnx_client.py reproduces `vigil predict` on datasets/sample/val.jsonl
#     within 1e-4 for every row and label;
#   - `vigil export --checkpoint` of the run's last checkpoint into a new repository,
#     checked the same way;
#   - a truncated model.onnx makes its version damaged: `vigil predict` skips it;
#   - the Rust parity tests (trainer/tests/model/onnx.rs) with VIGIL_PYTHON set to
#     the venv's python (in the suite before this step they skip: no packages yet).
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${CARGO_TARGET_DIR:?CARGO_TARGET_DIR must be set (.ci/run exports it)}"
VENV="${VIGIL_CI_VENV:-$HOME/.cache/vigil-ci/venv}"
PY="$VENV/bin/python"
PINS="onnx==1.23.2 onnxruntime==1.32.0 tokenizers==0.23.3 pillow==13.0.0 numpy==2.4.6 tritonclient[http]==2.73.0"
if [ ! -x "$PY" ]; then
  python3 -m venv "$VENV"
fi
if [ "$(cat "$VENV/.vigil-onnx" 2>/dev/null)" != "$PINS" ]; then
  # shellcheck disable=SC2086  # the pins are separate words
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $PINS
  echo "$PINS" > "$VENV/.vigil-onnx"
fi

VIGIL="$CARGO_TARGET_DIR/debug/vigil"
RUN="$CARGO_TARGET_DIR/tb-fresh"
EXPORT="$RUN/export/tiny"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

same_scores() { # A.jsonl B.jsonl: every row and label within 1e-4
  "$PY" - "$1" "$2" <<'PYEOF'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) and a, (len(a), len(b))
worst = 0.0
for x, y in zip(a, b):
    assert x["id"] == y["id"] and x["version"] == y["version"], (x["id"], y["id"])
    assert list(x["scores"]) == list(y["scores"])
    for label, p in x["scores"].items():
        worst = max(worst, abs(p - y["scores"][label]))
assert worst <= 1e-4, f"scores differ by {worst}"
print(f"{len(a)} rows x {len(a[0]['scores'])} labels: largest difference {worst:.2e}")
PYEOF
}

echo "-- checks of the tiny run's export ($EXPORT)"
"$PY" scripts/onnx_checks.py "$EXPORT"
"$VIGIL" predict --model "$EXPORT" --input datasets/sample/val.jsonl --output "$WORK/predict.jsonl"
"$PY" scripts/onnx_client.py --model "$EXPORT" --input datasets/sample/val.jsonl > "$WORK/onnx.jsonl"
same_scores "$WORK/predict.jsonl" "$WORK/onnx.jsonl"
"$PY" scripts/onnx_client.py --model "$EXPORT" --input datasets/sample/val.jsonl \
  --batch-size 1 > "$WORK/onnx-1.jsonl"
same_scores "$WORK/predict.jsonl" "$WORK/onnx-1.jsonl"

echo "-- vigil export of the run's last checkpoint into a new repository"
CKPT="$RUN/checkpoints/$(cat "$RUN/checkpoints/LATEST")"
"$VIGIL" export --checkpoint "$CKPT" --repository "$WORK/repo/tiny"
"$PY" scripts/onnx_checks.py "$WORK/repo/tiny"
"$VIGIL" predict --model "$WORK/repo/tiny" --input datasets/sample/val.jsonl \
  --output "$WORK/predict-ckpt.jsonl"
"$PY" scripts/onnx_client.py --model "$WORK/repo/tiny" --input datasets/sample/val.jsonl \
  > "$WORK/onnx-ckpt.jsonl"
same_scores "$WORK/predict-ckpt.jsonl" "$WORK/onnx-ckpt.jsonl"

echo "-- a truncated model.onnx makes its version damaged"
"$VIGIL" export --model "$EXPORT" --repository "$WORK/repo/tiny"
ONNX="$WORK/repo/tiny/2/model.onnx"
head -c "$(( $(stat -c %s "$ONNX") / 2 ))" "$ONNX" > "$WORK/half" && mv "$WORK/half" "$ONNX"
"$VIGIL" predict --model "$WORK/repo/tiny" --input datasets/sample/val.jsonl \
  --output "$WORK/predict-skip.jsonl" 2> "$WORK/predict-skip.err"
grep -q "skipped damaged version 2" "$WORK/predict-skip.err"
grep -q '"version":1' "$WORK/predict-skip.jsonl"

echo "-- Rust parity tests with the venv (trainer/tests/model/onnx.rs)"
# The suite's own test binary (same command as the suite, so nothing rebuilds; a
# `cargo test --test model` would unify features differently and recompile).
MODEL_TESTS="$(cargo test --workspace --no-run --message-format=json 2>/dev/null | "$PY" -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if (m.get("reason") == "compiler-artifact" and m.get("executable")
            and m["target"]["name"] == "model" and m["package_id"].find("trainer") >= 0):
        print(m["executable"])')"
[ -x "$MODEL_TESTS" ] || { echo "trainer's model test binary not found" >&2; exit 1; }
VIGIL_PYTHON="$PY" "$MODEL_TESTS" onnx::
