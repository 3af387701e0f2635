// Issue 25: precision "auto" follows the CPU's native bf16 (AMX / AVX512-BF16 in /proc/cpuinfo), and the
// default thread count follows the cores this process may use (affinity mask, cgroup quota), capped.
#include <gtest/gtest.h>
#include <sched.h>

#include <fstream>
#include <string>
#include <thread>

#include "core/device.h"
#include "core/error.h"
#include "core/hw.h"

using namespace cellcount;

TEST(Hardware, AutoPrecisionFollowsTheCpuFlags) {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  bool flags_bf16 = false, flags_amx = false;
  while (std::getline(f, line))
    if (line.rfind("flags", 0) == 0) {
      line += " ";
      flags_amx = line.find(" amx_bf16 ") != std::string::npos;
      flags_bf16 = flags_amx || line.find(" avx512_bf16 ") != std::string::npos;
      break;
    }
  EXPECT_EQ(cpu_has_native_bf16(), flags_bf16);
  EXPECT_EQ(cpu_has_amx_bf16(), flags_amx);
  // Without a measurement (training), auto is bf16 only with AMX.
  EXPECT_EQ(resolve_precision("auto", torch::kCPU), flags_amx ? torch::kBFloat16 : torch::kFloat32);
  EXPECT_EQ(resolve_precision("fp32", torch::kCPU), torch::kFloat32);
  try {
    resolve_precision("fast", torch::kCPU);
    FAIL() << "an unknown precision was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("\"auto\""), std::string::npos) << e.what();
  }
}

TEST(Hardware, DefaultThreadsAreTheCoresOfThisProcess) {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  const int n = available_cores();
  EXPECT_GE(n, 1);
  EXPECT_LE(n, CPU_COUNT(&set));
  EXPECT_LE(n, kDefaultThreadCap);
  EXPECT_LE(n, int(std::thread::hardware_concurrency()));
  // Pinned to one CPU, the default is one thread.
  cpu_set_t one;
  CPU_ZERO(&one);
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) {
      CPU_SET(c, &one);
      break;
    }
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
  EXPECT_EQ(available_cores(), 1);
  ASSERT_EQ(sched_setaffinity(0, sizeof set, &set), 0);
}
