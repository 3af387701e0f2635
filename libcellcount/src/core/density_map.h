// Gaussian density maps from points. No LibTorch.
#pragma once
#include <cstdint>
#include <vector>

#include "core/types.h"

namespace cellcount {

// Renders a height x width density map (row-major) where each point contributes a Gaussian of std `sigma`
// truncated at `truncate` * sigma and renormalised over the pixels that fall inside the image, so every
// point adds exactly 1 and the map sums to points.size() (points outside the image are skipped and
// counted in *n_skipped when given). sigma <= 0 puts each point's unit mass on its nearest pixel.
std::vector<float> gaussian_density(const std::vector<Point>& points, int64_t height, int64_t width,
                                    double sigma, double truncate = 3.0, size_t* n_skipped = nullptr);

}  // namespace cellcount
