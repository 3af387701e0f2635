package org.cellcount.fiji;

import ij.IJ;
import ij.macro.Interpreter;
import java.awt.GraphicsEnvironment;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.cellcount.CellCount;
import org.cellcount.CellCountException;
import org.cellcount.ProgressListener;

/** What every command shares: loading the library, errors, progress with Esc, small formatting helpers. */
final class Support {
  static final String TITLE = "Cell Counting";

  private static boolean logInstalled;

  private Support() {}

  /** Loads the native library (once) and routes its warnings and errors to the Log window. Shows the
   * loader's message (where it looked) and returns false when it cannot be loaded. */
  static synchronized boolean ready() {
    try {
      CellCount.load();
      if (!logInstalled) {
        // (a result's out-of-domain warnings are not logged by the library: a count logs them with the image's title)
        CellCount.setLogListener((level, msg) -> IJ.log("cellcount: " + msg), CellCount.LOG_WARN);
        logInstalled = true;
      }
      return true;
    } catch (CellCountException e) {
      error(e.getMessage());
      return false;
    }
  }

  /** The "warnings" cell of a count's row: the messages joined by "; ", empty when none. */
  static String warningsCell(List<String> warnings) {
    return String.join("; ", warnings);
  }

  /** A Log line of one out-of-domain warning of an image (and slice, when the count has several planes). */
  static String warningLine(String title, int slice, String message) {
    return "cellcount warning (" + title + (slice > 0 ? ", slice " + slice : "") + "): " + message;
  }

  /** Errors reported without a dialog in this JVM (see {@link #failed}); what the last one said. */
  private static int failures;
  private static String lastError = "";
  private static boolean exitHook;

  /**
   * True when nobody may be there to close a dialog: a macro runs (batch mode or not), or ImageJ has no
   * window (-batch on the command line, headless). A modal error there hung a batch run forever (issue 21):
   * ImageJ's macro error dialog under -batch waits for a click that never comes.
   */
  static boolean unattended() {
    return IJ.getInstance() == null || Interpreter.isBatchMode() || IJ.isMacro();
  }

  /** An error: a dialog in the GUI; in a macro or batch run a line in the Log and the run goes on
   * ({@link #failed}). */
  static void error(String message) {
    if (unattended()) failed(message);
    else IJ.error(TITLE, message);
  }

  /**
   * An error of a macro or batch run: a Log line (ImageJ without a window prints its Log to stdout), no
   * dialog, no abort, so the macro goes on (to the next image). Without an ImageJ window (ImageJ -batch)
   * the JVM then ends with exit status 1 instead of ImageJ's 0, so that a script sees that something
   * failed: a shutdown hook halts with 1 (the only way to change the status ImageJ's main passes to
   * System.exit). Choice: a hook rather than System.exit here, which would cut the macro short.
   */
  static synchronized void failed(String message) {
    failures++;
    lastError = message;
    IJ.log(TITLE + ": ERROR: " + message.replace("\n", " "));
    if (IJ.getInstance() == null && !exitHook) {
      exitHook = true;
      Runtime.getRuntime().addShutdownHook(new Thread(() -> {
        int n;
        synchronized (Support.class) {
          n = failures;
        }
        if (n == 0) return;
        System.out.println(TITLE + ": " + n + " error(s) in this run (see the Log above); exit status 1");
        System.out.flush();
        System.err.flush();
        Runtime.getRuntime().halt(1);
      }, "cellcount-exit-status"));
    }
  }

  static synchronized String lastError() {
    return lastError;
  }

  static synchronized int failures() {
    return failures;
  }

  /** Forgets the errors so far (a test that expected them); the exit status is then 0 again. */
  static synchronized void resetFailures() {
    failures = 0;
    lastError = "";
  }

  static void error(CellCountException e) {
    error(e.getMessage() + "\n(" + e.statusName() + ")");
  }

  /** A command's body, which may fail with the library's exception. */
  interface Body {
    void run() throws CellCountException;
  }

  /** A library call returning a JSON report. */
  interface Call {
    String get() throws CellCountException;
  }

  /** A command's body: what the library or the inputs refuse becomes an ImageJ error, never a JVM crash. */
  static void guarded(Body body) {
    guarded(body, null);
  }

  /** As {@link #guarded(Body)}; in a macro or batch run {@code onError} also gets the message (a table row). */
  static void guarded(Body body, java.util.function.Consumer<String> onError) {
    String message;
    try {
      body.run();
      return;
    } catch (CellCountException e) {
      message = e.getMessage() + "\n(" + e.statusName() + ")";
    } catch (IllegalArgumentException e) {
      message = e.getMessage();
    } catch (OutOfMemoryError e) {
      message = "out of memory (" + e.getMessage() + "); give ImageJ more memory (Edit > Options > Memory)";
      if (!unattended()) {
        IJ.outOfMemory(TITLE);
        return;
      }
    }
    error(message);
    if (onError != null && unattended()) onError.accept(message);
  }

  /** A library call that Esc may cancel (train, evaluate): its report, or null after {@code onCancel} ran. */
  static String cancellable(Call call, Runnable onCancel) throws CellCountException {
    IJ.resetEscape();
    try {
      return call.get();
    } catch (CellCountException e) {
      if (!e.isCancelled()) throw e;
      onCancel.run();
      return null;
    } finally {
      done();
      IJ.resetEscape();
    }
  }

  static boolean headless() {
    return GraphicsEnvironment.isHeadless();
  }

  /** Progress over {@code parts} equal parts (slices), part {@code index} running: ImageJ's progress bar and
   * status line; Esc cancels. */
  static ProgressListener progress(int index, int parts, String what) {
    return (fraction, stage) -> {
      IJ.showProgress((index + Math.max(0f, Math.min(1f, fraction))) / parts);
      IJ.showStatus(what + (stage == null || stage.isEmpty() ? "" : ": " + stage) + " (Esc cancels)");
      return IJ.escapePressed();
    };
  }

  static void done() {
    IJ.showProgress(1.0);
  }

  /** Number as a dialog shows it: "" for NaN (= "the model's value"). */
  static String formatOptional(float v) {
    return Float.isNaN(v) ? "" : trimNumber(v);
  }

  static String trimNumber(double v) {
    if (v == Math.rint(v) && Math.abs(v) < 1e15) return Long.toString((long) v);
    return Double.toString(v);
  }

  /** Parses an optional number field: "" (or "model", "auto", "NaN") is NaN; otherwise a number or an error
   * naming the field. */
  static float parseOptional(String text, String field) {
    String t = text == null ? "" : text.trim().toLowerCase(Locale.ROOT);
    if (t.isEmpty() || t.equals("nan") || t.equals("model") || t.equals("auto")) return Float.NaN;
    try {
      return Float.parseFloat(t);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(field + ": expected a number or empty (the model's value), got '" + text + "'");
    }
  }

  /** Device choices from the library: its default first ("auto"), then "cpu", then "cuda:N" per GPU. */
  static String[] deviceChoices(Map<String, Object> libraryInfo, String libraryDefault) {
    List<String> d = new ArrayList<>();
    d.add(libraryDefault);
    if (!d.contains("cpu")) d.add("cpu");
    Object dev = libraryInfo.get("devices");
    if (dev instanceof Map) {
      Object n = ((Map<?, ?>) dev).get("cuda_devices");
      if (n instanceof Number) for (int k = 0; k < ((Number) n).intValue(); k++) d.add("cuda:" + k);
    }
    return d.toArray(new String[0]);
  }

  /** The methods the library has: list of {id, display_name, needs_exemplars, can_train, fixture} maps. */
  static List<Map<?, ?>> methods(Map<String, Object> libraryInfo) {
    List<Map<?, ?>> out = new ArrayList<>();
    Object m = libraryInfo.get("methods");
    if (m instanceof List) for (Object o : (List<?>) m) if (o instanceof Map) out.add((Map<?, ?>) o);
    return out;
  }

  static Map<?, ?> method(Map<String, Object> libraryInfo, String id) {
    for (Map<?, ?> m : methods(libraryInfo)) if (id.equals(m.get("id"))) return m;
    return null;
  }

  static String methodIds(Map<String, Object> libraryInfo) {
    StringBuilder b = new StringBuilder();
    for (Map<?, ?> m : methods(libraryInfo)) b.append(b.length() == 0 ? "" : ", ").append(m.get("id"));
    return b.toString();
  }
}
