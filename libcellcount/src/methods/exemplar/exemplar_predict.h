// exemplar inference: the inference class ExemplarMethod (its run() also serves evaluate's mask ablations),
// the masking modes and settings, and the per-tile pass of the networks that training reuses.
#pragma once
#include <array>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "core/device.h"
#include "core/error.h"
#include "core/hw.h"
#include "core/method.h"
#include "core/tiling.h"
#include "methods/exemplar/exemplar_net.h"

namespace cellcount::exemplar {

constexpr int64_t kStride = 16;

enum class MaskMode { kNone, kSeg, kKMeans, kSimilarity };

MaskMode parse_mode(const std::string& s);

std::vector<std::array<float, 4>> as_arrays(const std::vector<Box>& boxes);

torch::Tensor nearest_up(const torch::Tensor& m, int64_t h, int64_t w);

// Settings of the masking step, from model.json "thresholds" (overridable per call).
struct MaskSettings {
  double mask_threshold = 0.6;        // paper: the segmentation mask is binarised at 0.6
  double delta = 0.0;                 // eq. 4's "small constant" for S outside the mask (choice: 0)
  double similarity_threshold = 0.6;  // ablation: cos(F_ij, b) >= this
  bool mask_output = true;            // choice: also zero the density outside the mask (false = the paper's
                                      // eq. 4 alone; measured both ways in the README)
  int64_t dilate = 0;                 // grow the binary mask by this many map cells (16 px) before use; 0 = the paper
  int64_t k = 3;                      // fixed K for the K-means ablation at inference
  uint64_t seed = 0;
};

// Patch embeddings for K-means (paper: an ImageNet ResNet-50; here, with no downloadable weights, the base
// counter's own backbone, globally pooled and L2-normalised): one patch per similarity-map pixel, of the
// mean exemplar size, plus the mean exemplar embedding. Image x: [C,h,w] with h, w multiples of 16.
std::pair<torch::Tensor, torch::Tensor> patch_embeddings(Counter& counter, const torch::Tensor& x,
                                                         const std::vector<std::array<float, 4>>& boxes, int64_t size);

// The networks' pass over one normalised tile [1,C,h,w]: [1,2,h,w] = density (per pixel) and the binary
// mask (nearest-upsampled), plus the localizer's map (masked like the density) as a third channel when the
// model has a localizer and `localize` is true. b: counter exemplar vectors [E,dim]; v: segmenter exemplar
// vectors [E,seg_dim].
torch::Tensor run_tile(ExemplarNet& net, const torch::Tensor& t, const torch::Tensor& b, const torch::Tensor& v,
                       MaskMode mode, const MaskSettings& ms, const std::vector<std::array<float, 4>>& boxes,
                       bool localize = true);

// The map whose peaks are the points and whose sum is the count, from run_tile's maps [2 or 3,h,w]: the
// density, or the localizer's map rescaled to the density's sum.
torch::Tensor point_map(const torch::Tensor& maps);

// Exemplar vectors of both networks from the boxes of a normalised image [C,H,W].
std::pair<torch::Tensor, torch::Tensor> exemplar_vectors(ExemplarNet& net, const torch::Tensor& x,
                                                         const std::vector<std::array<float, 4>>& boxes);

InputSpec exemplar_input_spec();

// Grey images are repeated to RGB (the networks see 3 channels); other channel counts are refused.
torch::Tensor prepare_image(const InputSpec& spec, const torch::Tensor& raw, const IntensityRange& range = std::nullopt);

constexpr double kTileGrowth = 1.25;

class ExemplarMethod : public ModelMethod {
 public:
  explicit ExemplarMethod(const ModelFiles& f)
      : ModelMethod(f.meta), net_(ExemplarConfig::from_json(f.meta.at("architecture"))) {
    load_weights(*net_, f);
    net_->fold_for_inference();  // BatchNorms folded (issue 25), eval mode
    const auto& t = meta_.at("thresholds");
    ms_.mask_threshold = t.value("mask_threshold", ms_.mask_threshold);
    ms_.delta = t.value("delta", ms_.delta);
    ms_.similarity_threshold = t.value("similarity_threshold", ms_.similarity_threshold);
    ms_.mask_output = t.value("mask_output", ms_.mask_output);
    ms_.dilate = t.value("mask_dilate", ms_.dilate);
  }

  Prediction predict(const PredictInput& in, const PredictOptions& o) override { return run(in, o, MaskMode::kSeg, ms_); }

  // One prediction with a mask mode (the ablations share this path). `ms` may override the model's settings.
  Prediction run(const PredictInput& in, const PredictOptions& o, MaskMode mode, MaskSettings ms) {
    CC_CHECK(!in.exemplars.empty(), CELLCOUNT_ERR_INVALID_ARGUMENT,
             "exemplar: draw at least one box around a cell of the kind to count");
    // Resolved by the core (caller, then model.json, then the declared default); absent when an evaluation
    // passes its own settings in `ms`.
    if (o.method_options.contains("mask_threshold") && o.method_options["mask_threshold"].is_number())
      ms.mask_threshold = o.method_options["mask_threshold"].get<double>();
    // Count only: without points the localizer is not run (the count is the counter's in any case).
    const bool localize = o.method_options.value("localize", true);
    move_to(*net_, o.device);
    torch::NoGradGuard ng;
    auto x = prepare_image(spec_, in.image, o.normalization_range).to(o.device);
    const auto boxes = as_arrays(in.exemplars);
    AutocastGuard amp(o.device, o.precision);
    auto [b, v] = exemplar_vectors(net_, x, boxes);
    // One rule for every method (core resolve_tiling): the caller's, else model.json's tiling.
    auto [tile, overlap] = resolve_tiling(o.tile_size, o.tile_overlap, meta_.at("tiling"));
    // The model's tile grown by up to kTileGrowth to save a row of tiles (issue 25: 1024 x 1024 in 2 x 2 tiles of
    // 560 instead of 3 x 3 of 512, 3698 -> 1939 ms on 2 threads; the count of a synthetic 1024 x 1024 image stayed
    // 100.8, whole it was 103.9). Only when the caller leaves the tile to the model.
    if (o.tile_size <= 0) tile = grown_tile(x.size(1), x.size(2), tile, overlap, kTileGrowth, kStride);
    // K-means clusters the whole image's patches: one tile.
    if (mode == MaskMode::kKMeans) tile = std::max(x.size(1), x.size(2)), overlap = 0;
    const bool channels_last = channels_last_inference(o.precision != torch::kFloat32);
    // Parallel tiles (issue 25, core/tiling): a 1024 x 1024 image's 2 x 2 tiles on two workers of one intra-op
    // thread each (each worker sets autocast's type itself: it is per thread); K-means's single tile on all threads.
    auto maps = run_tiled_at(
        x, tile, overlap, kStride,
        [&](const torch::Tensor& t, const std::vector<TileRect>&) {
          AutocastGuard worker_amp(o.device, o.precision);
          // The layout rule of core/hw.h (channels-last in bf16, and in fp32 with AVX-512).
          const auto in = channels_last ? t.contiguous(torch::MemoryFormat::ChannelsLast) : t;
          return run_tile(net_, in, b, v, mode, ms, boxes, localize).to(torch::kCPU);
        },
        o.progress, 1, torch::Tensor(), mode == MaskMode::kKMeans ? 1 : tile_workers(o.device));
    const auto [thr, md] = peak_settings(o);
    auto p = density_prediction(point_map(maps), in.region, thr, md, o.want_density);
    if (o.want_density) p.mask = maps[1].contiguous();
    return p;
  }

 private:
  ExemplarNet net_;
  MaskSettings ms_;
};

}  // namespace cellcount::exemplar
