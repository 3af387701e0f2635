package org.cellcount.fiji;

import java.io.File;
import java.io.IOException;
import org.cellcount.CellCountException;
import org.cellcount.CellCountModel;

/**
 * Keeps the last model loaded, so repeated commands (a batch macro over a folder) do not reload it. A model
 * folder whose files changed is loaded again. A cancelled run leaves the model here, usable.
 */
final class ModelCache {
  private static CellCountModel model;
  private static String key;

  private ModelCache() {}

  static synchronized CellCountModel get(File dir) throws CellCountException {
    String k = keyOf(dir);
    if (model != null && k.equals(key)) return model;
    clear();
    model = CellCountModel.load(dir.getPath());
    key = k;
    return model;
  }

  static synchronized void clear() {
    if (model != null) model.close();
    model = null;
    key = null;
  }

  private static String keyOf(File dir) {
    String path;
    try {
      path = dir.getCanonicalPath();
    } catch (IOException e) {
      path = dir.getAbsolutePath();
    }
    File json = new File(dir, "model.json");
    File weights = new File(dir, "weights.pt");
    return path + "|" + json.lastModified() + "|" + json.length() + "|" + weights.lastModified() + "|"
        + weights.length();
  }
}
