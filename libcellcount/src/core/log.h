// Library log: one process-wide sink (the C ABI's cellcount_log_set), stderr by default.
#pragma once
#include <string>

#include "cellcount/cellcount.h"

namespace cellcount {

void log_set(cellcount_log_fn fn, void* user, int32_t min_level);
void log(int32_t level, const std::string& message);
inline void log_info(const std::string& m) { log(CELLCOUNT_LOG_INFO, m); }
inline void log_warn(const std::string& m) { log(CELLCOUNT_LOG_WARN, m); }
inline void log_debug(const std::string& m) { log(CELLCOUNT_LOG_DEBUG, m); }

}  // namespace cellcount
