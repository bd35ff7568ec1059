// Learning-rate schedules (cgcn-train --lr-schedule): none, step, cosine and plateau.
//   none     lr stays --lr.
//   step     lr = --lr x gamma^floor((epoch - 1) / step_size)      (--lr-gamma, --lr-step-size)
//   cosine   lr = --lr x (1 + cos(pi (epoch - 1) / epochs)) / 2    (annealed over --epochs, no restarts)
//   plateau  lr x gamma when the validation loss has not improved (by a relative 1e-4) for more
//            than --lr-patience evaluations in a row (torch's ReduceLROnPlateau); needs --eval-every.
// step and cosine are functions of the epoch; plateau has state, which checkpoints keep.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "cgcn/status.h"

namespace cgcn {

enum class LrSchedule { kNone, kStep, kCosine, kPlateau };
std::string_view LrScheduleName(LrSchedule s);
// "none", "step", "cosine" or "plateau"; kInvalidArgument naming --lr-schedule otherwise.
Result<LrSchedule> ParseLrSchedule(std::string_view text);

struct LrScheduleOptions {
  LrSchedule kind = LrSchedule::kNone;
  float base_lr = 0.01f;
  uint32_t epochs = 1;      // cosine anneals over these
  uint32_t step_size = 50;  // step: epochs between reductions
  float gamma = 0.5f;       // step and plateau: the factor
  uint32_t patience = 5;    // plateau: evaluations without improvement tolerated
};

// The plateau state (checkpointed).
struct PlateauState {
  float lr = 0;      // current learning rate
  double best = 0;   // best validation loss so far (valid with seen)
  uint32_t bad = 0;  // evaluations since it improved
  bool seen = false;
};

class LrScheduler {
 public:
  explicit LrScheduler(const LrScheduleOptions& options);
  // The learning rate for training epoch `epoch` (from 1).
  float ForEpoch(uint32_t epoch) const;
  // After an evaluation (plateau only; a NaN loss, as with an empty validation split, is ignored).
  void OnEvaluation(double valid_loss);
  const PlateauState& state() const { return plateau_; }
  void Restore(const PlateauState& state) { plateau_ = state; }

 private:
  LrScheduleOptions o_;
  PlateauState plateau_;
};

}  // namespace cgcn
