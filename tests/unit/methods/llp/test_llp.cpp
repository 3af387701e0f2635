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

// ---------------------------------------------------------------------------------------------- network

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cellcount/cellcount.h"
#include "core/dataset.h"
#include "core/method.h"
#include "core/model_io.h"
#include "methods/llp/llp_net.h"
#include "methods/llp/llp_synth.h"

namespace fs = std::filesystem;

TEST(LlpNet, LocalSoftMaxMatchesBruteForce) {
  torch::manual_seed(2);
  auto s = torch::randn({2, 1, 9, 11}, torch::kFloat64) * 3;
  const int64_t m = 5, p = 2;
  auto h = local_softmax(s, m);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t y = 0; y < 9; ++y)
      for (int64_t x = 0; x < 11; ++x) {
        double den = 0;
        for (int64_t dy = -p; dy <= p; ++dy)
          for (int64_t dx = -p; dx <= p; ++dx) {
            const int64_t yy = std::clamp<int64_t>(y + dy, 0, 8), xx = std::clamp<int64_t>(x + dx, 0, 10);  // replicate
            den += std::exp(s[b][0][yy][xx].item<double>());
          }
        EXPECT_NEAR(h[b][0][y][x].item<double>(), std::exp(s[b][0][y][x].item<double>()) / den, 1e-12);
      }
  // Huge scores do not overflow: a single peak of 1e4 gets ~1, its neighbours ~0, no NaN.
  auto big = torch::zeros({1, 1, 7, 7}, torch::kFloat64);
  big[0][0][3][3] = 1e4;
  auto hb = local_softmax(big, 3);
  EXPECT_FALSE(torch::isnan(hb).any().item<bool>());
  EXPECT_NEAR(hb[0][0][3][3].item<double>(), 1.0, 1e-12);
  EXPECT_LT(hb[0][0][3][4].item<double>(), 1e-30);
}

TEST(LlpNet, ComplexConvolutionIsTheComplexProduct) {
  torch::manual_seed(4);
  ComplexConv cc(2, 3, 3);
  auto re = torch::randn({1, 2, 6, 6}), im = torch::randn({1, 2, 6, 6});
  auto [yr, yi] = cc->forward(re, im);
  // Reference: (W_r + i W_i) * (re + i im) with biases b_r + i b_i as complexPyTorch's apply_complex gives
  // (f_r(re) - f_i(im)) + i (f_r(im) + f_i(re)): bias terms b_r - b_i and b_r + b_i.
  namespace F = torch::nn::functional;
  auto conv = [&](const torch::Tensor& x, const torch::Tensor& w) { return F::conv2d(x, w, F::Conv2dFuncOptions().padding(1)); };
  auto wr = cc->fr->weight, wi = cc->fi->weight, br = cc->fr->bias.view({1, 3, 1, 1}), bi = cc->fi->bias.view({1, 3, 1, 1});
  EXPECT_TRUE(torch::allclose(yr, conv(re, wr) - conv(im, wi) + br - bi, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(yi, conv(im, wr) + conv(re, wi) + br + bi, 1e-5, 1e-5));
}

TEST(LlpNet, ShapesSparseMaskAndGradients) {
  DsdConfig c;
  c.width = 4;
  c.features = 3;
  c.classes = 3;
  torch::manual_seed(0);
  DsdNet net(c);
  auto x = torch::randn({2, 1, 32, 40}) * 0.1;
  auto e = net->encode(x);
  EXPECT_EQ(e.re.sizes(), (std::vector<int64_t>{2, 3, 32, 40}));
  EXPECT_EQ(e.heat.sizes(), (std::vector<int64_t>{2, 1, 32, 40}));
  auto mask = DsdNetImpl::sparse_mask(e.heat, 0.0, 5);
  auto rec = net->reconstruct(e, mask);
  EXPECT_EQ(rec.sizes(), (std::vector<int64_t>{2, 1, 32, 40}));
  EXPECT_TRUE(rec.is_complex());
  (rec.abs().pow(2).mean()).backward();
  EXPECT_TRUE(net->enc[0]->as<ComplexConv>()->fr->weight.grad().defined());
  // The mask is sparse: a local maximum per 5x5 at most.
  EXPECT_LE((mask > 0).sum().item<int64_t>(), 2 * 32 * 40 / 9);
  auto emb = net->embeddings_at(e, 1, {{3, 4}, {10, 20}});
  EXPECT_EQ(emb.sizes(), (std::vector<int64_t>{2, 6}));
  EXPECT_FLOAT_EQ(emb[1][0].item<float>(), e.re[1][0][10][20].item<float>());
  EXPECT_FLOAT_EQ(emb[1][3].item<float>(), e.im[1][0][10][20].item<float>());
  EXPECT_EQ(net->classify(emb).sizes(), (std::vector<int64_t>{2, 3}));
}

// The texture and field parts of the embedding (our additions) against windows computed by hand: the
// local s.d. of |I|^2, the mean deviation from the 3 x 3 mean, and the mean of I's real and imaginary parts,
// each over the s x s window around the detection (an inner point and one at the border, which averages the
// pixels inside the image only).
TEST(LlpNet, TextureAndFieldEmbeddingsAreTheWindowsStatistics) {
  DsdConfig c;
  c.width = 2;
  c.features = 2;
  c.scales = {1};
  c.image_scales = {3};
  c.texture_scales = {3, 5};
  c.field_scales = {1, 5};
  EXPECT_EQ(c.embedding_size(), 2 * 2 + 1 + 2 * 2 + 2 * 2);
  EXPECT_EQ(DsdConfig::from_json(c.to_json()).texture_scales, c.texture_scales);
  EXPECT_EQ(DsdConfig::from_json(c.to_json()).field_scales, c.field_scales);
  torch::manual_seed(1);
  DsdNet net(c);
  const int64_t H = 12, W = 14;
  Encoding e;
  e.re = torch::randn({1, 2, H, W});
  e.im = torch::randn({1, 2, H, W});
  e.field = torch::randn({1, 2, H, W});
  e.energy = e.field.pow(2).sum(1, true);
  auto win = [&](const torch::Tensor& m, int64_t y, int64_t x, int64_t s) {  // [h,w] window clipped to the image
    const int64_t y0 = std::max<int64_t>(0, y - s / 2), y1 = std::min<int64_t>(H, y + s / 2 + 1);
    const int64_t x0 = std::max<int64_t>(0, x - s / 2), x1 = std::min<int64_t>(W, x + s / 2 + 1);
    return m.slice(0, y0, y1).slice(1, x0, x1);
  };
  const auto E = e.energy[0][0];
  auto dev = torch::zeros({H, W});
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) dev[y][x] = (E[y][x] - win(E, y, x, 3).mean()).abs();
  const std::vector<std::pair<int64_t, int64_t>> at = {{5, 6}, {0, 13}};
  auto emb = net->embeddings_at(e, 0, at);
  ASSERT_EQ(emb.sizes(), (std::vector<int64_t>{2, c.embedding_size()}));
  for (size_t q = 0; q < at.size(); ++q) {
    const auto [y, x] = at[q];
    std::vector<double> want = {e.re[0][0][y][x].item<double>(), e.re[0][1][y][x].item<double>(),
                                e.im[0][0][y][x].item<double>(), e.im[0][1][y][x].item<double>(),
                                win(E, y, x, 3).mean().item<double>()};
    for (int64_t s : {3, 5}) {
      want.push_back(win(E, y, x, s).std(false).item<double>());  // population s.d. over the window
      want.push_back(win(dev, y, x, s).mean().item<double>());
    }
    for (int64_t s : {1, 5})
      for (int64_t ch = 0; ch < 2; ++ch) want.push_back(win(e.field[0][ch], y, x, s).mean().item<double>());
    for (size_t k = 0; k < want.size(); ++k)
      EXPECT_NEAR(emb[int64_t(q)][int64_t(k)].item<double>(), want[k], 1e-4) << "point " << q << ", part " << k;
  }
  // A texture scale of 1 has no spread to measure: refused.
  auto j = c.to_json();
  j["texture_scales"] = {1};
  EXPECT_THROW(DsdConfig::from_json(j), Error);
}

// embed_snap: the embedding is read at the peak of the 5 x 5 mean energy within embed_snap pixels of the
// detection; a peak farther away is not reached, and 0 reads at the detection itself.
TEST(LlpNet, EmbedSnapReadsAtTheNearbyEnergyPeak) {
  DsdConfig c;
  c.width = 2;
  c.features = 1;
  c.scales = {1};
  c.embed_snap = 3;
  EXPECT_EQ(DsdConfig::from_json(c.to_json()).embed_snap, 3);
  torch::manual_seed(2);
  DsdNet net(c);
  const int64_t H = 20, W = 24;
  Encoding e;
  e.re = torch::arange(H * W, torch::kFloat32).view({1, 1, H, W});  // value = flat index
  e.im = torch::zeros({1, 1, H, W});
  auto yy = torch::arange(H, torch::kFloat32).view({H, 1}), xx = torch::arange(W, torch::kFloat32).view({1, W});
  e.energy = torch::exp(-((yy - 6).pow(2) + (xx - 8).pow(2)) / 4.0).view({1, 1, H, W});
  e.field = torch::zeros({1, 2, H, W});
  auto at = [&](const DsdNet& n, int64_t y, int64_t x) { return n->embeddings_at(e, 0, {{y, x}})[0][0].item<float>(); };
  EXPECT_FLOAT_EQ(at(net, 5, 6), float(6 * W + 8));    // 2 px away: read at the peak
  EXPECT_FLOAT_EQ(at(net, 9, 11), float(6 * W + 8));   // 3 px away on both axes: still inside the window
  EXPECT_NE(at(net, 14, 8), float(6 * W + 8));         // 8 px away: not reached
  c.embed_snap = 0;
  DsdNet plain(c);
  EXPECT_FLOAT_EQ(at(plain, 5, 6), float(5 * W + 6));  // off: at the detection
  auto j = c.to_json();
  j["embed_snap"] = -1;
  EXPECT_THROW(DsdConfig::from_json(j), Error);
}

// Options of the classifier: no A in the embedding (scales []), and hidden 0 = one linear layer; an empty
// embedding is refused.
TEST(LlpNet, EmbeddingWithoutAAndALinearClassifier) {
  DsdConfig c;
  c.scales = {};
  c.image_scales = {1, 3};
  c.hidden = 0;
  c = DsdConfig::from_json(c.to_json());
  EXPECT_EQ(c.embedding_size(), 2);
  torch::manual_seed(0);
  DsdNet net(c);
  ASSERT_EQ(net->cls->size(), 1u);  // FC(E -> K) alone
  auto e = net->encode(torch::randn({1, 1, 16, 16}) * 0.1);
  auto emb = net->embeddings_at(e, 0, {{8, 8}});
  EXPECT_EQ(emb.sizes(), (std::vector<int64_t>{1, 2}));
  EXPECT_FLOAT_EQ(emb[0][0].item<float>(), e.energy[0][0][8][8].item<float>());
  EXPECT_EQ(net->classify(emb).sizes(), (std::vector<int64_t>{1, 3}));
  auto j = c.to_json();
  j["image_scales"] = nlohmann::json::array();
  EXPECT_THROW(DsdConfig::from_json(j), Error);  // nothing to embed
  j = DsdConfig().to_json();
  j["hidden"] = -1;
  EXPECT_THROW(DsdConfig::from_json(j), Error);
}

// ---------------------------------------------------------------------------------------------- simulator

TEST(LlpSynth, DeterministicAndAHologramOfASparseObject) {
  Optics o;
  const std::vector<double> p = {0.4, 0.4, 0.2};
  auto a = render_wbc(96, 96, 12, p, o, 0.01, 5), b = render_wbc(96, 96, 12, p, o, 0.01, 5), c = render_wbc(96, 96, 12, p, o, 0.01, 6);
  EXPECT_TRUE(torch::equal(a.hologram, b.hologram));
  EXPECT_FALSE(torch::equal(a.hologram, c.hologram));
  ASSERT_EQ(a.points.size(), b.points.size());
  EXPECT_GE(a.points.size(), 8u);
  // The sensor sees a hologram (fringes everywhere, background about 1), not the object.
  const double mean = a.hologram.mean().item<double>();
  EXPECT_NEAR(mean, 1.0, 0.1);
  EXPECT_GT(a.hologram.std().item<double>(), 0.02);
  // Back-propagated by T, the object plane is sparse: the energy of T(H - mean) near the cells dominates.
  auto I = apply_T(a.hologram / mean - 1.0, o).abs();
  double near = 0, all = I.pow(2).sum().item<double>();
  auto cellmask = torch::zeros({96, 96}, torch::kBool);
  for (const auto& q : a.points)
    for (int64_t y = std::max<int64_t>(0, int64_t(q.y) - 5); y <= std::min<int64_t>(95, int64_t(q.y) + 5); ++y)
      for (int64_t x = std::max<int64_t>(0, int64_t(q.x) - 5); x <= std::min<int64_t>(95, int64_t(q.x) + 5); ++x)
        cellmask[y][x] = true;
  near = (I.pow(2) * cellmask).sum().item<double>();
  EXPECT_GT(near / all, 0.5);
}

namespace {
fs::path fresh(const std::string& name) {
  auto d = fs::temp_directory_path() / ("cellcount-llp-test-" + std::to_string(::getpid()) + "-" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}
std::string call(cellcount_status (*f)(const char*, cellcount_progress_fn, void*, char**), const nlohmann::json& req,
                 cellcount_status expect = CELLCOUNT_OK) {
  char* rep = nullptr;
  const auto st = f(req.dump().c_str(), nullptr, nullptr, &rep);
  std::string out = rep ? rep : "";
  cellcount_string_free(rep);
  EXPECT_EQ(st, expect) << cellcount_last_error();
  return st == CELLCOUNT_OK ? out : std::string(cellcount_last_error());
}
}  // namespace

class LlpModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fresh("suite");
    call(cellcount_synthesize, {{"method", "llp"}, {"out", (root_ / "data").string()}, {"donors", {4, 2, 2}},
                                {"width", 48}, {"height", 48}, {"min_cells", 2}, {"max_cells", 5}, {"seed", 1}});
    report_ = nlohmann::json::parse(call(cellcount_train, train_request(root_ / "data", root_ / "model")));
  }
  static nlohmann::json train_request(const fs::path& data, const fs::path& out) {
    return {{"method", "llp"}, {"dataset", data.string()}, {"out", out.string()}, {"recon_epochs", 2}, {"cls_epochs", 3},
            {"width", 2}, {"features", 2}, {"hidden", 4}, {"threads", 1}, {"compare_losses", {"kl", "supervised"}},
            {"scales", {1, 3}}, {"image_scales", {1, 5}}, {"warmup_kl_epochs", 1}};
  }
  static fs::path root_;
  static nlohmann::json report_;
};
fs::path LlpModel::root_;
nlohmann::json LlpModel::report_;

TEST_F(LlpModel, SynthWritesTheDatasetContract) {
  const auto ds = load_dataset((root_ / "data").string());
  EXPECT_EQ(ds.samples.size(), 16u);  // 8 donors x 2 images
  EXPECT_EQ(ds.indices("train").size(), 8u);
  EXPECT_EQ(ds.indices("val").size(), 4u);
  EXPECT_EQ(ds.indices("test").size(), 4u);
  EXPECT_EQ(ds.class_names.size(), 3u);
  for (const auto& s : ds.samples) {
    double sum = 0;
    for (const auto& [k, v] : s.proportions) sum += v;
    EXPECT_NEAR(sum, 1.0, 1e-5) << s.image;
    EXPECT_TRUE(s.has_points);
  }
  EXPECT_TRUE(fs::exists(root_ / "data" / "donors.csv"));
  // Deterministic by seed: the same request writes the same files.
  call(cellcount_synthesize, {{"method", "llp"}, {"out", (root_ / "data2").string()}, {"donors", {4, 2, 2}},
                              {"width", 48}, {"height", 48}, {"min_cells", 2}, {"max_cells", 5}, {"seed", 1}});
  for (const char* f : {"points.csv", "proportions.csv", "images/donor0003_01.png"}) {
    std::ifstream a(root_ / "data" / f, std::ios::binary), b(root_ / "data2" / f, std::ios::binary);
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(a), {}), std::string(std::istreambuf_iterator<char>(b), {})) << f;
  }
}

TEST_F(LlpModel, TrainsSavesLoadsAndPredictsClasses) {
  const auto meta = read_model((root_ / "model").string()).meta;
  EXPECT_EQ(meta["method"], "llp");
  EXPECT_EQ(meta["classes"].size(), 3u);
  EXPECT_EQ(meta["training"]["loss"], "vp_ce");
  EXPECT_EQ(meta["training"]["bag"], "donor");
  EXPECT_EQ(meta["metrics"]["loss_comparison"].size(), 2u);
  EXPECT_EQ(meta["architecture"]["image_scales"], nlohmann::json::array({1, 5}));
  EXPECT_EQ(meta["training"]["classifier"]["warmup_kl"]["epochs_run"], 1);  // KL-div before the VP loss
  EXPECT_EQ(meta["training"]["classifier"]["epochs_run"], 3);
  EXPECT_TRUE(meta["metrics"]["test"].contains("f1"));
  cellcount_model* m = nullptr;
  ASSERT_EQ(cellcount_model_load((root_ / "model").string().c_str(), &m), CELLCOUNT_OK) << cellcount_last_error();
  // A test image through the C ABI: class ids within the model's, class counts adding up to the count.
  auto holo = render_wbc(48, 48, 4, {0.5, 0.3, 0.2}, Optics(), 0.01, 9).hologram.contiguous();
  cellcount_image_view v{holo.data_ptr<float>(), 48, 48, 1, 0, CELLCOUNT_DTYPE_F32, 0};
  auto params = cellcount_predict_default_params();
  params.options_json = "{\"detect_threshold\": 0.0}";  // every local maximum: some points, whatever the training
  cellcount_result* r = nullptr;
  ASSERT_EQ(cellcount_predict(m, &v, nullptr, 0, nullptr, &params, &r), CELLCOUNT_OK) << cellcount_last_error();
  const size_t n = cellcount_result_n_points(r);
  EXPECT_GT(n, 0u);
  std::vector<float> xy(2 * n);
  std::vector<int32_t> cls(n);
  ASSERT_EQ(cellcount_result_points(r, xy.data(), cls.data(), nullptr, n), CELLCOUNT_OK);
  for (int32_t c : cls) EXPECT_TRUE(c >= 0 && c < 3);
  EXPECT_DOUBLE_EQ(cellcount_result_count(r), double(n));
  cellcount_result_free(r);
  // Zero detections (threshold 1 keeps nothing): count 0, class counts 0, no NaN.
  params.options_json = "{\"detect_threshold\": 1.0}";
  ASSERT_EQ(cellcount_predict(m, &v, nullptr, 0, nullptr, &params, &r), CELLCOUNT_OK) << cellcount_last_error();
  EXPECT_EQ(cellcount_result_n_points(r), 0u);
  EXPECT_EQ(cellcount_result_count(r), 0.0);
  cellcount_result_free(r);
  cellcount_model_free(m);
  // Evaluation through the method's request: detection, class and proportion figures.
  const auto ev = nlohmann::json::parse(call(cellcount_evaluate, {{"model", (root_ / "model").string()},
                                                                  {"dataset", (root_ / "data").string()}}));
  EXPECT_TRUE(ev.contains("points"));
  EXPECT_TRUE(ev.contains("classes"));
  EXPECT_TRUE(ev["proportions"].contains("per_donor"));
}

TEST_F(LlpModel, BadProportionsAndClassesAreRefusedNamingTheRow) {
  // Fractions summing to 0.8: an error naming the image.
  const auto bad = root_ / "bad";
  fs::remove_all(bad);
  fs::copy(root_ / "data", bad, fs::copy_options::recursive);
  {
    std::ifstream in(bad / "proportions.csv");
    std::string all((std::istreambuf_iterator<char>(in)), {}), line;
    in.close();
    const std::string key = "images/donor0000_00.png,granulocyte,";
    const auto pos = all.find(key);
    ASSERT_NE(pos, std::string::npos);
    const auto end = all.find('\n', pos);
    all.replace(pos, end - pos, key + "0.000001");
    std::ofstream(bad / "proportions.csv") << all;
  }
  auto req = train_request(bad, root_ / "bad-model");
  const std::string msg = call(cellcount_train, req, CELLCOUNT_ERR_DATASET);
  EXPECT_NE(msg.find("donor0000_00.png"), std::string::npos) << msg;
  EXPECT_NE(msg.find("sum to"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(root_ / "bad-model"));
  // A class of proportions.csv that the model's class list lacks.
  auto req2 = train_request(root_ / "data", root_ / "bad-model2");
  req2["classes"] = {"granulocyte", "lymphocyte"};
  const std::string msg2 = call(cellcount_train, req2, CELLCOUNT_ERR_DATASET);
  EXPECT_NE(msg2.find("monocyte"), std::string::npos) << msg2;
  // Evaluating a dataset whose classes the model lacks, likewise.
  const auto other = root_ / "other";
  fs::create_directories(other);
  fs::copy(root_ / "data" / "images", other / "images", fs::copy_options::recursive);
  std::ofstream(other / "points.csv") << "image,x,y,class\nimages/donor0000_00.png,10,10,basophil\n";
  const std::string msg3 = call(cellcount_evaluate, {{"model", (root_ / "model").string()}, {"dataset", other.string()}, {"split", "all"}},
                                CELLCOUNT_ERR_DATASET);
  EXPECT_NE(msg3.find("basophil"), std::string::npos) << msg3;
}

TEST_F(LlpModel, ProportionsFromPointsAndEarlyRefusals) {
  // Bags from annotated images: proportions.csv is not needed (nor read) with proportions_from_points.
  const auto pts = root_ / "from-points";
  fs::create_directories(pts);
  fs::copy(root_ / "data" / "images", pts / "images", fs::copy_options::recursive);
  for (const char* f : {"points.csv", "split.csv"}) fs::copy_file(root_ / "data" / f, pts / f);
  auto req = train_request(pts, root_ / "from-points-model");
  req["proportions_from_points"] = true;
  req["compare_losses"] = nlohmann::json::array();
  call(cellcount_train, req);
  EXPECT_TRUE(read_model((root_ / "from-points-model").string()).meta["training"]["proportions_from_points"].get<bool>());
  // Without it, the same dataset (no proportions.csv) is refused naming an image.
  req["proportions_from_points"] = false;
  req["out"] = (root_ / "no-props-model").string();
  const std::string msg = call(cellcount_train, req, CELLCOUNT_ERR_DATASET);
  EXPECT_NE(msg.find("proportions.csv"), std::string::npos) << msg;
  // A typo in compare_losses fails before any work.
  auto req2 = train_request(root_ / "data", root_ / "typo-model");
  req2["compare_losses"] = {"vp-ce"};
  const std::string msg2 = call(cellcount_train, req2, CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(msg2.find("vp-ce"), std::string::npos) << msg2;
  EXPECT_FALSE(fs::exists(root_ / "typo-model"));
}

TEST_F(LlpModel, OneClassTrains) {
  // K = 1: every fraction is 1; the classifier stage is skipped, detections are that class.
  const auto one = root_ / "one";
  fs::create_directories(one);
  fs::copy(root_ / "data" / "images", one / "images", fs::copy_options::recursive);
  std::ofstream p(one / "proportions.csv");
  p << "image,class,fraction\n";
  for (const auto& e : fs::directory_iterator(one / "images")) p << "images/" << e.path().filename().string() << ",cell,1\n";
  p.close();
  auto req = train_request(one, root_ / "one-model");
  req["compare_losses"] = nlohmann::json::array();
  call(cellcount_train, req);
  const auto meta = read_model((root_ / "one-model").string()).meta;
  EXPECT_EQ(meta["classes"], nlohmann::json::array({"cell"}));
}

TEST(LlpSolverRequest, SolveAndBenchThroughTheEvaluateRequest) {
  const auto r = nlohmann::json::parse(call(cellcount_evaluate, {{"method", "llp"}, {"kind", "solve"},
                                                                  {"costs", {{0.0, 1.0}, {1.0, 0.0}}}, {"proportions", {0.25, 0.75}}}));
  EXPECT_NEAR(r["cost"].get<double>(), 0.25, 1e-12);
  const auto b = nlohmann::json::parse(call(cellcount_evaluate, {{"method", "llp"}, {"kind", "solver_bench"},
                                                                  {"sizes", {{50, 3}}}, {"repeat", 2}}));
  EXPECT_EQ(b["bench"][0]["n"], 50);
  call(cellcount_evaluate, {{"method", "llp"}, {"kind", "solve"}, {"costs", {{0.0, 1.0}}}, {"proportions", {0.0, 0.0}}},
       CELLCOUNT_ERR_INVALID_ARGUMENT);
}
