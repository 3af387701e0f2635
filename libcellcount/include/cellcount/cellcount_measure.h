/* cellcount_measure.h: what a front end shows beside a count, computed by the library (issue 21).
 *
 * Companion of cellcount.h (same ABI, same library, same rules: statuses, per-thread last error, BORROWED /
 * OWNED BY LIBRARY, no exception crosses it). A separate header only so that adding these calls did not
 * change the header every library file includes; it may be folded into cellcount.h at the next ABI bump.
 *
 * The peak threshold as a 0-1 relative value. The library maps a relative value r in [0, 1] to the absolute
 * peak height (density units) on a logarithmic scale over the range the threshold tuner searches
 * (core/peaks peak_threshold_grid): absolute = 0.0002 * (0.5 / 0.0002)^r, so r = 0 keeps nearly every local
 * maximum and r = 1 only peaks of at least 0.5. A model's info JSON
 * (cellcount_model_info) carries "peak_threshold": {"value" (the absolute threshold used when none is
 * given: model.json's tuned one, else the method's default), "relative" (the same on the 0-1 scale),
 * "tuned" (true when model.json has it), "min", "max" (the scale's ends), "rule"}. A prediction takes a
 * relative value as the generic key "peak_threshold_relative" of cellcount_predict_params.options_json
 * (ERR_INVALID_ARGUMENT when outside [0, 1] or given together with params.peak_threshold);
 * cellcount_peak_threshold_convert converts either way.
 */
#ifndef CELLCOUNT_MEASURE_H
#define CELLCOUNT_MEASURE_H

#include "cellcount/cellcount.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Converts a peak threshold: to_relative != 0 maps an absolute threshold (>= 0) to the 0-1 scale (values
 * beyond the scale's ends clamp to 0 or 1), to_relative == 0 maps a relative value in [0, 1] to the absolute
 * one. Statuses: OK, ERR_INVALID_ARGUMENT (NULL out, NaN, negative, relative above 1). */
CELLCOUNT_API cellcount_status cellcount_peak_threshold_convert(double value, int32_t to_relative, double * out);

/* Measurements of a result as JSON, computed from what cellcount_predict saw:
 *   request (BORROWED, NULL = {}): {"pixel_width": 1, "pixel_height": 1 (calibrated units per pixel, > 0),
 *     "unit": "pixel" (a name; "pixel", "pixels" or "" = uncalibrated)}
 *   report: {"count", "n_points", "counted_pixels" (region or whole image), "area" (counted_pixels x
 *     pixel_width x pixel_height), "unit", "calibrated" (a unit other than "pixel"/"pixels"/"px"/"", or a pixel size other than 1),
 *     "cells_per_unit2" (count / area; null when
 *     uncalibrated or the area is 0), "intensity_radius" (pixels), "points": [{"x", "y", "class", "score",
 *     "intensity" (mean of the original image's pixels, all channels, within intensity_radius of the point,
 *     in the image's own range), "label" (the component of the label image at the point, 0 = none)}, ...],
 *     "labels": {"available" (bool), "n" (components), "source" or "reason" (why there is none)}}
 * *out_json OWNED BY LIBRARY (cellcount_string_free).
 * Statuses: OK, ERR_INVALID_ARGUMENT (NULL, bad JSON, pixel sizes not finite and > 0). */
CELLCOUNT_API cellcount_status cellcount_result_measure(const cellcount_result * r, const char * request_json,
                                                        char ** out_json);

/* The label image where the method gives a mask (exemplar: its segmentation mask > 0.5, split into
 * 8-connected components numbered 1..n in raster order; 0 = background), as int32 row-major H x W into a
 * CALLER-SIZED buffer of `capacity` values (size: cellcount_result_image_size of CELLCOUNT_IMAGE_MASK).
 * Statuses: OK, ERR_INVALID_ARGUMENT (NULL, the result has no mask: the message says why),
 * ERR_BUFFER_TOO_SMALL. */
CELLCOUNT_API cellcount_status cellcount_result_labels(const cellcount_result * r, int32_t * dst, size_t capacity);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CELLCOUNT_MEASURE_H */
