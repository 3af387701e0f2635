// The UNet that dcl's localizer and exemplar's localizer stage share: 4 levels, two 3x3 conv + BatchNorm +
// ReLU per level, channels base << level, 2x2 max-pool down, a 1x1 conv to 4C + pixel_shuffle(2) up (exactly a
// ConvTranspose2d(2, 2), without its slow CPU path), softplus output. Defined once, here.
#pragma once
#include <functional>
#include <vector>

#include <torch/torch.h>

#include "core/packed_conv.h"

namespace cellcount {

struct UNetImpl : torch::nn::Module {
  UNetImpl(int64_t in_channels, int64_t base);
  torch::Tensor forward(const torch::Tensor& x);  // [N,1,H,W], H and W multiples of 16; softplus output
  // Each conv block (down, bottom, up_conv) replaced by f(block), under its registered name (BatchNorm folding
  // and packing for inference).
  void replace_blocks(const std::function<torch::nn::Sequential(const torch::nn::Sequential&)>& f);
  std::vector<torch::nn::Sequential> down, up_conv;
  std::vector<torch::nn::Conv2d> up;  // 1x1 conv to 4C then pixel_shuffle(2): ConvTranspose2d(2,2) exactly
  torch::nn::Sequential bottom{nullptr};
  torch::nn::Conv2d out{nullptr};
  // Inference (core/packed_conv's pack_for_inference): `up` and `out` packed; not registered, they share the convs.
  std::vector<PackedConv> packed_up;
  PackedConv packed_out{nullptr};
};
TORCH_MODULE(UNet);

}  // namespace cellcount
