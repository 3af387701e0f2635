// Eval-mode BatchNorm folded into the convolution before it, for the inference copies of trained networks
// (issue 25: one pass over the activations less per layer): w' = w * g / sqrt(v + eps),
// b' = (b - m) * g / sqrt(v + eps) + beta. Used by dcl and exemplar; defined once, here.
#pragma once
#include <torch/torch.h>

#include "core/unet.h"

namespace cellcount {

// A new convolution (with a bias) equal to conv followed by bn in eval mode.
torch::nn::Conv2d fold_conv_bn(const torch::nn::Conv2d& conv, const torch::nn::BatchNorm2d& bn);

// The same modules with every Conv2d immediately followed by a BatchNorm2d replaced by their fold; others kept.
torch::nn::Sequential fold_batch_norm(const torch::nn::Sequential& s);

// Every conv + BatchNorm pair of the UNet folded, in place (its down, bottom and up_conv blocks).
void fold_batch_norm(UNetImpl& u);

}  // namespace cellcount
