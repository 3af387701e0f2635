// Out-of-domain warnings (issue 24): a few statistics of one prediction compared with the range a model saw on its
// own train images (model.json "domain"), so that a wrong model or a foreign image is said,
// not silently counted (dcl-adi on a VGG fluorescence image: 249.9 cells with 1 point; dcl-vgg on an H&E image:
// 3349 cells for 167).
//
// The statistics (DomainStats), each cheap beside the network:
//   channel_mean      per network input channel, the mean after the model's normalisation, on a regular
//                     subsample of at most 2^18 pixels (stain, modality and polarity: a fluorescence image is a
//                     dark background with bright cells, bright-field and H&E the reverse);
//   cells_per_10k     count per 10,000 counted pixels, at the method's cell-size zoom (Prediction::cell_zoom: pixels
//                     as the network saw them) (cells far smaller or larger than the model knows);
//   peak_max          the highest detected peak's score (the density at the peak for density methods): a
//                     saturating density;
//   disagreement      |count - points| / max(count, points): the two numbers of one result telling two stories.
//
// Choices (stated in README, "Out-of-domain warnings"): the section is fitted on the train split (min and max of
// each statistic) and then checked on the val split, never on test. Bounds are widened by margins fixed before
// looking at any other set: channel means by kMeanMargin + kMeanMarginOfRange x the train range on each side, cell
// density by a factor of 2 on each side, peak by 2x its train maximum, the disagreement tolerance
// max(0.3, 1.5 x the train maximum). The disagreement is judged only when max(count, points) >= 10 (on near-empty
// images one point more or less is a large fraction).
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>
#include <vector>

#include "core/eval_loop.h"
#include "core/method.h"

namespace cellcount {

struct DomainStats {
  std::vector<double> channel_mean;
  double cells_per_10k = 0;
  double peak_max = 0;
  double count = 0;
  double points = 0;
  double disagreement = 0;  // 0 when both are 0, or when no points were looked for (Prediction::located)
  nlohmann::json to_json() const;
};

// The statistics of a prediction `p` of the raw [C,H,W] image with `spec` (the model's input) and the caller's
// normalisation range (unset = the image's own percentiles, as the method normalised); counted_pixels = the
// region's pixels, else H x W.
DomainStats domain_stats(const torch::Tensor& raw, const InputSpec& spec, const IntensityRange& range,
                         const Prediction& p, double counted_pixels);

// The warnings of one prediction against model.json's "domain" section (null or absent = only the count/points
// check, with the library's tolerance 0.5): a JSON array of {"code", "message", "value", "limit"} (cellcount.h,
// cellcount_result_warnings). A malformed section is CELLCOUNT_ERR_MODEL_FORMAT.
nlohmann::json domain_warnings(const nlohmann::json& domain, const DomainStats& s);

// A prediction's warnings: domain_warnings of its statistics, then the method's own (Prediction::notes, e.g. a cell
// size dcl could not estimate). What the C ABI's result and the evaluation rows carry.
nlohmann::json prediction_warnings(const nlohmann::json& domain, const DomainStats& s, const Prediction& p);

// The "domain" section fitted on the statistics of a model's train items (the rules above). At least one item.
nlohmann::json fit_domain(const std::vector<DomainStats>& train);

// Evaluation plug-in: each item's statistics and warnings (against `domain`, may be null) go into its row; the
// report gets "domain": {"n", "warned" (items with a warning), "by_code", "fitted" (fit_domain of these items)}.
std::unique_ptr<EvalMetric> domain_metric(const InputSpec& spec, nlohmann::json domain);

}  // namespace cellcount
