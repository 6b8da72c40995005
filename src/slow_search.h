#pragma once
// images.slowSearch: a search whose source (a C-FIND to a PACS) has not answered
// within the tenant's deadline is answered 503 + Retry-After while the query
// finishes on its own thread; its result waits, briefly, for the identical retry.
// Keys must name the tenant, the authorized patient and the query, so a result is
// never served across tenants or patients.
// Thread-safe: one mutex guards the map; each pending query has its own state.
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "src/clock.h"
#include "src/model.h"
#include "src/status.h"

namespace si {

class SlowSearchCache {
 public:
  using Studies = Result<std::vector<StudyRecord>>;
  // A finished result is kept `keep_seconds` for its retry, then dropped.
  explicit SlowSearchCache(const Clock& clock, int64_t keep_seconds = 60)
      : clock_(clock), keep_seconds_(keep_seconds) {}

  // The result of `compute` for `key`: a finished one waiting here (handed out
  // once), else the running or a newly started query's, when it finishes within
  // `wait`; otherwise Unavailable with an integer Retry-After. `compute` runs on a
  // detached thread, so it must own everything it uses (copies, shared_ptrs).
  Studies Get(const std::string& key, std::chrono::milliseconds wait,
              std::function<Studies()> compute);

  size_t size() const;

 private:
  struct State;
  const Clock& clock_;
  const int64_t keep_seconds_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<State>> entries_;  // guarded by mutex_
};

}  // namespace si
