// cgcn-dump's work, as library functions (the tool's main only parses flags).
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

#include "cgcn/status.h"

namespace cgcn {

struct DumpOptions {
  std::string dir;
  std::optional<uint32_t> shard;  // print one shard's contents
  bool verify = false;            // check every checksum and invariant
  bool json = false;              // machine-readable output
  uint32_t max_rows = 20;         // rows shown per section with `shard`
  std::string check_input;        // raw input directory to compare with the manifest's record
};

// Writes the report to `out`; returns the first problem found (verify) or I/O error.
Status Dump(const DumpOptions& options, std::ostream& out);

}  // namespace cgcn
