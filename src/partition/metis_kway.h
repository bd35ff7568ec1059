// The one call of METIS_PartGraphKway (partition.cc's whole-graph METIS and the external
// partitioner's coarse graph): options, error mapping and the part-range check.
#pragma once

#include <metis.h>

#include <cstdint>

#include "cgcn/status.h"

namespace cgcn {

static_assert(sizeof(idx_t) == sizeof(int32_t), "cgcn expects METIS built with IDXTYPEWIDTH 32 (Debian's)");

// Partitions the n-node graph (xadj/adjncy, optional vwgt/adjwgt: null = unit weights) into
// num_parts parts written to part[n], seeded; ufactor 0 keeps METIS's default imbalance
// (1.030), else allows (1 + ufactor / 1000). `what` names the graph in errors ("the coarse graph").
Status MetisKway(idx_t n, idx_t* xadj, idx_t* adjncy, idx_t* vwgt, idx_t* adjwgt, int32_t num_parts, int64_t seed,
                 idx_t ufactor, int32_t* part, const char* what);

}  // namespace cgcn
