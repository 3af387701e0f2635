// dcl inference: the model's Method (make_method) and the tiled pass of both networks, which training
// also runs (counter validation, peak-threshold tuning) so that it sees the maps exactly as predict does.
#pragma once
#include <memory>

#include <torch/torch.h>

#include "core/method.h"
#include "methods/dcl/dcl_net.h"

namespace cellcount::dcl {

// The counter's coarse map [N,1,h/8,w/8] spread over the h x w pixels of its input, mass-preserving, so that
// it stitches seam-free like any full-resolution map.
torch::Tensor spread_coarse(const torch::Tensor& coarse, int64_t h, int64_t w);

// Both maps ([2,h,w]: fine, spread coarse; with localize false the localizer is skipped and both are the
// spread coarse map) of a normalised, scaled image [C,h,w], tiled and stitched.
torch::Tensor tiled_maps(DclNet& net, const DclConfig& cfg, const torch::Tensor& x, int64_t tile, int64_t overlap,
                         const torch::Device& device, torch::ScalarType precision, const Progress& progress,
                         bool localize = true);

// The fine map rescaled so that it sums to the counter's count (paper: the localizer distributes the count).
torch::Tensor rescaled_fine(const torch::Tensor& maps);

// The loaded model's Method (MethodSpec::load).
std::unique_ptr<Method> make_method(const ModelFiles& f);

}  // namespace cellcount::dcl
