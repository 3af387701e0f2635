// Image views and owned images <-> LibTorch tensors, with normalisation.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
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

// Applies the normalisation to a [C,H,W] float tensor. A constant image maps to zeros (no division by 0).
torch::Tensor normalize(const torch::Tensor& image, const Normalization& n);

// Selects / converts channels as a model asks: "grey" (mean of channels), "red", "green", "blue",
// "rgb" (1-channel images are repeated to 3), "as_is". Unknown names: CELLCOUNT_ERR_INVALID_ARGUMENT.
torch::Tensor convert_channels(const torch::Tensor& image, const std::string& rule);

}  // namespace cellcount
