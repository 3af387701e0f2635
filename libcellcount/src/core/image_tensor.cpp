#include "core/image_tensor.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <tuple>

#include "core/error.h"
#include "core/limits.h"
#include "core/log.h"

namespace cellcount {

namespace {
int64_t dtype_size(int32_t dtype) {
  switch (dtype) {
    case CELLCOUNT_DTYPE_U8: return 1;
    case CELLCOUNT_DTYPE_U16: return 2;
    case CELLCOUNT_DTYPE_F32: return 4;
    default: return 0;
  }
}
}  // namespace

torch::Tensor view_to_tensor(const cellcount_image_view& v, const char* what) {
  const std::string w = what;
  CC_CHECK(v.data != nullptr, CELLCOUNT_ERR_INVALID_ARGUMENT, w + ": data is NULL");
  CC_CHECK(v.width >= 1 && v.height >= 1, CELLCOUNT_ERR_INVALID_ARGUMENT,
           w + ": expected width and height >= 1, got " + std::to_string(v.width) + " x " + std::to_string(v.height));
  CC_CHECK(v.channels >= 1 && v.channels <= kMaxChannels, CELLCOUNT_ERR_INVALID_ARGUMENT,
           w + ": expected 1.." + std::to_string(kMaxChannels) + " channels, got " + std::to_string(v.channels));
  const int64_t es = dtype_size(v.dtype);
  CC_CHECK(es > 0, CELLCOUNT_ERR_INVALID_ARGUMENT,
           w + ": expected dtype CELLCOUNT_DTYPE_U8 (1), U16 (2) or F32 (3), got " + std::to_string(v.dtype));
  CC_CHECK(v.reserved == 0, CELLCOUNT_ERR_INVALID_ARGUMENT, w + ": reserved field must be 0");
  CC_CHECK(v.width <= kMaxImageSide && v.height <= kMaxImageSide, CELLCOUNT_ERR_INVALID_ARGUMENT,
           w + ": image side larger than " + std::to_string(kMaxImageSide) + " pixels");
  CC_CHECK(v.width * v.height <= kMaxImagePixels, CELLCOUNT_ERR_INVALID_ARGUMENT,
           w + ": " + std::to_string(v.width) + " x " + std::to_string(v.height) + " is more than the " +
               std::to_string(kMaxImagePixels) + " pixels (16384 x 16384) one image may have; count it in parts");
  const int64_t packed = v.width * v.channels * es;
  const int64_t stride = v.row_stride_bytes == 0 ? packed : v.row_stride_bytes;
  CC_CHECK(stride >= packed, CELLCOUNT_ERR_INVALID_ARGUMENT,
           w + ": row_stride_bytes " + std::to_string(stride) + " is smaller than width*channels*pixel size " +
               std::to_string(packed));
  // The last row starts stride*(height-1) bytes in: a stride that makes that overflow, or lie beyond any
  // address space (2^48 bytes), describes no buffer; refused before the multiplication (signed overflow
  // is undefined, and the wrapped offset read wild memory; found by the fuzz target predict).
  constexpr int64_t kMaxExtent = int64_t(1) << 48;
  CC_CHECK(v.height == 1 || stride <= (kMaxExtent - packed) / (v.height - 1), CELLCOUNT_ERR_INVALID_ARGUMENT,
           w + ": row_stride_bytes " + std::to_string(stride) + " x " + std::to_string(v.height - 1) +
               " rows is beyond any buffer (more than 2^48 bytes)");
  auto out = torch::empty({v.height, v.width, v.channels}, torch::kFloat32);
  float* dst = out.data_ptr<float>();
  const int64_t n_row = v.width * v.channels;
  const auto* base = static_cast<const uint8_t*>(v.data);
  bool finite = true, bounded = true;
  for (int64_t y = 0; y < v.height; ++y) {
    const uint8_t* row = base + y * stride;
    float* d = dst + y * n_row;
    if (v.dtype == CELLCOUNT_DTYPE_U8) {
      for (int64_t i = 0; i < n_row; ++i) d[i] = row[i];
    } else if (v.dtype == CELLCOUNT_DTYPE_U16) {
      for (int64_t i = 0; i < n_row; ++i) {
        uint16_t p;
        std::memcpy(&p, row + 2 * i, 2);
        d[i] = p;
      }
    } else {
      std::memcpy(d, row, n_row * 4);
      for (int64_t i = 0; i < n_row; ++i) finite = finite && std::isfinite(d[i]);
      for (int64_t i = 0; i < n_row; ++i) bounded = bounded && std::fabs(d[i]) <= float(kMaxAbsPixel);
    }
  }
  CC_CHECK(finite, CELLCOUNT_ERR_INVALID_ARGUMENT, w + ": contains NaN or infinite pixels");
  // Choice: refused, not clipped: a single pixel of 3.4e38 made the count NaN (with OK) on every model.
  if (!bounded) {
    char limit[32];
    std::snprintf(limit, sizeof limit, "%g", kMaxAbsPixel);
    fail(CELLCOUNT_ERR_INVALID_ARGUMENT, w + ": contains pixels beyond +-" + limit + " (the limit for float images; rescale it)");
  }
  return out.permute({2, 0, 1}).contiguous();
}

torch::Tensor image_to_tensor(const Image& im) {
  CC_CHECK(im.width >= 1 && im.height >= 1 && im.channels >= 1 &&
               im.data.size() == size_t(im.width * im.height * im.channels),
           CELLCOUNT_ERR_INVALID_ARGUMENT, "image: inconsistent size");
  cellcount_image_view v{im.data.data(), im.width, im.height, im.channels, 0, CELLCOUNT_DTYPE_F32, 0};
  return view_to_tensor(v);
}

Image tensor_to_image(const torch::Tensor& t0) {
  auto t = t0.detach().to(torch::kCPU, torch::kFloat32);
  if (t.dim() == 2) t = t.unsqueeze(0);
  CC_CHECK(t.dim() == 3, CELLCOUNT_ERR_INTERNAL, "tensor_to_image: expected [C,H,W]");
  t = t.permute({1, 2, 0}).contiguous();
  Image im;
  im.height = t.size(0);
  im.width = t.size(1);
  im.channels = t.size(2);
  im.source_dtype = "f32";
  im.data.assign(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
  return im;
}

nlohmann::json Normalization::to_json() const {
  if (mode == "fixed") return {{"mode", mode}, {"scale", scale}, {"offset", offset}};
  return {{"mode", mode}, {"p_low", p_low}, {"p_high", p_high}};
}

Normalization Normalization::from_json(const nlohmann::json& j) {
  Normalization n;
  n.mode = j.value("mode", n.mode);
  n.p_low = j.value("p_low", n.p_low);
  n.p_high = j.value("p_high", n.p_high);
  n.scale = j.value("scale", n.scale);
  n.offset = j.value("offset", n.offset);
  CC_CHECK(n.mode == "percentile" || n.mode == "fixed", CELLCOUNT_ERR_MODEL_FORMAT,
           "normalization mode must be \"percentile\" or \"fixed\", got \"" + n.mode + "\"");
  CC_CHECK(n.p_low >= 0 && n.p_low < n.p_high && n.p_high <= 100, CELLCOUNT_ERR_MODEL_FORMAT,
           "normalization percentiles must satisfy 0 <= p_low < p_high <= 100");
  return n;
}

namespace {

// The p_low and p_high percentiles of all values of `image` (on a subsample for large images: exact enough,
// bounded cost).
std::pair<double, double> percentiles(const torch::Tensor& image, double p_low, double p_high) {
  auto flat = image.reshape({-1});
  const int64_t max_samples = 1 << 20;
  if (flat.numel() > max_samples) {
    const int64_t step = (flat.numel() + max_samples - 1) / max_samples;
    flat = flat.slice(0, 0, flat.numel(), step);
  }
  // Order statistics by selection, not a full sort (issue 25: a sort of the 1M values of a 1024 x 1024 image took
  // ~24 ms, and a dcl-vgg count made four); the same values, read as doubles (exact for every pixel type).
  // A copy of our own (copy = true: never the caller's pixels, which nth_element reorders).
  auto values = flat.to(torch::kFloat64, /*non_blocking=*/false, /*copy=*/true).contiguous();
  double* v = values.data_ptr<double>();
  const int64_t last = values.numel() - 1;
  auto rank = [&](int64_t k) {
    std::nth_element(v, v + k, v + last + 1);
    return v[k];
  };
  auto at = [&](double p) {
    const double pos = p / 100.0 * last;
    const int64_t i0 = int64_t(std::floor(pos));
    const int64_t i1 = std::min(i0 + 1, last);
    const double f = pos - i0;
    const double v0 = rank(i0);
    return f == 0 ? v0 : v0 * (1 - f) + rank(i1) * f;
  };
  return {at(p_low), at(p_high)};
}

// Isolated spikes beyond the image's bulk set to their brightest neighbour's value; returns how many. With
// a = sign * (x - ref) (sign +1, ref = lo: bright spikes; sign -1, ref = hi: dark spikes, mirrored), a pixel is a
// spike when a > kHotBulk * range and a > kHotRatio x the largest a of its 8 neighbours (outside the image a = 0).
// Neighbours are read from the input, changes written to a copy made at the first spike (x is the caller's).
// Choice (issue 25): the work goes in bands of kBand rows with a one-row halo, so the temporaries are band-sized:
// done on the whole image at once they were ~1 GiB at 8192 x 8192 (the 2.09 GiB peak of a dense mosaic).
constexpr double kHotBulk = 2.0, kHotRatio = 8.0;
constexpr int64_t kBand = 256;
int64_t clear_spikes(torch::Tensor& x, double ref, double range, double sign) {
  namespace F = torch::nn::functional;
  const int64_t h = x.size(1), w = x.size(2);
  int64_t total = 0;
  torch::Tensor out;
  for (int64_t y0 = 0; y0 < h; y0 += kBand) {
    const int64_t y1 = std::min(h, y0 + kBand), a0 = std::max<int64_t>(0, y0 - 1), a1 = std::min(h, y1 + 1);
    const auto a = (x.slice(1, a0, a1) - ref) * sign;
    const auto core = a.slice(1, y0 - a0, y0 - a0 + (y1 - y0));
    const auto candidates = core > kHotBulk * range;
    if (!candidates.any().item<bool>()) continue;
    // Rows y0-1 .. y1 of the image (zeros beyond its top and bottom), one column of zeros each side.
    const auto padded = F::pad(a.unsqueeze(0), F::PadFuncOptions({1, 1, y0 == 0 ? 1 : 0, y1 == h ? 1 : 0}))[0];
    torch::Tensor nb;
    for (int64_t dy = 0; dy < 3; ++dy)
      for (int64_t dx = 0; dx < 3; ++dx) {
        if (dy == 1 && dx == 1) continue;
        auto s = padded.slice(1, dy, dy + (y1 - y0)).slice(2, dx, dx + w);
        nb = nb.defined() ? torch::maximum(nb, s) : s;
      }
    nb = nb.clamp_min(0);
    const auto hot = candidates & (core > kHotRatio * nb);
    const int64_t n = hot.sum().item<int64_t>();
    if (n == 0) continue;
    if (!out.defined()) out = x.clone();
    auto band = out.slice(1, y0, y1);
    band.copy_(torch::where(hot, nb * sign + ref, band));
    total += n;
  }
  if (out.defined()) x = out;
  return total;
}

}  // namespace

namespace {

// despike with the image's percentiles given; `changed` tells whether any pixel was set.
torch::Tensor despike_at(const torch::Tensor& image, const Normalization& n, double lo, double hi, bool* changed) {
  *changed = false;
  torch::Tensor x = image;
  int64_t count = clear_spikes(x, lo, hi - lo, 1.0);
  count += clear_spikes(x, hi, hi - lo, -1.0);  // dark spikes, mirrored
  if (count == 0) return image;
  *changed = true;
  log_warn("image: " + std::to_string(count) + " isolated hot or dead pixel(s) (beyond " +
           std::to_string(int(kHotBulk)) + "x the image's percentile range and " + std::to_string(int(kHotRatio)) +
           "x their brightest neighbour) were set to that neighbour's value before counting");
  return x;
}

}  // namespace

torch::Tensor despike(const torch::Tensor& image, const Normalization& n) {
  const auto [lo, hi] = percentiles(image, n.p_low, n.p_high);
  bool changed;
  return despike_at(image, n, lo, hi, &changed);
}

std::pair<double, double> normalization_percentiles(const torch::Tensor& image, const Normalization& n) {
  return percentiles(image, n.p_low, n.p_high);
}

torch::Tensor normalize(const torch::Tensor& image0, const Normalization& n, const IntensityRange& range) {
  CC_CHECK(!range || n.mode == "percentile", CELLCOUNT_ERR_INVALID_ARGUMENT,
           "normalization_range applies to models that normalise by percentiles; this model's normalisation is \"" +
               n.mode + "\" (the same for every image or block, nothing to give)");
  CC_CHECK(!range || (std::isfinite(range->first) && std::isfinite(range->second) && range->first < range->second),
           CELLCOUNT_ERR_INVALID_ARGUMENT,
           "normalization_range must be two finite numbers [low, high] with low < high, got [" +
               std::to_string(range ? range->first : 0) + ", " + std::to_string(range ? range->second : 0) + "]");
  auto [lo, hi] = range ? *range : percentiles(image0, n.p_low, n.p_high);
  bool changed;
  const torch::Tensor image = despike_at(image0, n, lo, hi, &changed);
  if (n.mode == "fixed") return (image - n.offset) * n.scale;
  if (changed && !range) std::tie(lo, hi) = percentiles(image, n.p_low, n.p_high);
  const double width = hi - lo;
  if (!(width > 1e-12)) return torch::zeros_like(image);
  return (image - lo) / width;
}

torch::Tensor convert_channels(const torch::Tensor& image, const std::string& rule) {
  const int64_t c = image.size(0);
  if (rule == "as_is") return image;
  if (rule == "grey") return c == 1 ? image : image.mean(0, true);
  if (rule == "rgb") {
    if (c == 3) return image;
    CC_CHECK(c == 1, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "image: expected 1 or 3 channels for an RGB model, got " + std::to_string(c));
    return image.repeat({3, 1, 1});
  }
  int idx = rule == "red" ? 0 : rule == "green" ? 1 : rule == "blue" ? 2 : -1;
  CC_CHECK(idx >= 0, CELLCOUNT_ERR_INVALID_ARGUMENT, "unknown channel rule \"" + rule + "\"");
  if (c == 1) return image;
  CC_CHECK(c == 3 || c == 4, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "image: channel rule \"" + rule + "\" needs 1 or 3 channels, got " + std::to_string(c));
  return image.slice(0, idx, idx + 1);
}

}  // namespace cellcount
