// exemplar (seg-then-count): K-means against brute-force references, determinism under a seed, the K
// selection and masking rules, network shapes, and a tiny model trained end to end through the C ABI
// (synth -> train -> predict/evaluate) for the exemplar contract: any number of boxes, boxes of any size,
// clipping with a warning, clear statuses for empty, inverted, outside or missing boxes.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "cellcount/cellcount.h"
#include "core/model_io.h"
#include "methods/exemplar/exemplar_net.h"
#include "methods/exemplar/exemplar_predict.h"
#include "methods/exemplar/masks.h"
#include "test_util.h"

using namespace cellcount;
using namespace cellcount::test_util;
using namespace cellcount::exemplar;
namespace fs = std::filesystem;

namespace {

// Lloyd's algorithm in plain loops: the reference for lloyd().
std::pair<std::vector<int64_t>, std::vector<std::vector<double>>> lloyd_reference(
    const std::vector<std::vector<double>>& x, std::vector<std::vector<double>> c, int iters) {
  const size_t n = x.size(), k = c.size(), d = x[0].size();
  std::vector<int64_t> labels(n, -1);
  for (int it = 0; it < iters; ++it) {
    std::vector<int64_t> nl(n);
    for (size_t i = 0; i < n; ++i) {
      double best = std::numeric_limits<double>::infinity();
      for (size_t j = 0; j < k; ++j) {
        double s = 0;
        for (size_t q = 0; q < d; ++q) s += (x[i][q] - c[j][q]) * (x[i][q] - c[j][q]);
        if (s < best) best = s, nl[i] = int64_t(j);
      }
    }
    if (nl == labels) break;
    labels = nl;
    for (size_t j = 0; j < k; ++j) {
      std::vector<double> sum(d, 0.0);
      int cnt = 0;
      for (size_t i = 0; i < n; ++i)
        if (labels[i] == int64_t(j)) {
          for (size_t q = 0; q < d; ++q) sum[q] += x[i][q];
          ++cnt;
        }
      if (cnt)
        for (size_t q = 0; q < d; ++q) c[j][q] = sum[q] / cnt;
    }
  }
  return {labels, c};
}

torch::Tensor to_tensor(const std::vector<std::vector<double>>& x) {
  auto t = torch::zeros({int64_t(x.size()), int64_t(x[0].size())});
  for (size_t i = 0; i < x.size(); ++i)
    for (size_t j = 0; j < x[0].size(); ++j) t[int64_t(i)][int64_t(j)] = float(x[i][j]);
  return t;
}

double inertia_of(const std::vector<std::vector<double>>& x, const std::vector<int64_t>& labels, int64_t k) {
  double total = 0;
  for (int64_t j = 0; j < k; ++j) {
    std::vector<double> mean(x[0].size(), 0.0);
    int cnt = 0;
    for (size_t i = 0; i < x.size(); ++i)
      if (labels[i] == j) {
        for (size_t q = 0; q < mean.size(); ++q) mean[q] += x[i][q];
        ++cnt;
      }
    if (!cnt) continue;
    for (auto& m : mean) m /= cnt;
    for (size_t i = 0; i < x.size(); ++i)
      if (labels[i] == j)
        for (size_t q = 0; q < mean.size(); ++q) total += (x[i][q] - mean[q]) * (x[i][q] - mean[q]);
  }
  return total;
}

std::vector<std::vector<double>> random_points(size_t n, size_t d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<double>> x(n, std::vector<double>(d));
  for (auto& row : x)
    for (auto& v : row) v = double(rng() % 10000) / 1000.0;
  return x;
}

}  // namespace

TEST(ExemplarKMeans, LloydMatchesPlainLoopReference) {
  for (uint64_t seed : {1, 2, 3}) {
    auto x = random_points(40, 3, seed);
    std::vector<std::vector<double>> c0{x[0], x[7], x[19], x[33]};
    auto [ref_labels, ref_centers] = lloyd_reference(x, c0, 100);
    auto r = lloyd(to_tensor(x), to_tensor(c0), 100);
    for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(r.labels[int64_t(i)].item<int64_t>(), ref_labels[i]) << "point " << i;
    for (size_t j = 0; j < c0.size(); ++j)
      for (size_t q = 0; q < 3; ++q) EXPECT_NEAR(r.centers[int64_t(j)][int64_t(q)].item<double>(), ref_centers[j][q], 1e-4);
    EXPECT_NEAR(r.inertia, inertia_of(x, ref_labels, 4), 1e-3);
  }
}

TEST(ExemplarKMeans, FindsTheOptimalPartitionOfSmallDataByExhaustiveSearch) {
  // 9 points in 3 loose groups in 2-D: enumerate all 3^9 labelings for the minimal inertia.
  std::vector<std::vector<double>> x{{0, 0}, {1, 0.5}, {0.3, 1.2}, {5, 5}, {6, 5.5}, {5.2, 6.1}, {0, 6}, {1.1, 6.4}, {0.4, 7}};
  double best = std::numeric_limits<double>::infinity();
  std::vector<int64_t> lab(9);
  for (int code = 0; code < 19683; ++code) {
    int c = code;
    for (int i = 0; i < 9; ++i) lab[size_t(i)] = c % 3, c /= 3;
    best = std::min(best, inertia_of(x, lab, 3));
  }
  auto r = kmeans(to_tensor(x), 3, 11);
  EXPECT_NEAR(r.inertia, best, 1e-4);
}

TEST(ExemplarKMeans, DeterministicUnderASeed) {
  auto x = to_tensor(random_points(200, 8, 5));
  auto a = kmeans(x, 5, 42), b = kmeans(x, 5, 42);
  EXPECT_TRUE(torch::equal(a.labels, b.labels));
  EXPECT_TRUE(torch::equal(a.centers, b.centers));
  auto m1 = cluster_mask(x, x[3], 4, 9), m2 = cluster_mask(x, x[3], 4, 9);
  EXPECT_TRUE(torch::equal(m1, m2));
  EXPECT_EQ(m1[3].item<float>(), 1.0f);  // the exemplar's own point shares its cluster
}

TEST(ExemplarMasks, ClusterMaskSelectsTheExemplarsGroup) {
  // Two well separated groups of patches: the mask holds exactly the group the exemplar embedding is in.
  auto a = torch::randn({30, 4}) * 0.1, b = torch::randn({20, 4}) * 0.1 + 5.0;
  auto patches = torch::cat({a, b});
  auto m = cluster_mask(patches, torch::full({4}, 5.0), 2, 0);
  EXPECT_EQ(m.slice(0, 0, 30).sum().item<float>(), 0.0f);
  EXPECT_EQ(m.slice(0, 30, 50).sum().item<float>(), 20.0f);
}

TEST(ExemplarMasks, SelectKTakesTheSmallestErrorFirstOnTies) {
  EXPECT_EQ(select_k({3.0, 1.0, 2.0, 1.0}), 1u);
  EXPECT_EQ(select_k({0.5}), 0u);
  EXPECT_EQ(status_of([] { select_k({}); }), CELLCOUNT_ERR_INTERNAL);
}

TEST(ExemplarMasks, MaskingRuleKeepsSInsideAndDeltaOutside) {
  auto s = torch::tensor({{1.5f, -2.0f}, {3.0f, 0.25f}}).view({1, 1, 2, 2});
  auto m = torch::tensor({{1.f, 0.f}, {0.f, 1.f}}).view({1, 1, 2, 2});
  auto r = apply_mask(s, m, -0.5);
  EXPECT_FLOAT_EQ(r[0][0][0][0].item<float>(), 1.5f);
  EXPECT_FLOAT_EQ(r[0][0][0][1].item<float>(), -0.5f);
  EXPECT_FLOAT_EQ(r[0][0][1][0].item<float>(), -0.5f);
  EXPECT_FLOAT_EQ(r[0][0][1][1].item<float>(), 0.25f);
  // Dot boxes: a map pixel is in when its patch centre lies in a box around a dot.
  auto d = dot_box_mask({Point{24, 8, 0, 1}}, 16, 16, 2, 3, 16);
  // Patch centres are (8,8), (24,8), (40,8) on row 0: only (24,8) lies within 8 px of the dot.
  EXPECT_EQ(d.sum().item<float>(), 1.0f);
  EXPECT_EQ(d[0][1].item<float>(), 1.0f);
}

TEST(ExemplarNet, ShapesAndPaperWidthBuilds) {
  torch::NoGradGuard ng;
  ExemplarConfig c;
  c.width = 0.125;
  c.dim = 16;
  c.head_width = 0.25;
  c.seg_dim = 8;
  c.exemplar_size = 32;
  ExemplarNet net(c);
  net->eval();
  auto x = torch::rand({2, 3, 64, 96});
  auto f = net->counter->features(x);
  EXPECT_EQ(f.sizes(), (std::vector<int64_t>{2, 16, 4, 6}));
  auto b = net->counter->exemplar_vectors(torch::rand({6, 3, 32, 32})).view({2, 3, 16});
  auto s = net->counter->similarity(f, b);
  EXPECT_EQ(s.sizes(), (std::vector<int64_t>{2, 1, 4, 6}));
  auto d = net->counter->density(f, s);
  EXPECT_EQ(d.sizes(), (std::vector<int64_t>{2, 1, 64, 96}));
  EXPECT_GE(d.min().item<float>(), 0.0f);
  auto p = net->segmenter->features(x);
  auto v = net->segmenter->exemplar_vectors(torch::rand({6, 3, 32, 32})).view({2, 3, 8});
  auto m = SegmenterImpl::mask(p, v);
  EXPECT_EQ(m.sizes(), (std::vector<int64_t>{2, 1, 4, 6}));
  EXPECT_LE(m.abs().max().item<float>(), 1.0f + 1e-5f);
  // Width 1.0: ResNet-50 to layer3 (1024 channels, ~8.5 M parameters).
  ExemplarConfig full;
  Backbone bb(3, 1.0);
  EXPECT_EQ(bb->out_channels, 1024);
  int64_t n = 0;
  for (const auto& t : bb->parameters()) n += t.numel();
  EXPECT_NEAR(double(n), 8.5e6, 0.2e6);
  EXPECT_EQ(bb->forward(torch::rand({1, 3, 64, 64})).sizes(), (std::vector<int64_t>{1, 1024, 4, 4}));
}

// The localizer stage (issue 24) moves the points, never the count: with a localizer, run_tile gives a third map
// and point_map rescales it to the density's sum; without one (models made before it) the density is the map.
TEST(ExemplarNet, LocalizerMapKeepsTheCount) {
  torch::manual_seed(3);
  ExemplarConfig c;
  c.width = 0.125, c.dim = 16, c.head_width = 0.25, c.seg_dim = 8, c.exemplar_size = 32;
  ExemplarNet plain(c);
  EXPECT_FALSE(plain->localizer);
  c.localizer_base = 4;
  ExemplarNet net(c);
  ASSERT_TRUE(net->localizer);
  net->eval();
  plain->eval();
  torch::NoGradGuard ng;
  auto x = torch::rand({1, 3, 64, 80});
  const std::vector<std::array<float, 4>> boxes = {{10, 10, 20, 20}, {40, 30, 52, 42}};
  MaskSettings ms;
  for (auto* n : {&net, &plain}) {
    auto [b, v] = exemplar_vectors(*n, x[0], boxes);
    auto maps = run_tile(*n, x, b, v, MaskMode::kSeg, ms, boxes)[0];
    ASSERT_EQ(maps.size(0), n == &net ? 3 : 2);
    auto pm = point_map(maps);
    EXPECT_EQ(pm.sizes(), (std::vector<int64_t>{64, 80}));
    EXPECT_NEAR(pm.sum().item<double>(), maps[0].sum().item<double>(), 1e-4 * (1 + maps[0].sum().item<double>()));
    if (n == &plain) EXPECT_TRUE(torch::equal(pm, maps[0]));
    else EXPECT_TRUE(torch::allclose(pm * (maps[2].sum() / maps[0].sum()), maps[2], 1e-4, 1e-7));
  }
}

// Issue 25: the inference copy (ExemplarMethod's) has every BatchNorm folded into its convolution: the same
// maps as the unfolded network, with BatchNorm statistics far from the identity so that a missed fold shows.
TEST(ExemplarNet, FoldedBatchNormGivesTheSameMaps) {
  torch::manual_seed(5);
  ExemplarConfig c;
  c.width = 0.125, c.dim = 16, c.head_width = 0.25, c.seg_dim = 8, c.exemplar_size = 32, c.localizer_base = 4;
  ExemplarNet plain(c), folded(c);
  {
    torch::NoGradGuard ng;
    for (auto& m : plain->modules(false))
      if (auto* bn = m->as<torch::nn::BatchNorm2d>()) {
        bn->weight.uniform_(0.5, 1.5);
        bn->bias.uniform_(-0.2, 0.2);
        bn->running_mean.uniform_(-0.3, 0.3);
        bn->running_var.uniform_(0.5, 2.0);
      }
    auto src = plain->named_parameters(), dst = folded->named_parameters();
    for (auto& p : src) dst[p.key()].copy_(p.value());
    auto sb = plain->named_buffers(), db = folded->named_buffers();
    for (auto& b : sb) db[b.key()].copy_(b.value());
  }
  plain->eval();
  folded->fold_for_inference();
  int64_t bns = 0;
  for (auto& m : folded->modules(false)) bns += m->as<torch::nn::BatchNorm2d>() != nullptr;
  EXPECT_GT(bns, 0) << "the blocks keep their (unused) BatchNorms registered";
  torch::NoGradGuard ng;
  auto x = torch::rand({1, 3, 64, 80});
  const std::vector<std::array<float, 4>> boxes = {{10, 10, 20, 20}, {40, 30, 52, 42}};
  MaskSettings ms;
  auto [b0, v0] = exemplar_vectors(plain, x[0], boxes);
  auto [b1, v1] = exemplar_vectors(folded, x[0], boxes);
  EXPECT_TRUE(torch::allclose(b0, b1, 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(v0, v1, 1e-4, 1e-5));
  auto m0 = run_tile(plain, x, b0, v0, MaskMode::kNone, ms, boxes), m1 = run_tile(folded, x, b1, v1, MaskMode::kNone, ms, boxes);
  ASSERT_EQ(m0.sizes(), m1.sizes());
  EXPECT_TRUE(torch::allclose(m0, m1, 1e-3, 1e-6)) << (m0 - m1).abs().max().item<float>();
  EXPECT_FALSE(torch::allclose(m0[0][0], torch::zeros_like(m0[0][0]))) << "a density to compare";
}

// A tiny model trained end to end through the C ABI.
class ExemplarModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::path(::testing::TempDir()) / "cellcount_exemplar_suite";
    fs::remove_all(root_);
    fs::create_directories(root_);
    const auto recipe = root_ / "recipe.json";
    std::ofstream(recipe) << R"({"size": 64, "seed": 5, "exemplars": 2, "images": {"train": 8, "val": 2, "test": 4},
      "kinds": [
        {"name": "small", "synthetic": {"radius_min": 2.0, "radius_max": 3.0, "min_cells": 6, "max_cells": 12},
         "tint": [0.2, 1.0, 0.2], "count": {"train": 6, "val": 2, "test": 2}, "sigma": 1.5, "box": 8},
        {"name": "large", "synthetic": {"radius_min": 6.0, "radius_max": 8.0, "min_cells": 3, "max_cells": 6},
         "tint": [1.0, 0.3, 0.9], "count": {"train": 6, "val": 2, "test": 2}, "sigma": 3.0, "box": 18}]})";
    char* rep = nullptr;
    const std::string synth = R"({"method": "exemplar", "recipe": ")" + recipe.string() + R"(", "out": ")" +
                              (root_ / "bench").string() + "\"}";
    ASSERT_EQ(cellcount_synthesize(synth.c_str(), nullptr, nullptr, &rep), CELLCOUNT_OK) << cellcount_last_error();
    cellcount_string_free(rep);
    const std::string train = R"({"method": "exemplar", "recipe": ")" + recipe.string() + R"(", "benchmark": ")" +
                              (root_ / "bench").string() + R"(", "out": ")" + (root_ / "model").string() +
                              R"(", "counter_epochs": 3, "seg_epochs": 2, "localizer_epochs": 2, "validate_every": 1, "crop": 64,
                              "batch_size": 4, "device": "cpu", "k_max": 4, "seg_single_kind": true,
                              "architecture": {"width": 0.125, "dim": 16, "head_width": 0.25, "seg_dim": 8, "exemplar_size": 32}})";
    ASSERT_EQ(cellcount_train(train.c_str(), nullptr, nullptr, &rep), CELLCOUNT_OK) << cellcount_last_error();
    report_ = nlohmann::json::parse(rep);
    cellcount_string_free(rep);
  }
  static cellcount_image_view view(const std::vector<float>& px, int w, int h) {
    return cellcount_image_view{px.data(), w, h, 3, int64_t(w) * 3 * int64_t(sizeof(float)), CELLCOUNT_DTYPE_F32, 0};
  }
  static fs::path root_;
  static nlohmann::json report_;
};
fs::path ExemplarModel::root_;
nlohmann::json ExemplarModel::report_;

TEST_F(ExemplarModel, TrainingRecordsPseudoMasksAndThresholds) {
  const auto meta = read_model((root_ / "model").string()).meta;
  EXPECT_EQ(meta["method"], "exemplar");
  // The mask threshold and dilation come from the val grid by the documented rule.
  const auto& th = meta["thresholds"];
  const auto& tuning = th["mask_tuning"];
  ASSERT_EQ(tuning["grid"].size(), 8u);  // {0.3, 0.4, 0.5, 0.6} x dilate {0, 1}
  const double limit = tuning["limit"];
  double best = INFINITY, best_rel = INFINITY;
  nlohmann::json pick, pick_rel;
  for (const auto& row : tuning["grid"]) {
    if (row["single_kind_rel_error"].get<double>() <= limit && row["val_error"].get<double>() < best) {
      best = row["val_error"];
      pick = row;
    }
    if (row["single_kind_rel_error"].get<double>() < best_rel) {
      best_rel = row["single_kind_rel_error"];
      pick_rel = row;
    }
  }
  const auto& want = tuning["qualified"].get<bool>() ? pick : pick_rel;
  EXPECT_EQ(tuning["qualified"].get<bool>(), !pick.is_null());
  EXPECT_DOUBLE_EQ(th["mask_threshold"].get<double>(), want["mask_threshold"].get<double>());
  EXPECT_EQ(th["mask_dilate"].get<int64_t>(), want["mask_dilate"].get<int64_t>());
  EXPECT_GE(limit, 0.15);
  int64_t total = 0;
  for (auto& [k, c] : meta["training"]["pseudo_masks"]["k_histogram"].items()) {
    EXPECT_GE(std::stoi(k), 2);
    EXPECT_LE(std::stoi(k), 4);
    total += c.get<int64_t>();
  }
  // One K per segmenter training item: the 8 two-kind images and the single-kind tiles.
  EXPECT_EQ(total, meta["provenance"]["segmenter_train_items"].get<int64_t>());
  EXPECT_GT(total, 8);
  EXPECT_FALSE(meta["provenance"]["recipe"].is_null());
}

TEST_F(ExemplarModel, BoxesAnyNumberAnySizeAndClearStatuses) {
  cellcount_model* m = nullptr;
  ASSERT_EQ(cellcount_model_load((root_ / "model").string().c_str(), &m), CELLCOUNT_OK) << cellcount_last_error();
  auto info = nlohmann::json::parse(cellcount_model_info(m));
  EXPECT_TRUE(info["needs_exemplars"].get<bool>());
  std::vector<float> px(96 * 80 * 3);
  std::mt19937 rng(1);
  for (auto& v : px) v = float(rng() % 256);
  auto v = view(px, 96, 80);
  cellcount_result* r = nullptr;
  const cellcount_box boxes[5] = {{10, 10, 20, 20}, {40, 30, 70, 62}, {5, 50, 9, 54}, {60, 5, 80, 15}, {30, 30, 40, 40}};
  double first = -1;
  for (size_t n : {1u, 2u, 5u}) {
    ASSERT_EQ(cellcount_predict(m, &v, boxes, n, nullptr, nullptr, &r), CELLCOUNT_OK) << n << cellcount_last_error();
    EXPECT_TRUE(std::isfinite(cellcount_result_count(r)));
    EXPECT_GE(cellcount_result_count(r), 0.0);
    if (n == 1) first = cellcount_result_count(r);
    cellcount_result_free(r);
  }
  // Deterministic: the same call twice gives the same count.
  ASSERT_EQ(cellcount_predict(m, &v, boxes, 1, nullptr, nullptr, &r), CELLCOUNT_OK);
  EXPECT_DOUBLE_EQ(cellcount_result_count(r), first);
  cellcount_result_free(r);
  // Partly outside: clipped (with a warning in the log), the call succeeds.
  const cellcount_box partly{-5, -5, 10, 10};
  EXPECT_EQ(cellcount_predict(m, &v, &partly, 1, nullptr, nullptr, &r), CELLCOUNT_OK) << cellcount_last_error();
  cellcount_result_free(r);
  r = nullptr;
  for (const cellcount_box& bad : {cellcount_box{10, 10, 10, 20}, cellcount_box{20, 20, 10, 10},
                                   cellcount_box{200, 200, 210, 210}, cellcount_box{NAN, 0, 5, 5}}) {
    EXPECT_EQ(cellcount_predict(m, &v, &bad, 1, nullptr, nullptr, &r), CELLCOUNT_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(r, nullptr);
    EXPECT_NE(std::string(cellcount_last_error()).find("exemplar box"), std::string::npos) << cellcount_last_error();
  }
  EXPECT_EQ(cellcount_predict(m, &v, nullptr, 0, nullptr, nullptr, &r), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(cellcount_last_error()).find("box"), std::string::npos);
  // Wrong channel count (2 channels).
  cellcount_image_view two{px.data(), 48, 80, 2, 48 * 2 * int64_t(sizeof(float)), CELLCOUNT_DTYPE_F32, 0};
  EXPECT_EQ(cellcount_predict(m, &two, boxes, 1, nullptr, nullptr, &r), CELLCOUNT_ERR_INVALID_ARGUMENT);
  cellcount_model_free(m);
}

TEST_F(ExemplarModel, MaskingAblationsAndTheBenchmarkErrorEvaluate) {
  for (const std::string mode : {"none", "seg", "kmeans", "similarity"}) {
    const std::string req = R"({"model": ")" + (root_ / "model").string() + R"(", "dataset": ")" +
                            (root_ / "bench").string() + R"(", "mask": ")" + mode + R"(", "k": 3, "device": "cpu"})";
    char* rep = nullptr;
    ASSERT_EQ(cellcount_evaluate(req.c_str(), nullptr, nullptr, &rep), CELLCOUNT_OK) << mode << cellcount_last_error();
    auto j = nlohmann::json::parse(rep);
    cellcount_string_free(rep);
    EXPECT_EQ(j["n"], 4) << mode;
    EXPECT_TRUE(std::isfinite(j["mae"].get<double>())) << mode;
    EXPECT_NE(j["error"].get<std::string>().find("elsewhere"), std::string::npos);
  }
  // The inference settings tuned after training. A threshold of -1 keeps every cell of the mask (cosines
  // are >= -1), which must give exactly the no-mask answer; a grown mask runs and stays finite.
  auto total_with = [&](const std::string& fields) {
    const std::string req = R"({"model": ")" + (root_ / "model").string() + R"(", "dataset": ")" +
                            (root_ / "bench").string() + R"(", "device": "cpu", "per_image": true, )" + fields + "}";
    char* rep = nullptr;
    EXPECT_EQ(cellcount_evaluate(req.c_str(), nullptr, nullptr, &rep), CELLCOUNT_OK) << fields << cellcount_last_error();
    auto j = rep ? nlohmann::json::parse(rep) : nlohmann::json();
    cellcount_string_free(rep);
    double total = 0;
    for (const auto& r : j["per_image"]) total += r["interest"].get<double>() + r["elsewhere"].get<double>();
    return total;
  };
  const double everything = total_with(R"("mask": "none")");
  EXPECT_NEAR(total_with(R"("mask": "seg", "mask_threshold": -1.0)"), everything, 1e-6 * (1 + everything));
  EXPECT_TRUE(std::isfinite(total_with(R"("mask": "seg", "mask_threshold": 0.9, "mask_dilate": 1)")));
  for (const std::string bad_field : {R"("mask": "everything")", R"("mask_dilate": 9)"}) {
    const std::string bad = R"({"model": ")" + (root_ / "model").string() + R"(", "dataset": ")" +
                            (root_ / "bench").string() + R"(", )" + bad_field + "}";
    char* rep = nullptr;
    EXPECT_EQ(cellcount_evaluate(bad.c_str(), nullptr, nullptr, &rep), CELLCOUNT_ERR_INVALID_ARGUMENT) << bad_field;
  }
}

// Re-tuning a trained model (no epochs, both networks from init_from) with a one-setting grid keeps its
// weights: it evaluates exactly as the source model with that setting given per call.
TEST_F(ExemplarModel, RetuningKeepsTheNetworksAndStoresTheSetting) {
  auto retune = [&](const std::string& out, const std::string& dilations, const std::string& extra = "",
                    const std::string& thresholds = "[0.45]",
                    const std::string& architecture = R"({"width": 0.125, "dim": 16, "head_width": 0.25, "seg_dim": 8, "exemplar_size": 32})") {
    const std::string req = R"({"method": "exemplar", "recipe": ")" + (root_ / "recipe.json").string() +
                            R"(", "benchmark": ")" + (root_ / "bench").string() + R"(", "init_from": ")" +
                            (root_ / "model").string() + R"(", "out": ")" + (root_ / out).string() +
                            R"(", "init_segmenter": true, "counter_epochs": 0, "seg_epochs": 0, "localizer_epochs": 0, "device": "cpu",
                            "k_max": 4, "mask_threshold_grid": )" + thresholds +
                            R"(, "mask_dilate_grid": )" + dilations + extra + R"(,
                            "architecture": )" + architecture + "}";
    char* rep = nullptr;
    const auto st = cellcount_train(req.c_str(), nullptr, nullptr, &rep);
    cellcount_string_free(rep);
    return st;
  };
  ASSERT_EQ(retune("retuned", "[1]"), CELLCOUNT_OK) << cellcount_last_error();
  const auto th = read_model((root_ / "retuned").string()).meta["thresholds"];
  EXPECT_DOUBLE_EQ(th["mask_threshold"].get<double>(), 0.45);
  EXPECT_EQ(th["mask_dilate"].get<int64_t>(), 1);
  const auto from = read_model((root_ / "retuned").string()).meta["provenance"]["counter_initialised_from"];
  EXPECT_EQ(from["model"], (root_ / "model").string());
  EXPECT_EQ(from["weights_sha256"], read_model((root_ / "model").string()).meta["weights_sha256"]);
  EXPECT_EQ(from["segmenter_too"], true);
  EXPECT_EQ(from["counter_epochs"], read_model((root_ / "model").string()).meta["training"]["counter"]["epochs_run"]);
  auto mae_of = [&](const std::string& model, const std::string& fields) {
    const std::string req = R"({"model": ")" + (root_ / model).string() + R"(", "dataset": ")" + (root_ / "bench").string() +
                            R"(", "device": "cpu", "mask": "seg")" + fields + "}";
    char* r = nullptr;
    EXPECT_EQ(cellcount_evaluate(req.c_str(), nullptr, nullptr, &r), CELLCOUNT_OK) << cellcount_last_error();
    const double mae = r ? nlohmann::json::parse(r)["mae"].get<double>() : NAN;
    cellcount_string_free(r);
    return mae;
  };
  EXPECT_DOUBLE_EQ(mae_of("retuned", ""), mae_of("model", R"(, "mask_threshold": 0.45, "mask_dilate": 1)"));
  EXPECT_EQ(retune("retuned-bad", "[]"), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(retune("retuned-bad2", "[0]", R"(, "intensity_squash": 1.5)"), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(retune("retuned-bad3", "[0]", "", "[1.5]"), CELLCOUNT_ERR_INVALID_ARGUMENT);
  // Another architecture than the source model's is refused, naming init_from and the field that differs.
  EXPECT_EQ(retune("retuned-bad4", "[1]", "", "[0.45]",
                   R"({"width": 0.25, "dim": 16, "head_width": 0.25, "seg_dim": 8, "exemplar_size": 32})"),
            CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(cellcount_last_error()).find("init_from"), std::string::npos) << cellcount_last_error();
  EXPECT_NE(std::string(cellcount_last_error()).find("/width"), std::string::npos) << cellcount_last_error();
  for (const char* bad : {"retuned-bad", "retuned-bad2", "retuned-bad3", "retuned-bad4", "retuned-bad.ckpt", "retuned-bad4.ckpt"})
    EXPECT_FALSE(fs::exists(root_ / bad)) << bad << ": a refused request writes nothing";
}

// A localizer of another width trained on a model (init_from, counter and segmenter kept): the count is the source
// model's, the training is recorded; localizer_epochs 0 without a localizer to keep is refused, nothing written.
TEST_F(ExemplarModel, LocalizerStageKeepsTheCountOfItsSource) {
  auto train = [&](const std::string& out, int epochs) {
    const std::string req = R"({"method": "exemplar", "recipe": ")" + (root_ / "recipe.json").string() +
                            R"(", "benchmark": ")" + (root_ / "bench").string() + R"(", "init_from": ")" +
                            (root_ / "model").string() + R"(", "out": ")" + (root_ / out).string() +
                            R"(", "init_segmenter": true, "counter_epochs": 0, "seg_epochs": 0, "localizer_epochs": )" +
                            std::to_string(epochs) + R"(, "validate_every": 1, "crop": 64, "batch_size": 4, "device": "cpu",
                            "k_max": 4, "mask_threshold_grid": [0.45], "mask_dilate_grid": [0],
                            "architecture": {"width": 0.125, "dim": 16, "head_width": 0.25, "seg_dim": 8,
                                             "exemplar_size": 32, "localizer_base": 4}})";
    char* rep = nullptr;
    const auto st = cellcount_train(req.c_str(), nullptr, nullptr, &rep);
    cellcount_string_free(rep);
    return st;
  };
  ASSERT_EQ(train("localized", 2), CELLCOUNT_OK) << cellcount_last_error();
  const auto meta = read_model((root_ / "localized").string()).meta;
  EXPECT_EQ(meta["architecture"]["localizer_base"], 4);
  EXPECT_EQ(meta["training"]["localizer"]["epochs_run"], 2);
  EXPECT_EQ(meta["training"]["localizer"]["history"].size(), 2u);
  // Epochs 0 is re-tuning: refused when the source's localizer is of another width (16 here), nothing written.
  EXPECT_EQ(train("localized-bad", 0), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(cellcount_last_error()).find("localizer_epochs"), std::string::npos) << cellcount_last_error();
  EXPECT_FALSE(fs::exists(root_ / "localized-bad"));
  std::vector<float> px(64 * 64 * 3);
  std::mt19937 rng(4);
  for (auto& v : px) v = float(rng() % 256);
  auto v = view(px, 64, 64);
  const cellcount_box box{20, 20, 30, 30};
  auto params = cellcount_predict_default_params();
  params.options_json = R"({"mask_threshold": 0.45})";  // the source model's own tuned threshold may differ
  double counts[2];
  const char* models[2] = {"model", "localized"};
  for (int i = 0; i < 2; ++i) {
    cellcount_model* m = nullptr;
    ASSERT_EQ(cellcount_model_load((root_ / models[i]).string().c_str(), &m), CELLCOUNT_OK);
    cellcount_result* r = nullptr;
    ASSERT_EQ(cellcount_predict(m, &v, &box, 1, nullptr, &params, &r), CELLCOUNT_OK) << cellcount_last_error();
    counts[i] = cellcount_result_count(r);
    cellcount_result_free(r);
    cellcount_model_free(m);
  }
  EXPECT_NEAR(counts[1], counts[0], 1e-4 * (1 + counts[0]));
}

TEST_F(ExemplarModel, SaveLoadPredictIsIdentical) {
  std::vector<float> px(64 * 64 * 3);
  std::mt19937 rng(2);
  for (auto& v : px) v = float(rng() % 256);
  auto v = view(px, 64, 64);
  const cellcount_box box{20, 20, 30, 30};
  double counts[2];
  for (int i = 0; i < 2; ++i) {
    cellcount_model* m = nullptr;
    ASSERT_EQ(cellcount_model_load((root_ / "model").string().c_str(), &m), CELLCOUNT_OK);
    cellcount_result* r = nullptr;
    ASSERT_EQ(cellcount_predict(m, &v, &box, 1, nullptr, nullptr, &r), CELLCOUNT_OK) << cellcount_last_error();
    counts[i] = cellcount_result_count(r);
    cellcount_result_free(r);
    cellcount_model_free(m);
  }
  EXPECT_DOUBLE_EQ(counts[0], counts[1]);
}

// The train-run driver for exemplar: a cancelled training resumes only under its own request (before, a stale
// checkpoint of another request was silently resumed), and a user's folder named as checkpoint_dir keeps its
// files after a successful run (before, it was deleted).
TEST_F(ExemplarModel, ResumeOnlyUnderItsOwnRequestAndUserCheckpointFolderSurvives) {
  const auto out = root_ / "resumed", user = root_ / "user-folder";
  fs::create_directories(user);
  std::ofstream(user / "keep.txt") << "mine";
  auto request = [&](const std::string& extra) {
    return R"({"method": "exemplar", "recipe": ")" + (root_ / "recipe.json").string() + R"(", "benchmark": ")" +
           (root_ / "bench").string() + R"(", "out": ")" + out.string() + R"(", "checkpoint_dir": ")" + user.string() +
           R"(", "counter_epochs": 3, "seg_epochs": 1, "localizer_epochs": 1, "validate_every": 1, "crop": 64, "batch_size": 4,
           "device": "cpu", "k_max": 3, "mask_threshold_grid": [0.5], "mask_dilate_grid": [0],
           "architecture": {"width": 0.125, "dim": 16, "head_width": 0.25, "seg_dim": 8, "exemplar_size": 32})" +
           extra + "}";
  };
  auto cancel_in_epoch_2 = [](float, const char* stage, void*) -> int32_t {
    return std::string(stage).rfind("epoch 2/", 0) == 0 ? 1 : 0;
  };
  char* rep = nullptr;
  ASSERT_EQ(cellcount_train(request("").c_str(), cancel_in_epoch_2, nullptr, &rep), CELLCOUNT_CANCELLED);
  ASSERT_TRUE(fs::exists(user / "counter.ckpt"));
  EXPECT_EQ(cellcount_train(request(R"(, "box_jitter": 0.3)").c_str(), nullptr, nullptr, &rep),
            CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(cellcount_last_error()).find("box_jitter"), std::string::npos) << cellcount_last_error();
  ASSERT_EQ(cellcount_train(request("").c_str(), nullptr, nullptr, &rep), CELLCOUNT_OK) << cellcount_last_error();
  cellcount_string_free(rep);
  EXPECT_EQ(read_model(out.string()).meta["training"]["counter"]["epochs_run"], 2) << "resumed after epoch 1 of 3";
  ASSERT_TRUE(fs::exists(user / "keep.txt"));
  std::ifstream f(user / "keep.txt");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(f), {}), "mine");
  size_t n = 0;
  for (auto it = fs::directory_iterator(user); it != fs::directory_iterator(); ++it) ++n;
  EXPECT_EQ(n, 1u) << "only the user's file remains";
}
