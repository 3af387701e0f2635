// dcl inference: the tiled pass of both networks and DclMethod (scale, tile, stitch, rescale, peaks).
#include "methods/dcl/dcl_predict.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <tuple>

#include "core/augment.h"
#include "core/device.h"
#include "core/model_io.h"
#include "core/error.h"
#include "core/fold_bn.h"
#include "core/hw.h"
#include "core/packed_conv.h"
#include "core/peaks.h"
#include "core/tiling.h"

namespace F = torch::nn::functional;

namespace cellcount::dcl {

torch::Tensor spread_coarse(const torch::Tensor& coarse, int64_t h, int64_t w) {
  const double area = double(h * w) / double(coarse.size(2) * coarse.size(3));
  return F::interpolate(coarse, F::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kNearest)) /
         area;
}

namespace {

// Budget tiling (issue 25): the largest tile whose activations fit a memory budget (measured peak of a dcl forward
// with the localizer, fp32, LibTorch 1.13 CPU: about kBytesPerPixel per input pixel), and an overlap covering the
// context the maps depend on (at least kMinOverlap, 4 pixels of the stride-16 features, and the given overlap). An
// image up to that tile is one tile: nothing is computed twice. The localizer always runs so; the counter with the
// option tiling "budget" and no tile from the caller.
constexpr double kActivationBudget = 768.0 * 1024 * 1024;
constexpr double kBytesPerPixel = 700.0;
constexpr int64_t kMinOverlap = 64;

std::pair<int64_t, int64_t> default_tiling(int64_t h, int64_t w, int64_t model_overlap) {
  const int64_t max_tile = std::max<int64_t>(256, int64_t(std::sqrt(kActivationBudget / kBytesPerPixel)) / 16 * 16);
  const int64_t side = std::max(h, w);
  if (side <= max_tile) return {side, 0};
  // As few tiles per axis as the budget allows, then the tile shrunk to split the side evenly (a fixed tile
  // left a sliver: 2048 in tiles of 1040 made 3 per axis, 2.3x the pixels).
  const int64_t overlap = std::max(kMinOverlap, model_overlap);
  const int64_t n = (side - overlap + (max_tile - overlap) - 1) / (max_tile - overlap);
  const int64_t tile = std::min(max_tile, ((side + (n - 1) * overlap + n - 1) / n + 15) / 16 * 16);
  return {tile, overlap};
}

// Tiles per forward pass (issue 25, batched tiles): as many as fit the pixel budget, at most 8. With several
// intra-op threads a pass wants large batches: measured with both networks of dcl-vgg, fp32, 2 threads, LibTorch
// 1.13 CPU (AMD EPYC), per 128x128 tile: batch 1 35-43 ms, 2 33-36, 4 31-35, 8 24-26, 16 27-29 (64x64 tiles: 17.9 ms
// at 1, 9.2 at 8). On one thread (parallel tiles, or --threads 1) small batches are faster, their activations staying
// in cache: dcl-vgg's counter at 1024 x 1024 on one thread (Xeon with AMX), fp32 batch 1 830 ms, 2 911, 4 902, 8 1059;
// bf16 batch 1 523, 2 431, 8 498 (on two parallel workers: fp32 438 / 475 / 577 at 1 / 2 / 8, bf16 279 / 234 / 244).
// Each tile's maps are the same function of the tile (eval mode, no batch statistics); only the summation order
// inside the convolutions changes.
constexpr int64_t kBatchPixels = 8 * 128 * 128;
constexpr int64_t kMaxTileBatch = 8;

int64_t tile_batch(int64_t tile, bool one_thread_per_pass, bool low_precision) {
  const int64_t pixels = one_thread_per_pass ? (low_precision ? 2 : 1) * 128 * 128 : kBatchPixels;
  return std::clamp<int64_t>(pixels / std::max<int64_t>(1, tile * tile), 1, kMaxTileBatch);
}

}  // namespace

torch::Tensor localizer_condition(const torch::Tensor& coarse, const TileRect& r, double cond_scale) {
  constexpr int64_t s = kCoarseStride;
  const int64_t Hc = coarse.size(2), Wc = coarse.size(3);
  // One coarse cell of margin on each side is all that bilinear interpolation reads; beyond it the window of the
  // whole image's map and of the margin block agree to float rounding (the same weights: the scale is 1/8 either
  // way).
  const int64_t y0 = std::max<int64_t>(0, r.y0 / s - 1), y1 = std::min(Hc, (r.y1 + s - 1) / s + 1);
  const int64_t x0 = std::max<int64_t>(0, r.x0 / s - 1), x1 = std::min(Wc, (r.x1 + s - 1) / s + 1);
  auto up = F::interpolate(coarse.slice(2, y0, y1).slice(3, x0, x1),
                           F::InterpolateFuncOptions()
                               .size(std::vector<int64_t>{(y1 - y0) * s, (x1 - x0) * s})
                               .mode(torch::kBilinear)
                               .align_corners(false));
  return up.slice(2, r.y0 - y0 * s, r.y1 - y0 * s).slice(3, r.x0 - x0 * s, r.x1 - x0 * s) * cond_scale;
}

// Two passes (issue 25). The counter runs in the given tiles: its count depends on its context (the shipped
// counters were trained on 128 crops, and whole 256x256 samples of dcl-vgg counted 0.7-4.6 % higher). The
// localizer only shapes the fine map, which is rescaled to the counter's count; it runs once over the stitched
// coarse map in budget tiles (a 1024 x 1024 image is one tile), so that its full-resolution UNet computes no pixel
// twice and sees no seam. Its conditioning channel is what Localizer::forward makes of a tile's coarse map: the
// stitched stride-8 coarse density, bilinear to full size, times cond_scale; made per tile from the stride-8 map
// (the whole image's bilinear map to float rounding: one coarse cell of margin), so that no full-size copy is held.
torch::Tensor tiled_maps(DclNet& net, const DclConfig& cfg, const torch::Tensor& x, int64_t tile, int64_t overlap,
                         const torch::Device& device, torch::ScalarType precision, const Progress& progress,
                         bool localize, int workers) {
  auto to_input = [&](const torch::Tensor& t) {
    auto input = t.to(device, precision);
    if (channels_last_inference(precision != torch::kFloat32)) input = input.contiguous(torch::MemoryFormat::ChannelsLast);
    return input;
  };
  const int64_t H = x.size(1), W = x.size(2);
  const bool low_precision = precision != torch::kFloat32;
  const int64_t counter_batch = tile_batch(tile, threads_per_worker(workers) == 1, low_precision);
  auto counter_tiles = [&](const torch::Tensor& t, const std::vector<TileRect>&) {
    return spread_coarse(net->counter->forward(to_input(t)), t.size(2), t.size(3)).to(torch::kCPU, torch::kFloat32);
  };
  if (!localize)
    return run_tiled_at(x, tile, overlap, 16, counter_tiles, progress, counter_batch, torch::Tensor(), workers)
        .expand({2, H, W});
  // Both maps stitched into one tensor: fine (0) and spread coarse (1).
  auto maps = torch::empty({2, H, W}, torch::kFloat32);
  run_tiled_at(x, tile, overlap, 16, counter_tiles, progress.sub(0.0f, 0.6f), counter_batch, maps.slice(0, 1, 2),
               workers);
  constexpr int64_t s = kCoarseStride;
  const auto coarse = F::avg_pool2d(maps[1].unsqueeze(0).unsqueeze(0), F::AvgPool2dFuncOptions(s).stride(s).ceil_mode(true));
  auto condition = [&](const TileRect& r) {  // padded as run_tiled pads the image tile
    return pad_to_multiple(localizer_condition(coarse, r, net->localizer->cond_scale), 16);
  };
  auto [ltile, loverlap] = default_tiling(H, W, overlap);
  if (tile > ltile) std::tie(ltile, loverlap) = std::make_pair(tile, overlap);
  run_tiled_at(
      x, ltile, loverlap, 16,
      [&](const torch::Tensor& t, const std::vector<TileRect>& rects) {
        std::vector<torch::Tensor> cond;
        for (const auto& r : rects) cond.push_back(condition(r));
        auto input = torch::cat({t, torch::cat(cond, 0)}, 1);
        return (net->localizer->unet->forward(to_input(input)) / cfg.target_scale).to(torch::kCPU, torch::kFloat32);
      },
      progress.sub(0.6f, 1.0f), tile_batch(ltile, threads_per_worker(1) == 1, low_precision), maps.slice(0, 0, 1));
  return maps;
}

torch::Tensor rescaled_fine(const torch::Tensor& maps) {
  const double count = maps[1].sum().item<double>(), fine_sum = maps[0].sum().item<double>();
  auto fine = fine_sum > 1e-12 ? maps[0] * (count / fine_sum) : torch::full_like(maps[0], count / maps[0].numel());
  return fine.contiguous();
}

std::vector<double> diameter_candidates() {
  std::vector<double> d;
  for (int k = 1; k <= 12; ++k) d.push_back(4.0 * std::pow(2.0, k / 3.0));
  return d;
}

DiameterChoice choose_diameter(const std::vector<double>& diameters, const std::vector<double>& counts) {
  CC_CHECK(diameters.size() == counts.size(), CELLCOUNT_ERR_INTERNAL, "choose_diameter: sizes differ");
  const size_t n = counts.size();
  // Each judged candidate's slope: |log count(next) - log count(previous)|; NaN = not judged.
  std::vector<double> slope(n, NAN);
  size_t at = n;
  for (size_t i = 1; i + 1 < n; ++i) {
    if (!(counts[i - 1] >= kMinEstimateCells && counts[i] >= kMinEstimateCells && counts[i + 1] >= kMinEstimateCells))
      continue;
    slope[i] = std::fabs(std::log(counts[i + 1]) - std::log(counts[i - 1]));
    if (at == n || slope[i] < slope[at]) at = i;
  }
  DiameterChoice c;
  if (at == n) return c;
  // The plateau: the run of judged candidates around the steadiest one whose slopes are within kPlateauSlack of
  // it; its middle (geometric, between two candidates when the run is even).
  auto flat = [&](size_t i) { return i >= 1 && i + 1 < n && std::isfinite(slope[i]) && slope[i] <= slope[at] + kPlateauSlack; };
  size_t lo = at, hi = at;
  while (lo > 1 && flat(lo - 1)) --lo;
  while (flat(hi + 1)) ++hi;
  const size_t mid = (lo + hi) / 2;
  c.diameter = (lo + hi) % 2 == 0 ? diameters[mid] : std::sqrt(diameters[mid] * diameters[mid + 1]);
  c.found = true;
  // At the edge only when the plateau's middle is the second or second-to-last candidate (the outermost with two
  // neighbours); a wide plateau reaching an edge is a steady count (the synthetic samples of isolated cells hold
  // theirs from 16 to 64 px).
  c.at_edge = (lo + hi) % 2 == 0 && (mid == 1 || mid + 2 == n);
  return c;
}

namespace {

// The inference copy of a trained network: every conv + BatchNorm pair folded, eval mode.
void fold_for_inference(DclNet& net) {
  auto& c = *net->counter;
  c.features = c.replace_module("features", pack_for_inference(fold_batch_norm(c.features)));
  fold_batch_norm(*net->localizer->unet);
  pack_for_inference(*net->localizer->unet);
  net->eval();
}

class DclMethod : public ModelMethod {
 public:
  explicit DclMethod(const ModelFiles& f)
      : ModelMethod(f.meta), cfg_(DclConfig::from_json(f.meta.at("architecture"))), net_(cfg_) {
    scale_ = meta_.at("input").value("scale", 1.0);
    CC_CHECK(scale_ > 0.05 && scale_ < 20, CELLCOUNT_ERR_MODEL_FORMAT, "dcl: input.scale out of range");
    load_weights(*net_, f);
    net_->eval();
    fused_ = DclNet(cfg_);
    copy_state(*fused_, *net_);
    fold_for_inference(fused_);
  }

  Prediction predict(const PredictInput& in, const PredictOptions& o) override {
    c10::InferenceMode inference;
    auto& net = net_for(o.device, o.precision);
    const int64_t H = in.image.size(1), W = in.image.size(2);
    // The caller's tile, else the model's (core resolve_tiling, the rule of every method); with the option
    // tiling "budget", or a model whose tiling.mode is "budget", and no tile from the caller, the largest tile the
    // memory budget allows (default_tiling). Not for counters trained on small crops: they count their context
    // (whole 256x256 samples of a 128-crop dcl-vgg counted 0.7-4.6 % higher than in 128 tiles, and further from
    // the truth).
    const auto& model_tiling = meta_.at("tiling");
    auto [tile, overlap] = resolve_tiling(o.tile_size, o.tile_overlap, model_tiling);
    auto x = spec_.prepare(in.image, o.normalization_range);
    Prediction p;
    const double zoom = diameter_zoom(net, x, in.region, tile, overlap, o, p);
    x = resize_by(x, scale_ * zoom);
    const std::string tiling = o.method_options.value("tiling", std::string("model"));
    const bool budget = tiling == "budget" || (tiling == "model" && model_tiling.is_object() &&
                                               model_tiling.value("mode", std::string("crop")) == "budget");
    if (o.tile_size <= 0 && budget) {
      const auto model_overlap = model_tiling.is_object() ? model_tiling.value("overlap", int64_t(0)) : int64_t(0);
      std::tie(tile, overlap) = default_tiling(x.size(1), x.size(2), model_overlap);
      if (o.tile_overlap >= 0) overlap = std::min(o.tile_overlap, tile / 2 - 1);
    }
    // Count only: without points the localizer is not run (the count is the counter's in any case).
    const bool localize = o.method_options.value("localize", true);
    const Progress main_pass = p.diameter_source == "estimated" ? o.progress.sub(0.3f, 1.0f) : o.progress;
    auto maps = tiled_maps(net, cfg_, x, tile, overlap, o.device, o.precision, main_pass, localize,
                           tile_workers(o.device));
    // Each full-size map is let go as soon as the next is made (issue 25: at 8192 x 8192 each is 256 MiB, and
    // the normalised input, both stitched maps and the fine map alive together peaked at 2.09 GiB).
    const double sx = double(W) / double(x.size(2)), sy = double(H) / double(x.size(1));
    x = torch::Tensor();
    const double count_scaled = maps[1].sum().item<double>();
    auto fine = rescaled_fine(maps);
    maps = torch::Tensor();
    const auto [thr, md] = peak_settings(o);
    std::vector<Point> peaks;
    if (localize) peaks = find_peaks(fine.data_ptr<float>(), fine.size(0), fine.size(1), thr, md);
    // Back to the caller's pixel grid.
    torch::Tensor density = resize_mass(fine, H, W);
    fine = torch::Tensor();
    for (const auto& q : peaks) p.points.push_back(scale_point(q, sx, sy));
    p.points = points_in_region(p.points, in.region);  // the core's region rule, as every method's
    density = mask_density(density, in.region);
    p.count = in.region.defined() ? density.sum().item<double>() : count_scaled;
    p.located = localize;
    p.class_counts = {p.count};
    if (o.want_density) p.density = density.contiguous();
    return p;
  }

 private:
  // The zoom of the cell-size setting (issue 24): the model's cell_diameter over the option diameter; for a model
  // that states a cell_diameter, diameter 0 is estimated (estimate_diameter), else 0 is 1 (as is). Sets p's
  // cell_zoom, diameter and, for an estimate, its notes.
  double diameter_zoom(DclNet& net, const torch::Tensor& x, const torch::Tensor& region, int64_t tile, int64_t overlap,
                       const PredictOptions& o, Prediction& p) const {
    double d = o.method_options.value("diameter", 0.0);
    const double cd = cell_diameter();
    const bool sized = cd > 0;
    if (d <= 0 && !sized) return 1.0;
    CC_CHECK(sized, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "dcl: this model does not state a cell_diameter (only models trained on several sets at one cell "
             "size do); leave diameter at 0");
    p.diameter_source = "given";
    if (d <= 0) {
      d = estimate_diameter(net, x, region, tile, overlap, o, p);
      p.diameter_source = "estimated";
    }
    const double z = cd / d;
    CC_CHECK(z * scale_ > 0.05 && z * scale_ < 20, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "dcl: diameter " + std::to_string(d) + " would scale the image by " + std::to_string(z * scale_) +
                 " (allowed 0.05 to 20)");
    p.diameter = d;
    p.cell_zoom = z;
    return z;
  }

  // The estimate (choose_diameter's rule) on a central crop of at most kEstimateSide x kEstimateSide pixels of the
  // counted region's bounding box, counter only: about 27 passes of the crop at the model's scale (the smallest
  // candidates enlarge it most). When every candidate counts (nearly) nothing, the model's own cell_diameter, with
  // a warning; at the candidates' edge, the edge, with a warning.
  static constexpr int64_t kEstimateSide = 384;
  double estimate_diameter(DclNet& net, const torch::Tensor& x, const torch::Tensor& region, int64_t tile,
                           int64_t overlap, const PredictOptions& o, Prediction& p) const {
    int64_t y0 = 0, y1 = x.size(1), x0 = 0, x1 = x.size(2);
    if (region.defined()) {
      const auto rows = region.any(1).nonzero(), cols = region.any(0).nonzero();
      if (rows.numel() > 0 && cols.numel() > 0) {
        y0 = rows.min().item<int64_t>(), y1 = rows.max().item<int64_t>() + 1;
        x0 = cols.min().item<int64_t>(), x1 = cols.max().item<int64_t>() + 1;
      }
    }
    const int64_t h = std::min(kEstimateSide, y1 - y0), w = std::min(kEstimateSide, x1 - x0);
    const int64_t top = y0 + (y1 - y0 - h) / 2, left = x0 + (x1 - x0 - w) / 2;
    const auto crop = x.slice(1, top, top + h).slice(2, left, left + w);
    const double cd = cell_diameter();
    const auto candidates = diameter_candidates();
    std::vector<double> counts;
    for (size_t i = 0; i < candidates.size(); ++i) {
      o.progress.report(0.3f * float(i) / float(candidates.size()), "estimating the cell size");
      const auto xs = resize_by(crop, scale_ * cd / candidates[i]);
      const bool too_small = xs.size(1) < 32 || xs.size(2) < 32;
      counts.push_back(too_small ? 0.0
                                 : tiled_maps(net, cfg_, xs, tile, overlap, o.device, o.precision, Progress(), false,
                                              tile_workers(o.device))[1]
                                       .sum()
                                       .item<double>());
    }
    const auto c = choose_diameter(candidates, counts);
    if (!c.found) {
      p.notes.push_back({{"code", "cell_size_unknown"},
                         {"message", "too few cells to estimate their size: counted at the model's cell size, " +
                                         fmt_px(cd) + "; give the typical cell diameter (option diameter)"},
                         {"value", nullptr}, {"limit", nullptr}});
      return cd;
    }
    if (c.at_edge)
      p.notes.push_back({{"code", "cell_size_out_of_range"},
                         {"message", "the cells look " + fmt_px(c.diameter) + " across, at the edge of what the size "
                                         "estimate tries (" + fmt_px(candidates[1]) + " to " + fmt_px(candidates[candidates.size() - 2]) +
                                         "): they may be smaller or larger than this model knows; check the points, "
                                         "or give the typical cell diameter (option diameter)"},
                         {"value", c.diameter}, {"limit", {candidates[1], candidates[candidates.size() - 2]}}});
    return c.diameter;
  }

  // model.json's cell_diameter, 0 when it states none. (Read with find: operator[] of a const json on a missing
  // key is undefined behaviour, and in the JVM of the Fiji test it read a garbage size.)
  double cell_diameter() const {
    const auto it = meta_.find("cell_diameter");
    return it != meta_.end() && it->is_number() && it->get<double>() > 0 ? it->get<double>() : 0.0;
  }

  static std::string fmt_px(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.1f px", v);
    return b;
  }

  // The network on a device and precision; fp32 weights are kept, other copies are made from them.
  // Both are the BatchNorm-folded inference copy (fused_).
  DclNet& net_for(const torch::Device& device, torch::ScalarType precision) {
    if (precision == torch::kFloat32) {
      move_to(*net_, device);
      fused_->to(device);
      return fused_;
    }
    if (!low_.is_empty() && low_device_ == device && low_type_ == precision) return low_;
    low_ = DclNet(cfg_);
    copy_state(*low_, *net_);
    fold_for_inference(low_);
    low_->to(device, precision);
    low_->eval();
    low_device_ = device;
    low_type_ = precision;
    return low_;
  }

  DclConfig cfg_;
  DclNet net_;
  DclNet fused_{nullptr};
  double scale_ = 1.0;
  DclNet low_{nullptr};
  torch::Device low_device_ = torch::kCPU;
  torch::ScalarType low_type_ = torch::kFloat32;
};

}  // namespace

std::unique_ptr<Method> make_method(const ModelFiles& f) { return std::make_unique<DclMethod>(f); }

}  // namespace cellcount::dcl
