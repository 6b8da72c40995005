#include "src/status.h"

namespace si {

namespace {
// One row per ErrorCode, in enum order.
constexpr ErrorInfo kErrorTable[] = {
    {"ok", 200, "informational"},
    {"invalid-argument", 400, "invalid"},
    {"unauthorized", 401, "login"},
    {"forbidden", 403, "forbidden"},
    {"not-found", 404, "not-found"},
    {"method-not-allowed", 405, "not-supported"},
    {"not-acceptable", 406, "not-supported"},
    {"payload-too-large", 413, "too-long"},
    {"uri-too-long", 414, "too-long"},
    {"unavailable", 503, "transient"},
    {"bad-gateway", 502, "exception"},
    {"gateway-timeout", 504, "timeout"},
    {"not-implemented", 501, "not-supported"},
    {"invalid-config", 500, "exception"},
    {"io-error", 500, "exception"},
    {"internal", 500, "exception"},
};
static_assert(sizeof(kErrorTable) / sizeof(kErrorTable[0]) ==
              static_cast<size_t>(ErrorCode::kInternal) + 1);
}  // namespace

const ErrorInfo& InfoFor(ErrorCode code) {
  auto index = static_cast<size_t>(code);
  if (index >= sizeof(kErrorTable) / sizeof(kErrorTable[0]))
    index = static_cast<size_t>(ErrorCode::kInternal);
  return kErrorTable[index];
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(InfoFor(code_).name) + ": " + message_;
}

}  // namespace si
