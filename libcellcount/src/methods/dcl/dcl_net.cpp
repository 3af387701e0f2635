#include "methods/dcl/dcl_net.h"

#include <cmath>

#include <ATen/Parallel.h>
#include <torch/csrc/jit/frontend/tracer.h>

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

namespace {

// The mean over the K sampled positions of bilinear samples of x (zeros outside), for inference on the CPU: the same
// sampling as GmpImpl::forward's grid_sample (align_corners, zero padding), without the [N, C, K*H, W] intermediate.
// Per position the K x 4 corner weights are computed once and each corner adds a contiguous run of C channels (x
// channels-last in fp32). Issue 25: grid_sample took 100 ms of a 1024 x 1024 dcl-vgg count (16 of 26 % in bf16),
// this a few ms. Equal to the grid_sample path to float rounding (tests/unit/methods/dcl/test_dcl.cpp).
torch::Tensor sampled_mean(const torch::Tensor& x, const torch::Tensor& off) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), k = off.size(1);
  const auto xf = x.to(torch::kFloat32).permute({0, 2, 3, 1}).contiguous();  // [N,H,W,C]
  const auto of = off.to(torch::kFloat32).contiguous();                       // [N,K,2,H,W]
  auto out = torch::zeros({n, h, w, c}, xf.options());
  const float* xs = xf.data_ptr<float>();
  const float* os = of.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const int64_t hw = h * w;
  const float inv_k = 1.0f / float(k);
  at::parallel_for(0, n * hw, 16, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t b = p / hw, yx = p % hw, y = yx / w, xx = yx % w;
      float* o = dst + p * c;
      for (int64_t j = 0; j < k; ++j) {
        const float* oj = os + ((b * k + j) * 2) * hw + yx;
        // A one-pixel axis samples its only column / row (grid_sample's normalised 0).
        const float sx = w > 1 ? float(xx) + oj[0] : 0.0f, sy = h > 1 ? float(y) + oj[hw] : 0.0f;
        if (!(sx > -1.0f && sx < float(w) && sy > -1.0f && sy < float(h))) continue;  // all corners outside, or NaN
        const float fx0 = std::floor(sx), fy0 = std::floor(sy);
        const int64_t x0 = int64_t(fx0), y0 = int64_t(fy0);
        const float ax = sx - fx0, ay = sy - fy0;
        const float wgt[4] = {(1 - ay) * (1 - ax), (1 - ay) * ax, ay * (1 - ax), ay * ax};
        const int64_t cy[4] = {y0, y0, y0 + 1, y0 + 1}, cx[4] = {x0, x0 + 1, x0, x0 + 1};
        for (int q = 0; q < 4; ++q) {
          if (cy[q] < 0 || cy[q] >= h || cx[q] < 0 || cx[q] >= w || wgt[q] == 0.0f) continue;
          const float* s = xs + ((b * h + cy[q]) * w + cx[q]) * c;
          const float wq = wgt[q] * inv_k;
          for (int64_t ch = 0; ch < c; ++ch) o[ch] += wq * s[ch];
        }
      }
    }
  });
  return out.permute({0, 3, 1, 2});  // [N,C,H,W], channels-last strides
}

}  // namespace

torch::Tensor GmpImpl::forward(const torch::Tensor& x) {
  // Not while tracing (the BioImage Model Zoo export): the direct sampler reads raw memory, which a trace would
  // record as a constant.
  if (!torch::GradMode::is_enabled() && x.device().is_cpu() && !torch::jit::tracer::isTracing())
    return x + sampled_mean(x, offsets(x)).to(x.scalar_type());
  return forward_grid_sample(x);
}

torch::Tensor GmpImpl::forward_grid_sample(const torch::Tensor& x) {
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
