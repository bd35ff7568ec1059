// Whole-file writes with real error reporting (ENOSPC names the file), fsync and atomic rename.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "cgcn/status.h"

namespace cgcn {

// Creates/truncates `path`, writes all bytes, fsyncs, closes.
Status WriteWholeFile(const std::string& path, std::span<const std::byte> bytes);
// Writes "<path>.tmp-<pid>", fsyncs, renames over `path`, fsyncs the directory.
// Nothing is left behind on failure.
Status WriteFileAtomic(const std::string& path, std::span<const std::byte> bytes);
Status FsyncDirectory(const std::string& dir);
// Siblings of `path` named "<name of path><tag><pid>" (e.g. ".tmp-1234") whose process has
// exited: the leftovers of killed runs.
std::vector<std::string> DeadSiblings(const std::string& path, const std::string& tag);
Result<std::vector<std::byte>> ReadWholeFile(const std::string& path);

}  // namespace cgcn
