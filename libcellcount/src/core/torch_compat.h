// LibTorch version shim: the few calls whose names or types differ between Debian's LibTorch 1.13 (the main
// build) and the PyPI 2.x wheels (the CUDA build, scripts/build-cuda.sh). Included by .cpp files only, after
// <torch/torch.h>; every version test of the library lives here.
#pragma once
#include <ATen/autocast_mode.h>
#include <torch/cuda.h>
#include <torch/version.h>

#define CC_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace cellcount::torch_compat {

// Autocast state per device type (CPU or CUDA). LibTorch 2.4 replaced is_cpu_enabled / set_cpu_enabled /
// set_autocast_cpu_dtype and is_enabled / set_enabled / set_autocast_gpu_dtype (CUDA) by calls that take the
// device type; the old names are deprecated there.
inline bool autocast_enabled(c10::DeviceType t) {
#if CC_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(t);
#else
  return t == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

inline void set_autocast_enabled(c10::DeviceType t, bool on) {
#if CC_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(t, on);
#else
  if (t == c10::DeviceType::CUDA)
    at::autocast::set_enabled(on);
  else
    at::autocast::set_cpu_enabled(on);
#endif
}

inline c10::ScalarType autocast_dtype(c10::DeviceType t) {
#if CC_TORCH_AT_LEAST(2, 4)
  return at::autocast::get_autocast_dtype(t);
#else
  return t == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

inline void set_autocast_dtype(c10::DeviceType t, c10::ScalarType dtype) {
#if CC_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_dtype(t, dtype);
#else
  if (t == c10::DeviceType::CUDA)
    at::autocast::set_autocast_gpu_dtype(dtype);
  else
    at::autocast::set_autocast_cpu_dtype(dtype);
#endif
}

// torch::cuda::device_count() is size_t in 1.13 and c10::DeviceIndex (int8_t) in 2.x; 0 without CUDA.
inline int cuda_device_count() { return torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0; }

}  // namespace cellcount::torch_compat
