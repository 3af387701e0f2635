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

// LibTorch version, CUDA availability and device count, threads.
nlohmann::json device_info();

// Sets LibTorch's intra-op threads (0 = one per core). Debian's LibTorch starts with one thread.
void set_threads(int n);
// Once per process, unless set_threads was called: one thread per core (LibTorch's Debian build starts with 1).
void default_threads_once();

}  // namespace cellcount
