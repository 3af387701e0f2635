// One evaluation loop for every method, with metric plug-ins. The loop walks a dataset split (optionally cut
// into grid x grid patches, the papers' protocol for some sets), asks the method for a prediction per item and
// hands each (item, prediction) to every metric; the metrics write the report. Methods with their own protocol
// (exemplar's two-kind error, llp's classes, twinvae's rounded counts) plug a metric in instead of writing a
// loop of their own.
#pragma once
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <torch/torch.h>
#include <vector>

#include "core/dataset.h"
#include "core/method.h"
#include "core/progress.h"

namespace cellcount {

// One evaluated item: a dataset image, or one grid patch of it.
struct EvalItem {
  size_t index = 0;             // row of the dataset (ds.samples[index])
  const Sample* sample = nullptr;
  size_t position = 0;          // 0-based position in the evaluation order (images x patches)
  int64_t grid = 1, patch_x = 0, patch_y = 0;
  torch::Tensor image;          // raw [C,h,w] of the item
  std::vector<Point> points;    // true points in the item's pixels (when the dataset has points)
  bool has_points = false;
  double truth = 0;             // true count of the item
};

class EvalMetric {
 public:
  virtual ~EvalMetric() = default;
  // Takes one item's prediction; may add fields to that item's per-image row.
  virtual void add(const EvalItem& item, const Prediction& prediction, nlohmann::json& row) = 0;
  // Writes its figures into the report.
  virtual void report(nlohmann::json& report) const = 0;
};

// The count metrics of the papers (MAE, RMSE, NAE, SRE; plus MRE and rounded-count accuracy, Twin-VAE's)
// of predicted against true counts. `compare` (optional) returns {predicted, truth} of an item when a method
// measures something else than |count - truth| (exemplar's two-kind error), and may add to the row.
using CountCompare = std::function<std::pair<double, double>(const EvalItem&, const Prediction&, nlohmann::json& row)>;
std::unique_ptr<EvalMetric> count_metric(CountCompare compare = nullptr);
// Point detection: precision, recall, F1 of one-to-one matches within `radius`, over items with points.
std::unique_ptr<EvalMetric> point_metric(double radius);
// Classes (llp): per-class count MAE, instance accuracy (matched points whose class is right, over matched
// points), proportion MAE in percentage points; over items with points. `classes` names the classes.
std::unique_ptr<EvalMetric> class_metric(std::vector<std::string> classes, double radius);

// Runs `predict` over `idx` of `ds` (each image cut into grid x grid patches), feeding every metric.
// Returns {"n", "seconds", "grid", the metrics' fields, "per_image" (when asked)}. Items need a count or points
// (CELLCOUNT_ERR_DATASET naming the image otherwise); unreadable images are CELLCOUNT_ERR_DATASET.
nlohmann::json run_evaluation(const Dataset& ds, const std::vector<size_t>& idx, int64_t grid,
                              const std::function<Prediction(const EvalItem&)>& predict,
                              const std::vector<EvalMetric*>& metrics, bool per_image, const Progress& progress);

}  // namespace cellcount
