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
  /**
   * The library's measurements (cellcount_result_measure) for the calibration of the params: count,
   * counted_pixels, area, unit, calibrated, cells_per_unit2 (null when uncalibrated), intensity_radius,
   * points [{x, y, class, score, intensity, label}], labels {available, n, source or reason}, diameter
   * ({value, source} or null), class_fractions (each class's share of the classified cells, null when none).
   */
  public final java.util.Map<String, Object> measurements;
  /** Label image (row-major, mask size: {@link #mask}'s width x height), 0 = none; null when the method gives
   * no mask (measurements' labels.reason says why). */
  public final int[] labels;
  /**
   * The messages of the prediction's out-of-domain warnings (cellcount.h, "Out-of-domain warnings"; issue 24),
   * in the library's order; unmodifiable, empty when none. Each entry's code, value and limit are in
   * {@link #measurements}' "warnings". The library also logs each at {@link CellCount#LOG_WARN}.
   */
  public final java.util.List<String> warnings;

  Prediction(long r) throws CellCountException {
    this(r, null);
  }

  Prediction(long r, String measureJson) throws CellCountException {
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
    measurements = Json.parseObject(Native.utf8(Native.resultMeasure(r, measureJson == null ? null
        : measureJson.getBytes(java.nio.charset.StandardCharsets.UTF_8))));
    Object lab = measurements.get("labels");
    labels = lab instanceof java.util.Map && Boolean.TRUE.equals(((java.util.Map<?, ?>) lab).get("available"))
        ? Native.resultLabels(r) : null;
    java.util.List<String> w = new java.util.ArrayList<>();
    Object found = measurements.get("warnings");
    if (found instanceof java.util.List)
      for (Object o : (java.util.List<?>) found)
        if (o instanceof java.util.Map) w.add(String.valueOf(((java.util.Map<?, ?>) o).get("message")));
    warnings = java.util.Collections.unmodifiableList(w);
  }

  /** A number of {@link #measurements}, NaN when absent or null. */
  public double measurement(String key) {
    Object v = measurements.get(key);
    return v instanceof Number ? ((Number) v).doubleValue() : Double.NaN;
  }

  /** Class k's share of the classified cells (the library's class_fractions, model class order); NaN when no
   * cell was counted or k is out of range. */
  public double classFraction(int k) {
    Object v = measurements.get("class_fractions");
    if (!(v instanceof java.util.List) || k < 0 || k >= ((java.util.List<?>) v).size()) return Double.NaN;
    Object f = ((java.util.List<?>) v).get(k);
    return f instanceof Number ? ((Number) f).doubleValue() : Double.NaN;
  }

  /** The cell diameter (pixels) the image was counted with, given or estimated, for models with a cell size
   * (model.json cell_diameter, prediction option diameter); NaN for the others. */
  public double diameter() {
    Object v = diameterField("value");
    return v instanceof Number ? ((Number) v).doubleValue() : Double.NaN;
  }

  /** "given" or "estimated" for models with a cell size, else null. */
  public String diameterSource() {
    Object v = diameterField("source");
    return v == null ? null : String.valueOf(v);
  }

  private Object diameterField(String key) {
    Object d = measurements.get("diameter");
    return d instanceof java.util.Map ? ((java.util.Map<?, ?>) d).get(key) : null;
  }

  /** Per point, the mean of the original image in the library's small disc (NaN when none). */
  public double[] intensities() {
    return pointField("intensity");
  }

  /** Per point, its component of the label image (0 = none). */
  public int[] pointLabels() {
    double[] v = pointField("label");
    int[] out = new int[v.length];
    for (int k = 0; k < v.length; k++) out[k] = Double.isNaN(v[k]) ? 0 : (int) v[k];
    return out;
  }

  private double[] pointField(String key) {
    Object pts = measurements.get("points");
    java.util.List<?> list =
        pts instanceof java.util.List ? (java.util.List<?>) pts : java.util.Collections.emptyList();
    double[] out = new double[list.size()];
    for (int k = 0; k < out.length; k++) {
      Object v = list.get(k) instanceof java.util.Map ? ((java.util.Map<?, ?>) list.get(k)).get(key) : null;
      out[k] = v instanceof Number ? ((Number) v).doubleValue() : Double.NaN;
    }
    return out;
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
