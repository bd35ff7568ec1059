// Line-by-line reading of a text file that is either gzip-compressed (Boost.Iostreams'
// gzip_decompressor over a binary file_source; chosen by a ".gz" suffix) or plain.
//
// The file is read in large blocks; lines are handed out as views into an internal
// buffer, so a line costs no allocation. Line terminators are '\n' or "\r\n"; a last
// line without a terminator is still a line; a single terminator at the end of the
// file does not start another (empty) line, but every other empty line is handed out
// so that the caller can reject it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "cgcn/checksum.h"
#include "cgcn/status.h"

namespace cgcn {

// Returns BASE + ".csv.gz" if that file exists, else BASE + ".csv" if that exists.
// Rule when both exist: the ".gz" file wins (it is OGB's canonical form, and a plain
// copy next to it is usually the product of `gunzip -k`). When neither exists the
// IoError names both candidates.
Result<std::string> ResolveCsvPath(const std::string& base);

// Not thread-safe; move-only. Typical use:
//
//   CGCN_ASSIGN_OR_RETURN(TextSource src, TextSource::Open(path));
//   std::string_view line;
//   while (src.Next(&line)) { ... src.line_number() ... }
//   CGCN_RETURN_IF_ERROR(src.status());
class TextSource {
 public:
  struct Options {
    // Size of one read from the (decompressed) stream. Lines longer than this grow
    // the buffer, up to kMaxLineBytes.
    size_t block_bytes = size_t{1} << 20;
    // If set, every stored (still compressed) byte of the file is fed to it in file
    // order; after Next() has returned false with an ok status() the whole file has
    // been fed. Must outlive the TextSource.
    StreamingChecksum* stored_bytes_hash = nullptr;
  };
  static constexpr size_t kMaxLineBytes = size_t{1} << 30;

  // IoError if the file cannot be opened or is not a regular file (OpenRegularFileForRead: a FIFO
  // is refused, never waited on).
  static Result<TextSource> Open(const std::string& path, const Options& options);
  static Result<TextSource> Open(const std::string& path) { return Open(path, Options()); }

  TextSource(TextSource&&) noexcept;
  TextSource& operator=(TextSource&&) noexcept;
  ~TextSource();

  // Sets *line to the next line without its terminator and returns true. The view is
  // valid until the next call to Next() or until this object is destroyed or moved.
  // Returns false at the end of the file or on error; status() tells which.
  bool Next(std::string_view* line);

  // Ok, or why Next() stopped early: InvalidInput for a truncated or corrupt gzip
  // stream ("PATH:LINE: ..." naming the line being read when it happened), IoError
  // for a failed read or a file whose size changed while it was read.
  const Status& status() const { return status_; }

  // 1-based number of the line last returned by Next() (0 before the first).
  uint64_t line_number() const { return line_number_; }
  const std::string& path() const { return path_; }
  bool gzipped() const { return gzipped_; }
  // Size of the file as stored, taken when it was opened.
  uint64_t stored_size() const { return stored_size_; }

 private:
  struct Impl;
  TextSource() = default;
  // Reads more decompressed bytes after the data kept in the buffer; false at EOF or error.
  bool Fill();

  std::unique_ptr<Impl> impl_;
  std::string path_;
  bool gzipped_ = false;
  uint64_t stored_size_ = 0;
  size_t block_bytes_ = 0;
  std::unique_ptr<char[]> buf_;
  size_t cap_ = 0;    // bytes allocated in buf_
  size_t begin_ = 0;  // unconsumed data is buf_[begin_, end_)
  size_t end_ = 0;
  bool eof_ = false;
  uint64_t line_number_ = 0;
  Status status_;
  Status pending_error_;  // a read error to report once the data before it is consumed
};

}  // namespace cgcn
