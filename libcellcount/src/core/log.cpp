#include "core/log.h"

#include <cstdio>
#include <mutex>

namespace cellcount {
namespace {
std::mutex g_mutex;
cellcount_log_fn g_fn = nullptr;
void* g_user = nullptr;
int32_t g_min_level = CELLCOUNT_LOG_INFO;
const char* level_name(int32_t level) {
  switch (level) {
    case CELLCOUNT_LOG_DEBUG: return "debug";
    case CELLCOUNT_LOG_INFO: return "info";
    case CELLCOUNT_LOG_WARN: return "warning";
    default: return "error";
  }
}
}  // namespace

void log_set(cellcount_log_fn fn, void* user, int32_t min_level) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_fn = fn;
  g_user = user;
  g_min_level = min_level;
}

void log(int32_t level, const std::string& message) {
  cellcount_log_fn fn;
  void* user;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (level < g_min_level) return;
    fn = g_fn;
    user = g_user;
  }
  if (fn) {
    fn(level, message.c_str(), user);  // outside the lock: a sink may log itself
  } else {
    std::fprintf(stderr, "cellcount %s: %s\n", level_name(level), message.c_str());
  }
}

}  // namespace cellcount
