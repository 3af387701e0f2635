package org.cellcount;

import java.io.File;
import java.lang.ref.Cleaner;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * A loaded model folder (model.json + weights.pt), any method. What the model needs (method, exemplars,
 * input channels, classes...) is read from the library's info JSON, so a method added to the library later
 * works here unchanged. Close it (try-with-resources); a model that is never closed is freed when it is
 * garbage collected. One model is used by one thread at a time: the calls are synchronised.
 */
public final class CellCountModel implements AutoCloseable {
  private static final Cleaner CLEANER = Cleaner.create();

  /** Owns the native handle; also run by the Cleaner if close() was never called. */
  private static final class Handle implements Runnable {
    long ptr;

    Handle(long ptr) {
      this.ptr = ptr;
    }

    @Override
    public void run() {
      long p = ptr;
      ptr = 0;
      if (p != 0) Native.modelFree(p);
    }
  }

  private final Handle handle;
  private final Cleaner.Cleanable cleanable;
  private final String path;
  private final Map<String, Object> info;

  private CellCountModel(long ptr, String path) throws CellCountException {
    this.handle = new Handle(ptr);
    this.cleanable = CLEANER.register(this, handle);
    this.path = path;
    Map<String, Object> parsed;
    try {
      parsed = Json.parseObject(Native.utf8(Native.modelInfo(ptr)));
    } catch (IllegalArgumentException e) {
      close();
      throw new CellCountException(CellCountException.ERR_INTERNAL, "CELLCOUNT_ERR_INTERNAL",
          "model info of " + path + " is not valid JSON: " + e.getMessage());
    } catch (CellCountException e) {
      close();
      throw e;
    }
    this.info = Collections.unmodifiableMap(parsed);
  }

  /**
   * Loads a model folder; checks method, format version and the weights' checksum.
   *
   * @throws CellCountException ERR_IO (missing/unreadable), ERR_MODEL_FORMAT, ERR_WRONG_METHOD
   */
  public static CellCountModel load(String folder) throws CellCountException {
    CellCount.load();
    if (folder == null || folder.isEmpty())
      throw new CellCountException(CellCountException.ERR_INVALID_ARGUMENT, "CELLCOUNT_ERR_INVALID_ARGUMENT",
          "no model folder given");
    long ptr = Native.modelLoad(Native.bytes(folder));
    return new CellCountModel(ptr, folder);
  }

  public static CellCountModel load(File folder) throws CellCountException {
    return load(folder.getPath());
  }

  /** The folder it was loaded from. */
  public String path() {
    return path;
  }

  /** The info JSON as read at load time (cellcount_model_info). */
  public Map<String, Object> info() {
    return info;
  }

  /** cellcount_model_info as it is now (the device in use may change after a prediction). */
  public synchronized String infoJson() throws CellCountException {
    return Native.utf8(Native.modelInfo(ptr()));
  }

  public String method() {
    return String.valueOf(info.get("method"));
  }

  public String displayName() {
    Object d = info.get("display_name");
    return d == null ? method() : d.toString();
  }

  /** True when the method counts like exemplar boxes (predict then needs at least one). */
  public boolean needsExemplars() {
    return Boolean.TRUE.equals(info.get("needs_exemplars"));
  }

  /** True for the tests' fixture methods (not counting models). */
  public boolean isFixture() {
    return Boolean.TRUE.equals(info.get("fixture"));
  }

  /** Channels the model takes ("input.channels"); 1-channel models with an rgb_rule also take RGB. */
  public int inputChannels() {
    Object in = info.get("input");
    if (in instanceof Map) {
      Object c = ((Map<?, ?>) in).get("channels");
      if (c instanceof Number) return ((Number) c).intValue();
    }
    return 1;
  }

  /** How a 1-channel model reduces RGB ("grey", "red", "green", "blue"), or "" when it does not. */
  public String rgbRule() {
    Object in = info.get("input");
    if (in instanceof Map) {
      Object r = ((Map<?, ?>) in).get("rgb_rule");
      if (r != null) return r.toString();
    }
    return "";
  }

  /** Class names, in the order of {@link Prediction#classCounts}. */
  public List<String> classes() {
    List<String> out = new ArrayList<>();
    Object c = info.get("classes");
    if (c instanceof List) for (Object o : (List<?>) c) out.add(String.valueOf(o));
    if (out.isEmpty()) out.add("cell");
    return out;
  }

  private long ptr() throws CellCountException {
    if (handle.ptr == 0)
      throw new CellCountException(CellCountException.ERR_INVALID_ARGUMENT, "CELLCOUNT_ERR_INVALID_ARGUMENT",
          "the model " + path + " is closed");
    return handle.ptr;
  }

  /**
   * Counts (and locates) cells in one 2-D image.
   *
   * @param image pixels (only read during the call)
   * @param exemplars boxes, required (>= 1) when {@link #needsExemplars()}, else null or empty
   * @param region optional mask (width x height, non-zero = count here), or null for the whole image
   * @param params null for {@link PredictParams#defaults()}
   * @param progress null or a listener that may cancel
   * @throws CellCountException with {@link CellCountException#isCancelled()} when cancelled (the model stays
   *     usable); ERR_INVALID_ARGUMENT for a wrong image, boxes or params; ERR_DEVICE; ERR_OUT_OF_MEMORY
   */
  public synchronized Prediction predict(PixelData image, Box[] exemplars, byte[] region, PredictParams params,
      ProgressListener progress) throws CellCountException {
    long p = ptr();
    if (image == null)
      throw new CellCountException(CellCountException.ERR_INVALID_ARGUMENT, "CELLCOUNT_ERR_INVALID_ARGUMENT",
          "predict: no image");
    float[] boxes = null;
    if (exemplars != null && exemplars.length > 0) {
      boxes = new float[4 * exemplars.length];
      for (int k = 0; k < exemplars.length; k++) {
        boxes[4 * k] = exemplars[k].x0;
        boxes[4 * k + 1] = exemplars[k].y0;
        boxes[4 * k + 2] = exemplars[k].x1;
        boxes[4 * k + 3] = exemplars[k].y1;
      }
    }
    PredictParams pp = params != null ? params : PredictParams.defaults();
    // the 0-1 threshold rides in the options JSON (cellcount.h, measurements); the caller's params are left as given
    String given = pp.optionsJson;
    long r;
    try {
      pp.optionsJson = pp.effectiveOptionsJson();
      r = Native.predict(p, image.array, image.dtype, image.width, image.height, image.channels, boxes, region,
          pp, Native.bridge(progress));
    } finally {
      pp.optionsJson = given;
    }
    try {
      return new Prediction(r, pp.measureJson());
    } finally {
      Native.resultFree(r);
    }
  }

  /** Frees the native model; safe to call twice. Waits for a running predict of another thread. */
  @Override
  public synchronized void close() {
    cleanable.clean();
  }

  @Override
  public String toString() {
    return "CellCountModel(" + path + ", " + method() + ")";
  }
}
