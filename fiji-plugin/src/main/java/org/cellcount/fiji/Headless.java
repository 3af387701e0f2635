package org.cellcount.fiji;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.cellcount.CellCountException;

/**
 * The true-headless route (issue 21 item 3): ImageJ 1.x cannot start its menus without a display
 * ({@code java -Djava.awt.headless=true ij.ImageJ -batch} fails there and exits 0), and its dialogs cannot be
 * made headless. This entry point needs neither: it runs the recorded {@code Count folder...} lines of a macro,
 * with the same code as the menu command, and ends with a status a script can test.
 *
 * <pre>java -Djava.awt.headless=true -cp ij.jar:plugins/Cell_Counting-0.1.0.jar org.cellcount.fiji.Headless macro.ijm</pre>
 *
 * Each line {@code run("Count folder...", "input=[...] model=... folder=[...] output=[...] slices=...")} (as the
 * Macro Recorder writes it) is run in order; any other {@code run(...)} line is refused before any work, naming
 * the line. Exit status: 0 all counted; 1 an image or a command failed (the reason on stderr and in the CSV's
 * status column); 2 the macro cannot be run this way (unreadable, no Count folder line, another command).
 */
public final class Headless {
  private static final Pattern RUN = Pattern.compile("run\\(\\s*\"([^\"]*)\"\\s*(?:,\\s*\"((?:[^\"\\\\]|\\\\.)*)\"\\s*)?\\)");

  private Headless() {}

  public static void main(String[] args) {
    System.exit(run(args));
  }

  static int run(String[] args) {
    if (args.length != 1) {
      System.err.println("usage: java -Djava.awt.headless=true -cp ij.jar:Cell_Counting.jar org.cellcount.fiji.Headless "
          + "MACRO.ijm   (runs its recorded Count folder... lines)");
      return 2;
    }
    String text;
    try {
      text = new String(Files.readAllBytes(new File(args[0]).toPath()), StandardCharsets.UTF_8);
    } catch (IOException e) {
      System.err.println("cellcount headless: cannot read " + args[0] + ": " + e);
      return 2;
    }
    List<String> commands = new ArrayList<>();
    String[] lines = text.split("\n");
    for (int i = 0; i < lines.length; i++) {
      String line = lines[i].trim();
      if (line.isEmpty() || line.startsWith("//")) continue;
      Matcher m = RUN.matcher(line);
      if (!m.find()) {
        System.err.println("cellcount headless: " + args[0] + " line " + (i + 1) + ": only recorded run(\"Count folder...\", "
            + "\"...\") lines can run headless, got: " + line);
        return 2;
      }
      if (!m.group(1).equals("Count folder...")) {
        System.err.println("cellcount headless: " + args[0] + " line " + (i + 1) + ": \"" + m.group(1)
            + "\" needs ImageJ's GUI; headless runs only \"Count folder...\"");
        return 2;
      }
      commands.add(m.group(2) == null ? "" : m.group(2).replace("\\\"", "\"").replace("\\\\", "\\"));
    }
    if (commands.isEmpty()) {
      System.err.println("cellcount headless: " + args[0] + " has no run(\"Count folder...\", \"...\") line");
      return 2;
    }
    int status = 0;
    for (String options : commands) {
      Map<String, String> o = RequestDialog.parseOptions(options);
      try {
        String slices = o.getOrDefault("slices", CountCells.SLICES[1]);
        int failed = CountFolder.runFolder(o.getOrDefault("input", ""), o.getOrDefault("model", ""),
            o.getOrDefault("folder", ""), o.getOrDefault("output", ""), CountCells.SLICES[1].equals(slices),
            ModelFinder.find(""));
        if (failed > 0) status = 1;
      } catch (CellCountException e) {
        System.err.println("cellcount headless: Count folder " + options + ": " + e.getMessage() + " (" + e.statusName() + ")");
        status = 1;
      } catch (RuntimeException e) {
        System.err.println("cellcount headless: Count folder " + options + ": " + e.getMessage());
        status = 1;
      }
    }
    if (status != 0) System.err.println("cellcount headless: exit status 1 (see the reasons above)");
    return status;
  }
}
