// DCL: shapes, GMP (brute-force references and gradient flow), count = L1 norm, a tiny set overfits,
// save -> load -> predict gives identical output, bad inputs get clear statuses, training crops (mosaic)
// keep their counts.
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include "cellcount/cellcount.h"
#include "core/error.h"
#include "core/evaluate.h"
#include "methods/dcl/dcl_predict.h"
#include "core/image_tensor.h"
#include "core/method.h"
#include "core/model_io.h"
#include "methods/dcl/dcl_crops.h"
#include "methods/dcl/dcl_net.h"

using namespace cellcount;
using namespace cellcount::dcl;
namespace fs = std::filesystem;

namespace {
DclConfig tiny() {
  DclConfig c;
  c.width = 0.125;
  c.unet_base = 4;
  return c;
}
fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::path(::testing::TempDir()) / ("cellcount_dcl_" + name);
  fs::remove_all(d);
  return d;
}
}  // namespace

TEST(Dcl, ShapesAndPaperWidthBuilds) {
  torch::NoGradGuard ng;
  DclNet net(tiny());
  net->eval();
  auto x = torch::rand({2, 1, 64, 96});
  auto coarse = net->counter->forward(x);
  EXPECT_EQ(coarse.sizes(), (std::vector<int64_t>{2, 1, 8, 12}));  // stride 16, then x2: stride 8
  auto fine = net->localizer->forward(x, coarse);
  EXPECT_EQ(fine.sizes(), (std::vector<int64_t>{2, 1, 64, 96}));
  EXPECT_GE(fine.min().item<float>(), 0.0f);
  // The paper's configuration (width 1.0: 64..512 channels) builds and runs.
  DclConfig full;
  full.width = 1.0;
  DclNet big(full);
  big->eval();
  auto y = big->counter->forward(torch::rand({1, 1, 32, 32}));
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{1, 1, 4, 4}));
  int64_t n = 0;
  for (const auto& p : big->counter->parameters()) n += p.numel();
  EXPECT_GT(n, 20000000);  // VGG-19 conv stack: ~20.0 M parameters
}

TEST(Dcl, LocalizerRunsOnceOverTheStitchedCoarseMap) {
  // Issue 25: the counter runs in the given tiles (its count depends on its context), the localizer once over the
  // whole image, conditioned on the stitched coarse map, so its full-resolution UNet computes no pixel twice.
  torch::InferenceMode im;
  torch::manual_seed(3);
  DclNet net(tiny());
  net->eval();
  const auto& cfg = net->config;
  // One tile: both passes give what the two networks give on the image.
  auto x = torch::rand({1, 128, 128});
  auto maps = tiled_maps(net, cfg, x, 128, 32, torch::kCPU, torch::kFloat32, Progress());
  auto coarse = net->counter->forward(x.unsqueeze(0));
  auto fine = net->localizer->forward(x.unsqueeze(0), coarse) / cfg.target_scale;
  EXPECT_TRUE(torch::allclose(maps[0], fine[0][0], 1e-4, 1e-6));
  EXPECT_TRUE(torch::allclose(maps[1], spread_coarse(coarse, 128, 128)[0][0], 1e-4, 1e-6));
  // Many counter tiles: the count map is the counter's tiled map (the same with and without points), and the fine
  // map is the localizer over the whole image given the stitched coarse map (its stride-8 blocks' mass).
  auto big = torch::rand({1, 192, 256});
  auto tiled = tiled_maps(net, cfg, big, 64, 16, torch::kCPU, torch::kFloat32, Progress());
  auto count_only = tiled_maps(net, cfg, big, 64, 16, torch::kCPU, torch::kFloat32, Progress(), false);
  EXPECT_TRUE(torch::equal(tiled[1], count_only[1]));
  EXPECT_TRUE(torch::equal(count_only[0], count_only[1]));
  auto stitched = torch::avg_pool2d(tiled[1].unsqueeze(0).unsqueeze(0), 8, 8) * 64.0;
  auto whole = net->localizer->forward(big.unsqueeze(0), stitched) / cfg.target_scale;
  EXPECT_TRUE(torch::allclose(tiled[0], whole[0][0], 1e-4, 1e-6));
}

TEST(Dcl, ParallelCounterTilesGiveTheMapsOfOneThread) {
  // Issue 25: prediction runs the counter's tiles on tile_workers() threads of one intra-op thread each; the maps are
  // those of a single-threaded pass (the same batches, the same kernels).
  torch::InferenceMode im;
  torch::manual_seed(5);
  DclNet net(tiny());
  net->eval();
  auto img = torch::rand({1, 200, 232});
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  auto one = tiled_maps(net, net->config, img, 64, 16, torch::kCPU, torch::kFloat32, Progress());
  at::set_num_threads(threads);
  auto two = tiled_maps(net, net->config, img, 64, 16, torch::kCPU, torch::kFloat32, Progress(), true, 2);
  EXPECT_TRUE(torch::allclose(one, two, 1e-6, 1e-7)) << (one - two).abs().max().item<double>();
  EXPECT_NEAR(one[1].sum().item<double>(), two[1].sum().item<double>(), 1e-6 * one[1].sum().item<double>());
}

TEST(Dcl, LocalizerConditionOfAWindowIsTheWholeMapsWindow) {
  torch::manual_seed(4);
  auto coarse = torch::rand({1, 1, 13, 17});
  auto whole = torch::nn::functional::interpolate(coarse, torch::nn::functional::InterpolateFuncOptions()
                                                              .size(std::vector<int64_t>{13 * 8, 17 * 8})
                                                              .mode(torch::kBilinear)
                                                              .align_corners(false)) * 100.0;
  for (const TileRect& r : {TileRect{0, 0, 104, 136, 0, 0, 104, 136}, TileRect{0, 0, 37, 50, 0, 0, 37, 50},
                            TileRect{21, 45, 90, 131, 21, 45, 90, 131}, TileRect{64, 8, 104, 136, 64, 8, 104, 136},
                            TileRect{3, 5, 11, 13, 3, 5, 11, 13}}) {
    auto want = whole.slice(2, r.y0, r.y1).slice(3, r.x0, r.x1);
    // The same interpolation weights; the vectorised kernel rounds differently at different offsets (measured up
    // to 1.5e-5 on values up to 100).
    auto got = localizer_condition(coarse, r, 100.0);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_TRUE(torch::allclose(got, want, 1e-6, 1e-4)) << r.y0 << " " << r.x0;
  }
}

TEST(Dcl, CountIsTheL1NormOfTheMap) {
  torch::NoGradGuard ng;
  DclNet net(tiny());
  net->eval();
  auto x = torch::rand({1, 1, 64, 64});
  auto f = net->counter->forward(x);
  EXPECT_GE(f.min().item<float>(), 0.0f);
  // Reference: the head's raw output, by hand, then its L1 norm.
  auto feat = net->counter->features->forward(x);
  feat = torch::nn::functional::interpolate(feat, torch::nn::functional::InterpolateFuncOptions()
                                                      .scale_factor(std::vector<double>{2.0, 2.0})
                                                      .mode(torch::kBilinear)
                                                      .align_corners(true));
  feat = net->counter->gmp->forward(feat);
  auto raw = net->counter->head->forward(feat);
  EXPECT_NEAR(f.sum().item<double>(), raw.abs().sum().item<double>(), 1e-4);
}

TEST(Dcl, GmpMatchesBruteForceSampling) {
  torch::NoGradGuard ng;
  Gmp gmp(3, 2, 1.0);
  auto x = torch::rand({1, 3, 5, 6});
  // Zero offsets: every sample is x_p itself, so y = x + x.
  gmp->offset->weight.zero_();
  gmp->offset->bias.zero_();
  EXPECT_TRUE(torch::allclose(gmp->forward(x), 2 * x, 1e-5, 1e-6));
  // Offsets (+1, 0) and (0, -1) for every p: y_p = x_p + (x_{p+(1,0)} + x_{p-(0,1)}) / 2, zeros outside.
  gmp->offset->bias.copy_(torch::tensor({1.0f, 0.0f, 0.0f, -1.0f}));
  auto y = gmp->forward(x);
  for (int64_t r = 0; r < 5; ++r)
    for (int64_t c = 0; c < 6; ++c)
      for (int64_t ch = 0; ch < 3; ++ch) {
        const float a = c + 1 < 6 ? x[0][ch][r][c + 1].item<float>() : 0.0f;
        const float b = r - 1 >= 0 ? x[0][ch][r - 1][c].item<float>() : 0.0f;
        EXPECT_NEAR(y[0][ch][r][c].item<float>(), x[0][ch][r][c].item<float>() + 0.5f * (a + b), 1e-5);
      }
}

// Issue 25: without gradient the CPU samples directly (no grid_sample); the same values to float rounding, for
// offsets between pixels, past the edges, on one-pixel axes and in bf16 channels-last.
TEST(Dcl, GmpInferenceSamplerEqualsGridSample) {
  torch::NoGradGuard ng;
  torch::manual_seed(5);
  Gmp gmp(5, 8, 3.0);
  gmp->offset->weight.normal_(0.0, 0.5);
  for (const auto& shape : std::vector<std::vector<int64_t>>{{2, 5, 7, 9}, {1, 5, 1, 6}, {1, 5, 6, 1}}) {
    const auto x = torch::randn(shape);
    const auto got = gmp->forward(x), want = gmp->forward_grid_sample(x);
    EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-5)) << "max difference " << (got - want).abs().max().item<double>();
  }
  gmp->to(torch::kBFloat16);
  const auto xb = torch::randn({2, 5, 7, 9}).to(torch::kBFloat16).contiguous(torch::MemoryFormat::ChannelsLast);
  const auto got = gmp->forward(xb).to(torch::kFloat32), want = gmp->forward_grid_sample(xb).to(torch::kFloat32);
  EXPECT_TRUE(torch::allclose(got, want, 2e-2, 2e-2)) << "max difference " << (got - want).abs().max().item<double>();
}

TEST(Dcl, GmpPassesGradientsToItsOffsets) {
  Gmp gmp(4, 8, 1.0);
  auto x = torch::rand({2, 4, 8, 8}, torch::requires_grad());
  gmp->forward(x).pow(2).sum().backward();
  EXPECT_GT(gmp->offset->weight.grad().abs().sum().item<double>(), 0.0);
  EXPECT_GT(gmp->offset->bias.grad().abs().sum().item<double>(), 0.0);
  EXPECT_GT(x.grad().abs().sum().item<double>(), 0.0);
}

namespace {
// Patches whose every pixel says where it came from: patch k has image value k + 1 and a uniform dot map of
// (k + 1) / 100 per pixel, so any crop's dot-map sum is known from its pixels.
std::vector<Item> labelled_patches(int64_t n, int64_t h, int64_t w) {
  std::vector<Item> items;
  for (int64_t k = 0; k < n; ++k) {
    Item it;
    it.image = torch::full({3, h, w}, float(k + 1));
    it.density = torch::full({1, h, w}, float(k + 1) / 100.f);
    it.count = it.density.sum().item<double>();
    items.push_back(it);
  }
  return items;
}
}  // namespace

TEST(DclCrops, MosaicQuartersComeWholeFromOnePatchWithTheirCounts) {
  const auto items = labelled_patches(5, 64, 64);
  std::mt19937_64 rng(7);
  const Augment mosaic{0, 0, 1.0};
  std::set<int64_t> others;
  for (int draw = 0; draw < 20; ++draw) {
    const size_t b = size_t(draw % 5);
    auto [x, d] = sample_crop(items, b, 64, mosaic, rng);
    ASSERT_EQ(x.sizes(), (std::vector<int64_t>{3, 64, 64}));
    ASSERT_EQ(d.sizes(), (std::vector<int64_t>{1, 64, 64}));
    for (int64_t r = 0; r < 2; ++r)
      for (int64_t c = 0; c < 2; ++c) {
        auto qx = x.slice(1, 32 * r, 32 * (r + 1)).slice(2, 32 * c, 32 * (c + 1));
        auto qd = d.slice(1, 32 * r, 32 * (r + 1)).slice(2, 32 * c, 32 * (c + 1));
        const float v = qx.min().item<float>();
        EXPECT_EQ(qx.max().item<float>(), v) << "a quarter mixes patches";
        EXPECT_NEAR(qd.sum().item<double>(), v / 100.0 * 32 * 32, 1e-3) << "the dot map does not follow the image";
        if (r == 0 && c == 0) EXPECT_EQ(v, float(b + 1)) << "the first quarter is the batch's patch";
        else others.insert(int64_t(v));
      }
  }
  EXPECT_GE(others.size(), 3u) << "the other quarters come from random patches";
  // Off (the default): a plain crop of the batch's own patch.
  auto [x, d] = sample_crop(items, 2, 64, Augment{}, rng);
  EXPECT_EQ(x.min().item<float>(), 3.f);
  EXPECT_EQ(x.max().item<float>(), 3.f);
  EXPECT_NEAR(d.sum().item<double>(), items[2].count, 1e-3);
}

TEST(DclCrops, NonSquarePatchesStackIntoBatches) {
  // 64 x 96 patches: plain crops and mosaics of 32 x 48 quarters keep their shape under the dihedral draws.
  const auto items = labelled_patches(3, 64, 96);
  std::mt19937_64 rng(11);
  for (double p : {0.0, 1.0}) {
    auto [x, d] = sample_batch(items, {0, 1, 2, 0, 1, 2, 0, 1}, 128, Augment{0, 0, p}, rng, torch::kCPU, torch::kFloat32);
    EXPECT_EQ(x.sizes(), (std::vector<int64_t>{8, 3, 64, 96})) << "mosaic " << p;
    EXPECT_EQ(d.sizes(), (std::vector<int64_t>{8, 1, 64, 96})) << "mosaic " << p;
  }
}

class DclModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // A tiny synthetic set and a tiny DCL trained on it through the C ABI, as the CLI does.
    root_ = fresh_dir("suite");
    char* rep = nullptr;
    const std::string synth = "{\"out\": \"" + (root_ / "data").string() +
                              "\", \"n\": 12, \"width\": 64, \"height\": 64, \"min_cells\": 4, \"max_cells\": 14, "
                              "\"seed\": 3, \"split\": [8, 2, 2]}";
    ASSERT_EQ(cellcount_synthesize(synth.c_str(), nullptr, nullptr, &rep), CELLCOUNT_OK) << cellcount_last_error();
    cellcount_string_free(rep);
    const std::string req = "{\"method\": \"dcl\", \"dataset\": \"" + (root_ / "data").string() + "\", \"out\": \"" +
                            (root_ / "model").string() +
                            "\", \"counter_epochs\": 60, \"localizer_epochs\": 4, \"crop\": 64, \"batch_size\": 4, "
                            "\"lr\": 0.001, \"validate_every\": 20, \"device\": \"cpu\", \"restart_epochs\": 30, "
                            "\"color_jitter\": 0.05, \"scale_jitter\": 0.2, \"mosaic\": 0.5, \"swa_from\": 0.4, "
                            "\"architecture\": {\"width\": 0.125, \"unet_base\": 4}}";
    ASSERT_EQ(cellcount_train(req.c_str(), nullptr, nullptr, &rep), CELLCOUNT_OK) << cellcount_last_error();
    report_ = nlohmann::json::parse(rep);
    cellcount_string_free(rep);
  }
  static fs::path root_;
  static nlohmann::json report_;
};
fs::path DclModel::root_;
nlohmann::json DclModel::report_;

TEST_F(DclModel, TinySetOverfits) {
  const auto meta = read_model((root_ / "model").string()).meta;
  const auto& hist = meta["training"]["counter"]["history"];
  ASSERT_EQ(hist.size(), 60u);
  const double first = hist[0]["loss"], last = hist[hist.size() - 1]["loss"];
  EXPECT_LT(last, 0.5 * first) << "counter loss " << first << " -> " << last;
  EXPECT_TRUE(meta.contains("metrics"));
  EXPECT_GT(meta["thresholds"]["peak_threshold"].get<double>(), 0.0);
  // The default count levels: every power of two dividing crop/8 (64 crops: 8 coarse cells a side).
  EXPECT_EQ(meta["provenance"]["request"]["count_levels"], nlohmann::json({1, 2, 4, 8}));
  // swa_from 0.4 of 60 epochs, cycles of 30: the snapshots at the two cycle ends after epoch 24 are averaged.
  const auto& wa = meta["training"]["counter"]["weight_average"];
  EXPECT_EQ(wa["epochs"], nlohmann::json({30, 60}));
  EXPECT_TRUE(wa["val_mae"].is_number() && wa["test_mae"].is_number() && wa["best_snapshot_test_mae"].is_number()) << wa;
  // Training fits the out-of-domain section on the 8 train images and checks it on the 2 val images.
  const auto& dom = meta["domain"];
  ASSERT_TRUE(dom.is_object()) << meta.dump();
  EXPECT_EQ(dom["fitted_on"]["split"], "train");
  EXPECT_EQ(dom["n_train"], 8);
  EXPECT_EQ(dom["checked_on"]["items"], 2);
  EXPECT_EQ(dom["channel_mean"].size(), 1u);
  EXPECT_LT(dom["channel_mean"][0][0].get<double>(), dom["channel_mean"][0][1].get<double>());
  EXPECT_EQ(report_["domain"]["fitted_on"]["split"], "train");
}

TEST_F(DclModel, BadTrainingRequestsAreRefusedBeforeAnyWork) {
  char* rep = nullptr;
  const auto out = root_ / "refused";
  for (const char* field : {"\"color_jitter\": 1.5", "\"color_jitter\": -0.1", "\"precise_bn_batches\": -1",
                            "\"swa_from\": 1.0", "\"scale_jitter\": 1.0", "\"scale_jitter\": -0.2",
                            "\"mosaic\": 1.5", "\"mosaic\": -0.1",
                            // Probed from outside (issue 20): each was accepted and trained, validate_every 0 killed
                            // the host with SIGFPE, seed -1 came back as 18446744073709551615.
                            "\"counter_epochs\": -1", "\"counter_epochs\": 1.5", "\"counter_epochs\": 0",
                            "\"localizer_epochs\": -5", "\"validate_every\": 0", "\"validate_every\": -1",
                            "\"sigma\": 0", "\"sigma\": -1", "\"rgb_rule\": \"purple\"", "\"seed\": -1",
                            "\"preset\": \"vgg2\"", "\"crop\": 1048576", "\"tiling\": \"whole\""}) {
    const std::string req = "{\"method\": \"dcl\", \"dataset\": \"" + (root_ / "data").string() + "\", \"out\": \"" +
                            out.string() + "\", " + field + "}";
    EXPECT_EQ(cellcount_train(req.c_str(), nullptr, nullptr, &rep), CELLCOUNT_ERR_INVALID_ARGUMENT) << field;
    EXPECT_EQ(rep, nullptr);
    const std::string name = std::string(field).substr(1, std::string(field).find('"', 1) - 1);
    EXPECT_NE(std::string(cellcount_last_error()).find(name), std::string::npos) << cellcount_last_error();
  }
  EXPECT_FALSE(fs::exists(out));
}

// The dataset itself named as checkpoint_dir: a successful run leaves every file of it in place (before, the
// run ended with remove_all on checkpoint_dir and deleted the dataset).
TEST_F(DclModel, DatasetNamedAsCheckpointDirSurvivesASuccessfulRun) {
  const auto data = root_ / "data-copy";
  fs::copy(root_ / "data", data, fs::copy_options::recursive);
  std::vector<std::string> before, after;
  for (const auto& e : fs::recursive_directory_iterator(data)) before.push_back(e.path().string());
  const std::string req = "{\"method\": \"dcl\", \"dataset\": \"" + data.string() + "\", \"out\": \"" +
                          (root_ / "ckpt-in-data").string() + "\", \"checkpoint_dir\": \"" + data.string() +
                          "\", \"counter_epochs\": 1, \"localizer_epochs\": 1, \"crop\": 64, \"batch_size\": 4, "
                          "\"device\": \"cpu\", \"precise_bn_batches\": 1, \"architecture\": {\"width\": 0.125, \"unet_base\": 4}}";
  char* rep = nullptr;
  ASSERT_EQ(cellcount_train(req.c_str(), nullptr, nullptr, &rep), CELLCOUNT_OK) << cellcount_last_error();
  cellcount_string_free(rep);
  for (const auto& e : fs::recursive_directory_iterator(data)) after.push_back(e.path().string());
  std::sort(before.begin(), before.end());
  std::sort(after.begin(), after.end());
  EXPECT_EQ(before, after);
}

// A dataset without a split trains (issue 21: napari's training widget could not train dcl, "has no split; give
// split_file"): the library splits it by the request's seed and says so in the provenance.
TEST_F(DclModel, DatasetWithoutSplitIsSplitBySeed) {
  const auto data = root_ / "data-unsplit";
  fs::copy(root_ / "data", data, fs::copy_options::recursive);
  fs::remove(data / "split.csv");
  const std::string req = "{\"method\": \"dcl\", \"dataset\": \"" + data.string() + "\", \"out\": \"" +
                          (root_ / "unsplit-model").string() +
                          "\", \"counter_epochs\": 1, \"localizer_epochs\": 1, \"crop\": 64, \"batch_size\": 4, "
                          "\"device\": \"cpu\", \"seed\": 5, \"precise_bn_batches\": 1, \"tiling\": \"budget\", "
                          "\"architecture\": {\"width\": 0.125, \"unet_base\": 4}}";
  char* rep = nullptr;
  ASSERT_EQ(cellcount_train(req.c_str(), nullptr, nullptr, &rep), CELLCOUNT_OK) << cellcount_last_error();
  cellcount_string_free(rep);
  const auto meta = read_model((root_ / "unsplit-model").string()).meta;
  const std::string split = meta["provenance"]["split"];
  EXPECT_NE(split.find("auto"), std::string::npos) << split;
  EXPECT_NE(split.find("seed 5"), std::string::npos) << split;
  EXPECT_EQ(meta["provenance"]["train_patches"].get<int>() + meta["provenance"]["val_patches"].get<int>(), 12);
  EXPECT_FALSE(fs::exists(data / "split.csv")) << "the user's dataset is not written to";
  // The request's tiling "budget" is the model's tiling.mode (tiles of the crop otherwise).
  EXPECT_EQ(meta["tiling"], nlohmann::json({{"tile_size", 64}, {"overlap", 16}, {"mode", "budget"}}));
  // The out-of-domain section is fitted on that same automatic train part (CI of stop 33: it reloaded the
  // dataset, found no split and failed the whole training).
  const std::string fitted_split = meta["domain"]["fitted_on"]["split_source"];
  EXPECT_NE(fitted_split.find("seed 5"), std::string::npos) << fitted_split;
}

// A training that starts from a model (init_from) begins from its weights: with no counter epochs the new
// model's counter is that model's, and provenance names it. Another architecture is refused, nothing written.
TEST_F(DclModel, InitFromStartsFromThatModelsWeights) {
  char* rep = nullptr;
  const auto src = root_ / "model", out = root_ / "refined";
  const std::string common = "{\"method\": \"dcl\", \"dataset\": \"" + (root_ / "data").string() +
                             "\", \"init_from\": \"" + src.string() +
                             "\", \"crop\": 64, \"batch_size\": 4, \"device\": \"cpu\", ";
  const std::string wrong = common + "\"out\": \"" + out.string() + "\", \"architecture\": {\"width\": 0.25}}";
  EXPECT_EQ(cellcount_train(wrong.c_str(), nullptr, nullptr, &rep), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(cellcount_last_error()).find("init_from"), std::string::npos) << cellcount_last_error();
  EXPECT_FALSE(fs::exists(out));
  const std::string req = common + "\"out\": \"" + out.string() +
                          "\", \"counter_epochs\": 0, \"localizer_epochs\": 1, "
                          "\"architecture\": {\"width\": 0.125, \"unet_base\": 4}}";
  ASSERT_EQ(cellcount_train(req.c_str(), nullptr, nullptr, &rep), CELLCOUNT_OK) << cellcount_last_error();
  cellcount_string_free(rep);
  const auto a = read_model(src.string()), b = read_model(out.string());
  EXPECT_EQ(b.meta["provenance"]["initialised_from"]["model"], src.string());
  EXPECT_EQ(b.meta["provenance"]["initialised_from"]["weights_sha256"], a.meta["weights_sha256"]);
  DclNet na(DclConfig::from_json(a.meta["architecture"])), nb(DclConfig::from_json(b.meta["architecture"]));
  load_weights(*na, a);
  load_weights(*nb, b);
  const auto pa = na->counter->named_parameters(), pb = nb->counter->named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& p : pa) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();

  // A cheaper localizer (another unet_base) for the same counter: the counter is taken, the localizer starts
  // fresh, so the counts are that model's and only the points differ. Without localizer epochs it would stay
  // untrained: refused, nothing written.
  const auto cheap = root_ / "cheap-localizer";
  const std::string untrained = common + "\"out\": \"" + cheap.string() +
                                "\", \"counter_epochs\": 0, \"localizer_epochs\": 0, "
                                "\"architecture\": {\"width\": 0.125, \"unet_base\": 2}}";
  EXPECT_EQ(cellcount_train(untrained.c_str(), nullptr, nullptr, &rep), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(cellcount_last_error()).find("untrained"), std::string::npos) << cellcount_last_error();
  EXPECT_FALSE(fs::exists(cheap));
  const std::string creq = common + "\"out\": \"" + cheap.string() +
                           "\", \"counter_epochs\": 0, \"localizer_epochs\": 1, "
                           "\"architecture\": {\"width\": 0.125, \"unet_base\": 2}}";
  ASSERT_EQ(cellcount_train(creq.c_str(), nullptr, nullptr, &rep), CELLCOUNT_OK) << cellcount_last_error();
  cellcount_string_free(rep);
  const auto c = read_model(cheap.string());
  EXPECT_EQ(c.meta["architecture"]["unet_base"], 2);
  EXPECT_EQ(c.meta["provenance"]["initialised_from"]["weights_sha256"], a.meta["weights_sha256"]);
  DclNet nc(DclConfig::from_json(c.meta["architecture"]));
  load_weights(*nc, c);
  const auto pc = nc->counter->named_parameters();
  ASSERT_EQ(pa.size(), pc.size());
  for (const auto& p : pa) EXPECT_TRUE(torch::equal(p.value(), pc[p.key()])) << p.key();
  const auto& ms = find_method("dcl");
  auto ma = ms.load(a), mc = ms.load(c);
  auto img = torch::rand({1, 64, 64}) * 200;
  PredictOptions o;
  EXPECT_DOUBLE_EQ(predict_image(*ma, ms, img, {}, {}, o).count, predict_image(*mc, ms, img, {}, {}, o).count);
}

// A cancelled training resumes from its checkpoints only under the same request. A field the checkpoints'
// request lacks (added to the library later) counts as its default; a field that differs is refused.
TEST_F(DclModel, CancelledTrainingResumesOnlyUnderItsOwnRequest) {
  char* rep = nullptr;
  const auto out = root_ / "resumed";
  const fs::path key = out.string() + ".ckpt/cellcount-run.json";
  const std::string req = "{\"method\": \"dcl\", \"dataset\": \"" + (root_ / "data").string() + "\", \"out\": \"" +
                          out.string() +
                          "\", \"counter_epochs\": 3, \"localizer_epochs\": 0, \"crop\": 64, \"batch_size\": 4, "
                          "\"device\": \"cpu\", \"precise_bn_batches\": 2, "
                          "\"architecture\": {\"width\": 0.125, \"unet_base\": 4}}";
  auto cancel_in_epoch_2 = [](float, const char* stage, void*) -> int32_t {
    return std::string(stage).rfind("epoch 2/", 0) == 0 ? 1 : 0;
  };
  ASSERT_EQ(cellcount_train(req.c_str(), cancel_in_epoch_2, nullptr, &rep), CELLCOUNT_CANCELLED);
  ASSERT_TRUE(fs::exists(key));
  EXPECT_FALSE(fs::exists(out));
  auto edit_key = [&](const std::function<void(nlohmann::json&)>& edit) {
    std::ifstream in(key);
    auto j = nlohmann::json::parse(in);
    in.close();
    edit(j);
    std::ofstream(key) << j.dump(2);
  };
  edit_key([](nlohmann::json& j) { j["request"]["init_from"] = "another-model"; });
  EXPECT_EQ(cellcount_train(req.c_str(), nullptr, nullptr, &rep), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(cellcount_last_error()).find("init_from"), std::string::npos) << cellcount_last_error();
  edit_key([](nlohmann::json& j) { j["request"].erase("init_from"); });
  ASSERT_EQ(cellcount_train(req.c_str(), nullptr, nullptr, &rep), CELLCOUNT_OK) << cellcount_last_error();
  cellcount_string_free(rep);
  const auto meta = read_model(out.string()).meta;
  EXPECT_EQ(meta["training"]["counter"]["epochs_run"], 2) << "resumed after epoch 1 of 3";
  EXPECT_FALSE(fs::exists(key.parent_path())) << "checkpoints of a finished run are removed";
}

TEST_F(DclModel, SaveLoadPredictIsIdentical) {
  const auto files = read_model((root_ / "model").string());
  // In memory: the same weights loaded into a fresh network, counted by hand on one whole-image tile.
  DclNet net(DclConfig::from_json(files.meta["architecture"]));
  load_weights(*net, files);
  net->eval();
  auto img = torch::rand({1, 64, 64}) * 200;
  const auto spec = InputSpec::from_json(files.meta["input"]);
  double expected;
  {
    torch::NoGradGuard ng;
    expected = net->counter->forward(spec.prepare(img).unsqueeze(0)).sum().item<double>();
  }
  const auto& ms = find_method("dcl");
  auto a = ms.load(files), b = ms.load(files);
  PredictOptions o;
  auto pa = predict_image(*a, ms, img, {}, {}, o), pb = predict_image(*b, ms, img, {}, {}, o);
  EXPECT_NEAR(pa.count, expected, 1e-4 * (1 + expected));
  EXPECT_EQ(pa.count, pb.count);
  EXPECT_TRUE(torch::equal(pa.density, pb.density));
  EXPECT_NEAR(pa.density.sum().item<double>(), pa.count, 1e-3 * (1 + pa.count));
  // Stitching itself is exact (tests/unit/core: cores partition the image, a conv stitched equals the whole);
  // how far a trained counter's context moves tiled counts is measured by `cellcount bench --mosaic`.
}

TEST_F(DclModel, BadInputsGetClearStatuses) {
  cellcount_model* m = nullptr;
  ASSERT_EQ(cellcount_model_load((root_ / "model").string().c_str(), &m), CELLCOUNT_OK) << cellcount_last_error();
  std::vector<float> px(64 * 64, 10.0f);
  cellcount_image_view v{px.data(), 64, 64, 1, 0, CELLCOUNT_DTYPE_F32, 0};
  cellcount_result* r = nullptr;
  EXPECT_EQ(cellcount_predict(m, &v, nullptr, 0, nullptr, nullptr, &r), CELLCOUNT_OK) << cellcount_last_error();
  cellcount_result_free(r);
  r = nullptr;
  auto bad = [&](cellcount_image_view bv, const char* needle) {
    EXPECT_EQ(cellcount_predict(m, &bv, nullptr, 0, nullptr, nullptr, &r), CELLCOUNT_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(r, nullptr);
    EXPECT_NE(std::string(cellcount_last_error()).find(needle), std::string::npos) << cellcount_last_error();
  };
  cellcount_image_view e = v;
  e.width = 0;
  bad(e, "width");  // empty image
  cellcount_image_view one = v;
  one.width = one.height = 1;
  bad(one, "1 x 1");
  cellcount_image_view two = v;
  two.channels = 2;
  two.width = 32;
  bad(two, "channel");  // a grey model takes 1 channel
  px[100] = NAN;
  bad(v, "NaN");
  px[100] = 10.0f;
  // The model is still usable after all that.
  EXPECT_EQ(cellcount_predict(m, &v, nullptr, 0, nullptr, nullptr, &r), CELLCOUNT_OK);
  cellcount_result_free(r);
  cellcount_model_free(m);
}

// Issue 25: the inference copy has every BatchNorm folded into its convolution; its fine map matches the
// unfolded network's (rescaled to the count), and count only (option localize false) skips the localizer:
// same count, no points, the density is the counter's coarse map.
TEST_F(DclModel, FoldedBatchNormAndCountOnlyKeepTheCount) {
  const auto files = read_model((root_ / "model").string());
  DclNet net(DclConfig::from_json(files.meta["architecture"]));
  load_weights(*net, files);
  net->eval();
  auto img = torch::rand({1, 64, 64}) * 200;
  const auto spec = InputSpec::from_json(files.meta["input"]);
  torch::Tensor fine;
  double count;
  {
    torch::NoGradGuard ng;
    auto x = spec.prepare(img).unsqueeze(0);
    auto coarse = net->counter->forward(x);
    count = coarse.sum().item<double>();
    fine = net->localizer->forward(x, coarse)[0][0];
    fine = fine * (count / fine.sum().item<double>());
  }
  const auto& ms = find_method("dcl");
  auto m = ms.load(files);
  PredictOptions o;
  auto full = predict_image(*m, ms, img, {}, {}, o);
  EXPECT_NEAR(full.count, count, 1e-4 * (1 + count));
  EXPECT_LT((full.density - fine).abs().max().item<double>(), 1e-4 * (1e-3 + fine.abs().max().item<double>()));
  o.method_options = {{"localize", false}};
  auto only = predict_image(*m, ms, img, {}, {}, o);
  EXPECT_NEAR(only.count, full.count, 1e-5 * (1 + full.count));
  EXPECT_TRUE(only.points.empty());
  EXPECT_NEAR(only.density.sum().item<double>(), full.count, 1e-3 * (1 + full.count));
  // Through the C ABI: the option is declared (bool, default true) and a wrong type is refused by name.
  cellcount_model* cm = nullptr;
  ASSERT_EQ(cellcount_model_load((root_ / "model").string().c_str(), &cm), CELLCOUNT_OK) << cellcount_last_error();
  std::vector<float> px(64 * 64, 10.0f);
  for (size_t i = 0; i < px.size(); i += 37) px[i] = 200.0f;
  cellcount_image_view v{px.data(), 64, 64, 1, 0, CELLCOUNT_DTYPE_F32, 0};
  auto p = cellcount_predict_default_params();
  p.precision = "fp32";
  cellcount_result *ra = nullptr, *rb = nullptr;
  ASSERT_EQ(cellcount_predict(cm, &v, nullptr, 0, nullptr, &p, &ra), CELLCOUNT_OK) << cellcount_last_error();
  p.options_json = "{\"localize\": false}";
  ASSERT_EQ(cellcount_predict(cm, &v, nullptr, 0, nullptr, &p, &rb), CELLCOUNT_OK) << cellcount_last_error();
  EXPECT_NEAR(cellcount_result_count(rb), cellcount_result_count(ra), 1e-5 * (1 + cellcount_result_count(ra)));
  EXPECT_EQ(cellcount_result_n_points(rb), 0u);
  cellcount_result_free(ra);
  cellcount_result_free(rb);
  cellcount_result* rc = nullptr;
  p.options_json = "{\"localize\": 3}";
  EXPECT_EQ(cellcount_predict(cm, &v, nullptr, 0, nullptr, &p, &rc), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(cellcount_last_error()).find("localize"), std::string::npos) << cellcount_last_error();
  cellcount_model_free(cm);
}

// Issue 25: a model whose tiling.mode is "budget" (train request tiling "budget", for a counter trained on whole
// patches) counts in the budget tile when the caller gives none, exactly as option tiling "budget" does; the
// crop-mode model counts in its 64 tiles.
TEST_F(DclModel, ModelTilingModeBudgetCountsInTheBudgetTile) {
  const auto crop_dir = root_ / "model", budget_dir = root_ / "budget-model";
  fs::remove_all(budget_dir);
  fs::copy(crop_dir, budget_dir, fs::copy_options::recursive);
  auto meta = nlohmann::json::parse(std::ifstream(budget_dir / "model.json"));
  meta["tiling"]["mode"] = "budget";
  std::ofstream(budget_dir / "model.json") << meta.dump();
  const auto& ms = find_method("dcl");
  auto crop_model = ms.load(read_model(crop_dir.string())), budget_model = ms.load(read_model(budget_dir.string()));
  torch::manual_seed(5);
  auto img = torch::rand({1, 160, 160}) * 200;
  PredictOptions o;
  const auto in_crops = predict_image(*crop_model, ms, img, {}, {}, o);
  const auto in_budget = predict_image(*budget_model, ms, img, {}, {}, o);
  o.method_options = {{"tiling", "budget"}};
  const auto asked = predict_image(*crop_model, ms, img, {}, {}, o);
  EXPECT_EQ(in_budget.count, asked.count);
  EXPECT_TRUE(torch::equal(in_budget.density, asked.density));
  EXPECT_NE(in_budget.count, in_crops.count);
  // A caller's tile still wins.
  PredictOptions tiled;
  tiled.tile_size = 64;
  EXPECT_EQ(predict_image(*budget_model, ms, img, {}, {}, tiled).count, in_crops.count);
}

// Issue 24: the generalist's colour-blind crops. grey 1 puts the channel maximum in every channel, channel_shuffle
// 1 permutes the channels; at 0 the crop is unchanged and no random number is drawn (runs without them unchanged).
TEST(DclCrops, GreyAndChannelShuffleKeepThePixelsAndDrawNothingWhenOff) {
  auto x = torch::rand({3, 8, 8});
  std::mt19937_64 rng(3), untouched(3);
  EXPECT_TRUE(torch::equal(mix_channels(x, Augment{}, rng), x));
  EXPECT_EQ(rng(), untouched());
  Augment grey;
  grey.grey = 1;
  auto g = mix_channels(x, grey, rng);
  const auto mx = std::get<0>(x.max(0));
  for (int c = 0; c < 3; ++c) EXPECT_TRUE(torch::equal(g[c], mx));
  Augment shuffle;
  shuffle.channel_shuffle = 1;
  std::set<std::vector<int>> seen;
  for (int k = 0; k < 60; ++k) {
    auto s = mix_channels(x, shuffle, rng);
    std::vector<int> perm;
    for (int c = 0; c < 3; ++c)
      for (int d = 0; d < 3; ++d)
        if (torch::equal(s[c], x[d])) perm.push_back(d);
    ASSERT_EQ(perm.size(), 3u);
    seen.insert(perm);
  }
  EXPECT_EQ(seen.size(), 6u) << "every permutation is drawn";
  auto one = torch::rand({1, 8, 8});  // a 1-channel crop is left as it is
  EXPECT_TRUE(torch::equal(mix_channels(one, grey, rng), one));
}

// Issue 24: a model trained on a recipe of kinds, each zoomed to one cell diameter. model.json states
// cell_diameter and the kinds' zooms; the model takes grey images (rgb_rule replicate); the prediction option
// diameter scales the image to the model's cell size (diameter = cell_diameter changes nothing; the density
// stays on the caller's grid); a model without cell_diameter refuses the option.
TEST(Dcl, DiameterChoiceIsTheMiddleOfTheSteadyCount) {
  const auto d = dcl::diameter_candidates();
  ASSERT_EQ(d.size(), 12u);
  EXPECT_NEAR(d.front(), 4 * std::cbrt(2.0), 1e-9);
  EXPECT_NEAR(d.back(), 64.0, 1e-9);
  // Split cells at small diameters, merged ones at large; steady at candidates 4..6 (10.1, 12.7, 16 px).
  const std::vector<double> counts{400, 300, 220, 160, 121, 120, 119, 90, 60, 30, 10, 2};
  auto c = dcl::choose_diameter(d, counts);
  ASSERT_TRUE(c.found);
  EXPECT_FALSE(c.at_edge);
  EXPECT_NEAR(c.diameter, d[5], 1e-9);
  // An even plateau (candidates 4..7): the geometric middle of its two middle candidates.
  c = dcl::choose_diameter(d, {400, 300, 220, 160, 121, 120, 119, 118, 100, 30, 10, 2});
  EXPECT_NEAR(c.diameter, std::sqrt(d[5] * d[6]), 1e-9);
  // A count that only falls: steadiest at the large end, said to be at the edge.
  c = dcl::choose_diameter(d, {4000, 2000, 1000, 500, 250, 125, 64, 32, 16, 8, 4, 3.9});
  ASSERT_TRUE(c.found);
  EXPECT_TRUE(c.at_edge);
  EXPECT_NEAR(c.diameter, d[10], 1e-9);
  // Nothing counted anywhere: no estimate.
  EXPECT_FALSE(dcl::choose_diameter(d, std::vector<double>(12, 0.4)).found);
  // A steady count over the whole range (isolated cells): the middle, not the edge.
  c = dcl::choose_diameter(d, std::vector<double>(12, 15.0));
  EXPECT_FALSE(c.at_edge);
  EXPECT_NEAR(c.diameter, std::sqrt(d[5] * d[6]), 1e-9);
}

TEST_F(DclModel, RecipeTrainingStatesItsCellDiameterAndDiameterScales) {
  const auto dir = root_ / "recipe";
  fs::create_directories(dir);
  const auto recipe = dir / "kinds.json";
  std::ofstream(recipe) << R"({"size": 64, "seed": 1, "exemplars": 1, "images": {"train": 1, "val": 1, "test": 1},
    "kinds": [
     {"name": "small", "synthetic": {"radius_min": 2.0, "radius_max": 3.0, "min_cells": 4, "max_cells": 10},
      "tint": [0.2, 1.0, 0.3], "count": {"train": 3, "val": 1}, "diameter": 5.0, "repeat": 2},
     {"name": "large", "synthetic": {"radius_min": 5.0, "radius_max": 7.0, "min_cells": 2, "max_cells": 5},
      "tint": [1.0, 0.3, 0.9], "count": {"train": 3, "val": 1}, "diameter": 12.0}]})";
  const auto out = root_ / "recipe-model";
  char* rep = nullptr;
  const std::string common = "{\"method\": \"dcl\", \"recipe\": \"" + recipe.string() + "\", \"out\": \"" + out.string() +
                             "\", \"counter_epochs\": 1, \"localizer_epochs\": 1, \"crop\": 32, \"batch_size\": 2, "
                             "\"device\": \"cpu\", \"precise_bn_batches\": 1, \"rgb_rule\": \"replicate\", "
                             "\"grey\": 0.3, \"channel_shuffle\": 0.3, "
                             "\"architecture\": {\"width\": 0.125, \"unet_base\": 4}";
  // A recipe without a cell diameter, or with a dataset as well, is refused before any work.
  EXPECT_EQ(cellcount_train((common + "}").c_str(), nullptr, nullptr, &rep), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(cellcount_last_error()).find("cell_diameter"), std::string::npos) << cellcount_last_error();
  EXPECT_EQ(cellcount_train((common + ", \"cell_diameter\": 8, \"dataset\": \"" + (root_ / "data").string() + "\"}").c_str(),
                            nullptr, nullptr, &rep),
            CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_FALSE(fs::exists(out));
  // A kind's "repeat" must be an integer 1..16.
  const auto bad = dir / "bad.json";
  {
    std::ifstream in(recipe);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    text.replace(text.find("\"repeat\": 2"), 11, "\"repeat\": 0");
    std::ofstream(bad) << text;
  }
  auto bad_request = common + ", \"cell_diameter\": 8}";
  bad_request.replace(bad_request.find(recipe.string()), recipe.string().size(), bad.string());
  EXPECT_EQ(cellcount_train(bad_request.c_str(), nullptr, nullptr, &rep), CELLCOUNT_ERR_DATASET);
  EXPECT_NE(std::string(cellcount_last_error()).find("repeat"), std::string::npos) << cellcount_last_error();
  EXPECT_FALSE(fs::exists(out));
  ASSERT_EQ(cellcount_train((common + ", \"cell_diameter\": 8}").c_str(), nullptr, nullptr, &rep), CELLCOUNT_OK)
      << cellcount_last_error();
  cellcount_string_free(rep);
  const auto files = read_model(out.string());
  const auto& meta = files.meta;
  EXPECT_EQ(meta["cell_diameter"], 8.0);
  EXPECT_EQ(meta["input"]["channels"], 3);
  EXPECT_EQ(meta["input"]["rgb_rule"], "replicate");
  const auto& kinds = meta["provenance"]["recipe"]["kinds"];
  ASSERT_EQ(kinds.size(), 2u) << meta["provenance"].dump();
  EXPECT_DOUBLE_EQ(kinds[0]["zoom"].get<double>(), 8.0 / 5.0);
  EXPECT_DOUBLE_EQ(kinds[1]["zoom"].get<double>(), 8.0 / 12.0);
  EXPECT_EQ(kinds[0]["patches"], 3);
  EXPECT_EQ(kinds[0]["repeat"], 2);  // each of the 3 small patches drawn twice an epoch; validation once
  EXPECT_FALSE(kinds[1].contains("repeat"));
  EXPECT_EQ(kinds[0]["val_patches"], 1);
  EXPECT_EQ(kinds[1]["val_patches"], 1);
  EXPECT_EQ(meta["provenance"]["train_patches"], 9);
  EXPECT_EQ(meta["provenance"]["val_patches"], 2);

  const auto& ms = find_method("dcl");
  auto m = ms.load(files);
  auto grey = torch::rand({1, 64, 64}) * 200;  // a grey image is replicated into the three channels
  PredictOptions o;
  // diameter 0 on a model with a cell size: estimated (one of the candidates or between two), or, when nothing is
  // counted at any of them, the model's own with a cell_size_unknown note.
  const auto estimated = predict_image(*m, ms, grey, {}, {}, o);
  EXPECT_TRUE(std::isfinite(estimated.count));
  EXPECT_EQ(estimated.diameter_source, "estimated");
  if (estimated.notes.empty() || estimated.notes[0]["code"] != "cell_size_unknown") {
    EXPECT_GE(estimated.diameter, dcl::diameter_candidates().front());
    EXPECT_LE(estimated.diameter, dcl::diameter_candidates().back());
  } else {
    EXPECT_EQ(estimated.diameter, 8.0);
  }
  EXPECT_DOUBLE_EQ(estimated.cell_zoom, 8.0 / estimated.diameter);
  o.method_options = {{"diameter", 8.0}};  // the model's own size: nothing is scaled
  const auto same = predict_image(*m, ms, grey, {}, {}, o);
  EXPECT_EQ(same.diameter_source, "given");
  EXPECT_EQ(same.cell_zoom, 1.0);
  EXPECT_TRUE(same.notes.empty());
  o.method_options = {{"diameter", 16.0}};  // cells twice the model's size: the image is halved
  o.want_density = true;
  const auto half = predict_image(*m, ms, grey, {}, {}, o);
  EXPECT_EQ(half.cell_zoom, 0.5);
  EXPECT_EQ(half.density.size(-1), 64);
  EXPECT_NEAR(half.density.sum().item<double>(), half.count, 1e-3 * (1 + half.count));
  EXPECT_NE(half.count, same.count);
  // A model without cell_diameter (trained on one dataset) refuses the option with a clear error.
  const auto other = read_model((root_ / "model").string());
  auto specialist = ms.load(other);
  o.method_options = {{"diameter", 10.0}};
  try {
    predict_image(*specialist, ms, grey, {}, {}, o);
    ADD_FAILURE() << "diameter accepted by a model without cell_diameter";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), CELLCOUNT_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(e.what()).find("cell_diameter"), std::string::npos) << e.what();
  }
}
