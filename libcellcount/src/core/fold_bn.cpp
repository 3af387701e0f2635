#include "core/fold_bn.h"

#include <string>
#include <vector>

namespace cellcount {

torch::nn::Conv2d fold_conv_bn(const torch::nn::Conv2d& conv, const torch::nn::BatchNorm2d& bn) {
  torch::NoGradGuard ng;
  const auto& o = conv->options;
  torch::nn::Conv2d fused(torch::nn::Conv2dOptions(o.in_channels(), o.out_channels(), o.kernel_size())
                              .stride(o.stride())
                              .padding(o.padding())
                              .dilation(o.dilation())
                              .groups(o.groups())
                              .padding_mode(o.padding_mode())
                              .bias(true));
  const auto scale = bn->weight / torch::sqrt(bn->running_var + bn->options.eps());
  fused->weight.copy_(conv->weight * scale.view({-1, 1, 1, 1}));
  const auto b = conv->bias.defined() ? conv->bias : torch::zeros_like(bn->running_mean);
  fused->bias.copy_((b - bn->running_mean) * scale + bn->bias);
  fused->to(conv->weight.device(), conv->weight.scalar_type());
  return fused;
}

torch::nn::Sequential fold_batch_norm(const torch::nn::Sequential& s) {
  torch::nn::Sequential out;
  std::vector<torch::nn::AnyModule> mods(s->begin(), s->end());
  for (size_t i = 0; i < mods.size(); ++i) {
    auto conv = std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(mods[i].ptr());
    auto bn = i + 1 < mods.size() ? std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(mods[i + 1].ptr()) : nullptr;
    if (!conv || !bn) {
      out->push_back(mods[i]);
      continue;
    }
    out->push_back(fold_conv_bn(torch::nn::Conv2d(conv), torch::nn::BatchNorm2d(bn)));
    ++i;  // the BatchNorm is folded
  }
  return out;
}

void fold_batch_norm(UNetImpl& u) {
  u.replace_blocks([](const torch::nn::Sequential& s) { return fold_batch_norm(s); });
}

}  // namespace cellcount
