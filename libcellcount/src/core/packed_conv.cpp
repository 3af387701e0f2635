#include "core/packed_conv.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/jit/frontend/tracer.h>

#include <string>
#include <variant>
#include <vector>

#include "core/torch_compat.h"
#include "core/unet.h"

namespace cellcount {
namespace {

// The operators, when this LibTorch registers them (LibTorch built with oneDNN); looked up once.
struct PackedOps {
  c10::optional<c10::OperatorHandle> prepack, run;
};
const PackedOps& packed_ops() {
  static const PackedOps ops = [] {
    PackedOps o;
    auto& d = c10::Dispatcher::singleton();
    o.prepack = d.findSchema({"mkldnn_prepacked::conv2d_prepack", ""});
    o.run = d.findSchema({"mkldnn_prepacked::conv2d_run", ""});
    if (!o.prepack || !o.run) o.prepack.reset(), o.run.reset();
    return o;
  }();
  return ops;
}

std::vector<int64_t> two(const torch::ExpandingArray<2>& a) { return {(*a)[0], (*a)[1]}; }

// The conv's explicit padding, or null for "same" / "valid". The options hold a c10::variant in LibTorch 1.13 and a
// std::variant in 2.x: an unqualified get_if finds either (ADL; `using` makes the name a template here).
const torch::ExpandingArray<2>* explicit_padding(const torch::nn::detail::ConvNdOptions<2>& o) {
  using std::get_if;
  return get_if<torch::ExpandingArray<2>>(&o.padding());
}
bool zero_padding_mode(const torch::nn::detail::ConvNdOptions<2>& o) {
  using std::get_if;
  return get_if<torch::enumtype::kZeros>(&o.padding_mode()) != nullptr;
}

}  // namespace

PackedConvImpl::PackedConvImpl(torch::nn::Conv2d c, bool r) : conv(register_module("conv", std::move(c))), relu(r) {}

// The type the convolution computes in: under CPU autocast (exemplar's bf16 inference) autocast's type, as conv2d
// would cast its input and weights to it; else the input's.
torch::ScalarType PackedConvImpl::compute_type(const torch::Tensor& x) {
  if (torch_compat::autocast_enabled(c10::DeviceType::CPU) && x.is_floating_point())
    return torch_compat::autocast_dtype(c10::DeviceType::CPU);
  return x.scalar_type();
}

bool PackedConvImpl::packable(const torch::Tensor& x, torch::ScalarType t) const {
  const auto& o = conv->options;
  const bool autocast = torch_compat::autocast_enabled(c10::DeviceType::CPU);
  return packed_ops().run.has_value() && x.device().is_cpu() && x.dim() == 4 &&
         (t == torch::kFloat32 || t == torch::kBFloat16) && (autocast || t == conv->weight.scalar_type()) &&
         conv->weight.device().is_cpu() &&
         !torch::GradMode::is_enabled() && !torch::jit::tracer::isTracing() && zero_padding_mode(o) && explicit_padding(o) != nullptr;
}

torch::Tensor PackedConvImpl::forward(const torch::Tensor& x) {
  const auto type = compute_type(x);
  const bool packed = packable(x, type);
  last_packed_ = packed;
  if (!packed) {
    auto y = conv->forward(x);
    return relu ? torch::relu(y) : y;
  }
  const bool channels_last = x.suggest_memory_format() == torch::MemoryFormat::ChannelsLast;
  const auto& w = conv->weight;
  c10::IValue context;
  {
    std::lock_guard<std::mutex> lock(packing_);
    if (context_.isNone() || packed_weights_ != w.data_ptr() || packed_type_ != type ||
        packed_channels_last_ != channels_last) {
      const auto& o = conv->options;
      const auto format = channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
      c10::optional<torch::Tensor> bias;
      if (conv->bias.defined()) bias = conv->bias.to(type).contiguous();
      torch::jit::Stack s;
      s.emplace_back(w.to(type).contiguous(format));
      s.emplace_back(bias);
      s.emplace_back(two(o.stride()));
      s.emplace_back(two(*explicit_padding(o)));
      s.emplace_back(two(o.dilation()));
      s.emplace_back(o.groups());
      s.emplace_back(x.sizes().vec());
      s.emplace_back(std::string(relu ? "relu" : "none"));
      packed_ops().prepack->callBoxed(&s);
      context_ = std::move(s.at(0));
      packed_weights_ = w.data_ptr();
      packed_type_ = type;
      packed_channels_last_ = channels_last;
    }
    context = context_;
  }
  torch::jit::Stack s{x.to(type), std::move(context)};
  packed_ops().run->callBoxed(&s);
  return s.at(0).toTensor();
}

torch::Tensor max_pool_2x2(const torch::Tensor& x) {
  if ((torch::GradMode::is_enabled() && x.requires_grad()) || torch::jit::tracer::isTracing())
    return torch::nn::functional::max_pool2d(x, torch::nn::functional::MaxPool2dFuncOptions(2).stride(2));
  const int64_t h = x.size(-2) / 2 * 2, w = x.size(-1) / 2 * 2;
  const auto rows = torch::maximum(x.slice(-2, 0, h, 2), x.slice(-2, 1, h, 2));
  return torch::maximum(rows.slice(-1, 0, w, 2), rows.slice(-1, 1, w, 2));
}

torch::nn::Sequential pack_for_inference(const torch::nn::Sequential& s) {
  torch::nn::Sequential out;
  std::vector<torch::nn::AnyModule> mods(s->begin(), s->end());
  for (size_t i = 0; i < mods.size(); ++i) {
    if (auto conv = std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(mods[i].ptr())) {
      const bool relu = i + 1 < mods.size() && std::dynamic_pointer_cast<torch::nn::ReLUImpl>(mods[i + 1].ptr());
      out->push_back(PackedConv(torch::nn::Conv2d(conv), relu));
      if (relu) ++i;
      continue;
    }
    if (auto pool = std::dynamic_pointer_cast<torch::nn::MaxPool2dImpl>(mods[i].ptr())) {
      const auto& o = pool->options;
      const bool two_by_two = (*o.kernel_size())[0] == 2 && (*o.kernel_size())[1] == 2 && (*o.stride())[0] == 2 &&
                              (*o.stride())[1] == 2 && (*o.padding())[0] == 0 && (*o.padding())[1] == 0 &&
                              (*o.dilation())[0] == 1 && (*o.dilation())[1] == 1 && !o.ceil_mode();
      if (two_by_two) {
        out->push_back(MaxPool2x2());
        continue;
      }
    }
    out->push_back(mods[i]);
  }
  return out;
}

void pack_for_inference(UNetImpl& u) {
  u.replace_blocks([](const torch::nn::Sequential& s) { return pack_for_inference(s); });
  u.packed_up.clear();
  for (auto& c : u.up) u.packed_up.push_back(PackedConv(c, false));
  u.packed_out = PackedConv(u.out, false);
}

}  // namespace cellcount
