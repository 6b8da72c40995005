#include "src/slow_search.h"

#include <condition_variable>
#include <thread>

namespace si {

struct SlowSearchCache::State {
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;                                                       // guarded by mutex
  Studies result = Studies(Status(ErrorCode::kInternal, "not finished"));  // guarded by mutex
  int64_t done_at = 0;                                                     // guarded by mutex
};

namespace {
// Beyond this many queries in flight, searches simply wait (no unbounded threads).
constexpr size_t kMaxEntries = 256;
}  // namespace

SlowSearchCache::Studies SlowSearchCache::Get(const std::string& key,
                                              std::chrono::milliseconds wait,
                                              std::function<Studies()> compute) {
  std::shared_ptr<State> state;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const int64_t now = clock_.NowSeconds();
    for (auto it = entries_.begin(); it != entries_.end();) {
      std::lock_guard<std::mutex> l(it->second->mutex);
      if (it->second->done && now >= it->second->done_at + keep_seconds_)
        it = entries_.erase(it);
      else
        ++it;
    }
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      state = it->second;
    } else {
      if (entries_.size() >= kMaxEntries) return compute();
      state = std::make_shared<State>();
      entries_[key] = state;
      std::thread([state, compute = std::move(compute), this_clock = &clock_] {
        Studies result = compute();
        std::lock_guard<std::mutex> l(state->mutex);
        state->result = std::move(result);
        state->done = true;
        state->done_at = this_clock->NowSeconds();
        state->done_cv.notify_all();
      }).detach();
    }
  }
  std::unique_lock<std::mutex> l(state->mutex);
  if (!state->done) state->done_cv.wait_for(l, wait, [&] { return state->done; });
  if (!state->done) {
    const int64_t seconds = std::max<int64_t>(1, (wait.count() + 999) / 1000);
    return Unavailable("the image archive has not answered yet; repeat this search")
        .WithRetryAfter(seconds);
  }
  Studies result = state->result;
  l.unlock();
  // Handed out once: the next identical search asks the archive again.
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(key);
  if (it != entries_.end() && it->second == state) entries_.erase(it);
  return result;
}

size_t SlowSearchCache::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return entries_.size();
}

}  // namespace si
