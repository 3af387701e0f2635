package org.cellcount.fiji;

import ij.IJ;
import ij.ImagePlus;
import ij.ImageStack;
import ij.Macro;
import ij.WindowManager;
import ij.gui.GenericDialog;
import ij.gui.Overlay;
import ij.gui.PointRoi;
import ij.gui.Roi;
import ij.measure.Calibration;
import ij.measure.ResultsTable;
import ij.plugin.PlugIn;
import ij.plugin.frame.RoiManager;
import ij.process.FloatProcessor;
import java.awt.Color;
import java.io.File;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.cellcount.Box;
import org.cellcount.CellCount;
import org.cellcount.CellCountException;
import org.cellcount.CellCountModel;
import org.cellcount.PixelData;
import org.cellcount.PredictParams;
import org.cellcount.Prediction;

/**
 * Plugins &gt; Cell Counting &gt; Count cells / Count like exemplars / Detect and classify cells / Count cells
 * in chamber / Count with any model. One command for every method: the argument is the method id
 * (empty = any). What a model needs (exemplars, input channels, classes) comes from the library's model
 * info, so a method added to the library later works here unchanged.
 *
 * <p>Inputs: the current image (8/16/32-bit or RGB), its current plane or every plane of a stack or
 * hyperstack, rectangles of the selection or of the ROI Manager as exemplars, an area selection as the
 * region to count. Outputs: rows of the "Cell counts" table, points in the overlay (and ROI Manager), the
 * density map (and mask/reconstruction) as new images on request, a log line with the device. A plane the
 * model finds unlike its training images (the library's out-of-domain warnings, issue 24) gets them in its
 * row's "warnings" column and one Log line each, "cellcount warning (title): message" (no dialog).
 */
public class CountCells implements PlugIn {
  static final String TABLE = "Cell counts";
  static final String OVERLAY_PREFIX = "cellcount ";
  static final String[] SLICES = {"current", "all"};
  static final String EX_SELECTION = "selection rectangles";
  static final String EX_MANAGER = "ROI Manager rectangles";
  static final String REGION_SELECTION = "area selection (if any)";
  static final String REGION_WHOLE = "whole image";
  static final String NO_MODEL = "(none found: give a folder)";
  static final Color[] CLASS_COLORS = {Color.yellow, Color.cyan, Color.magenta, Color.green, Color.orange,
      Color.red, Color.blue, Color.pink};

  /** Session memory of the dialog, per command (method). */
  private static final Map<String, String> LAST_MODEL = new HashMap<>();

  /** What the dialog asked for. */
  static final class Options {
    File modelDir;
    String modelName;
    boolean all;
    boolean exemplarsFromManager;
    boolean regionFromSelection;
    boolean density;
    boolean otherImages;
    boolean overlay;
    boolean roiManager;
    /** Write <image>_cellcount.csv and <image>_cellcount_points.csv beside the image file after the count. */
    boolean saveBeside;
    /** Outlines of the label image (the library's components of the method's mask) as overlay / ROI Manager. */
    boolean labelOutlines;
    /** A "Cell points" table: one row per point with the library's per-point measurements. */
    boolean pointTable;
    PredictParams params;
    /** The method's own prediction options given in the dialog (the rest take the model's values). */
    Map<String, Object> methodOptions = new LinkedHashMap<>();
  }

  @Override
  public void run(String arg) {
    String method = arg == null ? "" : arg.trim();
    if (!Support.ready()) return;
    ImagePlus imp = WindowManager.getCurrentImage();
    if (imp == null) {
      if (Support.unattended()) Support.error("no image is open to count");  // IJ.noImage() is a modal dialog
      else IJ.noImage();
      return;
    }
    // In a macro or batch run an error is a Log line and a row whose status says it; the macro goes on.
    Support.guarded(() -> countCurrent(method, imp), message -> errorRow(table(), imp.getTitle(), path(imp), message));
  }

  /** For macros and the tests (call("org.cellcount.fiji.CountCells.lastError")): the message of the last
   * error reported without a dialog in a macro or batch run, "" if none. */
  public static String lastError() {
    return Support.lastError();
  }

  /** For macros and the tests: how many errors were reported without a dialog so far (a number). */
  public static String failures() {
    return Integer.toString(Support.failures());
  }

  /** For the tests: forgets the errors so far, which they expected (ImageJ -batch then exits 0 again). */
  public static String resetFailures() {
    Support.resetFailures();
    return "";
  }

  /** The file an image was opened from, "" when it has none (made in ImageJ, or unsaved). */
  static String path(ImagePlus imp) {
    ij.io.FileInfo fi = imp.getOriginalFileInfo();
    if (fi == null || fi.fileName == null || fi.fileName.isEmpty()) return "";
    String dir = fi.directory == null ? "" : fi.directory;
    return new File(dir, fi.fileName).getPath();
  }

  /** A row for an image that could not be counted: its name and the reason in the status column. */
  static void errorRow(ResultsTable rt, String image, String path, String message) {
    rt.incrementCounter();
    rt.addValue("image", image);
    rt.addValue("path", path);
    rt.addValue("status", "error: " + message.replace('\n', ' '));
    showTable(rt);
  }

  private void countCurrent(String method, ImagePlus imp) throws CellCountException {
    Map<String, Object> lib = CellCount.libraryInfo();
    Map<?, ?> m = method.isEmpty() ? null : Support.method(lib, method);
    if (!method.isEmpty() && m == null) {
      Support.error("This libcellcount has no method '" + method + "' yet (it has: " + Support.methodIds(lib)
          + "). Use Plugins > Cell Counting > Count with any model for other models.");
      return;
    }
    Options o = dialog(imp, method, m, lib);
    if (o == null) return;
    count(imp, method, o);
  }

  private static boolean anyNeedsExemplars(Map<String, Object> lib) {
    for (Map<?, ?> m : Support.methods(lib)) if (Boolean.TRUE.equals(m.get("needs_exemplars"))) return true;
    return false;
  }

  /** The dialog; first label words are distinct, so each field records as its own macro key. */
  private static Options dialog(ImagePlus imp, String method, Map<?, ?> m, Map<String, Object> lib)
      throws CellCountException {
    boolean exemplarFields = m == null ? anyNeedsExemplars(lib) : Boolean.TRUE.equals(m.get("needs_exemplars"));
    List<ModelFinder.Entry> models = ModelFinder.find(method);
    String[] names = new String[Math.max(1, models.size())];
    names[0] = NO_MODEL;
    for (int k = 0; k < models.size(); k++) names[k] = models.get(k).name;
    PredictParams p = PredictParams.defaults();
    String title = m == null ? "Count with any model" : String.valueOf(m.get("display_name"));

    GenericDialog gd = new GenericDialog(Support.TITLE + ": " + title);
    gd.addChoice("Model", names, LAST_MODEL.getOrDefault(method, names[0]));
    gd.addDirectoryField("Folder (instead of the model above)", "", 28);
    gd.addChoice("Slices", SLICES, SLICES[0]);
    if (exemplarFields) gd.addChoice("Exemplars", new String[] {EX_SELECTION, EX_MANAGER}, EX_SELECTION);
    gd.addChoice("Region", new String[] {REGION_SELECTION, REGION_WHOLE}, REGION_SELECTION);
    gd.addCheckbox("Density map as a new image", false);
    gd.addCheckbox("Other result images (mask, reconstruction)", false);
    gd.addCheckbox("Points as overlay", true);
    if (!Support.headless()) gd.addCheckbox("ROI Manager: add the points", false);
    gd.addCheckbox("Save CSV and points next to the image", false);
    gd.addCheckbox("Label outlines (methods that give a mask)", false);
    gd.addCheckbox("Table of points (intensity, class, score, label)", false);
    gd.addMessage("Prediction (library defaults; empty = the model's tuned value)");
    gd.addChoice("Device", Support.deviceChoices(lib, p.device), p.device);
    gd.addChoice("Precision", precisions(p.precision), p.precision);
    gd.addNumericField("Tile size (0 = the model's)", p.tileSize, 0);
    gd.addNumericField("Overlap of tiles (-1 = the model's)", p.tileOverlap, 0);
    // the peak threshold on the library's 0-1 scale (cellcount.h, measurements), with the models' tuned values
    gd.addStringField("Relative threshold of peaks (0-1)", Support.formatOptional(p.peakThresholdRelative), 8);
    String tuned = tunedRelative(models);
    if (!tuned.isEmpty()) gd.addMessage("Tuned relative threshold (used when empty): " + tuned);
    gd.addStringField("Threshold of peaks (absolute)", Support.formatOptional(p.peakThreshold), 8);
    gd.addStringField("Minimum distance of peaks (pixels)", Support.formatOptional(p.peakMinDistance), 8);
    // The method's own prediction options, as the library declares them (cellcount_request_options(m,
    // "predict")); "Count with any model" offers those of every method. Empty = the model's tuned value.
    List<Map<String, Object>> methodOptions = predictOptions(method, lib);
    for (Map<String, Object> mo : methodOptions) gd.addStringField(RequestDialog.label(mo), "", 8);
    gd.showDialog();
    if (gd.wasCanceled()) return null;

    Options o = new Options();
    o.modelName = gd.getNextChoice();
    String folder = gd.getNextString().trim();
    o.all = SLICES[1].equals(gd.getNextChoice());
    o.exemplarsFromManager = exemplarFields && EX_MANAGER.equals(gd.getNextChoice());
    o.regionFromSelection = REGION_SELECTION.equals(gd.getNextChoice());
    o.density = gd.getNextBoolean();
    o.otherImages = gd.getNextBoolean();
    o.overlay = gd.getNextBoolean();
    o.roiManager = !Support.headless() && gd.getNextBoolean();
    o.saveBeside = gd.getNextBoolean();
    o.labelOutlines = gd.getNextBoolean();
    o.pointTable = gd.getNextBoolean();
    p.device = gd.getNextChoice();
    p.precision = gd.getNextChoice();
    p.tileSize = (int) gd.getNextNumber();
    p.tileOverlap = (int) gd.getNextNumber();
    if (gd.invalidNumber()) throw new IllegalArgumentException("Tile size and overlap must be whole numbers");
    p.peakThresholdRelative = Support.parseOptional(gd.getNextString(), "Relative threshold of peaks");
    if (!Float.isNaN(p.peakThresholdRelative) && !(p.peakThresholdRelative >= 0 && p.peakThresholdRelative <= 1))
      throw new IllegalArgumentException("Relative threshold of peaks: expected a number in [0, 1] or empty (the "
          + "model's tuned value), got " + p.peakThresholdRelative);
    p.peakThreshold = Support.parseOptional(gd.getNextString(), "Threshold of peaks");
    p.peakMinDistance = Support.parseOptional(gd.getNextString(), "Minimum distance of peaks");
    // By exact key in a macro (ImageJ alone would find a key inside a longer one, see RequestDialog).
    Map<String, String> exact = Macro.getOptions() == null ? null : RequestDialog.parseOptions(Macro.getOptions());
    for (Map<String, Object> mo : methodOptions) {
      String name = String.valueOf(mo.get("name"));
      String text = gd.getNextString();
      if (exact != null) text = exact.getOrDefault(name, "");
      if (!text.trim().isEmpty()) o.methodOptions.put(name, RequestDialog.value(mo, text));
    }
    p.wantDensity = o.density || o.labelOutlines;  // exemplar keeps its mask (the labels) only with the density
    o.params = p;

    if (!folder.isEmpty()) {
      o.modelDir = new File(folder);
      o.modelName = o.modelDir.getName();
    } else {
      for (ModelFinder.Entry e : models) if (e.name.equals(o.modelName)) o.modelDir = e.dir;
      if (o.modelDir == null)
        throw new IllegalArgumentException("No " + (method.isEmpty() ? "" : method + " ") + "model was found in:"
            + ModelFinder.describeSearch() + "\nGive a model folder (a folder holding model.json and weights.pt).");
      LAST_MODEL.put(method, o.modelName);
    }
    return o;
  }

  /** "name value, ..." of the models' tuned peak thresholds on the library's 0-1 scale ("" when none says):
   * model.json's thresholds.peak_threshold (dcl, exemplar) or detect_threshold (llp), converted by the library. */
  static String tunedRelative(List<ModelFinder.Entry> models) {
    List<String> out = new ArrayList<>();
    for (ModelFinder.Entry e : models) {
      try {
        String text = new String(java.nio.file.Files.readAllBytes(new File(e.dir, "model.json").toPath()),
            java.nio.charset.StandardCharsets.UTF_8);
        Object th = org.cellcount.Json.parseObject(text).get("thresholds");
        if (!(th instanceof Map)) continue;
        Object v = ((Map<?, ?>) th).get("peak_threshold");
        if (!(v instanceof Number)) v = ((Map<?, ?>) th).get("detect_threshold");
        if (v instanceof Number)
          out.add(e.name + " "
              + String.format(Locale.ROOT, "%.3f", CellCount.peakThresholdRelative(((Number) v).doubleValue())));
      } catch (Exception ignored) {
        // an unreadable model.json is reported when the model is loaded
      }
    }
    return String.join(", ", out);
  }

  /** The prediction options of the method, or of every method of the library (first declaration of a name
   * wins) for "Count with any model". */
  static List<Map<String, Object>> predictOptions(String method, Map<String, Object> lib) throws CellCountException {
    if (!method.isEmpty()) return CellCount.requestOptions(method, "predict");
    Map<String, Map<String, Object>> byName = new LinkedHashMap<>();
    for (Map<?, ?> m : Support.methods(lib))
      for (Map<String, Object> mo : CellCount.requestOptions(String.valueOf(m.get("id")), "predict"))
        byName.putIfAbsent(String.valueOf(mo.get("name")), mo);
    return new ArrayList<>(byName.values());
  }

  /** Precisions the header documents, the library's default first. */
  private static String[] precisions(String libraryDefault) {
    List<String> p = new ArrayList<>();
    p.add(libraryDefault);
    for (String s : new String[] {"fp32", "bf16", "fp16"}) if (!p.contains(s)) p.add(s);
    return p.toArray(new String[0]);
  }

  /** Counts with the options; rows, points and images of the planes done are kept on cancel or error. */
  static List<Integer> count(ImagePlus imp, String method, Options o) throws CellCountException {
    return count(imp, method, o, table());
  }

  /** As above, the rows into {@code rt} (Count folder keeps one table: without a table window ImageJ finds
   * none by its title, and each count would start a new one). */
  static List<Integer> count(ImagePlus imp, String method, Options o, ResultsTable rt) throws CellCountException {
    CellCountModel model = ModelCache.get(o.modelDir);
    if (!method.isEmpty() && !method.equals(model.method()))
      throw new IllegalArgumentException("'" + o.modelDir + "' holds a " + model.method() + " model ("
          + model.displayName() + "), not a " + method + " model. Use the command of that method, or "
          + "Plugins > Cell Counting > Count with any model.");
    if (!o.methodOptions.isEmpty()) {
      // only options the model's method declares (with "Count with any model" the dialog lists every method's)
      List<String> declared = new ArrayList<>();
      for (Map<String, Object> mo : CellCount.requestOptions(model.method(), "predict")) declared.add(String.valueOf(mo.get("name")));
      for (String k : o.methodOptions.keySet())
        if (!declared.contains(k))
          throw new IllegalArgumentException(k + " is not a prediction option of " + model.method() + " models (they take: "
              + (declared.isEmpty() ? "none" : String.join(", ", declared)) + ")");
      o.params.options(o.methodOptions);
    }
    boolean needs = model.needsExemplars();
    boolean pack = Inputs.packChannels(imp, model.inputChannels());
    List<Inputs.Position> positions = Inputs.positions(imp, o.all, pack);
    Roi selection = imp.getRoi();

    // Exemplars and region, checked for every plane before any work starts.
    boolean exemplarsFromSelection = needs && !o.exemplarsFromManager;
    Roi region = o.regionFromSelection ? Inputs.regionOf(selection, exemplarsFromSelection) : null;
    if (exemplarsFromSelection && region != null)
      IJ.log(Support.TITLE + ": the selection's non-rectangular parts are the region to count (note: overlapping"
          + " rectangles merge into one shape in a composite selection; keep such exemplars in the ROI Manager)");
    byte[] mask = region == null ? null : Inputs.mask(region, imp.getWidth(), imp.getHeight());
    List<Box[]> boxes = new ArrayList<>();
    Roi[] managerRois = null;
    if (needs && o.exemplarsFromManager) {
      RoiManager rm = RoiManager.getInstance2();
      managerRois = rm == null ? new Roi[0] : rm.getRoisAsArray();
    }
    for (Inputs.Position p : positions) {
      List<Box> b = new ArrayList<>();
      if (needs) b = exemplarsFromSelection ? Inputs.selectionRectangles(selection)
                                            : Inputs.managerRectangles(managerRois, p);
      if (needs && b.isEmpty())
        throw new IllegalArgumentException(model.displayName() + " needs at least one exemplar box"
            + (positions.size() > 1 ? " for slice " + p.index : "") + ": "
            + (exemplarsFromSelection
                ? "draw a rectangle around an example cell (hold Shift to add more rectangles)"
                : "add rectangles around example cells to the ROI Manager")
            + ", or choose the other exemplar source.");
      boxes.add(b.toArray(new Box[0]));
    }

    List<String> classes = model.classes();
    Overlay overlay = imp.getOverlay() != null ? imp.getOverlay() : new Overlay();
    List<Prediction.Image> densities = new ArrayList<>();
    List<Prediction.Image> masks = new ArrayList<>();
    List<Prediction.Image> reconstructions = new ArrayList<>();
    List<Integer> doneIndices = new ArrayList<>();
    double total = 0;
    // the counted area and cells per unit2 are the library's (cellcount_result_measure), for this calibration
    Calibration cal = imp.getCalibration();
    o.params.pixelWidth = cal.pixelWidth;
    o.params.pixelHeight = cal.pixelHeight;
    o.params.unit = cal.getUnit();
    List<String> pointRows = new ArrayList<>();
    String noLabels = "";
    List<Integer> rowsWritten = new ArrayList<>();
    String device = "", precision = "";
    boolean cancelled = false;
    long t0 = System.nanoTime();
    IJ.resetEscape();
    try {
      for (int i = 0; i < positions.size(); i++) {
        Inputs.Position p = positions.get(i);
        PixelData px = Inputs.pixels(imp, p);
        String what = positions.size() > 1 ? "Counting slice " + (i + 1) + "/" + positions.size() : "Counting";
        Prediction r;
        try {
          r = model.predict(px, boxes.get(i), mask, o.params, Support.progress(i, positions.size(), what));
        } catch (CellCountException e) {
          if (!e.isCancelled()) throw e;
          cancelled = true;
          break;
        }
        for (String w : r.warnings) IJ.log(Support.warningLine(imp.getTitle(), positions.size() > 1 ? p.index : 0, w));
        total += r.count;
        device = r.device;
        precision = r.precision;
        doneIndices.add(p.index);
        rowsWritten.add(addRow(rt, imp, p, r, classes, model, o, needs ? boxes.get(i).length : -1, region != null));
        double[] intensity = r.intensities();
        int[] label = r.pointLabels();
        for (int k = 0; k < r.numPoints(); k++) {
          int c = r.classIds[k];
          pointRows.add(p.index + "," + r.xy[2 * k] + "," + r.xy[2 * k + 1] + ","
              + CountFolder.quote(c >= 0 && c < classes.size() ? classes.get(c) : "class " + c) + "," + r.scores[k]
              + "," + (k < intensity.length && !Double.isNaN(intensity[k]) ? Double.toString(intensity[k]) : "")
              + "," + (k < label.length ? label[k] : 0));
        }
        if (o.pointTable) addPointRows(imp, p, r, classes);
        if (o.overlay || o.roiManager) addPoints(imp, overlay, p, r, classes, o);
        if (o.labelOutlines) {
          if (r.labels != null && r.mask != null) addOutlines(imp, overlay, p, r, o);
          else if (noLabels.isEmpty()) noLabels = labelsReason(r);
        }
        if (r.density != null) densities.add(r.density);
        if (r.mask != null) masks.add(r.mask);
        if (r.reconstruction != null) reconstructions.add(r.reconstruction);
        showTable(rt);
      }
    } finally {
      Support.done();
      IJ.resetEscape();
      if ((o.overlay || o.labelOutlines) && overlay.size() > 0) imp.setOverlay(overlay);
      String stem = imp.getShortTitle();
      if (o.density) showImages(imp, stem + "-density", densities, doneIndices);
      if (o.otherImages) {
        showImages(imp, stem + "-mask", masks, doneIndices);
        showImages(imp, stem + "-reconstruction", reconstructions, doneIndices);
      }
      // the counted image stays the active one (issue 21: the density map took its place, and the next
      // command of a macro or a click went to the density map)
      if ((o.density && !densities.isEmpty()) || (o.otherImages && !(masks.isEmpty() && reconstructions.isEmpty())))
        activate(imp);
    }
    if (!noLabels.isEmpty()) IJ.log(Support.TITLE + ": no label outlines: " + noLabels);
    if (o.saveBeside && !doneIndices.isEmpty()) saveBeside(rt, imp, pointRows);
    double seconds = (System.nanoTime() - t0) / 1e9;
    String line = String.format(Locale.ROOT, "%s: %s%d of %d plane(s) of '%s', total count %.1f, model %s (%s) on %s %s, %.2f s",
        Support.TITLE, cancelled ? "CANCELLED (Esc) after " : "", doneIndices.size(), positions.size(), imp.getTitle(),
        total, o.modelName, model.method(), device.isEmpty() ? "-" : device, precision, seconds);
    IJ.log(line);
    IJ.showStatus(cancelled ? "Cell counting cancelled; the model stays loaded" : "Cell counting done");
    return rowsWritten;
  }

  /** Makes {@code imp} the current image again, in batch mode and in the GUI, when it is shown or a batch image. */
  static void activate(ImagePlus imp) {
    if (imp.getWindow() != null || ij.macro.Interpreter.getBatchModeImage(imp.getID()) != null)
      IJ.selectWindow(imp.getID());
  }

  static final String[] SAVED_COLUMNS = {"image", "path", "slice", "count", "points", "area", "cells per unit2",
      "pixel width", "pixel height", "unit", "region", "model", "method", "device", "precision", "seconds", "warnings",
      "status"};

  /**
   * Writes the table's rows of this image file to &lt;image&gt;_cellcount.csv and the points of this count to
   * &lt;image&gt;_cellcount_points.csv (slice, x, y, class, score) beside the file. An earlier pair this command
   * wrote is replaced (a recount); a file of that name it did not write (another header) is left alone and
   * the refusal is an error. An image without a file: an error saying so.
   */
  static void saveBeside(ResultsTable rt, ImagePlus imp, List<String> pointRows) {
    String path = path(imp);
    if (path.isEmpty()) {
      Support.error("'" + imp.getTitle() + "' has no file (made or changed in ImageJ, not saved): nothing saved beside it");
      return;
    }
    File src = new File(path);
    String stem = src.getName().replaceFirst("\\.[^.]*$", "");
    File counts = new File(src.getParentFile(), stem + "_cellcount.csv");
    File points = new File(src.getParentFile(), stem + "_cellcount_points.csv");
    String countsHead = String.join(",", SAVED_COLUMNS), pointsHead = "slice,x,y,class,score,intensity,label";
    try {
      for (File f : new File[] {counts, points}) {
        if (!f.exists()) continue;
        String first = java.nio.file.Files.newBufferedReader(f.toPath()).readLine();
        // also the headers of earlier versions (no warnings column before issue 24; points without intensity, label)
        if (first == null || !(first.equals(countsHead) || first.equals(countsHead.replace(",warnings,", ","))
            || first.equals(pointsHead) || first.equals("slice,x,y,class,score"))) {
          Support.error(f + " exists and was not written by Cell Counting; not replaced (nothing saved)");
          return;
        }
      }
      StringBuilder b = new StringBuilder(countsHead).append('\n');
      for (int r = 0; r < rt.size(); r++) {
        if (!path.equals(rt.getStringValue("path", r))) continue;
        for (int c = 0; c < SAVED_COLUMNS.length; c++) {
          String col = SAVED_COLUMNS[c];
          String v = !rt.columnExists(col) ? "" : rt.getStringValue(col, r);
          if (col.equals("count") || col.equals("area") || col.equals("cells per unit2") || col.equals("seconds")
              || col.equals("pixel width") || col.equals("pixel height")) {
            double d = rt.columnExists(col) ? rt.getValue(col, r) : Double.NaN;
            v = Double.isNaN(d) ? "" : Double.toString(d);
          } else if (col.equals("slice") || col.equals("points")) {
            v = Long.toString((long) rt.getValue(col, r));
          }
          b.append(c == 0 ? "" : ",").append(CountFolder.quote(v == null ? "" : v));
        }
        b.append('\n');
      }
      java.nio.file.Files.write(counts.toPath(), b.toString().getBytes(java.nio.charset.StandardCharsets.UTF_8));
      StringBuilder q = new StringBuilder(pointsHead).append('\n');
      for (String line : pointRows) q.append(line).append('\n');
      java.nio.file.Files.write(points.toPath(), q.toString().getBytes(java.nio.charset.StandardCharsets.UTF_8));
      IJ.log(Support.TITLE + ": saved " + counts + " and " + points.getName());
    } catch (java.io.IOException e) {
      Support.error("cannot save beside " + path + ": " + e.getMessage());
    }
  }

  /** The "Cell counts" table, appended to (never cleared). Headless there are no table windows: the
   * system Results table is used. */
  static ResultsTable table() {
    if (Support.headless()) return ResultsTable.getResultsTable();
    ResultsTable rt = ResultsTable.getResultsTable(TABLE);
    return rt != null ? rt : new ResultsTable();
  }

  static void showTable(ResultsTable rt) {
    if (!Support.headless()) rt.show(TABLE);
  }

  /**
   * The row of one counted plane, with the source file, the image's spatial calibration, the counted area
   * (region or whole plane, in calibrated units squared) and, when calibrated, cells per unit squared. A row
   * of the same image file, slice, model and region is replaced where it is (a recount); an image without a
   * file always gets a new row (two unsaved images may share a title).
   */
  /** Same hyperstack position (z, frame) as row k, or neither is a hyperstack row. */
  private static boolean samePosition(ResultsTable rt, int k, ImagePlus imp, Inputs.Position p) {
    boolean rowHyper = rt.columnExists("z") && !Double.isNaN(rt.getValue("z", k)) && rt.getValue("z", k) > 0;
    if (!imp.isHyperStack()) return !rowHyper;
    return rowHyper && rt.getValue("z", k) == p.z && rt.getValue("frame", k) == p.t;
  }

  private static int addRow(ResultsTable rt, ImagePlus imp, Inputs.Position p, Prediction r, List<String> classes,
      CellCountModel model, Options o, int exemplars, boolean inRegion) {
    String path = path(imp);
    String regionName = inRegion ? "selection" : "whole image";
    int row = -1;
    if (!path.isEmpty() && rt.columnExists("path"))
      for (int k = 0; k < rt.size() && row < 0; k++)
        if (path.equals(rt.getStringValue("path", k)) && imp.getTitle().equals(rt.getStringValue("image", k))
            && rt.getValue("slice", k) == p.index && o.modelName.equals(rt.getStringValue("model", k))
            && regionName.equals(rt.getStringValue("region", k)) && "ok".equals(rt.getStringValue("status", k))
            && samePosition(rt, k, imp, p))
          row = k;
    if (row < 0) {
      rt.incrementCounter();
      row = rt.size() - 1;
    }
    Calibration cal = imp.getCalibration();
    rt.setValue("image", row, imp.getTitle());
    rt.setValue("slice", row, p.index);
    if (imp.isHyperStack()) {
      rt.setValue("channel", row, p.c == 0 ? "all" : String.valueOf(p.c));
      rt.setValue("z", row, p.z);
      rt.setValue("frame", row, p.t);
    }
    rt.setValue("count", row, r.count);
    if (r.classCounts.length > 1)
      for (int k = 0; k < r.classCounts.length; k++)
        rt.setValue("count " + (k < classes.size() ? classes.get(k) : "class " + k), row, r.classCounts[k]);
    if (r.classCounts.length > 1)  // the library's proportions (class_fractions): NaN when no cell was counted
      for (int k = 0; k < r.classCounts.length; k++)
        rt.setValue("fraction " + (k < classes.size() ? classes.get(k) : "class " + k), row, r.classFraction(k));
    rt.setValue("points", row, r.numPoints());
    if (exemplars >= 0) rt.setValue("exemplars", row, exemplars);
    rt.setValue("region", row, regionName);
    rt.setValue("area", row, r.measurement("area"));
    rt.setValue("cells per unit2", row, r.measurement("cells_per_unit2"));
    // the cell size counted with, for models with one (given, or estimated when the option diameter is 0)
    if (!Double.isNaN(r.diameter())) rt.setValue("diameter", row, r.diameter());
    rt.setValue("pixel width", row, cal.pixelWidth);
    rt.setValue("pixel height", row, cal.pixelHeight);
    rt.setValue("unit", row, cal.getUnit());
    rt.setValue("path", row, path);
    rt.setValue("model", row, o.modelName);
    rt.setValue("method", row, model.method());
    rt.setValue("device", row, r.device);
    rt.setValue("precision", row, r.precision);
    rt.setValue("seconds", row, r.seconds);
    rt.setValue("warnings", row, Support.warningsCell(r.warnings));
    rt.setValue("status", row, "ok");
    return row;
  }

  /** Points as one PointRoi per class and plane, positioned on that plane. Earlier cellcount points of the
   * same plane are replaced; other overlay elements and the ROI Manager are never cleared. */
  static final String POINTS_TABLE = "Cell points";

  /** One row per point into the "Cell points" table (headless: a table without a window, kept for macros). */
  private static void addPointRows(ImagePlus imp, Inputs.Position p, Prediction r, List<String> classes) {
    ResultsTable pt = Support.headless() ? POINTS_HEADLESS : ResultsTable.getResultsTable(POINTS_TABLE);
    if (pt == null) pt = new ResultsTable();
    double[] intensity = r.intensities();
    int[] label = r.pointLabels();
    for (int k = 0; k < r.numPoints(); k++) {
      int c = r.classIds[k];
      pt.incrementCounter();
      pt.addValue("image", imp.getTitle());
      pt.addValue("slice", p.index);
      pt.addValue("x", r.xy[2 * k]);
      pt.addValue("y", r.xy[2 * k + 1]);
      pt.addValue("class", c >= 0 && c < classes.size() ? classes.get(c) : "class " + c);
      pt.addValue("score", r.scores[k]);
      pt.addValue("intensity", k < intensity.length ? intensity[k] : Double.NaN);
      pt.addValue("label", k < label.length ? label[k] : 0);
    }
    if (!Support.headless()) pt.show(POINTS_TABLE);
  }

  private static final ResultsTable POINTS_HEADLESS = new ResultsTable();

  /** For macros and the tests: the "Cell points" table's rows as CSV text (also headless). */
  public static String pointTableCsv() {
    ResultsTable pt = Support.headless() ? POINTS_HEADLESS : ResultsTable.getResultsTable(POINTS_TABLE);
    if (pt == null) return "";
    StringBuilder b = new StringBuilder("image,slice,x,y,class,score,intensity,label\n");
    for (int k = 0; k < pt.size(); k++)
      b.append(CountFolder.quote(pt.getStringValue("image", k))).append(',').append((long) pt.getValue("slice", k))
          .append(',').append(pt.getValue("x", k)).append(',').append(pt.getValue("y", k)).append(',')
          .append(CountFolder.quote(pt.getStringValue("class", k))).append(',').append(pt.getValue("score", k))
          .append(',').append(pt.getValue("intensity", k)).append(',').append((long) pt.getValue("label", k)).append('\n');
    return b.toString();
  }

  /** Why a result has no label image (the library's reason). */
  private static String labelsReason(Prediction r) {
    Object lab = r.measurements.get("labels");
    Object why = lab instanceof Map ? ((Map<?, ?>) lab).get("reason") : null;
    return why == null ? "the method gives no mask" : String.valueOf(why);
  }

  static final String OUTLINE_PREFIX = "cellcount label ";

  /** The library's label image as one outline ROI per component, in the overlay (earlier outlines of the plane
   * replaced) and, when asked, the ROI Manager. */
  private static void addOutlines(ImagePlus imp, Overlay overlay, Inputs.Position p, Prediction r, Options o) {
    boolean stack = imp.getStackSize() > 1;
    int w = r.mask.width, h = r.mask.height;
    int n = 0;
    for (int v : r.labels) n = Math.max(n, v);
    for (Roi old : overlay.toArray())
      if (old.getName() != null && old.getName().startsWith(OUTLINE_PREFIX)
          && (!stack || old.getPosition() == p.index || (old.hasHyperStackPosition() && old.getZPosition() == p.z
              && old.getTPosition() == p.t)))
        overlay.remove(old);
    ij.process.ShortProcessor ip = new ij.process.ShortProcessor(w, h);
    for (int k = 0; k < r.labels.length; k++) ip.set(k, Math.min(r.labels[k], 65535));
    for (int id = 1; id <= n && id <= 65535; id++) {
      ip.setThreshold(id, id, ij.process.ImageProcessor.NO_LUT_UPDATE);
      Roi roi = ij.plugin.filter.ThresholdToSelection.run(new ImagePlus("", ip));
      if (roi == null) continue;
      roi.setName(OUTLINE_PREFIX + id + (stack ? " slice " + p.index : ""));
      roi.setStrokeColor(Color.yellow);
      if (imp.isHyperStack()) roi.setPosition(p.c, p.z, p.t);
      else if (stack) roi.setPosition(p.index);
      overlay.add(roi);
      if (o.roiManager) {
        RoiManager rm = RoiManager.getInstance2();
        if (rm == null) rm = RoiManager.getRoiManager();
        rm.add(imp, (Roi) roi.clone(), -1);
      }
    }
  }

  private static void addPoints(ImagePlus imp, Overlay overlay, Inputs.Position p, Prediction r, List<String> classes,
      Options o) {
    boolean stack = imp.getStackSize() > 1;
    if (o.overlay) {
      for (Roi old : overlay.toArray()) {
        if (old.getName() == null || !old.getName().startsWith(OVERLAY_PREFIX)) continue;
        boolean same = !stack || (old.hasHyperStackPosition() ? old.getZPosition() == p.z && old.getTPosition() == p.t
                                                              : old.getPosition() == p.index);
        if (same) overlay.remove(old);
      }
    }
    int nClasses = Math.max(classes.size(), 1);
    for (int k = 0; k < nClasses; k++) {
      int n = 0;
      for (int c : r.classIds) if (c == k || (k == 0 && (c < 0 || c >= nClasses))) n++;
      if (n == 0) continue;
      float[] xs = new float[n], ys = new float[n];
      int j = 0;
      for (int i = 0; i < r.classIds.length; i++) {
        int c = r.classIds[i];
        if (c == k || (k == 0 && (c < 0 || c >= nClasses))) {
          xs[j] = r.xy[2 * i];
          ys[j] = r.xy[2 * i + 1];
          j++;
        }
      }
      PointRoi roi = new PointRoi(xs, ys, n);
      String cls = k < classes.size() ? classes.get(k) : "class " + k;
      roi.setName(OVERLAY_PREFIX + cls + (stack ? " slice " + p.index : ""));
      roi.setStrokeColor(CLASS_COLORS[k % CLASS_COLORS.length]);
      roi.setPointType(PointRoi.DOT);
      roi.setSize(1);
      if (imp.isHyperStack()) roi.setPosition(p.c, p.z, p.t);
      else if (stack) roi.setPosition(p.index);
      if (o.overlay) overlay.add(roi);
      if (o.roiManager) {
        RoiManager rm = RoiManager.getInstance2();
        if (rm == null) rm = RoiManager.getRoiManager();
        rm.add(imp, (Roi) roi.clone(), -1);
      }
    }
  }

  /** A result image per plane done, as a new 32-bit image (stack) with the source's spatial calibration. */
  private static void showImages(ImagePlus imp, String title, List<Prediction.Image> images, List<Integer> indices) {
    if (images.isEmpty()) return;
    int w = images.get(0).width, h = images.get(0).height, c = images.get(0).channels;
    ImageStack st = new ImageStack(w, h);
    for (int i = 0; i < images.size(); i++) {
      Prediction.Image im = images.get(i);
      for (int ch = 0; ch < c; ch++) {
        float[] plane = new float[w * h];
        for (int q = 0; q < w * h; q++) plane[q] = im.data[q * c + ch];
        String label = "slice " + indices.get(i) + (c > 1 ? " channel " + (ch + 1) : "");
        st.addSlice(label, new FloatProcessor(w, h, plane));
      }
    }
    ImagePlus out = new ImagePlus(title, st);
    if (c > 1) {
      out.setDimensions(c, 1, images.size());
      out.setOpenAsHyperStack(true);
    }
    Calibration cal = imp.getCalibration().copy();
    cal.disableDensityCalibration();
    out.setCalibration(cal);
    out.resetDisplayRange();
    out.show();
  }
}
