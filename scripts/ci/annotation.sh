#!/usr/bin/env bash
# The annotation round trip (`vigil queue` -> a real annotation tool -> `vigil datasets
# apply-labels`) with the real tools, pinned from PyPI:
# - Label Studio: the real server on a free loopback port, in a throwaway copy of a
#   migrated data dir (built once per pin set, with an admin user and API token).
#   Over its REST API: a project from Vigil's labeling config, Vigil's tasks imported,
#   annotations posted as the editor makes them, the project exported as JSON;
#   label-studio-sdk's LabelInterface checks the config and the predictions too.
# - Argilla: its server needs Elasticsearch (not on PyPI or Debian), so the real client
#   library runs offline: rg.Settings.from_json, rg.Record.from_dict and the payload
#   records.log() would send; the reviewed records are written by the library's own
#   to_json code (Record.from_model on server-shaped record models with responses).
# Each export goes through the debug `vigil datasets apply-labels`, and
# scripts/check_annotation_tools.py checks the new file: the expected labels, rationale
# and meta.provenance on reviewed rows, every other line byte-identical.
# Uses $VIGIL (default: $CARGO_TARGET_DIR/debug/vigil, else target/debug/vigil) and the
# virtualenv ${VIGIL_CI_ANNOTATION_VENV:-$HOME/.cache/vigil-ci/venv-annotation}, whose
# pins install once (marker file). VIGIL_CI_KEEP=1 keeps the work dir.
set -euo pipefail
cd "$(dirname "$0")/../.."

started=$SECONDS
last=$SECONDS
step() {
  printf -- '--- [%3d s, +%3d s] %s\n' $((SECONDS - started)) $((SECONDS - last)) "$*"
  last=$SECONDS
}

VIGIL="${VIGIL:-${CARGO_TARGET_DIR:-target}/debug/vigil}"
[ -x "$VIGIL" ] || { echo "annotation.sh: $VIGIL not built (cargo build -p vigil-launcher)" >&2; exit 1; }
VIGIL="$(cd "$(dirname "$VIGIL")" && pwd)/$(basename "$VIGIL")"
VENV="${VIGIL_CI_ANNOTATION_VENV:-$HOME/.cache/vigil-ci/venv-annotation}"
CHECK="$PWD/scripts/check_annotation_tools.py"
SAMPLE="$PWD/datasets/sample/train.jsonl"

# label-studio and argilla resolve together in one venv (pip check is clean). Their
# loose requirements that matter are pinned too (sentry-sdk 3 breaks label-studio's
# startup; Django, pydantic, httpx, datasets are what the code paths here run on).
PINS="label-studio==1.23.2 label-studio-sdk==2.1.2 argilla==2.8.0 sentry-sdk==2.76.0 \
Django==5.2.20 djangorestframework-simplejwt==5.5.1 pydantic==2.14.4 pydantic-core==2.50.5 \
httpx==0.29.0 datasets==5.2.0 huggingface-hub==2.5.0 numpy==2.2.6 pandas==3.1.2 \
pyarrow==24.0.0 pillow==13.0.0 lxml==6.2.1 requests==2.34.2 rq==2.6.1 redis==5.2.1 \
openai==1.109.1"
LS_TEMPLATE="$VENV/label-studio-template"
# Label Studio reads these: no version check against PyPI, no usage analytics.
LS_ENV=(LATEST_VERSION_CHECK=false COLLECT_ANALYTICS=false)
if [ "$(cat "$VENV/.vigil-annotation" 2>/dev/null)" != "$PINS" ]; then
  step "pip: $PINS"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  # shellcheck disable=SC2086  # the pins are separate words
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $PINS
  "$VENV/bin/pip" check
  # Label Studio's ~300 migrations take about a minute: done once here, each run
  # starts from a copy. `init` also creates the admin user and its legacy API token.
  step "label-studio init (migrations, admin user and API token) -> $LS_TEMPLATE"
  rm -rf "$LS_TEMPLATE"
  token="$("$VENV/bin/python" -c 'import secrets; print(secrets.token_hex(20))')"
  env "${LS_ENV[@]}" LABEL_STUDIO_BASE_DATA_DIR="$LS_TEMPLATE" timeout 600 \
    "$VENV/bin/label-studio" init --quiet --data-dir "$LS_TEMPLATE" --username ci@vigil.test \
    --password "$token" --user-token "$token" --enable-legacy-api-token >"$VENV/label-studio-init.log" 2>&1 ||
    { cat "$VENV/label-studio-init.log" >&2; exit 1; }
  (umask 077 && echo "$token" > "$LS_TEMPLATE/.vigil-token")
  echo "$PINS" > "$VENV/.vigil-annotation"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/vigil-annotation.XXXXXX")"
LS_PID=""
LS_LOG="$WORK/label-studio.log"
cleanup() {
  local rc=$?
  if [ -n "$LS_PID" ]; then
    kill -TERM "$LS_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$LS_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$LS_PID" 2>/dev/null || true
    wait "$LS_PID" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ]; then
    [ -f "$LS_LOG" ] && { echo "--- label-studio.log (last 40 lines)" >&2; tail -n 40 "$LS_LOG" >&2; }
    echo "annotation.sh: FAILED (rc $rc); work dir kept: $WORK" >&2
  elif [ "${VIGIL_CI_KEEP:-}" = 1 ]; then
    echo "annotation.sh: work dir kept: $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

step "start Label Studio (copy of the migrated template, loopback only)"
cp -a "$LS_TEMPLATE" "$WORK/ls-data"
TOKEN="$(cat "$WORK/ls-data/.vigil-token")"
PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
env "${LS_ENV[@]}" LABEL_STUDIO_BASE_DATA_DIR="$WORK/ls-data" \
  "$VENV/bin/label-studio" start --no-browser --data-dir "$WORK/ls-data" \
  --internal-host 127.0.0.1 -p "$PORT" >"$LS_LOG" 2>&1 &
LS_PID=$!

step "the sample with a rationale on one row; --issues and --recall files; vigil queue (both formats)"
"$VENV/bin/python" "$CHECK" prepare --sample "$SAMPLE" --work "$WORK"
for fmt in labelstudio:tasks.json argilla:records.json; do
  "$VIGIL" queue --data "$WORK/train.jsonl" --issues "$WORK/issues.jsonl" --recall "$WORK/recall.jsonl" \
    --budget 5 --format "${fmt%%:*}" --out "$WORK/${fmt#*:}"
done

step "Argilla (client library, offline): settings, records, reviewed export"
timeout 300 "$VENV/bin/python" "$CHECK" argilla --data "$WORK/train.jsonl" --records "$WORK/records.json" \
  --settings "$WORK/records.json.argilla-settings.json" --export "$WORK/argilla-export.json" \
  --expect "$WORK/argilla-expect.json"
(cd "$WORK" && "$VIGIL" datasets apply-labels --data train.jsonl --reviews argilla-export.json \
  --out train.argilla.jsonl)
"$VENV/bin/python" "$CHECK" verify --data "$WORK/train.jsonl" --new "$WORK/train.argilla.jsonl" \
  --reviews argilla-export.json --expect "$WORK/argilla-expect.json"

step "wait for Label Studio on 127.0.0.1:$PORT"
URL=""
for _ in $(seq 1800); do # 180 s at most
  kill -0 "$LS_PID" 2>/dev/null || { echo "annotation.sh: label-studio exited" >&2; exit 1; }
  # It takes another port if ours was taken meanwhile: read the one it bound.
  addr="$(sed -n 's#^Starting development server at \(http://127\.0\.0\.1:[0-9]*\)/.*#\1#p' "$LS_LOG" | head -n 1)"
  if [ -n "$addr" ] && "$VENV/bin/python" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/health', timeout=2)" "$addr" 2>/dev/null; then
    URL="$addr"
    break
  fi
  sleep 0.1
done
[ -n "$URL" ] || { echo "annotation.sh: Label Studio did not answer in 180 s" >&2; exit 1; }

step "Label Studio: project from the config, import, annotate, export"
timeout 300 "$VENV/bin/python" "$CHECK" labelstudio --url "$URL" --token "$TOKEN" --data "$WORK/train.jsonl" \
  --tasks "$WORK/tasks.json" --config "$WORK/tasks.json.labelstudio.xml" \
  --export "$WORK/labelstudio-export.json" --expect "$WORK/labelstudio-expect.json"
(cd "$WORK" && "$VIGIL" datasets apply-labels --data train.jsonl --reviews labelstudio-export.json \
  --out train.labelstudio.jsonl)
"$VENV/bin/python" "$CHECK" verify --data "$WORK/train.jsonl" --new "$WORK/train.labelstudio.jsonl" \
  --reviews labelstudio-export.json --expect "$WORK/labelstudio-expect.json"

step "annotation.sh: Label Studio and Argilla round trips passed"
