#!/usr/bin/env bash
# CI for the cluster paths (issue 17), called at the end of .ci/run:
#  1. a real one-node Slurm (Debian's slurm-wlm + munge, scripts/slurm-local.sh): the
#     sbatch script of `vigil render slurm` trains configs/tiny.yaml and exports, and a
#     second job preempted with `scancel --signal=TERM --full` requeues itself, resumes
#     and exports the same model (tests/tests/slurm.rs, ignored in the plain suite);
#  2. every rendered Kubernetes manifest (CronJob, TrainJob + TrainingRuntime,
#     PyTorchJob; with and without GPUs) validated offline against the strict schemas
#     of Kubernetes 1.32 up to the newest kubernetes-validate knows, the Kubeflow objects
#     against the models of kubeflow-trainer-api / kubeflow-training
#     (scripts/ci/check_k8s.py); the checker must reject the CronJob form that 1.32-1.34
#     refuse;
#  3. the Dockerfile's runtime stage: a debootstrap Debian rootfs plus the host-built
#     binary trains configs/tiny.yaml in a chroot (the builder stage is not built here).
# Needs root (apt, the Slurm daemons). Uses $CARGO_TARGET_DIR (the suite's debug build)
# and the virtualenv $VENV; installs its own pins once (marker files).
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR to the target dir of the suite}"
VENV="${VIGIL_CI_VENV:-$HOME/.cache/vigil-ci/venv}"
VIGIL="$CARGO_TARGET_DIR/debug/vigil"
started=$SECONDS

say() { printf -- '--- %s\n' "$*"; }

# --- packages ---------------------------------------------------------------------
if ! command -v sbatch >/dev/null 2>&1 || ! [ -x /usr/sbin/slurmctld ] || ! [ -x /usr/sbin/munged ]; then
  say "apt: slurm-wlm munge"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm munge
fi
K8S_PINS="kubernetes-validate==1.37.0 kubeflow-trainer-api==2.3.0 kubeflow-training==1.9.4"
if [ "$(cat "$VENV/.vigil-k8s-check" 2>/dev/null)" != "$K8S_PINS" ]; then
  say "pip: $K8S_PINS"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  # shellcheck disable=SC2086  # the pins are separate words
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $K8S_PINS
  echo "$K8S_PINS" > "$VENV/.vigil-k8s-check"
fi

# --- Slurm ------------------------------------------------------------------------
say "Slurm: start slurmctld + slurmd (scripts/slurm-local.sh)"
scripts/slurm-local.sh start
trap 'scripts/slurm-local.sh stop' EXIT
# The test binary of tests/tests/slurm.rs from the suite's build (the same command, so
# nothing rebuilds with other features).
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
SLURM_TEST=$(cargo test --workspace --no-run --message-format=json 2>/dev/null | python3 -c "$find_exe" slurm)
[ -n "$SLURM_TEST" ] || { echo "the slurm test binary was not found" >&2; exit 1; }
say "Slurm: sbatch, then scancel --signal=TERM --full → 75 → requeue → resume"
t0=$SECONDS
CI=1 "$SLURM_TEST" --include-ignored --nocapture --test-threads 1
say "Slurm tests: $((SECONDS - t0)) s"
scripts/slurm-local.sh stop
trap - EXIT

# --- Kubernetes manifests -----------------------------------------------------------
say "Kubernetes: render and validate"
OUT="$CARGO_TARGET_DIR/k8s-manifests"
rm -rf "$OUT" && mkdir -p "$OUT"
IMG=registry.example/vigil:1.2
"$VIGIL" render k8s-cronjob configs/tiny.yaml --schedule "0 3 * * *" --image "$IMG" >"$OUT/cronjob.yaml"
"$VIGIL" render k8s-cronjob configs/tiny.yaml --schedule @daily --image "$IMG" --gpus-per-node 2 >"$OUT/cronjob-gpu.yaml"
"$VIGIL" render k8s-trainjob configs/tiny.yaml --image "$IMG" --nnodes 2 >"$OUT/trainjob.yaml"
"$VIGIL" render k8s-trainjob configs/tiny.yaml --image "$IMG" --nnodes 2 --gpus-per-node 4 >"$OUT/trainjob-gpu.yaml"
"$VIGIL" render k8s-pytorchjob configs/tiny.yaml --image "$IMG" >"$OUT/pytorchjob.yaml"
"$VIGIL" render k8s-pytorchjob configs/tiny.yaml --image "$IMG" --nnodes 3 --gpus-per-node 4 >"$OUT/pytorchjob-gpu.yaml"
"$VENV/bin/python" scripts/ci/check_k8s.py "$OUT"/*.yaml
# The checker must catch the bug it exists for: onPodConditions without `status`.
"$VENV/bin/python" - "$OUT/cronjob.yaml" "$OUT/bad-cronjob.yaml.bad" <<'PY'
import sys, yaml
docs = list(yaml.safe_load_all(open(sys.argv[1])))
del docs[1]["spec"]["jobTemplate"]["spec"]["podFailurePolicy"]["rules"][1]["onPodConditions"][0]["status"]
yaml.safe_dump_all(docs, open(sys.argv[2], "w"))
PY
"$VENV/bin/python" scripts/ci/check_k8s.py --expect-fail "$OUT/bad-cronjob.yaml.bad" >/dev/null

# --- Container runtime stage -------------------------------------------------------
# No base image can be pulled here and Debian's rustc is too old for the Dockerfile's
# builder stage, so this tests the runtime stage only: a debootstrap Debian bookworm
# rootfs (the distribution of debian:bookworm-slim, cached once per machine) with what
# the Dockerfile copies in (the binary — here the suite's host-built one — configs/,
# datasets/sample) trains configs/tiny.yaml with 2 workers in a chroot, /dev/shm a tmpfs.
say "Container runtime stage: debootstrap rootfs + host binary, tiny in a chroot"
t0=$SECONDS
ROOTFS="${VIGIL_CI_ROOTFS:-$HOME/.cache/vigil-ci/rootfs-bookworm}"
if [ ! -e "$ROOTFS/.vigil-rootfs-done" ]; then
  if ! command -v debootstrap >/dev/null 2>&1; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap
  fi
  rm -rf "$ROOTFS"
  debootstrap --variant=minbase bookworm "$ROOTFS" http://deb.debian.org/debian >/dev/null
  touch "$ROOTFS/.vigil-rootfs-done"
fi
install -D -m 0755 "$VIGIL" "$ROOTFS/usr/local/bin/vigil"
rm -rf "$ROOTFS/opt/vigil" "$ROOTFS/tmp/vigil-run"
mkdir -p "$ROOTFS/opt/vigil/datasets"
cp -r configs "$ROOTFS/opt/vigil/configs"
cp -r datasets/sample "$ROOTFS/opt/vigil/datasets/sample"
unmount_rootfs() {
  for m in dev/shm dev proc; do
    mountpoint -q "$ROOTFS/$m" && umount "$ROOTFS/$m"
  done
  return 0
}
trap unmount_rootfs EXIT
mount -t proc proc "$ROOTFS/proc"
mount --bind /dev "$ROOTFS/dev"
mount -t tmpfs -o size=1g tmpfs "$ROOTFS/dev/shm"
chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root \
  VIGIL_OUTPUT=/tmp/vigil-run VIGIL_EXPORT=/tmp/vigil-run/export \
  /bin/sh -c 'cd /opt/vigil && vigil launch configs/tiny.yaml --set logging.console=rank0' >/dev/null
unmount_rootfs
trap - EXIT
test -s "$ROOTFS/tmp/vigil-run/export/tiny/1/model.safetensors"
say "container runtime stage: trained and exported in $((SECONDS - t0)) s"

say "scripts/ci/cluster.sh: $((SECONDS - started)) s"
