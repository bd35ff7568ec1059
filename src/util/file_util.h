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
// Replaces `path` atomically: the bytes go into an unnamed file in path's directory (O_TMPFILE;
// a killed process leaves nothing behind), fsynced, then linked under a unique temporary name
// "<path>.cgcn-tmp.<random>" and renamed over `path`; the directory is fsynced. A symbolic link
// at `path` is followed (the file it points to is replaced, the link is kept); a directory at
// `path` is refused. Where the file system has no O_TMPFILE the temporary is a named file from
// the start, removed on every failure. No other file is ever touched.
Status WriteFileAtomic(const std::string& path, std::span<const std::byte> bytes);
Status FsyncDirectory(const std::string& dir);
Result<std::vector<std::byte>> ReadWholeFile(const std::string& path);

}  // namespace cgcn
