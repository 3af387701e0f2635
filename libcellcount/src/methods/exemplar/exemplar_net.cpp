#include "methods/exemplar/exemplar_net.h"

#include <cmath>

#include "core/error.h"
#include "core/fold_bn.h"
#include "core/options.h"

namespace F = torch::nn::functional;
namespace nn = torch::nn;

namespace cellcount::exemplar {

// model.json's "architecture": every field written, missing ones read as their defaults (older models).
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ExemplarConfig, in_channels, width, dim, head_width, exemplar_size,
                                                seg_dim, target_scale, localizer_base, cond_scale)

nlohmann::json ExemplarConfig::to_json() const { return *this; }

ExemplarConfig ExemplarConfig::from_json(const nlohmann::json& j) {
  check_field_types(j, ExemplarConfig().to_json(), "architecture");
  const ExemplarConfig c = j.get<ExemplarConfig>();
  CC_CHECK(c.in_channels >= 1 && c.width > 0 && c.width <= 4 && c.dim >= 1 && c.head_width > 0 &&
               c.exemplar_size >= 16 && c.exemplar_size % 16 == 0 && c.seg_dim >= 1 && c.target_scale > 0 &&
               c.localizer_base >= 0 && c.localizer_base <= 256 && c.cond_scale > 0,
           CELLCOUNT_ERR_MODEL_FORMAT, "exemplar architecture: bad in_channels, width, dim, head_width, exemplar_size, seg_dim, localizer_base or cond_scale");
  return c;
}

namespace {
int64_t scaled(int64_t c, double w) { return std::max<int64_t>(8, std::llround(c * w)); }
nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride = 1, bool bias = false) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2).bias(bias));
}
}  // namespace

BottleneckImpl::BottleneckImpl(int64_t in, int64_t planes, int64_t out, int64_t stride) {
  c1 = register_module("c1", conv(in, planes, 1));
  b1 = register_module("b1", nn::BatchNorm2d(planes));
  c2 = register_module("c2", conv(planes, planes, 3, stride));  // torchvision's v1.5: stride on the 3x3
  b2 = register_module("b2", nn::BatchNorm2d(planes));
  c3 = register_module("c3", conv(planes, out, 1));
  b3 = register_module("b3", nn::BatchNorm2d(out));
  if (stride != 1 || in != out) down = register_module("down", nn::Sequential(conv(in, out, 1, stride), nn::BatchNorm2d(out)));
}

torch::Tensor BottleneckImpl::forward(const torch::Tensor& x) {
  if (folded) {
    auto y = p3(p2(p1(x)));
    const auto shortcut = down.is_empty() ? x : down->forward(x);
    if (y.scalar_type() == shortcut.scalar_type() && y.sizes() == shortcut.sizes()) return y.add_(shortcut).relu_();
    return torch::relu(y + shortcut);
  }
  auto y = torch::relu(b1(c1(x)));
  y = torch::relu(b2(c2(y)));
  y = b3(c3(y));
  return torch::relu(y + (down.is_empty() ? x : down->forward(x)));
}

void BottleneckImpl::fold_batch_norm() {
  if (folded) return;
  c1 = replace_module("c1", fold_conv_bn(c1, b1));
  c2 = replace_module("c2", fold_conv_bn(c2, b2));
  c3 = replace_module("c3", fold_conv_bn(c3, b3));
  if (!down.is_empty()) down = replace_module("down", cellcount::pack_for_inference(cellcount::fold_batch_norm(down)));
  p1 = PackedConv(c1, true);
  p2 = PackedConv(c2, true);
  p3 = PackedConv(c3, false);
  folded = true;
}

BackboneImpl::BackboneImpl(int64_t in_channels, double width) {
  const int64_t c0 = scaled(64, width);
  stem = register_module("stem", nn::Sequential(conv(in_channels, c0, 7, 2), nn::BatchNorm2d(c0), nn::ReLU(),
                                                nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2).padding(1))));
  int64_t in = c0;
  auto layer = [&](int64_t planes, int64_t blocks, int64_t stride) {
    nn::Sequential s;
    const int64_t p = scaled(planes, width), out = 4 * p;
    for (int64_t b = 0; b < blocks; ++b) {
      s->push_back(Bottleneck(in, p, out, b == 0 ? stride : 1));
      in = out;
    }
    return s;
  };
  layer1 = register_module("layer1", layer(64, 3, 1));
  layer2 = register_module("layer2", layer(128, 4, 2));
  layer3 = register_module("layer3", layer(256, 6, 2));
  out_channels = in;
}

torch::Tensor BackboneImpl::forward(const torch::Tensor& x) {
  return layer3->forward(layer2->forward(layer1->forward(stem->forward(x))));
}

void BackboneImpl::fold_batch_norm() {
  stem = replace_module("stem", cellcount::pack_for_inference(cellcount::fold_batch_norm(stem)));
  for (auto* layer : {&layer1, &layer2, &layer3})
    for (auto& block : **layer) block.get<Bottleneck>()->fold_batch_norm();
}

CounterImpl::CounterImpl(const ExemplarConfig& c) : dim(c.dim) {
  backbone = register_module("backbone", Backbone(c.in_channels, c.width));
  proj = register_module("proj", nn::Conv2d(nn::Conv2dOptions(backbone->out_channels, c.dim, 1)));
  ex_proj = register_module("ex_proj", nn::Linear(backbone->out_channels, c.dim));
  // CODE-FACTS 2.2 "DensityX16": 7x7 -> 196, 5x5 -> 128, 3x3 -> 64, 1x1 -> 32, 1x1 -> 1, x2 after the first four.
  const int64_t k[5] = {7, 5, 3, 1, 1};
  const int64_t widths[5] = {scaled(196, c.head_width), scaled(128, c.head_width), scaled(64, c.head_width),
                             scaled(32, c.head_width), 1};
  int64_t in = c.dim + 1;
  for (int i = 0; i < 5; ++i) {
    head.push_back(register_module("head" + std::to_string(i), conv(in, widths[i], k[i], 1, true)));
    in = widths[i];
  }
}

torch::Tensor CounterImpl::features(const torch::Tensor& image) { return proj(backbone(image)); }

torch::Tensor CounterImpl::exemplar_vectors(const torch::Tensor& crops) {
  return ex_proj(backbone(crops).mean({2, 3}));
}

torch::Tensor CounterImpl::similarity(const torch::Tensor& f, const torch::Tensor& b) const {
  // [N,dim,h,w] x [N,E,dim] -> [N,E,h,w] -> mean over E.
  auto s = torch::einsum("ndhw,ned->nehw", {f, b.to(f.scalar_type())});
  return s.mean(1, true) / std::sqrt(double(dim));
}

torch::Tensor CounterImpl::density(const torch::Tensor& f, const torch::Tensor& s) {
  auto x = torch::cat({f, s.to(f.scalar_type())}, 1);
  for (size_t i = 0; i < head.size(); ++i) {
    const bool last = i + 1 == head.size();
    // ReLU after each layer as CODE-FACTS 2.2, except the last: a ReLU there dies (all-zero output, no
    // gradient) within the first epoch when training from scratch, so it is a softplus (choice).
    if (!packed_head.empty())
      x = packed_head[i]->forward(x);  // the ReLU fused
    else
      x = last ? head[i]->forward(x) : torch::relu(head[i]->forward(x));
    if (last) x = F::softplus(x);
    if (i < 4) {
      // Without gradient a bf16 map is upsampled in fp32 (issue 25: LibTorch 1.13's bf16 bilinear took 173 of
      // 1008 ms of a 1024 x 1024 bf16 count, fp32 27 ms); the next conv casts it back.
      if (!torch::GradMode::is_enabled() && x.scalar_type() == torch::kBFloat16) x = x.to(torch::kFloat32);
      x = F::interpolate(x, F::InterpolateFuncOptions().scale_factor(std::vector<double>{2.0, 2.0})
                                .mode(torch::kBilinear).align_corners(true));
    }
  }
  return x;
}

void CounterImpl::pack_for_inference() {
  packed_head.clear();
  for (size_t i = 0; i < head.size(); ++i) packed_head.push_back(PackedConv(head[i], i + 1 < head.size()));
}

SegmenterImpl::SegmenterImpl(const ExemplarConfig& c) {
  backbone = register_module("backbone", Backbone(c.in_channels, c.width));
  proj = register_module("proj", nn::Conv2d(nn::Conv2dOptions(backbone->out_channels, c.seg_dim, 1)));
}

torch::Tensor SegmenterImpl::features(const torch::Tensor& image) { return proj(backbone(image)); }

torch::Tensor SegmenterImpl::exemplar_vectors(const torch::Tensor& crops) { return features(crops).mean({2, 3}); }

torch::Tensor SegmenterImpl::mask(const torch::Tensor& p, const torch::Tensor& v) {
  auto vm = v.to(torch::kFloat32).mean(1);                            // [N,d]
  auto pn = F::normalize(p.to(torch::kFloat32), F::NormalizeFuncOptions().dim(1).eps(1e-6));
  auto vn = F::normalize(vm, F::NormalizeFuncOptions().dim(1).eps(1e-6));
  return torch::einsum("ndhw,nd->nhw", {pn, vn}).unsqueeze(1);       // [N,1,h,w]
}

ExemplarNetImpl::ExemplarNetImpl(const ExemplarConfig& c) : config(c) {
  counter = register_module("counter", Counter(c));
  segmenter = register_module("segmenter", Segmenter(c));
  if (c.localizer_base > 0) localizer = register_module("localizer", UNet(c.in_channels + 1, c.localizer_base));
}

torch::Tensor crop_boxes(const torch::Tensor& image, const std::vector<std::array<float, 4>>& boxes, int64_t size) {
  const int64_t H = image.size(1), W = image.size(2);
  std::vector<torch::Tensor> crops;
  for (const auto& b : boxes) {
    const int64_t x0 = std::clamp<int64_t>(int64_t(std::floor(b[0])), 0, W - 1);
    const int64_t y0 = std::clamp<int64_t>(int64_t(std::floor(b[1])), 0, H - 1);
    const int64_t x1 = std::clamp<int64_t>(int64_t(std::ceil(b[2])), x0 + 1, W);
    const int64_t y1 = std::clamp<int64_t>(int64_t(std::ceil(b[3])), y0 + 1, H);
    auto c = image.slice(1, y0, y1).slice(2, x0, x1).unsqueeze(0);
    crops.push_back(F::interpolate(c, F::InterpolateFuncOptions()
                                          .size(std::vector<int64_t>{size, size})
                                          .mode(torch::kBilinear)
                                          .align_corners(false)));
  }
  return torch::cat(crops, 0);
}

torch::Tensor ExemplarNetImpl::localize(const torch::Tensor& image, const torch::Tensor& density) {
  auto cond = (density * config.cond_scale).to(image.scalar_type());
  return localizer->forward(torch::cat({image, cond}, 1)) / config.target_scale;
}

void ExemplarNetImpl::fold_for_inference() {
  counter->backbone->fold_batch_norm();
  segmenter->backbone->fold_batch_norm();
  counter->pack_for_inference();
  if (localizer) {
    cellcount::fold_batch_norm(*localizer);
    cellcount::pack_for_inference(*localizer);
  }
  eval();
}

}  // namespace cellcount::exemplar
