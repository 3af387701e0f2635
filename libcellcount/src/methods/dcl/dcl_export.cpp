// dcl's BioImage Model Zoo export (dcl_export.h).
#include "methods/dcl/dcl_export.h"

#include <cmath>
#include <sstream>

#include "core/error.h"
#include "core/method.h"
#include "methods/dcl/dcl_net.h"
#include "methods/dcl/dcl_predict.h"

namespace cellcount::dcl {

ExportPackage export_bioimageio(const ExportInput& in) {
  const auto& meta = in.model.meta;
  const DclConfig cfg = DclConfig::from_json(meta.at("architecture"));
  const InputSpec spec = InputSpec::from_json(meta.at("input"));
  const double scale = meta.at("input").value("scale", 1.0);
  CC_CHECK(std::abs(scale - 1.0) < 1e-9, CELLCOUNT_ERR_UNSUPPORTED,
           "export: this dcl model resizes images by input.scale = " + std::to_string(scale) +
               " before its networks, which the exported fixed-size network cannot do; only models with scale 1 export");
  const int64_t tile = meta.at("tiling").value("tile_size", int64_t(128)), overlap = meta.at("tiling").value("overlap", int64_t(0));
  // Choice: the exported network takes the model's own inference tile (LibTorch's C++ tracer fixes sizes), and
  // its output declares the halo the library's tiling discards (half the overlap), so a consumer tiles as we do.
  const int64_t S = in.size > 0 ? in.size : tile;
  CC_CHECK(S % spec.align == 0 && S >= std::max<int64_t>(spec.min_side, 32), CELLCOUNT_ERR_INVALID_ARGUMENT,
           "export: size must be a multiple of " + std::to_string(spec.align) + " and at least 32, got " + std::to_string(S));
  const int64_t H = in.image.size(1), W = in.image.size(2);
  CC_CHECK(H >= S && W >= S, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "export: the test image (" + std::to_string(W) + " x " + std::to_string(H) + ") must be at least " +
               std::to_string(S) + " x " + std::to_string(S) + " (its top-left square is the test input)");
  torch::Tensor raw = in.image.slice(1, 0, S).slice(2, 0, S);
  if (raw.size(0) != spec.channels) {
    CC_CHECK(spec.channels == 1 && !spec.rgb_rule.empty() && (raw.size(0) == 3 || raw.size(0) == 4),
             CELLCOUNT_ERR_INVALID_ARGUMENT,
             "export: this model takes " + std::to_string(spec.channels) + " channel(s), the test image has " +
                 std::to_string(raw.size(0)));
    raw = convert_channels(raw.slice(0, 0, 3), spec.rgb_rule);
  }
  raw = raw.contiguous();
  auto x = normalize(raw, spec.normalization).unsqueeze(0).contiguous();

  DclNet net(cfg);
  load_weights(*net, in.model);
  net->eval();
  const double target_scale = cfg.target_scale;
  auto forward = [&net, target_scale](const std::vector<torch::Tensor>& t) {
    auto coarse = net->counter->forward(t[0]);
    auto fine = net->localizer->forward(t[0], coarse) / target_scale;
    // rescaled_fine: the fine map times count / its sum (count = the coarse map's sum). The library maps an
    // all-zero fine map to a uniform one; softplus never gives one, so the traced network only guards the division.
    return fine * (coarse.sum() / fine.sum().clamp_min(1e-12));
  };
  ExportPackage p;
  p.module = trace_module(*net, "DclDensity", {x}, forward);
  auto out = p.module.forward({x}).toTensor().contiguous();
  p.test_count = out.sum().item<double>();

  const std::string grey = spec.channels == 1 ? "one channel" : std::to_string(spec.channels) + " channels";
  const std::string rgb = spec.channels == 1 && !spec.rgb_rule.empty()
                              ? " (for an RGB image give its " + spec.rgb_rule + " channel, as cellcount does)"
                              : "";
  nlohmann::json channel_names = nlohmann::json::array();
  for (int64_t c = 0; c < spec.channels; ++c) channel_names.push_back(spec.channels == 1 ? "intensity" : "c" + std::to_string(c));
  ExportTensor image;
  image.id = "raw";
  image.description = "image, " + grey + ", " + std::to_string(S) + " x " + std::to_string(S) + " pixels" + rgb;
  image.axes = image_axes(channel_names, S);
  image.preprocessing = bioimageio_preprocessing(spec.normalization);
  image.test = raw.unsqueeze(0);
  p.inputs.push_back(image);

  const int64_t halo = std::min(overlap / 2, S / 4 - 1);
  ExportTensor density;
  density.id = "density";
  density.description = "cell density per pixel; its sum over a region is the number of cells there";
  density.axes = image_axes_like({"density"}, "raw", halo);
  density.test = out;
  p.outputs.push_back(density);

  p.name = "cellcount DCL cell density";
  p.description =
      "Counts cells as a density map: a VGG-19-BN counter with global message passing gives the count, a UNet "
      "localizer distributes it over the pixels (Decoupling Counting and Localization). The sum of the output is "
      "the number of cells.";
  p.cite = {{{"text", "Zheng, Shi, Li, Hu, Zhu, Mou. Rethinking Cell Counting Methods: Decoupling Counting and "
                      "Localization. MICCAI 2024"},
             {"url", "https://arxiv.org/abs/2503.13989"}}};
  p.tags = {"cell counting", "density map", "fluorescence-light-microscopy", "2d", "cells", "pytorch", "torchscript", "cellcount"};
  std::ostringstream d;
  d << "## What you get\n\n"
    << "The network takes one " << S << " x " << S << " image (" << grey << rgb << ", normalised by the "
    << "preprocessing in rdf.yaml: percentiles " << spec.normalization.p_low << " and " << spec.normalization.p_high
    << " of the whole image, as cellcount normalises) and returns a density map of the same size. **The sum of the map "
    << "is the cell count**; the sum over any region counts the cells in it. For larger images tile with overlap: the "
    << "output declares a halo of " << halo << " pixels, the border that cellcount's own tiling (tile " << tile
    << ", overlap " << overlap << ") discards, and the count is the sum of the stitched map. Normalise the whole "
    << "image once (as cellcount does) rather than each tile when you can.\n\n"
    << "What a generic consumer does not get: cell points. cellcount finds them as peaks of this map (threshold "
    << meta.value("thresholds", nlohmann::json::object()).value("peak_threshold", 0.0) << ", minimum distance "
    << meta.value("thresholds", nlohmann::json::object()).value("peak_min_distance", 0.0)
    << " pixels, both tuned on the validation split and kept in the attached model.json).";
  p.documentation = d.str();
  p.cover_image = x[0].mean(0);
  p.cover_map = out[0][0];
  p.method_config = {{"size", S}, {"halo", halo}, {"model_tiling", meta.at("tiling")}};
  return p;
}

}  // namespace cellcount::dcl
