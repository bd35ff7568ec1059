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
// Atomically publishes the complete directory `tmp` as `out`: an existing `out` is first moved
// to "<out>.old-<pid>" (put back if the second rename fails) and removed only after `tmp` took
// its place; the parent directory is fsynced. (DeadSiblings finds the ".old-" of a killed run.)
Status PublishDirectory(const std::string& tmp, const std::string& out);
Result<std::vector<std::byte>> ReadWholeFile(const std::string& path);

}  // namespace cgcn
