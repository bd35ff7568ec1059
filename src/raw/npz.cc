#include "raw/npz.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <string_view>
#include <utility>

#include "util/bytes.h"
#include "util/fd.h"

namespace cgcn::npz {

namespace {

uint16_t Le16(const char* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
uint32_t Le32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t Le64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

constexpr uint32_t kEndSig = 0x06054b50;           // end of central directory record
constexpr uint32_t kZip64LocatorSig = 0x07064b50;  // ZIP64 end of central directory locator
constexpr uint32_t kZip64EndSig = 0x06064b50;      // ZIP64 end of central directory record
constexpr uint32_t kCentralSig = 0x02014b50;       // central directory file header
constexpr uint32_t kLocalSig = 0x04034b50;         // local file header
constexpr size_t kEndBytes = 22, kZip64LocatorBytes = 20, kZip64EndBytes = 56, kCentralBytes = 46, kLocalBytes = 30;

std::string Hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

Status BadZip(const std::string& path, uint64_t offset, const std::string& what) {
  return Status::InvalidInput(path + " byte " + std::to_string(offset) + ": " + what);
}

// A name as it appears in a message: printable ASCII, other bytes escaped, long ones cut.
std::string Printable(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 80; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\'') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > 80) out += "...";
  return out;
}

}  // namespace

Result<std::vector<ZipMember>> ReadZipDirectory(int fd, const std::string& path, uint64_t file_size) {
  // The end record: 22 bytes, then a comment of up to 65535 bytes, at the very end of the file.
  if (file_size < kEndBytes)
    return BadZip(path, 0, "expected a zip file (an .npz), found only " + std::to_string(file_size) + " bytes");
  const uint64_t tail_bytes = std::min<uint64_t>(file_size, kEndBytes + 65535);
  const uint64_t tail_start = file_size - tail_bytes;
  std::vector<char> tail(tail_bytes);
  CGCN_RETURN_IF_ERROR(PreadExact(fd, path, tail.data(), tail.size(), tail_start));
  std::optional<uint64_t> end_at;  // offset in `tail`
  for (uint64_t i = tail_bytes - kEndBytes + 1; i-- > 0;) {
    if (Le32(tail.data() + i) == kEndSig && i + kEndBytes + Le16(tail.data() + i + 20) == tail_bytes) {
      end_at = i;
      break;
    }
  }
  if (!end_at) {
    return BadZip(path, file_size,
                  "expected a zip end-of-central-directory record (signature 0x06054b50) in the last " +
                      std::to_string(tail_bytes) + " bytes, found none (not a zip file, or truncated)");
  }
  const char* e = tail.data() + *end_at;
  const uint64_t end_offset = tail_start + *end_at;
  uint64_t disk = Le16(e + 4), cd_disk = Le16(e + 6);
  uint64_t entries_disk = Le16(e + 8), entries = Le16(e + 10);
  uint64_t cd_size = Le32(e + 12), cd_offset = Le32(e + 16);
  uint64_t cd_limit = end_offset;  // the directory ends before this

  // ZIP64: a locator just before the end record points at the ZIP64 end record.
  if (end_offset >= kZip64LocatorBytes) {
    char loc[kZip64LocatorBytes];
    const uint64_t loc_offset = end_offset - kZip64LocatorBytes;
    CGCN_RETURN_IF_ERROR(PreadExact(fd, path, loc, sizeof loc, loc_offset));
    if (Le32(loc) == kZip64LocatorSig) {
      const uint64_t z_offset = Le64(loc + 8);
      if (Le32(loc + 4) != 0 || Le32(loc + 16) > 1)
        return BadZip(path, loc_offset, "expected a single-disk zip file, found a multi-disk ZIP64 locator");
      if (z_offset > loc_offset || loc_offset - z_offset < kZip64EndBytes) {
        return BadZip(path, loc_offset + 8,
                      "expected the ZIP64 end record's offset to leave room for it before byte " +
                          std::to_string(loc_offset) + ", found " + std::to_string(z_offset));
      }
      char z[kZip64EndBytes];
      CGCN_RETURN_IF_ERROR(PreadExact(fd, path, z, sizeof z, z_offset));
      if (Le32(z) != kZip64EndSig) {
        return BadZip(
            path, z_offset,
            "expected a ZIP64 end-of-central-directory record (signature 0x06064b50), found " + Hex32(Le32(z)));
      }
      disk = Le32(z + 16);
      cd_disk = Le32(z + 20);
      entries_disk = Le64(z + 24);
      entries = Le64(z + 32);
      cd_size = Le64(z + 40);
      cd_offset = Le64(z + 48);
      cd_limit = z_offset;
    }
  }
  if (disk != 0 || cd_disk != 0 || entries_disk != entries)
    return BadZip(path, end_offset + 4, "expected a single-disk zip file, found a multi-disk one");
  if (cd_offset > cd_limit || cd_size > cd_limit - cd_offset) {
    return BadZip(path, end_offset + 12,
                  "expected the central directory (" + std::to_string(cd_size) + " bytes at byte " +
                      std::to_string(cd_offset) + ") to end by byte " + std::to_string(cd_limit) +
                      " (truncated file?)");
  }
  if (cd_size > kMaxDirectoryBytes) {
    return BadZip(path, end_offset + 12,
                  "expected a central directory of at most " + std::to_string(kMaxDirectoryBytes) + " bytes, found " +
                      std::to_string(cd_size));
  }
  if (entries > cd_size / kCentralBytes) {
    return BadZip(path, end_offset + 10,
                  "expected at most " + std::to_string(cd_size / kCentralBytes) + " entries in a " +
                      std::to_string(cd_size) + "-byte central directory, found a count of " + std::to_string(entries));
  }
  std::vector<char> cd(cd_size);
  CGCN_RETURN_IF_ERROR(PreadExact(fd, path, cd.data(), cd.size(), cd_offset));

  std::vector<ZipMember> members;
  std::map<std::string, uint64_t> seen;  // name -> its directory entry's offset
  uint64_t pos = 0;
  for (uint64_t k = 0; k < entries; ++k) {
    const uint64_t at = cd_offset + pos;
    if (cd_size - pos < kCentralBytes) {
      return BadZip(path, at,
                    "expected central directory entry " + std::to_string(k + 1) + " of " + std::to_string(entries) +
                        ", found the directory's end");
    }
    const char* h = cd.data() + pos;
    if (Le32(h) != kCentralSig) {
      return BadZip(path, at, "expected a central directory entry (signature 0x02014b50), found " + Hex32(Le32(h)));
    }
    const uint16_t flags = Le16(h + 8);
    ZipMember m;
    m.method = Le16(h + 10);
    m.crc32 = Le32(h + 16);
    m.stored_size = Le32(h + 20);
    m.size = Le32(h + 24);
    const uint16_t name_len = Le16(h + 28), extra_len = Le16(h + 30), comment_len = Le16(h + 32);
    uint64_t start_disk = Le16(h + 34);
    m.header_offset = Le32(h + 42);
    const uint64_t var_bytes = uint64_t{name_len} + extra_len + comment_len;
    if (cd_size - pos - kCentralBytes < var_bytes) {
      return BadZip(path, at + 28,
                    "expected the entry's name, extra field and comment (" + std::to_string(var_bytes) +
                        " bytes) inside the central directory, found them past its end");
    }
    m.name.assign(h + kCentralBytes, name_len);
    const std::string entry = "central directory entry '" + Printable(m.name) + "'";
    // ZIP64 extended information: the 64-bit values, present only for the fields set to all ones.
    const char* x = h + kCentralBytes + name_len;
    bool zip64_found = false;
    for (uint32_t xp = 0; xp + 4 <= extra_len;) {
      const uint16_t id = Le16(x + xp), len = Le16(x + xp + 2);
      if (xp + 4 + len > extra_len) {
        return BadZip(path, at + kCentralBytes + name_len + xp,
                      entry + ": expected an extra field of " + std::to_string(len) + " bytes, found it past the end");
      }
      if (id == 0x0001) {
        zip64_found = true;
        const char* v = x + xp + 4;
        uint32_t left = len;
        auto take = [&](uint64_t* field, uint32_t bytes) -> bool {
          if (left < bytes) return false;
          *field = bytes == 8 ? Le64(v) : Le32(v);
          v += bytes;
          left -= bytes;
          return true;
        };
        bool ok = true;
        if (m.size == 0xffffffffu) ok = ok && take(&m.size, 8);
        if (m.stored_size == 0xffffffffu) ok = ok && take(&m.stored_size, 8);
        if (m.header_offset == 0xffffffffu) ok = ok && take(&m.header_offset, 8);
        if (start_disk == 0xffffu) ok = ok && take(&start_disk, 4);
        if (!ok) {
          return BadZip(path, at + kCentralBytes + name_len + xp,
                        entry + ": expected a ZIP64 extra field holding every value marked 0xffffffff, found only " +
                            std::to_string(len) + " bytes");
        }
      }
      xp += 4u + len;
    }
    if (!zip64_found && (m.size == 0xffffffffu || m.stored_size == 0xffffffffu || m.header_offset == 0xffffffffu)) {
      return BadZip(path, at + 20,
                    entry + ": expected a ZIP64 extra field for the sizes or offset marked 0xffffffff, found none");
    }
    if (start_disk != 0)
      return BadZip(path, at + 34, entry + ": expected disk 0, found disk " + std::to_string(start_disk));
    if (flags & 0x41) return BadZip(path, at + 8, entry + ": expected an unencrypted member, found an encrypted one");
    if (m.method != 0 && m.method != 8) {
      return BadZip(
          path, at + 10,
          entry + ": expected compression method 0 (stored) or 8 (deflated), found " + std::to_string(m.method));
    }
    if (m.method == 0 && m.stored_size != m.size) {
      return BadZip(path, at + 20,
                    entry + ": a stored member must have equal sizes, found " + std::to_string(m.stored_size) +
                        " stored and " + std::to_string(m.size) + " uncompressed");
    }
    if (auto [it, fresh] = seen.emplace(m.name, at); !fresh) {
      return BadZip(path, at, entry + ": the name is already used by the entry at byte " + std::to_string(it->second));
    }
    // The local header: its own name and extra lengths decide where the data starts.
    if (m.header_offset > cd_offset || cd_offset - m.header_offset < kLocalBytes) {
      return BadZip(path, at + 42,
                    entry + ": expected a local header offset below byte " + std::to_string(cd_offset) +
                        " (where the central directory starts), found " + std::to_string(m.header_offset));
    }
    char local[kLocalBytes];
    CGCN_RETURN_IF_ERROR(PreadExact(fd, path, local, sizeof local, m.header_offset));
    if (Le32(local) != kLocalSig) {
      return BadZip(path, m.header_offset,
                    "expected the local file header of '" + Printable(m.name) + "' (signature 0x04034b50), found " +
                        Hex32(Le32(local)));
    }
    const uint64_t local_var = uint64_t{Le16(local + 26)} + Le16(local + 28);
    m.data_offset = m.header_offset + kLocalBytes + local_var;
    if (m.data_offset > cd_offset || cd_offset - m.data_offset < m.stored_size) {
      return BadZip(path, m.header_offset,
                    "member '" + Printable(m.name) + "': expected its " + std::to_string(m.stored_size) +
                        " stored bytes from byte " + std::to_string(m.data_offset) + " to end by byte " +
                        std::to_string(cd_offset) + " (where the central directory starts; truncated file?)");
    }
    if (Le16(local + 26) != name_len) {
      return BadZip(path, m.header_offset + 26,
                    "member '" + Printable(m.name) + "': the local header's name differs from the central directory's");
    }
    std::string local_name(name_len, '\0');
    CGCN_RETURN_IF_ERROR(PreadExact(fd, path, local_name.data(), name_len, m.header_offset + kLocalBytes));
    if (local_name != m.name) {
      return BadZip(path, m.header_offset + kLocalBytes,
                    "member '" + Printable(m.name) + "': the local header's name '" + Printable(local_name) +
                        "' differs from the central directory's");
    }
    members.push_back(std::move(m));
    pos += kCentralBytes + var_bytes;
  }
  // Members may not overlap: each one's local header starts after the previous one's data.
  std::vector<const ZipMember*> by_offset;
  for (const ZipMember& m : members) by_offset.push_back(&m);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const ZipMember* a, const ZipMember* b) { return a->header_offset < b->header_offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const ZipMember& a = *by_offset[i - 1];
    const ZipMember& b = *by_offset[i];
    if (b.header_offset < a.data_offset + a.stored_size) {
      return BadZip(path, b.header_offset,
                    "member '" + Printable(b.name) + "' overlaps member '" + Printable(a.name) +
                        "' (which ends at byte " + std::to_string(a.data_offset + a.stored_size) + ")");
    }
  }
  return members;
}

// ---------------------------------------------------------------------------------
// .npy headers

uint64_t NpyHeader::elements() const {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;
  return n;
}

namespace {

Status BadNpy(const std::string& where, uint64_t offset, const std::string& what) {
  return Status::InvalidInput(where + " byte " + std::to_string(offset) + ": " + what);
}

// A cursor over the header dict; offsets are relative to the member's start.
class DictParser {
 public:
  DictParser(std::string_view text, uint64_t base, const std::string& where) : s_(text), base_(base), where_(where) {}
  void SkipSpace() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  uint64_t offset() const { return base_ + i_; }
  bool AtEnd() const { return i_ >= s_.size(); }
  char Peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  std::string Found() const {
    if (AtEnd()) return "the end of the header";
    std::string out(1, '\'');
    out += Printable(s_.substr(i_, std::min<size_t>(20, s_.size() - i_)));
    out += '\'';
    return out;
  }
  Status Expect(char c, const std::string& what) {
    SkipSpace();
    if (Peek() != c) return BadNpy(where_, offset(), "expected " + what + ", found " + Found());
    ++i_;
    return Status::Ok();
  }
  // A Python string literal in single or double quotes (no escapes: none of the values needs one).
  Result<std::string> String(const std::string& what) {
    SkipSpace();
    const char q = Peek();
    if (q != '\'' && q != '"')
      return BadNpy(where_, offset(), "expected " + what + " (a quoted string), found " + Found());
    const size_t close = s_.find(q, i_ + 1);
    if (close == std::string_view::npos)
      return BadNpy(where_, offset(), "expected " + what + ", found an unterminated string");
    std::string v(s_.substr(i_ + 1, close - i_ - 1));
    if (v.find('\\') != std::string::npos)
      return BadNpy(where_, offset(), "expected " + what + " without escapes, found '" + Printable(v) + "'");
    i_ = close + 1;
    return v;
  }
  Result<bool> Bool() {
    SkipSpace();
    if (s_.substr(i_, 4) == "True") {
      i_ += 4;
      return true;
    }
    if (s_.substr(i_, 5) == "False") {
      i_ += 5;
      return false;
    }
    return BadNpy(where_, offset(), "expected True or False for 'fortran_order', found " + Found());
  }
  // A tuple of non-negative integers: "()", "(5,)", "(2, 3)", a trailing comma allowed, Python 2's
  // "3L" accepted.
  Result<std::vector<uint64_t>> Shape() {
    CGCN_RETURN_IF_ERROR(Expect('(', "'(' starting the 'shape' tuple"));
    std::vector<uint64_t> dims;
    for (;;) {
      SkipSpace();
      if (Peek() == ')') {
        ++i_;
        if (dims.size() == 1 && !trailing_comma_) {
          return BadNpy(where_, offset() - 1, "expected ',' after the only dimension of 'shape' (a 1-tuple)");
        }
        return dims;
      }
      if (!dims.empty() && !trailing_comma_)
        return BadNpy(where_, offset(), "expected ',' or ')' in 'shape', found " + Found());
      if (Peek() < '0' || Peek() > '9') {
        return BadNpy(where_, offset(), "expected a non-negative integer dimension in 'shape', found " + Found());
      }
      const uint64_t at = offset();
      uint64_t v = 0;
      while (Peek() >= '0' && Peek() <= '9') {
        const auto d = static_cast<uint64_t>(Peek() - '0');
        if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) {
          return BadNpy(where_, at, "expected a dimension below 2^64 in 'shape', found a larger one");
        }
        v = v * 10 + d;
        ++i_;
      }
      if (Peek() == 'L') ++i_;
      dims.push_back(v);
      if (dims.size() > 32) return BadNpy(where_, at, "expected at most 32 dimensions in 'shape', found more");
      SkipSpace();
      trailing_comma_ = Peek() == ',';
      if (trailing_comma_) ++i_;
    }
  }

 private:
  std::string_view s_;
  size_t i_ = 0;
  uint64_t base_;
  const std::string& where_;
  bool trailing_comma_ = false;
};

// Bytes per element of an accepted dtype string, or 0.
size_t ItemSize(std::string_view descr) {
  if (descr.size() != 3) return 0;
  if (descr[0] != '<' && descr[0] != '>' && descr[0] != '|' && descr[0] != '=') return 0;
  const char kind = descr[1], size = descr[2];
  if (kind == 'b' && size == '1') return 1;
  if ((kind == 'i' || kind == 'u') && (size == '1' || size == '2' || size == '4' || size == '8')) return size - '0';
  if (kind == 'f' && (size == '2' || size == '4' || size == '8')) return size - '0';
  return 0;
}

}  // namespace

Result<uint64_t> NpyHeaderBytes(std::span<const char> first, const std::string& where) {
  static constexpr char kMagic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};
  const size_t magic_bytes = std::min<size_t>(6, first.size());
  if (magic_bytes > 0 && std::memcmp(first.data(), kMagic, magic_bytes) != 0) {
    return BadNpy(
        where, 0,
        "expected the .npy magic \\x93NUMPY, found '" + Printable(std::string_view(first.data(), magic_bytes)) + "'");
  }
  if (first.size() < 10) {
    return BadNpy(
        where, first.size(),
        "expected an .npy header (at least 10 bytes), found a member of " + std::to_string(first.size()) + " bytes");
  }
  const int major = static_cast<unsigned char>(first[6]), minor = static_cast<unsigned char>(first[7]);
  if (!((major == 1 || major == 2 || major == 3) && minor == 0)) {
    return BadNpy(
        where, 6,
        "expected .npy format version 1.0, 2.0 or 3.0, found " + std::to_string(major) + "." + std::to_string(minor));
  }
  uint64_t total = 0;
  if (major == 1) {
    total = 10 + uint64_t{Le16(first.data() + 8)};
  } else {
    if (first.size() < 12) {
      return BadNpy(where, first.size(),
                    "expected a version " + std::to_string(major) +
                        ".0 .npy header (at least 12 bytes), found a member of " + std::to_string(first.size()) +
                        " bytes");
    }
    total = 12 + uint64_t{Le32(first.data() + 8)};
  }
  if (total > kMaxNpyHeaderBytes) {
    return BadNpy(where, 8,
                  "expected an .npy header of at most " + std::to_string(kMaxNpyHeaderBytes) +
                      " bytes, found a length of " + std::to_string(total));
  }
  return total;
}

Result<NpyHeader> ParseNpyHeader(std::span<const char> bytes, uint64_t member_size, const std::string& where,
                                 std::span<const std::string_view> dtypes) {
  CGCN_ASSIGN_OR_RETURN(const uint64_t total, NpyHeaderBytes(bytes, where));
  if (bytes.size() != total) {
    return Status::Internal(where + ": ParseNpyHeader given " + std::to_string(bytes.size()) +
                            " bytes, the header has " + std::to_string(total));
  }
  if (member_size < total) {
    return BadNpy(where, member_size,
                  "expected an .npy header of " + std::to_string(total) + " bytes, found a member of only " +
                      std::to_string(member_size) + " bytes (truncated)");
  }
  NpyHeader h;
  h.major = static_cast<unsigned char>(bytes[6]);
  h.minor = static_cast<unsigned char>(bytes[7]);
  h.data_offset = total;
  const size_t base = h.major == 1 ? 10 : 12;
  std::string_view text(bytes.data() + base, total - base);
  // Versions 1.0 and 2.0 are latin-1 text, 3.0 UTF-8; every value that matters is ASCII either way.
  if (text.empty() || text.back() != '\n') {
    return BadNpy(
        where, total - 1,
        "expected the .npy header to end with a newline, found " +
            (text.empty() ? std::string("an empty header") : "'" + Printable(text.substr(text.size() - 1)) + "'"));
  }
  DictParser p(text, base, where);
  CGCN_RETURN_IF_ERROR(p.Expect('{', "'{' starting the header dict"));
  bool have_descr = false, have_order = false, have_shape = false;
  uint64_t descr_at = 0;
  for (;;) {
    p.SkipSpace();
    if (p.Peek() == '}') break;
    const uint64_t key_at = p.offset();
    CGCN_ASSIGN_OR_RETURN(const std::string key, p.String("a key of the header dict"));
    CGCN_RETURN_IF_ERROR(p.Expect(':', "':' after '" + Printable(key) + "'"));
    p.SkipSpace();
    if (key == "descr" && !have_descr) {
      descr_at = p.offset();
      h.descr_at = descr_at;
      if (p.Peek() == '[')
        return BadNpy(where, descr_at, "expected a plain dtype string for 'descr', found a structured dtype");
      CGCN_ASSIGN_OR_RETURN(h.descr, p.String("the dtype string of 'descr'"));
      have_descr = true;
    } else if (key == "fortran_order" && !have_order) {
      h.fortran_order_at = p.offset();
      CGCN_ASSIGN_OR_RETURN(h.fortran_order, p.Bool());
      have_order = true;
    } else if (key == "shape" && !have_shape) {
      h.shape_at = p.offset();
      CGCN_ASSIGN_OR_RETURN(h.shape, p.Shape());
      have_shape = true;
    } else {
      const bool known = key == "descr" || key == "fortran_order" || key == "shape";
      return BadNpy(where, key_at,
                    known ? "key '" + key + "' appears twice in the header dict"
                          : "expected the keys 'descr', 'fortran_order' and 'shape', found '" + Printable(key) + "'");
    }
    p.SkipSpace();
    if (p.Peek() == ',') {
      CGCN_RETURN_IF_ERROR(p.Expect(',', "','"));
    } else if (p.Peek() != '}') {
      return BadNpy(where, p.offset(), "expected ',' or '}' in the header dict, found " + p.Found());
    }
  }
  CGCN_RETURN_IF_ERROR(p.Expect('}', "'}'"));
  p.SkipSpace();
  if (!p.AtEnd()) return BadNpy(where, p.offset(), "expected only padding after the header dict, found " + p.Found());
  if (!have_descr || !have_order || !have_shape) {
    return BadNpy(where, base,
                  std::string("expected the header dict to hold 'descr', 'fortran_order' and 'shape', found no '") +
                      (!have_descr   ? "descr"
                       : !have_order ? "fortran_order"
                                     : "shape") +
                      "'");
  }
  if (!dtypes.empty() && std::find(dtypes.begin(), dtypes.end(), h.descr) == dtypes.end()) {
    std::string want;
    for (size_t i = 0; i < dtypes.size(); ++i) {
      want += i == 0 ? "" : i + 1 == dtypes.size() ? " or " : ", ";
      want += "'" + std::string(dtypes[i]) + "'";
    }
    return BadNpy(where, descr_at, "expected dtype " + want + ", found '" + Printable(h.descr) + "'");
  }
  const size_t item = ItemSize(h.descr);
  if (item == 0) {
    return BadNpy(where, descr_at,
                  "expected a numeric dtype such as '<i8' or '<f4', found '" + Printable(h.descr) + "'");
  }
  // The data must hold exactly shape's elements: checked without overflow.
  uint64_t bytes_needed = item;
  bool overflow = false;
  for (uint64_t d : h.shape) {
    if (d != 0 && bytes_needed > std::numeric_limits<uint64_t>::max() / d)
      overflow = true;
    else
      bytes_needed *= d;
  }
  bool zero = false;
  for (uint64_t d : h.shape) zero = zero || d == 0;
  if (zero) bytes_needed = 0, overflow = false;
  const uint64_t have = member_size - total;
  if (overflow || bytes_needed != have) {
    std::string shape = "(";
    for (size_t i = 0; i < h.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(h.shape[i]);
    shape += h.shape.size() == 1 ? ",)" : ")";
    return BadNpy(where, total,
                  "expected " + (overflow ? std::string("more than 2^64") : std::to_string(bytes_needed)) +
                      " bytes of data for shape " + shape + " of '" + h.descr + "', found " + std::to_string(have) +
                      (have < bytes_needed ? " (truncated)" : ""));
  }
  return h;
}

// ---------------------------------------------------------------------------------
// Member decoding

struct MemberDecoder::Zlib {
  z_stream z{};
  bool init = false;
  ~Zlib() {
    if (init) inflateEnd(&z);
  }
};

MemberDecoder::MemberDecoder(const ZipMember& member, std::string where) : member_(member), where_(std::move(where)) {
  if (member_.method == 8) zlib_ = std::make_unique<Zlib>();
}
MemberDecoder::~MemberDecoder() = default;

Result<size_t> MemberDecoder::Run(std::span<const char>* in, char* out, size_t cap) {
  size_t wrote = 0;
  if (!zlib_) {
    wrote = std::min(cap, in->size());
    if (wrote != 0) std::memcpy(out, in->data(), wrote);  // an empty span may have a null data()
    *in = in->subspan(wrote);
    consumed_ += wrote;
  } else {
    z_stream& z = zlib_->z;
    if (!zlib_->init) {
      if (inflateInit2(&z, -MAX_WBITS) != Z_OK) return Status::Internal(where_ + ": zlib inflateInit2 failed");
      zlib_->init = true;
    }
    if (stream_end_) {
      if (!in->empty()) {
        return Status::InvalidInput(where_ + " stored byte " + std::to_string(consumed_) +
                                    ": the deflate stream ended, but the directory declares " +
                                    std::to_string(member_.stored_size) + " stored bytes");
      }
      return size_t{0};
    }
    // zlib counts in uInt; pieces stay below 1 GiB.
    constexpr size_t kMaxPiece = size_t{1} << 30;
    const size_t in_n = std::min(in->size(), kMaxPiece);
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in->data()));
    z.avail_in = static_cast<uInt>(in_n);
    z.next_out = reinterpret_cast<Bytef*>(out);
    z.avail_out = static_cast<uInt>(std::min(cap, kMaxPiece));
    const int rc = inflate(&z, Z_NO_FLUSH);
    const size_t used = in_n - z.avail_in;
    wrote = std::min(cap, kMaxPiece) - z.avail_out;
    *in = in->subspan(used);
    consumed_ += used;
    if (rc == Z_STREAM_END) {
      stream_end_ = true;
      if (!in->empty() || consumed_ != member_.stored_size) {
        return Status::InvalidInput(where_ + " stored byte " + std::to_string(consumed_) +
                                    ": the deflate stream ends here, but the directory declares " +
                                    std::to_string(member_.stored_size) + " stored bytes");
      }
    } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
      return Status::InvalidInput(where_ + " stored byte " + std::to_string(consumed_) +
                                  ": corrupt deflate data (zlib: " + (z.msg ? z.msg : std::to_string(rc)) + ")");
    }
  }
  if (wrote > member_.size - produced_) {
    return Status::InvalidInput(where_ + " byte " + std::to_string(member_.size) +
                                ": expected the member to end here (" + std::to_string(member_.size) +
                                " bytes, as the zip directory declares), found more data");
  }
  crc_ = static_cast<uint32_t>(crc32_z(crc_, reinterpret_cast<const Bytef*>(out), wrote));
  produced_ += wrote;
  return wrote;
}

Status MemberDecoder::Finish() {
  if (zlib_ && !stream_end_) {
    return Status::InvalidInput(where_ + " byte " + std::to_string(produced_) +
                                ": truncated deflate stream (it ends before its final block)");
  }
  if (produced_ != member_.size) {
    return Status::InvalidInput(where_ + " byte " + std::to_string(produced_) + ": expected " +
                                std::to_string(member_.size) + " bytes as the zip directory declares, found only " +
                                std::to_string(produced_) + " (truncated member)");
  }
  if (crc_ != member_.crc32) {
    return Status::InvalidInput(where_ + ": CRC-32 mismatch: the zip directory says " + Hex32(member_.crc32) +
                                ", the member's " + std::to_string(produced_) + " bytes give " + Hex32(crc_));
  }
  return Status::Ok();
}

}  // namespace cgcn::npz
