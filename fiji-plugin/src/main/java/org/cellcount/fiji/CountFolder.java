package org.cellcount.fiji;

import ij.IJ;
import ij.ImagePlus;
import ij.gui.GenericDialog;
import ij.measure.ResultsTable;
import ij.plugin.PlugIn;
import java.io.File;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import org.cellcount.CellCount;
import org.cellcount.CellCountException;
import org.cellcount.PredictParams;

/**
 * Plugins &gt; Cell Counting &gt; Count folder...: every image file of a folder (every plane of stacks) with one
 * model, into the "Cell counts" table and one CSV. Recordable like any dialog command:
 * {@code run("Count folder...", "input=[/data/images] model=dcl-vgg folder=[] output=[/data/counts.csv] slices=all")}.
 *
 * <p>Made for unattended runs (issue 21): an image that cannot be opened or counted is reported in the Log
 * and in the status column of the table and the CSV, and the run goes on to the next image; each row is
 * written to the CSV as soon as it is produced (an interrupted run keeps what was done); under ImageJ -batch
 * the JVM ends with exit status 1 when any image failed (Support.failed). The CSV is never overwritten.
 * Which files are images is the library's answer (cellcount_is_image_file); ImageJ opens them, so the
 * image is the same as when a person opens it.
 */
public class CountFolder implements PlugIn {
  static final String DEFAULT_OUTPUT = "cellcount_counts.csv";
  static final String[] COLUMNS = {"image", "slice", "count", "points", "model", "method", "device", "precision",
      "seconds", "area", "cells per unit2", "pixel width", "pixel height", "unit", "path", "warnings", "status"};

  private static String lastInput = "";

  @Override
  public void run(String arg) {
    if (!Support.ready()) return;
    Support.guarded(CountFolder::countFolder);
  }

  private static void countFolder() throws CellCountException {
    List<ModelFinder.Entry> models = ModelFinder.find("");
    String[] names = new String[Math.max(1, models.size())];
    names[0] = CountCells.NO_MODEL;
    for (int k = 0; k < models.size(); k++) names[k] = models.get(k).name;

    GenericDialog gd = new GenericDialog(Support.TITLE + ": Count folder");
    gd.addDirectoryField("Input folder of images", lastInput, 28);
    gd.addChoice("Model", names, names[0]);
    gd.addDirectoryField("Folder (instead of the model above)", "", 28);
    gd.addFileField("Output CSV (empty = " + DEFAULT_OUTPUT + " in the input folder)", "", 28);
    gd.addChoice("Slices", CountCells.SLICES, CountCells.SLICES[1]);
    gd.showDialog();
    if (gd.wasCanceled()) return;
    String input = gd.getNextString().trim();
    String modelName = gd.getNextChoice();
    String modelFolder = gd.getNextString().trim();
    String output = gd.getNextString().trim();
    boolean all = CountCells.SLICES[1].equals(gd.getNextChoice());
    runFolder(input, modelName, modelFolder, output, all, models);
  }

  /**
   * The work of the command, without its dialog (also the headless route, {@link Headless}): returns the
   * number of images that failed. Bad arguments (no folder, no model, an existing output) throw
   * IllegalArgumentException with the reason.
   */
  static int runFolder(String input, String modelName, String modelFolder, String output, boolean all,
      List<ModelFinder.Entry> models) throws CellCountException {
    File dir = new File(input);
    if (input.isEmpty() || !dir.isDirectory())
      throw new IllegalArgumentException("Count folder: input '" + input + "' is not a folder");
    lastInput = input;
    CountCells.Options o = new CountCells.Options();
    o.all = all;
    o.overlay = false;
    o.params = PredictParams.defaults();
    if (!modelFolder.isEmpty()) {
      o.modelDir = new File(modelFolder);
      o.modelName = o.modelDir.getName();
    } else {
      o.modelName = modelName;
      for (ModelFinder.Entry e : models) if (e.name.equals(modelName)) o.modelDir = e.dir;
      if (o.modelDir == null)
        throw new IllegalArgumentException("Count folder: no model '" + modelName + "' was found in:"
            + ModelFinder.describeSearch() + "\nGive a model folder (folder=[...]).");
    }
    File out = output.isEmpty() ? new File(dir, DEFAULT_OUTPUT) : new File(output);
    if (out.exists())
      throw new IllegalArgumentException("Count folder: " + out + " exists; give another output (nothing was overwritten)");
    ModelCache.get(o.modelDir); // a wrong model is one error, not one per image

    List<File> files = new ArrayList<>();
    File[] listed = dir.listFiles();
    if (listed != null) {
      Arrays.sort(listed);
      for (File f : listed) if (f.isFile() && CellCount.isImageFile(f.getPath())) files.add(f);
    }
    if (files.isEmpty()) throw new IllegalArgumentException("Count folder: no image files in " + dir);

    ResultsTable rt = CountCells.table();
    int failed = 0, done = 0;
    boolean cancelled = false;
    try (Writer w = new OutputStreamWriter(Files.newOutputStream(out.toPath(), StandardOpenOption.CREATE_NEW),
        StandardCharsets.UTF_8)) {
      w.write(String.join(",", COLUMNS) + "\n");
      w.flush();
      for (int i = 0; i < files.size() && !cancelled; i++) {
        File f = files.get(i);
        IJ.showStatus("Count folder: " + (i + 1) + "/" + files.size() + " " + f.getName());
        int first = rt.size();
        List<Integer> written = new ArrayList<>();
        String problem = null;
        ImagePlus imp = null;
        try {
          imp = IJ.openImage(f.getPath());
          if (imp == null) throw new IllegalArgumentException("ImageJ cannot open it (not an image ImageJ reads, or damaged)");
          written = CountCells.count(imp, "", o, rt);
          if (IJ.escapePressed()) cancelled = true;
        } catch (CellCountException e) {
          if (e.isCancelled()) cancelled = true;
          else problem = e.getMessage() + " (" + e.statusName() + ")";
        } catch (RuntimeException e) { // IllegalArgumentException of the inputs, or anything ImageJ's reader throws
          problem = e.getMessage() == null ? e.toString() : e.getMessage();
        } finally {
          if (imp != null) imp.close();
        }
        if (problem != null) {
          failed++;
          Support.failed("Count folder: skipped '" + f.getName() + "': " + problem);
          CountCells.errorRow(rt, f.getName(), f.getPath(), problem);
        } else if (!cancelled) {
          done++;
        }
        // the rows of this image: replaced ones (a recount of a file counted before) and new ones
        for (int r : written) w.write(csvRow(rt, r) + "\n");
        for (int r = first; r < rt.size(); r++) if (!written.contains(r)) w.write(csvRow(rt, r) + "\n");
        w.flush(); // rows are on disk as they are produced
      }
    } catch (IOException e) {
      throw new IllegalArgumentException("Count folder: cannot write " + out + ": " + e.getMessage());
    }
    IJ.log(String.format(Locale.ROOT, "%s: Count folder: %d image(s) of %s counted into %s%s%s", Support.TITLE, done,
        dir, out, failed > 0 ? ", " + failed + " failed (see above)" : "", cancelled ? ", CANCELLED (Esc)" : ""));
    IJ.showStatus("Count folder: " + done + " counted" + (failed > 0 ? ", " + failed + " failed" : ""));
    if (failed > 0 && !Support.unattended())
      IJ.showMessage(Support.TITLE, failed + " of " + files.size() + " image(s) could not be counted; the Log and the"
          + " status column say why.");
    return failed;
  }

  /** One table row as CSV: the columns above; an error row has its image and status only. */
  static String csvRow(ResultsTable rt, int r) {
    String status = text(rt, "status", r);
    boolean error = status.startsWith("error");
    StringBuilder b = new StringBuilder();
    for (int c = 0; c < COLUMNS.length; c++) {
      if (c > 0) b.append(',');
      String col = COLUMNS[c];
      String v;
      if (col.equals("slice") || col.equals("points")) v = error ? "" : Long.toString((long) rt.getValue(col, r));
      else if (col.equals("count") || col.equals("seconds"))
        v = error ? "" : String.format(Locale.ROOT, "%.3f", rt.getValue(col, r));
      else if (col.equals("area") || col.equals("cells per unit2") || col.equals("pixel width") || col.equals("pixel height")) {
        double d = error || !rt.columnExists(col) ? Double.NaN : rt.getValue(col, r);
        v = Double.isNaN(d) ? "" : Double.toString(d);
      } else v = error && !col.equals("image") && !col.equals("status") && !col.equals("path") ? "" : text(rt, col, r);
      b.append(quote(v));
    }
    return b.toString();
  }

  private static String text(ResultsTable rt, String col, int r) {
    if (!rt.columnExists(col)) return "";
    String v = rt.getStringValue(col, r);
    return v == null || v.equals("NaN") ? "" : v;
  }

  static String quote(String v) {
    if (v.indexOf(',') < 0 && v.indexOf('"') < 0 && v.indexOf('\n') < 0) return v;
    return "\"" + v.replace("\"", "\"\"") + "\"";
  }
}
