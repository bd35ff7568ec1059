// What a binary is: the line every tool prints for --version, also recorded in reports.
#pragma once

namespace cgcn {

// "cgcn 0.1.0 (commit 6fd4375, Release build, CPU target -march=native: AVX-512 F/BW/VL, AVX2, FMA)".
// The commit is read from git at build time ("-dirty" when the tree had uncommitted changes;
// "unknown" outside a git checkout).
const char* VersionString();

}  // namespace cgcn
