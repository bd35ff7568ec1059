// Model files (docs/FORMAT.md, "Model file"): magic, version, config, feature normalization,
// parameters, the standardization statistics (with normalization 2), checksum.
#pragma once

#include <string>

#include "cgcn/feature_norm.h"
#include "cgcn/gcn.h"
#include "cgcn/status.h"

namespace cgcn {

// Written atomically (WriteFileAtomic): a reader sees the old file or the new one, never a mix.
// The normalization is the one the model was trained with (cgcn-predict applies it).
Status SaveModel(const std::string& path, const Gcn& model, const FeatureNorm& norm);
Result<Gcn> LoadModel(const std::string& path, FeatureNorm* norm);

}  // namespace cgcn
