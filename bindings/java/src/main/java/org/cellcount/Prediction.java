package org.cellcount;

/**
 * What one {@link CellCountModel#predict} call found, copied out of the library's result (which is freed
 * before predict returns, so nothing here needs closing).
 */
public final class Prediction {
  /** A float image held by a result: row-major H x W x C. */
  public static final class Image {
    public final int width, height, channels;
    public final float[] data;

    Image(int width, int height, int channels, float[] data) {
      this.width = width;
      this.height = height;
      this.channels = channels;
      this.data = data;
    }
  }

  public static final int DENSITY = 1;
  public static final int MASK = 2;
  public static final int RECONSTRUCTION = 3;

  /** Total count (the density integral for density methods). */
  public final double count;
  /** Count per class, in the order of the model's classes (length >= 1). */
  public final double[] classCounts;
  /** Points: x (column) then y (row) per point, 0-based pixel centres. */
  public final float[] xy;
  public final int[] classIds;
  public final float[] scores;
  /** Density map (image size), or null when not asked for. */
  public final Image density;
  /** Region the method counted in (exemplar method), or null. */
  public final Image mask;
  /** Method-specific reconstruction (twinvae, llp), or null. */
  public final Image reconstruction;
  public final String device;
  public final String precision;
  /** Wall time of the library call. */
  public final double seconds;

  Prediction(long r) throws CellCountException {
    count = Native.resultCount(r);
    classCounts = Native.resultClassCounts(r);
    int n = Native.resultNumPoints(r);
    xy = new float[2 * n];
    classIds = new int[n];
    scores = new float[n];
    Native.resultPoints(r, xy, classIds, scores);
    density = image(r, DENSITY);
    mask = image(r, MASK);
    reconstruction = image(r, RECONSTRUCTION);
    device = Native.utf8(Native.resultDevice(r));
    precision = Native.utf8(Native.resultPrecision(r));
    seconds = Native.resultSeconds(r);
  }

  private static Image image(long r, int kind) throws CellCountException {
    long[] size = Native.resultImageSize(r, kind);
    if (size[0] <= 0) return null;
    float[] data = Native.resultImage(r, kind);
    return data == null ? null : new Image((int) size[0], (int) size[1], (int) size[2], data);
  }

  public int numPoints() {
    return classIds.length;
  }
}
