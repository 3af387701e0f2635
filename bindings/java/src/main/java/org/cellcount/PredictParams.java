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
  /** NaN = the model's value (exemplar method). */
  public float maskThreshold;
  /** Keep the density map in the result. */
  public boolean wantDensity;

  private PredictParams() {}

  /** The library's defaults. */
  public static PredictParams defaults() throws CellCountException {
    CellCount.load();
    PredictParams p = new PredictParams();
    Native.defaultParams(p);
    return p;
  }

  @Override
  public String toString() {
    return "device=" + device + " precision=" + precision + " tileSize=" + tileSize + " tileOverlap=" + tileOverlap
        + " peakThreshold=" + peakThreshold + " peakMinDistance=" + peakMinDistance + " maskThreshold="
        + maskThreshold + " wantDensity=" + wantDensity;
  }
}
