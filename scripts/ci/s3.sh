#!/usr/bin/env bash
# CI for object storage (issue 18), called at the end of .ci/run: a real S3-compatible
# server process on loopback — moto's standalone server (PyPI, pinned), with IAM
# authentication on so that every request must carry a valid SigV4 signature of a
# key the server issued — and the ignored tests of tests/tests/s3_store.rs against it
# over HTTP (AWS_ALLOW_HTTP): a 2-worker tiny run with data, output_dir and export.dir
# on s3:// that is SIGKILLed and resumes from the bucket, concurrent exporters, a
# crashed publish, and wrong-credential / down / silent-server errors.
# Why moto and not a production store: Garage and RustFS are not packaged for Debian
# or PyPI (a cargo build of either is 20-40 min on 2 cores), and Debian's radosgw
# (Ceph 16) needs a running Ceph cluster (mon + osd) behind it. Before the tests, the
# server's own behaviour is checked: PUT with If-None-Match: * on an existing key is
# refused with 412, multipart uploads complete and abort, a wrong secret is refused.
# A second pass runs the same tests against Azurite (Azure Blob Storage's emulator,
# npm, pinned; Shared Key signatures checked) over az://. GCS (gs://) has no
# emulator here that speaks both the XML and JSON APIs object_store uses: untested.
# Uses $CARGO_TARGET_DIR (the suite's debug build) and the virtualenv $VENV; installs
# its pins once (marker files).
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR to the target dir of the suite}"
VENV="${VIGIL_CI_VENV:-$HOME/.cache/vigil-ci/venv}"
started=$SECONDS
say() { printf -- '--- %s\n' "$*"; }

MOTO_PINS="moto[server]==5.2.5"
if [ "$(cat "$VENV/.vigil-s3" 2>/dev/null)" != "$MOTO_PINS" ]; then
  say "pip: $MOTO_PINS"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$MOTO_PINS"
  echo "$MOTO_PINS" > "$VENV/.vigil-s3"
fi

PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ENDPOINT="http://127.0.0.1:$PORT"
LOG="$CARGO_TARGET_DIR/moto-s3.log"
say "moto_server on $ENDPOINT (IAM auth on; log $LOG)"
# The first 3 requests (create the user, its policy, its key) are the only ones
# allowed without a valid signature.
INITIAL_NO_AUTH_ACTION_COUNT=3 "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$LOG" 2>&1 &
MOTO_PID=$!
trap 'kill "$MOTO_PID" 2>/dev/null || true; wait "$MOTO_PID" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  if "$VENV/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('$ENDPOINT/moto-api/', timeout=1)" 2>/dev/null; then
    break
  fi
  sleep 0.2
done

say "credentials, bucket and the server's behaviour checks"
KEYS=$("$VENV/bin/python" - "$ENDPOINT" <<'PY'
import json, sys
import boto3, botocore
ep = sys.argv[1]
def client(svc, key, secret):
    return boto3.client(svc, endpoint_url=ep, aws_access_key_id=key,
                        aws_secret_access_key=secret, region_name="us-east-1")
iam = client("iam", "bootstrap", "bootstrap")
iam.create_user(UserName="vigil-ci")
iam.put_user_policy(UserName="vigil-ci", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
k = iam.create_access_key(UserName="vigil-ci")["AccessKey"]
s3 = client("s3", k["AccessKeyId"], k["SecretAccessKey"])
s3.create_bucket(Bucket="vigil-ci")
s3.put_object(Bucket="vigil-ci", Key="probe/once", Body=b"1", IfNoneMatch="*")
try:
    s3.put_object(Bucket="vigil-ci", Key="probe/once", Body=b"2", IfNoneMatch="*")
    sys.exit("the server overwrote an object despite If-None-Match: *")
except botocore.exceptions.ClientError as e:
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 412, e.response
m = s3.create_multipart_upload(Bucket="vigil-ci", Key="probe/mp")
parts = [s3.upload_part(Bucket="vigil-ci", Key="probe/mp", UploadId=m["UploadId"],
                        PartNumber=n, Body=body)["ETag"]
         for n, body in ((1, b"a" * (5 << 20)), (2, b"b"))]
s3.complete_multipart_upload(Bucket="vigil-ci", Key="probe/mp", UploadId=m["UploadId"],
    MultipartUpload={"Parts": [{"ETag": e, "PartNumber": i + 1} for i, e in enumerate(parts)]})
assert s3.head_object(Bucket="vigil-ci", Key="probe/mp")["ContentLength"] == (5 << 20) + 1
m = s3.create_multipart_upload(Bucket="vigil-ci", Key="probe/aborted")
s3.abort_multipart_upload(Bucket="vigil-ci", Key="probe/aborted", UploadId=m["UploadId"])
assert not s3.list_multipart_uploads(Bucket="vigil-ci").get("Uploads")
try:
    client("s3", k["AccessKeyId"], "wrong").list_objects_v2(Bucket="vigil-ci")
    sys.exit("the server accepted a wrong secret")
except botocore.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "SignatureDoesNotMatch", e.response
for key in ("probe/once", "probe/mp"):
    s3.delete_object(Bucket="vigil-ci", Key=key)
print(k["AccessKeyId"], k["SecretAccessKey"])
PY
)
read -r AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY <<<"$KEYS"
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
export AWS_ENDPOINT_URL="$ENDPOINT" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1
export VIGIL_TEST_S3_BUCKET=vigil-ci
# Its request log: the serve test counts the downloads a poll makes (none).
export VIGIL_TEST_S3_LOG="$LOG"

# The test binary of tests/tests/s3_store.rs from the suite's build (the same command,
# so nothing rebuilds with other features).
find_exe='
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[1] and m.get("executable"):
        print(m["executable"])
'
S3_TEST=$(cargo test --workspace --no-run --message-format=json 2>/dev/null | python3 -c "$find_exe" s3_store)
[ -n "$S3_TEST" ] || { echo "the s3_store test binary was not found" >&2; exit 1; }
say "tests/tests/s3_store.rs against it"
t0=$SECONDS
CI=1 "$S3_TEST" --include-ignored --test-threads 2
say "S3 tests: $((SECONDS - t0)) s"

# The same tests against Azure Blob Storage's emulator, Azurite (npm, pinned), which
# checks Shared Key signatures: the az:// client, conditional creates (If-None-Match
# on Put Blob), block-list multipart uploads and If-Match lease renewals.
AZURITE_PIN="azurite@3.35.0"
AZ_PIP="azure-storage-blob==12.26.0"
AZ_DIR="${VIGIL_CI_CACHE:-$HOME/.cache/vigil-ci}/azurite"
if [ "$(cat "$AZ_DIR/.vigil-pin" 2>/dev/null)" != "$AZURITE_PIN $AZ_PIP" ]; then
  say "npm: $AZURITE_PIN; pip: $AZ_PIP"
  command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm; }
  mkdir -p "$AZ_DIR"
  (cd "$AZ_DIR" && npm install --silent --no-audit --no-fund "$AZURITE_PIN")
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$AZ_PIP"
  echo "$AZURITE_PIN $AZ_PIP" > "$AZ_DIR/.vigil-pin"
fi
AZ_PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
AZ_DATA=$(mktemp -d)
AZ_LOG="$CARGO_TARGET_DIR/azurite.log"
say "azurite-blob on http://127.0.0.1:$AZ_PORT (log $AZ_LOG)"
"$AZ_DIR/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$AZ_PORT" \
  --location "$AZ_DATA" --skipApiVersionCheck --disableTelemetry >"$AZ_LOG" 2>&1 &
AZ_PID=$!
trap 'kill "$MOTO_PID" "$AZ_PID" 2>/dev/null || true; wait "$MOTO_PID" "$AZ_PID" 2>/dev/null || true; rm -rf "$AZ_DATA"' EXIT
export AZURITE_BLOB_STORAGE_URL="http://127.0.0.1:$AZ_PORT" AZURE_STORAGE_USE_EMULATOR=true
"$VENV/bin/python" - "$AZURITE_BLOB_STORAGE_URL" <<'PY'
import sys, time
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient
# Azurite's well-known development account (devstoreaccount1 and its public key).
conn = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
        f"BlobEndpoint={sys.argv[1]}/devstoreaccount1;")
for _ in range(100):
    try:
        svc = BlobServiceClient.from_connection_string(conn)
        svc.create_container("vigil-ci")
        break
    except ResourceExistsError:
        break
    except Exception:
        time.sleep(0.2)
else:
    sys.exit("Azurite did not start")
c = svc.get_container_client("vigil-ci")
c.upload_blob("probe/once", b"1")
try:
    c.upload_blob("probe/once", b"2", overwrite=False)
    sys.exit("Azurite overwrote a blob despite If-None-Match: *")
except ResourceExistsError:
    pass
c.delete_blob("probe/once")
PY
say "tests/tests/s3_store.rs against Azurite (az://)"
t0=$SECONDS
VIGIL_TEST_STORE_SCHEME=az VIGIL_TEST_S3_LOG= CI=1 "$S3_TEST" --include-ignored --test-threads 2
say "Azure tests: $((SECONDS - t0)) s; s3.sh: $((SECONDS - started)) s"
