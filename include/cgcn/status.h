// Errors as values. Every fallible library call returns Status or Result<T>;
// messages name the file, the line or byte offset and what was expected.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace cgcn {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad flag or option value
  kInvalidInput,     // malformed raw input file
  kCorruption,       // on-disk data fails a checksum or structural check
  kIoError,          // open/read/write/rename failed
  kUnsupported,      // valid but beyond a limit (e.g. METIS's 32-bit idx_t)
  kInternal,
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) { return Status(StatusCode::kInvalidArgument, std::move(m)); }
  static Status InvalidInput(std::string m) { return Status(StatusCode::kInvalidInput, std::move(m)); }
  static Status Corruption(std::string m) { return Status(StatusCode::kCorruption, std::move(m)); }
  static Status IoError(std::string m) { return Status(StatusCode::kIoError, std::move(m)); }
  static Status Unsupported(std::string m) { return Status(StatusCode::kUnsupported, std::move(m)); }
  static Status Internal(std::string m) { return Status(StatusCode::kInternal, std::move(m)); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "corruption: shard-000003.cgs: section 'features': checksum mismatch ..."
  std::string ToString() const;
  // Returns a copy whose message is "context: message" (same code).
  Status WithContext(const std::string& context) const;

 private:
  Status(StatusCode c, std::string m) : code_(c), message_(std::move(m)) {}
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

const char* StatusCodeName(StatusCode code);

// A value or the Status explaining why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}                                              // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).ok()); }  // NOLINT
  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace cgcn

#define CGCN_CONCAT_INNER(a, b) a##b
#define CGCN_CONCAT(a, b) CGCN_CONCAT_INNER(a, b)

// Returns from the enclosing function if `expr` (a Status) is not ok.
#define CGCN_RETURN_IF_ERROR(expr)                                                             \
  do {                                                                                         \
    ::cgcn::Status CGCN_CONCAT(cgcn_status_, __LINE__) = (expr);                               \
    if (!CGCN_CONCAT(cgcn_status_, __LINE__).ok()) return CGCN_CONCAT(cgcn_status_, __LINE__); \
  } while (0)

// `lhs = value of expr` (a Result<T>), or returns its Status.
#define CGCN_ASSIGN_OR_RETURN(lhs, expr)                                                              \
  auto CGCN_CONCAT(cgcn_result_, __LINE__) = (expr);                                                  \
  if (!CGCN_CONCAT(cgcn_result_, __LINE__).ok()) return CGCN_CONCAT(cgcn_result_, __LINE__).status(); \
  lhs = std::move(CGCN_CONCAT(cgcn_result_, __LINE__)).value()
