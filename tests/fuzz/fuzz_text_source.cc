// libFuzzer target: TextSource (src/util/text_source.h), the line reader under every CSV file
// the raw reader parses, plain and gzipped. The first input byte chooses the form and a small
// block size (so that lines cross block boundaries and grow the buffer); the rest is the content:
//   bits 0-1  0: the rest is a plain file (.csv)
//             1: the rest is a .csv.gz file as stored (a mutated gzip stream)
//             2: the rest is text, gzipped here as one member (.csv.gz)
//             3: the rest is text, gzipped here as two or three members (.csv.gz)
//   bits 2-7  block_bytes = 16 + 8 * value
// Whatever the content, TextSource must not crash, leak or hang. Plain files and gzip written
// here must read back as exactly the lines the splitting rule of text_source.h gives (written out
// again in fuzz_text.h), with every stored byte fed to the hash and the sizes right. A mutated
// gzip stream must either read back as the lines of what the reference decoder (fuzz_gzip.h, on
// zlib) gets from it, or stop with kInvalidInput "PATH:LINE: ...".
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cgcn/checksum.h"
#include "fuzz/fuzz_files.h"
#include "fuzz/fuzz_gzip.h"
#include "fuzz/fuzz_text.h"
#include "fuzz/fuzz_util.h"
#include "util/text_source.h"

namespace cgcn::fuzz {
namespace {

struct ReadBack {
  Status status;
  std::vector<std::string> lines;
  uint64_t line_number = 0;
};

ReadBack ReadAll(const std::string& path, size_t block_bytes, std::string_view stored, bool gzipped) {
  StreamingChecksum hash;
  TextSource::Options options;
  options.block_bytes = block_bytes;
  options.stored_bytes_hash = &hash;
  Result<TextSource> src = TextSource::Open(path, options);
  CGCN_FUZZ_CHECK(src.ok());  // a regular file that exists
  CGCN_FUZZ_CHECK(src->stored_size() == stored.size() && src->gzipped() == gzipped && src->path() == path);
  ReadBack r;
  std::string_view line;
  while (src->Next(&line)) {
    r.lines.emplace_back(line);
    CGCN_FUZZ_CHECK(src->line_number() == r.lines.size());
  }
  r.status = src->status();
  r.line_number = src->line_number();
  CGCN_FUZZ_CHECK(!src->Next(&line));  // stays at the end (or at the error)
  if (r.status.ok()) CGCN_FUZZ_CHECK(hash.Digest() == Checksum64(stored.data(), stored.size()));
  return r;
}

void FuzzOne(const uint8_t* data, size_t size) {
  if (size == 0) return;
  const unsigned form = data[0] & 3;
  const size_t block_bytes = 16 + 8 * size_t{static_cast<uint8_t>(data[0] >> 2)};
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);

  const std::string dir = ScratchDir();
  if (form == 0) {
    const std::string path = dir + "/in.csv";
    WriteBytes(path, rest);
    const ReadBack r = ReadAll(path, block_bytes, rest, false);
    CGCN_FUZZ_CHECK(r.status.ok());  // a plain file has no way to fail short of 1 GiB lines
    CGCN_FUZZ_CHECK(r.lines == SplitLines(rest));
    return;
  }
  const std::string path = dir + "/in.csv.gz";
  if (form == 1) {
    WriteBytes(path, rest);
    const ReadBack r = ReadAll(path, block_bytes, rest, true);
    if (r.status.ok()) {
      const std::optional<std::string> text = GunzipReference(rest);
      CGCN_FUZZ_CHECK(text.has_value());              // accepted: the reference decodes it too ...
      CGCN_FUZZ_CHECK(r.lines == SplitLines(*text));  // ... to the same lines
    } else {
      CGCN_FUZZ_CHECK(r.status.code() == StatusCode::kInvalidInput);
      const std::string where = path + ":" + std::to_string(r.line_number + 1) + ": ";
      CGCN_FUZZ_CHECK(StartsWith(r.status.message(), where));
    }
    return;
  }
  // Members cut at 1/3 (and 2/3 for form 3) of the text, so the cuts land inside lines too.
  std::vector<size_t> cuts = {rest.size() / 3};
  if (form == 3) cuts.push_back(2 * rest.size() / 3);
  const std::string gz = form == 2 ? GzipMember(rest) : GzipMembers(rest, cuts);
  WriteBytes(path, gz);
  const ReadBack r = ReadAll(path, block_bytes, gz, true);
  CGCN_FUZZ_CHECK(r.status.ok());
  CGCN_FUZZ_CHECK(r.lines == SplitLines(rest));
}

}  // namespace
}  // namespace cgcn::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cgcn::fuzz::FuzzOne(data, size);
  return 0;
}
