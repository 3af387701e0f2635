#include "core/tiling.h"

#include <algorithm>

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

torch::Tensor run_tiled_at(const torch::Tensor& image, int64_t tile, int64_t overlap, int64_t align, const TileAtFn& fn,
                           const Progress& progress, int64_t batch, torch::Tensor into) {
  CC_CHECK(image.dim() == 3, CELLCOUNT_ERR_INTERNAL, "run_tiled: expected [C,H,W]");
  CC_CHECK(batch >= 1, CELLCOUNT_ERR_INTERNAL, "run_tiled: batch must be >= 1");
  const int64_t H = image.size(1), W = image.size(2);
  const auto tiles = plan_tiles(H, W, tile, overlap);
  torch::Tensor out = into;
  CC_CHECK(!out.defined() || (out.dim() == 3 && out.size(1) == H && out.size(2) == W && out.scalar_type() == torch::kFloat32 &&
                              out.device().is_cpu()),
           CELLCOUNT_ERR_INTERNAL, "run_tiled: the output to stitch into is not a [K,H,W] float CPU tensor");
  for (size_t i0 = 0; i0 < tiles.size(); i0 += size_t(batch)) {
    const size_t i1 = std::min(tiles.size(), i0 + size_t(batch));
    progress.report(float(i0) / tiles.size(), "tile " + std::to_string(i0 + 1) + "/" + std::to_string(tiles.size()));
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
  }
  progress.report(1.0f, "tiles done");
  return out;
}

}  // namespace cellcount
