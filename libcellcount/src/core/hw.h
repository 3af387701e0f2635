// What this machine offers, read at run time (issue 25): native bf16 arithmetic and the cores this process
// may use. Kept apart from device.h so that callers of device.h do not recompile.
#pragma once

namespace cellcount {

// AMX (amx_bf16) or AVX512-BF16 in /proc/cpuinfo's flags (read once). False elsewhere.
bool cpu_has_native_bf16();
// AMX (amx_bf16) alone: the default of precision "auto" where nothing is measured (training).
bool cpu_has_amx_bf16();
// AVX-512 (avx512f): where oneDNN's channels-last fp32 convolutions are the faster layout (issue 25).
bool cpu_has_avx512();

// Default thread count: the cores of this process's affinity mask (sched_getaffinity), bounded by a cgroup
// v2 quota (/sys/fs/cgroup/cpu.max, rounded up), at least 1 and at most kDefaultThreadCap.
constexpr int kDefaultThreadCap = 32;
int available_cores();

}  // namespace cellcount
