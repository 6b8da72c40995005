#pragma once
// Errors as values. Every failure inside smart-imaging is a Status carrying one
// ErrorCode; the table in status.cpp maps each code to its HTTP status and FHIR
// issue code, so the facade never invents its own mapping.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace si {

enum class ErrorCode {
  kOk = 0,
  kInvalidArgument,   // malformed request parameter or body
  kUnauthorized,      // no or unusable credentials
  kForbidden,         // credentials fine, access not granted
  kNotFound,          // tenant, study, series, instance, route
  kMethodNotAllowed,  // known path, wrong verb
  kNotAcceptable,     // Accept cannot be satisfied
  kPayloadTooLarge,   // request body beyond the limit
  kUriTooLong,        // request target beyond the limit
  kUnavailable,       // try again later (Retry-After)
  kBadGateway,        // upstream broken
  kGatewayTimeout,    // upstream too slow
  kNotImplemented,    // feature configured but not available in this build
  kInvalidConfig,     // tenant file or settings invalid (start-up)
  kIoError,           // local disk or database
  kInternal,          // a bug
};

struct ErrorInfo {
  const char* name;
  int http_status;
  const char* fhir_issue_code;  // http://hl7.org/fhir/issue-type
};

// Total over ErrorCode; never returns null fields.
const ErrorInfo& InfoFor(ErrorCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  int http_status() const { return InfoFor(code_).http_status; }
  std::string ToString() const;
  // Whole seconds a client should wait before retrying (sent as Retry-After with
  // kUnavailable); 0 when the status does not say.
  int64_t retry_after_seconds() const { return retry_after_seconds_; }
  Status& WithRetryAfter(int64_t seconds) {
    retry_after_seconds_ = seconds;
    return *this;
  }

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
  int64_t retry_after_seconds_ = 0;
};

inline Status InvalidArgument(std::string m) { return {ErrorCode::kInvalidArgument, std::move(m)}; }
inline Status Unauthorized(std::string m) { return {ErrorCode::kUnauthorized, std::move(m)}; }
inline Status Forbidden(std::string m) { return {ErrorCode::kForbidden, std::move(m)}; }
inline Status NotFound(std::string m) { return {ErrorCode::kNotFound, std::move(m)}; }
inline Status NotAcceptable(std::string m) { return {ErrorCode::kNotAcceptable, std::move(m)}; }
inline Status Unavailable(std::string m) { return {ErrorCode::kUnavailable, std::move(m)}; }
inline Status NotImplemented(std::string m) { return {ErrorCode::kNotImplemented, std::move(m)}; }
inline Status InvalidConfig(std::string m) { return {ErrorCode::kInvalidConfig, std::move(m)}; }
inline Status IoError(std::string m) { return {ErrorCode::kIoError, std::move(m)}; }
inline Status Internal(std::string m) { return {ErrorCode::kInternal, std::move(m)}; }

// Result<T>: a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT: implicit by design
  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  std::optional<T> value_;
  Status status_ = Internal("Result holds no value");
};

}  // namespace si

#define SI_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::si::Status si_status_ = (expr);        \
    if (!si_status_.ok()) return si_status_; \
  } while (0)
