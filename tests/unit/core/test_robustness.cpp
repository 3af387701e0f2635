// Bad inputs of issue 20 (found by an outside probe): each is refused with a clear status, in bounded time,
// or answered right. Models are made here: a selftest-shaped network with random weights saved by
// save_model into a temp folder, hand-edited where a test needs a broken one; the shipped models are used
// read-only from models/.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "cellcount/cellcount.h"
#include "core/dataset.h"
#include "core/device.h"
#include "core/error.h"
#include "core/evaluate.h"
#include "core/image_tensor.h"
#include "core/method.h"
#include "core/model_io.h"
#include "core/tiling.h"
#include "io/image_file.h"
#include "test_util.h"

using namespace cellcount;
using cellcount::test_util::status_of;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::path(::testing::TempDir()) / ("cellcount_robust_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void spit(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

// The selftest network's layout (c1, c2, c3); `c1_out` and `in_channels` let a test make weights that
// disagree with model.json's architecture (width 8, 1 channel).
struct TinyNet : torch::nn::Module {
  TinyNet(int64_t in_channels = 1, int64_t c1_out = 8) {
    register_module("c1", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, c1_out, 3).padding(1)));
    register_module("c2", torch::nn::Conv2d(torch::nn::Conv2dOptions(8, 8, 3).padding(1)));
    register_module("c3", torch::nn::Conv2d(torch::nn::Conv2dOptions(8, 1, 1)));
  }
};

nlohmann::json tiny_meta() {
  return {{"method", "selftest"},
          {"architecture", {{"width", 8}}},
          {"input", InputSpec{}.to_json()},
          {"tiling", {{"tile_size", 64}, {"overlap", 31}}},
          {"thresholds", {{"peak_threshold", 0.015}, {"peak_min_distance", 3.0}}}};
}

// A selftest model folder with random weights (seeded).
fs::path make_model(const std::string& name, int64_t in_channels = 1, int64_t c1_out = 8,
                    nlohmann::json meta = tiny_meta()) {
  torch::manual_seed(7);
  const fs::path d = fresh_dir(name) / "model";
  TinyNet net(in_channels, c1_out);
  save_model(d.string(), meta, net, false);
  return d;
}

cellcount_status load(const fs::path& dir, std::string* message = nullptr) {
  cellcount_model* m = nullptr;
  const cellcount_status s = cellcount_model_load(dir.string().c_str(), &m);
  if (message) *message = cellcount_last_error();
  cellcount_model_free(m);
  return s;
}

// A 64 x 64 float image with bright blobs.
std::vector<float> blobs(int64_t w = 64, int64_t h = 64) {
  std::vector<float> img(size_t(w * h), 20.0f);
  for (int i = 0; i < 4; ++i) {
    const float cx = 12.0f + 40.0f * float(i % 2), cy = 12.0f + 40.0f * float(i / 2);
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        img[size_t(y * w + x)] += 200.0f * std::exp(-((x - cx) * (x - cx) + (y - cy) * (y - cy)) / 12.5f);
  }
  return img;
}

cellcount_image_view view_of(const std::vector<float>& img, int64_t w, int64_t h, int64_t c = 1) {
  cellcount_image_view v{};
  v.data = img.data();
  v.width = w;
  v.height = h;
  v.channels = c;
  v.dtype = CELLCOUNT_DTYPE_F32;
  return v;
}

// Predicts through the C ABI; returns the status, fills count and points (x, y) when OK.
struct Outcome {
  cellcount_status status = CELLCOUNT_ERR_INTERNAL;
  std::string message;
  double count = 0;
  std::vector<float> xy;
  int tiles = 0;  // n of the first "tile i/n" progress stage
};

int32_t note_tiles(float, const char* stage, void* user) {
  int* tiles = static_cast<int*>(user);
  int i = 0, n = 0;
  if (*tiles == 0 && std::sscanf(stage, "tile %d/%d", &i, &n) == 2) *tiles = n;
  return 0;
}

Outcome predict(const fs::path& model, const cellcount_image_view& v, cellcount_predict_params p,
                const std::vector<cellcount_box>& boxes = {}, const cellcount_image_view* region = nullptr) {
  Outcome o;
  cellcount_model* m = nullptr;
  o.status = cellcount_model_load(model.string().c_str(), &m);
  if (o.status != CELLCOUNT_OK) {
    o.message = cellcount_last_error();
    return o;
  }
  p.progress = note_tiles;
  p.progress_user = &o.tiles;
  cellcount_result* r = nullptr;
  o.status = cellcount_predict(m, &v, boxes.empty() ? nullptr : boxes.data(), boxes.size(), region, &p, &r);
  o.message = cellcount_last_error();
  if (r) {
    o.count = cellcount_result_count(r);
    o.xy.resize(2 * cellcount_result_n_points(r));
    if (!o.xy.empty()) cellcount_result_points(r, o.xy.data(), nullptr, nullptr, o.xy.size() / 2);
  }
  cellcount_result_free(r);
  cellcount_model_free(m);
  return o;
}

cellcount_predict_params cpu_params() {
  auto p = cellcount_predict_default_params();
  p.device = "cpu";
  return p;
}

}  // namespace

// ---------------------------------------------------------------- model folders

TEST(BadModelFolder, JsonNestedDeeperThanTheLimitIsRefusedNotACrash) {
  const auto d = make_model("deep");
  std::string text = slurp(d / "model.json");
  const std::string nested = std::string(100000, '[') + std::string(100000, ']');
  text.replace(text.find('{'), 1, "{\"extra\": " + nested + ",");
  spit(d / "model.json", text);
  std::string msg;
  EXPECT_EQ(load(d, &msg), CELLCOUNT_ERR_MODEL_FORMAT);
  EXPECT_NE(msg.find("model.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("deeper"), std::string::npos) << msg;
}

TEST(BadModelFolder, FifoModelJsonIsRefusedWithoutBlocking) {
  const auto d = make_model("fifo_json");
  fs::remove(d / "model.json");
  ASSERT_EQ(::mkfifo((d / "model.json").c_str(), 0600), 0);
  std::string msg;
  EXPECT_EQ(load(d, &msg), CELLCOUNT_ERR_IO);
  EXPECT_NE(msg.find("not a regular file"), std::string::npos) << msg;
}

TEST(BadModelFolder, FifoWeightsAreRefusedWithoutBlocking) {
  const auto d = make_model("fifo_weights");
  fs::remove(d / "weights.pt");
  ASSERT_EQ(::mkfifo((d / "weights.pt").c_str(), 0600), 0);
  std::string msg;
  EXPECT_EQ(load(d, &msg), CELLCOUNT_ERR_IO);
  EXPECT_NE(msg.find("weights.pt"), std::string::npos) << msg;
}

TEST(BadModelFolder, WeightsLinkedToDevZeroAreRefusedWithoutBlocking) {
  const auto d = make_model("dev_zero");
  fs::remove(d / "weights.pt");
  fs::create_symlink("/dev/zero", d / "weights.pt");
  std::string msg;
  EXPECT_EQ(load(d, &msg), CELLCOUNT_ERR_IO);
  EXPECT_NE(msg.find("not a regular file"), std::string::npos) << msg;
}

TEST(BadModelFolder, FormatVersionIsRangeCheckedBeforeConversion) {
  const auto d = make_model("format_version");
  auto meta = nlohmann::json::parse(slurp(d / "model.json"));
  for (const auto& v : {nlohmann::json(4294967297ULL), nlohmann::json(-4294967295LL), nlohmann::json(0)}) {
    meta["format_version"] = v;
    spit(d / "model.json", meta.dump());
    std::string msg;
    EXPECT_EQ(load(d, &msg), CELLCOUNT_ERR_MODEL_FORMAT) << v;
    EXPECT_NE(msg.find(v.dump()), std::string::npos) << msg;
  }
  meta["format_version"] = 1;
  spit(d / "model.json", meta.dump());
  EXPECT_EQ(load(d), CELLCOUNT_OK);
}

TEST(BadModelFolder, TypeErrorsAndMissingSectionsAreModelFormatNamingTheFile) {
  const auto d = make_model("types");
  const auto good = nlohmann::json::parse(slurp(d / "model.json"));
  auto meta = good;
  meta["input"]["channels"] = "one";
  spit(d / "model.json", meta.dump());
  std::string msg;
  EXPECT_EQ(load(d, &msg), CELLCOUNT_ERR_MODEL_FORMAT);
  EXPECT_NE(msg.find("model.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"input.channels\": expected a number, got a string"), std::string::npos) << msg;
  for (const auto& bad : {nlohmann::json{{"channels", 9223372036854775807LL}}, nlohmann::json{{"channels", 65}},
                          nlohmann::json{{"align", 0}}, nlohmann::json{{"min_side", -3}}}) {
    meta = good;
    meta["input"].update(bad);
    spit(d / "model.json", meta.dump());
    EXPECT_EQ(load(d, &msg), CELLCOUNT_ERR_MODEL_FORMAT) << bad.dump();  // channels 2^63-1 loaded (fuzz target model)
    EXPECT_NE(msg.find("model.json input"), std::string::npos) << msg;
  }
  meta = good;
  meta["input"]["normalization"]["p_low"] = nlohmann::json::array();
  spit(d / "model.json", meta.dump());
  EXPECT_EQ(load(d, &msg), CELLCOUNT_ERR_MODEL_FORMAT);
  EXPECT_NE(msg.find("\"input.normalization.p_low\": expected a number, got a list"), std::string::npos) << msg;
  meta = good;
  meta.erase("input");
  spit(d / "model.json", meta.dump());
  EXPECT_EQ(load(d, &msg), CELLCOUNT_ERR_MODEL_FORMAT);
  EXPECT_NE(msg.find("'input'"), std::string::npos) << msg;
  // Only what read_model needs: method, format_version and the weights' checksum.
  meta = {{"method", "selftest"}, {"format_version", 1}, {"weights_sha256", good["weights_sha256"]}};
  spit(d / "model.json", meta.dump());
  EXPECT_EQ(load(d, &msg), CELLCOUNT_ERR_MODEL_FORMAT);
  EXPECT_NE(msg.find("model.json"), std::string::npos) << msg;
}

// The shipped methods' architecture sections: a field of the wrong type is named (it came back as the JSON
// library's "type must be number, but is string", naming no field).
TEST(BadModelFolder, ArchitectureFieldOfTheWrongTypeIsNamed) {
  const fs::path src = CELLCOUNT_SOURCE_DIR;
  for (const char* name : {"dcl-vgg", "exemplar-cells"}) {
    if (!fs::exists(src / "models" / name / "model.json")) continue;
    const auto d = fs::temp_directory_path() / ("cellcount-arch-types-" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::copy(src / "models" / name, d);
    auto meta = nlohmann::json::parse(slurp(d / "model.json"));
    meta["architecture"]["width"] = "wide";
    spit(d / "model.json", meta.dump());
    std::string msg;
    EXPECT_EQ(load(d, &msg), CELLCOUNT_ERR_MODEL_FORMAT) << name;
    EXPECT_NE(msg.find("\"architecture.width\": expected a number, got a string"), std::string::npos) << name << ": " << msg;
    fs::remove_all(d);
  }
}

TEST(BadModelFolder, MissingTilingOrThresholdsAreRefusedAtLoadNotAtPredict) {
  const auto d = make_model("sections");
  const auto good = nlohmann::json::parse(slurp(d / "model.json"));
  for (const char* k : {"tiling", "thresholds"}) {
    auto meta = good;
    meta.erase(k);
    spit(d / "model.json", meta.dump());
    std::string msg;
    EXPECT_EQ(load(d, &msg), CELLCOUNT_ERR_MODEL_FORMAT) << k;
    EXPECT_NE(msg.find(k), std::string::npos) << msg;
    EXPECT_NE(msg.find("model.json"), std::string::npos) << msg;
  }
}

TEST(BadModelFolder, BrokenTilingSectionIsRefusedAtLoad) {
  const auto d = make_model("tiling");
  const auto good = nlohmann::json::parse(slurp(d / "model.json"));
  for (const auto& t : {nlohmann::json{{"tile_size", "big"}, {"overlap", 8}}, nlohmann::json{{"tile_size", 64}, {"overlap", 32}},
                        nlohmann::json{{"tile_size", 0}, {"overlap", 0}}, nlohmann::json("none"),
                        nlohmann::json{{"tile_size", 64}, {"overlap", 8}, {"mode", "whole"}}}) {
    auto meta = good;
    meta["tiling"] = t;
    spit(d / "model.json", meta.dump());
    std::string msg;
    EXPECT_EQ(load(d, &msg), CELLCOUNT_ERR_MODEL_FORMAT) << t;
    EXPECT_NE(msg.find("tiling."), std::string::npos) << msg;
  }
}

TEST(BadModelFolder, WeightsWithATruncatedTensorAreRefusedNamingIt) {
  // c1 with 4 filters instead of model.json's width 8; save_model recomputed the sha256.
  const auto d = make_model("truncated", 1, 4);
  std::string msg;
  EXPECT_EQ(load(d, &msg), CELLCOUNT_ERR_MODEL_FORMAT);
  EXPECT_NE(msg.find("c1.weight"), std::string::npos) << msg;
}

TEST(BadModelFolder, WeightsOfAnotherInputChannelCountAreRefusedAtLoad) {
  const auto d = make_model("in_channels", 3, 8);
  std::string msg;
  EXPECT_EQ(load(d, &msg), CELLCOUNT_ERR_MODEL_FORMAT);
  EXPECT_NE(msg.find("c1.weight"), std::string::npos) << msg;
}

TEST(BadModelFolder, LoadModuleRefusesAMissingTensor) {
  const auto d = fresh_dir("missing_tensor");
  struct Two : torch::nn::Module {
    Two() {
      register_module("a", torch::nn::Linear(2, 2));
      register_module("b", torch::nn::Linear(2, 2));
    }
  };
  struct One : torch::nn::Module {
    One() { register_module("a", torch::nn::Linear(2, 2)); }
  };
  One one;
  save_module(one, (d / "w.pt").string());
  Two two;
  EXPECT_EQ(status_of([&] { load_module(two, (d / "w.pt").string()); }), CELLCOUNT_ERR_MODEL_FORMAT);
}

// ---------------------------------------------------------------- tiling

TEST(Tiling, DefaultOverlapShrinksWithASmallTile) {
  // The model's tiling is 64 / 31: a tile of 33 with the model's overlap stepped 2 pixels (289 tiles on
  // 64 x 64). Now the overlap shrinks in proportion (31 * 33 / 64 = 15): step 18, 3 x 3 tiles.
  const auto d = make_model("small_tile");
  const auto img = blobs();
  auto p = cpu_params();
  p.tile_size = 33;
  const auto o = predict(d, view_of(img, 64, 64), p);
  EXPECT_EQ(o.status, CELLCOUNT_OK) << o.message;
  EXPECT_EQ(o.tiles, 9);
}

TEST(Tiling, ExplicitOverlapMustFitTheModelsTileWhenTileSizeIsZero) {
  const auto d = make_model("overlap_fit");
  const auto img = blobs();
  auto p = cpu_params();
  p.tile_overlap = 40;  // the model's tile is 64: 40 >= 64/2
  const auto o = predict(d, view_of(img, 64, 64), p);
  EXPECT_EQ(o.status, CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(o.message.find("tile_overlap 40"), std::string::npos) << o.message;
  p.tile_overlap = 31;
  EXPECT_EQ(predict(d, view_of(img, 64, 64), p).status, CELLCOUNT_OK);
}

TEST(Tiling, MoreTilesThanTheLimitAreRefusedBeforePlanning) {
  std::string msg;
  EXPECT_EQ(status_of([] { plan_tiles(20000, 20000, 32, 15); }, &msg), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(msg.find("limit"), std::string::npos) << msg;
  EXPECT_EQ(plan_tiles(4096, 4096, 32, 15).size(), size_t(241 * 241));  // just under the limit
}

// ---------------------------------------------------------------- limits

TEST(Limits, ThreadsAboveTheMaximumAreRefused) {
  EXPECT_EQ(cellcount_set_num_threads(2000), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(cellcount_last_error()).find("256"), std::string::npos) << cellcount_last_error();
  EXPECT_EQ(cellcount_set_num_threads(257), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cellcount_set_num_threads(2), CELLCOUNT_OK);
}

TEST(Limits, MoreExemplarBoxesThanTheMaximumAreRefused) {
  std::vector<Box> boxes(65, Box{1, 1, 9, 9});
  std::string msg;
  EXPECT_EQ(status_of([&] { check_exemplars(boxes.data(), boxes.size(), 64, 64, true); }, &msg),
            CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(msg.find("64"), std::string::npos) << msg;
  EXPECT_EQ(check_exemplars(boxes.data(), 64, 64, 64, true).size(), size_t(64));
}

TEST(Limits, ViewsOverThePixelLimitAreRefusedBeforeAllocating) {
  // 20000 x 20000 uint8 claimed over a buffer of 64 bytes: refused from the sizes, the buffer never read.
  std::vector<uint8_t> small(64, 0);
  cellcount_image_view v{};
  v.data = small.data();
  v.width = 20000;
  v.height = 20000;
  v.channels = 1;
  v.dtype = CELLCOUNT_DTYPE_U8;
  std::string msg;
  EXPECT_EQ(status_of([&] { view_to_tensor(v); }, &msg), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(msg.find("268435456"), std::string::npos) << msg;
}

TEST(Limits, RowStrideBeyondAnyBufferIsRefusedNotRead) {
  // Found by the fuzz target predict (corpus/predict/stride-overflow): a stride near INT64_MAX made the row
  // offset stride*y overflow and the copy read wild memory (a segfault) instead of refusing.
  std::vector<uint8_t> small(64, 0);
  cellcount_image_view v{};
  v.data = small.data();
  v.width = 4;
  v.height = 3;
  v.channels = 1;
  v.dtype = CELLCOUNT_DTYPE_U8;
  for (int64_t stride : {std::numeric_limits<int64_t>::max(), int64_t(1) << 48, int64_t(1) << 62}) {
    v.row_stride_bytes = stride;
    std::string msg;
    EXPECT_EQ(status_of([&] { view_to_tensor(v); }, &msg), CELLCOUNT_ERR_INVALID_ARGUMENT) << stride;
    EXPECT_NE(msg.find("row_stride_bytes"), std::string::npos) << msg;
  }
  v.height = 1;  // one row: only the first row is read, any stride is fine
  v.row_stride_bytes = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(status_of([&] { view_to_tensor(v); }), CELLCOUNT_OK);
}

TEST(Limits, ExtremeFloatPixelsAreRefusedNotCountedAsNaN) {
  const auto d = make_model("extreme_pixel");
  auto img = blobs();
  img[100] = 3.4e38f;
  const auto o = predict(d, view_of(img, 64, 64), cpu_params());
  EXPECT_EQ(o.status, CELLCOUNT_ERR_INVALID_ARGUMENT) << "count " << o.count;
  EXPECT_NE(o.message.find("1e+09"), std::string::npos) << o.message;
  img[100] = 1e6f;  // within the bound: counted, finite
  const auto ok = predict(d, view_of(img, 64, 64), cpu_params());
  EXPECT_EQ(ok.status, CELLCOUNT_OK) << ok.message;
  EXPECT_TRUE(std::isfinite(ok.count));
}

// One hot (or dead) pixel in a real image was counted as thousands of cells with OK (issue 20: 1e6 in a
// 256 x 256 VGG image made dcl-vgg count 13,928 instead of 140). A sensor defect is cleared before counting.
TEST(Limits, OneHotOrDeadPixelDoesNotChangeTheCount) {
  const fs::path src = CELLCOUNT_SOURCE_DIR;
  if (io::backends().empty() || !fs::exists(src / "models/dcl-vgg/model.json")) GTEST_SKIP() << "no image I/O or model";
  const auto im = io::read_image((src / "samples/dcl-vgg/cells_00000.png").string());
  std::vector<float> img(size_t(im.width * im.height * im.channels));
  for (int64_t y = 0; y < im.height; ++y)
    for (int64_t x = 0; x < im.width; ++x)
      for (int64_t k = 0; k < im.channels; ++k) img[size_t((y * im.width + x) * im.channels + k)] = im.at(y, x, k);
  const auto view = [&] { return view_of(img, im.width, im.height, im.channels); };
  const auto clean = predict(src / "models/dcl-vgg", view(), cpu_params());
  ASSERT_EQ(clean.status, CELLCOUNT_OK) << clean.message;
  const size_t at = size_t((100 * im.width + 100) * im.channels);
  for (float v : {1e6f, 5100.f, -1e6f}) {
    std::vector<float> keep(img.begin() + at, img.begin() + at + im.channels);
    for (int64_t k = 0; k < im.channels; ++k) img[at + k] = v;
    const auto o = predict(src / "models/dcl-vgg", view(), cpu_params());
    ASSERT_EQ(o.status, CELLCOUNT_OK) << o.message;
    EXPECT_NEAR(o.count, clean.count, 0.01 * clean.count) << "one pixel of " << v;
    std::copy(keep.begin(), keep.end(), img.begin() + at);
  }
}

// ---------------------------------------------------------------- region

// Every method the tests can run: no point outside the region, with the default and a zero threshold.
TEST(Region, NoPointOutsideTheRegionForEveryMethod) {
  struct Case {
    fs::path model;
    std::vector<float> img;
    int64_t w, h, c;
    std::vector<cellcount_box> boxes;
  };
  std::vector<Case> cases;
  cases.push_back({make_model("region"), blobs(), 64, 64, 1, {}});
  const fs::path src = CELLCOUNT_SOURCE_DIR;
  auto crop = [](const Image& im, int64_t w, int64_t h) {
    std::vector<float> out(size_t(w * h * im.channels));
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        for (int64_t k = 0; k < im.channels; ++k) out[size_t((y * w + x) * im.channels + k)] = im.at(y, x, k);
    return out;
  };
  if (io::backends().size() > 0 && fs::exists(src / "models/dcl-vgg/model.json")) {
    const auto im = io::read_image((src / "samples/dcl-vgg/cells_00000.png").string());
    cases.push_back({src / "models/dcl-vgg", crop(im, 96, 96), 96, 96, im.channels, {}});
  }
  if (io::backends().size() > 0 && fs::exists(src / "models/exemplar-cells/model.json")) {
    const auto im = io::read_image((src / "samples/exemplar-cells/images/test_0000.png").string());
    // boxes.csv's first box of this image: (102.4, 31.2) - (128.4, 57.2)
    cases.push_back({src / "models/exemplar-cells", crop(im, 256, 256), 256, 256, im.channels,
                     {cellcount_box{102.386f, 31.1874f, 128.386f, 57.1874f}}});
  }
  for (const auto& c : cases) {
    std::vector<uint8_t> mask(size_t(c.w * c.h), 0);
    for (int64_t y = 0; y < c.h; ++y)
      for (int64_t x = 0; x < c.w / 2; ++x) mask[size_t(y * c.w + x)] = 1;  // left half counts
    cellcount_image_view mv{};
    mv.data = mask.data();
    mv.width = c.w;
    mv.height = c.h;
    mv.channels = 1;
    mv.dtype = CELLCOUNT_DTYPE_U8;
    for (float thr : {NAN, 0.0f}) {
      auto p = cpu_params();
      p.peak_threshold = thr;
      const auto o = predict(c.model, view_of(c.img, c.w, c.h, c.c), p, c.boxes, &mv);
      ASSERT_EQ(o.status, CELLCOUNT_OK) << c.model << ": " << o.message;
      if (thr == 0.0f) EXPECT_FALSE(o.xy.empty()) << c.model;  // the check below is not vacuous
      for (size_t i = 0; i < o.xy.size(); i += 2)
        EXPECT_LT(std::llround(o.xy[i]), c.w / 2) << c.model << " threshold " << thr << ": point (" << o.xy[i]
                                                   << ", " << o.xy[i + 1] << ") outside the region";
    }
  }
  EXPECT_EQ(cases.size(), size_t(3)) << "the shipped models were not found";
}

// ---------------------------------------------------------------- datasets

TEST(BadDataset, ClassIdsBeyondTheLimitAreRefusedNamingTheRow) {
  const auto d = fresh_dir("class_ids");
  for (const char* id : {"2000000000", "99999999999", "65536"}) {
    spit(d / "points.csv", std::string("image,x,y,class\na.png,1,1,0\na.png,2,2,") + id + "\n");
    std::string msg;
    EXPECT_EQ(status_of([&] { load_dataset(d.string()); }, &msg), CELLCOUNT_ERR_DATASET) << id;
    EXPECT_NE(msg.find("points.csv:3"), std::string::npos) << msg;
  }
  spit(d / "points.csv", "image,x,y,class\na.png,1,1,0\na.png,2,2,65535\n");
  EXPECT_EQ(load_dataset(d.string()).class_names.size(), size_t(65536));
}

TEST(BadDataset, ImagesOutsideTheFolderAreRefusedNamingTheRow) {
  const auto d = fresh_dir("outside");
  for (const char* name : {"../outside/x.png", "/etc/x.png", "a/../../x.png", "."}) {
    spit(d / "counts.csv", std::string("image,count\nok.png,3\n") + name + ",4\n");
    std::string msg;
    EXPECT_EQ(status_of([&] { load_dataset(d.string()); }, &msg), CELLCOUNT_ERR_DATASET) << name;
    EXPECT_NE(msg.find("counts.csv:3"), std::string::npos) << msg;
  }
  spit(d / "counts.csv", "image,count\nok.png,3\nsub/../b.png,4\n");  // stays inside
  EXPECT_EQ(load_dataset(d.string()).samples.size(), size_t(2));
}

TEST(BadDataset, FifoCsvIsRefusedWithoutBlocking) {
  const auto d = fresh_dir("fifo_csv");
  ASSERT_EQ(::mkfifo((d / "points.csv").c_str(), 0600), 0);
  std::string msg;
  EXPECT_EQ(status_of([&] { load_dataset(d.string()); }, &msg), CELLCOUNT_ERR_IO);
  EXPECT_NE(msg.find("not a regular file"), std::string::npos) << msg;
}

TEST(BadDataset, EvaluateRefusesPointsOutsideTheImage) {
  if (io::backends().empty()) GTEST_SKIP() << "no image back end";
  const auto model = make_model("eval_points");
  const auto d = fresh_dir("eval_points_data");
  Image im;
  im.width = im.height = 64;
  im.channels = 1;
  im.data = blobs();
  for (auto& v : im.data) v = std::min(v, 255.0f);
  io::write_image((d / "a.png").string(), im, 8);
  const nlohmann::json req{{"model", model.string()}, {"dataset", d.string()}, {"split", "all"}, {"device", "cpu"}};
  spit(d / "points.csv", "image,x,y\na.png,12,12\na.png,63.5,-0.5\n");  // inside, within the tolerance
  EXPECT_EQ(status_of([&] { evaluate_counts(req, Progress()); }), CELLCOUNT_OK);
  spit(d / "points.csv", "image,x,y\na.png,12,12\na.png,-500,1000000\n");
  std::string msg;
  EXPECT_EQ(status_of([&] { evaluate_counts(req, Progress()); }, &msg), CELLCOUNT_ERR_DATASET);
  EXPECT_NE(msg.find("a.png"), std::string::npos) << msg;
  EXPECT_NE(msg.find("-500"), std::string::npos) << msg;
}

// ---------------------------------------------------------------- devices

TEST(BadDevice, HugeCudaIndexIsADeviceError) {
  std::string msg;
  EXPECT_EQ(status_of([&] { resolve_device("cuda:99999999999999999999"); }, &msg), CELLCOUNT_ERR_DEVICE);
  EXPECT_NE(msg.find("cuda:N"), std::string::npos) << msg;
}

TEST(BadDevice, UnknownDeviceIsEchoedCut) {
  std::string msg;
  EXPECT_EQ(status_of([&] { resolve_device(std::string(20000, 'x')); }, &msg), CELLCOUNT_ERR_DEVICE);
  EXPECT_LT(msg.size(), 300u) << msg.size();
  EXPECT_NE(msg.find("xxxx..."), std::string::npos) << msg;
}

TEST(BadDevice, Fp16OnCpuIsUnsupportedAsTheHeaderSays) {
  const auto d = make_model("fp16");
  const auto img = blobs();
  auto p = cpu_params();
  p.precision = "fp16";
  EXPECT_EQ(predict(d, view_of(img, 64, 64), p).status, CELLCOUNT_ERR_UNSUPPORTED);
}
