// dcl: Decoupling Counting and Localization (paper 000, METHODS.md section 1).
// Inference: image -> (scale to the training resolution) -> tiles -> counter (coarse map, its sum is the
// count) and localizer (fine map) -> stitched; the fine map is rescaled to sum to the counter's count,
// cell points are its peaks (threshold tuned on the validation split). Training: the counter first (count
// loss on random crops), then the localizer with the counter frozen (MSE to Gaussian dot maps).
#include "core/bioimageio.h"
#include "core/method.h"
#include "methods/dcl/dcl_export.h"
#include "core/options.h"
#include "methods/dcl/dcl_predict.h"
#include "methods/dcl/dcl_train.h"

// The method's factory, called by the registration list that CMake generates from method.cmake.
namespace cellcount {
MethodSpec method_spec_dcl() {
  using namespace dcl;
  MethodSpec s("dcl", "Count cells (density)",
               "Decoupled counter (VGG-19 + global message passing) and UNet localizer (Zheng et al., MICCAI 2024)");
  s.load = [](const ModelFiles& f) { return make_method(f); };
  s.train = train;
  s.options = [](const std::string& kind) {
    if (kind == "train") return train_options();
    if (kind == "predict")
      return Options{Opt::boolean("localize", true)
                         .help("run the localizer for cell points; false = count only (the counter alone, about "
                               "a third of the time; no points, the density is the counter's coarse map)"),
                     Opt::choice("tiling", "model", {"model", "budget"})
                         .help("tiles when none is given: the model's (its training crop, or budget where its "
                               "model.json tiling.mode says so), or budget = the largest that fits 768 MiB of "
                               "activations (one tile up to 1040x1040; faster, but counts move by up to 5 % for "
                               "counters trained on smaller crops)")
                         .folded(),
                     // Issue 24: the cell-size setting of models trained on several sets (model.json
                     // cell_diameter, the size every set was zoomed to in training). Like Cellpose's diameter.
                     Opt::number("diameter", 0.0).range(0.0, 10000.0)
                         .help("typical cell diameter in pixels of this image; the image is scaled so that it "
                               "matches the model's cell_diameter (models trained on a recipe state one); 0 = "
                               "estimated from the image for such models (a few seconds more), as is for others")};
    return Options{};
  };
  register_exporter("dcl", "bioimageio", export_bioimageio);
  return s;
}
}  // namespace cellcount
