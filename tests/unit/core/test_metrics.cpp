// Metrics on hand-computed values; match_points against an exhaustive search over all injective matchings.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/metrics.h"

namespace cellcount {
namespace {

Point pt(float x, float y) {
  Point p;
  p.x = x;
  p.y = y;
  return p;
}

// Largest number of pairs over every partial injective assignment predicted -> truth within the radius.
size_t brute_force_matches(const std::vector<Point>& pred, const std::vector<Point>& truth, double radius, size_t i,
                           std::vector<bool>& used) {
  if (i == pred.size()) return 0;
  size_t best = brute_force_matches(pred, truth, radius, i + 1, used);  // pred i unmatched
  for (size_t j = 0; j < truth.size(); ++j) {
    if (used[j]) continue;
    const double dx = static_cast<double>(pred[i].x) - truth[j].x, dy = static_cast<double>(pred[i].y) - truth[j].y;
    if (std::sqrt(dx * dx + dy * dy) > radius) continue;
    used[j] = true;
    best = std::max(best, 1 + brute_force_matches(pred, truth, radius, i + 1, used));
    used[j] = false;
  }
  return best;
}

template <class F>
void expect_error(F f, cellcount_status status, const std::vector<std::string>& in_message) {
  try {
    f();
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), status);
    for (const auto& s : in_message) EXPECT_NE(std::string(e.what()).find(s), std::string::npos) << e.what();
  }
}

TEST(Metrics, MatchPointsEqualsExhaustiveMaximumMatching) {
  std::mt19937_64 rng(99);
  auto u = [&] { return static_cast<double>(rng() >> 11) * 0x1.0p-53; };
  for (int trial = 0; trial < 400; ++trial) {
    const size_t np = rng() % 8, nt = rng() % 8;
    const double extent = 3 + 12 * u(), radius = 1 + 3 * u();
    std::vector<Point> pred, truth;
    for (size_t i = 0; i < np; ++i) pred.push_back(pt(static_cast<float>(u() * extent), static_cast<float>(u() * extent)));
    for (size_t i = 0; i < nt; ++i) truth.push_back(pt(static_cast<float>(u() * extent), static_cast<float>(u() * extent)));
    std::vector<bool> used(nt, false);
    const size_t want = brute_force_matches(pred, truth, radius, 0, used);
    const MatchResult r = match_points(pred, truth, radius);
    ASSERT_EQ(r.tp, want) << "trial " << trial;
    EXPECT_EQ(r.fp, np - want);
    EXPECT_EQ(r.fn, nt - want);
    if (np > 0) {
      EXPECT_DOUBLE_EQ(r.precision, static_cast<double>(want) / static_cast<double>(np));
    }
    if (nt > 0) {
      EXPECT_DOUBLE_EQ(r.recall, static_cast<double>(want) / static_cast<double>(nt));
    }
    const double f1 = r.precision + r.recall > 0 ? 2 * r.precision * r.recall / (r.precision + r.recall) : 0;
    EXPECT_DOUBLE_EQ(r.f1, f1);
  }
}

TEST(Metrics, MatchPointsBeatsGreedyNearest) {
  // Greedy nearest would pair P0 with T0 (distance 0.5) and leave P1 alone; the maximum matching pairs both.
  const std::vector<Point> pred = {pt(0, 0), pt(1.4f, 0)};
  const std::vector<Point> truth = {pt(0.5f, 0), pt(-0.9f, 0)};
  const MatchResult r = match_points(pred, truth, 1.0);
  EXPECT_EQ(r.tp, 2u);
  EXPECT_EQ(r.fp, 0u);
  EXPECT_EQ(r.fn, 0u);
  EXPECT_DOUBLE_EQ(r.f1, 1.0);
}

TEST(Metrics, MatchPointsRadiusBoundaryIsInclusive) {
  const std::vector<Point> pred = {pt(0, 0)}, truth = {pt(3, 4)};
  EXPECT_EQ(match_points(pred, truth, 5.0).tp, 1u);
  EXPECT_EQ(match_points(pred, truth, 4.999).tp, 0u);
  EXPECT_EQ(match_points({pt(2, 2)}, {pt(2, 2)}, 0.0).tp, 1u);  // radius 0: identical points match
  // One-to-one: two predictions on one truth give one TP and one FP.
  const MatchResult r = match_points({pt(1, 1), pt(1, 1)}, {pt(1, 1)}, 2.0);
  EXPECT_EQ(r.tp, 1u);
  EXPECT_EQ(r.fp, 1u);
  EXPECT_EQ(r.fn, 0u);
  EXPECT_DOUBLE_EQ(r.precision, 0.5);
  EXPECT_DOUBLE_EQ(r.recall, 1.0);
  EXPECT_DOUBLE_EQ(r.f1, 2.0 / 3.0);
}

TEST(Metrics, MatchPointsEmptySets) {
  const MatchResult both = match_points({}, {}, 3.0);
  EXPECT_EQ(both.tp + both.fp + both.fn, 0u);
  EXPECT_DOUBLE_EQ(both.precision, 1.0);
  EXPECT_DOUBLE_EQ(both.recall, 1.0);
  EXPECT_DOUBLE_EQ(both.f1, 1.0);
  const MatchResult missed = match_points({}, {pt(1, 1), pt(2, 2), pt(3, 3)}, 3.0);
  EXPECT_EQ(missed.fn, 3u);
  EXPECT_DOUBLE_EQ(missed.precision, 0.0);
  EXPECT_DOUBLE_EQ(missed.recall, 0.0);
  EXPECT_DOUBLE_EQ(missed.f1, 0.0);
  const MatchResult spurious = match_points({pt(1, 1), pt(9, 9)}, {}, 3.0);
  EXPECT_EQ(spurious.fp, 2u);
  EXPECT_DOUBLE_EQ(spurious.precision, 0.0);
  EXPECT_DOUBLE_EQ(spurious.f1, 0.0);
}

TEST(Metrics, MatchPointsRejectsBadRadius) {
  expect_error([] { match_points({}, {}, -1.0); }, CELLCOUNT_ERR_INVALID_ARGUMENT, {"radius", "-1"});
  expect_error([] { match_points({}, {}, std::nan("")); }, CELLCOUNT_ERR_INVALID_ARGUMENT, {"radius"});
}

TEST(Metrics, CountMetricsHandComputed) {
  // e = {2, 0.4, 0.4, 0}; rounded predictions {10, 5, 0, 7}.
  const CountMetrics m = count_metrics({10, 4.6, 0.4, 7}, {8, 5, 0, 7});
  EXPECT_EQ(m.n, 4u);
  EXPECT_NEAR(m.mae, 0.7, 1e-12);
  EXPECT_NEAR(m.rmse, std::sqrt((4 + 0.16 + 0.16) / 4), 1e-12);
  EXPECT_NEAR(m.nae, (2.0 / 8 + 0.4 / 5 + 0) / 3, 1e-12);          // y > 0 only
  EXPECT_NEAR(m.sre, std::sqrt((4.0 / 8 + 0.16 / 5 + 0) / 3), 1e-12);
  EXPECT_NEAR(m.mre, (0.25 + 0 + 0) / 3, 1e-12);                    // y != 0 only
  EXPECT_NEAR(m.accuracy, 0.75, 1e-12);
}

TEST(Metrics, CountMetricsEdgeCases) {
  const CountMetrics empty = count_metrics({}, {});
  EXPECT_EQ(empty.n, 0u);
  EXPECT_EQ(empty.mae, 0.0);
  EXPECT_EQ(empty.accuracy, 0.0);
  const CountMetrics zeros = count_metrics({0.2, 1.0}, {0, 0});  // no y > 0: NAE, SRE, MRE stay 0
  EXPECT_NEAR(zeros.mae, 0.6, 1e-12);
  EXPECT_EQ(zeros.nae, 0.0);
  EXPECT_EQ(zeros.sre, 0.0);
  EXPECT_EQ(zeros.mre, 0.0);
  EXPECT_NEAR(zeros.accuracy, 0.5, 1e-12);
  const CountMetrics perfect = count_metrics({3, 12}, {3, 12});
  EXPECT_EQ(perfect.mae, 0.0);
  EXPECT_EQ(perfect.accuracy, 1.0);
}

TEST(Metrics, CountMetricsRejectsLengthMismatch) {
  expect_error([] { count_metrics({1, 2, 3}, {1, 2}); }, CELLCOUNT_ERR_INVALID_ARGUMENT, {"2", "3"});
}

TEST(Metrics, ProportionMae) {
  const double v = proportion_mae({{0.5, 0.5}, {0.2, 0.8}}, {{0.6, 0.4}, {0.2, 0.8}});
  EXPECT_NEAR(v, 5.0, 1e-9);  // (0.1 + 0.1 + 0 + 0) / 4 in percentage points
  EXPECT_NEAR(proportion_mae({{1, 0, 0}}, {{0, 0, 1}}), 100.0 * 2 / 3, 1e-9);
  EXPECT_EQ(proportion_mae({}, {}), 0.0);
}

TEST(Metrics, ProportionMaeRejectsBadShapes) {
  expect_error([] { proportion_mae({{0.5, 0.5}}, {{0.5, 0.5}, {1, 0}}); }, CELLCOUNT_ERR_INVALID_ARGUMENT, {"2", "1"});
  expect_error([] { proportion_mae({{0.5, 0.5}, {1, 0, 0}}, {{0.5, 0.5}, {1, 0}}); }, CELLCOUNT_ERR_INVALID_ARGUMENT,
               {"2", "3"});
  expect_error([] { proportion_mae({{0.5, 0.5}, {1}}, {{0.5, 0.5}, {1}}); }, CELLCOUNT_ERR_INVALID_ARGUMENT,
               {"2", "1"});
}

}  // namespace
}  // namespace cellcount
