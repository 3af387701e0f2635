// DCL networks (paper 000): a counter (VGG-19 conv stack without its last max-pool, bilinear x2, global
// message passing, 1x1 conv to one channel; count = L1 norm of the map) and a UNet localizer fed the image
// and the upsampled coarse map. Defined once, here.
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/unet.h"

namespace cellcount::dcl {

struct DclConfig {
  int64_t in_channels = 1;
  double width = 0.25;         // VGG width multiplier: 1.0 = the paper's 64..512 channels
  bool batch_norm = true;      // choice: VGG-19-BN (the variant in the authors' code base, CODE-FACTS 1.2b);
                               // from-scratch training on CPU needs it
  bool gmp = true;             // global message passing; false = the ablation
  int64_t gmp_points = 8;      // K sampled positions per query
  double gmp_offset_init = 1.0;  // std (feature pixels) of the initial offset bias: zero-mean, small
  int64_t unet_base = 16;      // localizer channels at full resolution (doubles per level, 4 levels)
  double cond_scale = 100.0;   // the coarse map (density per pixel) is multiplied by this before the UNet
  double target_scale = 100.0; // the localizer predicts density x this (MSE on a well-scaled target)
  nlohmann::json to_json() const;
  static DclConfig from_json(const nlohmann::json& j);
};

// Global message passing. Per position p a 1x1 conv predicts K offsets from x_p; features are sampled at
// p + offset_k with bilinear grid_sample; aggregation has no parameters: y_p = x_p + mean_k x(p + offset_k).
struct GmpImpl : torch::nn::Module {
  GmpImpl(int64_t channels, int64_t points, double offset_init);
  // Without gradient on the CPU a direct sampler (the same values to float rounding), else forward_grid_sample.
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor forward_grid_sample(const torch::Tensor& x);  // the training path: grid_sample, autograd through it
  torch::Tensor offsets(const torch::Tensor& x);  // [N, K, 2, H, W] in feature pixels (dx, dy)
  int64_t k;
  torch::nn::Conv2d offset{nullptr};
};
TORCH_MODULE(Gmp);

// The counter's output stride: VGG-19's stride 16, then bilinear x2.
constexpr int64_t kCoarseStride = 8;

struct CounterImpl : torch::nn::Module {
  explicit CounterImpl(const DclConfig& c);
  // Coarse density F at stride 8 ([N,1,H/8,W/8]); the count is F.sum() (F = |conv|, so sum = L1 norm).
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Sequential features{nullptr};
  Gmp gmp{nullptr};
  torch::nn::Conv2d head{nullptr};
  bool use_gmp;
};
TORCH_MODULE(Counter);

struct LocalizerImpl : torch::nn::Module {
  explicit LocalizerImpl(const DclConfig& c);
  // image [N,C,H,W] and the counter's coarse map [N,1,H/8,W/8] -> fine map [N,1,H,W] (x target_scale).
  torch::Tensor forward(const torch::Tensor& image, const torch::Tensor& coarse);
  UNet unet{nullptr};
  double cond_scale;
};
TORCH_MODULE(Localizer);

// Both networks in one module (one weights file).
struct DclNetImpl : torch::nn::Module {
  explicit DclNetImpl(const DclConfig& c);
  DclConfig config;
  Counter counter{nullptr};
  Localizer localizer{nullptr};
};
TORCH_MODULE(DclNet);

}  // namespace cellcount::dcl
