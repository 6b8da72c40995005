#pragma once
// The DcmSCU-based implementation of DimseClient: one association per call,
// non-blocking DIMSE with timeouts (DCMTK ignores the DIMSE timeout in blocking
// mode), every text attribute converted to UTF-8. DCMTK conditions and DIMSE
// statuses become Status values here, naming the PACS and the operation.
#include "src/dimse_source.h"

namespace si::dimse {

class DcmtkDimseClient final : public DimseClient {
 public:
  Result<std::vector<StudyRecord>> FindStudies(const DimsePeer& peer,
                                               const StudyQuery& query) const override;
  Result<std::vector<InstanceKey>> FindInstances(const DimsePeer& peer,
                                                 const RetrieveScope& scope) const override;
  Result<RetrieveOutcome> Move(const DimsePeer& peer, const RetrieveScope& scope,
                               const std::atomic<bool>& cancel) const override;
  Result<RetrieveOutcome> Get(const DimsePeer& peer, const RetrieveScope& scope,
                              const std::vector<std::string>& sop_classes, StoreTarget& target,
                              const std::atomic<bool>& cancel) const override;
};

}  // namespace si::dimse
