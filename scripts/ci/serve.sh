#!/usr/bin/env bash
# `vigil serve` with the real tritonclient[http] (PyPI): a tiny model is trained and
# exported with the debug `vigil`, served on a free loopback port, and
# scripts/triton_client_check.py checks metadata, readiness and an infer call in
# the binary tensor form whose scores equal `vigil predict`'s within 1e-5. Image
# paths in the rows file are relative to it (as in a dataset file).
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR (the debug vigil is read from it)}"
VENV="${VIGIL_CI_VENV:-$HOME/.cache/vigil-ci/venv}"
VIGIL="$CARGO_TARGET_DIR/debug/vigil"
[ -x "$VIGIL" ] || { echo "serve.sh: $VIGIL not built (cargo test --workspace builds it)" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"

# Pinned once per machine; the marker records the pins so a change reinstalls.
TRITON_PINS="tritonclient[http]==2.73.0 geventhttpclient==2.6.1 gevent==26.9.0 greenlet==3.3.2 \
python-rapidjson==1.25 aiohttp==3.14.5 urllib3==2.8.0 numpy==2.4.6"
if [ "$(cat "$VENV/.vigil-triton-client" 2>/dev/null)" != "$TRITON_PINS" ]; then
  # shellcheck disable=SC2086  # the pins are separate words
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $TRITON_PINS
  echo "$TRITON_PINS" > "$VENV/.vigil-triton-client"
fi

WORK="$CARGO_TARGET_DIR/serve-ci"
rm -rf "$WORK"
mkdir -p "$WORK"
VIGIL_OUTPUT="$WORK/run" VIGIL_EXPORT="$WORK/export" \
  "$VIGIL" launch configs/tiny.yaml --nproc-per-node 1 \
  --set train.max_steps=20 --set train.eval_every=null --set checkpoint.every_steps=null \
  --set logging.histogram_every=null --set logging.console=rank0 >"$WORK/launch.log" 2>&1 ||
  { cat "$WORK/launch.log" >&2; exit 1; }

# Rows: the first 6 validation rows, one of them without its image and one
# without its text (an empty element: that modality is missing).
ROWS="$WORK/rows.jsonl"
"$VENV/bin/python" - "$ROWS" <<'PY'
import json, os, shutil, sys
src = "datasets/sample/val.jsonl"
dst = os.path.dirname(sys.argv[1])
os.makedirs(os.path.join(dst, "img"), exist_ok=True)
out = []
for i, line in enumerate(l for l in open(src) if l.strip()):
    if i == 6:
        break
    row = json.loads(line)
    row.pop("labels", None)
    if "image" in row:
        shutil.copy(os.path.join("datasets/sample", row["image"]), os.path.join(dst, row["image"]))
    if i == 1:
        row.pop("image", None)
    if i == 2:
        row.pop("text", None)
    out.append(row)
open(sys.argv[1], "w").write("".join(json.dumps(r) + "\n" for r in out))
PY
"$VIGIL" predict --model "$WORK/export/tiny" --input "$ROWS" --output "$WORK/predict.jsonl"

LOG="$WORK/serve.log"
"$VIGIL" serve --model-repository "$WORK/export" --listen 127.0.0.1:0 --poll-secs 0.5 2>"$LOG" &
SERVER=$!
stop_server() {
  kill -TERM "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
}
trap stop_server EXIT
ADDR=""
for _ in $(seq 1 300); do
  ADDR="$(sed -n 's#^vigil serve: listening on http://##p' "$LOG" | head -n 1)"
  [ -n "$ADDR" ] && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$LOG" >&2; exit 1; }
  sleep 0.1
done
[ -n "$ADDR" ] || { echo "serve.sh: vigil serve did not listen" >&2; cat "$LOG" >&2; exit 1; }

"$VENV/bin/python" scripts/triton_client_check.py --url "$ADDR" --model tiny \
  --rows "$ROWS" --predict "$WORK/predict.jsonl"

# SIGTERM: drain and exit 0.
trap - EXIT
kill -TERM "$SERVER"
if ! wait "$SERVER"; then
  echo "serve.sh: vigil serve did not exit 0 on SIGTERM" >&2
  cat "$LOG" >&2
  exit 1
fi
echo "serve.sh: tritonclient check passed; the server drained and exited 0"
