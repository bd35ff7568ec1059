// Model files (docs/FORMAT.md, "Model file"): magic, version, config (layer kind, norm, residual
// from version 2), feature normalization, parameters, buffers (batch norm's running statistics),
// the standardization statistics (with normalization 2), checksum. Version 1 files (before layer
// kinds) load as a plain GCN.
#pragma once

#include <string>

#include "cgcn/feature_norm.h"
#include "cgcn/gcn.h"
#include "cgcn/status.h"

namespace cgcn {

// Written atomically (WriteFileAtomic): a reader sees the old file or the new one, never a mix.
// The normalization is the one the model was trained with (cgcn-predict applies it). With the
// model, its buffers (batch norm running statistics) are restored.
Status SaveModel(const std::string& path, const Gcn& model, const FeatureNorm& norm);
Result<Gcn> LoadModel(const std::string& path, FeatureNorm* norm);

}  // namespace cgcn
