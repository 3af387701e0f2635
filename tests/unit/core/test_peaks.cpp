// find_peaks against an O(n^2) brute force: local maxima by definition, plateaus by label propagation,
// greedy NMS by checking every kept peak.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/peaks.h"

namespace cellcount {
namespace {

struct Ref {
  int64_t x, y;
  float score;
};

// Local maxima straight from the definition, then plateaus: propagate the smallest raster index among
// 8-connected equal maxima until nothing changes; a plateau's candidate is the pixel keeping its own index.
std::vector<int64_t> reference_candidates(const std::vector<float>& m, int64_t h, int64_t w, float thr) {
  auto at = [&](int64_t y, int64_t x) { return m[static_cast<size_t>(y * w + x)]; };
  std::vector<int64_t> maxima;
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const float v = at(y, x);
      bool ok = v >= thr;
      for (int64_t dy = -1; dy <= 1; ++dy)
        for (int64_t dx = -1; dx <= 1; ++dx) {
          const int64_t yy = y + dy, xx = x + dx;
          if (yy >= 0 && yy < h && xx >= 0 && xx < w && at(yy, xx) > v) ok = false;
        }
      if (ok) maxima.push_back(y * w + x);
    }
  std::vector<int64_t> label = maxima;
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t a = 0; a < maxima.size(); ++a)
      for (size_t b = 0; b < maxima.size(); ++b) {
        const int64_t i = maxima[a], j = maxima[b];
        if (m[static_cast<size_t>(i)] != m[static_cast<size_t>(j)]) continue;
        if (std::abs(i / w - j / w) > 1 || std::abs(i % w - j % w) > 1) continue;
        if (label[b] < label[a]) {
          label[a] = label[b];
          changed = true;
        }
      }
  }
  std::vector<int64_t> cand;
  for (size_t a = 0; a < maxima.size(); ++a)
    if (label[a] == maxima[a]) cand.push_back(maxima[a]);
  return cand;
}

// Greedy NMS by descending value (ties: raster order), checking every kept peak.
std::vector<Ref> reference_nms(std::vector<int64_t> cand, const std::vector<float>& m, int64_t w, float md,
                               size_t max_peaks) {
  std::sort(cand.begin(), cand.end(), [&](int64_t a, int64_t b) {
    const float va = m[static_cast<size_t>(a)], vb = m[static_cast<size_t>(b)];
    return va != vb ? va > vb : a < b;
  });
  std::vector<Ref> kept;
  for (int64_t i : cand) {
    if (max_peaks > 0 && kept.size() == max_peaks) break;
    bool ok = true;
    for (const Ref& k : kept) {
      const double dx = static_cast<double>(k.x - i % w), dy = static_cast<double>(k.y - i / w);
      if (std::sqrt(dx * dx + dy * dy) < md) ok = false;
    }
    if (ok) kept.push_back({i % w, i / w, m[static_cast<size_t>(i)]});
  }
  return kept;
}

void expect_same(const std::vector<Point>& got, const std::vector<Ref>& want, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t k = 0; k < got.size(); ++k) {
    EXPECT_EQ(got[k].x, static_cast<float>(want[k].x)) << what << " peak " << k;
    EXPECT_EQ(got[k].y, static_cast<float>(want[k].y)) << what << " peak " << k;
    EXPECT_EQ(got[k].score, want[k].score) << what << " peak " << k;
    EXPECT_EQ(got[k].cls, 0) << what;
  }
}

// Smooth blobs (like a density map) or coarse integer noise (many ties and plateaus).
std::vector<float> random_map(std::mt19937_64& rng, int64_t h, int64_t w, bool quantised) {
  std::vector<float> m(static_cast<size_t>(h * w), 0.0f);
  auto u = [&] { return static_cast<double>(rng() >> 11) * 0x1.0p-53; };
  if (quantised) {
    for (float& v : m) v = static_cast<float>(std::floor(u() * 4));
    return m;
  }
  const int n_blobs = 1 + static_cast<int>(u() * 30);
  for (int b = 0; b < n_blobs; ++b) {
    const double cx = u() * static_cast<double>(w), cy = u() * static_cast<double>(h), s = 0.8 + 2.5 * u(),
                 a = u();
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const double dx = static_cast<double>(x) - cx, dy = static_cast<double>(y) - cy;
        m[static_cast<size_t>(y * w + x)] += static_cast<float>(a * std::exp(-(dx * dx + dy * dy) / (2 * s * s)));
      }
  }
  for (float& v : m) v += static_cast<float>(0.01 * u());
  return m;
}

TEST(Peaks, MatchesBruteForceOnRandomMaps) {
  std::mt19937_64 rng(2024);
  int compared = 0;
  for (int trial = 0; trial < 60; ++trial) {
    const int64_t h = 1 + static_cast<int64_t>(rng() % 40), w = 1 + static_cast<int64_t>(rng() % 40);
    const bool quantised = trial % 3 == 0;
    const auto m = random_map(rng, h, w, quantised);
    for (float thr : {-1.0f, 0.05f, 1.0f}) {
      const auto cand = reference_candidates(m, h, w, thr);
      for (float md : {0.0f, 1.0f, 1.5f, 2.0f, 3.7f, 8.0f, 1000.0f}) {
        const size_t max_peaks = trial % 4 == 1 ? 3 : 0;
        expect_same(find_peaks(m.data(), h, w, thr, md, max_peaks), reference_nms(cand, m, w, md, max_peaks),
                    quantised ? "quantised" : "smooth");
        ++compared;
      }
    }
  }
  EXPECT_EQ(compared, 60 * 7 * 3);
}

TEST(Peaks, PlateauKeepsFirstPixelInRasterOrder) {
  // A 2 x 3 plateau of 5 and a single 3, both maxima.
  const int64_t h = 5, w = 6;
  std::vector<float> m(static_cast<size_t>(h * w), 0.0f);
  for (int64_t y = 1; y <= 2; ++y)
    for (int64_t x = 2; x <= 4; ++x) m[static_cast<size_t>(y * w + x)] = 5.0f;
  m[4 * w + 0] = 3.0f;
  const auto p = find_peaks(m.data(), h, w, 1.0f, 0.0f);
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].x, 2.0f);
  EXPECT_EQ(p[0].y, 1.0f);
  EXPECT_EQ(p[0].score, 5.0f);
  EXPECT_EQ(p[1].x, 0.0f);
  EXPECT_EQ(p[1].y, 4.0f);
  // A diagonal (8-connected) plateau is one plateau too.
  std::vector<float> d = {7, 0, 0, 0, 7, 0, 0, 0, 7};
  const auto pd = find_peaks(d.data(), 3, 3, 1.0f, 0.0f);
  ASSERT_EQ(pd.size(), 1u);
  EXPECT_EQ(pd[0].x, 0.0f);
  EXPECT_EQ(pd[0].y, 0.0f);
  // A flat map is a single plateau.
  std::vector<float> flat(12, 2.0f);
  EXPECT_EQ(find_peaks(flat.data(), 3, 4, 0.0f, 0.0f).size(), 1u);
}

TEST(Peaks, ThresholdIsInclusive) {
  std::vector<float> m = {0, 0, 0, 0, 0, 0.5f, 0, 0, 0, 0, 0, 0, 0, 0.2f, 0, 0};
  EXPECT_EQ(find_peaks(m.data(), 4, 4, 0.5f, 0.0f).size(), 1u);
  EXPECT_EQ(find_peaks(m.data(), 4, 4, 0.2f, 0.0f).size(), 2u);
  EXPECT_EQ(find_peaks(m.data(), 4, 4, 0.51f, 0.0f).size(), 0u);
}

TEST(Peaks, MinDistanceIsStrict) {
  // Peaks 3 apart: kept at min_distance 3, the weaker suppressed at 3.01.
  std::vector<float> m(7, 0.0f);
  m[1] = 2.0f;
  m[4] = 1.0f;
  EXPECT_EQ(find_peaks(m.data(), 1, 7, 0.5f, 3.0f).size(), 2u);
  const auto p = find_peaks(m.data(), 1, 7, 0.5f, 3.01f);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].x, 1.0f);
}

TEST(Peaks, MaxPeaksKeepsTheStrongestInOrder) {
  std::vector<float> m(9 * 9, 0.0f);
  const float vals[] = {0.3f, 0.9f, 0.5f, 0.9f, 0.1f};
  for (int k = 0; k < 5; ++k) m[static_cast<size_t>(2 * k * 9 + 2 * k)] = vals[k];  // diagonal, 2 apart
  const auto all = find_peaks(m.data(), 9, 9, 0.05f, 0.0f);
  ASSERT_EQ(all.size(), 5u);
  for (size_t k = 1; k < all.size(); ++k) EXPECT_GE(all[k - 1].score, all[k].score);
  EXPECT_EQ(all[0].x, 2.0f);  // tie 0.9: raster order first
  EXPECT_EQ(all[1].x, 6.0f);
  const auto top = find_peaks(m.data(), 9, 9, 0.05f, 0.0f, 2);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].score, 0.9f);
  EXPECT_EQ(top[1].score, 0.9f);
}

TEST(Peaks, EmptyAndSinglePixelMaps) {
  EXPECT_TRUE(find_peaks(nullptr, 0, 0, 0.0f, 3.0f).empty());
  EXPECT_TRUE(find_peaks(nullptr, 5, 0, 0.0f, 3.0f).empty());
  const float one = 0.7f;
  const auto p = find_peaks(&one, 1, 1, 0.5f, 3.0f);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].x, 0.0f);
  EXPECT_EQ(p[0].y, 0.0f);
  EXPECT_EQ(p[0].score, 0.7f);
  EXPECT_TRUE(find_peaks(&one, 1, 1, 0.8f, 3.0f).empty());
  try {
    find_peaks(nullptr, 2, 2, 0.0f, 1.0f);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), CELLCOUNT_ERR_INVALID_ARGUMENT);
  }
}

}  // namespace
}  // namespace cellcount

TEST(Peaks, TunedThresholdSeparatesCellsFromNoise) {
  // Four true cells with peaks of 1.0 and three spurious bumps of 0.3: any threshold in (0.3, 1.0]
  // gives F1 = 1; the lowest such candidate is chosen (ties go low), and lower ones lose precision.
  const int64_t H = 40, W = 40;
  std::vector<float> map(H * W, 0.0f);
  std::vector<cellcount::Point> truth;
  for (int i = 0; i < 4; ++i) {
    map[(5 + 8 * i) * W + 6] = 1.0f;
    truth.push_back(cellcount::Point{6.0f, float(5 + 8 * i)});
  }
  for (int i = 0; i < 3; ++i) map[(8 + 10 * i) * W + 30] = 0.3f;
  const float t = cellcount::tune_peak_threshold({map}, {H}, {W}, {truth}, 2.0f, 1.5, {0.1f, 0.2f, 0.5f, 0.9f, 2.0f});
  EXPECT_FLOAT_EQ(t, 0.5f);
}
