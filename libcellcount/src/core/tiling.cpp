#include "core/tiling.h"

#include <ATen/ThreadLocalState.h>
#include <torch/csrc/jit/frontend/tracer.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/limits.h"

namespace cellcount {

namespace {
struct Span {
  int64_t s0, s1, c0, c1;
};
// Windows along one axis, then cores split at the middle of each overlap.
std::vector<Span> plan_axis(int64_t n, int64_t tile, int64_t overlap) {
  std::vector<Span> spans;
  if (n <= tile) {
    spans.push_back({0, n, 0, n});
    return spans;
  }
  const int64_t step = tile - overlap;
  std::vector<int64_t> starts;
  for (int64_t s = 0;; s += step) {
    if (s + tile >= n) {
      starts.push_back(n - tile);
      break;
    }
    starts.push_back(s);
  }
  for (size_t i = 0; i < starts.size(); ++i) spans.push_back({starts[i], starts[i] + tile, 0, 0});
  for (size_t i = 0; i < spans.size(); ++i) {
    spans[i].c0 = i == 0 ? 0 : spans[i - 1].c1;
    spans[i].c1 = i + 1 == spans.size() ? n : (spans[i + 1].s0 + spans[i].s1) / 2;
  }
  return spans;
}

int64_t tiles_along(int64_t n, int64_t tile, int64_t overlap) {
  return n <= tile ? int64_t(1) : (n - tile + (tile - overlap) - 1) / (tile - overlap) + 1;
}
}  // namespace

int64_t grown_tile(int64_t height, int64_t width, int64_t tile, int64_t overlap, double max_growth, int64_t align) {
  CC_CHECK(tile >= 1 && overlap >= 0 && overlap < tile && align >= 1 && max_growth >= 1, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "grown_tile: bad tile, overlap, align or growth");
  const int64_t side = std::max(height, width), n = tiles_along(side, tile, overlap);
  if (n <= 1) return tile;
  // n - 1 tiles of t cover the side when (n - 1) t - (n - 2) overlap >= side.
  const int64_t need = (side + (n - 2) * overlap + (n - 2)) / (n - 1);
  const int64_t t = (need + align - 1) / align * align;
  return double(t) <= max_growth * double(tile) ? t : tile;
}

std::vector<TileRect> plan_tiles(int64_t height, int64_t width, int64_t tile, int64_t overlap) {
  CC_CHECK(height >= 1 && width >= 1, CELLCOUNT_ERR_INVALID_ARGUMENT, "plan_tiles: empty image");
  CC_CHECK(tile >= 1 && overlap >= 0 && overlap < tile, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "tiling: expected tile >= 1 and 0 <= overlap < tile, got tile " + std::to_string(tile) + ", overlap " +
               std::to_string(overlap));
  // Counted before anything is planned: a 3000 x 3000 image in tiles of 33 stepping one pixel made 8.8
  // million tiles (1.4 GB to plan, hours to run).
  const int64_t ny = tiles_along(height, tile, overlap), nx = tiles_along(width, tile, overlap);
  CC_CHECK(ny <= kMaxTiles / nx, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "tiling: a " + std::to_string(width) + " x " + std::to_string(height) + " image in tiles of " +
               std::to_string(tile) + " with overlap " + std::to_string(overlap) + " makes " + std::to_string(nx) +
               " x " + std::to_string(ny) + " tiles; the limit is " + std::to_string(kMaxTiles) +
               " (use a larger tile_size)");
  const auto ys = plan_axis(height, tile, overlap), xs = plan_axis(width, tile, overlap);
  std::vector<TileRect> tiles;
  for (const auto& y : ys)
    for (const auto& x : xs) tiles.push_back({y.s0, x.s0, y.s1, x.s1, y.c0, x.c0, y.c1, x.c1});
  return tiles;
}

torch::Tensor pad_to_multiple(const torch::Tensor& x, int64_t align) {
  if (align <= 1) return x;
  const int64_t h = x.size(-2), w = x.size(-1);
  const int64_t ph = (align - h % align) % align, pw = (align - w % align) % align;
  if (ph == 0 && pw == 0) return x;
  namespace F = torch::nn::functional;
  const bool can_reflect = ph < h && pw < w;
  auto opts = F::PadFuncOptions({0, pw, 0, ph});
  if (can_reflect) {
    opts.mode(torch::kReflect);
  } else {
    opts.mode(torch::kReplicate);
  }
  return F::pad(x, opts);
}

torch::Tensor run_tiled(const torch::Tensor& image, int64_t tile, int64_t overlap, int64_t align, const TileFn& fn,
                        const Progress& progress, int64_t batch) {
  return run_tiled_at(
      image, tile, overlap, align, [&](const torch::Tensor& t, const std::vector<TileRect>&) { return fn(t); }, progress,
      batch);
}

namespace {

// OpenMP's per-thread thread count, from the runtime LibTorch itself links (weak: resolved at load time through
// libtorch's own dependency on libgomp, so that no second OpenMP runtime is linked in; null where LibTorch has no
// OpenMP, and then tiles run one batch at a time). LibTorch's parallel regions and oneDNN's read the calling
// thread's value.
extern "C" {
void omp_set_num_threads(int) __attribute__((weak));
int omp_get_max_threads() __attribute__((weak));
}

bool per_thread_counts_available() { return omp_set_num_threads != nullptr && omp_get_max_threads != nullptr; }

// n intra-op threads for the calling thread while it lives; the previous count after.
class IntraOpThreads {
 public:
  explicit IntraOpThreads(int n) {
    at::get_num_threads();  // LibTorch's lazy per-thread initialisation first, or it would set the count back
    previous_ = omp_get_max_threads();
    omp_set_num_threads(n);
  }
  ~IntraOpThreads() { omp_set_num_threads(previous_); }
  IntraOpThreads(const IntraOpThreads&) = delete;
  IntraOpThreads& operator=(const IntraOpThreads&) = delete;

 private:
  int previous_ = 1;
};

}  // namespace

int tile_workers(const torch::Device& device) {
  if (!device.is_cpu() || !per_thread_counts_available() || torch::jit::tracer::isTracing()) return 1;
  return std::clamp(at::get_num_threads(), 1, kMaxTileWorkers);
}

int threads_per_worker(int workers) { return std::max(1, at::get_num_threads() / std::max(1, workers)); }

torch::Tensor run_tiled_at(const torch::Tensor& image, int64_t tile, int64_t overlap, int64_t align, const TileAtFn& fn,
                           const Progress& progress, int64_t batch, torch::Tensor into, int workers) {
  CC_CHECK(image.dim() == 3, CELLCOUNT_ERR_INTERNAL, "run_tiled: expected [C,H,W]");
  CC_CHECK(batch >= 1, CELLCOUNT_ERR_INTERNAL, "run_tiled: batch must be >= 1");
  CC_CHECK(workers >= 1, CELLCOUNT_ERR_INTERNAL, "run_tiled: workers must be >= 1");
  const int64_t H = image.size(1), W = image.size(2);
  const auto tiles = plan_tiles(H, W, tile, overlap);
  torch::Tensor out = into;
  CC_CHECK(!out.defined() || (out.dim() == 3 && out.size(1) == H && out.size(2) == W && out.scalar_type() == torch::kFloat32 &&
                              out.device().is_cpu()),
           CELLCOUNT_ERR_INTERNAL, "run_tiled: the output to stitch into is not a [K,H,W] float CPU tensor");
  const size_t n_batches = (tiles.size() + size_t(batch) - 1) / size_t(batch);
  std::mutex stitching;
  // Runs batch b and stitches its cores (disjoint from every other batch's) into out.
  auto run_batch = [&](size_t b) {
    const size_t i0 = b * size_t(batch), i1 = std::min(tiles.size(), i0 + size_t(batch));
    std::vector<torch::Tensor> ins;
    for (size_t i = i0; i < i1; ++i) {
      const auto& t = tiles[i];
      ins.push_back(pad_to_multiple(image.slice(1, t.y0, t.y1).slice(2, t.x0, t.x1).unsqueeze(0), align));
    }
    auto y = fn(ins.size() == 1 ? ins[0] : torch::cat(ins, 0),
                std::vector<TileRect>(tiles.begin() + int64_t(i0), tiles.begin() + int64_t(i1)));
    CC_CHECK(y.dim() == 4 && y.size(0) == int64_t(i1 - i0), CELLCOUNT_ERR_INTERNAL,
             "run_tiled: a tile's output has the wrong shape");
    y = y.to(torch::kCPU, torch::kFloat32);
    std::lock_guard<std::mutex> lock(stitching);
    for (size_t i = i0; i < i1; ++i) {
      const auto& t = tiles[i];
      CC_CHECK(y.size(2) >= t.y1 - t.y0 && y.size(3) >= t.x1 - t.x0, CELLCOUNT_ERR_INTERNAL,
               "run_tiled: a tile's output has the wrong shape");
      const auto yi = y[int64_t(i - i0)];
      if (!out.defined()) out = torch::zeros({yi.size(0), H, W}, torch::kFloat32);
      CC_CHECK(yi.size(0) == out.size(0), CELLCOUNT_ERR_INTERNAL, "run_tiled: a tile's output has the wrong shape");
      out.slice(1, t.cy0, t.cy1).slice(2, t.cx0, t.cx1) =
          yi.slice(1, t.cy0 - t.y0, t.cy1 - t.y0).slice(2, t.cx0 - t.x0, t.cx1 - t.x0);
    }
  };
  auto report = [&](size_t done_batches) {
    const size_t done = std::min(tiles.size(), done_batches * size_t(batch));
    progress.report(float(done) / tiles.size(), "tile " + std::to_string(done + 1) + "/" + std::to_string(tiles.size()));
  };
  workers = int(std::min<size_t>(size_t(workers), n_batches));
  if (workers <= 1 || !per_thread_counts_available()) {
    for (size_t b = 0; b < n_batches; ++b) {
      report(b);
      run_batch(b);
    }
    progress.report(1.0f, "tiles done");
    return out;
  }
  // Parallel tiles (issue 25): each worker (this thread and workers - 1 others) takes the next batch and runs it on
  // its share of the intra-op threads (one each, up to kMaxTileWorkers threads). A batch's tiles are the same function
  // of their windows as one at a time; only who runs them changes. Progress (whose callback may belong to a front
  // end's thread: JNI, ctypes) is reported from this thread alone; a cancel or an error stops the others before it is
  // rethrown here.
  std::atomic<size_t> next{0}, finished{0};
  std::atomic<bool> stop{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto fail = [&](std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(error_mutex);
    if (!error) error = std::move(e);
    stop = true;
  };
  const int per_worker = threads_per_worker(workers);
  const at::ThreadLocalState caller_state;  // grad and inference mode, autocast: the caller's, in every worker
  auto drain = [&](bool caller) {
    try {
      const at::ThreadLocalStateGuard state(caller_state);
      const IntraOpThreads own(per_worker);
      for (size_t b; !stop && (b = next++) < n_batches;) {
        if (caller) report(finished);
        run_batch(b);
        ++finished;
      }
    } catch (...) {
      fail(std::current_exception());
    }
  };
  std::vector<std::thread> others;
  try {
    for (int w = 1; w < workers; ++w) others.emplace_back(drain, false);
  } catch (...) {
    fail(std::current_exception());
  }
  drain(true);
  for (auto& t : others) t.join();
  if (error) std::rethrow_exception(error);
  progress.report(1.0f, "tiles done");
  return out;
}

}  // namespace cellcount
