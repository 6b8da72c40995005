#include "src/decision_cache.h"

#include "src/text.h"

namespace si {

Result<AuthDecision> DecisionCache::GetOrCompute(const std::string& token_key,
                                                 const std::function<Computed()>& compute) {
  const std::string key = text::HexSha256(token_key);
  std::shared_ptr<Flight> flight;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    int64_t now = clock_.NowSeconds();
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      if (it->second.expires_at > now) {
        ++hits_;
        return it->second.decision;
      }
      entries_.erase(it);
    }
    auto f = flights_.find(key);
    if (f != flights_.end()) {
      // Someone is asking the EHR about this token right now: wait for that answer.
      std::shared_ptr<Flight> theirs = f->second;
      cv_.wait(lock, [&] { return theirs->done; });
      ++hits_;
      return theirs->decision;
    }
    ++misses_;
    flight = std::make_shared<Flight>();
    flights_[key] = flight;
  }
  Computed computed{Status(ErrorCode::kInternal, "authorization was not computed"), 0};
  try {
    computed = compute();
  } catch (...) {
    computed = Computed{Internal("authorization failed unexpectedly"), 0};
  }
  std::lock_guard<std::mutex> lock(mutex_);
  int64_t now = clock_.NowSeconds();
  if (computed.expires_at > now) {
    if (entries_.size() >= max_entries_) EvictLocked(now);
    entries_[key] = Entry{computed.decision, computed.expires_at};
  }
  flight->decision = computed.decision;
  flight->done = true;
  flights_.erase(key);
  cv_.notify_all();
  return computed.decision;
}

void DecisionCache::EvictLocked(int64_t now) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.expires_at <= now)
      it = entries_.erase(it);
    else
      ++it;
  }
  if (entries_.size() >= max_entries_)
    entries_.clear();  // bounded memory under a flood of distinct tokens
}

size_t DecisionCache::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return entries_.size();
}
uint64_t DecisionCache::hits() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return hits_;
}
uint64_t DecisionCache::misses() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return misses_;
}

}  // namespace si
