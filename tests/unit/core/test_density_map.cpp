// gaussian_density against a brute-force per-point reference (torchvision expected_fn style).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "core/density_map.h"
#include "core/error.h"

namespace cellcount {
namespace {

Point pt(float x, float y) {
  Point p;
  p.x = x;
  p.y = y;
  return p;
}

double total(const std::vector<float>& m) { return std::accumulate(m.begin(), m.end(), 0.0); }

// Slow and obvious: for each point visit every pixel of the image, keep those within truncate*sigma on both
// axes (or on the point's nearest row/column), weight by the 2-D Gaussian, divide by the kept sum.
std::vector<double> reference_density(const std::vector<Point>& pts, int64_t h, int64_t w, double sigma,
                                      double truncate) {
  std::vector<double> out(static_cast<size_t>(h * w), 0.0);
  const double reach = truncate * sigma;
  for (const Point& p : pts) {
    const double nx = std::floor(p.x + 0.5), ny = std::floor(p.y + 0.5);
    if (!(nx >= 0 && nx < static_cast<double>(w) && ny >= 0 && ny < static_cast<double>(h))) continue;
    std::vector<double> wgt(out.size(), 0.0);
    double sum = 0;
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const double dx = static_cast<double>(x) - p.x, dy = static_cast<double>(y) - p.y;
        const bool in_x = std::fabs(dx) <= reach || static_cast<double>(x) == nx;
        const bool in_y = std::fabs(dy) <= reach || static_cast<double>(y) == ny;
        if (!in_x || !in_y) continue;
        const double v = std::exp(-(dx * dx + dy * dy) / (2 * sigma * sigma));
        wgt[static_cast<size_t>(y * w + x)] = v;
        sum += v;
      }
    for (size_t i = 0; i < out.size(); ++i) out[i] += wgt[i] / sum;
  }
  return out;
}

std::vector<Point> random_points(std::mt19937_64& rng, size_t n, double w, double h) {
  std::vector<Point> pts;
  for (size_t i = 0; i < n; ++i) {
    const double x = static_cast<double>(rng() >> 11) * 0x1.0p-53 * (w - 1);
    const double y = static_cast<double>(rng() >> 11) * 0x1.0p-53 * (h - 1);
    pts.push_back(pt(static_cast<float>(x), static_cast<float>(y)));
  }
  return pts;
}

TEST(DensityMap, IntegralEqualsPointCount) {
  std::mt19937_64 rng(7);
  for (double sigma : {0.5, 1.0, 2.5, 6.0}) {
    const auto pts = random_points(rng, 200, 64, 48);
    size_t skipped = 99;
    const auto m = gaussian_density(pts, 48, 64, sigma, 3.0, &skipped);
    ASSERT_EQ(m.size(), 48u * 64u);
    EXPECT_EQ(skipped, 0u);
    EXPECT_NEAR(total(m), 200.0, 1e-3) << "sigma " << sigma;
    for (float v : m) EXPECT_GE(v, 0.0f);
  }
}

TEST(DensityMap, BordersAndCornersKeepUnitMass) {
  const int64_t h = 20, w = 30;
  const std::vector<Point> pts = {pt(0, 0), pt(w - 1, 0), pt(0, h - 1), pt(w - 1, h - 1), pt(-0.49f, 5),
                                  pt(w - 0.51f, 7), pt(12, -0.3f), pt(3.5f, h - 0.6f)};
  for (double sigma : {0.8, 3.0, 10.0}) {
    size_t skipped = 99;
    const auto m = gaussian_density(pts, h, w, sigma, 3.0, &skipped);
    EXPECT_EQ(skipped, 0u);
    EXPECT_NEAR(total(m), static_cast<double>(pts.size()), 1e-4) << "sigma " << sigma;
    // Each point alone also adds exactly one.
    for (const Point& p : pts) EXPECT_NEAR(total(gaussian_density({p}, h, w, sigma)), 1.0, 1e-6);
  }
}

TEST(DensityMap, LargeSigmaSpreadsEvenlyAndKeepsMass) {
  const std::vector<Point> pts = {pt(0, 0), pt(9, 4), pt(19, 14)};
  const auto m = gaussian_density(pts, 15, 20, 1e4);
  EXPECT_NEAR(total(m), 3.0, 1e-5);
  for (float v : m) EXPECT_NEAR(v, 3.0 / 300.0, 1e-5);
  const auto inf = gaussian_density(pts, 15, 20, std::numeric_limits<double>::infinity());
  EXPECT_NEAR(total(inf), 3.0, 1e-5);
}

TEST(DensityMap, MatchesBruteForceReference) {
  std::mt19937_64 rng(11);
  struct Case {
    int64_t h, w;
    double sigma, truncate;
  };
  for (const Case& c : {Case{17, 23, 1.0, 3.0}, Case{9, 31, 2.2, 2.0}, Case{12, 12, 4.0, 4.0},
                        Case{8, 8, 0.3, 1.0}, Case{20, 7, 1.7, 0.5}}) {
    auto pts = random_points(rng, 25, static_cast<double>(c.w), static_cast<double>(c.h));
    pts.push_back(pt(0, 0));
    pts.push_back(pt(static_cast<float>(c.w - 1), static_cast<float>(c.h - 1)));
    const auto got = gaussian_density(pts, c.h, c.w, c.sigma, c.truncate);
    const auto want = reference_density(pts, c.h, c.w, c.sigma, c.truncate);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], want[i], 1e-5) << "pixel " << i << " sigma " << c.sigma << " truncate " << c.truncate;
  }
}

TEST(DensityMap, NonPositiveSigmaPutsMassOnNearestPixel) {
  for (double sigma : {0.0, -1.0}) {
    const auto m = gaussian_density({pt(2.6f, 1.4f), pt(2.6f, 1.4f), pt(0, 3)}, 4, 5, sigma);
    for (int64_t i = 0; i < 20; ++i) {
      const float want = i == 1 * 5 + 3 ? 2.0f : i == 3 * 5 + 0 ? 1.0f : 0.0f;
      EXPECT_EQ(m[static_cast<size_t>(i)], want) << "pixel " << i;
    }
  }
  // A sigma so small the Gaussian underflows still deposits the point's mass.
  const auto tiny = gaussian_density({pt(1.5f, 1.0f)}, 3, 3, 1e-12);
  EXPECT_NEAR(total(tiny), 1.0, 1e-6);
  EXPECT_FLOAT_EQ(tiny[1 * 3 + 2], 1.0f);
}

TEST(DensityMap, PointsOutsideAreSkipped) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<Point> pts = {pt(-0.6f, 0), pt(9.5f, 0), pt(0, -0.51f), pt(0, 6.5f), pt(nan, 1),
                                  pt(1, std::numeric_limits<float>::infinity()), pt(4, 3)};
  size_t skipped = 0;
  const auto m = gaussian_density(pts, 7, 10, 1.5, 3.0, &skipped);
  EXPECT_EQ(skipped, 6u);
  EXPECT_NEAR(total(m), 1.0, 1e-6);
  EXPECT_NO_THROW(gaussian_density(pts, 7, 10, 1.5));  // n_skipped is optional
}

TEST(DensityMap, EmptyAndInvalidSizes) {
  size_t skipped = 0;
  EXPECT_TRUE(gaussian_density({pt(0, 0)}, 0, 5, 1.0, 3.0, &skipped).empty());
  EXPECT_EQ(skipped, 1u);
  EXPECT_EQ(total(gaussian_density({}, 4, 4, 1.0)), 0.0);
  try {
    gaussian_density({}, -1, 4, 1.0);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), CELLCOUNT_ERR_INVALID_ARGUMENT);
  }
}

}  // namespace
}  // namespace cellcount
