// The evaluation's phase times (cgcn/evaluate.h, EvalStats) as JSON, for the metrics records,
// cgcn-train's summary and cgcn-predict's summary.
#pragma once

#include <nlohmann/json.hpp>

#include "cgcn/evaluate.h"

namespace cgcn {

// {"pass0_s": S, "layers": [{"load_s": S, "sum_s": S, "finish_s": S}, ...]}
inline nlohmann::json EvalPhasesJson(const EvalStats& s) {
  nlohmann::json layers = nlohmann::json::array();
  for (const EvalPassTimes& t : s.layers)
    layers.push_back({{"load_s", t.load_s}, {"sum_s", t.sum_s}, {"finish_s", t.finish_s}});
  return {{"pass0_s", s.pass0_s}, {"reused", s.reused}, {"layers", layers}};
}

}  // namespace cgcn
