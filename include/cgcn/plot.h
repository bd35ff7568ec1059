// Learning curves as a self-contained SVG (cgcn-train --plot-out), drawn by cgcn itself.
#pragma once

#include <string>
#include <vector>

#include "cgcn/status.h"
#include "cgcn/train.h"

namespace cgcn {

// Two panels over the epochs: the training loss of every epoch (and the validation loss at each
// evaluation), and the validation and test accuracy at each evaluation; axes with ticks and
// labels, a legend in each panel, `title` on top, a marker at `selected_epoch` (0: none).
// Non-finite values (an empty split) are left out.
std::string LearningCurveSvg(const std::vector<EpochRecord>& epochs, const std::string& title, uint32_t selected_epoch);

// LearningCurveSvg written atomically (WriteFileAtomic).
Status WriteLearningCurves(const std::string& path, const std::vector<EpochRecord>& epochs, const std::string& title,
                           uint32_t selected_epoch);

}  // namespace cgcn
