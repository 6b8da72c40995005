#include "src/folder_source.h"

#include "src/log.h"

namespace si {

FolderSource::FolderSource(std::unique_ptr<FolderIndex> index, double rescan_seconds)
    : index_(std::move(index)), rescan_seconds_(rescan_seconds) {
  auto stats = index_->Rescan();
  if (stats.ok()) {
    log::Info("folder", index_->root().string() + ": " + std::to_string(stats->files_seen) +
                            " files, " + std::to_string(stats->added) + " indexed, " +
                            std::to_string(stats->removed) + " removed, " +
                            std::to_string(stats->skipped) + " skipped in " +
                            std::to_string(static_cast<int>(stats->seconds * 1000)) + " ms");
  } else {
    log::Error("folder", index_->root().string() + ": scan failed: " + stats.status().message());
  }
  rescanner_ = std::thread([this] { RescanLoop(); });
}

FolderSource::~FolderSource() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  rescanner_.join();
}

void FolderSource::RescanLoop() {
  std::unique_lock<std::mutex> lock(mutex_);
  auto period = std::chrono::milliseconds(static_cast<int64_t>(rescan_seconds_ * 1000));
  while (!wake_.wait_for(lock, period, [this] { return stopping_; })) {
    lock.unlock();
    auto stats = index_->Rescan();
    if (!stats.ok())
      log::Error("folder",
                 index_->root().string() + ": rescan failed: " + stats.status().message());
    else if (stats->added || stats->removed)
      log::Info("folder", index_->root().string() + ": " + std::to_string(stats->added) +
                              " indexed, " + std::to_string(stats->removed) + " removed");
    lock.lock();
  }
}

Result<std::vector<StudyRecord>> FolderSource::FindStudies(const StudyQuery& query) const {
  return index_->FindStudies(query);
}

Result<std::vector<StoredInstance>> FolderSource::PlanRetrieval(const RetrieveScope& scope) const {
  auto instances = index_->FindInstances(scope.study_uid, scope.series_uid, scope.sop_uid);
  if (!instances.ok()) return instances.status();
  if (instances->empty()) {
    const char* what = scope.sop_uid ? "instance" : scope.series_uid ? "series" : "study";
    return NotFound(std::string(what) + " not found");
  }
  return instances;
}

Status FolderSource::Retrieve(const std::vector<StoredInstance>& plan, InstanceSink& sink) const {
  for (const auto& instance : plan) SI_RETURN_IF_ERROR(sink.OnInstance(instance));
  return Status::Ok();
}

Result<std::vector<std::string>> FolderSource::Metadata(const RetrieveScope& scope) const {
  auto metadata = index_->FindMetadata(scope.study_uid, scope.series_uid, scope.sop_uid);
  if (!metadata.ok()) return metadata.status();
  if (metadata->empty()) return NotFound("not found");
  return metadata;
}

}  // namespace si
