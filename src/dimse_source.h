#pragma once
// ImageSource over a PACS that speaks only DIMSE. Searches are C-FINDs; retrievals
// fill an on-disk, SQLite-indexed instance cache by C-MOVE (to our Storage SCP) or
// C-GET, and stream instances to waiting requests as they arrive.
//
// Thread-safety: all methods may be called concurrently. Concurrent requests for
// one scope share one retrieval (single-flight); at most max_associations
// retrievals run against the PACS at once, the rest wait their turn.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "src/folder_index.h"
#include "src/image_source.h"
#include "src/instance_parser.h"

namespace si {

struct DimsePeer {
  std::string host;
  uint16_t port = 104;
  std::string called_ae = "ANY-SCP";
  std::string calling_ae;  // ours; also the C-MOVE destination
  int connect_timeout_seconds = 5;
  int dimse_timeout_seconds = 30;
  int operation_timeout_seconds = 600;
};

// Parses "dimse://host:port". Nullopt when malformed.
std::optional<std::pair<std::string, uint16_t>> ParseDimseEndpoint(const std::string& endpoint);

struct InstanceKey {
  std::string study_uid;
  std::string series_uid;
  std::string sop_uid;
  std::string sop_class_uid;
};

// Where received instances go. Accept takes ownership of a complete, fsynced
// Part 10 file (it moves or deletes it). Thread-safe.
class StoreTarget {
 public:
  virtual ~StoreTarget() = default;
  virtual Status Accept(const std::filesystem::path& complete_file) = 0;
  // Where files are written before Accept (same file system, so Accept can rename).
  virtual std::filesystem::path TempDir() const = 0;
};

struct RetrieveOutcome {
  int completed = 0;
  int failed = 0;
  int warning = 0;
  uint16_t final_status = 0;
};

// DIMSE operations, one association per call. Implemented in dimse/ with DCMTK.
// Thread-safe: calls may run concurrently.
class DimseClient {
 public:
  virtual ~DimseClient() = default;
  // STUDY level, then SERIES level per study. No instance lists.
  virtual Result<std::vector<StudyRecord>> FindStudies(const DimsePeer& peer,
                                                       const StudyQuery& query) const = 0;
  // IMAGE level within the scope.
  virtual Result<std::vector<InstanceKey>> FindInstances(const DimsePeer& peer,
                                                         const RetrieveScope& scope) const = 0;
  virtual Result<RetrieveOutcome> Move(const DimsePeer& peer, const RetrieveScope& scope,
                                       const std::atomic<bool>& cancel) const = 0;
  // Stores arrive on the same association and go to target.
  virtual Result<RetrieveOutcome> Get(const DimsePeer& peer, const RetrieveScope& scope,
                                      const std::vector<std::string>& sop_classes,
                                      StoreTarget& target,
                                      const std::atomic<bool>& cancel) const = 0;
};

enum class RetrievalMode { kMove, kGet };

class DimseSource final : public ImageSource, public StoreTarget {
 public:
  // cache_root holds the instance files; the index is opened by the caller over it.
  DimseSource(DimsePeer peer, RetrievalMode mode, int max_associations, const DimseClient& client,
              const InstanceParser& parser, std::unique_ptr<FolderIndex> cache,
              std::filesystem::path cache_root, int64_t cache_max_bytes = 0);
  ~DimseSource() override;

  Result<std::vector<StudyRecord>> FindStudies(const StudyQuery& query) const override;
  Result<std::vector<StoredInstance>> PlanRetrieval(const RetrieveScope& scope) const override;
  Status Retrieve(const std::vector<StoredInstance>& plan, InstanceSink& sink) const override;
  Result<std::vector<std::string>> Metadata(const RetrieveScope& scope) const override;

  Status Accept(const std::filesystem::path& complete_file) override;
  std::filesystem::path TempDir() const override { return cache_root_ / ".incoming"; }

  const DimsePeer& peer() const { return peer_; }
  // Retrievals started against the PACS since start-up (for tests and logs).
  int retrievals_started() const { return retrievals_started_.load(); }

 private:
  struct Job;
  // A whole-study C-MOVE started as soon as the study is known to exist, before its
  // instances are listed; null when not applicable (C-GET needs the listed SOP
  // classes; series or instance scopes) or when one is already running.
  std::shared_ptr<Job> StartEarlyMove(const RetrieveScope& scope) const;
  std::shared_ptr<Job> JoinOrStart(const RetrieveScope& scope,
                                   const std::vector<StoredInstance>& plan) const;
  void RunJob(std::shared_ptr<Job> job) const;
  bool IsCachedComplete(const RetrieveScope& scope) const;
  // Least recently used studies go first; never one being streamed or retrieved.
  void EvictIfNeeded() const;
  class InUse;
  void IngestLoop();
  Status Ingest(const std::filesystem::path& complete_file);
  void WaitIngestIdle() const;

  const DimsePeer peer_;
  const RetrievalMode mode_;
  const DimseClient& client_;
  const InstanceParser& parser_;
  std::unique_ptr<FolderIndex> cache_;
  const std::filesystem::path cache_root_;

  mutable std::mutex mutex_;
  mutable std::condition_variable arrived_;  // notified on every stored instance and job end
  mutable std::map<std::string, std::shared_ptr<Job>>
      jobs_;                 // running, by scope key; guarded by mutex_
  mutable int running_ = 0;  // associations in use; guarded by mutex_
  const int max_associations_;
  mutable std::condition_variable slot_free_;
  mutable std::atomic<int> retrievals_started_{0};
  const int64_t cache_max_bytes_;  // 0: unlimited
  static constexpr std::chrono::seconds kPlanReuse{30};
  // Recent C-FIND results by scope key; guarded by mutex_.
  mutable std::map<std::string,
                   std::pair<std::chrono::steady_clock::time_point, std::vector<StoredInstance>>>
      recent_plans_;
  mutable std::map<std::string, int> in_use_;  // streams per study; guarded by mutex_
  mutable int active_jobs_ = 0;                // job threads alive; guarded by mutex_
  // Whether the cache may be over budget: set by every stored instance and by an
  // eviction that had to skip studies in use. Spares each read a SUM over the cache.
  mutable std::atomic<bool> eviction_pending_{true};
  // When each study's last access was written (LRU order needs seconds, not every
  // read); guarded by mutex_.
  mutable std::map<std::string, std::chrono::steady_clock::time_point> touched_;
  static constexpr std::chrono::seconds kTouchInterval{1};
  std::atomic<bool> stopping_{false};

  mutable std::mutex ingest_mutex_;
  std::condition_variable ingest_wake_;
  mutable std::condition_variable ingest_idle_;
  std::deque<std::filesystem::path> ingest_queue_;  // guarded by ingest_mutex_
  int ingest_busy_ = 0;                             // guarded by ingest_mutex_
  bool ingest_stop_ = false;                        // guarded by ingest_mutex_
  std::thread ingest_thread_;
};

}  // namespace si
