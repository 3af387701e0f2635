package org.cellcount.fiji;

import ij.IJ;
import ij.gui.GenericDialog;
import ij.plugin.PlugIn;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.cellcount.CellCount;
import org.cellcount.CellCountException;
import org.cellcount.Json;

/**
 * Plugins &gt; Cell Counting &gt; Train model: picks a method the library can train, then shows that method's
 * train request as a dialog made from the library's field metadata (cellcount_request_options: types,
 * ranges, help; advanced fields in a second dialog) and runs cellcount_train with the fields changed.
 * Progress in ImageJ's bar; Esc cancels (the library keeps its checkpoints).
 */
public class TrainModel implements PlugIn {
  private static String lastMethod;

  @Override
  public void run(String arg) {
    if (!Support.ready()) return;
    Support.guarded(() -> train());
  }

  private void train() throws CellCountException {
    Map<String, Object> lib = CellCount.libraryInfo();
    List<String> ids = new ArrayList<>();
    List<String> fixtures = new ArrayList<>();
    StringBuilder names = new StringBuilder();
    for (Map<?, ?> m : Support.methods(lib)) {
      if (!Boolean.TRUE.equals(m.get("can_train"))) continue;
      String id = String.valueOf(m.get("id"));
      (Boolean.TRUE.equals(m.get("fixture")) ? fixtures : ids).add(id);
      names.append("\n").append(id).append(": ").append(m.get("display_name"));
    }
    ids.addAll(fixtures);
    if (ids.isEmpty()) {
      Support.error("This libcellcount cannot train any method.");
      return;
    }
    GenericDialog gd = new GenericDialog(Support.TITLE + ": Train model");
    gd.addChoice("Method", ids.toArray(new String[0]), ids.contains(lastMethod) ? lastMethod : ids.get(0));
    gd.addMessage("Methods:" + names);
    gd.showDialog();
    if (gd.wasCanceled()) return;
    String method = gd.getNextChoice();
    lastMethod = method;

    List<Map<String, Object>> options = CellCount.requestOptions(method, "train");
    RequestDialog fields = new RequestDialog(options, new HashSet<>(Arrays.asList("method", "command")));
    GenericDialog gd2 = new GenericDialog(Support.TITLE + ": Train " + method);
    gd2.addMessage("Train request (library defaults; Help lists what each field does; Esc cancels a running training)");
    fields.addFields(gd2);
    gd2.showDialog();
    if (gd2.wasCanceled()) return;
    Map<String, Object> changed = fields.readAll(gd2, Support.TITLE + ": Train " + method);
    if (changed == null) return;
    Map<String, Object> request = new LinkedHashMap<>();
    request.put("method", method);
    request.putAll(changed);
    if (options.stream().anyMatch(o -> "command".equals(o.get("name")))) {
      Map<String, Object> opts = new LinkedHashMap<>();
      opts.put("method", method);
      opts.putAll(changed);
      request.put("command", "run(\"Train model\", \"" + RequestDialog.macroOptions(opts) + "\");");
    }
    String report = Support.cancellable(
        () -> CellCount.train(Json.write(request), Support.progress(0, 1, "Training " + method)),
        () -> {
          IJ.log(Support.TITLE + ": training CANCELLED (Esc); checkpoints the library wrote are kept");
          IJ.showStatus("Training cancelled");
        });
    if (report == null) return;
    Map<String, Object> r = Json.parseObject(report);
    r.remove("history");
    IJ.log(Support.TITLE + ": trained a " + method + " model into " + r.getOrDefault("out", request.get("out")));
    IJ.log("  report: " + Json.write(r));
    IJ.showStatus("Training done");
  }
}
