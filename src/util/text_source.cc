#include "util/text_source.h"

#include <algorithm>
#include <boost/iostreams/filter/gzip.hpp>
#include <boost/iostreams/filtering_stream.hpp>
#include <cstring>
#include <filesystem>
#include <ios>
#include <memory>
#include <system_error>
#include <utility>

#include "util/fd.h"
#include "util/parallel.h"

namespace cgcn {

namespace io = boost::iostreams;

namespace {

constexpr size_t kGzipChunk = 4 << 10;

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The open file and what has been read from it: the stored bytes are counted (and optionally
// hashed) as they are pulled, and a read error is kept for Fill() to report.
struct SourceState {
  UniqueFd fd;
  std::string path;
  StreamingChecksum* hash = nullptr;
  uint64_t consumed = 0;
  Status error;
};

// A Boost.Iostreams Source over SourceState's file. Boost copies devices, so the state lives
// outside.
class HashingFileSource {
 public:
  using char_type = char;
  using category = io::source_tag;

  explicit HashingFileSource(SourceState* state) : state_(state) {}

  // Returns the number of bytes read, or -1 at the end of the file or after a read error
  // (kept in the state).
  std::streamsize read(char* s, std::streamsize n) {
    if (!state_->error.ok()) return -1;
    Result<size_t> got = ReadSome(state_->fd.get(), state_->path, s, static_cast<size_t>(n), state_->consumed);
    if (!got.ok()) {
      state_->error = got.status();
      return -1;
    }
    if (*got == 0) return -1;
    state_->consumed += *got;
    if (state_->hash != nullptr) state_->hash->Update(s, *got);
    return static_cast<std::streamsize>(*got);
  }

 private:
  SourceState* state_;
};

std::string DescribeZlibError(int code) {
  if (code == io::zlib::buf_error) return "truncated gzip data (the deflate stream ends early)";
  return "corrupt gzip data (zlib error " + std::to_string(code) + " in the deflate stream)";
}

std::string DescribeGzipError(const io::gzip_error& e) {
  switch (e.error()) {
    case io::gzip::zlib_error:
      return DescribeZlibError(e.zlib_error_code());
    case io::gzip::bad_crc:
      return "corrupt gzip data (CRC mismatch in the footer)";
    case io::gzip::bad_length:
      return "corrupt gzip data (length mismatch in the footer)";
    case io::gzip::bad_header:
      return "bad gzip header (or trailing garbage after the gzip data)";
    case io::gzip::bad_footer:
      return "truncated gzip data (no complete footer)";
    case io::gzip::bad_method:
      return "unsupported gzip compression method";
    default:
      return std::string("gzip error: ") + e.what();
  }
}

}  // namespace

Result<std::string> ResolveCsvPath(const std::string& base) {
  std::string gz = base + ".csv.gz";
  std::string plain = base + ".csv";
  std::error_code ec;
  if (std::filesystem::exists(gz, ec)) return gz;
  if (std::filesystem::exists(plain, ec)) return plain;
  return Status::IoError(gz + ": no such file (nor " + plain + ")");
}

struct TextSource::Impl {
  SourceState state;
  std::unique_ptr<HashingFileSource> plain;     // set for plain files
  std::unique_ptr<io::filtering_istream> gzip;  // set for .gz files
};

TextSource::TextSource(TextSource&&) noexcept = default;
TextSource& TextSource::operator=(TextSource&&) noexcept = default;
TextSource::~TextSource() = default;

Result<TextSource> TextSource::Open(const std::string& path, const Options& options) {
  uint64_t size = 0;
  CGCN_ASSIGN_OR_RETURN(UniqueFd fd, OpenRegularFileForRead(path, &size));
  TextSource src;
  src.path_ = path;
  src.gzipped_ = EndsWith(path, ".gz");
  src.stored_size_ = size;
  src.block_bytes_ = std::max<size_t>(options.block_bytes, 16);
  src.impl_ = std::make_unique<Impl>();
  Impl& impl = *src.impl_;
  impl.state.fd = std::move(fd);
  impl.state.path = path;
  impl.state.hash = options.stored_bytes_hash;
  HashingFileSource device(&impl.state);
  try {
    if (src.gzipped_) {
      // Compressed input is pulled in 64 KiB reads; decompressed output comes in
      // kGzipChunk pieces, which bounds what a gzip error loses (see Fill()).
      constexpr std::streamsize kInputBuffer = 64 << 10;
      impl.gzip = std::make_unique<io::filtering_istream>();
      impl.gzip->push(io::gzip_decompressor(io::zlib::default_window_bits, kInputBuffer),
                      static_cast<std::streamsize>(kGzipChunk));
      impl.gzip->push(device, kInputBuffer);
    } else {
      impl.plain = std::make_unique<HashingFileSource>(device);
    }
  } catch (...) {
    return StatusFromCurrentException(path + ": cannot set up reading");
  }
  src.cap_ = src.block_bytes_;
  src.buf_ = std::make_unique_for_overwrite<char[]>(src.cap_);
  return src;
}

bool TextSource::Fill() {
  if (!pending_error_.ok()) {  // met while filling the buffer last time; now its lines are used up
    status_ = pending_error_.WithContext(path_ + ":" + std::to_string(line_number_ + 1));
    return false;
  }
  if (begin_ > 0) {
    std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == cap_) {  // one line fills the whole buffer: grow it
    if (cap_ >= kMaxLineBytes) {
      status_ = Status::InvalidInput(path_ + ":" + std::to_string(line_number_ + 1) + ": line longer than " +
                                     std::to_string(kMaxLineBytes) + " bytes");
      return false;
    }
    size_t new_cap = std::min(cap_ * 2, kMaxLineBytes);
    auto bigger = std::make_unique_for_overwrite<char[]>(new_cap);
    std::memcpy(bigger.get(), buf_.get(), end_);
    buf_ = std::move(bigger);
    cap_ = new_cap;
  }
  size_t want = std::min(cap_ - end_, std::max(block_bytes_, cap_ / 2));
  size_t got = 0;
  if (impl_->gzip) {
    // Pull in small chunks: when Boost throws, everything decoded by the chunk that
    // threw is lost, but the chunks before it are kept, so their lines are still handed
    // out and the error names (to within kGzipChunk bytes) the first line not decoded.
    constexpr size_t kChunk = kGzipChunk;
    try {
      while (got < want) {
        size_t ask = std::min(kChunk, want - got);
        std::streamsize n = impl_->gzip->rdbuf()->sgetn(buf_.get() + end_ + got, static_cast<std::streamsize>(ask));
        if (n > 0) got += static_cast<size_t>(n);
        if (n < static_cast<std::streamsize>(ask)) break;  // end of the decompressed data
      }
    } catch (const io::gzip_error& e) {
      pending_error_ = Status::InvalidInput(DescribeGzipError(e));
    } catch (const io::zlib_error& e) {  // Boost wraps these in gzip_error; in case it does not
      pending_error_ = Status::InvalidInput(DescribeZlibError(e.error()));
    } catch (...) {
      pending_error_ = StatusFromCurrentException("read failed");
    }
  } else {
    std::streamsize n = impl_->plain->read(buf_.get() + end_, static_cast<std::streamsize>(want));
    if (n > 0) got = static_cast<size_t>(n);
  }
  // A failed read(2) looks like the end of the file to Boost (and may make the gzip filter
  // report truncated data): the read error is what to report ("PATH: read failed at byte N").
  if (!impl_->state.error.ok()) {
    status_ = impl_->state.error;
    return false;
  }
  if (got > 0) {
    end_ += got;
    return true;
  }
  if (!pending_error_.ok()) {
    status_ = pending_error_.WithContext(path_ + ":" + std::to_string(line_number_ + 1));
    return false;
  }
  // End of the (decompressed) data. Feed any stored bytes Boost did not pull to the
  // hash, then make sure what we read is the file that was measured at Open().
  eof_ = true;
  if (impl_->gzip) {
    HashingFileSource rest(&impl_->state);
    char scratch[4096];
    while (rest.read(scratch, sizeof scratch) > 0) {
    }
    if (!impl_->state.error.ok()) {
      status_ = impl_->state.error;
      return false;
    }
  }
  if (impl_->state.consumed != stored_size_) {
    status_ = Status::IoError(path_ + ": file size changed while reading (" + std::to_string(stored_size_) +
                              " bytes when opened, " + std::to_string(impl_->state.consumed) + " read)");
  }
  return false;
}

bool TextSource::Next(std::string_view* line) {
  if (!status_.ok()) return false;
  size_t scanned = begin_;  // bytes before this offset hold no '\n'
  for (;;) {
    char* data = buf_.get();
    const void* nl = std::memchr(data + scanned, '\n', end_ - scanned);
    if (nl != nullptr) {
      size_t stop = static_cast<size_t>(static_cast<const char*>(nl) - data);
      size_t len = stop - begin_;
      if (len > 0 && data[stop - 1] == '\r') --len;
      *line = std::string_view(data + begin_, len);
      begin_ = stop + 1;
      ++line_number_;
      return true;
    }
    if (eof_) {
      if (begin_ == end_) return false;
      size_t len = end_ - begin_;
      if (data[end_ - 1] == '\r') --len;
      *line = std::string_view(data + begin_, len);
      begin_ = end_;
      ++line_number_;
      return true;
    }
    size_t kept = end_ - begin_;
    if (!Fill()) {
      if (!status_.ok()) return false;
    }
    scanned = kept;  // Fill() moved the kept bytes to the front of the buffer
  }
}

}  // namespace cgcn
