package org.cellcount.fiji;

import ij.IJ;
import ij.gui.GenericDialog;
import ij.plugin.PlugIn;
import java.util.List;
import java.util.Map;
import org.cellcount.CellCount;
import org.cellcount.CellCountException;
import org.cellcount.Json;

/**
 * Plugins &gt; Cell Counting &gt; Device and about: what the library is (version, ABI, LibTorch, CUDA and
 * devices, threads, image I/O, methods), where the native library and models were found; sets the number
 * of CPU threads and can unload the cached model. Everything shown is also written to the Log.
 */
public class DeviceAndAbout implements PlugIn {
  @Override
  public void run(String arg) {
    if (!Support.ready()) return;
    try {
      Map<String, Object> lib = CellCount.libraryInfo();
      Map<?, ?> dev = lib.get("devices") instanceof Map ? (Map<?, ?>) lib.get("devices") : Map.of();
      StringBuilder about = new StringBuilder();
      about.append("libcellcount ").append(lib.get("version")).append(" (ABI ").append(lib.get("abi")).append(")");
      about.append("\nplugin ").append(pluginVersion()).append(", native library ").append(CellCount.nativeLibraryPath());
      about.append("\nLibTorch ").append(dev.get("libtorch")).append(", CUDA ")
          .append(Boolean.TRUE.equals(dev.get("cuda_available")) ? "yes, " + dev.get("cuda_devices") + " device(s)" : "no")
          .append(", threads ").append(dev.get("threads")).append(" of ").append(dev.get("cores")).append(" cores");
      about.append("\nimage I/O: ").append(Json.write(lib.get("io")));
      about.append("\nmethods:");
      for (Map<?, ?> m : Support.methods(lib))
        about.append("\n  ").append(m.get("id")).append(": ").append(m.get("display_name"))
            .append(Boolean.TRUE.equals(m.get("needs_exemplars")) ? " (exemplar boxes)" : "")
            .append(Boolean.TRUE.equals(m.get("fixture")) ? " (test fixture)" : "");
      List<ModelFinder.Entry> models = ModelFinder.find("");
      about.append("\nmodels found: ").append(models.size());
      for (ModelFinder.Entry e : models) about.append("\n  ").append(e.name).append(" (").append(e.method).append(")");
      about.append("\nmodel folders searched:").append(ModelFinder.describeSearch());

      int threads = dev.get("threads") instanceof Number ? ((Number) dev.get("threads")).intValue() : 0;
      GenericDialog gd = new GenericDialog(Support.TITLE + ": Device and about");
      gd.addMessage(about.toString());
      gd.addNumericField("Threads (CPU; 0 = one per core)", threads, 0);
      gd.addCheckbox("Unload the cached model", false);
      gd.showDialog();
      if (gd.wasCanceled()) return;
      int n = (int) gd.getNextNumber();
      boolean unload = gd.getNextBoolean();
      if (gd.invalidNumber()) throw new IllegalArgumentException("Threads must be a whole number");
      if (n != threads) CellCount.setNumThreads(n);
      if (unload) ModelCache.clear();
      Map<?, ?> now = (Map<?, ?>) CellCount.libraryInfo().get("devices");
      IJ.log(Support.TITLE + ": " + about);
      IJ.log(Support.TITLE + ": threads now " + now.get("threads") + (unload ? ", cached model unloaded" : ""));
    } catch (CellCountException e) {
      Support.error(e);
    } catch (IllegalArgumentException e) {
      Support.error(e.getMessage());
    }
  }

  static String pluginVersion() {
    String v = DeviceAndAbout.class.getPackage().getImplementationVersion();
    return v == null ? "(development)" : v;
  }
}
