#pragma once
// The ImageSource seam: where studies are found and instances come from (folder,
// DIMSE PACS, DICOMweb server). Implementations are thread-safe; the composition
// root owns them and they outlive every request.
#include <optional>
#include <string>
#include <vector>

#include "src/folder_index.h"
#include "src/model.h"
#include "src/status.h"

namespace si {

struct RetrieveScope {
  std::string study_uid;
  std::optional<std::string> series_uid;
  std::optional<std::string> sop_uid;
};

// Receives instances in order as they become available; a non-OK return stops
// the retrieval (the client went away).
class InstanceSink {
 public:
  virtual ~InstanceSink() = default;
  virtual Status OnInstance(const StoredInstance& instance) = 0;
};

class ImageSource {
 public:
  virtual ~ImageSource() = default;
  virtual Result<std::vector<StudyRecord>> FindStudies(const StudyQuery& query) const = 0;
  // What a retrieval of this scope will deliver, known before the first byte is
  // sent: NotFound when the scope does not exist.
  virtual Result<std::vector<StoredInstance>> PlanRetrieval(const RetrieveScope& scope) const = 0;
  // Delivers the planned instances to the sink, in plan order.
  virtual Status Retrieve(const std::vector<StoredInstance>& plan, InstanceSink& sink) const = 0;
  virtual Result<std::vector<std::string>> Metadata(const RetrieveScope& scope) const = 0;
};

}  // namespace si
