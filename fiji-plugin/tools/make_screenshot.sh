#!/usr/bin/env bash
# Makes docs/imagej-count.png: ImageJ 1.x (GUI, under Xvfb) after Plugins > Cell Counting > Count cells with
# models/dcl-vgg on samples/dcl-vgg/cells_00000.png: the image with the points overlay, the "Cell counts" table
# and the "Cell points" table (per-point intensity, class, score, label). Needs the built library and plugin
# (bash scripts/setup.sh); installs the plugin into a scratch ImageJ folder under $BUILD_DIR.
#   bash fiji-plugin/tools/make_screenshot.sh [--overwrite] [OUT.png]
# Refuses to replace an existing file unless --overwrite is given.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
overwrite=0
out=$repo/docs/imagej-count.png
for a in "$@"; do
  case "$a" in
    --overwrite) overwrite=1 ;;
    *) out=$a ;;
  esac
done
case "$out" in /*) ;; *) out=$repo/$out ;; esac
if [ -e "$out" ] && [ $overwrite = 0 ]; then echo "$out exists; pass --overwrite to replace it" >&2; exit 1; fi
BUILD_DIR=${CELLCOUNT_BUILD_DIR:-build}
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR=$repo/$BUILD_DIR ;; esac
ij_version=$(sed -n 's:.*<imagej.version>\(.*\)</imagej.version>.*:\1:p' fiji-plugin/pom.xml)
ij_jar=${IJ_JAR:-${MAVEN_REPO:-$HOME/.m2/repository}/net/imagej/ij/$ij_version/ij-$ij_version.jar}
[ -f "$ij_jar" ] || { echo "ImageJ jar not found at $ij_jar; run bash scripts/setup-java.sh" >&2; exit 1; }
work=$BUILD_DIR/screenshot-imagej
rm -rf "$work" && mkdir -p "$work/ImageJ/plugins"
CELLCOUNT_BUILD_DIR=$BUILD_DIR bash fiji-plugin/install.sh --no-build "$work/ImageJ" >/dev/null
rm -f "$work/shot.png"
cat >"$work/shot.ijm" <<IJM
open("$repo/samples/dcl-vgg/cells_00000.png");
run("Count cells", "model=dcl-vgg slices=current region=[whole image] points table");
if (isOpen("Log")) { selectWindow("Log"); run("Close"); }
Table.setLocationAndSize(10, 90, 580, 110, "Cell counts");
Table.setLocationAndSize(10, 210, 580, 500, "Cell points");
selectImage(1);
run("In [+]");
setLocation(600, 90);
wait(2000);
run("Capture Screen");
saveAs("PNG", "$work/shot.png");
close("*");
run("Quit");
IJM
timeout 120 xvfb-run -a -s "-screen 0 1200x720x24" \
  java -Xmx2g -Dplugins.dir="$work/ImageJ" -cp "$ij_jar" ij.ImageJ -macro "$work/shot.ijm" >"$work/imagej.log" 2>&1 || true
if [ ! -s "$work/shot.png" ]; then
  echo "no screenshot was made; ImageJ said:" >&2
  tail -20 "$work/imagej.log" >&2
  exit 1
fi
cp "$work/shot.png" "$out"
echo "wrote $out"
