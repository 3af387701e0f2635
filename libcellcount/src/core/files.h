// Reading files the library did not write: only regular files of a bounded size, JSON of a bounded depth.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "cellcount/cellcount.h"

namespace cellcount {

// Refuses `path` unless it is a regular file (links followed) of at most max_bytes, before anything opens
// it: a FIFO would block the open or the read forever, a device (a link to /dev/zero) never ends.
// `what` names the file's role in the message ("model.json"). Errors: `status`.
void check_regular_file(const std::string& path, uint64_t max_bytes, cellcount_status status, const std::string& what);

// Parses the JSON file at `path` (a regular file of at most kMaxJsonFileBytes) with at most kMaxJsonDepth
// levels of nesting: deeper documents are refused before they are built (a model.json nested 100,000 deep
// crashed the copies made of it). Errors: CELLCOUNT_ERR_IO (missing, not a regular file, too large,
// unreadable), `format_status` (not JSON, too deep), naming the file.
nlohmann::json read_json_file(const std::string& path, cellcount_status format_status);

}  // namespace cellcount
