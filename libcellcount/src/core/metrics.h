// Metrics of the four papers, and point matching. No LibTorch.
#pragma once
#include <cstddef>
#include <utility>
#include <vector>

#include "core/types.h"

namespace cellcount {

// Maximum-cardinality one-to-one matching of predicted to true points with distance <= radius
// (Hopcroft-Karp on the bipartite graph of pairs within the radius). Class is ignored.
struct MatchResult {
  size_t tp = 0, fp = 0, fn = 0;
  double precision = 0, recall = 0, f1 = 0;  // precision = tp/(tp+fp) (1 if nothing predicted and nothing true)
  std::vector<std::pair<size_t, size_t>> pairs;  // the tp matched pairs (predicted index, truth index)
};
MatchResult match_points(const std::vector<Point>& predicted, const std::vector<Point>& truth, double radius);

// Count metrics over n images, e_i = |pred_i - truth_i|:
//  MAE = mean e; RMSE = sqrt(mean e^2) (the DCL paper's "MSE");
//  NAE = mean e/y and SRE = sqrt(mean e^2/y) (paper 001), over images with y > 0;
//  MRE = mean |1 - round(pred)/y| over y != 0 (Twin-VAE "DEV");
//  accuracy = fraction with round(pred) == y (Twin-VAE "correct").
struct CountMetrics {
  size_t n = 0;
  double mae = 0, rmse = 0, nae = 0, sre = 0, mre = 0, accuracy = 0;
};
CountMetrics count_metrics(const std::vector<double>& predicted, const std::vector<double>& truth);

// Mean absolute error of class proportions in percentage points, averaged over images and classes
// (paper 002). Each row is one image's proportions (summing to 1); rows must have equal length.
double proportion_mae(const std::vector<std::vector<double>>& predicted,
                      const std::vector<std::vector<double>>& truth);

}  // namespace cellcount
