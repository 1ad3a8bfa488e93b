#!/usr/bin/env bash
# `vigil serve` against hostile clients (issue #32): a tiny model is trained and
# exported with the debug `vigil`, served on a free loopback port with a token,
# short header/body timeouts, an 8 MiB body limit and a 16 MiB in-flight budget,
# under `ulimit -n 1024`; scripts/hostile_client.py (Python 3 standard library
# only) runs every case and prints one line per case. Bounded: the client runs
# under `timeout 90`.
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR (the debug vigil is read from it)}"
VIGIL="$CARGO_TARGET_DIR/debug/vigil"
[ -x "$VIGIL" ] || { echo "hostile.sh: $VIGIL not built (cargo test --workspace builds it)" >&2; exit 1; }

WORK="$CARGO_TARGET_DIR/hostile-ci"
rm -rf "$WORK"
mkdir -p "$WORK"
VIGIL_OUTPUT="$WORK/run" VIGIL_EXPORT="$WORK/export" \
  "$VIGIL" launch configs/tiny.yaml --nproc-per-node 1 \
  --set train.max_steps=5 --set train.eval_every=null --set checkpoint.every_steps=null \
  --set logging.histogram_every=null --set logging.console=rank0 >"$WORK/launch.log" 2>&1 ||
  { cat "$WORK/launch.log" >&2; exit 1; }

printf 'hostile-ci-token\n' >"$WORK/token"
LOG="$WORK/serve.log"
(
  ulimit -n 1024
  exec "$VIGIL" serve --model-repository "$WORK/export" --listen 127.0.0.1:0 --threads 1 \
    --auth-token-file "$WORK/token" --header-timeout-secs 2 --body-timeout-secs 2 \
    --max-body-bytes 8388608 --max-inflight-bytes 16777216 --poll-secs 0.5
) 2>"$LOG" &
PID=$!
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true' EXIT

ADDR=""
for _ in $(seq 1 300); do
  ADDR=$(sed -n 's#^vigil serve: listening on http://##p' "$LOG" | head -n 1)
  [ -n "$ADDR" ] && break
  kill -0 "$PID" 2>/dev/null || { cat "$LOG" >&2; echo "hostile.sh: vigil serve exited" >&2; exit 1; }
  sleep 0.2
done
[ -n "$ADDR" ] || { cat "$LOG" >&2; echo "hostile.sh: vigil serve did not listen" >&2; exit 1; }

rc=0
timeout 90 python3 scripts/hostile_client.py --addr "$ADDR" --token-file "$WORK/token" --pid "$PID" || rc=$?
if ! kill -0 "$PID" 2>/dev/null; then
  echo "FAIL  the server died during the run" >&2
  rc=1
fi
if grep -qi "too many open files" "$LOG"; then
  echo "FAIL  the server ran out of file descriptors:" >&2
  grep -i "too many open files" "$LOG" | head -n 3 >&2
  rc=1
fi
kill -TERM "$PID"
wait "$PID" || { echo "FAIL  vigil serve did not exit 0 on SIGTERM" >&2; rc=1; }
trap - EXIT
[ "$rc" -eq 0 ] || { echo "--- serve log (tail) ---" >&2; tail -n 40 "$LOG" >&2; }
exit "$rc"
