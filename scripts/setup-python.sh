#!/usr/bin/env bash
# Python binding and napari plugin: a virtual environment in .venv (gitignored) with the `cellcount` binding
# (bindings/python) and the napari plugin (napari-plugin) installed editable from this checkout, napari with a
# Qt 6 binding, and the test tools, all from PyPI. Idempotent: when nothing changed since the last run it only
# checks and returns. Run by scripts/setup.sh after the library is built; safe to run alone.
#   CELLCOUNT_PYTHON   interpreter for the venv (default: python3, Python >= 3.10)
#
# Why Qt 6: Debian's LibTorch links OpenCV's highgui and through it the system's Qt 5, which cannot share a
# process with the Qt 5 that the PyQt5 wheels bundle; PyQt6 brings Qt 6 and coexists with it.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages for napari's Qt 6 under Xvfb (usually present; listed for a bare machine).
PACKAGES=(python3-venv xvfb xauth libgl1 libegl1 libglx-mesa0 libgl1-mesa-dri libxkbcommon-x11-0 libxcb-cursor0
          libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0
          libxcb-xinerama0 libxcb-xfixes0 libxcb-xkb1 libfontconfig1 libdbus-1-3)
. scripts/lib-apt.sh
apt_install_missing "cellcount setup-python" "${PACKAGES[@]}"

# Pinned ranges; the two local packages are installed editable in the same pip call, so the plugin's
# dependency "libcellcount" resolves to bindings/python and never to an index.
SPECS=("numpy>=1.24,<3" "napari>=0.5,<0.10" "PyQt6>=6.5,<7" "imageio>=2.20,<3" "tifffile>=2022.5"
       "pytest>=8,<10" "pytest-qt>=4.4,<5"
       "dask[distributed]==2026.8.0" "pyarrow>=14,<27"    # cellcount.dask (the binding's `dask` extra); Parquet tables
       "zarr>=3.1,<4")                                    # a zarr array counted in blocks (test_dask)
LOCAL=(-e bindings/python -e napari-plugin)

PY=${CELLCOUNT_PYTHON:-python3}
VENV=.venv
stamp_of() {
  { printf '%s\n' "${SPECS[@]}"; cat bindings/python/pyproject.toml bindings/python/setup.py napari-plugin/pyproject.toml;
    "$PY" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1
}
want=$(stamp_of)
stamp_file=$VENV/.cellcount-setup-stamp
if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp_file" 2>/dev/null)" = "$want" ] &&
   QT_API=pyqt6 "$VENV/bin/python" -c 'import cellcount, napari_cellcount, napari, PyQt6, pytestqt, distributed, pyarrow' 2>/dev/null; then
  echo "cellcount setup-python: $VENV up to date"
  exit 0
fi

"$PY" -c 'import sys; assert sys.version_info >= (3, 10), "Python >= 3.10 needed, have " + sys.version' 
if [ ! -x "$VENV/bin/python" ]; then
  echo "cellcount setup-python: creating $VENV with $("$PY" --version)"
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade "pip>=23"
# A Qt 5 binding in the venv would be picked first by qtpy and crash napari next to libcellcount.
for qt5 in PyQt5 PySide2; do
  if "$VENV/bin/python" -m pip show -q "$qt5" >/dev/null 2>&1; then
    echo "cellcount setup-python: removing $qt5 from $VENV (see the note at the top of this script)"
    "$VENV/bin/python" -m pip uninstall -q -y "$qt5"
  fi
done
echo "cellcount setup-python: installing into $VENV: ${SPECS[*]} ${LOCAL[*]}"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "${SPECS[@]}" "${LOCAL[@]}"
QT_API=pyqt6 "$VENV/bin/python" -c 'import cellcount, napari_cellcount, napari, PyQt6, pytestqt, distributed, pyarrow'
echo "$want" > "$stamp_file"
echo "cellcount setup-python: $VENV ready"
