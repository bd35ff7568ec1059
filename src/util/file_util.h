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
// a killed process leaves nothing behind), fsynced, then linked as `path` where nothing is there,
// else under the name LinkedTemporaryPath gives and renamed over `path`; the directory is fsynced.
// The linked file is flock-held until renamed, so a temporary a killed process left between link
// and rename is proven dead and cgcn's (its name encodes its own device, inode and size) and is
// removed by the next write of the same `path`. A symbolic link at `path` is followed (the file
// it points to is replaced, the link is kept); a directory at `path` is refused. Where the file
// system has no O_TMPFILE the temporary is a named file "<path>.cgcn-tmp.<random>" from the
// start, removed on every failure. No other file is ever touched.
Status WriteFileAtomic(const std::string& path, std::span<const std::byte> bytes);
// "<target>.cgcn-tmp.<16 hex digits>", the digits a checksum of the open file's device, inode
// and size: a name no other file can carry by accident.
std::string LinkedTemporaryPath(const std::string& target, int fd);
Status FsyncDirectory(const std::string& dir);
Result<std::vector<std::byte>> ReadWholeFile(const std::string& path);

}  // namespace cgcn
