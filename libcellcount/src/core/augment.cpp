#include "core/augment.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/dataset.h"

namespace F = torch::nn::functional;

namespace cellcount {

torch::Tensor resize_to(const torch::Tensor& x, int64_t h, int64_t w) {
  if (x.size(-2) == h && x.size(-1) == w) return x;
  return F::interpolate(x.unsqueeze(0), F::InterpolateFuncOptions()
                                            .size(std::vector<int64_t>{h, w})
                                            .mode(torch::kBilinear)
                                            .align_corners(false)
                                            .antialias(h < x.size(-2) || w < x.size(-1)))[0];
}

torch::Tensor resize_by(const torch::Tensor& x, double scale) {
  if (scale == 1.0) return x;
  return resize_to(x, std::max<int64_t>(1, std::llround(x.size(-2) * scale)),
                   std::max<int64_t>(1, std::llround(x.size(-1) * scale)));
}

torch::Tensor resize_mass(const torch::Tensor& d, int64_t h, int64_t w) {
  if (d.size(-2) == h && d.size(-1) == w) return d;
  const bool flat = d.dim() == 2;
  auto r = resize_to(flat ? d.unsqueeze(0) : d, h, w);
  if (flat) r = r[0];
  const double before = d.sum().item<double>(), after = r.sum().item<double>();
  return after > 0 ? r * (before / after) : r;
}

torch::Tensor jitter_colour(const torch::Tensor& img, double s, std::mt19937_64& rng) {
  if (s <= 0) return img;
  const int64_t c = img.size(0);
  auto gain = torch::empty({c, 1, 1}), bias = torch::empty({c, 1, 1});
  for (int64_t i = 0; i < c; ++i) {
    gain[i] = 1.0 + s * (2.0 * uniform01(rng()) - 1.0);
    bias[i] = s * (2.0 * uniform01(rng()) - 1.0);
  }
  return img * gain + bias;
}

std::pair<torch::Tensor, torch::Tensor> zoom_pair(const torch::Tensor& image, const torch::Tensor& density, int64_t ch,
                                                  int64_t cw, double s, std::mt19937_64& rng) {
  if (s <= 0) return {image, density};
  const double z = std::pow(1.0 + s, 2.0 * uniform01(rng()) - 1.0);
  auto img = resize_by(image, z);
  auto den = resize_mass(density, img.size(1), img.size(2));
  const int64_t ph = std::max<int64_t>(0, ch - img.size(1)), pw = std::max<int64_t>(0, cw - img.size(2));
  if (ph > 0 || pw > 0) {
    const int64_t top = int64_t(uniform_index(rng(), uint64_t(ph + 1)));
    const int64_t left = int64_t(uniform_index(rng(), uint64_t(pw + 1)));
    const auto pad = F::PadFuncOptions({left, pw - left, top, ph - top}).mode(torch::kReflect);
    img = F::pad(img.unsqueeze(0), pad)[0];
    den = F::pad(den.unsqueeze(0), pad)[0];
  }
  return {img, den};
}

}  // namespace cellcount
