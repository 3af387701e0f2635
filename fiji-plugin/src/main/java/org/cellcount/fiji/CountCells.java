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
 * density map (and mask/reconstruction) as new images on request, a log line with the device.
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
    gd.addMessage("Prediction (library defaults; empty = the model's tuned value)");
    gd.addChoice("Device", Support.deviceChoices(lib, p.device), p.device);
    gd.addChoice("Precision", precisions(p.precision), p.precision);
    gd.addNumericField("Tile size (0 = the model's)", p.tileSize, 0);
    gd.addNumericField("Overlap of tiles (-1 = the model's)", p.tileOverlap, 0);
    gd.addStringField("Threshold of peaks", Support.formatOptional(p.peakThreshold), 8);
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
    p.device = gd.getNextChoice();
    p.precision = gd.getNextChoice();
    p.tileSize = (int) gd.getNextNumber();
    p.tileOverlap = (int) gd.getNextNumber();
    if (gd.invalidNumber()) throw new IllegalArgumentException("Tile size and overlap must be whole numbers");
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
    p.wantDensity = o.density;
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
  static void count(ImagePlus imp, String method, Options o) throws CellCountException {
    count(imp, method, o, table());
  }

  /** As above, the rows into {@code rt} (Count folder keeps one table: without a table window ImageJ finds
   * none by its title, and each count would start a new one). */
  static void count(ImagePlus imp, String method, Options o, ResultsTable rt) throws CellCountException {
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
        total += r.count;
        device = r.device;
        precision = r.precision;
        doneIndices.add(p.index);
        addRow(rt, imp, p, r, classes, model, o, needs ? boxes.get(i).length : -1, region != null);
        if (o.overlay || o.roiManager) addPoints(imp, overlay, p, r, classes, o);
        if (r.density != null) densities.add(r.density);
        if (r.mask != null) masks.add(r.mask);
        if (r.reconstruction != null) reconstructions.add(r.reconstruction);
        showTable(rt);
      }
    } finally {
      Support.done();
      IJ.resetEscape();
      if (o.overlay && overlay.size() > 0) imp.setOverlay(overlay);
      String stem = imp.getShortTitle();
      if (o.density) showImages(imp, stem + "-density", densities, doneIndices);
      if (o.otherImages) {
        showImages(imp, stem + "-mask", masks, doneIndices);
        showImages(imp, stem + "-reconstruction", reconstructions, doneIndices);
      }
    }
    double seconds = (System.nanoTime() - t0) / 1e9;
    String line = String.format(Locale.ROOT, "%s: %s%d of %d plane(s) of '%s', total count %.1f, model %s (%s) on %s %s, %.2f s",
        Support.TITLE, cancelled ? "CANCELLED (Esc) after " : "", doneIndices.size(), positions.size(), imp.getTitle(),
        total, o.modelName, model.method(), device.isEmpty() ? "-" : device, precision, seconds);
    IJ.log(line);
    IJ.showStatus(cancelled ? "Cell counting cancelled; the model stays loaded" : "Cell counting done");
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

  private static void addRow(ResultsTable rt, ImagePlus imp, Inputs.Position p, Prediction r, List<String> classes,
      CellCountModel model, Options o, int exemplars, boolean inRegion) {
    rt.incrementCounter();
    rt.addValue("image", imp.getTitle());
    rt.addValue("slice", p.index);
    if (imp.isHyperStack()) {
      rt.addValue("channel", p.c == 0 ? "all" : String.valueOf(p.c));
      rt.addValue("z", p.z);
      rt.addValue("frame", p.t);
    }
    rt.addValue("count", r.count);
    if (r.classCounts.length > 1)
      for (int k = 0; k < r.classCounts.length; k++)
        rt.addValue("count " + (k < classes.size() ? classes.get(k) : "class " + k), r.classCounts[k]);
    rt.addValue("points", r.numPoints());
    if (exemplars >= 0) rt.addValue("exemplars", exemplars);
    rt.addValue("region", inRegion ? "selection" : "whole image");
    rt.addValue("model", o.modelName);
    rt.addValue("method", model.method());
    rt.addValue("device", r.device);
    rt.addValue("precision", r.precision);
    rt.addValue("seconds", r.seconds);
    rt.addValue("status", "ok");
  }

  /** Points as one PointRoi per class and plane, positioned on that plane. Earlier cellcount points of the
   * same plane are replaced; other overlay elements and the ROI Manager are never cleared. */
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
