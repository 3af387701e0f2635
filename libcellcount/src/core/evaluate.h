// Requests every method can share: evaluation of counts (and points) on a dataset split, and writing a
// synthetic cell dataset with the core renderer. Methods may replace either in their MethodSpec.
#pragma once
#include <nlohmann/json.hpp>

#include "core/dataset.h"
#include "core/method.h"
#include "core/progress.h"

namespace cellcount {

// Checks exemplar boxes against an image of height x width: non-finite, empty or inverted boxes and
// boxes wholly outside are CELLCOUNT_ERR_INVALID_ARGUMENT (naming the box); boxes partly outside are
// clipped with a warning in the log. `needs` = the method needs at least one box; else boxes must be none.
// At most kMaxExemplars boxes (core/limits.h).
std::vector<Box> check_exemplars(const Box* boxes, size_t n, int64_t height, int64_t width, bool needs);

// Predicts one image (raw [C,H,W]) with a loaded method: the one path shared by the C ABI, evaluation and
// benchmarks. Fills options from the model when left at their defaults; tile and overlap by resolve_tiling.
// A prediction whose count or points are not finite is CELLCOUNT_ERR_INVALID_ARGUMENT, never OK.
Prediction predict_image(Method& method, const MethodSpec& spec, const torch::Tensor& image,
                         const std::vector<Box>& exemplars, const torch::Tensor& region, const PredictOptions& options);

// {"model", "dataset", "split" ("test"), "split_file", "radius" (0 = model's eval_radius), "device",
//  "precision", "limit" (0 = all), "per_image" (true)} -> {"n", "mae", "rmse", "nae", "sre", "f1"...}.
// `dataset` non-null = evaluate that dataset as already loaded and split (a training's own split, the automatic
// one of an unsplit dataset included) instead of loading "dataset"/"split_file" again.
nlohmann::json evaluate_counts(const nlohmann::json& request, const Progress& progress,
                               const Dataset* dataset = nullptr);

// What every evaluation opens from a resolved request (evaluate_options' fields): the model and its loaded
// method, the dataset, the split's items (limit applied) and the prediction options (device, precision).
// `method` "" = any model; else a model of another method is CELLCOUNT_ERR_WRONG_METHOD. `who` names the
// request in errors (an empty split is CELLCOUNT_ERR_DATASET).
struct EvalSetup {
  ModelFiles files;
  const MethodSpec* spec = nullptr;
  std::unique_ptr<Method> method;
  Dataset ds;
  std::string split;
  std::vector<size_t> idx;
  PredictOptions opt;
};
EvalSetup open_evaluation(const nlohmann::json& req, const std::string& who, const std::string& method = "",
                          const Dataset* dataset = nullptr);
nlohmann::json evaluate_defaults();
// Every field of that request, declared once (core/options.h).
Options evaluate_options();

// {"kind": "cells", "out", "n", "width", "height", "seed", "min_cells", "max_cells", "split" [train,test,val],
//  "overwrite"} -> writes images + points.csv + counts.csv + split.csv.
nlohmann::json synthesize_cells(const nlohmann::json& request, const Progress& progress);
nlohmann::json synthesize_defaults();
Options synthesize_options();

}  // namespace cellcount
