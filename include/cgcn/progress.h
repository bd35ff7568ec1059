// Progress reporting: the library never prints; it calls back.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string_view>

namespace cgcn {

// `phase` names the work ("read edges", "partition", "write shards"); `done` and
// `total` count its units (lines, shards, batches); total == 0 means unknown.
// Called from the thread doing the work; cheap to call often (callers throttle).
using ProgressFn = std::function<void(std::string_view phase, uint64_t done, uint64_t total)>;

// One phase's progress in units (entries, bytes), throttled: the callback runs when `done` has
// grown by a 256th of `total` (by 2^22 units when the total is unknown) since the last call, and
// once at Finish(). `fn` must outlive this; an empty one is never called.
class PhaseProgress {
 public:
  PhaseProgress(const ProgressFn& fn, std::string_view phase, uint64_t total)
      : fn_(&fn),
        phase_(phase),
        total_(total),
        step_(total ? std::max<uint64_t>(1, total / 256) : uint64_t{1} << 22),
        next_(step_) {}
  void Add(uint64_t units) {
    done_ += units;
    if (done_ >= next_ && *fn_) {
      (*fn_)(phase_, done_, total_);
      next_ = done_ + step_;
    }
  }
  void Finish() const {
    if (*fn_) (*fn_)(phase_, done_, total_);
  }
  uint64_t done() const { return done_; }

 private:
  const ProgressFn* fn_;
  std::string_view phase_;
  uint64_t total_, step_, next_, done_ = 0;
};

}  // namespace cgcn
