// Model files (docs/FORMAT.md, "Model file"): magic, version, config (layer kind, norm, residual
// from version 2), row_normalize, parameters, buffers (batch norm's running statistics), checksum.
// Version 1 files (before layer kinds) load as a plain GCN.
#pragma once

#include <string>

#include "cgcn/gcn.h"
#include "cgcn/status.h"

namespace cgcn {

// Written atomically (WriteFileAtomic): a reader sees the old file or the new one, never a mix.
Status SaveModel(const std::string& path, const Gcn& model, bool row_normalize);
// With the model, its buffers (batch norm running statistics) are restored.
Result<Gcn> LoadModel(const std::string& path, bool* row_normalize);

}  // namespace cgcn
