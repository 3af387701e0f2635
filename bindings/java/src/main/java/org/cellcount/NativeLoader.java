package org.cellcount;

import java.io.File;
import java.net.URISyntaxException;
import java.security.CodeSource;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * Finds and loads libcellcount_jni (which finds libcellcount beside it through its $ORIGIN run path).
 * Looks, in order: the folder named by -Dcellcount.library.path or $CELLCOUNT_LIBRARY_PATH; the folder of
 * this jar; Fiji's lib/&lt;platform&gt; folder; java.library.path. A failure says where it looked and why
 * each place did not do.
 */
final class NativeLoader {
  static final String NAME = "cellcount_jni";
  /** Sets OMP_WAIT_POLICY=PASSIVE (unless set) in its constructor; must be loaded before NAME (bindings/java/jni). */
  static final String OMP_NAME = "cellcount_omp";

  private static boolean loaded;
  private static String loadedFrom;
  private static String failure;

  private NativeLoader() {}

  static synchronized void load() throws CellCountException {
    if (loaded) return;
    if (failure != null) throw new CellCountException(CellCountException.ERR_IO, "CELLCOUNT_ERR_IO", failure);
    final String file = System.mapLibraryName(NAME);
    List<String> tried = new ArrayList<>();
    for (String[] place : places()) {
      File f = new File(place[0], file);
      if (!f.isFile()) {
        tried.add(place[0] + " (" + place[1] + "): no " + file);
        continue;
      }
      try {
        loadOmpDefaults(new File(place[0], System.mapLibraryName(OMP_NAME)));
        System.load(f.getAbsolutePath());
        loadedFrom = f.getAbsolutePath();
        break;
      } catch (UnsatisfiedLinkError e) {
        tried.add(f.getAbsolutePath() + " (" + place[1] + "): found, but it did not load: " + e.getMessage());
      }
    }
    if (loadedFrom == null) {
      try {
        try {
          System.loadLibrary(OMP_NAME);
        } catch (UnsatisfiedLinkError e) {
          // optional (see loadOmpDefaults)
        }
        System.loadLibrary(NAME);
        loadedFrom = "java.library.path";
      } catch (UnsatisfiedLinkError e) {
        tried.add("java.library.path=" + System.getProperty("java.library.path") + ": " + e.getMessage());
      }
    }
    if (loadedFrom == null) {
      StringBuilder m = new StringBuilder("could not load the cellcount native library " + file
          + " (libcellcount must be beside it; LibTorch must be installed). Looked in:");
      for (String t : tried) m.append("\n  - ").append(t);
      m.append("\nInstall the plugin with fiji-plugin/install.sh <Fiji.app or plugins folder>,"
          + " or start Java with -Dcellcount.library.path=<folder holding " + file + ">.");
      failure = m.toString();
      throw new CellCountException(CellCountException.ERR_IO, "CELLCOUNT_ERR_IO", failure);
    }
    int abi = Native.abiVersion();
    if (abi != CellCount.ABI_VERSION) {
      failure = "the cellcount native library at " + loadedFrom + " has ABI " + abi + ", these Java bindings were built"
          + " for ABI " + CellCount.ABI_VERSION + "; install the jar and the native libraries of the same build";
      throw new CellCountException(CellCountException.ERR_UNSUPPORTED, "CELLCOUNT_ERR_UNSUPPORTED", failure);
    }
    loaded = true;
  }

  /**
   * Loads libcellcount_omp from beside the JNI library, when it is there, so that LibTorch's OpenMP runtime,
   * loaded with the JNI library, waits passively instead of spinning (a busy machine made counts 5-15x slower;
   * issue 21). Java cannot set its own environment; the library's constructor does, keeping a user's value.
   * Optional: without it counting works, only slower on a busy machine.
   */
  private static void loadOmpDefaults(File f) {
    if (!f.isFile()) return;
    try {
      System.load(f.getAbsolutePath());
    } catch (UnsatisfiedLinkError e) {
      System.err.println("cellcount: " + f + " did not load (" + e.getMessage() + "); OpenMP may spin");
    }
  }

  static synchronized String loadedFrom() {
    return loadedFrom;
  }

  /** {folder, why it is looked at}, in search order, without duplicates. */
  static List<String[]> places() {
    List<String[]> out = new ArrayList<>();
    Set<String> seen = new LinkedHashSet<>();
    String prop = System.getProperty("cellcount.library.path");
    if (prop != null && !prop.isEmpty()) add(out, seen, new File(prop), "-Dcellcount.library.path");
    String env = System.getenv("CELLCOUNT_LIBRARY_PATH");
    if (env != null && !env.isEmpty()) add(out, seen, new File(env), "$CELLCOUNT_LIBRARY_PATH");
    File jarDir = jarFolder();
    if (jarDir != null) add(out, seen, jarDir, "next to the jar");
    for (File root : fijiRoots(jarDir))
      for (String platform : platformFolders()) add(out, seen, new File(new File(root, "lib"), platform), "Fiji lib");
    return out;
  }

  private static void add(List<String[]> out, Set<String> seen, File dir, String why) {
    String p = dir.getAbsolutePath();
    if (seen.add(p)) out.add(new String[] {p, why});
  }

  /** Folder of the jar (or class folder) this class came from. */
  static File jarFolder() {
    try {
      CodeSource cs = NativeLoader.class.getProtectionDomain().getCodeSource();
      if (cs == null || cs.getLocation() == null) return null;
      File f = new File(cs.getLocation().toURI());
      return f.isFile() ? f.getParentFile() : f;
    } catch (URISyntaxException | SecurityException | IllegalArgumentException e) {
      return null;
    }
  }

  /** Fiji/ImageJ root candidates: the ij.dir / imagej.dir properties, then the jar's folder's parents
   * (the jar lives in Fiji.app/jars, Fiji.app/plugins or a subfolder of plugins). */
  private static List<File> fijiRoots(File jarDir) {
    List<File> roots = new ArrayList<>();
    for (String key : new String[] {"ij.dir", "imagej.dir", "fiji.dir"}) {
      String v = System.getProperty(key);
      if (v != null && !v.isEmpty()) roots.add(new File(v));
    }
    if (jarDir != null && jarDir.getParentFile() != null) {
      roots.add(jarDir.getParentFile());
      if (jarDir.getParentFile().getParentFile() != null) roots.add(jarDir.getParentFile().getParentFile());
    }
    return roots;
  }

  /** Names Fiji gives the native-library folder of this platform, old and new launchers. */
  static List<String> platformFolders() {
    String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
    String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
    boolean arm = arch.contains("aarch64") || arch.contains("arm");
    List<String> p = new ArrayList<>();
    if (os.contains("win")) {
      p.add(arm ? "win-arm64" : "win64");
      p.add(arm ? "windows-arm64" : "windows-x64");
    } else if (os.contains("mac")) {
      p.add("macosx");
      p.add(arm ? "macos-arm64" : "macos-x64");
    } else {
      p.add(arm ? "linux-arm64" : "linux64");
      p.add(arm ? "linux-arm64" : "linux-x64");
    }
    return p;
  }
}
