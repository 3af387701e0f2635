// exemplar inference: mask modes, patch embeddings, the per-tile pass, exemplar vectors and input preparation.
#include "methods/exemplar/exemplar_predict.h"

#include <algorithm>

#include "core/image_tensor.h"
#include "methods/exemplar/masks.h"

namespace F = torch::nn::functional;

namespace cellcount::exemplar {

MaskMode parse_mode(const std::string& s) {
  if (s == "none") return MaskMode::kNone;
  if (s == "seg") return MaskMode::kSeg;
  if (s == "kmeans") return MaskMode::kKMeans;
  if (s == "similarity") return MaskMode::kSimilarity;
  fail(CELLCOUNT_ERR_INVALID_ARGUMENT, "exemplar: mask \"" + s + "\" unknown (none, seg, kmeans, similarity)");
}

std::vector<std::array<float, 4>> as_arrays(const std::vector<Box>& boxes) {
  std::vector<std::array<float, 4>> out;
  for (const auto& b : boxes) out.push_back({b.x0, b.y0, b.x1, b.y1});
  return out;
}

torch::Tensor nearest_up(const torch::Tensor& m, int64_t h, int64_t w) {
  return F::interpolate(m.to(torch::kFloat32), F::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kNearest));
}

std::pair<torch::Tensor, torch::Tensor> patch_embeddings(Counter& counter, const torch::Tensor& x,
                                                         const std::vector<std::array<float, 4>>& boxes, int64_t size) {
  const int64_t h = x.size(1), w = x.size(2);
  float bw = 0, bh = 0;
  for (const auto& b : boxes) {
    bw += (b[2] - b[0]) / boxes.size();
    bh += (b[3] - b[1]) / boxes.size();
  }
  auto embed = [&](const torch::Tensor& crops) {
    return F::normalize(counter->backbone->forward(crops).mean({2, 3}).to(torch::kFloat32), F::NormalizeFuncOptions().dim(1));
  };
  const auto pb = patch_boxes(h / kStride, w / kStride, kStride, std::max(bw, 2.f), std::max(bh, 2.f), h, w);
  std::vector<torch::Tensor> parts;
  for (size_t i = 0; i < pb.size(); i += 256) {
    std::vector<std::array<float, 4>> chunk(pb.begin() + i, pb.begin() + std::min(pb.size(), i + 256));
    parts.push_back(embed(crop_boxes(x, chunk, size)));
  }
  return {torch::cat(parts, 0), embed(crop_boxes(x, boxes, size)).mean(0)};
}

torch::Tensor run_tile(ExemplarNet& net, const torch::Tensor& t, const torch::Tensor& b, const torch::Tensor& v,
                       MaskMode mode, const MaskSettings& ms, const std::vector<std::array<float, 4>>& boxes,
                       bool localize) {
  const auto& cfg = net->config;
  auto f = net->counter->features(t);
  auto s = net->counter->similarity(f, b.unsqueeze(0));
  const int64_t mh = f.size(2), mw = f.size(3);
  torch::Tensor m;
  switch (mode) {
    case MaskMode::kNone:
      m = torch::ones({1, 1, mh, mw}, s.options().dtype(torch::kFloat32));
      break;
    case MaskMode::kSeg:
      m = (SegmenterImpl::mask(net->segmenter->features(t), v.unsqueeze(0)) >= ms.mask_threshold).to(torch::kFloat32);
      break;
    case MaskMode::kSimilarity: {
      auto fb = F::normalize(f.to(torch::kFloat32), F::NormalizeFuncOptions().dim(1));
      auto bn = F::normalize(b.to(torch::kFloat32).mean(0, true), F::NormalizeFuncOptions().dim(1));
      m = (torch::einsum("ndhw,nd->nhw", {fb, bn}).unsqueeze(1) >= ms.similarity_threshold).to(torch::kFloat32);
      break;
    }
    case MaskMode::kKMeans: {
      auto [pe, ex] = patch_embeddings(net->counter, t[0], boxes, cfg.exemplar_size);
      m = cluster_mask(pe, ex, ms.k, ms.seed).view({1, 1, mh, mw}).to(t.device());
      break;
    }
  }
  if (ms.dilate > 0 && mode != MaskMode::kNone)
    m = F::max_pool2d(m, F::MaxPool2dFuncOptions(2 * ms.dilate + 1).stride(1).padding(ms.dilate));
  auto d = net->counter->density(f, apply_mask(s, m.to(s.scalar_type()), ms.delta)).to(torch::kFloat32) / cfg.target_scale;
  auto mu = nearest_up(m, t.size(2), t.size(3));
  if (ms.mask_output) d = d * mu;
  if (!net->localizer || !localize) return torch::cat({d, mu}, 1);
  auto fine = net->localize(t, d).to(torch::kFloat32);
  if (ms.mask_output) fine = fine * mu;
  return torch::cat({d, mu, fine}, 1);
}

torch::Tensor point_map(const torch::Tensor& maps) {
  if (maps.size(0) < 3) return maps[0].contiguous();
  // As dcl: the localizer's map rescaled to the counter's count, so that count and density tell one story.
  const double count = maps[0].sum().item<double>(), fine_sum = maps[2].sum().item<double>();
  auto fine = fine_sum > 1e-12 ? maps[2] * (count / fine_sum) : torch::full_like(maps[2], count / maps[2].numel());
  return fine.contiguous();
}

std::pair<torch::Tensor, torch::Tensor> exemplar_vectors(ExemplarNet& net, const torch::Tensor& x,
                                                         const std::vector<std::array<float, 4>>& boxes) {
  auto crops = crop_boxes(x, boxes, net->config.exemplar_size);
  return {net->counter->exemplar_vectors(crops), net->segmenter->exemplar_vectors(crops)};
}

InputSpec exemplar_input_spec() {
  InputSpec spec;
  spec.channels = 3;
  spec.rgb_rule = "";  // 1-channel images are repeated to 3 (see prepare_image)
  spec.align = kStride;
  spec.min_side = 32;
  return spec;
}

torch::Tensor prepare_image(const InputSpec& spec, const torch::Tensor& raw, const IntensityRange& range) {
  CC_CHECK(raw.size(0) == 1 || raw.size(0) == 3, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "exemplar: expected a 1- or 3-channel image, got " + std::to_string(raw.size(0)) + " channels");
  CC_CHECK(raw.size(1) >= spec.min_side && raw.size(2) >= spec.min_side, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "exemplar: the image must be at least " + std::to_string(spec.min_side) + " x " +
               std::to_string(spec.min_side) + " pixels, got " + std::to_string(raw.size(2)) + " x " +
               std::to_string(raw.size(1)));
  return normalize(convert_channels(raw, "rgb"), spec.normalization, range);
}

}  // namespace cellcount::exemplar
