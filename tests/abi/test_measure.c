/* C-only test of cellcount.h, measurements (issue 21 items 8, 9 and the counted area): the 0-1 peak threshold scale,
 * the measurements of a result (counted area, cells per unit2, per-point intensity, labels) with the fixture.
 * usage: cellcount_test_measure MODEL_DIR.  Prints "N passed, M failed"; exit 0 only when nothing failed. */
#include "cellcount/cellcount.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi_check.h"

#define W 128
#define H 128
static float g_img[H * W];
static void make_image(void) {
  int i, x, y;
  for (i = 0; i < H * W; ++i) g_img[i] = 20.0f;
  for (i = 0; i < 9; ++i) {
    const float cx = 20.0f + 40.0f * (float)(i % 3), cy = 18.0f + 40.0f * (float)(i / 3);
    for (y = 0; y < H; ++y)
      for (x = 0; x < W; ++x) {
        const float d2 = ((float)x - cx) * ((float)x - cx) + ((float)y - cy) * ((float)y - cy);
        g_img[y * W + x] += 200.0f * expf(-d2 / (2.0f * 2.5f * 2.5f));
      }
  }
}

/* The number after "key": in a JSON text (first occurrence at or after `from`), NAN when absent or null. */
static int cmp_float(const void* a, const void* b) {
  const float x = *(const float*)a, y = *(const float*)b;
  return x < y ? -1 : x > y;
}

/* The p-th percentile of the test image as cellcount.h documents the library's (every value, interpolated). */
static double image_percentile(double p) {
  static float sorted[H * W];
  const double pos = p / 100.0 * (H * W - 1);
  const int i0 = (int)floor(pos), i1 = i0 + 1 < H * W ? i0 + 1 : i0;
  memcpy(sorted, g_img, sizeof sorted);
  qsort(sorted, H * W, sizeof(float), cmp_float);
  return sorted[i0] * (1 - (pos - i0)) + sorted[i1] * (pos - i0);
}

static double number_after(const char* json, const char* key) {
  char pat[128];
  const char* p;
  snprintf(pat, sizeof pat, "\"%s\":", key);
  p = json ? strstr(json, pat) : NULL;
  if (!p) return NAN;
  p += strlen(pat);
  if (strncmp(p, "null", 4) == 0) return NAN;
  return strtod(p, NULL);
}

static size_t count_of(const char* text, const char* what) {
  size_t n = 0;
  const char* p = text;
  while (p && (p = strstr(p, what)) != NULL) {
    ++n;
    p += strlen(what);
  }
  return n;
}

static cellcount_result* predict(cellcount_model* m, const char* options, const cellcount_image_view* region,
                                 cellcount_status want) {
  cellcount_image_view v;
  cellcount_predict_params p = cellcount_predict_default_params();
  cellcount_result* r = NULL;
  memset(&v, 0, sizeof v);
  v.data = g_img;
  v.width = W;
  v.height = H;
  v.channels = 1;
  v.dtype = CELLCOUNT_DTYPE_F32;
  p.device = "cpu";
  p.options_json = options;
  EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, region, &p, &r), want);
  return r;
}

int main(int argc, char** argv) {
  cellcount_model* m = NULL;
  cellcount_result *r0 = NULL, *r = NULL;
  double rel = NAN, back = NAN, x = NAN;
  char opts[128];
  char* rep = NULL;
  const char* info;
  size_t n0;
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
    return 2;
  }
  make_image();

  /* ---- the 0-1 scale: ends, round trip, monotone, bad values refused */
  EXPECT_STATUS(cellcount_peak_threshold_convert(0.0002, 1, &x), CELLCOUNT_OK);
  EXPECT(fabs(x) < 1e-12, "0.0002 is 0 on the scale");
  EXPECT_STATUS(cellcount_peak_threshold_convert(0.5, 1, &x), CELLCOUNT_OK);
  EXPECT(fabs(x - 1) < 1e-12, "0.5 is 1 on the scale");
  EXPECT_STATUS(cellcount_peak_threshold_convert(0.0036, 1, &rel), CELLCOUNT_OK);
  EXPECT(rel > 0.3 && rel < 0.45, "dcl-vgg's tuned 0.0036 is about 0.37");
  EXPECT_STATUS(cellcount_peak_threshold_convert(rel, 0, &back), CELLCOUNT_OK);
  EXPECT(fabs(back - 0.0036) < 1e-9, "relative -> absolute -> the same absolute");
  EXPECT_STATUS(cellcount_peak_threshold_convert(7.0, 1, &x), CELLCOUNT_OK);
  EXPECT(x == 1.0, "above the scale clamps to 1");
  EXPECT_STATUS(cellcount_peak_threshold_convert(1.5, 0, &x), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(cellcount_peak_threshold_convert(-0.1, 1, &x), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(cellcount_peak_threshold_convert(NAN, 0, &x), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(cellcount_peak_threshold_convert(0.5, 0, NULL), CELLCOUNT_ERR_INVALID_ARGUMENT);

  EXPECT_STATUS(cellcount_model_load(argv[1], &m), CELLCOUNT_OK);
  if (!m) {
    return abi_check_summary();  /* the failed load counted: status 1 */
  }
  /* ---- the model's threshold on the scale, in its info */
  info = cellcount_model_info(m);
  EXPECT(strstr(info, "\"peak_threshold\":{") != NULL, "info has the peak_threshold section");
  rel = number_after(strstr(info, "\"peak_threshold\":{"), "relative");
  back = number_after(strstr(info, "\"peak_threshold\":{"), "value");
  EXPECT(rel >= 0 && rel <= 1, "the model's relative threshold is in [0, 1]");
  EXPECT_STATUS(cellcount_peak_threshold_convert(back, 1, &x), CELLCOUNT_OK);
  EXPECT(fabs(x - rel) < 1e-9, "info's relative is the scale of its value");

  /* ---- predicting with a relative threshold: the tuned one gives the default answer; the ends bracket it */
  r0 = predict(m, NULL, NULL, CELLCOUNT_OK);
  n0 = cellcount_result_n_points(r0);
  EXPECT(n0 >= 1, "the fixture finds points");
  snprintf(opts, sizeof opts, "{\"peak_threshold_relative\": %.17g}", rel);
  r = predict(m, opts, NULL, CELLCOUNT_OK);
  EXPECT(r && cellcount_result_n_points(r) == n0, "the model's relative threshold gives the default points");
  cellcount_result_free(r);
  r = predict(m, "{\"peak_threshold_relative\": 1}", NULL, CELLCOUNT_OK);
  EXPECT(r && cellcount_result_n_points(r) < n0, "relative 1 keeps fewer points");
  cellcount_result_free(r);
  r = predict(m, "{\"peak_threshold_relative\": 0}", NULL, CELLCOUNT_OK);
  EXPECT(r && cellcount_result_n_points(r) >= n0, "relative 0 keeps at least as many points");
  cellcount_result_free(r);
  r = predict(m, "{\"peak_threshold_relative\": 1.5}", NULL, CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT(strstr(cellcount_last_error(), "peak_threshold_relative") != NULL, "the error names the option");
  r = predict(m, "{\"peak_threshold_relative\": \"high\"}", NULL, CELLCOUNT_ERR_INVALID_ARGUMENT);
  {
    cellcount_image_view v;
    cellcount_predict_params p = cellcount_predict_default_params();
    memset(&v, 0, sizeof v);
    v.data = g_img;
    v.width = W;
    v.height = H;
    v.channels = 1;
    v.dtype = CELLCOUNT_DTYPE_F32;
    p.peak_threshold = 0.01f;
    p.options_json = "{\"peak_threshold_relative\": 0.5}";
    EXPECT_STATUS(cellcount_predict(m, &v, NULL, 0, NULL, &p, &r), CELLCOUNT_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(cellcount_last_error(), "not both") != NULL, "both thresholds: refused, saying so");
  }

  /* ---- the generic option normalization_range (issue 26: blocks of one image normalised as the whole) */
  r = predict(m, "{\"normalization_range\": []}", NULL, CELLCOUNT_OK);
  EXPECT(r && cellcount_result_count(r) == cellcount_result_count(r0), "[] = the image's own percentiles");
  cellcount_result_free(r);
  snprintf(opts, sizeof opts, "{\"normalization_range\": [%.17g, %.17g]}", image_percentile(1.0),
           image_percentile(99.8));
  r = predict(m, opts, NULL, CELLCOUNT_OK);
  EXPECT(r && fabs(cellcount_result_count(r) - cellcount_result_count(r0)) <= 1e-5 * cellcount_result_count(r0),
         "the image's own percentiles given as the range: the same count");
  cellcount_result_free(r);
  snprintf(opts, sizeof opts, "{\"normalization_range\": [%.17g, %.17g]}", image_percentile(1.0),
           4 * image_percentile(99.8));
  r = predict(m, opts, NULL, CELLCOUNT_OK);
  EXPECT(r && fabs(cellcount_result_count(r) - cellcount_result_count(r0)) > 1e-3 * cellcount_result_count(r0),
         "another range: another count (the method takes the range)");
  cellcount_result_free(r);
  {
    const char* bad[] = {"{\"normalization_range\": [5, 5]}", "{\"normalization_range\": [1]}",
                         "{\"normalization_range\": \"wide\"}", "{\"normalization_range\": [1, \"x\"]}"};
    size_t i;
    for (i = 0; i < sizeof bad / sizeof *bad; ++i) {
      r = predict(m, bad[i], NULL, CELLCOUNT_ERR_INVALID_ARGUMENT);
      EXPECT(strstr(cellcount_last_error(), "normalization_range") != NULL, "a bad range: the error names the option");
    }
  }

  /* ---- measurements: uncalibrated */
  EXPECT_STATUS(cellcount_result_measure(r0, NULL, &rep), CELLCOUNT_OK);
  EXPECT(number_after(rep, "counted_pixels") == W * H, "counted pixels = the whole image");
  EXPECT(number_after(rep, "area") == W * H, "area in pixels");
  EXPECT(strstr(rep, "\"calibrated\":false") != NULL, "not calibrated");
  EXPECT(isnan(number_after(rep, "cells_per_unit2")), "no cells per unit2 without a calibration");
  EXPECT(count_of(rep, "\"intensity\":") == n0, "one intensity per point");
  EXPECT(strstr(rep, "\"available\":false") != NULL && strstr(rep, "selftest gives no mask") != NULL,
         "no label image, and why");
  {
    /* every intensity is within the image's own range (20..220), the brightest near a blob's centre */
    const char* p = rep;
    double hi = 0, lo = 1e9;
    while ((p = strstr(p, "\"intensity\":")) != NULL) {
      const double v = strtod(p + strlen("\"intensity\":"), NULL);
      hi = v > hi ? v : hi;
      lo = v < lo ? v : lo;
      p += 5;
    }
    EXPECT(lo >= 20.0 - 1e-3 && hi <= 220.0 + 1e-3, "intensities in the image's own range");
    EXPECT(hi > 120.0, "a point on a blob has a bright local mean");
  }
  cellcount_string_free(rep);
  rep = NULL;
  /* calibrated: area and density from the library */
  EXPECT_STATUS(cellcount_result_measure(r0, "{\"pixel_width\": 0.5, \"pixel_height\": 0.25, \"unit\": \"um\"}", &rep),
                CELLCOUNT_OK);
  EXPECT(fabs(number_after(rep, "area") - W * H * 0.125) < 1e-9, "area = pixels x pixel width x pixel height");
  EXPECT(fabs(number_after(rep, "cells_per_unit2") - cellcount_result_count(r0) / (W * H * 0.125)) < 1e-9,
         "cells per unit2 = count / area");
  EXPECT(strstr(rep, "\"calibrated\":true") != NULL && strstr(rep, "\"unit\":\"um\"") != NULL, "calibrated, in um");
  cellcount_string_free(rep);
  rep = NULL;
  /* a scale without a unit name is a calibration too (ImageJ's Calibration.scaled(), napari's layer scale) */
  EXPECT_STATUS(cellcount_result_measure(r0, "{\"pixel_width\": 2, \"pixel_height\": 2}", &rep), CELLCOUNT_OK);
  EXPECT(strstr(rep, "\"calibrated\":true") != NULL && number_after(rep, "area") == W * H * 4.0, "scale only");
  cellcount_string_free(rep);
  rep = NULL;
  /* "points": false leaves the per-point list out, nothing else (and the warnings array is there) */
  EXPECT_STATUS(cellcount_result_measure(r0, "{\"points\": false}", &rep), CELLCOUNT_OK);
  EXPECT(strstr(rep, "\"points\":[]") != NULL && count_of(rep, "\"intensity\":") == 0, "no per-point list");
  EXPECT(number_after(rep, "n_points") == (double)n0 && number_after(rep, "counted_pixels") == W * H,
         "n_points and the rest unchanged");
  EXPECT(strstr(rep, "\"warnings\":[") != NULL, "the warnings array");
  cellcount_string_free(rep);
  rep = NULL;
  EXPECT_STATUS(cellcount_result_measure(r0, "{\"points\": 0}", &rep), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT(strstr(cellcount_last_error(), "points") != NULL, "a non-boolean points is named");
  /* bad requests: named */
  EXPECT_STATUS(cellcount_result_measure(r0, "{\"pixel_width\": 0}", &rep), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT(strstr(cellcount_last_error(), "pixel_width") != NULL, "the error names pixel_width");
  EXPECT_STATUS(cellcount_result_measure(r0, "{\"pixelwidth\": 1}", &rep), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT(strstr(cellcount_last_error(), "pixelwidth") != NULL, "an unknown field is named");
  EXPECT_STATUS(cellcount_result_measure(r0, "not json", &rep), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(cellcount_result_measure(r0, "{\"unit\": 3}", &rep), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(cellcount_result_measure(NULL, NULL, &rep), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(cellcount_result_measure(r0, NULL, NULL), CELLCOUNT_ERR_INVALID_ARGUMENT);
  {
    int32_t lab[4];
    EXPECT_STATUS(cellcount_result_labels(r0, lab, 4), CELLCOUNT_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(cellcount_last_error(), "gives no mask") != NULL, "no labels: says why");
    EXPECT_STATUS(cellcount_result_labels(NULL, lab, 4), CELLCOUNT_ERR_INVALID_ARGUMENT);
  }
  /* a region: only its pixels are counted area */
  {
    static uint8_t mask[H * W];
    cellcount_image_view mv;
    int i;
    for (i = 0; i < H * W; ++i) mask[i] = (i % W) < W / 4 ? 1 : 0;
    memset(&mv, 0, sizeof mv);
    mv.data = mask;
    mv.width = W;
    mv.height = H;
    mv.channels = 1;
    mv.dtype = CELLCOUNT_DTYPE_U8;
    r = predict(m, NULL, &mv, CELLCOUNT_OK);
    EXPECT_STATUS(cellcount_result_measure(r, "{\"pixel_width\": 0.5, \"pixel_height\": 0.5, \"unit\": \"um\"}", &rep),
                  CELLCOUNT_OK);
    EXPECT(number_after(rep, "counted_pixels") == W * H / 4, "counted pixels = the region's");
    EXPECT(fabs(number_after(rep, "area") - W * H / 16.0) < 1e-9, "region area in um2");
    cellcount_string_free(rep);
    rep = NULL;
    cellcount_result_free(r);
  }
  cellcount_result_free(r0);
  cellcount_model_free(m);
  return abi_check_summary();
}
