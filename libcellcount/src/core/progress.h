// Progress reporting with cancel. Cheap to copy; sub() maps [0,1] of a sub-task into a parent range.
#pragma once
#include <functional>
#include <string>

#include "core/error.h"

namespace cellcount {

class Progress {
 public:
  // fn returns true to cancel.
  using Fn = std::function<bool(float fraction, const std::string& stage)>;
  Progress() = default;
  explicit Progress(Fn fn) : fn_(std::move(fn)) {}

  // Reports and throws Cancelled if the callback asks to stop.
  void report(float fraction, const std::string& stage) const {
    if (!fn_) return;
    float f = lo_ + (hi_ - lo_) * (fraction < 0 ? 0 : fraction > 1 ? 1 : fraction);
    if (fn_(f, stage)) throw Cancelled(stage);
  }
  Progress sub(float lo, float hi) const {
    Progress p = *this;
    p.lo_ = lo_ + (hi_ - lo_) * lo;
    p.hi_ = lo_ + (hi_ - lo_) * hi;
    return p;
  }

 private:
  Fn fn_;
  float lo_ = 0, hi_ = 1;
};

}  // namespace cellcount
