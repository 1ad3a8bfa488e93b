#!/usr/bin/env bash
# Checkpoint upload time and training stall per save, bucket vs local disk, for the
# quickstart model (configs/quickstart.yaml: MiniLM-L6 text tower, EfficientNet-B0
# frozen), side by side in one session. The bucket is moto's S3 server on loopback
# (what scripts/ci/s3.sh uses): it measures Vigil's upload path (signing, multipart,
# the background writer), not a real network. Prints, per run, the figures the rank-0
# log records: `checkpoint written ... write_ms=` (the save on the background thread:
# serialise + write/upload + retention) and `checkpoint submitted ... stall_ms=`
# (how long the training step was blocked).
#   VIGIL=target/release/vigil benches/s3_checkpoint.sh [STEPS] [EVERY]
set -euo pipefail
cd "$(dirname "$0")/.."
VIGIL="${VIGIL:-${CARGO_TARGET_DIR:-target}/release/vigil}"
VENV="${VIGIL_CI_VENV:-$HOME/.cache/vigil-ci/venv}"
STEPS="${1:-12}"
EVERY="${2:-4}"
OUT=$(mktemp -d)
PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$OUT/moto.log" 2>&1 &
MOTO=$!
trap 'kill $MOTO 2>/dev/null || true; rm -rf "$OUT"' EXIT
sleep 3
export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
export VIGIL_LOG=vigil_trainer=info
"$VENV/bin/python" -c "import boto3; boto3.client('s3', endpoint_url='$AWS_ENDPOINT_URL').create_bucket(Bucket='vigil-bench')"

run() { # name output_dir export_dir local_dir
  "$VIGIL" launch configs/quickstart.yaml --set "run.output_dir=$2" --set "export.dir=$3" \
    --set "run.local_dir=$4" --set "train.max_steps=$STEPS" --set "train.epochs=100" \
    --set "checkpoint.every_steps=$EVERY" --set "train.eval_every=$STEPS" \
    --set logging.console=rank0 >"$OUT/$1.out" 2>&1
  local log="$OUT/$1.log"
  sed 's/\x1b\[[0-9;]*m//g' "$4/logs/rank-0.log" >"$log"
  echo "$1: write_ms (per save): $(grep -o 'checkpoint written.*' "$log" | grep -o 'write_ms=[0-9]*' | cut -d= -f2 | tr '\n' ' ')"
  echo "$1: stall_ms (per save): $(grep -o 'checkpoint submitted.*' "$log" | grep -o 'stall_ms=[0-9]*' | cut -d= -f2 | tr '\n' ' ')"
  echo "$1: bytes per save: $(grep -o 'checkpoint written.*' "$log" | grep -o 'bytes=[0-9]*' | head -1 | cut -d= -f2)"
}
run local "$OUT/local" "$OUT/local/export" "$OUT/local"
run bucket "s3://vigil-bench/runs/q" "s3://vigil-bench/export" "$OUT/bucket-work"
