// Device and precision choice.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <torch/torch.h>

namespace cellcount {

// "auto" (CUDA when this LibTorch has it and a GPU is there, else CPU), "cpu", "cuda", "cuda:N".
// Errors: CELLCOUNT_ERR_DEVICE (unknown string, CUDA absent, N out of range).
torch::Device resolve_device(const std::string& spec);
std::string device_name(const torch::Device& d);  // "cpu", "cuda:0"

// "fp32" (default, also ""), "bf16", "fp16". fp16 on CPU is refused (no fast path): CELLCOUNT_ERR_UNSUPPORTED.
torch::ScalarType resolve_precision(const std::string& spec, const torch::Device& device);
std::string precision_name(torch::ScalarType t);

// Mixed precision for training steps: while alive, CPU ops run under autocast in bf16 (convs and matmuls
// in bf16, reductions and losses in fp32; weights and optimizer state stay fp32). No-op for fp32 or CUDA.
class AutocastGuard {
 public:
  AutocastGuard(const torch::Device& device, torch::ScalarType precision);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool on_ = false, previous_ = false;
};

// LibTorch version, CUDA availability and device count, threads.
nlohmann::json device_info();

// Sets LibTorch's intra-op threads (0 = one per core). Debian's LibTorch starts with one thread.
void set_threads(int n);
// Once per process, unless set_threads was called: one thread per core (LibTorch's Debian build starts with 1).
void default_threads_once();

}  // namespace cellcount
