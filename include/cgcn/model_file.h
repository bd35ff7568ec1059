// Model files (docs/FORMAT.md, "Model file"): magic, version, config, row_normalize,
// parameters, checksum.
#pragma once

#include <string>

#include "cgcn/gcn.h"
#include "cgcn/status.h"

namespace cgcn {

// Written atomically (WriteFileAtomic): a reader sees the old file or the new one, never a mix.
Status SaveModel(const std::string& path, const Gcn& model, bool row_normalize);
Result<Gcn> LoadModel(const std::string& path, bool* row_normalize);

}  // namespace cgcn
