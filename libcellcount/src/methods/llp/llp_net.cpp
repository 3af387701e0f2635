#include "methods/llp/llp_net.h"

#include <map>

#include "core/error.h"

namespace cellcount::llp {

nlohmann::json DsdConfig::to_json() const {
  return {{"optics", optics.to_json()}, {"width", width},   {"features", features}, {"window", window},
          {"hidden", hidden},           {"classes", classes}, {"lambda", lambda}, {"scales", scales}, {"image_scales", image_scales},
          {"texture_scales", texture_scales}, {"field_scales", field_scales}, {"embed_snap", embed_snap}};
}

namespace {
// One of the embedding's window lists: at most `most` sizes, each odd in lo..63.
void check_window_list(const std::vector<int64_t>& sizes, const std::string& name, int64_t lo, size_t most) {
  CC_CHECK(sizes.size() <= most, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "llp architecture: at most " + std::to_string(most) + " " + name);
  for (int64_t s : sizes)
    CC_CHECK(s >= lo && s <= 63 && s % 2 == 1, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "llp architecture: " + name + " must be odd, " + std::to_string(lo) + "..63");
}
}  // namespace

DsdConfig DsdConfig::from_json(const nlohmann::json& j) {
  DsdConfig c;
  if (j.contains("optics")) c.optics = Optics::from_json(j.at("optics"));
  c.width = j.value("width", c.width);
  c.features = j.value("features", c.features);
  c.window = j.value("window", c.window);
  c.hidden = j.value("hidden", c.hidden);
  c.classes = j.value("classes", c.classes);
  c.lambda = j.value("lambda", c.lambda);
  c.scales = j.value("scales", c.scales);
  c.image_scales = j.value("image_scales", c.image_scales);
  c.texture_scales = j.value("texture_scales", c.texture_scales);
  c.field_scales = j.value("field_scales", c.field_scales);
  c.embed_snap = j.value("embed_snap", c.embed_snap);
  CC_CHECK(c.embed_snap >= 0 && c.embed_snap <= 31, CELLCOUNT_ERR_INVALID_ARGUMENT, "llp architecture: embed_snap must be 0..31");
  check_window_list(c.scales, "scales", 1, 8);
  check_window_list(c.image_scales, "image_scales", 1, 16);
  check_window_list(c.texture_scales, "texture_scales", 3, 16);  // a 1 x 1 window has no spread
  check_window_list(c.field_scales, "field_scales", 1, 16);
  CC_CHECK(c.width >= 1 && c.width <= 512 && c.features >= 1 && c.features <= 512 && c.hidden >= 0 && c.hidden <= 4096,
           CELLCOUNT_ERR_INVALID_ARGUMENT, "llp architecture: width and features must be in 1..512, hidden in 0..4096");
  CC_CHECK(c.embedding_size() > 0, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "llp architecture: the embedding is empty (give scales, image_scales, texture_scales or field_scales)");
  CC_CHECK(c.window >= 3 && c.window <= 63 && c.window % 2 == 1, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "llp architecture: window must be odd, 3..63");
  CC_CHECK(c.classes >= 1 && c.classes <= 256, CELLCOUNT_ERR_INVALID_ARGUMENT, "llp architecture: classes must be 1..256");
  CC_CHECK(std::isfinite(c.lambda) && c.lambda > 0, CELLCOUNT_ERR_INVALID_ARGUMENT, "llp architecture: lambda must be > 0");
  return c;
}

torch::nn::Sequential make_classifier(const DsdConfig& c) {
  if (c.hidden == 0) return torch::nn::Sequential(torch::nn::Linear(c.embedding_size(), c.classes));
  return torch::nn::Sequential(torch::nn::Linear(c.embedding_size(), c.hidden), torch::nn::ReLU(),
                               torch::nn::Linear(c.hidden, c.classes));
}

ComplexConvImpl::ComplexConvImpl(int64_t in, int64_t out, int64_t k)
    : fr(torch::nn::Conv2dOptions(in, out, k).padding(k / 2)), fi(torch::nn::Conv2dOptions(in, out, k).padding(k / 2)) {
  register_module("fr", fr);
  register_module("fi", fi);
}

std::pair<torch::Tensor, torch::Tensor> ComplexConvImpl::forward(const torch::Tensor& re, const torch::Tensor& im) {
  const int64_t B = re.size(0);
  auto both = torch::cat({re, im}, 0);  // one call per real filter bank
  auto r = fr(both), i = fi(both);
  return {r.narrow(0, 0, B) - i.narrow(0, B, B), r.narrow(0, B, B) + i.narrow(0, 0, B)};
}

torch::Tensor local_softmax(const torch::Tensor& s, int64_t m) {
  // H(c) = exp(s(c)) / sum_{u in W(c)} exp(s(u)) = 1 / sum_u exp(s(u) - s(c)): one shifted view per window
  // offset (memory of one map, not m*m); an exponent above 80 is clamped (H ~ e^-80 instead of 1/inf).
  const int64_t p = m / 2, H = s.size(2), W = s.size(3);
  namespace F = torch::nn::functional;
  auto padded = F::pad(s, F::PadFuncOptions({p, p, p, p}).mode(torch::kReplicate));
  torch::Tensor sum;
  for (int64_t dy = 0; dy < m; ++dy)
    for (int64_t dx = 0; dx < m; ++dx) {
      auto t = torch::exp((padded.narrow(2, dy, H).narrow(3, dx, W) - s).clamp_max(80.0));
      sum = sum.defined() ? sum + t : t;
    }
  return 1.0 / sum;
}

DsdNetImpl::DsdNetImpl(const DsdConfig& c) : cfg(c) {
  enc = register_module("enc", torch::nn::ModuleList(ComplexConv(1, c.width, 5), ComplexConv(c.width, c.width, 5),
                                                     ComplexConv(c.width, c.features, 3)));
  dec = register_module("dec", torch::nn::ModuleList(ComplexConv(c.features, c.width, 5), ComplexConv(c.width, 1, 5)));
  cls = register_module("cls", make_classifier(c));
  emb_mean = register_buffer("emb_mean", torch::zeros({c.embedding_size()}));
  emb_std = register_buffer("emb_std", torch::ones({c.embedding_size()}));
}

Encoding DsdNetImpl::encode(const torch::Tensor& x) {
  auto I = apply_T(x, cfg.optics);
  torch::Tensor re = torch::real(I).contiguous(), im = torch::imag(I).contiguous();
  for (size_t l = 0; l < enc->size(); ++l) {
    auto [r, i] = enc[l]->as<ComplexConv>()->forward(re, im);
    re = torch::relu(r);  // complex ReLU: on the real and imaginary parts
    im = torch::relu(i);
  }
  Encoding e;
  e.field = torch::cat({torch::real(I), torch::imag(I)}, 1).detach();
  e.energy = e.field.pow(2).sum(1, true);
  e.re = re;
  e.im = im;
  auto strength = (re * re + im * im).sum(1, true);  // ||A(., x, y)||^2
  e.heat = local_softmax(cfg.lambda * strength, cfg.window);
  return e;
}

torch::Tensor DsdNetImpl::sparse_mask(const torch::Tensor& heat, double threshold, int64_t nms) {
  auto h = heat.detach();
  auto peak = h == torch::max_pool2d(h, {nms, nms}, {1, 1}, {nms / 2, nms / 2});
  return heat * (peak & (h >= threshold)).to(heat.scalar_type());
}

torch::Tensor DsdNetImpl::reconstruct(const Encoding& e, const torch::Tensor& mask) {
  torch::Tensor re = e.re * mask, im = e.im * mask;
  for (size_t l = 0; l < dec->size(); ++l) {
    auto [r, i] = dec[l]->as<ComplexConv>()->forward(re, im);
    const bool last = l + 1 == dec->size();
    re = last ? r : torch::relu(r);
    im = last ? i : torch::relu(i);
  }
  return apply_T_inverse(torch::complex(re, im), cfg.optics);
}

torch::Tensor DsdNetImpl::classify(const torch::Tensor& emb) { return cls->forward((emb - emb_mean) / emb_std); }

torch::Tensor DsdNetImpl::embeddings_at(const Encoding& e, int64_t b, const std::vector<std::pair<int64_t, int64_t>>& yx) const {
  const int64_t W = e.re.size(3);
  if (yx.empty()) return torch::zeros({0, cfg.embedding_size()}, e.re.options());
  std::vector<int64_t> flat;
  for (const auto& [y, x] : yx) flat.push_back(y * W + x);
  auto idx = torch::tensor(flat, torch::kLong).to(e.re.device());
  namespace F = torch::nn::functional;
  auto mean_over = [](const torch::Tensor& t, int64_t s) {
    return s > 1 ? F::avg_pool2d(t, F::AvgPool2dFuncOptions(s).stride(1).padding(s / 2).count_include_pad(false)) : t;
  };
  // The energy's window means, each size computed once: the snap, image_scales and texture_scales share them.
  const auto en = e.energy.narrow(0, b, 1);
  std::map<int64_t, torch::Tensor> en_means;
  auto energy_mean = [&](int64_t s) -> const torch::Tensor& {
    auto it = en_means.find(s);
    return it != en_means.end() ? it->second : en_means.emplace(s, mean_over(en, s)).first->second;
  };
  if (cfg.embed_snap > 0) {  // each position moved to the 5 x 5 energy peak within embed_snap pixels
    const int64_t r = cfg.embed_snap;
    auto peak = std::get<1>(torch::max_pool2d_with_indices(energy_mean(5), {2 * r + 1, 2 * r + 1}, {1, 1}, {r, r}));
    idx = peak.reshape({-1}).index_select(0, idx);
  }
  auto at = [&](const torch::Tensor& t) { return t[0].reshape({t.size(1), -1}).index_select(1, idx); };  // [C, N]
  std::vector<torch::Tensor> parts;
  for (int64_t s : cfg.scales) {
    parts.push_back(at(mean_over(e.re.narrow(0, b, 1), s)));
    parts.push_back(at(mean_over(e.im.narrow(0, b, 1), s)));
  }
  for (int64_t s : cfg.image_scales) parts.push_back(at(energy_mean(s)));
  if (!cfg.texture_scales.empty()) {
    const auto dev = (en - energy_mean(3)).abs();
    for (int64_t s : cfg.texture_scales) {
      const auto& m = energy_mean(s);
      parts.push_back(at((mean_over(en * en, s) - m * m).clamp_min(0.0).sqrt()));
      parts.push_back(at(mean_over(dev, s)));
    }
  }
  for (int64_t s : cfg.field_scales) parts.push_back(at(mean_over(e.field.narrow(0, b, 1), s)));
  return torch::cat(parts, 0).t().contiguous();  // [N, E]
}

}  // namespace cellcount::llp
