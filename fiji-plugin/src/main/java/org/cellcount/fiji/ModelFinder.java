package org.cellcount.fiji;

import ij.IJ;
import java.io.File;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.security.CodeSource;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.cellcount.Json;

/**
 * Finds model folders (a folder holding model.json) to offer in the dialogs, by name. Looks in:
 * -Dcellcount.models (folders separated like a class path), the installed models folder
 * (cellcount-models beside the plugin jar or in ImageJ's plugins folder), and the repository's models/
 * when the jar is run from fiji-plugin/target. A name found twice is taken from the first folder.
 */
final class ModelFinder {
  static final String INSTALLED = "cellcount-models";

  /** A model folder and the method its model.json names ("" when unreadable). */
  static final class Entry {
    final String name;
    final File dir;
    final String method;

    Entry(String name, File dir, String method) {
      this.name = name;
      this.dir = dir;
      this.method = method;
    }
  }

  private ModelFinder() {}

  static List<File> searchFolders() {
    Set<File> out = new LinkedHashSet<>();
    String prop = System.getProperty("cellcount.models");
    if (prop != null && !prop.isEmpty())
      for (String p : prop.split(File.pathSeparator)) if (!p.isEmpty()) out.add(new File(p).getAbsoluteFile());
    File jarDir = jarFolder();
    if (jarDir != null) out.add(new File(jarDir, INSTALLED).getAbsoluteFile());
    String plugins = IJ.getDirectory("plugins");
    if (plugins != null) out.add(new File(plugins, INSTALLED).getAbsoluteFile());
    if (jarDir != null && jarDir.getParentFile() != null && jarDir.getParentFile().getParentFile() != null) {
      File repoModels = new File(jarDir.getParentFile().getParentFile(), "models");
      if (new File(repoModels.getParentFile(), "libcellcount").isDirectory()) out.add(repoModels.getAbsoluteFile());
    }
    return new ArrayList<>(out);
  }

  /**
   * Models of {@code method} ("" = any), by name, in search order; in each folder a model whose model.json is
   * flagged {@code "default": true} (the generalist dcl-general, issue 24) first, then by name.
   */
  static List<Entry> find(String method) {
    Map<String, Entry> byName = new LinkedHashMap<>();
    for (File folder : searchFolders()) {
      File[] subs = folder.listFiles(File::isDirectory);
      if (subs == null) continue;
      Arrays.sort(subs, (a, b) -> {
        boolean da = isDefault(new File(a, "model.json")), db = isDefault(new File(b, "model.json"));
        return da != db ? (da ? -1 : 1) : a.compareTo(b);
      });
      for (File d : subs) {
        File json = new File(d, "model.json");
        if (!json.isFile() || byName.containsKey(d.getName())) continue;
        String m = methodOf(json);
        if (method.isEmpty() || method.equals(m)) byName.put(d.getName(), new Entry(d.getName(), d, m));
      }
    }
    return new ArrayList<>(byName.values());
  }

  /** The "method" field of a model.json, or "" when it cannot be read (loading then says why). */
  static String methodOf(File modelJson) {
    try {
      Object m = Json.parseObject(new String(Files.readAllBytes(modelJson.toPath()), StandardCharsets.UTF_8))
          .get("method");
      return m == null ? "" : m.toString();
    } catch (IOException | IllegalArgumentException e) {
      return "";
    }
  }

  /** Whether a model.json says {@code "default": true}. */
  static boolean isDefault(File modelJson) {
    try {
      return Boolean.TRUE.equals(Json.parseObject(new String(Files.readAllBytes(modelJson.toPath()), StandardCharsets.UTF_8))
          .get("default"));
    } catch (IOException | IllegalArgumentException e) {
      return false;
    }
  }

  static File jarFolder() {
    try {
      CodeSource cs = ModelFinder.class.getProtectionDomain().getCodeSource();
      if (cs == null || cs.getLocation() == null) return null;
      File f = new File(cs.getLocation().toURI());
      return f.isFile() ? f.getParentFile() : f;
    } catch (URISyntaxException | SecurityException | IllegalArgumentException e) {
      return null;
    }
  }

  static String describeSearch() {
    StringBuilder b = new StringBuilder();
    for (File f : searchFolders()) b.append("\n  ").append(f.getPath());
    return b.toString();
  }
}
