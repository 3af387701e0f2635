#include "core/unet.h"

namespace F = torch::nn::functional;

namespace cellcount {
namespace {
torch::nn::Sequential conv_block(int64_t in, int64_t out) {
  torch::nn::Sequential s;
  s->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1).bias(false)));
  s->push_back(torch::nn::BatchNorm2d(out));
  s->push_back(torch::nn::ReLU(torch::nn::ReLUOptions(true)));
  return s;
}
}  // namespace

UNetImpl::UNetImpl(int64_t in_channels, int64_t base) {
  int64_t in = in_channels;
  for (int l = 0; l < 4; ++l) {
    const int64_t out = base << l;
    auto block = torch::nn::Sequential();
    block->extend(*conv_block(in, out));
    block->extend(*conv_block(out, out));
    down.push_back(register_module("down" + std::to_string(l), block));
    in = out;
  }
  bottom = torch::nn::Sequential();
  bottom->extend(*conv_block(in, base << 4));
  bottom->extend(*conv_block(base << 4, base << 4));
  register_module("bottom", bottom);
  in = base << 4;
  for (int l = 3; l >= 0; --l) {
    const int64_t out = base << l;
    up.push_back(register_module("up" + std::to_string(l),
                                 torch::nn::Conv2d(torch::nn::Conv2dOptions(in, 4 * out, 1))));
    auto block = torch::nn::Sequential();
    block->extend(*conv_block(2 * out, out));
    block->extend(*conv_block(out, out));
    up_conv.push_back(register_module("up_conv" + std::to_string(l), block));
    in = out;
  }
  out = register_module("out", torch::nn::Conv2d(torch::nn::Conv2dOptions(base, 1, 1)));
  torch::NoGradGuard ng;
  torch::nn::init::constant_(out->bias, -4.0);  // softplus(-4) ~ 0.018: starts near an empty map
}

void UNetImpl::replace_blocks(const std::function<torch::nn::Sequential(const torch::nn::Sequential&)>& f) {
  for (size_t l = 0; l < down.size(); ++l) down[l] = replace_module("down" + std::to_string(l), f(down[l]));
  bottom = replace_module("bottom", f(bottom));
  for (size_t i = 0; i < up_conv.size(); ++i)
    up_conv[i] = replace_module("up_conv" + std::to_string(up_conv.size() - 1 - i), f(up_conv[i]));
}

torch::Tensor UNetImpl::forward(const torch::Tensor& x0) {
  std::vector<torch::Tensor> skips;
  auto x = x0;
  for (auto& d : down) {
    x = d->forward(x);
    skips.push_back(x);
    x = max_pool_2x2(x);
  }
  x = bottom->forward(x);
  for (size_t i = 0; i < up.size(); ++i) {
    x = torch::pixel_shuffle(packed_up.empty() ? up[i]->forward(x) : packed_up[i]->forward(x), 2);
    x = up_conv[i]->forward(torch::cat({x, skips[skips.size() - 1 - i]}, 1));
  }
  return F::softplus(packed_out.is_empty() ? out->forward(x) : packed_out->forward(x));  // non-negative, never a dead output
}

}  // namespace cellcount
