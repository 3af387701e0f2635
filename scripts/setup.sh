#!/usr/bin/env bash
# Installs every Debian package cellcount needs (idempotent: does nothing when all are present), then
# configures and builds into build/. Safe to run again; run as root or with sudo available.
#   CELLCOUNT_BUILD_DIR   build folder (default: build)
#   CELLCOUNT_CMAKE_ARGS  extra CMake arguments (e.g. -DCMAKE_PREFIX_PATH=/path/to/libtorch for a CUDA build)
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  # compilers and build tools (ITK 5.2 needs g++, not clang)
  g++ cmake ninja-build pkg-config
  # LibTorch (Debian's CPU build, with oneDNN and OpenMP) and its BLAS: the OpenMP OpenBLAS, because the
  # pthread build fights OpenMP for the cores (2x slower training)
  libtorch-dev libopenblas0-openmp
  # JSON, tests, image I/O
  nlohmann-json3-dev libgtest-dev googletest libopencv-dev libinsighttoolkit5-dev
  # Java bindings / Fiji plugin, napari plugin, headless GUI tests
  openjdk-17-jdk-headless maven python3-venv python3-dev xvfb xauth
)

. scripts/lib-apt.sh
apt_install_missing "cellcount setup" "${PACKAGES[@]}"

# The OpenMP OpenBLAS must be the one libblas.so.3 resolves to.
blas=/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3
if [ -e "$blas" ] && command -v update-alternatives >/dev/null; then
  current=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 || true)
  if [ "$current" != "$(readlink -f "$blas")" ]; then
    as_root update-alternatives --set libblas.so.3-x86_64-linux-gnu "$blas"
  fi
fi

BUILD_DIR=${CELLCOUNT_BUILD_DIR:-build}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  # shellcheck disable=SC2086
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=g++ -DCMAKE_C_COMPILER=gcc \
    ${CELLCOUNT_CMAKE_ARGS:-}
fi
# 2 jobs: each LibTorch translation unit takes ~1 GB and ~12 s.
cmake --build "$BUILD_DIR" -j "${CELLCOUNT_JOBS:-2}"

# Front ends: each has its own set-up script (Python venv + napari plugin, Maven build of the Fiji plugin, the
# bioimage.io validation venv), run after the library is built because they load it.
for part in python java bioimageio; do
  if [ -f "scripts/setup-$part.sh" ]; then bash "scripts/setup-$part.sh"; fi
done
