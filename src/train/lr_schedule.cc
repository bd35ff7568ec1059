// Learning-rate schedules (cgcn/lr_schedule.h).
#include "cgcn/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace cgcn {

std::string_view LrScheduleName(LrSchedule s) {
  switch (s) {
    case LrSchedule::kNone:
      return "none";
    case LrSchedule::kStep:
      return "step";
    case LrSchedule::kCosine:
      return "cosine";
    case LrSchedule::kPlateau:
      return "plateau";
  }
  return "?";
}

Result<LrSchedule> ParseLrSchedule(std::string_view text) {
  for (LrSchedule s : {LrSchedule::kNone, LrSchedule::kStep, LrSchedule::kCosine, LrSchedule::kPlateau})
    if (text == LrScheduleName(s)) return s;
  return Status::InvalidArgument("--lr-schedule must be none, step, cosine or plateau, found '" + std::string(text) +
                                 "'");
}

LrScheduler::LrScheduler(const LrScheduleOptions& options) : o_(options) { plateau_.lr = options.base_lr; }

float LrScheduler::ForEpoch(uint32_t epoch) const {
  const double e = epoch > 0 ? epoch - 1 : 0;
  switch (o_.kind) {
    case LrSchedule::kNone:
      return o_.base_lr;
    case LrSchedule::kStep:
      return static_cast<float>(o_.base_lr *
                                std::pow(static_cast<double>(o_.gamma), std::floor(e / std::max(1u, o_.step_size))));
    case LrSchedule::kCosine:
      return static_cast<float>(o_.base_lr * 0.5 * (1.0 + std::cos(std::numbers::pi * e / std::max(1u, o_.epochs))));
    case LrSchedule::kPlateau:
      return plateau_.lr;
  }
  return o_.base_lr;
}

void LrScheduler::OnEvaluation(double valid_loss) {
  if (o_.kind != LrSchedule::kPlateau || std::isnan(valid_loss)) return;
  if (!plateau_.seen || valid_loss < plateau_.best * (1.0 - 1e-4)) {
    plateau_.best = valid_loss;
    plateau_.bad = 0;
    plateau_.seen = true;
    return;
  }
  if (++plateau_.bad > o_.patience) {
    plateau_.lr *= o_.gamma;
    plateau_.bad = 0;
  }
}

}  // namespace cgcn
