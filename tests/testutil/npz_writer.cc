#include "testutil/npz_writer.h"

#include <zlib.h>

#include <bit>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "cgcn/split.h"

namespace cgcn::testutil {

namespace {

void Put16(std::string& s, uint16_t v) {
  for (int i = 0; i < 2; ++i) s += static_cast<char>(v >> (8 * i));
}
void Put32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s += static_cast<char>(v >> (8 * i));
}
void Put64(std::string& s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s += static_cast<char>(v >> (8 * i));
}

// float -> IEEE binary16 for values a half holds exactly (tests use small integers and halves).
uint16_t FloatToHalf(float f) {
  const uint32_t b = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((b >> 16) & 0x8000u);
  if (f == 0) return sign;
  const int exp = static_cast<int>((b >> 23) & 0xff) - 127 + 15;
  if (exp <= 0 || exp >= 31 || (b & 0x1fffu) != 0) throw std::runtime_error("FloatToHalf: not an exact normal half");
  return static_cast<uint16_t>(sign | (exp << 10) | ((b >> 13) & 0x3ffu));
}

}  // namespace

std::string NpyDict(std::string_view descr, const std::vector<uint64_t>& shape, bool fortran_order) {
  std::string s =
      "{'descr': '" + std::string(descr) + "', 'fortran_order': " + (fortran_order ? "True" : "False") + ", 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) s += ",";
  return s + "), }";
}

std::string NpyBytesWithDict(std::string_view dict, std::string_view data, int major) {
  const size_t pre = major == 1 ? 10 : 12;
  std::string header(dict);
  while ((pre + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string s = "\x93NUMPY";
  s += static_cast<char>(major);
  s += '\0';
  if (major == 1) {
    Put16(s, static_cast<uint16_t>(header.size()));
  } else {
    Put32(s, static_cast<uint32_t>(header.size()));
  }
  return s + header + std::string(data);
}

std::string NpyBytes(std::string_view descr, const std::vector<uint64_t>& shape, std::string_view data,
                     bool fortran_order, int major) {
  return NpyBytesWithDict(NpyDict(descr, shape, fortran_order), data, major);
}

std::string Deflate(std::string_view bytes) {
  z_stream z{};
  if (deflateInit2(&z, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("deflateInit2");
  std::string out(deflateBound(&z, bytes.size()) + 16, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = static_cast<uInt>(bytes.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) throw std::runtime_error("deflate did not finish");
  return out;
}

std::string ZipBytes(const std::vector<ZipEntry>& entries, bool zip64_end) {
  std::string zip, central;
  for (const ZipEntry& e : entries) {
    const std::string stored = e.deflate ? Deflate(e.bytes) : e.bytes;
    const auto crc = static_cast<uint32_t>(crc32_z(0, reinterpret_cast<const Bytef*>(e.bytes.data()), e.bytes.size()));
    const uint64_t offset = zip.size();
    const uint16_t method = e.deflate ? 8 : 0, needed = e.zip64 ? 45 : 20;
    const uint32_t csize32 = e.zip64 ? 0xffffffffu : static_cast<uint32_t>(stored.size());
    const uint32_t usize32 = e.zip64 ? 0xffffffffu : static_cast<uint32_t>(e.bytes.size());
    // Local file header.
    Put32(zip, 0x04034b50);
    Put16(zip, needed);
    Put16(zip, 0);  // flags
    Put16(zip, method);
    Put16(zip, 0);     // time
    Put16(zip, 0x21);  // date: 1980-01-01
    Put32(zip, crc);
    Put32(zip, csize32);
    Put32(zip, usize32);
    Put16(zip, static_cast<uint16_t>(e.name.size()));
    Put16(zip, e.zip64 ? 20 : 0);
    zip += e.name;
    if (e.zip64) {
      Put16(zip, 1);
      Put16(zip, 16);
      Put64(zip, e.bytes.size());
      Put64(zip, stored.size());
    }
    zip += stored;
    // Central directory entry.
    Put32(central, 0x02014b50);
    Put16(central, needed);
    Put16(central, needed);
    Put16(central, 0);
    Put16(central, method);
    Put16(central, 0);
    Put16(central, 0x21);
    Put32(central, crc);
    Put32(central, csize32);
    Put32(central, usize32);
    Put16(central, static_cast<uint16_t>(e.name.size()));
    Put16(central, e.zip64 ? 28 : 0);
    Put16(central, 0);  // comment
    Put16(central, 0);  // disk
    Put16(central, 0);  // internal attributes
    Put32(central, 0);  // external attributes
    Put32(central, e.zip64 ? 0xffffffffu : static_cast<uint32_t>(offset));
    central += e.name;
    if (e.zip64) {
      Put16(central, 1);
      Put16(central, 24);
      Put64(central, e.bytes.size());
      Put64(central, stored.size());
      Put64(central, offset);
    }
  }
  const uint64_t cd_offset = zip.size();
  zip += central;
  if (zip64_end) {
    const uint64_t z_offset = zip.size();
    Put32(zip, 0x06064b50);
    Put64(zip, 44);
    Put16(zip, 45);
    Put16(zip, 45);
    Put32(zip, 0);
    Put32(zip, 0);
    Put64(zip, entries.size());
    Put64(zip, entries.size());
    Put64(zip, central.size());
    Put64(zip, cd_offset);
    Put32(zip, 0x07064b50);
    Put32(zip, 0);
    Put64(zip, z_offset);
    Put32(zip, 1);
  }
  Put32(zip, 0x06054b50);
  Put16(zip, 0);
  Put16(zip, 0);
  Put16(zip, zip64_end ? 0xffff : static_cast<uint16_t>(entries.size()));
  Put16(zip, zip64_end ? 0xffff : static_cast<uint16_t>(entries.size()));
  Put32(zip, zip64_end ? 0xffffffffu : static_cast<uint32_t>(central.size()));
  Put32(zip, zip64_end ? 0xffffffffu : static_cast<uint32_t>(cd_offset));
  Put16(zip, 0);
  return zip;
}

std::vector<ZipEntry> NpzDataMembers(const RawDatasetSpec& spec, const NpzOptions& o) {
  const uint64_t n = spec.num_nodes, e = spec.edges.size();
  const uint64_t f = spec.features.empty() ? 0 : spec.features[0].size();
  // edge_index [2, E]: C order = all sources then all destinations; Fortran order = pairs.
  std::vector<int64_t> ids;
  if (o.fortran_edges) {
    for (auto [a, b] : spec.edges) ids.insert(ids.end(), {a, b});
  } else {
    for (auto [a, b] : spec.edges) ids.push_back(a);
    for (auto [a, b] : spec.edges) ids.push_back(b);
  }
  std::string edge_data;
  if (o.edge_dtype == "<i4") {
    std::vector<int32_t> v(ids.begin(), ids.end());
    edge_data = RawBytes(v);
  } else {
    edge_data = RawBytes(ids);
  }
  std::string feat_data;
  for (const auto& row : spec.features) {
    for (float x : row) {
      if (o.feat_dtype == "<f2") {
        feat_data += RawBytes(std::vector<uint16_t>{FloatToHalf(x)});
      } else if (o.feat_dtype == "<f8") {
        feat_data += RawBytes(std::vector<double>{x});
      } else {
        feat_data += RawBytes(std::vector<float>{x});
      }
    }
  }
  auto member = [&](const std::string& name, std::string bytes) {
    return ZipEntry{name, std::move(bytes), o.deflate, o.zip64};
  };
  return {member("edge_index.npy", NpyBytes(o.edge_dtype, {2, e}, edge_data, o.fortran_edges, o.npy_major)),
          member("node_feat.npy", NpyBytes(o.feat_dtype, {n, f}, feat_data, false, o.npy_major)),
          member("num_nodes_list.npy", NpyBytes("<i8", {1}, RawBytes(std::vector<int64_t>{static_cast<int64_t>(n)}))),
          member("num_edges_list.npy", NpyBytes("<i8", {1}, RawBytes(std::vector<int64_t>{static_cast<int64_t>(e)})))};
}

std::vector<ZipEntry> NpzLabelMembers(const RawDatasetSpec& spec, const NpzOptions& o) {
  std::string data;
  for (uint32_t label : spec.labels) {
    const bool none = label == kNoLabel;
    if (o.label_dtype == "<f8") {
      data += RawBytes(std::vector<double>{none ? std::numeric_limits<double>::quiet_NaN() : label});
    } else if (o.label_dtype == "<f4") {
      data += RawBytes(std::vector<float>{none ? std::numeric_limits<float>::quiet_NaN() : static_cast<float>(label)});
    } else if (o.label_dtype == "<i4") {
      data += RawBytes(std::vector<int32_t>{none ? -1 : static_cast<int32_t>(label)});
    } else {
      data += RawBytes(std::vector<int64_t>{none ? -1 : static_cast<int64_t>(label)});
    }
  }
  std::vector<uint64_t> shape{spec.num_nodes};
  if (o.label_column) shape.push_back(1);
  return {ZipEntry{"node_label.npy", NpyBytes(o.label_dtype, shape, data, false, o.npy_major), o.deflate, o.zip64}};
}

void WriteNpzDataset(const std::string& dir, const RawDatasetSpec& spec, const NpzOptions& options) {
  WriteFile(dir + "/raw/data.npz", ZipBytes(NpzDataMembers(spec, options), options.zip64));
  WriteFile(dir + "/raw/node-label.npz", ZipBytes(NpzLabelMembers(spec, options), options.zip64));
  for (const auto& [relative, text] : RawDatasetFiles(spec)) {
    if (relative.rfind("split/", 0) == 0) WriteGzFile(dir + "/" + relative + ".csv.gz", text);
  }
}

}  // namespace cgcn::testutil
