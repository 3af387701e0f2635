#!/usr/bin/env bash
# Python binding and napari plugin tests (pytest; napari headless under Xvfb). Sets up .venv if needed.
# The library must be built (scripts/setup.sh does both). Exit status is non-zero if any test failed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-python.sh
export QT_API=pyqt6          # see scripts/setup-python.sh: Qt 6 beside Debian's LibTorch
export PYTHONDONTWRITEBYTECODE=1
PY="$PWD/.venv/bin/python"
run() { xvfb-run -a -s "-screen 0 1280x1024x24" "$PY" -m pytest -q -p no:cacheprovider "$@"; }
status=0
echo "== bindings/python"
(cd bindings/python && run tests) || status=1
echo "== napari-plugin"
(cd napari-plugin && run tests) || status=1
exit $status
