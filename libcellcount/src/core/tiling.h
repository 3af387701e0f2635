// Tiled inference for images of any size, seam-free: every output pixel is taken from exactly one tile,
// the one whose "core" holds it, and cores sit in the middle of the overlaps, away from tile borders.
// Cores partition the image, so a density map stitched this way sums exactly to the sum of its cores.
#pragma once
#include <functional>
#include <torch/torch.h>
#include <vector>

#include "core/progress.h"

namespace cellcount {

struct TileRect {
  int64_t y0, x0, y1, x1;      // input window [y0,y1) x [x0,x1)
  int64_t cy0, cx0, cy1, cx1;  // core owned by this tile (inside the window)
};

// Tiles of side <= tile covering height x width with at least `overlap` pixels shared by neighbours.
// tile >= 1, 0 <= overlap < tile. An image no larger than a tile gives one tile. At most kMaxTiles tiles
// (core/limits.h), else CELLCOUNT_ERR_INVALID_ARGUMENT before any is planned.
std::vector<TileRect> plan_tiles(int64_t height, int64_t width, int64_t tile, int64_t overlap);

// The model's tile grown, by at most max_growth x tile (rounded up to a multiple of align), just enough that the
// image's longer side needs one tile fewer; else `tile`. A 1024-pixel side in tiles of 512 with overlap 96 takes
// 3 tiles per axis (2.25x the pixels); 560 takes 2 (1.2x). Methods whose count depends little on the tile use it
// when the caller leaves the tile to the model (exemplar, issue 25).
int64_t grown_tile(int64_t height, int64_t width, int64_t tile, int64_t overlap, double max_growth, int64_t align);

// Runs fn on every tile of image [C,H,W] and stitches the [K,h,w] outputs (same spatial size as
// the tile) into [K,H,W]. Each tile is reflect/replicate-padded on the bottom/right so that its sides
// are multiples of `align` (networks with stride 16 want 16); the padding is cropped from the output.
// Reports "tile i/n" to progress (which may cancel).
// `batch` > 1: up to that many tiles go to fn at once as [B,C,h,w] and fn returns [B,K,h,w] (every tile of a
// plan has the same size, so they stack); the stitched result is the same function of each tile.
using TileFn = std::function<torch::Tensor(const torch::Tensor& tiles /*[B,C,h,w]*/)>;
torch::Tensor run_tiled(const torch::Tensor& image, int64_t tile, int64_t overlap, int64_t align,
                        const TileFn& fn, const Progress& progress, int64_t batch = 1);

// The same with fn told which tiles it gets (their windows in the image, in the batch's order), for inputs that
// are made per tile rather than held whole (dcl's localizer conditioning). `into`, when given, is the [K,H,W]
// float tensor (a view is fine) the tiles are stitched into and returned, so that callers assembling several
// maps hold no second full-size copy (8192 x 8192: 256 MiB a channel).
using TileAtFn = std::function<torch::Tensor(const torch::Tensor& tiles, const std::vector<TileRect>& rects)>;
//
// `workers` > 1 (issue 25, parallel tiles): that many threads (this one included) each take the next batch and run
// fn on threads_per_worker(workers) intra-op threads of their own (one where workers = --threads), instead of one
// batch at a time on all the intra-op threads. On two cores a 128x128 tile's layers are too small to split well
// (dcl-vgg's counter: 2 intra-op threads 1.38x one, two independent single-thread passes 2x), and a worker slowed by
// a busy neighbour just takes fewer batches. fn must then be safe to call from several threads at once (modules in
// eval mode; PackedConv packs under a lock); the caller's grad mode, inference mode and autocast state hold in every
// worker; progress is reported from the calling thread only. The result is the same as with one worker.
torch::Tensor run_tiled_at(const torch::Tensor& image, int64_t tile, int64_t overlap, int64_t align,
                           const TileAtFn& fn, const Progress& progress, int64_t batch = 1,
                           torch::Tensor into = torch::Tensor(), int workers = 1);

// The workers for tiles on `device`: LibTorch's intra-op thread count (cellcount's --threads) on the CPU, at most
// kMaxTileWorkers (each holds its batch's activations: exemplar's tiles of 512 take about 150 MB each); 1 on other
// devices, while tracing, or where the OpenMP runtime cannot set per-thread counts. Beyond kMaxTileWorkers threads
// each worker gets its share: threads_per_worker.
constexpr int kMaxTileWorkers = 4;
int tile_workers(const torch::Device& device);
int threads_per_worker(int workers);  // max(1, intra-op threads / workers)

// Pads [N,C,H,W] on the bottom/right to multiples of align (reflect when possible, else replicate).
torch::Tensor pad_to_multiple(const torch::Tensor& x, int64_t align);

}  // namespace cellcount
