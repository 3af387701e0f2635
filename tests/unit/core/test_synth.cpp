// The synthetic cell renderer: deterministic for a seed, sane values, cells where the points say.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/synth.h"

namespace cellcount {
namespace {

SynthCellsParams small_params() {
  SynthCellsParams p;
  p.width = 96;
  p.height = 80;
  p.min_cells = 5;
  p.max_cells = 25;
  return p;
}

TEST(Synth, DeterministicForASeed) {
  const SynthCellsParams p = small_params();
  const SynthImage a = render_cells(p, 1234), b = render_cells(p, 1234);
  ASSERT_EQ(a.image.data.size(), b.image.data.size());
  EXPECT_TRUE(a.image.data == b.image.data);
  ASSERT_EQ(a.points.size(), b.points.size());
  for (size_t i = 0; i < a.points.size(); ++i) {
    EXPECT_EQ(a.points[i].x, b.points[i].x);
    EXPECT_EQ(a.points[i].y, b.points[i].y);
  }
}

TEST(Synth, DifferentSeedsDiffer) {
  const SynthCellsParams p = small_params();
  const SynthImage a = render_cells(p, 1), b = render_cells(p, 2);
  EXPECT_FALSE(a.image.data == b.image.data);
  const bool same_points = a.points.size() == b.points.size() &&
                           (a.points.empty() || (a.points[0].x == b.points[0].x && a.points[0].y == b.points[0].y));
  EXPECT_FALSE(same_points);
}

TEST(Synth, PointsInRangeAndInsideImage) {
  SynthCellsParams p = small_params();
  size_t lo = 1000, hi = 0;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    const SynthImage s = render_cells(p, seed);
    EXPECT_EQ(s.image.width, p.width);
    EXPECT_EQ(s.image.height, p.height);
    EXPECT_EQ(s.image.channels, 1);
    ASSERT_EQ(s.image.data.size(), static_cast<size_t>(p.width * p.height));
    ASSERT_GE(s.points.size(), static_cast<size_t>(p.min_cells));
    ASSERT_LE(s.points.size(), static_cast<size_t>(p.max_cells));
    lo = std::min(lo, s.points.size());
    hi = std::max(hi, s.points.size());
    for (const Point& q : s.points) {
      EXPECT_GE(q.x, 0.0f);
      EXPECT_LE(q.x, static_cast<float>(p.width - 1));
      EXPECT_GE(q.y, 0.0f);
      EXPECT_LE(q.y, static_cast<float>(p.height - 1));
      EXPECT_EQ(q.cls, 0);
    }
  }
  EXPECT_LT(lo, hi);  // the count actually varies
  p.min_cells = p.max_cells = 7;
  EXPECT_EQ(render_cells(p, 9).points.size(), 7u);
  p.min_cells = p.max_cells = 0;
  EXPECT_TRUE(render_cells(p, 9).points.empty());
}

TEST(Synth, ValuesFiniteAndNonNegative) {
  for (uint64_t seed : {3u, 4u}) {
    const SynthImage s = render_cells(small_params(), seed);
    for (float v : s.image.data) {
      ASSERT_TRUE(std::isfinite(v));
      ASSERT_GE(v, 0.0f);
    }
  }
}

TEST(Synth, CellsBrighterThanBackground) {
  const SynthCellsParams p = small_params();
  for (uint64_t seed = 10; seed < 15; ++seed) {
    const SynthImage s = render_cells(p, seed);
    const Image& im = s.image;
    double at_points = 0;
    for (const Point& q : s.points)
      at_points += im.at(static_cast<int64_t>(std::lround(q.y)), static_cast<int64_t>(std::lround(q.x)));
    at_points /= static_cast<double>(s.points.size());
    // Background: pixels farther than radius_max * elongation + margin from every centre.
    const double far = p.radius_max * std::sqrt(p.elongation_max) + 4;
    double bg = 0;
    size_t n_bg = 0;
    for (int64_t y = 0; y < im.height; ++y)
      for (int64_t x = 0; x < im.width; ++x) {
        bool is_bg = true;
        for (const Point& q : s.points)
          if (std::hypot(q.x - static_cast<double>(x), q.y - static_cast<double>(y)) < far) is_bg = false;
        if (is_bg) {
          bg += im.at(y, x);
          ++n_bg;
        }
      }
    ASSERT_GT(n_bg, 0u);
    bg /= static_cast<double>(n_bg);
    EXPECT_GT(at_points, bg + 0.2) << "seed " << seed << " points " << at_points << " background " << bg;
  }
}

TEST(Synth, MinCenterDistanceRespected) {
  SynthCellsParams p = small_params();
  p.min_center_distance = 9.0f;
  p.min_cells = p.max_cells = 40;
  const SynthImage s = render_cells(p, 77);
  EXPECT_GT(s.points.size(), 10u);
  EXPECT_LE(s.points.size(), 40u);
  for (size_t i = 0; i < s.points.size(); ++i)
    for (size_t j = i + 1; j < s.points.size(); ++j)
      EXPECT_GE(std::hypot(s.points[i].x - s.points[j].x, s.points[i].y - s.points[j].y), 9.0 - 1e-4);
}

TEST(Synth, BadParamsThrow) {
  auto expect_invalid = [](SynthCellsParams p) {
    try {
      render_cells(p, 0);
      FAIL() << "expected an Error";
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), CELLCOUNT_ERR_INVALID_ARGUMENT);
    }
  };
  SynthCellsParams p = small_params();
  p.width = 0;
  expect_invalid(p);
  p = small_params();
  p.min_cells = 10;
  p.max_cells = 5;
  expect_invalid(p);
  p = small_params();
  p.radius_min = 0;
  expect_invalid(p);
  p = small_params();
  p.noise_sigma = -0.1f;
  expect_invalid(p);
  p = small_params();
  p.elongation_max = 0.5f;
  expect_invalid(p);
}

}  // namespace
}  // namespace cellcount
