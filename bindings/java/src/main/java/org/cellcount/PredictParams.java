package org.cellcount;

/**
 * Prediction parameters, mirroring cellcount_predict_params. {@link #defaults()} fills them from
 * cellcount_predict_default_params(), the only source of defaults: "auto" device, fp32, the model's tile
 * size/overlap (0 / -1) and tuned thresholds (NaN).
 */
public final class PredictParams {
  /** "auto", "cpu", "cuda", "cuda:N". */
  public String device;
  /** "fp32", "bf16", "fp16". */
  public String precision;
  /** 0 = the model's default, else >= 32. */
  public int tileSize;
  /** -1 = the model's default. */
  public int tileOverlap;
  /** NaN = the model's tuned value. */
  public float peakThreshold;
  /** NaN = the model's tuned value (pixels). */
  public float peakMinDistance;
  /**
   * The method's own prediction options as a JSON object, e.g. {"mask_threshold": 0.5} for exemplar
   * ({@link CellCount#requestOptions}(method, "predict") lists them); null = every option at the model's
   * value. Unknown options and values out of range are refused by the library, naming the option.
   */
  public String optionsJson;
  /** Keep the density map in the result. */
  public boolean wantDensity;
  /**
   * The peak threshold on the library's 0-1 scale (cellcount.h, measurements; sent as options_json's
   * "peak_threshold_relative"); NaN = the model's tuned value. Not with {@link #peakThreshold}.
   */
  public float peakThresholdRelative = Float.NaN;
  /** Calibration for the library's measurements of the result ({@link Prediction#measurements}): calibrated
   * units per pixel and the unit's name ("pixel" = uncalibrated). */
  public double pixelWidth = 1, pixelHeight = 1;
  public String unit = "pixel";

  private PredictParams() {}

  /** The library's defaults. */
  public static PredictParams defaults() throws CellCountException {
    CellCount.load();
    PredictParams p = new PredictParams();
    Native.defaultParams(p);
    return p;
  }

  /** The options JSON the library gets: {@link #optionsJson} with {@link #peakThresholdRelative} when set. */
  String effectiveOptionsJson() {
    if (Float.isNaN(peakThresholdRelative)) return optionsJson;
    java.util.Map<String, Object> o = new java.util.LinkedHashMap<>();
    if (optionsJson != null) {
      Object parsed = Json.parse(optionsJson);
      if (!(parsed instanceof java.util.Map)) return optionsJson;  // the library names the error
      for (java.util.Map.Entry<?, ?> e : ((java.util.Map<?, ?>) parsed).entrySet())
        o.put(String.valueOf(e.getKey()), e.getValue());
    }
    o.put("peak_threshold_relative", (double) peakThresholdRelative);
    return Json.write(o);
  }

  /** The request of cellcount_result_measure for this calibration. */
  String measureJson() {
    java.util.Map<String, Object> m = new java.util.LinkedHashMap<>();
    m.put("pixel_width", pixelWidth);
    m.put("pixel_height", pixelHeight);
    m.put("unit", unit == null ? "pixel" : unit);
    return Json.write(m);
  }

  /** Sets {@link #optionsJson} from a map (values: numbers, strings, booleans, lists, maps); null clears it. */
  public PredictParams options(java.util.Map<String, ?> options) {
    optionsJson = options == null ? null : Json.write(options);
    return this;
  }

  @Override
  public String toString() {
    return "device=" + device + " precision=" + precision + " tileSize=" + tileSize + " tileOverlap=" + tileOverlap
        + " peakThreshold=" + peakThreshold + " peakMinDistance=" + peakMinDistance + " options=" + optionsJson
        + " wantDensity=" + wantDensity;
  }
}
