// llp: the exact VP transport solver against brute force (the dual LP enumerated at its vertices), the plan
// as the gradient (finite differences), the bag losses, K = 1, empty bags, proportions that do not sum to 1,
// and the lensless transform T (inverse, Parseval, identity preset).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "core/error.h"
#include "methods/llp/llp_loss.h"
#include "methods/llp/llp_transform.h"
#include "methods/llp/vp_solver.h"

using namespace cellcount;
using namespace cellcount::llp;

namespace {

// The dual of the bag LP (paper eq. 1): g(phi) = <Y, phi> - 1/N sum_i max_k (phi_k - c_ik). Its maximum is
// the LP optimum (strong duality) and is attained at a vertex of the arrangement of the lines where two terms
// of one row's max tie (phi_K fixed to 0: g is invariant to adding a constant to phi when sum Y = 1).
double dual_value(const std::vector<double>& c, int64_t N, int64_t K, const std::vector<double>& Y,
                  const std::vector<double>& phi) {
  double v = 0;
  for (int64_t k = 0; k < K; ++k) v += Y[k] * phi[k];
  for (int64_t i = 0; i < N; ++i) {
    double m = -1e300;
    for (int64_t k = 0; k < K; ++k) m = std::max(m, phi[k] - c[i * K + k]);
    v -= m / double(N);
  }
  return v;
}

// Brute force for K = 2 and K = 3: every vertex of the arrangement is tried.
double brute_force_optimum(const std::vector<double>& c, int64_t N, int64_t K, const std::vector<double>& Y) {
  // A tie line of row i between classes a and b: phi_a - phi_b = c_ia - c_ib, in the free coordinates.
  struct Line { double a0, a1, rhs; };  // a0 phi0 + a1 phi1 = rhs
  std::vector<Line> lines;
  for (int64_t i = 0; i < N; ++i)
    for (int64_t a = 0; a < K; ++a)
      for (int64_t b = a + 1; b < K; ++b) {
        Line l{0, 0, c[i * K + a] - c[i * K + b]};
        if (a < K - 1) (a == 0 ? l.a0 : l.a1) += 1;
        if (b < K - 1) (b == 0 ? l.a0 : l.a1) -= 1;
        lines.push_back(l);
      }
  double best = -1e300;
  if (K == 2) {
    for (const auto& l : lines) best = std::max(best, dual_value(c, N, K, Y, {l.rhs / l.a0, 0.0}));
    return best;
  }
  for (size_t p = 0; p < lines.size(); ++p)
    for (size_t q = p + 1; q < lines.size(); ++q) {
      const auto &l1 = lines[p], &l2 = lines[q];
      const double det = l1.a0 * l2.a1 - l1.a1 * l2.a0;
      if (std::fabs(det) < 1e-12) continue;
      const double p0 = (l1.rhs * l2.a1 - l1.a1 * l2.rhs) / det, p1 = (l1.a0 * l2.rhs - l1.rhs * l2.a0) / det;
      best = std::max(best, dual_value(c, N, K, Y, {p0, p1, 0.0}));
    }
  return best;
}

std::vector<double> random_simplex(int64_t K, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0.05, 1.0);
  std::vector<double> y(static_cast<size_t>(K));
  double s = 0;
  for (auto& v : y) s += (v = u(rng));
  for (auto& v : y) v /= s;
  return y;
}

void expect_feasible(const Transport& t, int64_t N, int64_t K, const std::vector<double>& Y) {
  ASSERT_EQ(t.plan.size(), size_t(N * K));
  for (int64_t i = 0; i < N; ++i) {
    double s = 0;
    for (int64_t k = 0; k < K; ++k) {
      EXPECT_GE(t.plan[i * K + k], 0.0);
      s += t.plan[i * K + k];
    }
    EXPECT_NEAR(s, 1.0 / double(N), 1e-12);
  }
  for (int64_t k = 0; k < K; ++k) {
    double s = 0;
    for (int64_t i = 0; i < N; ++i) s += t.plan[i * K + k];
    EXPECT_NEAR(s, Y[k], 1e-12);
  }
}

}  // namespace

TEST(LlpVpSolver, MatchesBruteForceForSmallBags) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0.0, 3.0);
  int tried = 0;
  for (int64_t K : {2, 3})
    for (int64_t N : {1, 2, 3, 5, 7})
      for (int rep = 0; rep < 12; ++rep) {
        std::vector<double> c(static_cast<size_t>(N * K));
        for (auto& v : c) v = u(rng);
        const auto Y = random_simplex(K, rng);  // fractional N * Y_k: the real-valued masses matter
        const auto t = solve_transport(c.data(), N, K, Y.data());
        expect_feasible(t, N, K, Y);
        double primal = 0;
        for (size_t q = 0; q < c.size(); ++q) primal += t.plan[q] * c[q];
        EXPECT_NEAR(primal, t.cost, 1e-12);
        EXPECT_NEAR(t.cost, brute_force_optimum(c, N, K, Y), 1e-9) << "N=" << N << " K=" << K << " rep " << rep;
        ++tried;
      }
  EXPECT_EQ(tried, 120);
}

TEST(LlpVpSolver, RoundingMassesWouldChangeTheOptimum) {
  // N = 2, Y = (0.25, 0.75): each detection must send 1/8 to class 0 in total; an integer rounding of
  // N Y = (0.5, 1.5) to (1, 1) or (0, 2) gives another value. Costs: row 0 prefers class 0 strongly.
  const std::vector<double> c = {0.0, 1.0, 1.0, 0.0};
  const std::vector<double> Y = {0.25, 0.75};
  const auto t = solve_transport(c.data(), 2, 2, Y.data());
  EXPECT_NEAR(t.cost, 0.25, 1e-12);  // row 0: 1/4 to class 0, 1/4 to class 1 (cost 1/4); row 1 all to class 1
  EXPECT_NEAR(t.plan[0], 0.25, 1e-12);
  EXPECT_NEAR(t.plan[1], 0.25, 1e-12);
}

TEST(LlpVpSolver, LargerBagMatchesBruteForce) {
  // K = 2 at N = 200 (many augmentations that move earlier detections between classes): the dual's
  // breakpoints are still few enough to enumerate.
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const int64_t N = 200, K = 2;
  std::vector<double> c(static_cast<size_t>(N * K));
  for (auto& v : c) v = u(rng);
  const auto Y = random_simplex(K, rng);
  const auto t = solve_transport(c.data(), N, K, Y.data());
  expect_feasible(t, N, K, Y);
  EXPECT_NEAR(t.cost, brute_force_optimum(c, N, K, Y), 1e-9);
}

TEST(LlpVpSolver, PlanIsTheGradientOfTheValue) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> u(0.0, 2.0);
  const int64_t N = 6, K = 3;
  std::vector<double> c(static_cast<size_t>(N * K));
  for (auto& v : c) v = u(rng);
  const std::vector<double> Y = {0.5, 0.3, 0.2};
  const auto t = solve_transport(c.data(), N, K, Y.data());
  const double h = 1e-7;
  for (size_t q = 0; q < c.size(); ++q) {
    auto cp = c, cm = c;
    cp[q] += h;
    cm[q] -= h;
    const double g = (solve_transport(cp.data(), N, K, Y.data()).cost - solve_transport(cm.data(), N, K, Y.data()).cost) / (2 * h);
    EXPECT_NEAR(g, t.plan[q], 1e-5) << "cost " << q;
  }
}

TEST(LlpVpSolver, OneClassEmptyBagAndBadInput) {
  const std::vector<double> c = {0.3, 0.7, 1.1};
  const std::vector<double> one = {1.0};
  const auto t = solve_transport(c.data(), 3, 1, one.data());
  EXPECT_NEAR(t.cost, (0.3 + 0.7 + 1.1) / 3, 1e-12);
  const auto e = solve_transport(nullptr, 0, 3, std::vector<double>{0.2, 0.3, 0.5}.data());
  EXPECT_EQ(e.cost, 0.0);
  EXPECT_TRUE(e.plan.empty());
  EXPECT_THROW(solve_transport(c.data(), 3, 0, one.data()), Error);
  const std::vector<double> bad = {NAN, 0.1, 0.2};
  EXPECT_THROW(solve_transport(bad.data(), 3, 1, one.data()), Error);
  const std::vector<double> zero = {0.0};
  EXPECT_THROW(solve_transport(c.data(), 3, 1, zero.data()), Error);
}

TEST(LlpBagLoss, VpGradientIsPlanTimesCostGradient) {
  torch::manual_seed(0);
  auto logits = torch::randn({5, 3}, torch::kFloat64).requires_grad_(true);
  const std::vector<double> Y = {0.6, 0.3, 0.1};
  for (auto kind : {BagLoss::vp_ce, BagLoss::vp_l2}) {
    auto loss = bag_loss(logits, Y, kind);
    ASSERT_TRUE(loss.defined());
    loss.backward();
    // Reference: the same with the plan solved here and cost built by hand.
    auto l2 = logits.detach().clone().requires_grad_(true);
    auto p = torch::softmax(l2, 1);
    auto cost = kind == BagLoss::vp_ce ? -torch::log_softmax(l2, 1) : (p * p).sum(1, true) - 2 * p + 1;
    auto cd = cost.detach().contiguous();
    const auto t = solve_transport(cd.data_ptr<double>(), 5, 3, Y.data());
    EXPECT_NEAR(loss.item<double>(), t.cost, 1e-12);
    auto plan = torch::from_blob(const_cast<double*>(t.plan.data()), {5, 3}, torch::kFloat64).clone();
    (plan * cost).sum().backward();
    EXPECT_TRUE(torch::allclose(logits.grad(), l2.grad(), 1e-10, 1e-12)) << bag_loss_name(kind);
    logits.grad().zero_();
  }
}

TEST(LlpBagLoss, BaselinesEmptyBagAndOneClass) {
  auto logits = torch::zeros({4, 2}, torch::kFloat64);
  const std::vector<double> Y = {0.75, 0.25};
  // Uniform predictions: mean (0.5, 0.5).
  EXPECT_NEAR(bag_loss(logits, Y, BagLoss::mse).item<double>(), 2 * 0.25 * 0.25, 1e-12);
  EXPECT_NEAR(bag_loss(logits, Y, BagLoss::kl).item<double>(), 0.75 * std::log(1.5) + 0.25 * std::log(0.5), 1e-12);
  // VP-CE with uniform predictions: every cost log 2.
  EXPECT_NEAR(bag_loss(logits, Y, BagLoss::vp_ce).item<double>(), std::log(2.0), 1e-12);
  for (auto kind : {BagLoss::vp_ce, BagLoss::vp_l2, BagLoss::kl, BagLoss::mse})
    EXPECT_FALSE(bag_loss(torch::zeros({0, 2}, torch::kFloat64), Y, kind).defined()) << bag_loss_name(kind);
  // K = 1: every detection is the one class; VP-CE is 0 (log_softmax of one logit is 0), finite.
  auto one = torch::randn({3, 1}, torch::kFloat64);
  for (auto kind : {BagLoss::vp_ce, BagLoss::vp_l2, BagLoss::kl, BagLoss::mse}) {
    const double v = bag_loss(one, {1.0}, kind).item<double>();
    EXPECT_TRUE(std::isfinite(v));
    EXPECT_NEAR(v, 0.0, 1e-12) << bag_loss_name(kind);
  }
  EXPECT_THROW(parse_bag_loss("vp"), Error);
  EXPECT_NEAR(bag_loss(torch::tensor({{2.0, 0.0}}, torch::kFloat64), {1.0, 0.0}, BagLoss::supervised, {0}).item<double>(),
              std::log(1 + std::exp(-2.0)), 1e-12);
}

TEST(LlpBagLoss, ProportionsAreCheckedAndRenormalised) {
  auto y = checked_proportions({{0, 0.5}, {1, 0.505}}, 2, 0.02, "img.png");
  EXPECT_NEAR(y[0] + y[1], 1.0, 1e-15);
  EXPECT_NEAR(y[0], 0.5 / 1.005, 1e-15);
  try {
    checked_proportions({{0, 0.5}, {1, 0.3}}, 2, 0.02, "donor3_1.png");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), CELLCOUNT_ERR_DATASET);
    EXPECT_NE(std::string(e.what()).find("donor3_1.png"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("0.8"), std::string::npos) << e.what();
  }
  try {
    checked_proportions({{0, 0.5}, {3, 0.5}}, 2, 0.02, "a.png");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("class 3"), std::string::npos) << e.what();
  }
}

TEST(LlpTransform, InverseParsevalAndIdentity) {
  torch::manual_seed(1);
  Optics o;  // hologram preset, the paper's optics
  auto x = torch::complex(torch::randn({2, 1, 64, 48}), torch::randn({2, 1, 64, 48}));
  auto tx = apply_T(x, o);
  EXPECT_TRUE(torch::allclose(apply_T_inverse(tx, o), x, 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(apply_T(apply_T_inverse(x, o), o), x, 1e-4, 1e-4));
  // Parseval: T is unitary.
  const double n0 = x.abs().pow(2).sum().item<double>(), n1 = tx.abs().pow(2).sum().item<double>();
  EXPECT_NEAR(n1 / n0, 1.0, 1e-5);
  // T is not the identity for holograms (it propagates 1650 um), a real input becomes complex.
  auto r = torch::randn({32, 32});
  EXPECT_GT((apply_T(r, o) - torch::complex(r, torch::zeros_like(r))).abs().max().item<double>(), 0.1);
  auto tf = transfer_function(32, 32, o);
  EXPECT_TRUE(torch::allclose(tf.abs(), torch::ones({32, 32}), 1e-5, 1e-5));
  EXPECT_NEAR(std::arg(std::complex<double>(tf[0][0].item<c10::complex<float>>())), std::remainder(2 * M_PI * 1650.0 / 0.34, 2 * M_PI), 1e-3);
  Optics id;
  id.preset = "identity";
  EXPECT_TRUE(torch::equal(torch::real(apply_T(r, id)), r));
  EXPECT_TRUE(torch::equal(torch::real(apply_T_inverse(r, id)), r));
  EXPECT_THROW(Optics::from_json({{"preset", "lens"}}), Error);
}
