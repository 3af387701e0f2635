// plugin_test.ijm -- acceptance test of Plugins > Cell Counting in real ImageJ, batch mode, under xvfb-run.
// Run by scripts/test-java.sh, which installs the plugin into a scratch ImageJ folder and asks the
// library's CLI for the expected answers first (work/expected-*.csv). Every run(...) below is written the
// way the Macro Recorder writes it; one case records a command through its real dialog and replays it.
// Prints "FAIL: ..." per failed check and "CELLCOUNT PLUGIN TEST PASSED" at the end when all passed.

var checks = 0;
var failures = 0;
var T = "Cell counts";
var probe = "org.cellcount.fiji.probe.TestProbe";
var started = getTime();
var lastLap = getTime();

function lap(what) {
  now = getTime();
  print("time: " + what + " " + d2s((now - lastLap) / 1000, 1) + " s");
  lastLap = now;
}

function arg(key) {
  return call("ij.Macro.getValue", getArgument(), key, "");
}

function check(ok, what) {
  checks++;
  if (!ok) {
    failures++;
    print("FAIL: " + what);
  }
}

// Column `name` of a CSV text (no quoted commas in our files).
function column(text, name) {
  lines = split(text, "\n");
  head = split(lines[0], ",");
  idx = -1;
  for (i = 0; i < head.length; i++) if (head[i] == name) idx = i;
  out = newArray(lines.length - 1);
  for (r = 1; r < lines.length; r++) {
    cells = split(lines[r], ",");
    out[r - 1] = cells[idx];
  }
  return out;
}

function basenames(paths) {
  out = newArray(paths.length);
  for (i = 0; i < paths.length; i++) out[i] = File.getName(paths[i]);
  return out;
}

function find(names, name) {
  for (i = 0; i < names.length; i++) if (names[i] == name) return i;
  return -1;
}

// The row of an image file (path) and region: a recount of a file replaces its row where it is (issue 21), so the
// newest result is not always the last row.
function rowFor(path, region) {
  for (r = Table.size(T) - 1; r >= 0; r--)
    if (Table.getString("path", r, T) == path && Table.getString("region", r, T) == region
        && Table.getString("status", r, T) == "ok") return r;
  return -1;
}

// The newest "ok" row of an image (title) counted with a model.
function rowOf(title, model) {
  for (r = Table.size(T) - 1; r >= 0; r--)
    if (Table.getString("image", r, T) == title && Table.getString("model", r, T) == model
        && Table.getString("status", r, T) == "ok") return r;
  return -1;
}

function rows() {
  if (!isOpen(T)) return 0;
  return Table.size(T);
}

// Checks the table row against the library's answer (count within 1e-3 relative, same point count).
function checkRow(row, wantCount, wantPoints, what) {
  got = Table.get("count", row, T);
  check((abs((got) - (wantCount)) <= (0.01 + 1e-4 * wantCount)), "" + what + ": count " + got + ", library says " + wantCount);
  gotPoints = Table.get("points", row, T);
  check((gotPoints == wantPoints), "" + what + ": points " + gotPoints + ", library says " + wantPoints);
  check((Table.getString("device", row, T) == "cpu"), "" + what + ": device " + Table.getString("device", row, T));
}

// Number after "key": in JSON text (the CLI's report).
function jsonNumber(text, key) {
  i = indexOf(text, "\"" + key + "\":");
  if (i < 0) return NaN;
  rest = substring(text, i + lengthOf(key) + 3);
  j = 0;
  while (j < lengthOf(rest) && indexOf(" 0123456789.eE+-", substring(rest, j, j + 1)) >= 0) j++;
  return parseFloat(String.trim(substring(rest, 0, j)));
}

call(probe + ".watchDialogs");
repo = arg("repo");
work = arg("work");
fixture = arg("fixture");
cli = arg("cli");
setBatchMode(true);
print("cellcount plugin test: ImageJ " + getVersion() + ", repo " + repo);
// One LibTorch thread: with other jobs on the cores, OpenMP barriers would make timings erratic.
run("Device and about", "threads=1");

// ---- the library's own answers (cellcount count --csv), by file name
vggText = File.openAsString(work + "/expected-dcl-vgg.csv");
vggNames = column(vggText, "image");
vggNames = basenames(vggNames);
vggCounts = column(vggText, "count");
vggPoints = column(vggText, "points");
fixText = File.openAsString(work + "/expected-fixture.csv");
fixNames = column(fixText, "image");
fixNames = basenames(fixNames);
fixCounts = column(fixText, "count");
fixPoints = column(fixText, "points");
samples = repo + "/samples/dcl-vgg/";

// ---- 1. single 8-bit images, current slice, the shipped model by name
for (k = 0; k < 3; k++) {
  open(samples + vggNames[k]);
  n0 = rows();
  // precision auto: the CLI computed the expected answers at its default (auto), which is bf16 on an AMX CPU
  run("Count cells", "model=dcl-vgg folder=[] slices=current region=[whole image] points device=auto precision=auto tile=0 overlap=-1 threshold=[] minimum=[]");
  check((Table.size(T) == n0 + 1), "" + vggNames[k] + ": one new row");
  checkRow(Table.size(T) - 1, parseFloat(vggCounts[k]), parseInt(vggPoints[k]), "" + vggNames[k]);
  check((Table.getString("model", Table.size(T) - 1, T) == "dcl-vgg"), "model column");
  check((Table.getString("method", Table.size(T) - 1, T) == "dcl"), "method column");
  check((Overlay.size == 1), "" + vggNames[k] + ": one overlay element, got " + Overlay.size);
  Overlay.activateSelection(0);
  getSelectionCoordinates(xs, ys);
  check((xs.length == parseInt(vggPoints[k])), "" + vggNames[k] + ": overlay holds " + xs.length + " points");
  // A second run replaces our own points of the slice instead of piling them up.
  run("Count cells", "model=dcl-vgg slices=current region=[whole image] points");
  check((Overlay.size == 1), "" + vggNames[k] + ": rerun keeps one overlay element, got " + Overlay.size);
  close();
}

lap("section 1");
// ---- 2. 16-bit, 32-bit and RGB versions of the same pixels give the same count
open(samples + vggNames[1]);
id8 = getImageID();
types = newArray("16-bit", "32-bit", "RGB Color");
for (k = 0; k < types.length; k++) {
  selectImage(id8);
  run("Duplicate...", "title=converted");
  run(types[k]);
  run("Count cells", "model=dcl-vgg slices=current region=[whole image]");
  checkRow(Table.size(T) - 1, parseFloat(vggCounts[1]), parseInt(vggPoints[1]), "" + types[k] + " " + vggNames[1]);
  close();
}
selectImage(id8);
close();

lap("section 2");
// ---- 3. a stack: every slice, density maps as a new 32-bit stack; then the current slice only
File.openSequence(samples, "filter=.png");
stackId = getImageID();
check((nSlices == vggNames.length), "stack of " + nSlices + " slices");
stackTitle = getTitle();
n0 = rows();
stackRow0 = n0;
run("Count cells", "model=dcl-vgg slices=all region=[whole image] density points");
check((getImageID() == stackId), "the counted stack stays the active image after a count with density (got '" + getTitle() + "')");
densityTitle = File.getNameWithoutExtension(stackTitle) + "-density";
check((isOpen(densityTitle)), "density stack '" + densityTitle + "' opened");
selectImage(stackId);
check((Table.size(T) == n0 + nSlices), "stack: one row per slice");
for (s = 1; s <= nSlices; s++) {
  row = n0 + s - 1;
  check((Table.get("slice", row, T) == s), "stack row " + row + " slice " + Table.get("slice", row, T));
  setSlice(s);
  k = find(vggNames, getInfo("slice.label") + ".png");
  if (k < 0) k = find(vggNames, getInfo("slice.label"));
  check((k >= 0), "slice " + s + " label " + getInfo("slice.label") + " names a sample");
  if (k >= 0) checkRow(row, parseFloat(vggCounts[k]), parseInt(vggPoints[k]), "stack slice " + s);
}
check((Overlay.size == nSlices), "stack: one overlay element per slice, got " + Overlay.size);
for (i = 0; i < Overlay.size; i++) {
  Overlay.activateSelection(i);
  check((getSliceNumber() == i + 1), "overlay element " + i + " sits on slice " + getSliceNumber());
}
check((densityTitle == File.getNameWithoutExtension(stackTitle) + "-density"), "density stack opened as '" + densityTitle + "'");
if (densityTitle != stackTitle) {
  selectImage(densityTitle);
  check((bitDepth() == 32 && nSlices == vggNames.length), "density: 32-bit, one slice per slice");
  for (s = 1; s <= nSlices; s++) {
    setSlice(s);
    sum = getValue("RawIntDen");
    want = Table.get("count", n0 + s - 1, T);
    check((abs((sum) - (want)) <= (1e-3 * want + 1e-3)), "density slice " + s + " sums to " + sum + ", count " + want);
  }
  close();
}
selectImage(stackId);
setSlice(3);
n0 = rows();
run("Count cells", "model=dcl-vgg slices=current region=[whole image]");
// a recount of slice 3 replaces its row (issue 21) when the stack has a file; else it adds one
row3 = n0;
if (Table.size(T) == n0) row3 = stackRow0 + 2;
check((Table.size(T) <= n0 + 1 && Table.get("slice", row3, T) == 3), "current slice of a stack is slice 3");
k = find(vggNames, getInfo("slice.label") + ".png");
if (k >= 0) checkRow(row3, parseFloat(vggCounts[k]), parseInt(vggPoints[k]), "current slice 3");

lap("section 3");
// ---- 4. a hyperstack (1 channel, 2 z, 3 t): every z/t position, in stack order
selectImage(stackId);
run("Stack to Hyperstack...", "order=xyczt(default) channels=1 slices=2 frames=3 display=Grayscale");
check((Stack.isHyperstack), "hyperstack made");
n0 = rows();
run("Count cells", "model=dcl-vgg slices=all region=[whole image] points");
check((Table.size(T) == n0 + 6), "hyperstack: six rows");
for (i = 0; i < 6; i++) {
  check((Table.get("slice", n0 + i, T) == i + 1), "hyperstack row " + i + " is stack index " + (i + 1));
  check((Table.get("z", n0 + i, T) == (i % 2) + 1 && Table.get("frame", n0 + i, T) == floor(i / 2) + 1),
        "hyperstack row " + i + " z/t");
  checkRow(n0 + i, Table.get("count", stackRow0 + i, T), Table.get("points", stackRow0 + i, T), "hyperstack position " + (i + 1));
}
check((Overlay.size == 6), "hyperstack: the stack's points replaced plane by plane (got " + Overlay.size + " elements)");
Overlay.activateSelection(Overlay.size - 1);
Stack.getPosition(c, z, t);
check((z == 2 && t == 3), "last overlay element on z 2, t 3 (got " + z + ", " + t + ")");
close();

lap("section 4");
// ---- 5. an area selection is the region to count: the count equals the density inside it
open(samples + vggNames[2]);
makeOval(60, 50, 120, 100);
run("Count cells", "model=dcl-vgg slices=current region=[area selection (if any)] points");
inside = Table.get("count", Table.size(T) - 1, T);
check((Table.getString("region", Table.size(T) - 1, T) == "selection"), "region column says selection");
check((inside > 0 && inside < parseFloat(vggCounts[2])), "region count " + inside + " below the whole " + vggCounts[2]);
Overlay.activateSelection(0);
getSelectionCoordinates(xs, ys);
makeOval(60, 50, 120, 100);
outside = 0;
for (i = 0; i < xs.length; i++) if (!selectionContains(xs[i], ys[i])) outside++;
check((outside == 0), "" + outside + " region point(s) outside the selection");
run("Count cells", "model=dcl-vgg slices=current region=[whole image] density");
check((getTitle() == vggNames[2]), "the counted image stays active after a count with density (got '" + getTitle() + "')");
densityTitle = File.getNameWithoutExtension(vggNames[2]) + "-density";
if (isOpen(densityTitle)) selectImage(densityTitle);
wholeRow = rowFor(samples + vggNames[2], "whole image");
whole = Table.get("count", wholeRow, T);
checkRow(wholeRow, parseFloat(vggCounts[2]), parseInt(vggPoints[2]), "whole image with a selection present");
check((densityTitle == File.getNameWithoutExtension(vggNames[2]) + "-density"), "density image '" + densityTitle + "'");
makeOval(60, 50, 120, 100);
sum = getValue("RawIntDen");
check((abs((sum) - (inside)) <= (1e-3 * inside + 1e-3)), "density inside the oval " + sum + " = region count " + inside);
close();
close();

lap("section 5");
// ---- 6. any model through "Count with any model": the fixture model given as a folder
for (k = 0; k < 3; k++) {
  open(fixture + "/data/images/" + fixNames[k]);
  run("Count with any model", "model=[(none found: give a folder)] folder=[" + fixture + "/model] slices=current region=[whole image]");
  checkRow(Table.size(T) - 1, parseFloat(fixCounts[k]), parseInt(fixPoints[k]), "fixture " + fixNames[k]);
  check((Table.getString("method", Table.size(T) - 1, T) == "selftest"), "fixture method column");
  close();
}

lap("section 6");
// ---- 7. bad input: an ImageJ error message naming the problem, never a crash; ImageJ goes on
open(samples + vggNames[0]);
msg = call(probe + ".runExpectingError", "Count cells", "folder=/nonexistent/model slices=current");
check((indexOf(msg, "/nonexistent/model") >= 0), "wrong model folder: '" + msg + "'");
msg = call(probe + ".runExpectingError", "Count cells", "folder=[" + fixture + "/model] slices=current");
check((indexOf(msg, "selftest") >= 0), "model of another method: '" + msg + "'");
msg = call(probe + ".runExpectingError", "Count cells", "model=dcl-vgg slices=current threshold=abc");
check((indexOf(msg, "Threshold") >= 0), "bad threshold text: '" + msg + "'");
msg = call(probe + ".runExpectingError", "Count cells", "model=dcl-vgg slices=current tile=5");
check((indexOf(msg, "tile") >= 0), "tile size 5: '" + msg + "'");
close();
newImage("tiny", "8-bit black", 1, 1, 1);
msg = call(probe + ".runExpectingError", "Count cells", "model=dcl-vgg slices=current");
check((indexOf(msg, "1 x 1") >= 0), "1-pixel image: '" + msg + "'");
close();
newImage("nan", "32-bit black", 64, 64, 1);
setPixel(10, 10, NaN);
msg = call(probe + ".runExpectingError", "Count cells", "model=dcl-vgg slices=current");
check((indexOf(msg, "NaN") >= 0), "NaN pixel: '" + msg + "'");
close();
// twinvae (models/twinvae-bf): a chamber frame of any size gets one row with its count, with no method-specific
// front-end code (every method now ships models, so no menu entry is left without one)
newImage("chamber", "8-bit ramp", 96, 80, 1);
n0 = rows();
run("Count cells in chamber", "model=twinvae-bf slices=current");
check((Table.size(T) == n0 + 1), "twinvae: one new row");
c = Table.get("count", Table.size(T) - 1, T);
check((c >= 0 && c < 1000), "twinvae: count " + c);
close("*");
// llp (models/llp-wbc on its simulated sample): classes in the table (per-class counts adding up to the count)
// and in the overlay (one element per class present), with no method-specific front-end code
open(repo + "/samples/llp-wbc/images/donor0001_00.png");
n0 = rows();
run("Detect and classify cells", "model=llp-wbc slices=current points");
check((Table.size(T) == n0 + 1), "llp: one new row");
r = Table.size(T) - 1;
c = Table.get("count", r, T);
check((c == 17), "llp: count " + c + ", the golden count (tests/golden/llp-wbc.counts.csv) is 17");
g = Table.get("count granulocyte", r, T);
l = Table.get("count lymphocyte", r, T);
m = Table.get("count monocyte", r, T);
check((g + l + m == c), "llp: per-class counts " + g + " + " + l + " + " + m + " should add up to " + c);
// the proportions (the library's class_fractions): each class's count over the count
fg = Table.get("fraction granulocyte", r, T);
fl = Table.get("fraction lymphocyte", r, T);
fm = Table.get("fraction monocyte", r, T);
check((abs(fg - g / c) < 1e-9 && abs(fl - l / c) < 1e-9 && abs(fm - m / c) < 1e-9),
      "llp: fractions " + fg + ", " + fl + ", " + fm + " should be " + g / c + ", " + l / c + ", " + m / c);
present = (g > 0) + (l > 0) + (m > 0);
check((Overlay.size == present), "llp: one overlay element per class present (" + present + "), got " + Overlay.size);
check((Table.getString("method", r, T) == "llp"), "llp: method column");
close();
// (with out= given: the library names the first missing field, and checks out before dataset)
msg = call(probe + ".runExpectingError", "Train model", "method=selftest out=[" + work + "/never-written] epochs=2");
check((indexOf(msg, "dataset") >= 0), "training without a dataset: '" + msg + "'");
msg = call(probe + ".runExpectingError", "Train model", "method=selftest dataset=[" + fixture + "/data] epochs=2.5");
check((indexOf(msg, "epochs") >= 0), "training with a fractional epoch count: '" + msg + "'");
// the dialog is made from the library's field metadata: its declared range is checked on OK, naming it
msg = call(probe + ".runExpectingError", "Train model", "method=selftest dataset=[" + fixture + "/data] epochs=0");
check((indexOf(msg, "epochs: 0 is out of range (1 to ") >= 0), "training with epochs out of the declared range: '" + msg + "'");
msg = call(probe + ".runExpectingError", "Train model", "method=selftest dataset=[" + fixture + "/data] optimizer=sgd");
check((indexOf(msg, "optimizer: expected one of") >= 0), "an advanced choice outside the declared ones: '" + msg + "'");
open(samples + vggNames[0]);
run("Count cells", "model=dcl-vgg slices=current region=[whole image]");
checkRow(rowFor(samples + vggNames[0], "whole image"), parseFloat(vggCounts[0]), parseInt(vggPoints[0]), "after the errors");
close();

lap("section 7");
// ---- 8. train (fields the library defaults), then evaluate against the CLI's evaluation
trained = work + "/trained";
// restart_epochs before epochs: ImageJ alone would read "epochs" out of "restart_epochs=7". "advanced" opens
// the second dialog (advanced fields such as restart_epochs), as a recorded macro does.
run("Train model", "method=selftest dataset=[" + fixture + "/data] out=[" + trained + "] advanced restart_epochs=7 epochs=3 seed=1");
check((File.exists(trained + "/model.json")), "Train model wrote " + trained + "/model.json");
modelJson = File.openAsString(trained + "/model.json");
defaults = exec(cli, "defaults", "--method", "selftest", "--kind", "train");
epochs = jsonNumber(modelJson, "epochs");
lr = jsonNumber(modelJson, "lr");
lrDefault = jsonNumber(defaults, "lr");
check((epochs == 3), "the request carried epochs=3, model.json says " + epochs);
restarts = jsonNumber(modelJson, "restart_epochs");
check((restarts == 7), "the request carried restart_epochs=7, model.json says " + restarts);
check((lr == lrDefault), "lr " + lr + " left to the library default " + lrDefault);
run("Evaluate model", "model=[(none found: give a folder)] folder=[" + trained + "] dataset=[" + fixture + "/data]");
E = "Cell counting evaluation";
check((isOpen(E) && Table.size(E) >= 1), "evaluation table");
if (isOpen(E)) {
  mae = Table.get("mae", Table.size(E) - 1, E);
  report = exec(cli, "eval", "--threads", "1", "--model", trained, "--dataset", fixture + "/data");
  want = jsonNumber(report, "mae");
  check((abs((mae) - (want)) <= (1e-6 + 1e-6 * want)), "evaluation MAE " + mae + ", CLI says " + want);
  check((Table.get("points_f1", Table.size(E) - 1, E) >= 0), "nested metrics flattened (points_f1)");
}
check((isOpen("Cell counting evaluation per image")), "per-image evaluation table");

lap("section 8");
// ---- 9. Esc during a long run: cancelled quickly, ImageJ responsive, no row, the model still counts
newImage("big", "8-bit random", 3000, 3000, 1);
n0 = rows();
call(probe + ".startEscape", "1500");
t0 = getTime();
run("Count cells", "model=dcl-vgg slices=current region=[whole image]");
elapsed = getTime() - t0;
probed = call(probe + ".stopEscape");
print("cancel run: " + elapsed + " ms, " + probed);
check((Table.size(T) == n0), "a cancelled run adds no row");
check((elapsed < 10000), "cancelled within " + elapsed + " ms (a whole run takes several times longer)");
latency = parseInt(substring(probed, indexOf(probed, "maxLatencyMs=") + 13));
check((latency < 1000), "event thread answered within " + latency + " ms during the run");
close();
open(samples + vggNames[3]);
run("Count cells", "model=dcl-vgg slices=current region=[whole image]");
checkRow(Table.size(T) - 1, parseFloat(vggCounts[3]), parseInt(vggPoints[3]), "after cancel");
close();

lap("section 9");
// ---- 10. the sample batch macro: a folder into one CSV
batchCsv = work + "/batch-counts.csv";
runMacro(repo + "/samples/count_folder.ijm", "input=[" + samples + "] model=dcl-vgg output=[" + batchCsv + "]");
check((File.exists(batchCsv)), "batch macro wrote " + batchCsv);
if (File.exists(batchCsv)) {
  text = File.openAsString(batchCsv);
  names = column(text, "image");
  counts = column(text, "count");
  check((names.length == vggNames.length), "batch CSV has " + names.length + " rows");
  for (i = 0; i < names.length; i++) {
    k = find(vggNames, names[i]);
    check((k >= 0 && abs((parseFloat(counts[i])) - (parseFloat(vggCounts[k]))) <= (0.01 + 1e-4 * parseFloat(vggCounts[k]))),
          "batch CSV row " + names[i] + " count " + counts[i]);
  }
}

// ---- 10b. a folder with one bad image (issue 21): the menu command "Count folder..." goes on past it, the
// Log and the status column say why, the CSV has every good row, and the error is counted for the exit status
mixed = arg("mixed");
mixedCsv = work + "/mixed-counts.csv";
n0 = rows();
run("Count folder...", "input=[" + mixed + "] model=dcl-vgg folder=[] output=[" + mixedCsv + "] slices=all");
check((File.exists(mixedCsv)), "Count folder wrote " + mixedCsv + " despite the bad image");
check((call(probe + ".plugin", "failures") == "1"), "one failure counted, got " + call(probe + ".plugin", "failures"));
check((indexOf(call(probe + ".plugin", "lastError"), "cells_00001b.png") >= 0), "the error names the bad file: "
      + call(probe + ".plugin", "lastError"));
call(probe + ".plugin", "resetFailures");
check((Table.size(T) == n0 + 4), "Count folder: 3 good rows and 1 error row in the table, got " + (Table.size(T) - n0));
if (File.exists(mixedCsv)) {
  text = File.openAsString(mixedCsv);
  names = column(text, "image");
  counts = column(text, "count");
  statuses = column(text, "status");
  check((names.length == 4), "mixed CSV has " + names.length + " rows");
  bad = find(names, "cells_00001b.png");
  lines = split(text, "\n");
  check((bad >= 0 && (indexOf(lines[bad + 1], ",error: ") > 0 || indexOf(lines[bad + 1], ",\"error: ") > 0)),
        "the bad image's row says error in its status (the reason may hold quoted commas)");
  for (i = 0; i < names.length; i++) {
    if (i == bad) continue;
    k = find(vggNames, names[i]);
    check((statuses[i] == "ok" && k >= 0 && abs((parseFloat(counts[i])) - (parseFloat(vggCounts[k]))) <= (0.01 + 1e-4 * parseFloat(vggCounts[k]))),
          "mixed CSV row " + names[i] + " count " + counts[i] + " status " + statuses[i]);
  }
}
// a count command's error inside a macro: a Log line and an error row, no dialog, and the macro goes on
open(samples + vggNames[0]);
n0 = rows();
run("Count cells", "folder=/nonexistent/model slices=current");
check((Table.size(T) == n0 + 1 && startsWith(Table.getString("status", n0, T), "error")),
      "a failed count in a macro adds an error row");
check((indexOf(call(probe + ".plugin", "lastError"), "/nonexistent/model") >= 0), "and keeps its message");
call(probe + ".plugin", "resetFailures");
close();

lap("section 10");
// ---- 11. exemplars (rectangles of a composite selection or of the ROI Manager), once a model exists
exModel = arg("exemplar_model");
if (exModel == "") {
  print("SKIP exemplar cases: " + arg("exemplar_skip"));
} else {
  exDir = arg("exemplar_images");
  // Float boxes for the ROI Manager; whole-pixel boxes for composite selections (ImageJ keeps whole
  // pixels there). The CLI counted with both box files.
  boxText = File.openAsString(arg("exemplar_boxes"));
  bImage = column(boxText, "image");
  bImage = basenames(bImage);
  bx0 = column(boxText, "x0");
  by0 = column(boxText, "y0");
  bx1 = column(boxText, "x1");
  by1 = column(boxText, "y1");
  intText = File.openAsString(arg("exemplar_int_boxes"));
  ix0 = column(intText, "x0");
  iy0 = column(intText, "y0");
  ix1 = column(intText, "x1");
  iy1 = column(intText, "y1");
  exText = File.openAsString(work + "/expected-exemplar.csv");
  exNames = column(exText, "image");
  exNames = basenames(exNames);
  exCounts = column(exText, "count");
  exPoints = column(exText, "points");
  intExText = File.openAsString(work + "/expected-exemplar-int.csv");
  intNames = column(intExText, "image");
  intNames = basenames(intNames);
  intCounts = column(intExText, "count");
  intPoints = column(intExText, "points");
  composites = 0;
  for (k = 0; k < exNames.length; k++) {
    open(exDir + "/" + exNames[k]);
    roiManager("reset");
    nBoxes = 0;
    overlap = false;
    for (b = 0; b < bImage.length; b++) {
      if (bImage[b] != exNames[k]) continue;
      makeRectangle(parseFloat(bx0[b]), parseFloat(by0[b]), parseFloat(bx1[b]) - parseFloat(bx0[b]), parseFloat(by1[b]) - parseFloat(by0[b]));
      roiManager("add");
      nBoxes++;
      for (c = 0; c < b; c++)
        if (bImage[c] == exNames[k] && parseFloat(ix0[b]) <= parseFloat(ix1[c]) && parseFloat(ix0[c]) <= parseFloat(ix1[b])
            && parseFloat(iy0[b]) <= parseFloat(iy1[c]) && parseFloat(iy0[c]) <= parseFloat(iy1[b])) overlap = true;
    }
    run("Select None");
    run("Count like exemplars", "folder=[" + exModel + "] slices=current exemplars=[ROI Manager rectangles] region=[whole image]");
    checkRow(Table.size(T) - 1, parseFloat(exCounts[k]), parseInt(exPoints[k]), "exemplars from the ROI Manager, " + exNames[k]);
    check((Table.get("exemplars", Table.size(T) - 1, T) == nBoxes), "exemplar column (ROI Manager)");
    check((roiManager("count") == nBoxes), "the plugin did not clear the ROI Manager");
    // A composite selection (Shift adds); overlapping or touching rectangles would merge into one shape.
    if (overlap) {
      print("note: exemplar boxes of " + exNames[k] + " overlap; composite-selection case skipped for it");
    } else {
      first = true;
      for (b = 0; b < bImage.length; b++) {
        if (bImage[b] != exNames[k]) continue;
        if (!first) setKeyDown("shift");
        makeRectangle(parseFloat(ix0[b]), parseFloat(iy0[b]), parseFloat(ix1[b]) - parseFloat(ix0[b]), parseFloat(iy1[b]) - parseFloat(iy0[b]));
        setKeyDown("none");
        first = false;
      }
      run("Count like exemplars", "folder=[" + exModel + "] slices=current exemplars=[selection rectangles] region=[whole image] points");
      j = find(intNames, exNames[k]);
      checkRow(Table.size(T) - 1, parseFloat(intCounts[j]), parseInt(intPoints[j]), "exemplars from the selection, " + exNames[k]);
      check((Table.get("exemplars", Table.size(T) - 1, T) == nBoxes), "exemplar column (selection) " + Table.get("exemplars", Table.size(T) - 1, T));
      // The overlay holds exactly the points the CLI found (none is a valid answer too).
      nPts = 0;
      for (o = 0; o < Overlay.size; o++) {
        Overlay.activateSelection(o);
        getSelectionCoordinates(ox, oy);
        nPts += ox.length;
      }
      run("Select None");
      check((nPts == parseInt(intPoints[j])), "exemplar points in the overlay: " + nPts + " of " + intPoints[j]);
      composites++;
    }
    run("Select None");
    msg = call(probe + ".runExpectingError", "Count like exemplars", "folder=[" + exModel + "] slices=current exemplars=[selection rectangles]");
    check((indexOf(msg, "exemplar") >= 0), "no exemplar box: '" + msg + "'");
    // the method's own prediction options are fields made from the library's metadata, range checked
    msg = call(probe + ".runExpectingError", "Count like exemplars", "folder=[" + exModel + "] slices=current exemplars=[ROI Manager rectangles] mask_threshold=2");
    check((indexOf(msg, "mask_threshold: 2 is out of range") >= 0), "mask_threshold out of its declared range: '" + msg + "'");
    close();
  }
  check((composites >= 1), "at least one composite-selection case ran");
  roiManager("reset");
}

lap("section 11");
// ---- 12. Device and about
run("Device and about", "threads=1 unload");

lap("section 12");
// ---- 13. record a command through its real dialog, then replay the recorded string
setBatchMode("exit and display");
open(samples + vggNames[4]);
id4 = getImageID();
n0 = rows();
r = rowFor(samples + vggNames[4], "whole image");
before = -1;
if (r >= 0) before = Table.get("seconds", r, T);
recorded = call(probe + ".record", "Count cells", "choice:dcl-vgg;choice:all;check:Density map");
print("recorded: run(\"Count cells\", \"" + recorded + "\");");
check((!startsWith(recorded, "ERROR")), "recording: " + recorded);
check((indexOf(recorded, "model=dcl-vgg") >= 0 && indexOf(recorded, "slices=all") >= 0 && indexOf(recorded, "density") >= 0),
      "recorded options carry the dialog's choices");
// the file was counted before (section 10): the recorded run and its replay replace its row (issue 21)
r = rowFor(samples + vggNames[4], "whole image");
check((r >= 0 && Table.size(T) <= n0 + 1 && Table.get("seconds", r, T) != before), "the recorded run's row (new seconds)");
if (r >= 0) {
  checkRow(r, parseFloat(vggCounts[4]), parseInt(vggPoints[4]), "recorded run");
  n1 = Table.size(T);
  selectImage(id4);
  run("Count cells", recorded);
  check((Table.size(T) == n1), "replayed run replaces the recorded run's row (a recount of the same file)");
  checkRow(rowFor(samples + vggNames[4], "whole image"), parseFloat(vggCounts[4]), parseInt(vggPoints[4]), "replayed run");
}

// Count folder... records through its real dialog too (issue 21: a recordable menu command) and the
// recorded string replays (to another output file: the first is never overwritten)
rec1 = work + "/recorded-folder-1.csv";
rec2 = work + "/recorded-folder-2.csv";
recorded = call(probe + ".record", "Count folder...", "text:0=" + mixed + ";choice:dcl-vgg;text:2=" + rec1);
print("recorded: run(\"Count folder...\", \"" + recorded + "\");");
recOk = (indexOf(recorded, "input=" + mixed) >= 0 || indexOf(recorded, "input=[" + mixed + "]") >= 0);
recOk = (recOk && indexOf(recorded, "model=dcl-vgg") >= 0 && indexOf(recorded, "recorded-folder-1.csv") >= 0);
check((recOk), "Count folder records its input, model and output: " + recorded);
run("Count folder...", replace(recorded, "recorded-folder-1.csv", "recorded-folder-2.csv"));
for (f = 1; f <= 2; f++) {
  path = work + "/recorded-folder-" + f + ".csv";
  n = 0;
  if (File.exists(path)) {
    recLines = split(File.openAsString(path), "\n");
    n = recLines.length - 1;
  }
  check((n == 4), "" + path + ": 3 counted images and the bad one, got " + n + " rows");
}
call(probe + ".plugin", "resetFailures");  // the bad image of the folder, twice, was expected

lap("section 13");
// ---- 14. results stay with the image (issue 21): path, calibration, area, density, a recount replaces its row,
// the CSV and points saved beside the image file, the counted image stays active
setBatchMode(true);
calib = arg("calib");
open(calib);
calibId = getImageID();
run("Properties...", "unit=um pixel_width=0.25 pixel_height=0.5");
n0 = rows();
run("Count cells", "model=dcl-vgg slices=current region=[whole image] density save");
check((getImageID() == calibId), "after a count with density the counted image is active (got '" + getTitle() + "')");
check((Table.size(T) == n0 + 1), "one row for the calibrated image");
r = Table.size(T) - 1;
k = find(vggNames, File.getName(calib));
checkRow(r, parseFloat(vggCounts[k]), parseInt(vggPoints[k]), "calibrated image");
check((Table.getString("path", r, T) == calib), "path column " + Table.getString("path", r, T));
check((Table.getString("unit", r, T) == "micron" || Table.getString("unit", r, T) == "um" || Table.getString("unit", r, T) == fromCharCode(181) + "m"),
      "unit column " + Table.getString("unit", r, T));
check((Table.get("pixel width", r, T) == 0.25 && Table.get("pixel height", r, T) == 0.5), "pixel size columns");
area = getWidth() * getHeight() * 0.25 * 0.5;
check((abs(Table.get("area", r, T) - area) < 1e-6 * area), "area " + Table.get("area", r, T) + ", want " + area);
dens = Table.get("cells per unit2", r, T);
check((abs(dens - Table.get("count", r, T) / area) < 1e-6 * dens), "cells per unit2 " + dens);
stem = File.getDirectory(calib) + File.getNameWithoutExtension(calib);
check((File.exists(stem + "_cellcount.csv") && File.exists(stem + "_cellcount_points.csv")), "CSV and points saved beside " + calib);
if (File.exists(stem + "_cellcount_points.csv")) {
  lines = split(File.openAsString(stem + "_cellcount_points.csv"), "\n");
  check((lines.length == parseInt(vggPoints[k]) + 1), "points CSV has " + (lines.length - 1) + " points");
}
run("Count cells", "model=dcl-vgg slices=current region=[whole image] save");
check((Table.size(T) == n0 + 1), "a recount replaces its row (got " + (Table.size(T) - n0) + " rows)");
if (File.exists(stem + "_cellcount.csv")) {
  lines = split(File.openAsString(stem + "_cellcount.csv"), "\n");
  check((lines.length == 2), "the saved CSV holds the image's one row, got " + (lines.length - 1));
}
// an uncalibrated image: area in pixels, no density
run("Properties...", "unit=pixel pixel_width=1 pixel_height=1");
run("Count cells", "model=dcl-vgg slices=current region=[whole image]");
r = Table.size(T) - 1;
check((Table.get("area", r, T) == getWidth() * getHeight() && isNaN(Table.get("cells per unit2", r, T))),
      "uncalibrated: area in pixels, no density");
close("*");
lap("section 14");
// ---- 15. issue 21 items 8, 9: the peak threshold on the library's 0-1 scale, per-point measurements in the
// "Cell points" table and the points CSV, label outlines where the method gives a mask (exemplar), none for dcl
open(calib);
k = find(vggNames, File.getName(calib));
run("Count cells", "model=dcl-vgg slices=current region=[whole image] relative=1 table");
r = Table.size(T) - 1;
check((Table.get("points", r, T) < parseInt(vggPoints[k])), "relative=1 keeps fewer points than the tuned threshold: "
      + Table.get("points", r, T) + " of " + vggPoints[k]);
run("Count cells", "model=dcl-vgg slices=current region=[whole image] relative=[] label table");
r = Table.size(T) - 1;
checkRow(r, parseFloat(vggCounts[k]), parseInt(vggPoints[k]), "empty relative threshold = the model's tuned value");
pts = call(probe + ".plugin", "pointTableCsv");
lines = split(pts, "\n");
check((startsWith(pts, "image,slice,x,y,class,score,intensity,label")), "points table header: " + lines[0]);
inten = column(pts, "intensity");
labs = column(pts, "label");
n = parseInt(vggPoints[k]);
check((inten.length >= n), "points table has the last count's " + n + " points, got " + inten.length + " rows");
okI = true;
for (i = inten.length - n; i < inten.length; i++) {
  v = parseFloat(inten[i]);
  if (isNaN(v) || v < 0 || v > 255 || parseInt(labs[i]) != 0) okI = false;
}
check(okI, "every point has a local intensity in 0..255 and label 0 (dcl gives no mask)");
msg = call(probe + ".runExpectingError", "Count cells", "model=dcl-vgg slices=current relative=2");
check((indexOf(msg, "Relative threshold") >= 0 && indexOf(msg, "[0, 1]") >= 0), "relative=2 refused: '" + msg + "'");
msg = call(probe + ".runExpectingError", "Count cells", "model=dcl-vgg slices=current relative=0.5 threshold=0.01");
check((indexOf(msg, "not both") >= 0), "relative and absolute together refused: '" + msg + "'");
close("*");
if (exModel != "") {
  open(exDir + "/" + exNames[0]);
  roiManager("reset");
  for (b = 0; b < bImage.length; b++) {
    if (bImage[b] != exNames[0]) continue;
    makeRectangle(parseFloat(bx0[b]), parseFloat(by0[b]), parseFloat(bx1[b]) - parseFloat(bx0[b]), parseFloat(by1[b]) - parseFloat(by0[b]));
    roiManager("add");
  }
  run("Select None");
  run("Remove Overlay");
  run("Count like exemplars", "folder=[" + exModel + "] slices=current exemplars=[ROI Manager rectangles] region=[whole image] label");
  nOut = 0;
  for (o = 0; o < Overlay.size; o++) {
    Overlay.activateSelection(o);
    if (startsWith(Roi.getName, "cellcount label ")) nOut++;
  }
  run("Select None");
  check((nOut >= 1 && nOut == Overlay.size), "exemplar: label outlines in the overlay, got " + nOut + " of " + Overlay.size);
  roiManager("reset");
  close("*");
}
lap("section 15");
// ---- 16. out-of-domain warnings (issue 24): the library's warnings in the row's warnings column and one Log line
// each, "cellcount warning (<title>): <message>", not repeated as the library's own WARN line; none for dcl-vgg on
// its own sample, some for dcl-adi (3 channels, other images) on the same pixels as RGB
if (!File.exists(repo + "/models/dcl-adi/model.json")) {
  print("SKIP: out-of-domain warnings: models/dcl-adi is not there");
} else {
  call(probe + ".captureLog");
  open(samples + "cells_00000.png");
  run("Count cells", "model=dcl-vgg slices=current region=[whole image]");
  r = rowOf("cells_00000.png", "dcl-vgg");
  w = "(no row)";
  if (r >= 0) w = Table.getString("warnings", r, T);
  check((w == ""), "dcl-vgg on its own sample: no warnings, got '" + w + "'");
  run("RGB Color");
  run("Count cells", "model=dcl-adi slices=current region=[whole image]");
  r = rowOf("cells_00000.png", "dcl-adi");
  w = "";
  if (r >= 0) w = Table.getString("warnings", r, T);
  check((w != "" && w != "NaN"), "dcl-adi on a dcl-vgg sample: warnings in the table, got '" + w + "'");
  lines = split(call(probe + ".logSinceCapture"), "\n");
  prefix = "cellcount warning (cells_00000.png): ";
  nOwn = 0;
  nRepeated = 0;
  for (i = 0; i < lines.length; i++) {
    if (startsWith(lines[i], prefix)) {
      nOwn++;
      check((indexOf(w, substring(lines[i], lengthOf(prefix))) >= 0), "the Log's warning is in the table: " + lines[i]);
    }
    if (startsWith(lines[i], "cellcount: dcl: ")) nRepeated++;
  }
  check((nOwn >= 1), "one Log line per warning with the image's title, got " + nOwn);
  check((nRepeated == 0), "the library's own line of a warning is not repeated, got " + nRepeated);
  close("*");
}
lap("section 16");
print("CELLCOUNT PLUGIN TEST: " + checks + " checks, " + failures + " failed");
if (failures == 0) print("CELLCOUNT PLUGIN TEST PASSED");
else print("CELLCOUNT PLUGIN TEST FAILED");
