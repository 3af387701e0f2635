#include "core/peaks.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "core/metrics.h"

namespace cellcount {
namespace {

// Local maxima: v >= threshold and no 8-neighbour strictly greater (NaN pixels are never maxima and never
// block a neighbour). Among maxima, an 8-connected group of equal values is one plateau; only its first
// pixel in raster order is a candidate. Returns candidate raster indices in raster order.
std::vector<int64_t> local_maxima(const float* map, int64_t h, int64_t w, float threshold) {
  const size_t n = static_cast<size_t>(h) * static_cast<size_t>(w);
  std::vector<uint8_t> is_max(n, 0);
  size_t n_max = 0;
  for (int64_t y = 0; y < h; ++y) {
    const int64_t ya = std::max<int64_t>(y - 1, 0), yb = std::min<int64_t>(y + 1, h - 1);
    for (int64_t x = 0; x < w; ++x) {
      const float v = map[y * w + x];
      if (!(v >= threshold)) continue;
      const int64_t xa = std::max<int64_t>(x - 1, 0), xb = std::min<int64_t>(x + 1, w - 1);
      bool ok = true;
      for (int64_t yy = ya; yy <= yb && ok; ++yy)
        for (int64_t xx = xa; xx <= xb; ++xx)
          if (map[yy * w + xx] > v) {
            ok = false;
            break;
          }
      if (ok) {
        is_max[static_cast<size_t>(y * w + x)] = 1;
        ++n_max;
      }
    }
  }
  std::vector<int64_t> out;
  out.reserve(n_max);
  std::vector<int64_t> stack;
  // Raster scan: the first unvisited maximum met is the raster-first pixel of its plateau; flood the rest.
  for (int64_t i = 0; i < static_cast<int64_t>(n); ++i) {
    if (is_max[static_cast<size_t>(i)] != 1) continue;
    out.push_back(i);
    const float v = map[i];
    is_max[static_cast<size_t>(i)] = 2;
    stack.assign(1, i);
    while (!stack.empty()) {
      const int64_t j = stack.back();
      stack.pop_back();
      const int64_t y = j / w, x = j % w;
      for (int64_t yy = std::max<int64_t>(y - 1, 0); yy <= std::min<int64_t>(y + 1, h - 1); ++yy)
        for (int64_t xx = std::max<int64_t>(x - 1, 0); xx <= std::min<int64_t>(x + 1, w - 1); ++xx) {
          const int64_t k = yy * w + xx;
          if (is_max[static_cast<size_t>(k)] == 1 && map[k] == v) {
            is_max[static_cast<size_t>(k)] = 2;
            stack.push_back(k);
          }
        }
    }
  }
  return out;
}

}  // namespace

std::vector<Point> find_peaks(const float* map, int64_t height, int64_t width, float threshold,
                              float min_distance, size_t max_peaks) {
  CC_CHECK(height >= 0 && width >= 0, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "find_peaks: expected height, width >= 0, got " + std::to_string(height) + " x " +
               std::to_string(width));
  std::vector<Point> peaks;
  if (height == 0 || width == 0) return peaks;
  CC_CHECK(map != nullptr, CELLCOUNT_ERR_INVALID_ARGUMENT, "find_peaks: map is NULL");
  CC_CHECK(!std::isnan(min_distance), CELLCOUNT_ERR_INVALID_ARGUMENT, "find_peaks: min_distance is NaN");

  std::vector<int64_t> cand = local_maxima(map, height, width, threshold);
  // Descending value, ties by raster order (stable sort keeps the raster order of the candidates).
  std::stable_sort(cand.begin(), cand.end(), [map](int64_t a, int64_t b) { return map[a] > map[b]; });
  const size_t limit = max_peaks > 0 ? max_peaks : cand.size();

  auto keep = [&](int64_t i) {
    Point p;
    p.x = static_cast<float>(i % width);
    p.y = static_cast<float>(i / width);
    p.score = map[i];
    p.cls = 0;
    peaks.push_back(p);
  };

  // Distinct pixels are >= 1 apart, so with min_distance <= 1 nothing can be suppressed.
  if (!(min_distance > 1.0f)) {
    for (size_t k = 0; k < cand.size() && peaks.size() < limit; ++k) keep(cand[k]);
    return peaks;
  }

  // Greedy NMS with buckets of side >= min_distance: a suppressor lies in the 3 x 3 cells around a candidate.
  // The side also grows with the image so the grid has at most ~256 x 256 cells (e.g. a huge min_distance).
  const double md = static_cast<double>(min_distance);
  const double md2 = md * md;
  const double cell = std::max(md, static_cast<double>(std::max(height, width)) / 256.0);
  const int64_t gw = static_cast<int64_t>(std::ceil(static_cast<double>(width) / cell)) + 1;
  const int64_t gh = static_cast<int64_t>(std::ceil(static_cast<double>(height) / cell)) + 1;
  std::vector<std::vector<int64_t>> grid(static_cast<size_t>(gw * gh));
  for (size_t k = 0; k < cand.size() && peaks.size() < limit; ++k) {
    const int64_t i = cand[k];
    const int64_t y = i / width, x = i % width;
    const int64_t gx = static_cast<int64_t>(static_cast<double>(x) / cell);
    const int64_t gy = static_cast<int64_t>(static_cast<double>(y) / cell);
    bool suppressed = false;
    for (int64_t cy = std::max<int64_t>(gy - 1, 0); cy <= std::min<int64_t>(gy + 1, gh - 1) && !suppressed; ++cy)
      for (int64_t cx = std::max<int64_t>(gx - 1, 0); cx <= std::min<int64_t>(gx + 1, gw - 1) && !suppressed;
           ++cx)
        for (int64_t j : grid[static_cast<size_t>(cy * gw + cx)]) {
          const double dx = static_cast<double>(j % width - x), dy = static_cast<double>(j / width - y);
          if (dx * dx + dy * dy < md2) {
            suppressed = true;
            break;
          }
        }
    if (suppressed) continue;
    grid[static_cast<size_t>(gy * gw + gx)].push_back(i);
    keep(i);
  }
  return peaks;
}

}  // namespace cellcount

namespace cellcount {

float tune_peak_threshold(const std::vector<std::vector<float>>& maps, const std::vector<int64_t>& heights,
                          const std::vector<int64_t>& widths, const std::vector<std::vector<Point>>& truth,
                          float min_distance, double radius, const std::vector<float>& candidates) {
  CC_CHECK(!candidates.empty() && maps.size() == truth.size() && maps.size() == heights.size() &&
               maps.size() == widths.size(),
           CELLCOUNT_ERR_INVALID_ARGUMENT, "tune_peak_threshold: inconsistent inputs");
  float best = candidates.front();
  double best_f1 = -1;
  for (float t : candidates) {
    double f1 = 0;
    for (size_t i = 0; i < maps.size(); ++i)
      f1 += match_points(find_peaks(maps[i].data(), heights[i], widths[i], t, min_distance), truth[i], radius).f1;
    if (f1 > best_f1 + 1e-12) {
      best_f1 = f1;
      best = t;
    }
  }
  return best;
}

std::vector<float> peak_threshold_grid() {
  std::vector<float> out;
  for (double t = 0.0002; t < 0.5; t *= 1.25) out.push_back(float(t));
  return out;
}

}  // namespace cellcount
