#!/usr/bin/env bash
# CI for the Milvus backend of recall (issue 30), called from .ci/run: a real Milvus
# 2.3.5 standalone server (PyPI's `milvus` wheel carries the actual server binary,
# with etcd embedded and local storage) on loopback, and the ignored tests of
# crates/recall/tests/milvus.rs against its REST API: build a collection, self-queries,
# upserts, deletes, the manifest, recall() against the embedded bank, refusals; then
# the real `vigil index build|add|delete|info` and `vigil recall` with
# milvus://127.0.0.1:PORT/COLLECTION, checked against the embedded index's exact search.
# Every port the server opens is picked free here (etcd's client and peer ports
# through an embedded-etcd config file, ETCD_CONFIG_PATH), so a second Milvus on the
# machine (another run, a leftover) does not collide with this one.
# Uses $CARGO_TARGET_DIR (the server's data and logs go under it; the data is removed
# on exit, the logs kept in $CARGO_TARGET_DIR/milvus-logs) and the virtualenv
# ${VIGIL_CI_MILVUS_VENV:-~/.cache/vigil-ci/venv-milvus}; installs its pin once
# (marker file).
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR to the target dir of the suite}"
VENV="${VIGIL_CI_MILVUS_VENV:-$HOME/.cache/vigil-ci/venv-milvus}"
started=$SECONDS
say() { printf -- '--- %s\n' "$*"; }

MILVUS_PIN="milvus==2.3.5"
if [ "$(cat "$VENV/.vigil-milvus" 2>/dev/null)" != "$MILVUS_PIN" ]; then
  say "pip: $MILVUS_PIN"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$MILVUS_PIN"
  echo "$MILVUS_PIN" > "$VENV/.vigil-milvus"
fi

# The test binary is built first and then run directly, so the server neither waits
# on the compiler nor on the cargo lock (held by any other build on the machine).
say "build crates/recall/tests/milvus.rs"
find_exe='
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "milvus" and m.get("executable"):
        print(m["executable"])
'
MILVUS_TEST=$(cargo test -p vigil-recall --test milvus --no-run --message-format=json | python3 -c "$find_exe")
[ -n "$MILVUS_TEST" ] || { echo "the milvus test binary was not found" >&2; exit 1; }

# Eleven free ports: etcd client and peer, the proxy (gRPC and REST), and the
# components' internal ones. The metrics port is found free by milvus-server itself.
read -r ETCD_PORT PEER_PORT PROXY_PORT PROXY_INT ROOT_PORT QC_PORT QN_PORT IC_PORT IN_PORT \
  DC_PORT DN_PORT < <("$VENV/bin/python" -c '
import socket
socks = [socket.socket() for _ in range(11)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
mkdir -p "$CARGO_TARGET_DIR"
DATA=$(mktemp -d "$CARGO_TARGET_DIR/milvus-ci.XXXXXX")
LOGS="$CARGO_TARGET_DIR/milvus-logs"
ENDPOINT="http://127.0.0.1:$PROXY_PORT"
cat > "$DATA/embed-etcd.yaml" <<EOF
listen-client-urls: http://127.0.0.1:$ETCD_PORT
advertise-client-urls: http://127.0.0.1:$ETCD_PORT
listen-peer-urls: http://127.0.0.1:$PEER_PORT
initial-advertise-peer-urls: http://127.0.0.1:$PEER_PORT
initial-cluster: default=http://127.0.0.1:$PEER_PORT
EOF

say "milvus-server on $ENDPOINT (data $DATA, logs $LOGS)"
# Its own process group (setsid): milvus-server (Python) runs `milvus run standalone`,
# and the trap ends both.
ETCD_CONFIG_PATH="$DATA/embed-etcd.yaml" setsid "$VENV/bin/milvus-server" --data "$DATA" \
  --etcd-port "$ETCD_PORT" --proxy-port "$PROXY_PORT" --proxy-internal-port "$PROXY_INT" \
  --root-coord-port "$ROOT_PORT" --query-coord-port "$QC_PORT" --query-node-port "$QN_PORT" \
  --index-coord-port "$IC_PORT" --index-node-port "$IN_PORT" --data-coord-port "$DC_PORT" \
  --data-node-port "$DN_PORT" >"$DATA/milvus-server.log" 2>&1 &
MILVUS_PID=$!
MILVUS_PGID=$(ps -o pgid= -p "$MILVUS_PID" | tr -d ' ')
stop_milvus() {
  if [ -n "$MILVUS_PGID" ] && kill -0 -- "-$MILVUS_PGID" 2>/dev/null; then
    # `milvus run standalone` takes 20 s and more to stop on SIGTERM; its data is
    # thrown away, so it gets 2 s.
    kill -TERM -- "-$MILVUS_PGID" 2>/dev/null || true
    for _ in $(seq 10); do
      kill -0 -- "-$MILVUS_PGID" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL -- "-$MILVUS_PGID" 2>/dev/null || true
  fi
  wait "$MILVUS_PID" 2>/dev/null || true
  rm -rf "$LOGS"
  mkdir -p "$LOGS"
  cp -r "$DATA/logs/." "$DATA/milvus-server.log" "$LOGS/" 2>/dev/null || true
  rm -rf "$DATA"
}
trap stop_milvus EXIT
trap 'exit 130' INT TERM
[ "$MILVUS_PGID" = "$MILVUS_PID" ] || { echo "milvus-server is not its own process group" >&2; exit 1; }

log_tail() {
  for f in "$DATA/milvus-server.log" "$DATA/logs/milvus-stdout.log" "$DATA/logs/milvus-stderr.log"; do
    [ -f "$f" ] && { echo "== tail of $f"; tail -n 30 "$f"; }
  done >&2
}
t0=$SECONDS
until "$VENV/bin/python" -c "
import json, sys, urllib.request
reply = json.load(urllib.request.urlopen('$ENDPOINT/v1/vector/collections', timeout=2))
sys.exit(reply.get('code') != 200)" 2>/dev/null; do
  if ! kill -0 "$MILVUS_PID" 2>/dev/null; then
    echo "milvus-server exited before answering" >&2
    log_tail
    exit 1
  fi
  if [ $((SECONDS - t0)) -ge 120 ]; then
    echo "Milvus did not answer GET /v1/vector/collections within 120 s" >&2
    log_tail
    exit 1
  fi
  sleep 0.5
done
say "Milvus answers after $((SECONDS - t0)) s"

export VIGIL_MILVUS_URL="$ENDPOINT"
say "crates/recall/tests/milvus.rs against it"
t0=$SECONDS
"$MILVUS_TEST" --include-ignored
say "Milvus tests: $((SECONDS - t0)) s"

# The same commands against the server: `vigil index build --out milvus://...`,
# `vigil recall`, `vigil index add|delete|info`, checked against the embedded index
# built from the same vectors (exact search), and the refusals (exit 2).
VIGIL="${VIGIL_BIN:-$CARGO_TARGET_DIR/debug/vigil}"
CLI="$CARGO_TARGET_DIR/milvus-cli"
rm -rf "$CLI" && mkdir -p "$CLI"
say "vigil index / recall against milvus://127.0.0.1:$PROXY_PORT/vigil_cli_check"
t0=$SECONDS
"$VENV/bin/python" - "$VIGIL" "$CLI" "127.0.0.1:$PROXY_PORT" <<'PY'
import json, random, subprocess, sys
vigil, work, hostport = sys.argv[1:]
url = f"milvus://{hostport}/vigil_cli_check"
rng = random.Random(30)
def vec():
    return [rng.gauss(0, 1) for _ in range(24)]
rows = [{"id": f"r{i}", "embedding": vec()} for i in range(400)]
with open(f"{work}/emb.jsonl", "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
with open(f"{work}/rows.jsonl", "w") as f:
    f.writelines(json.dumps({"id": r["id"], "text": f"row {r['id']}",
                             "labels": {"spam": int(i % 10 == 0)}}) + "\n"
                 for i, r in enumerate(rows))
seeds = [{"id": f"s{i}", "embedding": vec()} for i in range(3)]
with open(f"{work}/seeds.jsonl", "w") as f:
    f.writelines(json.dumps(s) + "\n" for s in seeds)
def run(*args, code=0):
    p = subprocess.run([vigil, *args], capture_output=True, text=True, timeout=300)
    if p.returncode != code:
        sys.exit(f"vigil {' '.join(args)} exited {p.returncode}, expected {code}:\n{p.stderr}")
    return p
common = ["--embeddings", f"{work}/emb.jsonl", "--data", f"{work}/rows.jsonl"]
run("index", "build", *common, "--out", url, "--replace")
run("index", "build", *common, "--out", f"{work}/local")
info = json.loads(run("index", "info", "--index", url).stdout)
assert info["count"] == 400, info
assert info["manifest"]["embedding"]["kind"] == "vectors", info
def hits(index, *extra):
    out = run("recall", "--index", index, "--seeds", f"{work}/seeds.jsonl", "--k", "10", *extra).stdout
    return [json.loads(l) for l in out.splitlines()]
remote, exact = hits(url), hits(f"{work}/local", "--exact")
assert [h["id"] for h in remote] == [h["id"] for h in exact], (remote, exact)
for a, b in zip(remote, exact):
    assert abs(a["similarity"] - b["similarity"]) < 1e-4, (a, b)
    assert a.get("labels") == b.get("labels"), (a, b)
top = remote[0]["id"]
run("index", "delete", "--index", url, "--id", top)
assert top not in [h["id"] for h in hits(url)]
p = run("index", "delete", "--index", url, "--id", "no-such-id", code=2)
assert "no-such-id" in p.stderr, p.stderr
assert json.loads(run("index", "info", "--index", url).stdout)["count"] == 399
# An upsert: r1 takes seed 0's vector and becomes its nearest item.
with open(f"{work}/up.jsonl", "w") as f:
    f.write(json.dumps({"id": "r1", "embedding": seeds[0]["embedding"]}) + "\n")
p = run("index", "add", "--index", url, "--embeddings", f"{work}/up.jsonl")
assert "0 added, 1 replaced" in p.stderr, p.stderr
first = hits(url)[0]
assert first["id"] == "r1" and first["similarity"] > 0.9999, first
# A malformed URL and an existing collection without --replace: exit 2.
run("index", "info", "--index", f"milvus://{hostport}/9bad", code=2)
run("index", "build", *common, "--out", url, code=2)
print("CLI against Milvus: build, info, recall (= exact search), delete, upsert, refusals: ok")
PY
say "CLI checks: $((SECONDS - t0)) s"

say "milvus.sh: $((SECONDS - started)) s"
