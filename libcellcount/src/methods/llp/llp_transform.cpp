#include "methods/llp/llp_transform.h"

#include <cmath>

#include "core/error.h"

namespace cellcount::llp {

nlohmann::json Optics::to_json() const {
  return {{"preset", preset}, {"z_um", z_um}, {"wavelength_um", wavelength_um}, {"pixel_um", pixel_um}};
}

Optics Optics::from_json(const nlohmann::json& j) {
  Optics o;
  o.preset = j.value("preset", o.preset);
  o.z_um = j.value("z_um", o.z_um);
  o.wavelength_um = j.value("wavelength_um", o.wavelength_um);
  o.pixel_um = j.value("pixel_um", o.pixel_um);
  CC_CHECK(o.preset == "hologram" || o.preset == "identity", CELLCOUNT_ERR_INVALID_ARGUMENT,
           "llp: preset must be \"hologram\" or \"identity\", got \"" + o.preset + "\"");
  CC_CHECK(std::isfinite(o.z_um) && std::isfinite(o.wavelength_um) && o.wavelength_um > 0 &&
               std::isfinite(o.pixel_um) && o.pixel_um > 0,
           CELLCOUNT_ERR_INVALID_ARGUMENT, "llp: z_um, wavelength_um and pixel_um must be finite (the last two > 0)");
  return o;
}

torch::Tensor transfer_function(int64_t h, int64_t w, const Optics& o) {
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  auto fy = torch::fft::fftfreq(h, o.pixel_um, f64).view({h, 1});
  auto fx = torch::fft::fftfreq(w, o.pixel_um, f64).view({1, w});
  const double lam = o.wavelength_um;
  auto arg = (1.0 - (lam * fx).pow(2) - (lam * fy).pow(2)).clamp_min(0.0);
  // Evanescent frequencies: phase 0 (unit modulus).
  auto prop = (lam * fx).pow(2) + (lam * fy).pow(2) <= 1.0;
  auto phase = torch::where(prop, 2.0 * M_PI * o.z_um / lam * arg.sqrt(), torch::zeros_like(arg));
  return torch::polar(torch::ones_like(phase), phase).to(torch::kComplexFloat);
}

namespace {
torch::Tensor propagate(const torch::Tensor& x, const Optics& o, bool inverse) {
  auto z = x.is_complex() ? x.to(torch::kComplexFloat) : torch::complex(x.to(torch::kFloat32), torch::zeros_like(x).to(torch::kFloat32));
  if (o.identity()) return z;
  auto t = transfer_function(x.size(-2), x.size(-1), o).to(x.device());
  if (inverse) t = t.conj();
  return torch::fft::ifft2(torch::fft::fft2(z) * t);
}
}  // namespace

torch::Tensor apply_T(const torch::Tensor& x, const Optics& o) { return propagate(x, o, false); }
torch::Tensor apply_T_inverse(const torch::Tensor& x, const Optics& o) { return propagate(x, o, true); }

}  // namespace cellcount::llp
