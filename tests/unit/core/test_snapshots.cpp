// core/snapshots and core/augment: what a training stage ships (best validation snapshot, weight average),
// kept across a resume; the shared resampling and augmentations.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <random>

#include "core/augment.h"
#include "core/error.h"
#include "core/snapshots.h"
#include "core/train_run.h"

namespace fs = std::filesystem;
using namespace cellcount;

namespace {

struct NetImpl : torch::nn::Module {
  NetImpl() {
    conv = register_module("conv", torch::nn::Conv2d(1, 2, 3));
    bn = register_module("bn", torch::nn::BatchNorm2d(2));
  }
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
};
TORCH_MODULE(Net);

fs::path fresh(const std::string& name) {
  auto d = fs::temp_directory_path() / ("cellcount-snapshots-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void set_all(Net& net, float v) {
  torch::NoGradGuard ng;
  for (auto& p : net->parameters()) p.fill_(v);
  for (auto& b : net->buffers()) b.fill_(v);
}

float first(Net& net) { return net->conv->weight.flatten()[0].item<float>(); }

}  // namespace

TEST(SnapshotKeeper, KeepsTheBestAndTheAverageAcrossAResume) {
  const auto dir = fresh("resume");
  const nlohmann::json req{{"out", (dir / "model").string()}, {"checkpoint_dir", (dir / "ckpt").string()}};
  const auto files = checkpoint_files({"stage.ckpt"}, {"stage"});
  Net net;
  {
    TrainRun run("snaptest", common_train_options("snaptest"), req, files);
    SnapshotKeeper keep(*net, run, "stage");
    EXPECT_FALSE(keep.restore_best()) << "nothing offered yet";
    set_all(net, 1.f);
    EXPECT_TRUE(keep.offer(1, 5.0));
    keep.average_in(1);
    set_all(net, 2.f);
    EXPECT_FALSE(keep.offer(2, 6.0)) << "a worse score is not kept";
    keep.average_in(2);
    EXPECT_FALSE(keep.offer(3, NAN)) << "a NaN score is never the best";
    // The run is interrupted here (no save): its checkpoints stay for the resume.
  }
  Net other;
  set_all(other, 9.f);
  TrainRun run("snaptest", common_train_options("snaptest"), req, files);
  ASSERT_TRUE(run.resuming());
  SnapshotKeeper keep(*other, run, "stage");
  EXPECT_EQ(keep.best_epoch(), 1) << "a resumed stage remembers its best snapshot";
  EXPECT_DOUBLE_EQ(keep.best_score(), 5.0);
  EXPECT_EQ(keep.averaged_epochs(), (std::vector<int64_t>{1, 2}));
  keep.average_in(2);
  EXPECT_EQ(keep.averaged_epochs().size(), 2u) << "an epoch averaged before the resume is not averaged twice";
  ASSERT_TRUE(keep.restore_average());
  EXPECT_FLOAT_EQ(first(other), 1.5f);
  EXPECT_FLOAT_EQ(other->bn->running_mean[0].item<float>(), 9.f) << "the average leaves buffers to the caller";
  ASSERT_TRUE(keep.restore_best());
  EXPECT_FLOAT_EQ(first(other), 1.f);
  EXPECT_FLOAT_EQ(other->bn->running_mean[0].item<float>(), 1.f) << "the best snapshot brings its buffers";
  fs::remove_all(dir);
}

TEST(SnapshotKeeper, RefusesACheckpointOfAnotherNetwork) {
  const auto dir = fresh("other");
  const nlohmann::json req{{"out", (dir / "model").string()}, {"checkpoint_dir", (dir / "ckpt").string()}};
  const auto files = checkpoint_files({}, {"stage"});
  {
    TrainRun run("snaptest", common_train_options("snaptest"), req, files);
    torch::nn::Linear lin(3, 2);
    SnapshotKeeper keep(*lin, run, "stage");
    keep.offer(1, 1.0);
  }
  TrainRun run("snaptest", common_train_options("snaptest"), req, files);
  Net net;
  try {
    SnapshotKeeper keep(*net, run, "stage");
    FAIL() << "a snapshot of another network was loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not fit"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(Augment, ResizeKeepsMassAndZoomIsOffAtZero) {
  auto d = torch::rand({1, 40, 30});
  const double sum = d.sum().item<double>();
  EXPECT_NEAR(resize_mass(d, 17, 23).sum().item<double>(), sum, 1e-3 * sum);
  EXPECT_NEAR(resize_mass(d[0], 80, 61).sum().item<double>(), sum, 1e-3 * sum);
  EXPECT_EQ(resize_by(d, 0.5).sizes(), (std::vector<int64_t>{1, 20, 15}));
  std::mt19937_64 a(3), b(3);
  auto img = torch::rand({3, 40, 30});
  auto [zi, zd] = zoom_pair(img, d, 32, 32, 0.0, a);
  EXPECT_TRUE(zi.equal(img));
  EXPECT_TRUE(jitter_colour(img, 0.0, a).equal(img));
  EXPECT_EQ(a(), b()) << "an augmentation that is off draws nothing";
  for (int i = 0; i < 20; ++i) {
    auto [i2, d2] = zoom_pair(img, d, 32, 32, 0.5, a);
    EXPECT_GE(i2.size(1), 32);
    EXPECT_GE(i2.size(2), 30) << "a zoom-out below the crop is padded to it";
    EXPECT_EQ(i2.sizes().slice(1), d2.sizes().slice(1));
    if (i2.size(1) > 32 && i2.size(2) > 32)
      EXPECT_NEAR(d2.sum().item<double>(), sum, 2e-3 * sum) << "a zoomed map holds the same cells";
    else  // reflect padding shows mirrored cells, with their dots
      EXPECT_GE(d2.sum().item<double>(), sum * (1 - 2e-3));
  }
}
