// Image views -> tensors, normalisation, and tiling against whole-image references.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <numeric>
#include <set>
#include <thread>
#include <mutex>
#include <atomic>
#include <chrono>

#include "core/density_map.h"
#include "core/error.h"
#include "test_util.h"
#include "core/image_tensor.h"
#include "core/method.h"
#include "core/tiling.h"

using namespace cellcount;

using cellcount::test_util::status_of;

class ViewDtype : public ::testing::TestWithParam<int32_t> {};

TEST_P(ViewDtype, CopiesInterleavedPixelsWithStride) {
  const int32_t dt = GetParam();
  const int64_t W = 5, H = 3, C = 2, pad = 7;
  const int64_t es = dt == CELLCOUNT_DTYPE_U8 ? 1 : dt == CELLCOUNT_DTYPE_U16 ? 2 : 4;
  const int64_t stride = W * C * es + pad;
  std::vector<uint8_t> buf(size_t(stride * H), 0xEE);
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x)
      for (int64_t c = 0; c < C; ++c) {
        const int v = int(y * 100 + x * 10 + c);
        uint8_t* p = buf.data() + y * stride + (x * C + c) * es;
        if (dt == CELLCOUNT_DTYPE_U8) *p = uint8_t(v);
        if (dt == CELLCOUNT_DTYPE_U16) { uint16_t u = uint16_t(v); std::memcpy(p, &u, 2); }
        if (dt == CELLCOUNT_DTYPE_F32) { float f = float(v); std::memcpy(p, &f, 4); }
      }
  cellcount_image_view v{buf.data(), W, H, C, stride, dt, 0};
  auto t = view_to_tensor(v);
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{C, H, W}));
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x)
      for (int64_t c = 0; c < C; ++c) EXPECT_EQ(t[c][y][x].item<float>(), float(y * 100 + x * 10 + c));
}
INSTANTIATE_TEST_SUITE_P(AllDtypes, ViewDtype,
                         ::testing::Values(CELLCOUNT_DTYPE_U8, CELLCOUNT_DTYPE_U16, CELLCOUNT_DTYPE_F32));

TEST(ImageTensor, RejectsBadViews) {
  float px[4] = {1, 2, 3, NAN};
  cellcount_image_view v{px, 2, 2, 1, 0, CELLCOUNT_DTYPE_F32, 0};
  EXPECT_EQ(status_of([&] { view_to_tensor(v); }), CELLCOUNT_ERR_INVALID_ARGUMENT);
  px[3] = INFINITY;
  EXPECT_EQ(status_of([&] { view_to_tensor(v); }), CELLCOUNT_ERR_INVALID_ARGUMENT);
  px[3] = 4;
  EXPECT_EQ(status_of([&] { view_to_tensor(v); }), CELLCOUNT_OK);
  v.dtype = 9;
  EXPECT_EQ(status_of([&] { view_to_tensor(v); }), CELLCOUNT_ERR_INVALID_ARGUMENT);
  v.dtype = CELLCOUNT_DTYPE_F32;
  v.row_stride_bytes = 4;
  EXPECT_EQ(status_of([&] { view_to_tensor(v); }), CELLCOUNT_ERR_INVALID_ARGUMENT);
  v.row_stride_bytes = 0;
  v.height = 0;
  EXPECT_EQ(status_of([&] { view_to_tensor(v); }), CELLCOUNT_ERR_INVALID_ARGUMENT);
}

TEST(ImageTensor, PercentileNormalisationMatchesSortedReference) {
  auto x = torch::arange(0, 1001, torch::kFloat32).reshape({1, 7, 143});  // values 0..1000 (1001 px)
  x = x.slice(2, 0, 143);
  Normalization n;  // 1 .. 99.8 percentile
  auto y = normalize(x, n);
  // Reference: numpy-style linear interpolation on the sorted values 0..1000.
  const double lo = 0.01 * 1000, hi = 0.998 * 1000;
  EXPECT_NEAR(y.min().item<double>(), (0 - lo) / (hi - lo), 1e-5);
  EXPECT_NEAR(y.max().item<double>(), (1000 - lo) / (hi - lo), 1e-5);
  // A constant image gives zeros, not NaN.
  auto c = normalize(torch::full({1, 4, 4}, 3.0), n);
  EXPECT_EQ(c.abs().sum().item<double>(), 0.0);
  Normalization f;
  f.mode = "fixed";
  f.scale = 0.5;
  f.offset = 2;
  EXPECT_NEAR(normalize(torch::full({1, 1, 1}, 6.0), f).item<double>(), 2.0, 1e-9);
}

// Issue 26: the blocks of one large image, normalised each by its own percentiles, counted -15 % and +11 % against
// one call on the whole (a synthetic image whose brightness varies). A given range replaces the percentiles.
TEST(ImageTensor, NormalizationRangeReplacesTheImagesPercentiles) {
  Normalization n;
  auto whole = torch::linspace(0, 1000, 64 * 64).reshape({1, 64, 64});
  const auto range = normalization_percentiles(whole, n);
  auto block = whole.slice(1, 0, 16);  // the dark top rows: their own percentiles differ
  auto expected = normalize(whole, n).slice(1, 0, 16);
  EXPECT_FALSE(torch::allclose(normalize(block, n), expected, 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(normalize(block, n, range), expected, 1e-5, 1e-6));
  // The rule the header documents: every value up to 2^20, interpolated between order statistics.
  EXPECT_NEAR(range.first, 0.01 * 1000, 1e-3);
  EXPECT_NEAR(range.second, 0.998 * 1000, 1e-3);
  // Bad ranges and fixed normalisations are refused, naming the option.
  EXPECT_EQ(status_of([&] { normalize(block, n, std::make_pair(5.0, 5.0)); }), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(status_of([&] { normalize(block, n, std::make_pair(NAN, 5.0)); }), CELLCOUNT_ERR_INVALID_ARGUMENT);
  Normalization f;
  f.mode = "fixed";
  EXPECT_EQ(status_of([&] { normalize(block, f, std::make_pair(0.0, 1.0)); }), CELLCOUNT_ERR_INVALID_ARGUMENT);
  // Subsampled above 2^20 values: every ceil(n / 2^20)-th value in memory order.
  auto big = torch::arange(0, 2 * (1 << 20) + 6, torch::kFloat32).reshape({1, 2, -1});
  const auto r = normalization_percentiles(big, n);
  auto sample = big.reshape({-1}).slice(0, 0, big.numel(), 3);
  const double last = double(sample.numel() - 1), pos = 0.01 * last;
  EXPECT_NEAR(r.first, sample[int64_t(pos)].item<double>() * (1 - (pos - std::floor(pos))) +
                           sample[int64_t(pos) + 1].item<double>() * (pos - std::floor(pos)), 1e-2);
}

TEST(ImageTensor, DespikeClearsIsolatedDefectsAndKeepsCells) {
  Normalization n;
  auto img = torch::rand({1, 32, 32}) * 10 + 100;  // background 100..110
  img[0].slice(0, 20, 23).slice(1, 20, 23) = 5000;  // a bright 3 x 3 spot: a cell, however bright
  auto spiked = img.clone();
  spiked[0][5][5] = 1e6;   // hot
  spiked[0][0][31] = 1e5;  // hot, at the border
  spiked[0][10][25] = -1e6;  // dead
  auto out = despike(spiked, n);
  EXPECT_LE(out[0][5][5].item<float>(), 110.f);
  EXPECT_LE(out[0][0][31].item<float>(), 110.f);
  EXPECT_GE(out[0][10][25].item<float>(), 100.f);
  EXPECT_TRUE(out.slice(1, 20, 23).slice(2, 20, 23).eq(5000).all().item<bool>()) << "a cell is not a defect";
  EXPECT_TRUE(despike(img, n).equal(img)) << "an image without defects is unchanged";
  auto two = img.clone();
  two[0][5][5] = 1e6;
  two[0][5][6] = 1e6;  // not isolated: left as it is
  EXPECT_EQ(despike(two, n)[0][5][6].item<float>(), 1e6f);
}

// The whole-image form of despike (the rule of image_tensor.cpp before it went in bands of 256 rows, issue 25).
torch::Tensor despike_whole(torch::Tensor x, double lo, double hi) {
  for (double sign : {1.0, -1.0}) {
    const double ref = sign > 0 ? lo : hi;
    auto a = (x - ref) * sign;
    auto padded = torch::nn::functional::pad(a.unsqueeze(0), torch::nn::functional::PadFuncOptions({1, 1, 1, 1}))[0];
    torch::Tensor nb;
    for (int64_t dy = 0; dy < 3; ++dy)
      for (int64_t dx = 0; dx < 3; ++dx) {
        if (dy == 1 && dx == 1) continue;
        auto t = padded.slice(1, dy, dy + x.size(1)).slice(2, dx, dx + x.size(2));
        nb = nb.defined() ? torch::maximum(nb, t) : t;
      }
    nb = nb.clamp_min(0);
    x = torch::where((a > 2.0 * (hi - lo)) & (a > 8.0 * nb), nb * sign + ref, x);
  }
  return x;
}

TEST(ImageTensor, DespikeInBandsEqualsTheWholeImageRule) {
  // Defects on and beside the band edges (rows 255/256, 511/512), at the image's edges, and a pair split by an
  // edge (not isolated: kept), in a 2-channel image of 700 rows.
  torch::manual_seed(3);
  auto img = torch::rand({2, 700, 40}) * 10 + 100;
  const std::vector<std::array<int64_t, 3>> hot = {{0, 255, 5}, {0, 256, 9}, {1, 511, 0}, {0, 512, 39},
                                                   {1, 0, 20}, {0, 699, 7}, {1, 300, 30}};
  for (const auto& [c, y, x] : hot) img[c][y][x] = 1e6;
  img[0][255][20] = 1e6;
  img[0][256][20] = 1e6;  // a pair across the band edge
  img[1][400][10] = -1e6;
  img[0][256][33] = -1e6;
  Normalization n;
  const auto out = despike(img, n);
  const auto [lo, hi] = normalization_percentiles(img, n);
  EXPECT_TRUE(out.equal(despike_whole(img, lo, hi)));
  for (const auto& [c, y, x] : hot) EXPECT_LE(out[c][y][x].item<float>(), 110.f) << c << " " << y << " " << x;
  EXPECT_EQ(out[0][255][20].item<float>(), 1e6f);
  EXPECT_GE(out[1][400][10].item<float>(), 100.f);
}

TEST(ImageTensor, InputSpecChecksChannels) {
  InputSpec s;
  s.channels = 1;
  auto rgb = torch::rand({3, 16, 16});
  EXPECT_EQ(status_of([&] { s.prepare(rgb); }), CELLCOUNT_ERR_INVALID_ARGUMENT);
  s.rgb_rule = "blue";
  auto y = s.prepare(rgb);
  EXPECT_EQ(y.size(0), 1);
  EXPECT_TRUE(torch::allclose(y, normalize(rgb.slice(0, 2, 3), s.normalization)));
  EXPECT_EQ(status_of([&] { s.prepare(torch::rand({1, 1, 1})); }), CELLCOUNT_ERR_INVALID_ARGUMENT);
}

TEST(Tiling, CoresPartitionTheImage) {
  for (int64_t H : {1, 31, 64, 100, 257})
    for (int64_t W : {1, 40, 128, 300})
      for (auto [tile, overlap] : std::vector<std::pair<int64_t, int64_t>>{{32, 0}, {32, 8}, {64, 16}, {50, 20}}) {
        auto cover = torch::zeros({H, W}, torch::kInt32);
        for (const auto& t : plan_tiles(H, W, tile, overlap)) {
          ASSERT_LE(t.y1 - t.y0, tile);
          ASSERT_LE(t.x1 - t.x0, tile);
          ASSERT_TRUE(t.y0 <= t.cy0 && t.cy1 <= t.y1 && t.x0 <= t.cx0 && t.cx1 <= t.x1);
          cover.slice(0, t.cy0, t.cy1).slice(1, t.cx0, t.cx1) += 1;
        }
        ASSERT_TRUE(cover.eq(1).all().item<bool>()) << H << "x" << W << " tile " << tile << " overlap " << overlap;
      }
}

TEST(Tiling, ConvolutionStitchedEqualsWholeImage) {
  // A 5x5 network-like operator (receptive radius 2, through two 3x3 convs): with overlap >= 2*radius,
  // tiles stitched from their cores equal the whole-image result away from the image border effects.
  torch::manual_seed(0);
  torch::nn::Conv2d c1(torch::nn::Conv2dOptions(1, 4, 3).padding(1)), c2(torch::nn::Conv2dOptions(4, 1, 3).padding(1));
  auto fn = [&](const torch::Tensor& x) { return c2(torch::relu(c1(x))); };
  torch::NoGradGuard ng;
  auto img = torch::rand({1, 150, 170});
  auto whole = fn(img.unsqueeze(0))[0];
  auto tiled = run_tiled(img, 48, 16, 1, fn, Progress());
  EXPECT_LT((whole - tiled).abs().max().item<float>(), 1e-5);
}

// Batched tiles (issue 25): fn gets up to `batch` tiles at once, and the stitched result is what one tile at a time
// gives, for a tile count that is not a multiple of the batch (7 x 8 = 56 tiles in batches of 5) and for one tile.
TEST(Tiling, BatchedTilesStitchLikeOneAtATime) {
  torch::manual_seed(0);
  torch::nn::Conv2d c1(torch::nn::Conv2dOptions(1, 4, 3).padding(1)), c2(torch::nn::Conv2dOptions(4, 2, 3).padding(1));
  torch::NoGradGuard ng;
  std::vector<int64_t> sizes;
  // Each tile's own statistic too (its mean), so that a tile mixed up with another would show.
  auto fn = [&](const torch::Tensor& x) {
    sizes.push_back(x.size(0));
    return c2(torch::relu(c1(x))) + x.mean({1, 2, 3}, true);
  };
  auto img = torch::rand({1, 150, 170});
  const auto one = run_tiled(img, 32, 12, 16, fn, Progress());
  EXPECT_EQ(*std::max_element(sizes.begin(), sizes.end()), 1);
  sizes.clear();
  const auto batched = run_tiled(img, 32, 12, 16, fn, Progress(), 5);
  EXPECT_EQ(sizes.front(), 5);
  EXPECT_EQ(std::accumulate(sizes.begin(), sizes.end(), int64_t(0)), int64_t(plan_tiles(150, 170, 32, 12).size()));
  EXPECT_LT((one - batched).abs().max().item<float>(), 1e-5);
  sizes.clear();
  const auto small = torch::rand({1, 20, 30});
  EXPECT_LT((run_tiled(small, 32, 12, 16, fn, Progress(), 8) - run_tiled(small, 32, 12, 16, fn, Progress())).abs().max().item<float>(), 1e-6);
}

TEST(Tiling, ParallelWorkersStitchLikeOneWorker) {
  // Parallel tiles (issue 25): the same result with 2 or 3 workers as with one; every worker runs on its share of the
  // intra-op threads, in the caller's inference mode; the caller's thread count is back afterwards.
  if (tile_workers(torch::kCPU) == 1 && at::get_num_threads() > 1) GTEST_SKIP() << "no per-thread OpenMP counts";
  torch::manual_seed(0);
  torch::nn::Conv2d c1(torch::nn::Conv2dOptions(1, 4, 3).padding(1)), c2(torch::nn::Conv2dOptions(4, 2, 3).padding(1));
  c10::InferenceMode inference;
  std::mutex m;
  std::set<std::thread::id> threads;
  std::set<int> intra_op;
  bool all_inference = true;
  auto fn = [&](const torch::Tensor& x, const std::vector<TileRect>&) {
    {
      std::lock_guard<std::mutex> lock(m);
      threads.insert(std::this_thread::get_id());
      intra_op.insert(at::get_num_threads());
      all_inference = all_inference && c10::InferenceMode::is_enabled() && !torch::GradMode::is_enabled();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // so that every worker gets batches
    return c2(torch::relu(c1(x))) + x.mean({1, 2, 3}, true);
  };
  auto img = torch::rand({1, 150, 170});
  const int before = at::get_num_threads();
  const auto one = run_tiled_at(img, 32, 12, 16, fn, Progress(), 2);
  for (int workers : {2, 3}) {
    threads.clear();
    intra_op.clear();
    const auto parallel = run_tiled_at(img, 32, 12, 16, fn, Progress(), 2, torch::Tensor(), workers);
    EXPECT_TRUE(torch::equal(one, parallel)) << workers << " workers";
    EXPECT_EQ(int(threads.size()), workers);
    EXPECT_EQ(intra_op, std::set<int>{threads_per_worker(workers)});
    EXPECT_TRUE(all_inference);
    EXPECT_EQ(at::get_num_threads(), before);
  }
  // With more intra-op threads than workers, each worker gets its share.
  at::set_num_threads(4);
  intra_op.clear();
  EXPECT_TRUE(torch::equal(one, run_tiled_at(img, 32, 12, 16, fn, Progress(), 2, torch::Tensor(), 2)));
  EXPECT_EQ(intra_op, std::set<int>{2});
  EXPECT_EQ(at::get_num_threads(), 4);
  at::set_num_threads(before);
  // More workers than batches: as many as there are batches.
  threads.clear();
  run_tiled_at(torch::rand({1, 20, 30}), 32, 12, 16, fn, Progress(), 1, torch::Tensor(), 4);
  EXPECT_EQ(threads.size(), 1u);
}

TEST(Tiling, ParallelWorkersReportFromTheCallerAndStopOnErrorOrCancel) {
  auto img = torch::rand({1, 150, 170});
  const auto caller = std::this_thread::get_id();
  bool progress_elsewhere = false;
  Progress p([&](float, const std::string&) {
    progress_elsewhere = progress_elsewhere || std::this_thread::get_id() != caller;
    return false;
  });
  std::atomic<int> calls{0};
  auto copy = [&](const torch::Tensor& x, const std::vector<TileRect>&) {
    ++calls;
    return x.clone();
  };
  EXPECT_TRUE(torch::equal(run_tiled_at(img, 32, 12, 16, copy, p, 1, torch::Tensor(), 2), img));
  EXPECT_FALSE(progress_elsewhere);
  // A worker's error reaches the caller once every worker has stopped; no tile after it starts.
  calls = 0;
  auto failing = [&](const torch::Tensor& x, const std::vector<TileRect>&) {
    if (++calls == 3) throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "tile 3 failed");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return x.clone();
  };
  EXPECT_EQ(status_of([&] { run_tiled_at(img, 32, 12, 16, failing, Progress(), 1, torch::Tensor(), 2); }),
            CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_LE(calls.load(), 4);
  // A cancel from the progress callback stops them too.
  int reports = 0;
  Progress cancel([&](float, const std::string&) { return ++reports >= 2; });
  calls = 0;
  EXPECT_EQ(status_of([&] { run_tiled_at(img, 32, 12, 16, copy, cancel, 1, torch::Tensor(), 2); }), CELLCOUNT_CANCELLED);
  EXPECT_LT(calls.load(), int(plan_tiles(150, 170, 32, 12).size()));
}

TEST(Tiling, TilesAreToldTheirWindows) {
  // run_tiled_at gives fn each batch's windows in order: a map of every pixel's own row and column, made from the
  // windows alone, stitches into the image's coordinates.
  auto img = torch::zeros({1, 150, 170});
  const auto plan = plan_tiles(150, 170, 48, 16);
  size_t seen = 0;
  auto out = run_tiled_at(
      img, 48, 16, 16,
      [&](const torch::Tensor& t, const std::vector<TileRect>& rects) {
        EXPECT_EQ(int64_t(rects.size()), t.size(0));
        auto y = torch::zeros({t.size(0), 2, t.size(2), t.size(3)});
        for (size_t i = 0; i < rects.size(); ++i) {
          const auto& r = rects[i];
          EXPECT_EQ(r.y0, plan[seen + i].y0);
          EXPECT_EQ(r.x0, plan[seen + i].x0);
          y[int64_t(i)][0] = (torch::arange(t.size(2)).unsqueeze(1) + r.y0).expand({t.size(2), t.size(3)});
          y[int64_t(i)][1] = (torch::arange(t.size(3)).unsqueeze(0) + r.x0).expand({t.size(2), t.size(3)});
        }
        seen += rects.size();
        return y;
      },
      Progress(), 3);
  EXPECT_EQ(seen, plan.size());
  EXPECT_TRUE(torch::equal(out[0], torch::arange(150).unsqueeze(1).expand({150, 170}).to(torch::kFloat32)));
  EXPECT_TRUE(torch::equal(out[1], torch::arange(170).unsqueeze(0).expand({150, 170}).to(torch::kFloat32)));
}

TEST(Tiling, DensityOfLargeImageEqualsSumOfParts) {
  // Stitched identity over a density map: the total equals the number of points exactly (cores partition).
  std::vector<Point> pts;
  for (int i = 0; i < 200; ++i) pts.push_back(Point{float((i * 37) % 500), float((i * 91) % 420)});
  auto d = gaussian_density(pts, 420, 500, 3.0);
  auto t = torch::from_blob(d.data(), {1, 420, 500}, torch::kFloat32).clone();
  auto s = run_tiled(t, 96, 24, 16, [](const torch::Tensor& x) { return x.clone(); }, Progress());
  EXPECT_NEAR(s.sum().item<double>(), 200.0, 1e-2);
}

TEST(Tiling, ProgressCancels) {
  auto img = torch::rand({1, 100, 100});
  int calls = 0;
  Progress p([&](float, const std::string&) { return ++calls >= 2; });
  EXPECT_EQ(status_of([&] { run_tiled(img, 32, 8, 1, [](const torch::Tensor& x) { return x; }, p); }),
            CELLCOUNT_CANCELLED);
  EXPECT_EQ(calls, 2);
}

TEST(Tiling, PadToMultipleHandlesTinyInputs) {
  auto x = torch::rand({1, 1, 3, 1});
  auto y = pad_to_multiple(x, 16);
  EXPECT_EQ(y.size(2), 16);
  EXPECT_EQ(y.size(3), 16);
}

// Issue 25: the model's tile grown just enough to save a row of tiles on the longer side, within the growth.
TEST(Tiling, GrownTileSavesARowOfTilesWithinTheGrowth) {
  EXPECT_EQ(plan_tiles(1024, 1024, 512, 96).size(), 9u);
  EXPECT_EQ(grown_tile(1024, 1024, 512, 96, 1.25, 16), 560);
  EXPECT_EQ(plan_tiles(1024, 1024, 560, 96).size(), 4u);
  EXPECT_EQ(grown_tile(1024, 700, 512, 96, 1.25, 16), 560);  // the longer side decides
  EXPECT_EQ(grown_tile(2048, 2048, 512, 96, 1.25, 16), 592);  // 5 -> 4 per axis
  EXPECT_EQ(plan_tiles(2048, 2048, 592, 96).size(), 16u);
  EXPECT_EQ(grown_tile(600, 600, 512, 96, 1.25, 16), 608);    // one tile (the image is the tile)
  EXPECT_EQ(plan_tiles(600, 600, 608, 96).size(), 1u);
  EXPECT_EQ(grown_tile(700, 700, 512, 96, 1.25, 16), 512);    // one tile would be 704: beyond the growth
  EXPECT_EQ(grown_tile(400, 300, 512, 96, 1.25, 16), 512);    // already one tile
  EXPECT_EQ(grown_tile(1024, 1024, 512, 96, 1.0, 16), 512);   // no growth allowed
  EXPECT_EQ(status_of([] { grown_tile(1024, 1024, 96, 96, 1.25, 16); }), CELLCOUNT_ERR_INVALID_ARGUMENT);
}
