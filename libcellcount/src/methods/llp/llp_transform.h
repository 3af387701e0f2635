// The lensless transform T of llp (paper 002, CODE-FACTS 3.2): wide angular spectrum propagation by FFT.
//   T(fx, fy) = exp(i 2 pi z / lambda * sqrt(1 - (lambda fx)^2 - (lambda fy)^2)),  fx = fftfreq(W, pixel)
//   T(x) = IFFT2(FFT2(x) . T),  T^-1(x) = IFFT2(FFT2(x) . conj(T))
// I = T(H) takes a hologram to the object plane; T^-1 takes the object plane back to the sensor. The
// "identity" preset (fluorescence, bright-field) makes both the identity.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <torch/torch.h>

namespace cellcount::llp {

struct Optics {
  std::string preset = "hologram";  // "hologram" | "identity"
  double z_um = 1650.0;             // focal depth (ASR defaults, CODE-FACTS 3.2)
  double wavelength_um = 0.340;
  double pixel_um = 1.837;
  bool identity() const { return preset == "identity"; }
  nlohmann::json to_json() const;
  static Optics from_json(const nlohmann::json& j);  // CELLCOUNT_ERR_INVALID_ARGUMENT on a bad preset or value
};

// The transfer function [H,W] complex64, computed in double. Choice: frequencies past the evanescent limit
// (lambda |f| > 1; never reached with the defaults: lambda f_max = 0.093) get phase 0, so T stays unitary.
torch::Tensor transfer_function(int64_t height, int64_t width, const Optics& o);

// x: complex or real tensor [..., H, W]; returns complex64 [..., H, W]. Differentiable (autograd through FFT).
torch::Tensor apply_T(const torch::Tensor& x, const Optics& o);
torch::Tensor apply_T_inverse(const torch::Tensor& x, const Optics& o);

}  // namespace cellcount::llp
