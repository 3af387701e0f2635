#include "core/files.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/limits.h"

namespace fs = std::filesystem;

namespace cellcount {

void check_regular_file(const std::string& path, uint64_t max_bytes, cellcount_status status, const std::string& what) {
  std::error_code ec;
  const auto st = fs::status(path, ec);  // follows links: a link to /dev/zero is a character device
  CC_CHECK(!ec && fs::exists(st), status, what + " '" + path + "' does not exist or cannot be read");
  CC_CHECK(fs::is_regular_file(st), status,
           what + " '" + path + "' is not a regular file (a FIFO, device, socket or folder); refused");
  const uint64_t size = fs::file_size(path, ec);
  CC_CHECK(!ec && size <= max_bytes, status,
           what + " '" + path + "' is " + std::to_string(size) + " bytes; the limit is " + std::to_string(max_bytes));
}

nlohmann::json read_json_file(const std::string& path, cellcount_status format_status) {
  check_regular_file(path, kMaxJsonFileBytes, CELLCOUNT_ERR_IO, "JSON file");
  std::ifstream f(path, std::ios::binary);
  CC_CHECK(f.good(), CELLCOUNT_ERR_IO, "cannot read '" + path + "'");
  // The callback sees every value with its depth before the value is added; refusing there keeps the
  // document that is built (and later copied, compared and freed) at most kMaxJsonDepth deep.
  const nlohmann::json::parser_callback_t limit_depth = [&](int depth, nlohmann::json::parse_event_t,
                                                            nlohmann::json&) {
    CC_CHECK(depth <= kMaxJsonDepth, format_status,
             "'" + path + "' nests deeper than " + std::to_string(kMaxJsonDepth) + " levels; refused");
    return true;
  };
  try {
    return nlohmann::json::parse(f, limit_depth);
  } catch (const nlohmann::json::exception& e) {
    fail(format_status, "'" + path + "' is not valid JSON: " + e.what());
  }
}

}  // namespace cellcount
