// Image views and owned images <-> LibTorch tensors, with normalisation.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <torch/torch.h>

#include "cellcount/cellcount.h"
#include "core/types.h"

namespace cellcount {

// Checks a borrowed view (non-NULL data, sizes >= 1, known dtype, stride large enough, reserved == 0)
// and copies it into a float32 [C,H,W] CPU tensor. NaN or infinite pixels are rejected.
// Errors: CELLCOUNT_ERR_INVALID_ARGUMENT with what was expected and what came.
torch::Tensor view_to_tensor(const cellcount_image_view& view, const char* what = "image");

// [C,H,W] float tensor from an owned image (same NaN rule).
torch::Tensor image_to_tensor(const Image& image);
// And back (tensor [C,H,W] or [H,W], any device/dtype).
Image tensor_to_image(const torch::Tensor& t);

// How a model wants its input scaled. Stored in model.json under "input"/"normalization".
struct Normalization {
  std::string mode = "percentile";   // "percentile": (x - P_low) / (P_high - P_low), over all channels
  double p_low = 1.0, p_high = 99.8; //   (CSBDeep/StarDist convention)
  double scale = 1.0, offset = 0.0;  // "fixed": (x - offset) * scale
  nlohmann::json to_json() const;
  static Normalization from_json(const nlohmann::json& j);
};

// The raw intensities that map to 0 and 1 in place of an image's own percentiles (the prediction option
// "normalization_range"): a caller counting one large image in blocks gives every block the whole image's
// percentiles (normalization_percentiles of the whole), so the blocks are normalised as the whole would be.
using IntensityRange = std::optional<std::pair<double, double>>;

// Applies the normalisation to a [C,H,W] float tensor. A constant image maps to zeros (no division by 0).
// Isolated hot or dead pixels are cleared first (despike). `range` (percentile mode only: with a "fixed"
// normalisation, CELLCOUNT_ERR_INVALID_ARGUMENT) replaces the image's p_low and p_high percentiles.
torch::Tensor normalize(const torch::Tensor& image, const Normalization& n, const IntensityRange& range = std::nullopt);

// The p_low and p_high percentiles of all values of a [C,H,W] image as normalize computes them (every value, or a
// regular subsample of 2^20 of them in memory order for larger images; linear interpolation between order
// statistics), so that a caller can reproduce them on an image it holds in pieces.
std::pair<double, double> normalization_percentiles(const torch::Tensor& image, const Normalization& n);

// Choice (issue 20: one pixel of 1e6 in a 256 x 256 image made dcl-vgg count 13,928 cells instead of 140, with
// OK): a single pixel far outside the image's bulk (beyond 2x its p_low..p_high percentile range) that is also
// 8x brighter than its brightest neighbour (above p_low; mirrored for dark pixels) is a sensor defect, not a
// cell: it gets that neighbour's value, with a warning in the log naming how many. A cell, however bright, has
// neighbours of its own brightness and is untouched (a 2 x 2 spot is not isolated). Measured on the real sets
// (80 VGG, 44 MBM images): the brightest pixel lies at most 1.19x the 1-99.8 range above p_low, the darkest
// 0.16x below it, so no real image is changed.
torch::Tensor despike(const torch::Tensor& image, const Normalization& n);

// Selects / converts channels as a model asks: "grey" (mean of channels), "red", "green", "blue",
// "rgb" (1-channel images are repeated to 3), "as_is". Unknown names: CELLCOUNT_ERR_INVALID_ARGUMENT.
torch::Tensor convert_channels(const torch::Tensor& image, const std::string& rule);

}  // namespace cellcount
