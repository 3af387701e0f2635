// Exemplar networks (paper 001, METHODS.md section 2), defined once here:
//  - a ResNet-50-shaped backbone to layer3 (bottleneck blocks 3/4/6, stride 16) with a width multiplier;
//  - the base counter: backbone -> 1x1 to `dim` (image features F); exemplar crops (resized to a square)
//    -> the same backbone -> global average pool -> linear to `dim` (b); similarity S = <F_ij, b> averaged
//    over exemplars; density head on [F, S] (the 5-layer upsampling head of CODE-FACTS 2.2);
//  - the exemplar-based segmentation model: its own backbone + 1x1 projection; mask = cos(P_ij(I), v) with
//    v the pooled exemplar features averaged over exemplars (paper eq. 6).
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/packed_conv.h"
#include "core/unet.h"

namespace cellcount::exemplar {

struct ExemplarConfig {
  int64_t in_channels = 3;
  double width = 0.25;        // backbone width multiplier: 1.0 = ResNet-50's 64..1024 channels (layer3 = 1024)
  int64_t dim = 256;          // projection of image and exemplar features (paper: 256)
  double head_width = 0.5;    // density head widths x this (1.0 = CODE-FACTS 2.2: 196, 128, 64, 32)
  int64_t exemplar_size = 64; // exemplar crops are resized to this square (paper: 128; choice: 64 on CPU,
                              // cells are small and the cost of exemplars grows with its square)
  int64_t seg_dim = 128;      // segmentation model's projection (choice: a linear 1x1 after the backbone so
                              // the cosine is not confined to the non-negative orthant of ReLU features)
  double target_scale = 100.0;  // the head predicts density x this (L2 on a well-scaled target)
  // Choice (issue 24): a localizer stage as dcl's, a UNet on the image and the counter's (masked) density,
  // trained to the Gaussian dot maps, whose peaks are the points; the count stays the counter's. The
  // counter's own density is upsampled from stride 16 and its peaks fell on a grid. 0 = no localizer (models
  // trained before it: points are the density's peaks); training's default is 16.
  int64_t localizer_base = 0;
  double cond_scale = 100.0;    // the density (per pixel) is multiplied by this before the localizer
  nlohmann::json to_json() const;
  static ExemplarConfig from_json(const nlohmann::json& j);
};

struct BottleneckImpl : torch::nn::Module {
  BottleneckImpl(int64_t in, int64_t planes, int64_t out, int64_t stride);
  torch::Tensor forward(const torch::Tensor& x);
  // Inference: each conv + BatchNorm pair folded into one conv (core/fold_bn); forward then skips b1..b3.
  void fold_batch_norm();
  torch::nn::Conv2d c1{nullptr}, c2{nullptr}, c3{nullptr};
  torch::nn::BatchNorm2d b1{nullptr}, b2{nullptr}, b3{nullptr};
  torch::nn::Sequential down{nullptr};
  bool folded = false;
  // After the fold: c1, c2 (with their ReLUs) and c3 packed (core/packed_conv); not registered, they share c1..c3.
  PackedConv p1{nullptr}, p2{nullptr}, p3{nullptr};
};
TORCH_MODULE(Bottleneck);

// ResNet-50 stem + layer1..layer3: [N,C,H,W] -> [N, out_channels, H/16, W/16].
struct BackboneImpl : torch::nn::Module {
  BackboneImpl(int64_t in_channels, double width);
  torch::Tensor forward(const torch::Tensor& x);
  void fold_batch_norm();  // inference: the stem's and every block's BatchNorms folded
  torch::nn::Sequential stem{nullptr}, layer1{nullptr}, layer2{nullptr}, layer3{nullptr};
  int64_t out_channels = 0;
};
TORCH_MODULE(Backbone);

// The base counter. Exemplar crops are batched by callers ([E,C,s,s]).
struct CounterImpl : torch::nn::Module {
  explicit CounterImpl(const ExemplarConfig& c);
  torch::Tensor features(const torch::Tensor& image);        // F: [N,dim,h,w], stride 16
  torch::Tensor exemplar_vectors(const torch::Tensor& crops);  // b: [E,dim] from crops [E,C,s,s]
  // S: [N,1,h,w], the mean over exemplars of <F_ij, b_e> / sqrt(dim) (the scale is our choice, for
  // from-scratch training). `b` is [N,E,dim] (E exemplars per image).
  torch::Tensor similarity(const torch::Tensor& f, const torch::Tensor& b) const;
  // Density [N,1,H,W] (x target_scale) from F and a (possibly masked) S.
  torch::Tensor density(const torch::Tensor& f, const torch::Tensor& s);
  Backbone backbone{nullptr};
  torch::nn::Conv2d proj{nullptr};
  torch::nn::Linear ex_proj{nullptr};
  std::vector<torch::nn::Conv2d> head;
  std::vector<PackedConv> packed_head;  // inference (pack_for_inference): head[0..3] with their ReLUs, head[4]
  void pack_for_inference();
  int64_t dim;
};
TORCH_MODULE(Counter);

struct SegmenterImpl : torch::nn::Module {
  explicit SegmenterImpl(const ExemplarConfig& c);
  torch::Tensor features(const torch::Tensor& image);          // P(I): [N,seg_dim,h,w]
  torch::Tensor exemplar_vectors(const torch::Tensor& crops);  // pooled P(B): [E,seg_dim]
  // Mask in [-1,1]: cos(P_ij(I), v), v = mean of the exemplar vectors of each image. p [N,d,h,w], v [N,E,d].
  static torch::Tensor mask(const torch::Tensor& p, const torch::Tensor& v);
  Backbone backbone{nullptr};
  torch::nn::Conv2d proj{nullptr};
};
TORCH_MODULE(Segmenter);

struct ExemplarNetImpl : torch::nn::Module {
  explicit ExemplarNetImpl(const ExemplarConfig& c);
  ExemplarConfig config;
  Counter counter{nullptr};
  Segmenter segmenter{nullptr};
  UNet localizer{nullptr};  // registered only when config.localizer_base > 0
  // The localizer's map [N,1,H,W] (density per pixel, not rescaled) from the image [N,C,H,W] and the counter's
  // density per pixel [N,1,H,W].
  torch::Tensor localize(const torch::Tensor& image, const torch::Tensor& density);
  // The inference copy (issue 25): every BatchNorm folded into its convolution, eval mode. Not trainable after.
  void fold_for_inference();
};
TORCH_MODULE(ExemplarNet);

// Square crops of `boxes` ([x0,y0,x1,y1] in pixels of image [C,H,W]) resized bilinearly to size x size:
// [E,C,size,size]. Boxes must lie inside the image (callers clip).
torch::Tensor crop_boxes(const torch::Tensor& image, const std::vector<std::array<float, 4>>& boxes, int64_t size);

}  // namespace cellcount::exemplar
