#!/usr/bin/env bash
# `cellcount export --format bioimageio` of the shipped dcl-vgg and exemplar-cells models (256 x 256 test inputs),
# each package validated by `bioimageio test` (bioimageio.core in .venv-bioimageio, made by
# scripts/setup-bioimageio.sh, which scripts/setup.sh runs): rdf.yaml against spec 0.5, the files and their sha256,
# and the TorchScript weights run in PyTorch reproducing the test output from the test input after the rdf's
# preprocessing. Then the refusals: an existing package without --overwrite, a method without an export.
# Usage: check_export.sh CLI SCRATCH_DIR
set -euo pipefail
CLI=$1
SCRATCH=$2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VENV=${CELLCOUNT_BIOIMAGEIO_VENV:-$ROOT/.venv-bioimageio}
if [ ! -x "$VENV/bin/bioimageio" ]; then
  echo "check_export: $VENV/bin/bioimageio missing: run bash scripts/setup-bioimageio.sh (scripts/setup.sh runs it)" >&2
  exit 1
fi
rm -rf "$SCRATCH"
mkdir -p "$SCRATCH"
export BIOIMAGEIO_CACHE_PATH=$SCRATCH/cache
failed=0
for model in dcl-vgg exemplar-cells; do
  echo "== export $model"
  "$CLI" export --format bioimageio --model "$ROOT/models/$model" --out "$SCRATCH/$model.zip" --size 256 --threads 1 2>&1 ||
    { echo "check_export: export of $model failed"; failed=1; continue; }
  echo "== bioimageio test $model"
  if ! (cd "$SCRATCH" && "$VENV/bin/bioimageio" test "$SCRATCH/$model.zip" --summary "$SCRATCH/$model-summary.md" \
          --summary display > "$SCRATCH/$model-test.log" 2>&1); then
    cat "$SCRATCH/$model-test.log"
    echo "check_export: bioimageio test of $model FAILED"
    failed=1
  else
    grep -E "✔️|❌|⚠|passed|failed" "$SCRATCH/$model-test.log" | head -40 || true
    echo "check_export: bioimageio test of $model passed"
  fi
done
# Refusals: an existing file without --overwrite (ERR_IO, the file untouched), a method without a bioimageio export.
before=$(sha256sum "$SCRATCH/dcl-vgg.zip" | cut -d' ' -f1)
if out=$("$CLI" export --model "$ROOT/models/dcl-vgg" --out "$SCRATCH/dcl-vgg.zip" 2>&1); then
  echo "check_export: export over an existing file succeeded"; failed=1
elif ! grep -q "CELLCOUNT_ERR_IO.*exists" <<<"$out"; then
  echo "check_export: unexpected refusal: $out"; failed=1
fi
[ "$before" = "$(sha256sum "$SCRATCH/dcl-vgg.zip" | cut -d' ' -f1)" ] || { echo "check_export: the existing file changed"; failed=1; }
if out=$("$CLI" export --model "$ROOT/models/llp-wbc" --out "$SCRATCH/llp.zip" 2>&1); then
  echo "check_export: llp export succeeded"; failed=1
elif ! grep -q "CELLCOUNT_ERR_UNSUPPORTED.*no bioimageio export" <<<"$out"; then
  echo "check_export: unexpected refusal for llp: $out"; failed=1
fi
[ ! -e "$SCRATCH/llp.zip" ] || { echo "check_export: a refused export left a file"; failed=1; }
exit $failed
