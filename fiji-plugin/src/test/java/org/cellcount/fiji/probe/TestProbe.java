package org.cellcount.fiji.probe;

import ij.Executer;
import ij.IJ;
import ij.Macro;
import ij.WindowManager;
import ij.gui.GenericDialog;
import ij.plugin.frame.Recorder;
import java.awt.Button;
import java.awt.Checkbox;
import java.awt.Choice;
import java.awt.EventQueue;
import java.awt.Window;
import java.awt.event.ActionEvent;
import java.awt.event.KeyEvent;
import java.util.Vector;

/**
 * Helpers the acceptance macro (src/test/ijm/plugin_test.ijm) calls through call(...) for what a macro
 * cannot do itself: run a command and catch the error it reports, press Esc during a run while watching the
 * event thread, and record a command through a real dialog and ImageJ's Recorder. Uses ImageJ API only (it
 * sits on the class path; the plugin is loaded from the plugins folder like in Fiji).
 */
public final class TestProbe {
  private static volatile boolean escaping;
  private static volatile long maxLatencyMs;
  private static volatile int escapes;
  private static Thread escaper;

  private TestProbe() {}

  /**
   * Watches for dialogs that would block a batch run forever under xvfb (a macro error, an exception
   * window): prints their text as a FAIL line and ends the JVM with status 3.
   */
  public static String watchDialogs() {
    Thread t = new Thread(() -> {
      while (true) {
        for (Window w : Window.getWindows()) {
          String title = w instanceof java.awt.Dialog ? ((java.awt.Dialog) w).getTitle()
                         : w instanceof java.awt.Frame ? ((java.awt.Frame) w).getTitle() : "";
          if (!w.isShowing() || title == null) continue;
          if (title.equals("Macro Error") || title.equals("Exception") || title.equals("No Image")) {
            System.out.println("FAIL: a '" + title + "' window blocked the run: " + text(w));
            System.out.flush();
            Runtime.getRuntime().halt(3);
          }
        }
        try {
          Thread.sleep(500);
        } catch (InterruptedException e) {
          return;
        }
      }
    }, "cellcount-test-dialog-watch");
    t.setDaemon(true);
    t.start();
    return "";
  }

  /** The text shown by a window's labels, text areas and ImageJ multi-line labels. */
  private static String text(java.awt.Container c) {
    StringBuilder b = new StringBuilder();
    for (java.awt.Component k : c.getComponents()) {
      if (k instanceof java.awt.Label) b.append(((java.awt.Label) k).getText()).append(' ');
      else if (k instanceof java.awt.TextComponent) b.append(((java.awt.TextComponent) k).getText()).append(' ');
      else if (k instanceof ij.gui.MultiLineLabel) {
        try {
          java.lang.reflect.Field f = ij.gui.MultiLineLabel.class.getDeclaredField("lines");
          f.setAccessible(true);
          b.append(String.join(" | ", (String[]) f.get(k))).append(' ');
        } catch (ReflectiveOperationException e) {
          b.append("(unreadable label) ");
        }
      }
      if (k instanceof java.awt.Container) b.append(text((java.awt.Container) k));
    }
    return b.toString().trim();
  }

  /**
   * Runs a command outside the macro interpreter; returns the error message it gave ("" if none). In a batch
   * run the plugin reports errors in the Log, not through IJ.error (which hung -batch runs in a dialog), and
   * keeps the last one for macros (CountCells.lastError); the error was expected, so it is then forgotten
   * (CountCells.resetFailures), else ImageJ -batch would end with exit status 1.
   */
  public static String runExpectingError(String command, String options) {
    IJ.getErrorMessage(); // clears the last one
    plugin("resetFailures");
    try {
      IJ.run(command, options);
    } catch (RuntimeException e) {
      if (!Macro.MACRO_CANCELED.equals(e.getMessage())) return "EXCEPTION " + e;
    }
    String m = IJ.getErrorMessage();
    if (m == null || m.isEmpty()) m = plugin("lastError");
    plugin("resetFailures");
    return m == null ? "" : m;
  }

  private static java.io.ByteArrayOutputStream logCopy;

  /**
   * From now on keeps a copy of what is printed to stdout, where ImageJ without a window (-batch) writes its
   * Log (getInfo("log") is then empty), for {@link #logSinceCapture()}. A second call starts the copy afresh.
   */
  public static synchronized String captureLog() {
    boolean teed = logCopy != null;
    logCopy = new java.io.ByteArrayOutputStream();
    if (teed) return "";
    java.io.PrintStream out = System.out;
    java.io.OutputStream tee = new java.io.OutputStream() {
      @Override
      public void write(int b) {
        out.write(b);
        synchronized (TestProbe.class) {
          logCopy.write(b);
        }
      }

      @Override
      public void write(byte[] b, int off, int len) {
        out.write(b, off, len);
        synchronized (TestProbe.class) {
          logCopy.write(b, off, len);
        }
      }
    };
    System.setOut(new java.io.PrintStream(tee, true));
    return "";
  }

  /** The Log lines since {@link #captureLog()} (stdout stays as it was before, plus a copy). */
  public static synchronized String logSinceCapture() {
    return logCopy == null ? "" : new String(logCopy.toByteArray(), java.nio.charset.StandardCharsets.UTF_8);
  }

  /** A public static String method of the plugin's CountCells (loaded by ImageJ's plugin class loader). */
  public static String plugin(String method) {
    try {
      Class<?> c = Class.forName("org.cellcount.fiji.CountCells", true, IJ.getClassLoader());
      return (String) c.getMethod(method).invoke(null);
    } catch (ReflectiveOperationException e) {
      return "EXCEPTION " + e;
    }
  }

  /** From delayMs on, presses Esc every 100 ms, and meanwhile measures how long the AWT event thread takes to
   * run a task (ImageJ responsive), until {@link #stopEscape()}. */
  public static String startEscape(String delayMs) {
    long delay = Long.parseLong(delayMs);
    escaping = true;
    escapes = 0;
    maxLatencyMs = 0;
    escaper = new Thread(() -> {
      long start = System.currentTimeMillis();
      while (escaping) {
        long t0 = System.nanoTime();
        try {
          EventQueue.invokeAndWait(() -> {});
        } catch (Exception e) {
          maxLatencyMs = Long.MAX_VALUE;
        }
        maxLatencyMs = Math.max(maxLatencyMs, (System.nanoTime() - t0) / 1000000);
        if (System.currentTimeMillis() - start >= delay) {
          IJ.setKeyDown(KeyEvent.VK_ESCAPE);
          escapes++;
        }
        try {
          Thread.sleep(100);
        } catch (InterruptedException e) {
          return;
        }
      }
    }, "cellcount-test-escape");
    escaper.start();
    return "";
  }

  public static String stopEscape() throws InterruptedException {
    escaping = false;
    escaper.join();
    IJ.resetEscape();
    return "escapes=" + escapes + " maxLatencyMs=" + maxLatencyMs;
  }

  /**
   * Runs a command as a user would: in its own thread with the Recorder open, its dialog filled in by
   * {@code settings} ("choice:ITEM" selects ITEM in the choice that has it, "check:LABEL" ticks a checkbox,
   * "text:N=VALUE" types VALUE into the N-th text field (0-based), separated by ';') and OK pressed. Returns the options the Recorder wrote for it, or "ERROR ..." .
   */
  public static String record(String command, String settings) throws Exception {
    if (Recorder.getInstance() == null) new Recorder(false);
    Recorder rec = Recorder.getInstance();
    int before = rec.getText().length();
    new Executer(command, WindowManager.getCurrentImage());
    GenericDialog gd = null;
    for (int k = 0; k < 300 && gd == null; k++) {
      for (Window w : Window.getWindows())
        if (w instanceof GenericDialog && w.isShowing()) gd = (GenericDialog) w;
      if (gd == null) Thread.sleep(100);
    }
    if (gd == null) return "ERROR no dialog appeared";
    final GenericDialog dialog = gd;
    final String[] problem = {null};
    EventQueue.invokeAndWait(() -> {
      for (String s : settings.split(";")) {
        if (s.isEmpty()) continue;
        String kind = s.substring(0, s.indexOf(':')), value = s.substring(s.indexOf(':') + 1);
        boolean found = false;
        if (kind.equals("choice")) {
          for (Object o : (Vector<?>) dialog.getChoices()) {
            Choice c = (Choice) o;
            for (int i = 0; i < c.getItemCount() && !found; i++)
              if (c.getItem(i).equals(value)) {
                c.select(i);
                found = true;
              }
          }
        } else if (kind.equals("text")) {
          int n = Integer.parseInt(value.substring(0, value.indexOf('=')));
          Vector<?> fields = dialog.getStringFields();
          if (fields != null && n < fields.size()) {
            ((java.awt.TextField) fields.get(n)).setText(value.substring(value.indexOf('=') + 1));
            found = true;
          }
        } else if (kind.equals("check")) {
          for (Object o : (Vector<?>) dialog.getCheckboxes()) {
            Checkbox c = (Checkbox) o;
            if (c.getLabel().startsWith(value)) {
              c.setState(true);
              found = true;
            }
          }
        }
        if (!found) problem[0] = "ERROR no dialog field for " + s;
      }
      Button ok = dialog.getButtons()[0];
      dialog.actionPerformed(new ActionEvent(ok, ActionEvent.ACTION_PERFORMED, "OK"));
    });
    if (problem[0] != null) return problem[0];
    String marker = "run(\"" + command + "\", \"";
    for (int k = 0; k < 600; k++) {
      String text = rec.getText();
      int at = text.indexOf(marker, before);
      if (at >= 0) {
        int end = text.indexOf("\");", at + marker.length());
        if (end > 0) return text.substring(at + marker.length(), end);
      }
      Thread.sleep(100);
    }
    return "ERROR nothing recorded; recorder text: " + rec.getText().substring(before);
  }
}
