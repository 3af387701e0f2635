// exemplar: seg-then-count with pseudo-labelled masks (paper 001, METHODS.md section 2).
// Inference: image + exemplar boxes -> base counter features F and similarity S (mean over exemplars);
// the segmentation model's mask cos(P(I), v) binarised at 0.6; S outside the mask set to delta (eq. 4);
// the counter's density on [F, masked S]; count = its sum, points = its peaks. Training: (1) the base
// counter on single-kind tiles (L2 to Gaussian dot maps); (2) pseudo masks on the multi-kind benchmark's
// training images: K-means (K = k_min..k_max) of patch embeddings with the exemplar, the K whose masked
// density is closest (L2) to the ground truth (eq. 5); (3) the segmentation model, L2 to those masks (eq. 7).
#include "core/bioimageio.h"
#include "core/method.h"
#include "core/options.h"
#include "methods/exemplar/exemplar_eval.h"
#include "methods/exemplar/exemplar_export.h"
#include "methods/exemplar/exemplar_predict.h"
#include "methods/exemplar/exemplar_train.h"

namespace cellcount::exemplar {
namespace {

// The method's own prediction options (beside the generic params of the C ABI).
Options predict_options() {
  return {Opt::number("mask_threshold", 0.6)
              .range(-1.0, 1.0)
              .help("segmentation mask cut-off on the cosine mask: pixels at least this are counted (-1 = all; "
                    "the model's tuned value by default)"),
          Opt::boolean("localize", true)
              .help("run the localizer of models that have one (points on the cells); false = count only: the same "
                    "count, the points from the counter's density, about 2.6x faster")};
}

}  // namespace
}  // namespace cellcount::exemplar

// The method's factory, called by the registration list that CMake generates from method.cmake.
namespace cellcount {
MethodSpec method_spec_exemplar() {
  using namespace exemplar;
  MethodSpec s("exemplar", "Count like exemplars",
               "Seg-then-count: exemplar-based segmentation from pseudo-labelled masks, then a class-agnostic counter (Xu et al., 2023)");
  s.needs_exemplars = true;
  s.load = [](const ModelFiles& f) { return std::make_unique<ExemplarMethod>(f); };
  s.train = train;
  s.evaluate = evaluate;
  s.synthesize = synthesize;
  s.options = [](const std::string& kind) {
    if (kind == "train") return train_options();
    if (kind == "evaluate") return eval_options();
    if (kind == "synthesize") return synth_options();
    if (kind == "predict") return predict_options();
    return Options{};
  };
  register_exporter("exemplar", "bioimageio", export_bioimageio);
  return s;
}
}  // namespace cellcount
