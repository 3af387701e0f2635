// Resampling and the training augmentations methods share (each off at 0, where it draws no random numbers, so
// that runs without it are unchanged).
#pragma once
#include <cstdint>
#include <random>
#include <utility>

#include <torch/torch.h>

namespace cellcount {

// [C,H,W] resized to h x w: bilinear, antialiased where a side shrinks.
torch::Tensor resize_to(const torch::Tensor& x, int64_t h, int64_t w);
// [C,H,W] resized by `scale` (sides rounded, at least 1).
torch::Tensor resize_by(const torch::Tensor& x, double scale);
// A density map [H,W] or [C,H,W] resized to h x w keeping its sum (the cells it holds).
torch::Tensor resize_mass(const torch::Tensor& d, int64_t h, int64_t w);

// Choice (the papers use flips and rotations only): stain/colour jitter. Each channel of the normalised image
// becomes x (1 + s u) + s v, u, v ~ U(-1, 1) drawn per channel and call; s = 0 is off and draws nothing.
torch::Tensor jitter_colour(const torch::Tensor& img, double s, std::mt19937_64& rng);

// Choice (the papers use flips and rotations only): scale jitter. The image [C,H,W] is zoomed by
// z = (1 + s)^u, u ~ U(-1, 1), and its density map [1,H,W] with it, keeping its sum (the same cells). An image
// zoomed out below ch x cw is reflect-padded to it at a random offset, image and map alike, so every cell it
// shows has its dots. s = 0 is off and draws nothing.
std::pair<torch::Tensor, torch::Tensor> zoom_pair(const torch::Tensor& image, const torch::Tensor& density, int64_t ch,
                                                  int64_t cw, double s, std::mt19937_64& rng);

}  // namespace cellcount
