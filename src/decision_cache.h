#pragma once
// Cached authorization decisions, keyed by the SHA-256 of the access token (the
// token itself is never kept). One cache per tenant's authorizer. Each entry lives
// until its own expiry (the caller bounds it by the token's exp and the tenant's
// maximum); negative results (inactive token, scope missing) are cached too, for
// the short time the caller gives. Concurrent misses for one key are coalesced:
// one caller computes, the others wait for its result. Thread-safe.
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "src/authorizer.h"
#include "src/clock.h"
#include "src/status.h"

namespace si {

class DecisionCache {
 public:
  // A computed decision and until when (Unix seconds) it may be reused;
  // expires_at <= now means "don't cache" (e.g. the EHR was down).
  struct Computed {
    Result<AuthDecision> decision;
    int64_t expires_at = 0;
  };

  DecisionCache(const Clock& clock, size_t max_entries = 10000)
      : clock_(clock), max_entries_(max_entries) {}

  // The cached decision for `token_key` (any string; it is hashed), or the result
  // of `compute`, stored until its expires_at.
  Result<AuthDecision> GetOrCompute(const std::string& token_key,
                                    const std::function<Computed()>& compute);

  size_t size() const;
  // How many lookups were answered from the cache, and how many computed.
  uint64_t hits() const;
  uint64_t misses() const;

 private:
  struct Entry {
    Result<AuthDecision> decision = Status(ErrorCode::kInternal, "empty");
    int64_t expires_at = 0;
  };
  struct Flight {
    bool done = false;
    Result<AuthDecision> decision = Status(ErrorCode::kInternal, "empty");
  };
  void EvictLocked(int64_t now);

  const Clock& clock_;
  const size_t max_entries_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::map<std::string, Entry> entries_;                    // guarded by mutex_
  std::map<std::string, std::shared_ptr<Flight>> flights_;  // guarded by mutex_
  uint64_t hits_ = 0, misses_ = 0;                          // guarded by mutex_
};

}  // namespace si
