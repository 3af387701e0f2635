#include "core/density_map.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"

namespace cellcount {
namespace {

// Pixel i covers [i - 0.5, i + 0.5): a coordinate is inside when its nearest pixel exists.
bool nearest_pixel(float v, int64_t n, int64_t* out) {
  if (!std::isfinite(v)) return false;
  const double p = std::floor(static_cast<double>(v) + 0.5);
  if (p < 0 || p >= static_cast<double>(n)) return false;
  *out = static_cast<int64_t>(p);
  return true;
}

// 1-D Gaussian weights for pixels [lo, hi] around `c`, truncated at `reach` pixels but always keeping the
// nearest pixel `nearest` (so a tiny sigma*truncate still deposits the mass). Returns the window.
void axis_weights(double c, int64_t nearest, int64_t n, double sigma, double reach, int64_t* lo, int64_t* hi,
                  std::vector<double>* w) {
  const double flo = std::ceil(c - reach), fhi = std::floor(c + reach);
  *lo = flo < 0 ? 0 : static_cast<int64_t>(std::min(flo, static_cast<double>(n - 1)));
  *hi = fhi >= static_cast<double>(n - 1) ? n - 1 : static_cast<int64_t>(std::max(fhi, 0.0));
  *lo = std::min(*lo, nearest);
  *hi = std::max(*hi, nearest);
  w->resize(static_cast<size_t>(*hi - *lo + 1));
  const double inv = 1.0 / (2.0 * sigma * sigma);
  for (int64_t i = *lo; i <= *hi; ++i) {
    const double d = static_cast<double>(i) - c;
    (*w)[static_cast<size_t>(i - *lo)] = std::exp(-d * d * inv);
  }
}

}  // namespace

std::vector<float> gaussian_density(const std::vector<Point>& points, int64_t height, int64_t width,
                                    double sigma, double truncate, size_t* n_skipped) {
  CC_CHECK(height >= 0 && width >= 0, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "gaussian_density: expected height, width >= 0, got " + std::to_string(height) + " x " +
               std::to_string(width));
  CC_CHECK(!std::isnan(sigma) && !std::isnan(truncate), CELLCOUNT_ERR_INVALID_ARGUMENT,
           "gaussian_density: sigma and truncate must not be NaN");
  if (n_skipped) *n_skipped = 0;
  const size_t n_pixels = static_cast<size_t>(height) * static_cast<size_t>(width);
  std::vector<double> acc(n_pixels, 0.0);  // double so the map sums to the count to float precision
  const bool delta = !(sigma > 0);  // an infinite sigma spreads each point evenly over its window
  double reach = std::max(0.0, truncate) * sigma;
  if (std::isnan(reach)) reach = 0;  // 0 * inf: keep only the nearest pixel's neighbourhood
  std::vector<double> wx, wy;
  for (const Point& p : points) {
    int64_t px = 0, py = 0;
    if (!nearest_pixel(p.x, width, &px) || !nearest_pixel(p.y, height, &py)) {
      if (n_skipped) ++*n_skipped;
      continue;
    }
    if (delta) {
      acc[static_cast<size_t>(py * width + px)] += 1.0;
      continue;
    }
    int64_t x0, x1, y0, y1;
    axis_weights(p.x, px, width, sigma, reach, &x0, &x1, &wx);
    axis_weights(p.y, py, height, sigma, reach, &y0, &y1, &wy);
    double sx = 0, sy = 0;
    for (double v : wx) sx += v;
    for (double v : wy) sy += v;
    const double total = sx * sy;
    if (!(total > 0) || !std::isfinite(total)) {  // underflow far from the point: fall back to a delta
      acc[static_cast<size_t>(py * width + px)] += 1.0;
      continue;
    }
    const double inv = 1.0 / total;
    for (int64_t y = y0; y <= y1; ++y) {
      const double wyv = wy[static_cast<size_t>(y - y0)] * inv;
      double* row = acc.data() + y * width;
      for (int64_t x = x0; x <= x1; ++x) row[x] += wyv * wx[static_cast<size_t>(x - x0)];
    }
  }
  return std::vector<float>(acc.begin(), acc.end());
}

}  // namespace cellcount
