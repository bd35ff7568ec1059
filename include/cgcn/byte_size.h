// Memory sizes as users write them on the command line (--mem-budget of cgcn-preprocess and
// cgcn-train) and as every message and report prints them: one parser, one formatter.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "cgcn/status.h"

namespace cgcn {

// "512M", "2G", "1.5GiB", "800MB", "4096": K, M, G, T are powers of 1024, with or without a
// trailing "B" or "iB", in any case; a bare number is bytes. Zero, negative, malformed or
// absurdly large sizes are InvalidArgument ("'12Q' is not a memory size (examples: ...)").
// Sizes below one byte ("0.5") are refused too, so a budget is never silently "none".
Result<uint64_t> ParseByteSize(std::string_view text);

// The one way sizes are shown: "0 B" .. "1023 B", then one decimal of the largest binary unit
// that fits: "1.0 KiB", "133.0 KiB", "14.9 MiB", "1.5 GiB" (KiB, MiB, GiB, TiB, PiB, EiB). Rounded
// up, never down, so that a size printed as "needs at least X" is at least the need: X passed
// back as --mem-budget is enough.
std::string FormatBytes(uint64_t bytes);

}  // namespace cgcn
