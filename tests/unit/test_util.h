// Helpers shared by the C++ tests.
#pragma once
#include <functional>
#include <string>

#include "cellcount/cellcount.h"
#include "core/error.h"

namespace cellcount::test_util {

// The status a call throws (CELLCOUNT_OK if it returns), and its message when asked.
inline cellcount_status status_of(const std::function<void()>& f, std::string* message = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.status();
  }
  return CELLCOUNT_OK;
}

}  // namespace cellcount::test_util
