// dcl inference: the model's Method (make_method) and the tiled pass of both networks, which training
// also runs (counter validation, peak-threshold tuning) so that it sees the maps exactly as predict does.
#pragma once
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "core/method.h"
#include "core/tiling.h"
#include "methods/dcl/dcl_net.h"

namespace cellcount::dcl {

// The counter's coarse map [N,1,h/8,w/8] spread over the h x w pixels of its input, mass-preserving, so that
// it stitches seam-free like any full-resolution map.
torch::Tensor spread_coarse(const torch::Tensor& coarse, int64_t h, int64_t w);

// Both maps ([2,h,w]: fine, spread coarse; with localize false the localizer is skipped and both are the
// spread coarse map) of a normalised, scaled image [C,h,w], tiled and stitched. `workers`: the counter's tiles run
// in parallel (run_tiled_at; prediction passes tile_workers(device)); the localizer's few large tiles do not.
torch::Tensor tiled_maps(DclNet& net, const DclConfig& cfg, const torch::Tensor& x, int64_t tile, int64_t overlap,
                         const torch::Device& device, torch::ScalarType precision, const Progress& progress,
                         bool localize = true, int workers = 1);

// The localizer's conditioning channel for the window r of an image whose stitched coarse density is coarse
// ([1,1,ceil(H/8),ceil(W/8)], per pixel): the window of the whole image's bilinear upsampling (x8, align_corners
// false) times cond_scale (to float rounding), made from the window's coarse cells and one cell of margin ([1,1,r.y1-r.y0,r.x1-r.x0]).
torch::Tensor localizer_condition(const torch::Tensor& coarse, const TileRect& r, double cond_scale);

// The fine map rescaled so that it sums to the counter's count (paper: the localizer distributes the count).
torch::Tensor rescaled_fine(const torch::Tensor& maps);

// The cell-size estimate of models that state a cell_diameter (issue 24; option diameter 0): the image is counted
// (counter only) with each candidate diameter of diameter_candidates(), and the chosen one is the middle of the
// plateau where the count holds: each candidate's slope is |log count(next) - log count(previous)|, the plateau the
// run of candidates around the least slope whose slopes are within kPlateauSlack of it. Too small a diameter splits
// cells and blows the count up, too large a one merges and loses them; in between the count holds. Chosen on
// dcl-general's val and first 10 train images of VGG, MBM and ADI (52 images; the least slope alone: MAE 6.65 /
// 11.10 / 13.22; slack 0.2: 9.80 / 5.42 / 11.63; 0.3: 6.78 / 4.00 / 11.86; 0.4: 7.57 / 4.50 / 10.67), README "Cell
// size". Candidates where it or a neighbour counts fewer than kMinEstimateCells are not judged.
constexpr double kMinEstimateCells = 3.0;
constexpr double kPlateauSlack = 0.3;
struct DiameterChoice {
  double diameter = 0;  // 0 when not found
  bool found = false;   // false: every candidate counted (nearly) nothing
  bool at_edge = false; // the chosen one is the first or last candidate that can be judged: the cells may be smaller
                        // or larger than the candidates
};
// 4 * 2^(k/3) pixels, k = 1..12 (5.04 to 64): a third of an octave apart.
std::vector<double> diameter_candidates();
DiameterChoice choose_diameter(const std::vector<double>& diameters, const std::vector<double>& counts);

// The loaded model's Method (MethodSpec::load).
std::unique_ptr<Method> make_method(const ModelFiles& f);

}  // namespace cellcount::dcl
