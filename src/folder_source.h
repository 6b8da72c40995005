#pragma once
// ImageSource over a folder of DICOM files, kept current by a background rescan.
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "src/folder_index.h"
#include "src/image_source.h"

namespace si {

class FolderSource final : public ImageSource {
 public:
  // Takes ownership of the index; performs one synchronous scan, then rescans
  // every rescan_seconds on its own thread until destroyed.
  FolderSource(std::unique_ptr<FolderIndex> index, double rescan_seconds);
  ~FolderSource() override;

  Result<std::vector<StudyRecord>> FindStudies(const StudyQuery& query) const override;
  Result<std::vector<StoredInstance>> PlanRetrieval(const RetrieveScope& scope) const override;
  Status Retrieve(const std::vector<StoredInstance>& plan, InstanceSink& sink) const override;
  Result<std::vector<std::string>> Metadata(const RetrieveScope& scope) const override;

  FolderIndex& index() { return *index_; }

 private:
  void RescanLoop();

  std::unique_ptr<FolderIndex> index_;
  const double rescan_seconds_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mutex_
  std::thread rescanner_;
};

}  // namespace si
