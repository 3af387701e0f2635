#!/usr/bin/env bash
# BioImage Model Zoo validation: a virtual environment .venv-bioimageio (gitignored) with bioimageio.core and the
# pydantic it needs, pinned, from PyPI (pydantic 2.11: with pydantic-core >= 2.35 spec 0.5.12.0 fails to serialise
# file descriptions, "index_key is expected to be an integer"), over Debian's python3-torch (LibTorch 1.13, CPU, the same build as
# libtorch-dev; PyPI's torch wheels bring several GB of CUDA libraries). tests/bioimageio/check_export.sh runs its
# `bioimageio test` on the packages that `cellcount export --format bioimageio` writes. Idempotent: when nothing
# changed since the last run it only checks and returns (about 5 s). Run by scripts/setup.sh; safe to run alone.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib-apt.sh
apt_install_missing "cellcount setup-bioimageio" python3-venv python3-torch

# Debian's interpreter: python3-torch is in its dist-packages, which the venv sees (--system-site-packages).
PY=/usr/bin/python3
SPECS=("bioimageio.core==0.11.0" "bioimageio.spec==0.5.12.0" "pydantic==2.11.7" "numpy>=1.24,<2")
VENV=${CELLCOUNT_BIOIMAGEIO_VENV:-.venv-bioimageio}
want=$({ printf '%s\n' "${SPECS[@]}"; "$PY" -c 'import sys; print(sys.version)'; dpkg-query -W python3-torch; } | sha256sum | cut -d' ' -f1)
stamp_file=$VENV/.cellcount-setup-stamp
check() { "$VENV/bin/python" -c 'import torch, bioimageio.core; assert torch.__version__.startswith("1.13"), torch.__version__' 2>/dev/null; }
if [ -x "$VENV/bin/bioimageio" ] && [ "$(cat "$stamp_file" 2>/dev/null)" = "$want" ] && check; then
  echo "cellcount setup-bioimageio: $VENV up to date"
  exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "cellcount setup-bioimageio: creating $VENV with $("$PY" --version) (system site packages: python3-torch)"
  "$PY" -m venv --system-site-packages "$VENV"
fi
echo "cellcount setup-bioimageio: installing into $VENV: ${SPECS[*]}"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "${SPECS[@]}"
check || { echo "cellcount setup-bioimageio: torch 1.13 or bioimageio.core does not import in $VENV" >&2; exit 1; }
echo "$want" > "$stamp_file"
echo "cellcount setup-bioimageio: $VENV ready"
