// Writing NumPy .npy and .npz files in tests and the fuzz seed corpus, without NumPy: the bytes
// numpy.save / numpy.savez (stored members) / numpy.savez_compressed (deflated members, zlib)
// write, plus the ZIP64 forms Python's zipfile uses for large members. A reference independent of
// the reader (src/raw/npz.cc): written from the file format specifications (NumPy's NEP 1 and
// PKWARE's APPNOTE), sharing no code with it.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "testutil/testutil.h"

namespace cgcn::testutil {

// An .npy file: magic, version `major`.0, the header dict (padded with spaces and a newline to a
// multiple of 64 bytes, as numpy pads it), then `data` as is.
std::string NpyBytes(std::string_view descr, const std::vector<uint64_t>& shape, std::string_view data,
                     bool fortran_order = false, int major = 1);
// The header dict as numpy writes it: "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }".
std::string NpyDict(std::string_view descr, const std::vector<uint64_t>& shape, bool fortran_order);
// An .npy file with a header dict given verbatim (for malformed headers).
std::string NpyBytesWithDict(std::string_view dict, std::string_view data, int major = 1);

// The bytes of a vector of trivially copyable values (little-endian host).
template <class T>
std::string RawBytes(const std::vector<T>& v) {
  std::string s(v.size() * sizeof(T), '\0');
  if (!v.empty()) std::memcpy(s.data(), v.data(), s.size());
  return s;
}

struct ZipEntry {
  std::string name;
  std::string bytes;     // the uncompressed member
  bool deflate = false;  // method 8 (zlib raw deflate), else 0 (stored)
  bool zip64 = false;    // sizes and offset as ZIP64 extra fields (local and central)
};
// A zip archive of `entries` in order; `zip64_end` adds a ZIP64 end record and locator.
std::string ZipBytes(const std::vector<ZipEntry>& entries, bool zip64_end = false);
// Raw deflate of `bytes` (zlib, level 6, no header), as savez_compressed stores a member.
std::string Deflate(std::string_view bytes);

struct NpzOptions {
  bool deflate = false;             // savez_compressed instead of savez
  bool zip64 = false;               // ZIP64 extra fields and end record
  bool fortran_edges = false;       // edge_index in Fortran order (interleaved pairs)
  std::string edge_dtype = "<i8";   // or "<i4"
  std::string feat_dtype = "<f4";   // or "<f2" (values must be exact halves), "<f8"
  std::string label_dtype = "<f8";  // or "<f4", "<i8", "<i4" (unlabeled: NaN, or -1 for ints)
  bool label_column = true;         // node_label shape (N, 1), else (N,)
  int npy_major = 1;
};
// The members numpy would write for `spec`: data.npz (edge_index, node_feat, num_nodes_list,
// num_edges_list) and node-label.npz (node_label; kNoLabel as NaN).
std::vector<ZipEntry> NpzDataMembers(const RawDatasetSpec& spec, const NpzOptions& options = {});
std::vector<ZipEntry> NpzLabelMembers(const RawDatasetSpec& spec, const NpzOptions& options = {});
// Writes DIR/raw/data.npz, DIR/raw/node-label.npz and DIR/split/NAME/*.csv.gz.
void WriteNpzDataset(const std::string& dir, const RawDatasetSpec& spec, const NpzOptions& options = {});

}  // namespace cgcn::testutil
