#!/usr/bin/env bash
# Installs the Cell Counting plugin into a Fiji.app (or an ImageJ folder, or an ImageJ plugins folder):
# builds the JNI shim and the jars (scripts/setup-java.sh) unless --no-build, then copies
#   Cell_Counting-<version>.jar              -> <plugins>/
#   libcellcount_jni.so, libcellcount.so.<ABI>, -> Fiji.app/lib/<platform>/ for Fiji, else beside the jar
#   libcellcount_omp.so (OpenMP wait policy)
#   models/<name>/ (shipped models)          -> <plugins>/cellcount-models/<name>/
# LibTorch itself is not copied: it must be installed on the machine (Debian: libtorch-dev, as
# scripts/setup.sh does). Older Cell_Counting-*.jar files in the plugins folder are replaced; nothing else
# there is touched.
#
# usage: bash fiji-plugin/install.sh [--no-build] /path/to/Fiji.app | /path/to/ImageJ | /path/to/plugins
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=1
if [ "${1:-}" = "--no-build" ]; then build=0; shift; fi
if [ $# -ne 1 ]; then
  echo "usage: bash fiji-plugin/install.sh [--no-build] /path/to/Fiji.app | /path/to/ImageJ | /path/to/plugins" >&2
  exit 2
fi
target=$1
if [ ! -d "$target" ]; then
  echo "install: '$target' is not a folder (give a Fiji.app, an ImageJ folder or a plugins folder)" >&2
  exit 2
fi
target=$(cd "$target" && pwd)
BUILD_DIR=${CELLCOUNT_BUILD_DIR:-$repo/build}
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR=$repo/$BUILD_DIR ;; esac

if [ $build = 1 ]; then bash "$repo/scripts/setup-java.sh"; fi
version=$(sed -n "s:.*<version>\(.*\)</version>.*:\1:p" "$repo/fiji-plugin/pom.xml" | head -1)
jar=$repo/fiji-plugin/target/Cell_Counting-$version.jar
jni=$BUILD_DIR/lib/libcellcount_jni.so
# the library's file is its SONAME, libcellcount.so.<ABI> (the ABI number's one place is the public header)
abi=$(sed -n 's/^#define CELLCOUNT_ABI_VERSION \([0-9][0-9]*\)$/\1/p' "$repo/libcellcount/include/cellcount/cellcount.h")
soname=libcellcount.so.$abi
lib=$BUILD_DIR/lib/$soname
omp=$BUILD_DIR/lib/libcellcount_omp.so
for f in "$jar" "$jni" "$lib" "$omp"; do
  if [ ! -e "$f" ]; then echo "install: $f is missing; run bash scripts/setup-java.sh" >&2; exit 1; fi
done

# Layout: Fiji.app has jars/ (native libraries go to lib/<platform>); an ImageJ folder has plugins/;
# anything else is taken as the plugins folder itself.
platform=linux64
case "$(uname -s)-$(uname -m)" in
  Linux-aarch64) platform=linux-arm64 ;;
  Darwin-*) platform=macosx ;;
esac
if [ -d "$target/jars" ]; then
  plugins=$target/plugins
  natives=$target/lib/$platform
  kind="Fiji.app"
elif [ -d "$target/plugins" ]; then
  plugins=$target/plugins
  natives=$plugins
  kind="ImageJ folder"
else
  plugins=$target
  natives=$plugins
  kind="plugins folder"
fi
mkdir -p "$plugins" "$natives" "$plugins/cellcount-models"

for old in "$plugins"/Cell_Counting-*.jar; do
  if [ -e "$old" ] && [ "$(basename "$old")" != "$(basename "$jar")" ]; then rm -f -- "$old"; fi
done
cp -f "$jar" "$plugins/"
# libcellcount_jni finds libcellcount.so.<ABI> beside it ($ORIGIN run path); copy the file, not the link.
cp -fL "$jni" "$natives/libcellcount_jni.so"
cp -fL "$lib" "$natives/$soname"
cp -fL "$omp" "$natives/libcellcount_omp.so"  # loaded first: passive OpenMP waiting unless the user chose
# Menu entries of methods this library lacks say so in the menu itself (issue 21 item 8): the installed jar's
# plugins.config is rewritten from the methods the installed native library reports.
installed=$plugins/$(basename "$jar")
info=$(java -cp "$installed" org.cellcount.CellCount 2>/dev/null || true)
have=$(printf '%s\n' "$info" | grep -o '"id": *"[a-z0-9_]*"' | sed 's/.*"\([a-z0-9_]*\)"$/\1/' | tr '\n' ' ')
missing=""
if [ -n "$have" ] && command -v jar >/dev/null; then
  tmp=$(mktemp -d)
  (cd "$tmp" && jar xf "$installed" plugins.config)
  for id in $(sed -n 's/.*CountCells("\([a-z0-9_]*\)").*/\1/p' "$tmp/plugins.config"); do
    case " $have " in *" $id "*) ;; *)
      missing="$missing $id"
      sed -i "s/^\(Plugins>Cell Counting, \"[^\"]*\)\(\", org.cellcount.fiji.CountCells(\"$id\")\)/\1 (not yet available)\2/" \
        "$tmp/plugins.config" ;;
    esac
  done
  if [ -n "$missing" ]; then (cd "$tmp" && jar uf "$installed" plugins.config); fi
  rm -rf -- "$tmp"
elif [ -z "$have" ]; then
  echo "warning: could not ask the installed library for its methods; menu entries left as they are" >&2
fi

n=0
for m in "$repo"/models/*/; do
  [ -f "$m/model.json" ] || continue
  name=$(basename "$m")
  rm -rf -- "${plugins:?}/cellcount-models/$name"
  cp -R "$m" "$plugins/cellcount-models/$name"
  n=$((n + 1))
done

echo "Cell Counting installed into the $kind $target:"
echo "  plugin jar      $plugins/$(basename "$jar")"
echo "  native library  $natives/libcellcount_jni.so (+ $soname, libcellcount_omp.so)"
echo "  models          $plugins/cellcount-models ($n)"
echo "  methods         ${have:-unknown}${missing:+ (not yet available in this build:$missing)}"
if command -v ldd >/dev/null && ldd "$natives/libcellcount_jni.so" | grep -q "not found"; then
  echo "warning: some libraries libcellcount needs are not installed on this machine:" >&2
  ldd "$natives/libcellcount_jni.so" | grep "not found" >&2
fi
echo "Restart Fiji/ImageJ; the commands are under Plugins > Cell Counting."
