#include "core/device.h"


#include <sched.h>

#include <fstream>
#include <initializer_list>
#include <mutex>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/hw.h"
#include "core/limits.h"
#include "core/torch_compat.h"

#include <cmath>

namespace cellcount {

torch::Device resolve_device(const std::string& spec) {
  const std::string s = spec.empty() ? "auto" : spec;
  if (s == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  if (s == "cpu") return torch::Device(torch::kCPU);
  if (s.rfind("cuda", 0) == 0) {
    int index = 0;
    if (s.size() > 4) {
      // At most 4 digits: std::stoi threw a raw "stoi" (ERR_INTERNAL) on "cuda:99999999999999999999".
      CC_CHECK(s[4] == ':' && s.size() > 5 && s.size() <= 9 && s.find_first_not_of("0123456789", 5) == std::string::npos,
               CELLCOUNT_ERR_DEVICE,
               "device: expected \"auto\", \"cpu\", \"cuda\" or \"cuda:N\" (N < 10000), got \"" + echo(s) + "\"");
      index = std::stoi(s.substr(5));
    }
    CC_CHECK(torch::cuda::is_available(), CELLCOUNT_ERR_DEVICE,
             "device \"" + s + "\" asked, but this LibTorch has no CUDA or no GPU is visible; use \"cpu\" or \"auto\"");
    const int n = torch_compat::cuda_device_count();
    CC_CHECK(index < n, CELLCOUNT_ERR_DEVICE,
             "device \"" + s + "\": only " + std::to_string(n) + " CUDA device(s) visible");
    return torch::Device(torch::kCUDA, index);
  }
  fail(CELLCOUNT_ERR_DEVICE, "device: expected \"auto\", \"cpu\", \"cuda\" or \"cuda:N\", got \"" + echo(s) + "\"");
}

std::string device_name(const torch::Device& d) {
  return d.is_cuda() ? "cuda:" + std::to_string(d.has_index() ? d.index() : 0) : "cpu";
}

namespace {
// Whether /proc/cpuinfo's flags hold any of `names`, read at run time.
bool read_cpu_flag(std::initializer_list<const char*> names) {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line);
    std::string w;
    while (words >> w)
      for (const char* n : names)
        if (w == n) return true;
    return false;
  }
  return false;
}
}  // namespace

// Native bf16 arithmetic: AMX (amx_bf16) or AVX512-BF16. Without them LibTorch emulates bf16 (measured 5-10x
// slower than fp32 on AVX2, issue 25).
bool cpu_has_native_bf16() {
  static const bool has = read_cpu_flag({"amx_bf16", "avx512_bf16"});
  return has;
}

bool cpu_has_amx_bf16() {
  static const bool has = read_cpu_flag({"amx_bf16"});
  return has;
}

bool cpu_has_avx512() {
  static const bool has = read_cpu_flag({"avx512f"});
  return has;
}

bool channels_last_inference(bool low_precision) { return low_precision || cpu_has_avx512(); }

torch::ScalarType resolve_precision(const std::string& spec, const torch::Device& device) {
  if (spec.empty() || spec == "fp32") return torch::kFloat32;
  // "auto": bf16 on CUDA and on CPUs with AMX, else fp32. AVX512-BF16 without AMX is not enough: there
  // LibTorch 1.13's bf16 dcl inference took 1.7x fp32's time (Xeon, 512x512, 2 threads). A rule of the
  // hardware only, never a timing: the same image always gets the same precision on one machine.
  if (spec == "auto") return device.is_cuda() || cpu_has_amx_bf16() ? torch::kBFloat16 : torch::kFloat32;
  if (spec == "bf16") return torch::kBFloat16;
  if (spec == "fp16") {
    CC_CHECK(device.is_cuda(), CELLCOUNT_ERR_UNSUPPORTED, "precision fp16 needs a CUDA device; use bf16 on CPU");
    return torch::kFloat16;
  }
  fail(CELLCOUNT_ERR_INVALID_ARGUMENT, "precision: expected \"auto\", \"fp32\", \"bf16\" or \"fp16\", got \"" + echo(spec) + "\"");
}

std::string precision_name(torch::ScalarType t) {
  return t == torch::kBFloat16 ? "bf16" : t == torch::kFloat16 ? "fp16" : "fp32";
}

// CPU bf16 autocast; the autocast calls differ between LibTorch 1.13 and 2.x (core/torch_compat.h).
// On CUDA the guard is a no-op (as documented in device.h): CUDA autocast would need loss scaling for fp16.
AutocastGuard::AutocastGuard(const torch::Device& device, torch::ScalarType precision) {
  on_ = device.is_cpu() && precision == torch::kBFloat16;
  if (!on_) return;
  previous_ = torch_compat::autocast_enabled(torch::kCPU);
  torch_compat::set_autocast_enabled(torch::kCPU, true);
  torch_compat::set_autocast_dtype(torch::kCPU, at::kBFloat16);
}

AutocastGuard::~AutocastGuard() {
  if (!on_) return;
  torch_compat::set_autocast_enabled(torch::kCPU, previous_);
  at::autocast::clear_cache();
}

nlohmann::json device_info() {
  nlohmann::json j;
  j["libtorch"] = std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
                  std::to_string(TORCH_VERSION_PATCH);
  j["cuda_available"] = torch::cuda::is_available();
  j["cuda_devices"] = torch_compat::cuda_device_count();
  j["threads"] = at::get_num_threads();
  j["cores"] = int(std::thread::hardware_concurrency());
  j["cores_available"] = available_cores();
  j["native_bf16"] = cpu_has_native_bf16();
  return j;
}

int available_cores() {
  int n = int(std::max(1u, std::thread::hardware_concurrency()));
  // The CPUs this process may run on (taskset, container cpusets).
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = std::max(1, std::min(n, int(CPU_COUNT(&set))));
  // A cgroup v2 CPU quota ("max 100000" = none; "200000 100000" = 2 CPUs).
  std::ifstream f("/sys/fs/cgroup/cpu.max");
  std::string quota;
  double period = 0;
  if (f >> quota >> period && quota != "max" && period > 0) {
    try {
      const double q = std::stod(quota) / period;
      if (q > 0) n = std::max(1, std::min(n, int(std::ceil(q))));
    } catch (const std::exception&) {
    }
  }
  return std::min(n, kDefaultThreadCap);
}

namespace {
std::once_flag g_threads_once;
}

void default_threads_once() {
  std::call_once(g_threads_once, [] { at::set_num_threads(available_cores()); });
}

void set_threads(int n) {
  std::call_once(g_threads_once, [] {});  // an explicit choice wins over the default
  // Bounded: 2000 threads made the next parallel call take minutes (thread creation and oversubscription).
  CC_CHECK(n >= 0 && n <= kMaxThreads, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "threads must be in 0.." + std::to_string(kMaxThreads) + " (0 = one per core), got " + std::to_string(n));
  if (n == 0) n = available_cores();
  at::set_num_threads(n);
}

}  // namespace cellcount
