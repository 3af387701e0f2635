package org.cellcount.fiji;

import ij.IJ;
import ij.gui.GenericDialog;
import ij.measure.ResultsTable;
import ij.plugin.PlugIn;
import java.io.File;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.cellcount.CellCount;
import org.cellcount.CellCountException;
import org.cellcount.CellCountModel;
import org.cellcount.Json;

/**
 * Plugins &gt; Cell Counting &gt; Evaluate model: a model (shipped or a folder) on a dataset folder with the
 * library's evaluate request (made from cellcount_request_options of the model's method). Metrics go to the
 * "Cell counting evaluation" table, per-image rows to "Cell counting evaluation per image".
 */
public class EvaluateModel implements PlugIn {
  static final String TABLE = "Cell counting evaluation";
  static final String PER_IMAGE = "Cell counting evaluation per image";
  private static String lastModel;

  @Override
  public void run(String arg) {
    if (!Support.ready()) return;
    Support.guarded(() -> evaluate());
  }

  private void evaluate() throws CellCountException {
    List<ModelFinder.Entry> models = ModelFinder.find("");
    String[] names = new String[Math.max(1, models.size())];
    names[0] = CountCells.NO_MODEL;
    for (int k = 0; k < models.size(); k++) names[k] = models.get(k).name;
    GenericDialog gd = new GenericDialog(Support.TITLE + ": Evaluate model");
    gd.addChoice("Model", names, lastModel != null && Arrays.asList(names).contains(lastModel) ? lastModel : names[0]);
    gd.addDirectoryField("Folder (instead of the model above)", "", 28);
    gd.showDialog();
    if (gd.wasCanceled()) return;
    String name = gd.getNextChoice();
    String folder = gd.getNextString().trim();
    File dir = null;
    if (!folder.isEmpty()) {
      dir = new File(folder);
      name = dir.getName();
    } else {
      for (ModelFinder.Entry e : models) if (e.name.equals(name)) dir = e.dir;
      if (dir == null) {
        Support.error("No model was found in:" + ModelFinder.describeSearch() + "\nGive a model folder.");
        return;
      }
      lastModel = name;
    }
    CellCountModel model = ModelCache.get(dir);
    String method = model.method();

    List<Map<String, Object>> options = CellCount.requestOptions(method, "evaluate");
    RequestDialog fields = new RequestDialog(options, new HashSet<>(Arrays.asList("method", "model")));
    GenericDialog gd2 = new GenericDialog(Support.TITLE + ": Evaluate " + name);
    gd2.addMessage("Evaluate request for a " + method + " model (library defaults)");
    fields.addFields(gd2);
    gd2.showDialog();
    if (gd2.wasCanceled()) return;
    Map<String, Object> request = new LinkedHashMap<>();
    request.put("method", method);
    request.put("model", dir.getPath());
    Map<String, Object> changed = fields.readAll(gd2, Support.TITLE + ": Evaluate " + name);
    if (changed == null) return;
    request.putAll(changed);

    final String what = "Evaluating " + name;
    String report = Support.cancellable(
        () -> CellCount.evaluate(Json.write(request), Support.progress(0, 1, what)),
        () -> IJ.log(Support.TITLE + ": evaluation CANCELLED (Esc)"));
    if (report == null) return;
    Map<String, Object> r = Json.parseObject(report);
    showReport(name, r);
    IJ.log(Support.TITLE + ": evaluated " + name + " on " + r.get("dataset") + " (" + r.get("split") + "): MAE "
        + r.get("mae") + ", RMSE " + r.get("rmse") + ", n " + r.get("n") + ", device " + r.get("device"));
  }

  private static ResultsTable table(String title) {
    if (Support.headless()) return new ResultsTable();
    ResultsTable rt = ResultsTable.getResultsTable(title);
    return rt != null ? rt : new ResultsTable();
  }

  /** One row of metrics (nested objects flattened as parent_child); per-image rows in their own table. */
  static void showReport(String name, Map<String, Object> r) {
    ResultsTable rt = table(TABLE);
    rt.incrementCounter();
    rt.addValue("model", name);
    addFlat(rt, "", r);
    if (!Support.headless()) rt.show(TABLE);
    Object per = r.get("per_image");
    if (per instanceof List && !((List<?>) per).isEmpty()) {
      ResultsTable pt = table(PER_IMAGE);
      for (Object row : (List<?>) per) {
        if (!(row instanceof Map)) continue;
        pt.incrementCounter();
        pt.addValue("model", name);
        addFlat(pt, "", (Map<?, ?>) row);
      }
      if (!Support.headless()) pt.show(PER_IMAGE);
    }
  }

  private static void addFlat(ResultsTable rt, String prefix, Map<?, ?> m) {
    for (Map.Entry<?, ?> e : m.entrySet()) {
      String k = prefix + e.getKey();
      Object v = e.getValue();
      if (v instanceof Number) rt.addValue(k, ((Number) v).doubleValue());
      else if (v instanceof String || v instanceof Boolean) rt.addValue(k, v.toString());
      else if (v instanceof Map) addFlat(rt, k + "_", (Map<?, ?>) v);
    }
  }
}
