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
// The inference layout rule of dcl and exemplar: channels-last for the low precisions, and for fp32 where the CPU
// has AVX-512. Measured at 1024 x 1024 on 2 threads of a Xeon with AVX-512 and AMX, packed convolutions: dcl-vgg
// fp32 632 against 823 ms in NCHW, exemplar-cells fp32 771 against 838 ms, bf16 464 against 620 ms. On an
// AVX2-only EPYC, before packing, fp32 channels-last was 1.05-1.13x slower (dcl, 512 x 512), so NCHW stays there.
bool channels_last_inference(bool low_precision);

// Default thread count: the cores of this process's affinity mask (sched_getaffinity), bounded by a cgroup
// v2 quota (/sys/fs/cgroup/cpu.max, rounded up), at least 1 and at most kDefaultThreadCap.
constexpr int kDefaultThreadCap = 32;
int available_cores();

}  // namespace cellcount
