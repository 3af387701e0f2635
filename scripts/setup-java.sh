#!/usr/bin/env bash
# Builds the Java side after the C++ library (scripts/setup.sh runs this):
#   - the JNI shim build/lib/libcellcount_jni.so (CMake target cellcount_jni),
#   - the bindings jar (bindings/java, installed into the local Maven repository ~/.m2),
#   - the Fiji plugin jar fiji-plugin/target/Cell_Counting-<version>.jar (bindings shaded in).
# Maven fetches its plugins, JUnit and net.imagej:ij from Maven Central the first time; after that it
# runs offline. Needs a JDK (11+) and Maven: scripts/setup.sh installs openjdk-17-jdk-headless and maven.
#   CELLCOUNT_BUILD_DIR   build folder (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${CELLCOUNT_BUILD_DIR:-build}

for tool in javac mvn cmake flock; do
  if ! command -v "$tool" >/dev/null; then
    echo "setup-java: '$tool' not found; run bash scripts/setup.sh (installs the JDK and Maven)" >&2
    exit 1
  fi
done
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  echo "setup-java: $BUILD_DIR is not configured; run bash scripts/setup.sh first" >&2
  exit 1
fi

# A build folder configured before bindings/java existed has no cellcount_jni target yet: configure again.
# Other builds may share the folder: every CMake call holds the build lock.
if ! grep -q "cellcount_jni" "$BUILD_DIR/build.ninja"; then
  flock /tmp/cellcount-build.lock cmake -S . -B "$BUILD_DIR" >/dev/null
fi
flock /tmp/cellcount-build.lock cmake --build "$BUILD_DIR" -j "${CELLCOUNT_JOBS:-2}" --target cellcount_jni

# Maven offline first, online when something is missing (mvn_in).
. "scripts/lib-maven.sh"
mvn_in bindings/java install -DskipTests
mvn_in fiji-plugin package -DskipTests
echo "setup-java: $BUILD_DIR/lib/libcellcount_jni.so, fiji-plugin/target/$(cd fiji-plugin/target && ls Cell_Counting-*.jar | grep -v original | head -1)"
