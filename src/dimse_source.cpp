#include "src/dimse_source.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "src/log.h"
#include "src/text.h"

namespace si {

std::optional<std::pair<std::string, uint16_t>> ParseDimseEndpoint(const std::string& endpoint) {
  const std::string prefix = "dimse://";
  if (endpoint.rfind(prefix, 0) != 0) return std::nullopt;
  std::string rest = endpoint.substr(prefix.size());
  auto colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0) return std::nullopt;
  std::string host = rest.substr(0, colon);
  int port = 0;
  try {
    size_t used = 0;
    port = std::stoi(rest.substr(colon + 1), &used);
    if (used != rest.size() - colon - 1) return std::nullopt;
  } catch (...) {
    return std::nullopt;
  }
  if (port <= 0 || port > 65535) return std::nullopt;
  return std::make_pair(host, static_cast<uint16_t>(port));
}

namespace {
std::string ScopeKey(const RetrieveScope& s) {
  if (s.sop_uid) return "instance:" + *s.sop_uid;
  if (s.series_uid) return "series:" + *s.series_uid;
  return "study:" + s.study_uid;
}
}  // namespace

// One retrieval against the PACS; requests for instances in its scope wait on it.
struct DimseSource::Job {
  RetrieveScope scope;
  std::string key;
  std::set<std::string> expected;  // SOP Instance UIDs the C-FIND reported
  // False while an early C-MOVE runs beside the IMAGE-level C-FIND that lists what it
  // must deliver; expected is then still being learnt. Guarded by DimseSource::mutex_.
  bool expected_known = true;
  bool plan_failed = false;       // that C-FIND failed: nothing is proven complete
  std::set<std::string> arrived;  // guarded by DimseSource::mutex_
  std::vector<std::string> sop_classes;
  bool done = false;  // guarded by DimseSource::mutex_
  Status result;      // guarded by DimseSource::mutex_
  std::atomic<bool> cancel{false};
};

DimseSource::DimseSource(DimsePeer peer, RetrievalMode mode, int max_associations,
                         const DimseClient& client, const InstanceParser& parser,
                         std::unique_ptr<FolderIndex> cache, std::filesystem::path cache_root,
                         int64_t cache_max_bytes)
    : peer_(std::move(peer)),
      mode_(mode),
      client_(client),
      parser_(parser),
      cache_(std::move(cache)),
      cache_root_(std::move(cache_root)),
      max_associations_(std::max(1, max_associations)),
      cache_max_bytes_(cache_max_bytes) {
  ingest_thread_ = std::thread([this] { IngestLoop(); });
  std::error_code ec;
  std::filesystem::create_directories(TempDir(), ec);
  // Half-received files of a previous run are never instances.
  for (auto& e : std::filesystem::directory_iterator(TempDir(), ec))
    std::filesystem::remove(e.path(), ec);
  // Whatever a crash left behind: files are renamed into place only when complete,
  // so a rescan makes index and files agree again.
  auto stats = cache_->Rescan();
  if (stats.ok() && (stats->added || stats->removed))
    log::Info("dimse", "cache " + cache_root_.string() + ": repaired index (" +
                           std::to_string(stats->added) + " added, " +
                           std::to_string(stats->removed) + " removed)");
}

DimseSource::~DimseSource() {
  stopping_ = true;
  std::unique_lock<std::mutex> lock(mutex_);
  for (auto& [key, job] : jobs_) job->cancel = true;
  slot_free_.notify_all();
  arrived_.wait(lock, [&] { return active_jobs_ == 0; });
  lock.unlock();
  {
    std::lock_guard<std::mutex> ingest_lock(ingest_mutex_);
    ingest_stop_ = true;
  }
  ingest_wake_.notify_all();
  ingest_thread_.join();
}

Result<std::vector<StudyRecord>> DimseSource::FindStudies(const StudyQuery& query) const {
  StudyQuery q = query;
  q.include_instances = false;  // instance lists would need an IMAGE-level C-FIND per series
  return client_.FindStudies(peer_, q);
}

bool DimseSource::IsCachedComplete(const RetrieveScope& scope) const {
  auto verified = [&](const std::string& key, const std::optional<std::string>& series) {
    auto expected = cache_->CompleteExpected(key);
    return expected && cache_->CountInstances(scope.study_uid, series) >= *expected;
  };
  if (verified("study:" + scope.study_uid, std::nullopt)) return true;
  if (scope.series_uid && verified("series:" + *scope.series_uid, scope.series_uid)) return true;
  if (scope.sop_uid) {
    auto one = cache_->FindInstances(scope.study_uid, scope.series_uid, scope.sop_uid);
    return one.ok() && !one->empty();
  }
  return false;
}

Result<std::vector<StoredInstance>> DimseSource::PlanRetrieval(const RetrieveScope& scope) const {
  if (IsCachedComplete(scope))
    return cache_->FindInstances(scope.study_uid, scope.series_uid, scope.sop_uid);
  // A plan learnt moments ago still holds: viewers ask for the same study and its
  // series many times, and a study whose retrieval just ended is not marked
  // complete until the PACS's final response. Reuse it, with fresh cache paths.
  const std::string key = ScopeKey(scope);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = recent_plans_.find(key);
    if (it != recent_plans_.end() &&
        std::chrono::steady_clock::now() - it->second.first < kPlanReuse) {
      std::vector<StoredInstance> plan = it->second.second;
      auto cached = cache_->FindInstances(scope.study_uid, scope.series_uid, scope.sop_uid);
      std::map<std::string, StoredInstance> by_sop;
      if (cached.ok())
        for (auto& c : *cached) by_sop[c.sop_instance_uid] = c;
      for (auto& p : plan)
        if (auto c = by_sop.find(p.sop_instance_uid); c != by_sop.end()) p = c->second;
      return plan;
    }
  }

  // Existence, patient and instance list before the first byte goes out.
  StudyQuery study_query;
  study_query.study_instance_uid = scope.study_uid;
  study_query.include_instances = false;
  study_query.include_series = false;
  auto studies = client_.FindStudies(peer_, study_query);
  if (!studies.ok()) return studies.status();
  if (studies->empty()) return NotFound("study not found");
  // The study exists: a whole-study C-MOVE starts now, beside the IMAGE-level C-FIND
  // that lists its instances, so the first instance is not held up by that listing.
  std::shared_ptr<Job> early = StartEarlyMove(scope);
  auto keys = client_.FindInstances(peer_, scope);
  if (early) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (keys.ok()) {
      for (auto& k : *keys) early->expected.insert(k.sop_uid);
    } else {
      early->plan_failed = true;
      early->cancel = true;
    }
    if (keys.ok() && keys->empty()) early->plan_failed = true;
    early->expected_known = true;
    arrived_.notify_all();
  }
  if (!keys.ok()) return keys.status();
  if (keys->empty())
    return NotFound(scope.sop_uid      ? "instance not found"
                    : scope.series_uid ? "series not found"
                                       : "study not found");

  auto cached = cache_->FindInstances(scope.study_uid, scope.series_uid, scope.sop_uid);
  std::map<std::string, StoredInstance> by_sop;
  if (cached.ok())
    for (auto& c : *cached) by_sop[c.sop_instance_uid] = c;
  std::vector<StoredInstance> plan;
  for (auto& k : *keys) {
    auto it = by_sop.find(k.sop_uid);
    if (it != by_sop.end()) {
      plan.push_back(it->second);
      continue;
    }
    StoredInstance s;
    s.study_uid = k.study_uid.empty() ? scope.study_uid : k.study_uid;
    s.series_uid = k.series_uid;
    s.sop_instance_uid = k.sop_uid;
    s.sop_class_uid = k.sop_class_uid;
    s.patient_id = studies->front().patient_id;
    plan.push_back(std::move(s));  // path empty: not cached yet
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (recent_plans_.size() > 1000) recent_plans_.clear();
  recent_plans_[key] = {std::chrono::steady_clock::now(), plan};
  return plan;
}

std::shared_ptr<DimseSource::Job> DimseSource::StartEarlyMove(const RetrieveScope& scope) const {
  if (mode_ != RetrievalMode::kMove || scope.series_uid || scope.sop_uid) return nullptr;
  // Only for a study the cache knows nothing of: a partly cached one is completed by
  // the smaller retrieval its plan asks for.
  if (cache_->CountInstances(scope.study_uid, std::nullopt) > 0) return nullptr;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = jobs_.find(ScopeKey(scope));
  if (it != jobs_.end() && !it->second->done) return nullptr;  // one is on its way
  auto job = std::make_shared<Job>();
  job->scope = scope;
  job->key = ScopeKey(scope);
  job->expected_known = false;
  jobs_[job->key] = job;
  ++retrievals_started_;
  ++active_jobs_;
  std::thread([this, job] { RunJob(job); }).detach();
  return job;
}

std::shared_ptr<DimseSource::Job> DimseSource::JoinOrStart(
    const RetrieveScope& scope, const std::vector<StoredInstance>& plan) const {
  // mutex_ held by the caller.
  for (const auto& key :
       {ScopeKey(scope), "series:" + scope.series_uid.value_or("-"), "study:" + scope.study_uid}) {
    auto it = jobs_.find(key);
    if (it != jobs_.end() && !it->second->done) {
      bool covers = std::all_of(plan.begin(), plan.end(), [&](const StoredInstance& i) {
        return !i.path.empty() || it->second->expected.count(i.sop_instance_uid);
      });
      if (covers) return it->second;
    }
  }
  auto job = std::make_shared<Job>();
  job->scope = scope;
  job->key = ScopeKey(scope);
  std::set<std::string> classes;
  for (auto& i : plan) {
    job->expected.insert(i.sop_instance_uid);
    if (!i.sop_class_uid.empty()) classes.insert(i.sop_class_uid);
  }
  job->sop_classes.assign(classes.begin(), classes.end());
  jobs_[job->key] = job;
  ++retrievals_started_;
  ++active_jobs_;
  std::thread([this, job] { RunJob(job); }).detach();
  return job;
}

void DimseSource::RunJob(std::shared_ptr<Job> job) const {
  {
    // Fair enough: waiters take free slots in the order the condition wakes them.
    std::unique_lock<std::mutex> lock(mutex_);
    slot_free_.wait(lock, [&] { return running_ < max_associations_ || stopping_; });
    ++running_;
  }
  auto started = std::chrono::steady_clock::now();
  Result<RetrieveOutcome> outcome = Internal("not run");
  if (stopping_) {
    outcome = Unavailable("shutting down");
  } else if (mode_ == RetrievalMode::kMove) {
    outcome = client_.Move(peer_, job->scope, job->cancel);
  } else {
    // The SOP classes the planning C-FIND reported: no second query for them.
    outcome = client_.Get(peer_, job->scope, job->sop_classes, *const_cast<DimseSource*>(this),
                          job->cancel);
  }
  // Everything the PACS sent was queued before its final response: let it land.
  WaitIngestIdle();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  std::unique_lock<std::mutex> lock(mutex_);
  --running_;
  // An early C-MOVE can end before the listing C-FIND: what was expected decides.
  arrived_.wait(lock, [&] { return job->expected_known; });
  size_t missing = 0;
  for (auto& sop : job->expected)
    if (!job->arrived.count(sop)) ++missing;
  // Complete only when every expected instance is stored; the PACS's counts alone
  // are not proof (the reference server lost last instances that way).
  if (job->plan_failed) {
    job->result = Unavailable("the retrieval's instance list could not be established");
  } else if (!outcome.ok()) {
    job->result = outcome.status();
  } else if (missing > 0) {
    job->result = Status(ErrorCode::kBadGateway,
                         "the PACS delivered " + std::to_string(job->expected.size() - missing) +
                             " of " + std::to_string(job->expected.size()) + " instances (" +
                             std::to_string(outcome->failed) + " failed sub-operations)");
  }
  job->done = true;
  if (jobs_.count(job->key) && jobs_[job->key] == job) jobs_.erase(job->key);
  lock.unlock();
  if (job->result.ok() && !job->scope.sop_uid) {
    cache_->MarkComplete(job->key, static_cast<int64_t>(job->expected.size())).ok();
  }
  EvictIfNeeded();
  log::Info("dimse", std::string(mode_ == RetrievalMode::kMove ? "C-MOVE " : "C-GET ") +
                         job->key.substr(0, job->key.find(':')) + " from " + peer_.called_ae + "@" +
                         peer_.host + ":" + std::to_string(peer_.port) + ": " +
                         std::to_string(job->expected.size() - missing) + "/" +
                         std::to_string(job->expected.size()) + " instances in " +
                         std::to_string(static_cast<int>(secs * 1000)) + " ms" +
                         (job->result.ok() ? "" : " (" + job->result.message() + ")"));
  lock.lock();
  --active_jobs_;
  lock.unlock();
  slot_free_.notify_one();
  arrived_.notify_all();
}

// Marks a study as being streamed for the lifetime of one Retrieve.
class DimseSource::InUse {
 public:
  InUse(const DimseSource& source, std::string study) : source_(source), study_(std::move(study)) {
    std::lock_guard<std::mutex> lock(source_.mutex_);
    ++source_.in_use_[study_];
  }
  ~InUse() {
    bool touch = false;
    {
      std::lock_guard<std::mutex> lock(source_.mutex_);
      if (--source_.in_use_[study_] == 0) source_.in_use_.erase(study_);
      auto now = std::chrono::steady_clock::now();
      auto [it, fresh] = source_.touched_.try_emplace(study_, now);
      if (fresh || now - it->second >= kTouchInterval) {
        it->second = now;
        touch = true;
      }
    }
    if (touch) source_.cache_->TouchStudy(study_).ok();
    source_.EvictIfNeeded();
  }

 private:
  const DimseSource& source_;
  std::string study_;
};

void DimseSource::EvictIfNeeded() const {
  if (cache_max_bytes_ <= 0 || !eviction_pending_.exchange(false)) return;
  if (cache_->TotalBytes() <= cache_max_bytes_) return;
  auto order = cache_->StudiesLeastRecentlyUsed();
  if (!order.ok()) {
    eviction_pending_ = true;
    return;
  }
  bool skipped = false;
  for (auto& study : *order) {
    if (cache_->TotalBytes() <= cache_max_bytes_) break;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      bool retrieving = std::any_of(jobs_.begin(), jobs_.end(),
                                    [&](auto& j) { return j.second->scope.study_uid == study; });
      if (in_use_.count(study) || retrieving) {
        skipped = true;  // looked at again when that stream or retrieval ends
        continue;
      }
      touched_.erase(study);
    }
    auto paths = cache_->RemoveStudy(study);
    if (!paths.ok()) continue;
    std::error_code ec;
    for (auto& p : *paths) std::filesystem::remove(p, ec);
    std::filesystem::remove_all(cache_root_ / study, ec);
    log::Info("dimse", "evicted a study of " + std::to_string(paths->size()) +
                           " instances (cache budget " + std::to_string(cache_max_bytes_) +
                           " bytes)");
  }
  if (skipped) eviction_pending_ = true;
}

Status DimseSource::Retrieve(const std::vector<StoredInstance>& plan, InstanceSink& sink) const {
  if (plan.empty()) return Status::Ok();
  InUse in_use(*this, plan.front().study_uid);
  std::vector<StoredInstance> pending;
  std::vector<StoredInstance> cached;
  for (auto& i : plan) (i.path.empty() ? pending : cached).push_back(i);
  if (pending.empty()) {
    for (auto& i : cached) SI_RETURN_IF_ERROR(sink.OnInstance(i));
    return Status::Ok();
  }
  const std::string study_key = ScopeKey({plan.front().study_uid, std::nullopt, std::nullopt});
  std::unique_lock<std::mutex> lock(mutex_);
  // An early C-MOVE of this study (started by a request's planning) is joined once
  // its instance list is known, never duplicated.
  arrived_.wait(lock, [&] {
    auto it = jobs_.find(study_key);
    return it == jobs_.end() || it->second->done || it->second->expected_known;
  });
  if (auto it = jobs_.find(study_key); it == jobs_.end() || it->second->done) {
    // What a C-MOVE that ended since planning (an early one, say) brought is cached
    // now: it must not be asked for again.
    auto now_cached = cache_->FindInstances(plan.front().study_uid, std::nullopt, std::nullopt);
    if (now_cached.ok()) {
      std::map<std::string, StoredInstance> by_sop;
      for (auto& c : *now_cached) by_sop[c.sop_instance_uid] = c;
      std::vector<StoredInstance> still;
      for (auto& i : pending) {
        auto c = by_sop.find(i.sop_instance_uid);
        (c != by_sop.end() ? cached : still).push_back(c != by_sop.end() ? c->second : i);
      }
      pending = std::move(still);
    }
  }
  if (pending.empty()) {
    lock.unlock();
    for (auto& i : cached) SI_RETURN_IF_ERROR(sink.OnInstance(i));
    return Status::Ok();
  }
  // Cached instances of a partly cached scope go out once the PACS has delivered
  // one new instance: a PACS that is down then gets a clean error status, not a
  // 200 that is cut off after the cached part.
  bool cached_sent = false;
  auto send_cached = [&]() -> Status {
    if (cached_sent) return Status::Ok();
    cached_sent = true;
    for (auto& i : cached) SI_RETURN_IF_ERROR(sink.OnInstance(i));
    return Status::Ok();
  };

  // The smallest retrieval that covers what is missing: one instance, one series, or the study.
  RetrieveScope scope;
  scope.study_uid = pending.front().study_uid;
  bool one_series = std::all_of(pending.begin(), pending.end(), [&](const StoredInstance& i) {
    return i.series_uid == pending.front().series_uid;
  });
  if (one_series) scope.series_uid = pending.front().series_uid;
  if (pending.size() == 1) scope.sop_uid = pending.front().sop_instance_uid;

  std::shared_ptr<Job> job = JoinOrStart(scope, pending);
  std::set<std::string> waiting;
  for (auto& i : pending) waiting.insert(i.sop_instance_uid);
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(peer_.operation_timeout_seconds);
  while (!waiting.empty()) {
    std::vector<std::string> ready;
    for (auto& sop : waiting)
      if (job->arrived.count(sop)) ready.push_back(sop);
    if (ready.empty()) {
      if (job->done) {
        Status result = job->result.ok() ? Status(ErrorCode::kBadGateway,
                                                  "the PACS did not deliver every instance")
                                         : job->result;
        return result;
      }
      if (arrived_.wait_until(lock, deadline) == std::cv_status::timeout)
        return Status(ErrorCode::kGatewayTimeout, "the PACS did not finish the retrieval in time");
      continue;
    }
    lock.unlock();
    SI_RETURN_IF_ERROR(send_cached());
    for (auto& sop : ready) {
      waiting.erase(sop);
      auto stored = cache_->FindInstances(scope.study_uid, std::nullopt, sop);
      if (!stored.ok() || stored->empty())
        return IoError("a received instance is missing from the cache");
      // A client that went away stops reading; the retrieval goes on for the cache.
      SI_RETURN_IF_ERROR(sink.OnInstance(stored->front()));
    }
    lock.lock();
  }
  return Status::Ok();
}

Result<std::vector<std::string>> DimseSource::Metadata(const RetrieveScope& scope) const {
  // Metadata comes from the cache, filled first when needed.
  if (!IsCachedComplete(scope)) {
    auto plan = PlanRetrieval(scope);
    if (!plan.ok()) return plan.status();
    class Discard final : public InstanceSink {
     public:
      Status OnInstance(const StoredInstance&) override { return Status::Ok(); }
    } discard;
    SI_RETURN_IF_ERROR(Retrieve(*plan, discard));
  }
  auto metadata = cache_->FindMetadata(scope.study_uid, scope.series_uid, scope.sop_uid);
  if (!metadata.ok()) return metadata.status();
  if (metadata->empty()) return NotFound("not found");
  return metadata;
}

// Receiving and indexing overlap: the association thread only queues the file and
// answers the PACS, which sends the next instance while this thread fsyncs, parses,
// renames and indexes the previous one. The PACS keeps its copy, so answering
// before the cache copy is durable loses nothing.
Status DimseSource::Accept(const std::filesystem::path& complete_file) {
  {
    std::lock_guard<std::mutex> lock(ingest_mutex_);
    ingest_queue_.push_back(complete_file);
  }
  ingest_wake_.notify_one();
  return Status::Ok();
}

void DimseSource::IngestLoop() {
  std::unique_lock<std::mutex> lock(ingest_mutex_);
  while (true) {
    ingest_wake_.wait(lock, [&] { return !ingest_queue_.empty() || ingest_stop_; });
    if (ingest_queue_.empty() && ingest_stop_) return;
    auto file = ingest_queue_.front();
    ingest_queue_.pop_front();
    ++ingest_busy_;
    lock.unlock();
    Status s = Ingest(file);
    if (!s.ok()) log::Warn("dimse", "a received instance was not cached: " + s.message());
    lock.lock();
    --ingest_busy_;
    ingest_idle_.notify_all();
  }
}

void DimseSource::WaitIngestIdle() const {
  std::unique_lock<std::mutex> lock(ingest_mutex_);
  ingest_idle_.wait(lock, [&] { return ingest_queue_.empty() && ingest_busy_ == 0; });
}

Status DimseSource::Ingest(const std::filesystem::path& complete_file) {
  std::error_code ec;
  int fd = ::open(complete_file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);  // durable before it is renamed into the cache
    ::close(fd);
  }
  auto parsed = parser_.Parse(complete_file);
  if (!parsed.ok()) {
    std::filesystem::remove(complete_file, ec);
    return parsed.status();
  }
  const auto& p = *parsed;
  auto dir = cache_root_ / p.study.study_instance_uid / p.series.series_instance_uid;
  std::filesystem::create_directories(dir, ec);
  auto target = dir / (p.instance.sop_instance_uid + ".dcm");
  std::filesystem::rename(complete_file, target, ec);
  if (ec) {
    std::filesystem::remove(complete_file, ec);
    return IoError("cannot move a received instance into the cache");
  }
  ParsedInstance stored = p;
  stored.instance.path = target.string();
  SI_RETURN_IF_ERROR(cache_->AddInstance(target.string(), stored));
  eviction_pending_ = true;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [key, job] : jobs_)
      if (job->expected.count(p.instance.sop_instance_uid) ||
          (!job->expected_known && job->scope.study_uid == p.study.study_instance_uid))
        job->arrived.insert(p.instance.sop_instance_uid);
  }
  arrived_.notify_all();
  return Status::Ok();
}

}  // namespace si
