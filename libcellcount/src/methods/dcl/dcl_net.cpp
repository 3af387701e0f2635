#include "methods/dcl/dcl_net.h"

#include <cmath>

#include "core/error.h"
#include "core/options.h"

namespace F = torch::nn::functional;

namespace cellcount::dcl {

// model.json's "architecture": every field written, missing ones read as their defaults (older models).
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DclConfig, in_channels, width, batch_norm, gmp, gmp_points,
                                                gmp_offset_init, unet_base, cond_scale, target_scale)

nlohmann::json DclConfig::to_json() const { return *this; }

DclConfig DclConfig::from_json(const nlohmann::json& j) {
  check_field_types(j, DclConfig().to_json(), "architecture");
  const DclConfig c = j.get<DclConfig>();
  CC_CHECK(c.in_channels >= 1 && c.width > 0 && c.width <= 4 && c.gmp_points >= 1 && c.unet_base >= 1,
           CELLCOUNT_ERR_MODEL_FORMAT, "dcl architecture: bad in_channels, width, gmp_points or unet_base");
  return c;
}

GmpImpl::GmpImpl(int64_t channels, int64_t points, double offset_init) : k(points) {
  offset = register_module("offset", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, 2 * points, 1)));
  torch::NoGradGuard ng;
  // Offsets start as zero-mean small values: tiny weights, a small random bias.
  torch::nn::init::normal_(offset->weight, 0.0, 1e-3);
  torch::nn::init::normal_(offset->bias, 0.0, offset_init);
}

torch::Tensor GmpImpl::offsets(const torch::Tensor& x) {
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
  return offset->forward(x).view({n, k, 2, h, w});
}

torch::Tensor GmpImpl::forward(const torch::Tensor& x) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  auto off = offsets(x).to(torch::kFloat32);  // [N,K,2,H,W]
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(x.device());
  auto ys = torch::arange(h, opts).view({1, 1, h, 1}).expand({n, k, h, w});
  auto xs = torch::arange(w, opts).view({1, 1, 1, w}).expand({n, k, h, w});
  // Sampled positions in pixels -> [-1,1] (align_corners=true: -1 and 1 are the centres of the edge pixels).
  auto px = xs + off.select(2, 0), py = ys + off.select(2, 1);
  auto gx = w > 1 ? px * (2.0 / double(w - 1)) - 1.0 : px * 0.0;
  auto gy = h > 1 ? py * (2.0 / double(h - 1)) - 1.0 : py * 0.0;
  auto grid = torch::stack({gx, gy}, -1).view({n, k * h, w, 2});  // the K samples stacked along H
  // grid_sample in fp32 (no bf16 CPU kernel in LibTorch 1.13); positions outside read zeros.
  auto sampled = F::grid_sample(x.to(torch::kFloat32), grid,
                                F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kZeros).align_corners(true));
  // sampled: [N,C,K*H,W] -> mean over K, no parameters.
  auto agg = sampled.view({n, c, k, h, w}).mean(2);
  return x + agg.to(x.scalar_type());
}

namespace {
int64_t scaled(int64_t ch, double width) { return std::max<int64_t>(8, int64_t(std::llround(ch * width))); }

torch::nn::Sequential conv_block(int64_t in, int64_t out, bool bn) {
  torch::nn::Sequential s;
  s->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1).bias(!bn)));
  if (bn) s->push_back(torch::nn::BatchNorm2d(out));
  s->push_back(torch::nn::ReLU(torch::nn::ReLUOptions(true)));
  return s;
}
}  // namespace

CounterImpl::CounterImpl(const DclConfig& c) : use_gmp(c.gmp) {
  // VGG-19 configuration "E" without the last max-pool: output stride 16.
  const std::vector<int64_t> cfg = {64, 64, -1, 128, 128, -1, 256, 256, 256, 256, -1, 512, 512, 512, 512, -1,
                                    512, 512, 512, 512};
  features = torch::nn::Sequential();
  int64_t in = c.in_channels;
  for (int64_t v : cfg) {
    if (v < 0) {
      features->push_back(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2).stride(2)));
    } else {
      const int64_t out = scaled(v, c.width);
      features->extend(*conv_block(in, out, c.batch_norm));
      in = out;
    }
  }
  register_module("features", features);
  if (use_gmp) gmp = register_module("gmp", Gmp(in, c.gmp_points, c.gmp_offset_init));
  head = register_module("head", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, 1, 1)));
  for (auto& m : features->modules(false))
    if (auto* conv = m->as<torch::nn::Conv2d>()) torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
}

torch::Tensor CounterImpl::forward(const torch::Tensor& x) {
  auto f = features->forward(x);
  f = F::interpolate(f, F::InterpolateFuncOptions()
                            .scale_factor(std::vector<double>{2.0, 2.0})
                            .mode(torch::kBilinear)
                            .align_corners(true));
  if (use_gmp) f = gmp->forward(f);
  return torch::abs(head->forward(f));  // count = sum = L1 norm of the map
}

LocalizerImpl::LocalizerImpl(const DclConfig& c) : cond_scale(c.cond_scale) {
  unet = register_module("unet", UNet(c.in_channels + 1, c.unet_base));
}

torch::Tensor LocalizerImpl::forward(const torch::Tensor& image, const torch::Tensor& coarse) {
  const int64_t h = image.size(2), w = image.size(3);
  const double area = double(h * w) / double(coarse.size(2) * coarse.size(3));
  // Coarse density upsampled to full size, mass-preserving (divide by the area ratio), then scaled.
  auto up = F::interpolate(coarse, F::InterpolateFuncOptions()
                                       .size(std::vector<int64_t>{h, w})
                                       .mode(torch::kBilinear)
                                       .align_corners(false)) *
            (cond_scale / area);
  return unet->forward(torch::cat({image, up.to(image.scalar_type())}, 1));
}

DclNetImpl::DclNetImpl(const DclConfig& c) : config(c) {
  counter = register_module("counter", Counter(c));
  localizer = register_module("localizer", Localizer(c));
}

}  // namespace cellcount::dcl
