#!/usr/bin/env bash
# One prepared check of Vigil's CUDA path on a machine with a GPU (and maybe no network).
#
#   VIGIL_BIN=/path/to/vigil VIGIL_PRETRAINED=/path/to/pretrained bash scripts/gpu-check.sh
#
# VIGIL_BIN    a vigil built elsewhere with `cargo build --release -p vigil-launcher
#              --features cuda,nccl` (this script never builds or downloads anything).
# VIGIL_PRETRAINED  the pretrained cache (all-minilm-l6-v2/ as scripts/fetch-pretrained.sh
#              lays it out); without it the MiniLM half is skipped and reported so.
# VIGIL_GPU_CHECK_OUT  the results file (default ./gpu-check-results.txt); every figure lands
#              there, one `key value` line each, and the script prints it at the end.
# VIGIL_GPU_CHECK_STEPS  optimizer steps per run (default 30).
# VIGIL_GPU_CHECK_DEVICE  cuda (default) or cpu: cpu runs the "GPU" half on the CPU too
#              (f32 and bf16: the CPU runs the same mixed-precision path), a dry run of the
#              script itself that needs no GPU; it is how the script is tested where no
#              GPU exists.
#
# What it does, in well under 10 minutes on one GPU:
# 1. reports the binary's features (`vigil --version`), the GPUs (nvidia-smi) and the CUDA
#    and NCCL libraries the dynamic loader finds;
# 2. for configs/tiny.yaml and a MiniLM text-only config: initialises the weights on the
#    CPU (one CPU step, then `model.init_from` that checkpoint), trains the same steps on
#    the CPU and on one GPU in f32 and in bf16, without dropout, one worker each;
# 3. compares each GPU run's per-step loss over the first 10 steps with the CPU run in
#    the same precision (f32 within 1e-3 relative, bf16 within 2e-2) and records
#    samples/s. bf16 is checked against the CPU's bf16, not its f32: rounding the
#    weights to bf16 alone moves MiniLM's first loss by 6% (measured on the CPU), the
#    same on every device, so only a bf16 reference tests the GPU's arithmetic; the
#    CPU's own bf16-vs-f32 difference is recorded beside it;
# 4. runs tiny.yaml under `vigil launch` with `launch.backend: nccl` on min(2, GPUs) ranks
#    (NCCL with one rank where only one GPU exists).
# Exit status: 0 when every comparison passed, 1 otherwise, 2 for a bad setup.
set -euo pipefail
cd "$(dirname "$0")/.."

VIGIL_BIN="${VIGIL_BIN:?set VIGIL_BIN to a vigil built with --features cuda,nccl}"
DEVICE="${VIGIL_GPU_CHECK_DEVICE:-cuda}"
STEPS="${VIGIL_GPU_CHECK_STEPS:-30}"
OUT="${VIGIL_GPU_CHECK_OUT:-$PWD/gpu-check-results.txt}"
COMPARE_STEPS=10
WORK="$(mktemp -d "${TMPDIR:-/tmp}/vigil-gpu-check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

case "$DEVICE" in cuda | cpu) ;; *)
  echo "VIGIL_GPU_CHECK_DEVICE must be cuda or cpu, not $DEVICE" >&2
  exit 2
  ;;
esac
[ -x "$VIGIL_BIN" ] || {
  echo "VIGIL_BIN=$VIGIL_BIN is not an executable" >&2
  exit 2
}
command -v python3 >/dev/null || {
  echo "python3 is needed to compare the losses" >&2
  exit 2
}

: >"$OUT"
record() { echo "$*" | tee -a "$OUT"; }
START=$SECONDS
FAILED=0

# --- 1. what this machine has -------------------------------------------------------------
version="$("$VIGIL_BIN" --version)"
record "binary $version"
if [ "$DEVICE" = cuda ] && ! grep -q "cuda" <<<"$version"; then
  echo "$VIGIL_BIN has no cuda feature ($version): rebuild with --features cuda,nccl" >&2
  exit 2
fi
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader |
    sed 's/^/gpu /' | tee -a "$OUT"
  GPUS="$(nvidia-smi -L | wc -l)"
else
  record "gpu none (no nvidia-smi)"
  GPUS=0
fi
for lib in libcuda.so libcudart.so libnccl.so libnvrtc.so; do
  found="$(ldconfig -p 2>/dev/null | awk -v l="$lib" '$1 ~ "^"l {print $NF; exit}')"
  record "library $lib ${found:-not-found}"
done
if [ "$DEVICE" = cuda ] && [ "$GPUS" -eq 0 ]; then
  echo "no GPU found (run with VIGIL_GPU_CHECK_DEVICE=cpu for a dry run)" >&2
  exit 2
fi

# --- 2. runs --------------------------------------------------------------------------------
# A run of one worker: NAME CONFIG DEVICE PRECISION [--set ...]; its JSON progress lines go
# to $WORK/NAME.jsonl.
run() {
  local name=$1 config=$2 device=$3 precision=$4
  shift 4
  local t0=$SECONDS
  if VIGIL_OUTPUT="$WORK/$name" VIGIL_EXPORT="$WORK/$name/export" \
    WORLD_SIZE=1 "$VIGIL_BIN" worker "$config" \
    --set "launch.device=$device" --set "train.precision=$precision" \
    --set "run.output_dir=$WORK/$name" --set "export.dir=$WORK/$name/export" \
    --set train.resume=never --set logging.format=json --set logging.interval=1 \
    --set train.eval_every=null --set checkpoint.every_steps=null \
    --set optim.warmup_steps=0 "$@" >"$WORK/$name.jsonl" 2>"$WORK/$name.err"; then
    record "run $name ok $((SECONDS - t0))s"
  else
    record "run $name FAILED (exit $?): $(tail -n 3 "$WORK/$name.err" | tr '\n' ' ')"
    FAILED=1
    return 1
  fi
}

# Compares REF and RUN's first $COMPARE_STEPS losses within TOL (relative); records the
# largest difference and RUN's mean samples/s.
compare() {
  local ref=$1 run=$2 tol=$3
  if python3 - "$WORK/$ref.jsonl" "$WORK/$run.jsonl" "$tol" "$COMPARE_STEPS" "$run" \
    >>"$OUT" <<'EOF'; then
import json, sys
ref, run, tol, n, name = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def losses(path):
    out = {}
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            if r.get("event") == "train":
                out[r["step"]] = r
    return out
a, b = losses(ref), losses(run)
steps = sorted(set(a) & set(b))[:n]
if not steps:
    print(f"compare {name} FAILED: no common steps")
    sys.exit(1)
worst = max(abs(a[s]["loss"] - b[s]["loss"]) / max(abs(a[s]["loss"]), 1e-12) for s in steps)
sps = [b[s]["samples_per_sec"] for s in sorted(b)[1:]] or [0.0]
ok = worst <= tol
print(f"compare {name} {'ok' if ok else 'FAILED'} steps {steps[0]}-{steps[-1]} "
      f"max_rel_loss_diff {worst:.3e} tolerance {tol:g}")
print(f"throughput {name} samples_per_sec {sum(sps) / len(sps):.1f}")
sys.exit(0 if ok else 1)
EOF
    tail -n 2 "$OUT"
  else
    tail -n 2 "$OUT"
    FAILED=1
  fi
}

# One config: CPU initialisation, the CPU references (f32, bf16), then f32 and bf16 on
# $DEVICE.
check_config() {
  local tag=$1 config=$2
  shift 2
  run "$tag-init" "$config" cpu f32 --set train.max_steps=1 "$@" || return 0
  local init="$WORK/$tag-init/checkpoints/step-1"
  [ -d "$init" ] || {
    record "run $tag-init FAILED: no checkpoint at $init"
    FAILED=1
    return 0
  }
  local common=(--set "train.max_steps=$STEPS" --set "model.init_from=$init" "$@")
  run "$tag-cpu" "$config" cpu f32 "${common[@]}" || return 0
  if run "$tag-$DEVICE-f32" "$config" "$DEVICE" f32 "${common[@]}"; then
    compare "$tag-cpu" "$tag-$DEVICE-f32" 1e-3
  fi
  run "$tag-cpu-bf16-ref" "$config" cpu bf16 "${common[@]}" || return 0
  # For the record (a tolerance of 1 always passes): what bf16 itself costs.
  compare "$tag-cpu" "$tag-cpu-bf16-ref" 1 || true
  if run "$tag-$DEVICE-bf16" "$config" "$DEVICE" bf16 "${common[@]}"; then
    compare "$tag-cpu-bf16-ref" "$tag-$DEVICE-bf16" 2e-2
  fi
}

NO_DROPOUT=(--set model.head.dropout=0)
check_config tiny configs/tiny.yaml "${NO_DROPOUT[@]}" --set model.text.dropout=0

MINILM="${VIGIL_PRETRAINED:-}/all-minilm-l6-v2"
if [ -n "${VIGIL_PRETRAINED:-}" ] && [ -f "$MINILM/model.safetensors" ]; then
  check_config minilm configs/text-only.yaml "${NO_DROPOUT[@]}" \
    --set model.text.dropout=0 --set "model.text.path=$MINILM" --set train.epochs=null
else
  record "run minilm skipped (no all-minilm-l6-v2 under VIGIL_PRETRAINED=${VIGIL_PRETRAINED:-unset})"
fi

# --- 3. NCCL through the launcher -----------------------------------------------------------
if [ "$DEVICE" = cuda ]; then
  ranks=$((GPUS >= 2 ? 2 : 1))
  t0=$SECONDS
  if VIGIL_OUTPUT="$WORK/nccl" VIGIL_EXPORT="$WORK/nccl/export" "$VIGIL_BIN" launch \
    configs/tiny.yaml --nproc-per-node "$ranks" --set launch.device=cuda \
    --set launch.backend=nccl --set train.max_steps=10 --set train.eval_every=10 \
    --set checkpoint.every_steps=10 --set logging.console=rank0 \
    >"$WORK/nccl.log" 2>&1; then
    record "nccl launch ok ranks $ranks $((SECONDS - t0))s"
  else
    record "nccl launch FAILED ranks $ranks: $(tail -n 3 "$WORK/nccl.log" | tr '\n' ' ')"
    FAILED=1
  fi
else
  record "nccl launch skipped (device cpu)"
fi

record "total_seconds $((SECONDS - START))"
record "result $([ "$FAILED" = 0 ] && echo ok || echo FAILED)"
echo "figures in $OUT"
exit "$FAILED"
