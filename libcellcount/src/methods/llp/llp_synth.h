// The white-blood-cell hologram simulator of llp (`cellcount synth --method llp`). Deterministic by seed.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <torch/torch.h>
#include <vector>

#include "core/options.h"
#include "core/progress.h"
#include "core/types.h"
#include "methods/llp/llp_transform.h"

namespace cellcount::llp {

// The three classes, in this order in every file the simulator writes (class ids 0, 1, 2).
extern const std::vector<std::string> kWbcClasses;  // granulocyte, lymphocyte, monocyte

struct WbcImage {
  torch::Tensor hologram;      // [H,W] float: sensor intensity (background about 1)
  torch::Tensor object;        // [H,W] complex64: object-plane transmittance (1 outside cells)
  std::vector<Point> points;   // cell centres, cls = class id
};

// One image of `n_cells` cells whose classes are drawn from `proportions` (3 values), seeded.
WbcImage render_wbc(int64_t height, int64_t width, int64_t n_cells, const std::vector<double>& proportions,
                    const Optics& optics, double noise, uint64_t seed);

Options synth_options();
nlohmann::json synthesize(const nlohmann::json& request, const Progress& progress);

}  // namespace cellcount::llp
