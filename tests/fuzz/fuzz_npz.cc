// libFuzzer target: the .npz reader (src/raw/npz.cc and the .npz layout of src/raw/raw_reader.cc)
// on arbitrary bytes taken as raw/data.npz, next to a valid raw/node-label.npz and split files of
// testutil's tiny dataset (6 nodes).
//
// It must never crash, leak, hang or allocate with the input's sizes, and:
//   - what ReadZipDirectory accepts lies inside the file: every member's stored bytes between its
//     local header and the central directory, no two members overlapping, names unique;
//   - every accepted member decodes (MemberDecoder, in small pieces) to at most its declared size,
//     and Finish accepts it only with exactly that size and the CRC-32 zlib computes over what
//     was produced;
//   - an .npy header ParseNpyHeader accepts describes exactly the member's data bytes;
//   - a graph ReadRawGraph accepts satisfies raw_reader.h's invariants (ids < N, finite features,
//     the labels of node-label.npz), and a refusal is kInvalidInput, kUnsupported or kIoError
//     whose message names one of the dataset's files.
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cgcn/raw_reader.h"
#include "fuzz/fuzz_files.h"
#include "fuzz/fuzz_util.h"
#include "raw/npz.h"
#include "testutil/npz_writer.h"
#include "testutil/testutil.h"
#include "util/fd.h"

namespace cgcn::fuzz {
namespace {

struct Dataset {
  std::string dir;
  testutil::RawDatasetSpec spec;
};

const Dataset& Base() {
  static const Dataset d = [] {
    Dataset b;
    b.dir = ScratchDir() + "/npz";
    b.spec = testutil::TinyRawDataset();
    testutil::WriteNpzDataset(b.dir, b.spec);
    Result<RawGraph> g = ReadRawGraph(RawReadOptions{b.dir, ""});
    if (!g.ok()) HarnessFailure("the tiny .npz dataset does not read: " + g.status().ToString());
    return b;
  }();
  return d;
}

// Decodes every member the directory accepted and checks the decoder's and the header parser's
// promises. At most kMaxDecoded bytes in all (a deflate stream expands up to 1032 times).
void CheckMembers(const std::string& path) {
  uint64_t size = 0;
  Result<UniqueFd> fd = OpenRegularFileForRead(path, &size);
  if (!fd.ok()) HarnessFailure(fd.status().ToString());
  Result<std::vector<npz::ZipMember>> members = npz::ReadZipDirectory(fd->get(), path, size);
  if (!members.ok()) {
    CGCN_FUZZ_CHECK(members.status().code() == StatusCode::kInvalidInput);
    CGCN_FUZZ_CHECK(StartsWith(members.status().message(), path));
    return;
  }
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const npz::ZipMember& m : *members) {
    CGCN_FUZZ_CHECK(m.method == 0 || m.method == 8);
    CGCN_FUZZ_CHECK(m.header_offset < m.data_offset && m.data_offset <= size && m.stored_size <= size - m.data_offset);
    CGCN_FUZZ_CHECK(m.method != 0 || m.stored_size == m.size);
    ranges.emplace_back(m.header_offset, m.data_offset + m.stored_size);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) CGCN_FUZZ_CHECK(ranges[i].first >= ranges[i - 1].second);

  constexpr uint64_t kMaxDecoded = uint64_t{8} << 20;
  uint64_t decoded_total = 0;
  std::vector<char> in(173), out(211);
  for (const npz::ZipMember& m : *members) {
    npz::MemberDecoder dec(m, path + " member " + m.name);
    uLong crc = crc32(0, nullptr, 0);
    std::string head;  // the first bytes, for the .npy header
    Status st;
    uint64_t produced = 0;
    for (uint64_t off = 0; st.ok() && off <= m.stored_size && decoded_total < kMaxDecoded;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(in.size(), m.stored_size - off));
      Status r = PreadExact(fd->get(), path, in.data(), n, m.data_offset + off);
      if (!r.ok()) HarnessFailure(r.ToString());
      std::span<const char> s(in.data(), n);
      for (;;) {
        Result<size_t> got = dec.Run(&s, out.data(), out.size());
        if (!got.ok()) {
          st = got.status();
          break;
        }
        crc = crc32_z(crc, reinterpret_cast<const Bytef*>(out.data()), *got);
        produced += *got;
        decoded_total += *got;
        CGCN_FUZZ_CHECK(produced <= m.size);
        if (head.size() < npz::kMaxNpyHeaderBytes)
          head.append(out.data(), std::min<size_t>(*got, npz::kMaxNpyHeaderBytes - head.size()));
        if (*got < out.size() && s.empty()) break;
      }
      if (off == m.stored_size) break;
      off += n;
    }
    if (!st.ok()) {
      CGCN_FUZZ_CHECK(st.code() == StatusCode::kInvalidInput);
      continue;
    }
    if (decoded_total >= kMaxDecoded) return;
    const Status fin = dec.Finish();
    if (fin.ok()) {
      CGCN_FUZZ_CHECK(produced == m.size && static_cast<uint32_t>(crc) == m.crc32);
    } else {
      CGCN_FUZZ_CHECK(fin.code() == StatusCode::kInvalidInput);
      continue;
    }
    const std::string where = path + " member " + m.name;
    Result<uint64_t> header_bytes = npz::NpyHeaderBytes(
        std::span<const char>(head.data(), std::min<size_t>(head.size(), npz::kNpyPreambleBytes)), where);
    if (!header_bytes.ok() || *header_bytes > head.size()) continue;
    Result<npz::NpyHeader> h = npz::ParseNpyHeader(std::span<const char>(head.data(), *header_bytes), m.size, where);
    if (!h.ok()) {
      CGCN_FUZZ_CHECK(h.status().code() == StatusCode::kInvalidInput && StartsWith(h.status().message(), where));
      continue;
    }
    CGCN_FUZZ_CHECK(h->data_offset == *header_bytes && h->descr.size() == 3);
    const uint64_t item = h->descr[2] - '0';
    bool zero = false;
    unsigned __int128 bytes = item;
    for (uint64_t d : h->shape) {
      zero = zero || d == 0;
      if (!zero) bytes *= d;
      CGCN_FUZZ_CHECK(zero || bytes <= m.size);
    }
    CGCN_FUZZ_CHECK((zero ? 0 : static_cast<uint64_t>(bytes)) == m.size - h->data_offset);
  }
}

void CheckDataset(const std::string& data_path) {
  const Dataset& base = Base();
  RawReadOptions options{base.dir, ""};
  options.text_block_bytes = 97;
  options.scratch_buffer_bytes = 61;
  Result<RawGraph> g = ReadRawGraph(options);
  if (!g.ok()) {
    const StatusCode c = g.status().code();
    CGCN_FUZZ_CHECK(c == StatusCode::kInvalidInput || c == StatusCode::kUnsupported || c == StatusCode::kIoError);
    CGCN_FUZZ_CHECK(g.status().message().find(base.dir) != std::string::npos);
    return;
  }
  (void)data_path;
  CGCN_FUZZ_CHECK(g->num_nodes == base.spec.num_nodes && g->feat_dim >= 1);
  CGCN_FUZZ_CHECK(g->edge_src.size() == g->edge_dst.size() && !g->edge_src.empty());
  for (size_t i = 0; i < g->edge_src.size(); ++i)
    CGCN_FUZZ_CHECK(g->edge_src[i] < g->num_nodes && g->edge_dst[i] < g->num_nodes);
  CGCN_FUZZ_CHECK(g->features.size() == uint64_t{g->num_nodes} * g->feat_dim);
  for (float f : g->features) CGCN_FUZZ_CHECK(std::isfinite(f));
  CGCN_FUZZ_CHECK(g->labels == base.spec.labels);  // node-label.npz is not fuzzed
}

}  // namespace
}  // namespace cgcn::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cgcn::fuzz;
  const std::string path = Base().dir + "/raw/data.npz";
  WriteBytes(path, std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size));
  CheckMembers(path);
  CheckDataset(path);
  return 0;
}
