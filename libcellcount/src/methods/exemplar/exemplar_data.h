// exemplar training and evaluation data: the kind of interest of a benchmark image and the benchmark's error,
// the single-kind training tiles of a recipe and the benchmark items the segmenter trains on.
#pragma once
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/dataset.h"
#include "core/method.h"
#include "core/progress.h"
#include "core/types.h"
#include "core/kinds.h"

namespace cellcount::exemplar {

// The kind of interest of a benchmark image: the most common class among the points inside its exemplar
// boxes; its half is the side holding most of that class's points. Single-kind images: every point.
struct Interest {
  bool multi = false;
  int32_t cls = 0;
  bool left = true;
  std::vector<Point> points;  // of the class of interest
};

Interest interest_of(const Sample& s, const std::vector<Box>& boxes, size_t n_classes, int64_t width);

// The paper's error on a two-kind image: |y - y_hat_interest| + y_hat_elsewhere.
double benchmark_error(const torch::Tensor& density, const Interest& in, double& interest_count, double& elsewhere);

struct TrainTile {
  torch::Tensor image;    // [3,S,S] normalised
  torch::Tensor density;  // [1,S,S]
  std::vector<Point> points;
  float box = 12;
};

std::vector<TrainTile> training_tiles(const Recipe& r, const std::string& split, const InputSpec& spec,
                                      const Progress& progress);

struct BenchItem {
  torch::Tensor image;        // [3,S,S] normalised
  std::vector<Box> boxes;
  Interest interest;
  torch::Tensor density;      // [1,S,S] of the points of interest
  torch::Tensor mask;         // [1,S/16,S/16] pseudo mask (training)
};

std::vector<BenchItem> benchmark_items(const Dataset& ds, const std::string& split, const Recipe& r,
                                       const InputSpec& spec, const Progress& progress);

// Single-kind tiles as segmentation items (exemplars drawn from their points with a fixed seed): the easy
// case, so that the segmenter also learns to keep every cell when the image holds one kind only.
std::vector<BenchItem> tiles_as_items(const std::vector<TrainTile>& tiles, int64_t n_ex, uint64_t seed);

}  // namespace cellcount::exemplar
