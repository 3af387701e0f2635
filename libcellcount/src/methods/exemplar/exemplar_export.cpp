// exemplar's BioImage Model Zoo export (exemplar_export.h).
#include "methods/exemplar/exemplar_export.h"

#include <sstream>

#include "core/error.h"
#include "methods/exemplar/exemplar_net.h"
#include "methods/exemplar/exemplar_predict.h"

namespace F = torch::nn::functional;

namespace cellcount::exemplar {

namespace {

// crop_boxes as tensor operations on boxes [E,4] (so that the traced network takes the boxes as an input): the
// same integer crop (floor/ceil, clamped) and the same bilinear resize (align_corners false: source position
// (j + 0.5) * crop / size - 0.5, clamped to the crop), sampled with grid_sample. image: [1,C,H,W].
torch::Tensor crop_boxes_traceable(const torch::Tensor& image, const torch::Tensor& boxes, int64_t size) {
  const int64_t H = image.size(2), W = image.size(3), E = boxes.size(0);
  auto x0 = torch::floor(boxes.select(1, 0)).clamp(0, W - 1), y0 = torch::floor(boxes.select(1, 1)).clamp(0, H - 1);
  auto x1 = torch::minimum(torch::maximum(torch::ceil(boxes.select(1, 2)), x0 + 1), torch::full_like(x0, double(W)));
  auto y1 = torch::minimum(torch::maximum(torch::ceil(boxes.select(1, 3)), y0 + 1), torch::full_like(y0, double(H)));
  auto j = (torch::arange(size, boxes.options()) + 0.5) / double(size);  // [s]
  auto pos = [&](const torch::Tensor& a0, const torch::Tensor& a1, int64_t n) {
    auto len = (a1 - a0).unsqueeze(1);                                     // [E,1]
    auto src = torch::minimum((j.unsqueeze(0) * len - 0.5).clamp_min(0), len - 1);
    return (2 * (a0.unsqueeze(1) + src) + 1) / double(n) - 1;             // [E,s] in grid_sample's [-1,1]
  };
  auto gx = pos(x0, x1, W).unsqueeze(1).expand({E, size, size});
  auto gy = pos(y0, y1, H).unsqueeze(2).expand({E, size, size});
  auto grid = torch::stack({gx, gy}, -1);
  return F::grid_sample(image.expand({E, image.size(1), H, W}), grid,
                        F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kBorder).align_corners(false));
}

}  // namespace

ExportPackage export_bioimageio(const ExportInput& in) {
  const auto& meta = in.model.meta;
  const ExemplarConfig cfg = ExemplarConfig::from_json(meta.at("architecture"));
  InputSpec spec = exemplar_input_spec();
  if (meta.contains("input") && meta["input"].contains("normalization"))
    spec.normalization = Normalization::from_json(meta["input"]["normalization"]);
  const int64_t tile = meta.at("tiling").value("tile_size", int64_t(512));
  // Choice: the exemplar vectors come from the whole image, so the exported network sees the whole image (no
  // tiling by the consumer): a fixed S x S input (LibTorch's C++ tracer fixes sizes), S = the model's tile.
  const int64_t S = in.size > 0 ? in.size : tile;
  CC_CHECK(S % kStride == 0 && S >= spec.min_side, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "export: size must be a multiple of " + std::to_string(kStride) + " and at least " +
               std::to_string(spec.min_side) + ", got " + std::to_string(S));
  CC_CHECK(in.image.size(1) >= S && in.image.size(2) >= S, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "export: the test image (" + std::to_string(in.image.size(2)) + " x " + std::to_string(in.image.size(1)) +
               ") must be at least " + std::to_string(S) + " x " + std::to_string(S) + " (its top-left square is the test input)");
  CC_CHECK(!in.exemplars.empty(), CELLCOUNT_ERR_INVALID_ARGUMENT, "export: exemplar models need at least one exemplar box");
  std::vector<float> flat;
  for (const auto& b : in.exemplars) {
    CC_CHECK(b.x1 <= S && b.y1 <= S, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "export: exemplar boxes must lie in the top-left " + std::to_string(S) + " x " + std::to_string(S) +
                 " square of the test image (the test input)");
    flat.insert(flat.end(), {b.x0, b.y0, b.x1, b.y1});
  }
  const int64_t E = int64_t(in.exemplars.size());
  auto boxes = torch::tensor(flat).view({1, E, 4});
  auto raw = convert_channels(in.image.slice(1, 0, S).slice(2, 0, S), "rgb").contiguous();
  auto x = normalize(raw, spec.normalization).unsqueeze(0).contiguous();

  ExemplarNet net(cfg);
  load_weights(*net, in.model);
  net->eval();
  MaskSettings ms;
  const auto& t = meta.at("thresholds");
  ms.mask_threshold = t.value("mask_threshold", ms.mask_threshold);
  ms.delta = t.value("delta", ms.delta);
  ms.mask_output = t.value("mask_output", ms.mask_output);
  ms.dilate = t.value("mask_dilate", ms.dilate);
  const int64_t size = cfg.exemplar_size;
  auto forward = [&](const std::vector<torch::Tensor>& in_t) {
    auto crops = crop_boxes_traceable(in_t[0], in_t[1][0], size);
    auto b = net->counter->exemplar_vectors(crops);
    auto v = net->segmenter->exemplar_vectors(crops);
    auto maps = run_tile(net, in_t[0], b, v, MaskMode::kSeg, ms, {});
    if (maps.size(1) < 3) return maps;
    // With a localizer, the density channel is its map rescaled to the counter's count, as point_map() does.
    auto fine = maps.slice(1, 2, 3);
    auto density = fine * (maps.slice(1, 0, 1).sum() / fine.sum().clamp_min(1e-12));
    return torch::cat({density, maps.slice(1, 1, 2)}, 1);
  };
  ExportPackage p;
  p.module = trace_module(*net, "ExemplarSegThenCount", {x, boxes}, forward);
  auto out = p.module.forward({x, boxes}).toTensor().contiguous();
  p.test_count = out[0][0].sum().item<double>();

  ExportTensor image;
  image.id = "raw";
  image.description = "RGB image, " + std::to_string(S) + " x " + std::to_string(S) + " pixels (grey: the same plane 3 times)";
  image.axes = image_axes({"red", "green", "blue"}, S);
  image.preprocessing = bioimageio_preprocessing(spec.normalization);
  image.test = raw.unsqueeze(0);
  p.inputs.push_back(image);
  ExportTensor bx;
  bx.id = "boxes";
  bx.description = "exemplar boxes x0, y0, x1, y1 in pixels of raw, around cells of the kind to count";
  bx.axes = {{{"type", "batch"}, {"size", 1}},
             {{"type", "index"}, {"size", E}},
             {{"type", "channel"}, {"channel_names", {"x0", "y0", "x1", "y1"}}}};
  bx.test = boxes;
  p.inputs.push_back(bx);

  ExportTensor maps;
  maps.id = "maps";
  maps.description = "channel density: cells of the exemplars' kind per pixel (sum = count); channel mask: the region counted";
  maps.axes = image_axes_like({"density", "mask"}, "raw");
  maps.test = out;
  p.outputs.push_back(maps);

  p.name = "cellcount seg-then-count exemplar cell counter";
  p.description =
      "Counts the cells of the kind shown by a few exemplar boxes: a segmentation model (trained on pseudo-labelled "
      "masks) keeps the region of that kind, a class-agnostic exemplar counter gives its density map (Learning to "
      "Count from Pseudo-Labeled Segmentation). The sum of the density channel is the count." +
      std::string(net->localizer ? " A localizer (a UNet on the image and that density) places the density on the cells." : "");
  p.cite = {{{"text", "Xu, Le, Samaras. Learning from Pseudo-labeled Segmentation for Multi-Class Object Counting. "
                      "BMVC 2023"},
             {"url", "https://arxiv.org/abs/2307.07677"}}};
  p.tags = {"cell counting", "exemplar", "class-agnostic counting", "density map", "fluorescence-light-microscopy",
            "2d", "cells", "pytorch", "torchscript", "cellcount"};
  std::ostringstream d;
  d << "## What you get\n\n"
    << "The network takes one " << S << " x " << S << " RGB image (normalised by the preprocessing in rdf.yaml: "
    << "percentiles " << spec.normalization.p_low << " and " << spec.normalization.p_high << " of the whole image, as "
    << "cellcount does) and `boxes`, the exemplar boxes (x0, y0, x1, y1 in pixels, " << E << " in this export; "
    << "the traced network takes exactly this many) around cells of the kind to count. It returns two maps of the "
    << "image's size: `density` (**its sum is the count of that kind**) and `mask` (1 where the segmentation model "
    << "found that kind, threshold " << ms.mask_threshold << ", dilation " << ms.dilate << "; the density is zero "
    << "outside it).\n\n"
    << "Give the whole image, not tiles: the exemplars are read from the image the network sees. Larger images: "
    << "resize or crop to " << S << " x " << S << ", or use cellcount itself, which tiles with exemplars taken from "
    << "the whole image.\n\n"
    << "What a generic consumer does not get: cell points (cellcount finds them as peaks of the density; settings in "
    << "the attached model.json).";
  p.documentation = d.str();
  p.cover_image = x[0].mean(0);
  p.cover_map = out[0][0];
  p.method_config = {{"size", S}, {"exemplars", E}, {"mask_threshold", ms.mask_threshold}, {"mask_dilate", ms.dilate},
                     {"mask_output", ms.mask_output}, {"delta", ms.delta}};
  return p;
}

}  // namespace cellcount::exemplar
