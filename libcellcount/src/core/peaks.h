// Peak finding with non-maximum suppression on a 2-D map. No LibTorch.
#pragma once
#include <cstdint>
#include <vector>

#include "core/types.h"

namespace cellcount {

// Local maxima of a row-major height x width map: pixels >= threshold and >= all 8 neighbours (on a
// plateau the first pixel in raster order wins). Then greedy NMS by descending value: a candidate is kept
// if no kept peak lies strictly closer than min_distance (Euclidean, pixels). score = map value, cls = 0.
// max_peaks > 0 keeps only the strongest. Result sorted by descending score, ties by raster order.
std::vector<Point> find_peaks(const float* map, int64_t height, int64_t width, float threshold,
                              float min_distance, size_t max_peaks = 0);

}  // namespace cellcount

namespace cellcount {

// The thresholds methods try when tuning: 2e-4 .. 0.5, each 1.25 x the last (density per pixel).
std::vector<float> peak_threshold_grid();

// Tuning on a validation split: the threshold among `candidates` whose peaks best match the true points
// (largest total F1 of match_points within `radius`, summed over the maps; ties go to the lower
// threshold). maps[i] is heights[i] x widths[i], row-major.
float tune_peak_threshold(const std::vector<std::vector<float>>& maps, const std::vector<int64_t>& heights,
                          const std::vector<int64_t>& widths, const std::vector<std::vector<Point>>& truth,
                          float min_distance, double radius, const std::vector<float>& candidates);

}  // namespace cellcount
