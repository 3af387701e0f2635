package org.cellcount;

import java.nio.charset.StandardCharsets;

/**
 * The JNI declarations (bindings/java/jni/cellcount_jni.c), one per C ABI call the bindings use.
 * Package-private: the public API is {@link CellCount} and {@link CellCountModel}. Strings cross as UTF-8
 * byte arrays. Every native method that can fail throws {@link CellCountException}. Callers load the
 * library first ({@link CellCount#load()}).
 */
final class Native {
  private Native() {}

  /** Called from C during long calls; returns true to cancel. */
  static final class ProgressBridge {
    private final ProgressListener listener;

    ProgressBridge(ProgressListener listener) {
      this.listener = listener;
    }

    boolean call(float fraction, byte[] stage) {
      return listener.progress(fraction, utf8(stage));
    }
  }

  /** The one log sink installed in C; the listener inside it can be swapped at any time. */
  static final class LogBridge {
    volatile LogListener listener;

    void call(int level, byte[] message) {
      LogListener l = listener;
      if (l != null) l.log(level, utf8(message));
    }
  }

  static String utf8(byte[] b) {
    return b == null ? null : new String(b, StandardCharsets.UTF_8);
  }

  static byte[] bytes(String s) {
    return s == null ? null : s.getBytes(StandardCharsets.UTF_8);
  }

  static ProgressBridge bridge(ProgressListener l) {
    return l == null ? null : new ProgressBridge(l);
  }

  static native int abiVersion();
  static native byte[] versionString();
  static native byte[] statusName(int status);
  static native byte[] libraryInfo() throws CellCountException;
  static native void setNumThreads(int n) throws CellCountException;
  static native void logInstall(LogBridge bridge, int minLevel);
  static native byte[] requestDefaults(byte[] method, byte[] kind) throws CellCountException;
  static native byte[] requestOptions(byte[] method, byte[] kind) throws CellCountException;
  /** which: 0 metrics, 1 split. */
  static native byte[] jsonCall(int which, byte[] requestJson) throws CellCountException;
  /** splitFile null = the folder's split.csv. */
  static native byte[] datasetRead(byte[] dir, byte[] splitFile) throws CellCountException;
  static native boolean isImageFile(byte[] path) throws CellCountException;
  static native long imageRead(byte[] path) throws CellCountException;
  static native void imageFree(long image);
  static native int imageNumPlanes(long image);
  static native long[] imagePlaneSize(long image, int z) throws CellCountException;
  static native float[] imagePlane(long image, int z) throws CellCountException;
  /** which: 0 train, 1 evaluate, 2 synthesize, 3 export (the bridge unused). */
  static native byte[] request(int which, byte[] requestJson, ProgressBridge progress) throws CellCountException;

  static native long modelLoad(byte[] path) throws CellCountException;
  static native void modelFree(long model);
  static native byte[] modelInfo(long model) throws CellCountException;
  static native void defaultParams(PredictParams params) throws CellCountException;
  static native long predict(long model, Object pixels, int dtype, long width, long height, long channels,
      float[] boxes, byte[] region, PredictParams params, ProgressBridge progress) throws CellCountException;

  static native void resultFree(long result);
  static native double resultCount(long result);
  static native double resultSeconds(long result);
  static native byte[] resultDevice(long result);
  static native byte[] resultPrecision(long result);
  static native double[] resultClassCounts(long result) throws CellCountException;
  static native int resultNumPoints(long result) throws CellCountException;
  static native void resultPoints(long result, float[] xy, int[] classes, float[] scores) throws CellCountException;
  static native long[] resultImageSize(long result, int kind) throws CellCountException;
  static native float[] resultImage(long result, int kind) throws CellCountException;
  // cellcount.h, measurements
  static native double peakThresholdConvert(double value, boolean toRelative) throws CellCountException;
  static native byte[] resultMeasure(long result, byte[] requestJson) throws CellCountException;
  static native int[] resultLabels(long result) throws CellCountException;
}
