// Errors inside the library: one exception type carrying a public status. capi::guard() maps it
// (and c10::Error, std::bad_alloc, anything else) to a status and a thread-local message.
#pragma once
#include <stdexcept>
#include <string>

#include "cellcount/cellcount.h"

namespace cellcount {

class Error : public std::runtime_error {
 public:
  Error(cellcount_status status, const std::string& message) : std::runtime_error(message), status_(status) {}
  cellcount_status status() const { return status_; }

 private:
  cellcount_status status_;
};

// Thrown when a progress callback asks to stop.
class Cancelled : public Error {
 public:
  explicit Cancelled(const std::string& stage) : Error(CELLCOUNT_CANCELLED, "cancelled by the caller at " + stage) {}
};

[[noreturn]] inline void fail(cellcount_status status, const std::string& message) { throw Error(status, message); }

// CC_CHECK(cond, status, message-expression): the message is only built on failure.
#define CC_CHECK(cond, status, msg)                                  \
  do {                                                               \
    if (!(cond)) ::cellcount::fail((status), std::string() + msg);  \
  } while (0)

}  // namespace cellcount
