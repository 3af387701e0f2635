package org.cellcount;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Library-wide calls of libcellcount: version and ABI check, library info, request defaults, and the
 * JSON-request calls train / evaluate / synthesize. Models are {@link CellCountModel}.
 *
 * <p>Threads (as the C header says): distinct models may be used concurrently; one model is used by one
 * thread at a time (CellCountModel synchronises that); callbacks run on the calling thread.
 */
public final class CellCount {
  /** The C ABI these bindings were written against (CELLCOUNT_ABI_VERSION); loading refuses others. */
  public static final int ABI_VERSION = 2;

  public static final int LOG_DEBUG = 0;
  public static final int LOG_INFO = 1;
  public static final int LOG_WARN = 2;
  public static final int LOG_ERROR = 3;

  private static final Native.LogBridge LOG_BRIDGE = new Native.LogBridge();

  private CellCount() {}

  /** Loads the native library (once) and checks its ABI; the message says where it looked on failure. */
  public static void load() throws CellCountException {
    NativeLoader.load();
  }

  /** Absolute path of the loaded JNI library, or "java.library.path". */
  public static String nativeLibraryPath() throws CellCountException {
    load();
    return NativeLoader.loadedFrom();
  }

  public static String version() throws CellCountException {
    load();
    return Native.utf8(Native.versionString());
  }

  public static int abiVersion() throws CellCountException {
    load();
    return Native.abiVersion();
  }

  /** Name of a status, e.g. "CELLCOUNT_ERR_IO", as the library spells it. */
  public static String statusName(int status) throws CellCountException {
    load();
    return Native.utf8(Native.statusName(status));
  }

  /** cellcount_library_info as JSON text: version, abi, devices, io back ends, methods. */
  public static String libraryInfoJson() throws CellCountException {
    load();
    return Native.utf8(Native.libraryInfo());
  }

  public static Map<String, Object> libraryInfo() throws CellCountException {
    return Json.parseObject(libraryInfoJson());
  }

  /** Number of CPU threads LibTorch uses (0 = one per core). Process-wide. */
  public static void setNumThreads(int n) throws CellCountException {
    load();
    Native.setNumThreads(n);
  }

  /** Routes the library's log to {@code listener} (null: back to stderr); lines below minLevel are dropped. */
  public static synchronized void setLogListener(LogListener listener, int minLevel) throws CellCountException {
    load();
    LOG_BRIDGE.listener = listener;
    Native.logInstall(listener == null ? null : LOG_BRIDGE, minLevel);
  }

  /** The default request of kind "train", "evaluate", "synthesize" or "predict" (the method's own
   * prediction options) for a method: the only source of defaults for every front end. */
  public static String requestDefaults(String method, String kind) throws CellCountException {
    load();
    return Native.utf8(Native.requestDefaults(Native.bytes(method), Native.bytes(kind)));
  }

  /**
   * Metadata of every field of the same requests (cellcount_request_options) as a JSON array of
   * {name, type, default, doc, advanced, nullable[, min, max][, choices]}; kind "predict" lists a method's
   * own prediction options ({@link PredictParams#optionsJson}); method "" the generic ones.
   */
  public static String requestOptionsJson(String method, String kind) throws CellCountException {
    load();
    return Native.utf8(Native.requestOptions(Native.bytes(method), Native.bytes(kind)));
  }

  /** {@link #requestOptionsJson} parsed: one map per field, in declaration order. */
  @SuppressWarnings("unchecked")
  public static List<Map<String, Object>> requestOptions(String method, String kind) throws CellCountException {
    List<Map<String, Object>> out = new ArrayList<>();
    for (Object o : (List<Object>) Json.parse(requestOptionsJson(method, kind))) out.add((Map<String, Object>) o);
    return out;
  }

  /** The library's 0-1 scale of the peak threshold for an absolute peak height (cellcount.h, measurements). */
  public static double peakThresholdRelative(double absolute) throws CellCountException {
    load();
    return Native.peakThresholdConvert(absolute, true);
  }

  /** The absolute peak height the library uses for a relative threshold in [0, 1]. */
  public static double peakThresholdAbsolute(double relative) throws CellCountException {
    load();
    return Native.peakThresholdConvert(relative, false);
  }

  /**
   * Count metrics and point matching (cellcount_metrics): request {"predicted": [...], "truth": [...]
   * [, "points": [{"predicted": [[x,y]...], "truth": [[x,y]...]}...], "radius": r]}; returns the report JSON
   * (n, mae, rmse, nae, sre, mre, accuracy[, tp, fp, fn, precision, recall, f1]).
   */
  public static String metrics(String requestJson) throws CellCountException {
    load();
    return Native.utf8(Native.jsonCall(0, Native.bytes(requestJson)));
  }

  /** Writes a fixed-seed split CSV of a dataset (cellcount_split); returns the report JSON. */
  public static String split(String requestJson) throws CellCountException {
    load();
    return Native.utf8(Native.jsonCall(1, Native.bytes(requestJson)));
  }

  /** A dataset folder's annotations as JSON (cellcount_dataset_read); splitFile null = its split.csv. */
  public static String readDatasetJson(String folder, String splitFile) throws CellCountException {
    load();
    return Native.utf8(Native.datasetRead(Native.bytes(folder), Native.bytes(splitFile)));
  }

  /** True if {@link #readImage} reads files with this extension. */
  public static boolean isImageFile(String path) throws CellCountException {
    load();
    return Native.isImageFile(Native.bytes(path));
  }

  /**
   * Every 2-D plane of an image file (one for PNG, one per slice of a TIFF stack), read by the library's
   * back ends, as float pixels in the file's own range (H x W x C, channels interleaved).
   */
  public static List<PixelData> readImage(String path) throws CellCountException {
    load();
    long h = Native.imageRead(Native.bytes(path));
    try {
      List<PixelData> planes = new ArrayList<>();
      int n = Native.imageNumPlanes(h);
      for (int z = 0; z < n; z++) {
        long[] size = Native.imagePlaneSize(h, z);
        planes.add(PixelData.ofFloats(Native.imagePlane(h, z), (int) size[0], (int) size[1], (int) size[2]));
      }
      return planes;
    } finally {
      Native.imageFree(h);
    }
  }

  /** Trains a model (cellcount_train). Returns the report JSON. Cancel through the listener. */
  public static String train(String requestJson, ProgressListener progress) throws CellCountException {
    load();
    return Native.utf8(Native.request(0, Native.bytes(requestJson), Native.bridge(progress)));
  }

  /** Evaluates a model on a dataset (cellcount_evaluate). Returns the report JSON. */
  public static String evaluate(String requestJson, ProgressListener progress) throws CellCountException {
    load();
    return Native.utf8(Native.request(1, Native.bytes(requestJson), Native.bridge(progress)));
  }

  /** Writes a synthetic dataset (cellcount_synthesize). Returns the report JSON. */
  public static String synthesize(String requestJson, ProgressListener progress) throws CellCountException {
    load();
    return Native.utf8(Native.request(2, Native.bytes(requestJson), Native.bridge(progress)));
  }

  /** Writes a model folder as a package for another tool (cellcount_export), e.g.
   * {"model": "models/dcl-vgg", "out": "dcl-vgg.zip", "format": "bioimageio"}: a BioImage Model Zoo package.
   * The output file is never overwritten unless "overwrite": true. Returns the report JSON. */
  public static String export(String requestJson) throws CellCountException {
    load();
    return Native.utf8(Native.request(3, Native.bytes(requestJson), Native.bridge(null)));
  }

  /** Prints where the native library came from and the library info; exit status 1 with the loader's
   * message when it cannot be loaded. */
  public static void main(String[] args) {
    try {
      System.out.println("cellcount " + version() + " (ABI " + abiVersion() + ") from " + nativeLibraryPath());
      System.out.println(libraryInfoJson());
    } catch (CellCountException e) {
      System.err.println("cellcount: " + e.getMessage());
      System.exit(1);
    }
  }
}
