#pragma once
// The ImageSource seam: where studies are found and instances come from (folder,
// DIMSE PACS, DICOMweb server). Implementations are thread-safe; the composition
// root owns them and they outlive every request.
#include <optional>
#include <string>
#include <string_view>
#include <utility>
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

// A WADO-RS request a source answers by passing an upstream response through as
// it arrives (DICOMweb servers), after PlanRetrieval checked existence and patients.
struct PassThroughRequest {
  RetrieveScope scope;
  // After the scope's path: "" (instances), "metadata", "frames/1,2", "bulk/7fe00010",
  // "rendered", "thumbnail", "frames/1/rendered".
  std::string suffix;
  std::string accept;  // the client's Accept header, may be empty
  std::string query;   // the client's raw query string (rendered: viewport, quality, window)
  // The client-facing WADO root (".../wado/{token}/"): upstream URLs in metadata are
  // rewritten to it.
  std::string public_root;
};

// Receives the passed-through response. OnHead comes once, before any body byte,
// with a 2xx status and the headers to forward (Content-Type with its boundary);
// a non-OK return from either stops the transfer (the client went away).
class PassThroughSink {
 public:
  virtual ~PassThroughSink() = default;
  virtual Status OnHead(int status,
                        const std::vector<std::pair<std::string, std::string>>& headers) = 0;
  virtual Status OnBody(std::string_view bytes) = 0;
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

  // Sources that pass upstream responses through (instead of Retrieve/Metadata)
  // say so here. PassThrough returns an error without calling the sink when the
  // upstream fails before its head; after OnHead, an error means the body is cut.
  virtual bool SupportsPassThrough() const { return false; }
  virtual Status PassThrough(const PassThroughRequest& request, PassThroughSink& sink) const {
    return NotImplemented("this image source does not pass responses through");
  }
};

}  // namespace si
