#include "dimse/dimse_client.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/diutil.h>
#include <dcmtk/dcmnet/scu.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <random>

#include "dimse/charset.h"
#include "dimse/dicom_values.h"
#include "dimse/dimse_status.h"
#include "src/text.h"

namespace si::dimse {
namespace {

const char* kQueryTransferSyntaxes[] = {UID_LittleEndianExplicitTransferSyntax,
                                        UID_LittleEndianImplicitTransferSyntax};

// Storage syntaxes we accept for C-GET (PACS pick what they hold).
const char* kStorageTransferSyntaxes[] = {UID_LittleEndianExplicitTransferSyntax,
                                          UID_LittleEndianImplicitTransferSyntax,
                                          UID_JPEGProcess1TransferSyntax,
                                          UID_JPEGProcess2_4TransferSyntax,
                                          UID_JPEGProcess14SV1TransferSyntax,
                                          UID_JPEGLSLosslessTransferSyntax,
                                          UID_JPEGLSLossyTransferSyntax,
                                          UID_JPEG2000LosslessOnlyTransferSyntax,
                                          UID_JPEG2000TransferSyntax,
                                          UID_RLELosslessTransferSyntax,
                                          UID_DeflatedExplicitVRLittleEndianTransferSyntax,
                                          UID_BigEndianExplicitTransferSyntax};

OFList<OFString> List(const char* const* items, size_t n) {
  OFList<OFString> l;
  for (size_t i = 0; i < n; ++i) l.push_back(items[i]);
  return l;
}

std::string Where(const DimsePeer& p) {
  return p.called_ae + "@" + p.host + ":" + std::to_string(p.port);
}

void Configure(DcmSCU& scu, const DimsePeer& p) {
  scu.setPeerHostName(p.host.c_str());
  scu.setPeerPort(p.port);
  scu.setPeerAETitle(p.called_ae.c_str());
  scu.setAETitle(p.calling_ae.c_str());
  scu.setConnectionTimeout(p.connect_timeout_seconds);
  scu.setACSETimeout(p.dimse_timeout_seconds);
  scu.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
  scu.setDIMSETimeout(p.dimse_timeout_seconds);
  scu.setMaxReceivePDULength(ASC_MAXIMUMPDUSIZE / 4);
}

Status Connect(DcmSCU& scu, const DimsePeer& p, const char* operation) {
  OFCondition c = scu.initNetwork();
  if (c.bad()) return FromCondition(c, operation, Where(p));
  c = scu.negotiateAssociation();
  if (c.bad()) return FromCondition(c, operation, Where(p));
  return Status::Ok();
}

void Release(DcmSCU& scu) {
  if (!scu.isConnected()) return;
  if (scu.releaseAssociation().bad() || scu.isConnected()) scu.abortAssociation();
}

// C-FIND collecting every pending dataset; the final status decides success.
class FindScu : public DcmSCU {
 public:
  std::vector<std::unique_ptr<DcmDataset>> results;
  Uint16 final_status = 0xFFFF;

 protected:
  OFCondition handleFINDResponse(const T_ASC_PresentationContextID, QRResponse* r,
                                 OFBool& more) override {
    if (DICOM_PENDING_STATUS(r->m_status)) {
      if (r->m_dataset) {
        auto ds = std::make_unique<DcmDataset>(*r->m_dataset);
        // Orthanc answers in Latin-1 whatever we ask for: always convert.
        ConvertItemToUtf8(*ds);
        results.push_back(std::move(ds));
      }
      more = OFTrue;
    } else {
      final_status = r->m_status;
      more = OFFalse;
    }
    return EC_Normal;
  }
};

// Configures, negotiates one Study Root model and finds its presentation context.
// Storage contexts (C-GET) are added by the caller before.
Result<T_ASC_PresentationContextID> Open(DcmSCU& scu, const DimsePeer& p, const char* op,
                                         const char* model) {
  SI_RETURN_IF_ERROR(Connect(scu, p, op));
  T_ASC_PresentationContextID pc = scu.findPresentationContextID(model, "");
  if (pc == 0) {
    Release(scu);
    return Status(ErrorCode::kBadGateway,
                  std::string(op) + ": " + Where(p) + " does not support Study Root " + op);
  }
  return pc;
}

Result<std::vector<std::unique_ptr<DcmDataset>>> RunFind(const DimsePeer& p, DcmDataset& keys) {
  FindScu scu;
  Configure(scu, p);
  scu.addPresentationContext(UID_FINDStudyRootQueryRetrieveInformationModel,
                             List(kQueryTransferSyntaxes, 2));
  auto opened = Open(scu, p, "C-FIND", UID_FINDStudyRootQueryRetrieveInformationModel);
  if (!opened.ok()) return opened.status();
  T_ASC_PresentationContextID pc = *opened;
  OFCondition c = scu.sendFINDRequest(pc, &keys, nullptr);
  Release(scu);
  if (c.bad()) return FromCondition(c, "C-FIND", Where(p));
  if (scu.final_status != STATUS_Success)
    return FromDimseStatus(scu.final_status, "C-FIND", Where(p));
  return std::move(scu.results);
}

void PutKey(DcmDataset& ds, const DcmTagKey& tag, const std::string& value = "") {
  ds.putAndInsertString(tag, value.c_str());
}

}  // namespace

Result<std::vector<StudyRecord>> DcmtkDimseClient::FindStudies(const DimsePeer& peer,
                                                               const StudyQuery& query) const {
  DcmDataset keys;
  PutKey(keys, DCM_QueryRetrieveLevel, "STUDY");
  PutKey(keys, DCM_SpecificCharacterSet, "ISO_IR 192");
  PutKey(keys, DCM_StudyInstanceUID, query.study_instance_uid.value_or(""));
  PutKey(keys, DCM_PatientID, query.patient_id.value_or(""));
  for (auto& tag : {DCM_PatientName, DCM_StudyDate, DCM_StudyTime, DCM_AccessionNumber,
                    DCM_StudyDescription, DCM_ReferringPhysicianName, DCM_StudyID,
                    DCM_ModalitiesInStudy, DCM_NumberOfStudyRelatedSeries,
                    DCM_NumberOfStudyRelatedInstances, DCM_TimezoneOffsetFromUTC})
    PutKey(keys, tag);
  auto found = RunFind(peer, keys);
  if (!found.ok()) return found.status();

  std::vector<StudyRecord> studies;
  for (auto& ds : *found) {
    StudyRecord s;
    s.study_instance_uid = TextValue(*ds, DCM_StudyInstanceUID);
    if (!text::IsValidUid(s.study_instance_uid))
      continue;  // a malformed answer is left out, not fatal
    s.patient_id = TextValue(*ds, DCM_PatientID);
    // A PACS may match PatientID loosely (wildcards, case): keep only exact matches.
    if (query.patient_id && s.patient_id != *query.patient_id) continue;
    s.patient_name = TextValue(*ds, DCM_PatientName);
    s.study_date = TextValue(*ds, DCM_StudyDate);
    s.study_time = TextValue(*ds, DCM_StudyTime);
    s.timezone_offset = TextValue(*ds, DCM_TimezoneOffsetFromUTC);
    s.accession_number = TextValue(*ds, DCM_AccessionNumber);
    s.study_id = TextValue(*ds, DCM_StudyID);
    s.description = TextValue(*ds, DCM_StudyDescription);
    s.referring_physician = TextValue(*ds, DCM_ReferringPhysicianName);
    studies.push_back(std::move(s));
  }
  // Series details for each study (one association per study keeps each answer small).
  for (auto& s : studies) {
    if (!query.include_series) break;
    DcmDataset sk;
    PutKey(sk, DCM_QueryRetrieveLevel, "SERIES");
    PutKey(sk, DCM_SpecificCharacterSet, "ISO_IR 192");
    PutKey(sk, DCM_StudyInstanceUID, s.study_instance_uid);
    for (auto& tag :
         {DCM_SeriesInstanceUID, DCM_Modality, DCM_SeriesNumber, DCM_SeriesDescription,
          DCM_BodyPartExamined, DCM_NumberOfSeriesRelatedInstances, DCM_SeriesDate, DCM_SeriesTime})
      PutKey(sk, tag);
    auto series = RunFind(peer, sk);
    if (!series.ok()) return series.status();
    std::set<std::string> modalities;
    for (auto& ds : *series) {
      SeriesRecord r;
      r.series_instance_uid = TextValue(*ds, DCM_SeriesInstanceUID);
      if (!text::IsValidUid(r.series_instance_uid)) continue;
      r.modality = TextValue(*ds, DCM_Modality);
      r.series_number = IntValue(*ds, DCM_SeriesNumber);
      r.description = TextValue(*ds, DCM_SeriesDescription);
      r.body_part_examined = TextValue(*ds, DCM_BodyPartExamined);
      r.series_date = TextValue(*ds, DCM_SeriesDate);
      r.series_time = TextValue(*ds, DCM_SeriesTime);
      auto count = IntValue(*ds, DCM_NumberOfSeriesRelatedInstances);
      if (!count) {
        // Not every PACS offers the count (dcmqrscp does not): ask at IMAGE level.
        RetrieveScope scope{s.study_instance_uid, r.series_instance_uid, std::nullopt};
        auto images = FindInstances(peer, scope);
        if (!images.ok()) return images.status();
        count = static_cast<int64_t>(images->size());
      }
      r.number_of_instances = *count;
      s.number_of_instances += r.number_of_instances;
      if (!r.modality.empty() && modalities.insert(r.modality).second)
        s.modalities.push_back(r.modality);
      s.series.push_back(std::move(r));
    }
    std::sort(s.series.begin(), s.series.end(), [](const SeriesRecord& a, const SeriesRecord& b) {
      return a.series_number.value_or(INT64_MAX) < b.series_number.value_or(INT64_MAX);
    });
    s.number_of_series = static_cast<int64_t>(s.series.size());
  }
  std::sort(studies.begin(), studies.end(), [](const StudyRecord& a, const StudyRecord& b) {
    return a.study_date + a.study_time > b.study_date + b.study_time;
  });
  return studies;
}

Result<std::vector<InstanceKey>> DcmtkDimseClient::FindInstances(const DimsePeer& peer,
                                                                 const RetrieveScope& scope) const {
  DcmDataset keys;
  PutKey(keys, DCM_QueryRetrieveLevel, "IMAGE");
  PutKey(keys, DCM_StudyInstanceUID, scope.study_uid);
  PutKey(keys, DCM_SeriesInstanceUID, scope.series_uid.value_or(""));
  PutKey(keys, DCM_SOPInstanceUID, scope.sop_uid.value_or(""));
  PutKey(keys, DCM_SOPClassUID);
  auto found = RunFind(peer, keys);
  if (!found.ok()) return found.status();
  std::vector<InstanceKey> out;
  for (auto& ds : *found) {
    InstanceKey k{TextValue(*ds, DCM_StudyInstanceUID), TextValue(*ds, DCM_SeriesInstanceUID),
                  TextValue(*ds, DCM_SOPInstanceUID), TextValue(*ds, DCM_SOPClassUID)};
    if (!text::IsValidUid(k.sop_uid)) continue;
    if (!k.study_uid.empty() && k.study_uid != scope.study_uid) continue;
    if (scope.series_uid && !k.series_uid.empty() && k.series_uid != *scope.series_uid) continue;
    if (scope.sop_uid && k.sop_uid != *scope.sop_uid) continue;
    if (k.series_uid.empty()) k.series_uid = scope.series_uid.value_or("");
    out.push_back(std::move(k));
  }
  return out;
}

namespace {

void RetrieveKeys(DcmDataset& keys, const RetrieveScope& scope) {
  PutKey(keys, DCM_QueryRetrieveLevel,
         scope.sop_uid      ? "IMAGE"
         : scope.series_uid ? "SERIES"
                            : "STUDY");
  PutKey(keys, DCM_StudyInstanceUID, scope.study_uid);
  if (scope.series_uid) PutKey(keys, DCM_SeriesInstanceUID, *scope.series_uid);
  if (scope.sop_uid) PutKey(keys, DCM_SOPInstanceUID, *scope.sop_uid);
}

// Cancels when asked to, or when the whole operation outlives its deadline (a PACS
// that keeps sending PENDING forever).
class CancelPolicy {
 public:
  CancelPolicy(const std::atomic<bool>& cancel, int timeout_seconds)
      : cancel_(cancel),
        deadline_(std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds)) {}
  bool ShouldCancel() {
    if (cancelled_) return false;
    if (std::chrono::steady_clock::now() > deadline_) timed_out = true;
    if (cancel_ || timed_out) cancelled_ = true;
    return cancelled_;
  }
  bool timed_out = false;

 private:
  const std::atomic<bool>& cancel_;
  std::chrono::steady_clock::time_point deadline_;
  bool cancelled_ = false;
};

// What MOVE and GET share: progress counts from each response, cancel while
// pending, and the final status.
struct RetrieveProgress {
  RetrieveProgress(const std::atomic<bool>& cancel, int timeout_seconds)
      : policy(cancel, timeout_seconds) {}
  // Returns whether to send C-CANCEL now.
  bool Update(const RetrieveResponse& r, OFBool& more) {
    outcome.completed = r.m_numberOfCompletedSubops;
    outcome.failed = r.m_numberOfFailedSubops;
    outcome.warning = r.m_numberOfWarningSubops;
    if (DICOM_PENDING_STATUS(r.m_status)) {
      more = OFTrue;
      return policy.ShouldCancel();
    }
    outcome.final_status = r.m_status;
    got_final = true;
    more = OFFalse;
    return false;
  }
  CancelPolicy policy;
  RetrieveOutcome outcome;
  bool got_final = false;
};

class MoveScu : public DcmSCU {
 public:
  MoveScu(const std::atomic<bool>& cancel, int timeout_seconds)
      : progress(cancel, timeout_seconds) {}
  RetrieveProgress progress;

 protected:
  OFCondition handleMOVEResponse(const T_ASC_PresentationContextID pc, RetrieveResponse* r,
                                 OFBool& more) override {
    if (progress.Update(*r, more)) sendCANCELRequest(pc);
    return EC_Normal;
  }
};

class GetScu : public DcmSCU {
 public:
  GetScu(const std::atomic<bool>& cancel, int timeout_seconds, StoreTarget& target,
         std::filesystem::path temp_dir)
      : progress(cancel, timeout_seconds), target_(target), temp_dir_(std::move(temp_dir)) {}
  RetrieveProgress progress;
  Status store_error;

 protected:
  OFCondition handleCGETResponse(const T_ASC_PresentationContextID pc, RetrieveResponse* r,
                                 OFBool& more) override {
    if (progress.Update(*r, more)) sendCANCELRequest(pc);
    return EC_Normal;
  }

  // Each received instance: written as a Part 10 file and handed to the cache (which fsyncs it).
  OFCondition handleSTORERequest(const T_ASC_PresentationContextID, DcmDataset* incoming,
                                 OFBool& more, Uint16& status) override {
    more = OFTrue;
    std::unique_ptr<DcmDataset> ds(incoming);
    static std::atomic<uint64_t> counter{0};
    auto temp = temp_dir_ /
                (".get-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".tmp");
    DcmFileFormat ff(ds.get());
    E_TransferSyntax xfer = ds->getOriginalXfer();
    if (xfer == EXS_Unknown) xfer = EXS_LittleEndianExplicit;
    OFCondition c = ff.saveFile(temp.c_str(), xfer, EET_ExplicitLength, EGL_recalcGL, EPD_noChange);
    if (c.good()) {
      Status s = target_.Accept(temp);
      status = s.ok() ? STATUS_Success : STATUS_STORE_Refused_OutOfResources;
      if (!s.ok() && store_error.ok()) store_error = s;
    } else {
      status = STATUS_STORE_Refused_OutOfResources;
      if (store_error.ok())
        store_error = IoError(std::string("cannot write a received instance: ") + c.text());
    }
    return EC_Normal;
  }

 private:
  StoreTarget& target_;
  std::filesystem::path temp_dir_;
};

Result<RetrieveOutcome> Finish(const OFCondition& c, const RetrieveProgress& p,
                               const std::string& op, const DimsePeer& peer,
                               Uint16 warning_status) {
  if (c.bad()) return FromCondition(c, op.c_str(), Where(peer));
  if (p.policy.timed_out)
    return Status(ErrorCode::kGatewayTimeout, op + ": " + Where(peer) + " did not finish within " +
                                                  std::to_string(peer.operation_timeout_seconds) +
                                                  " s; cancelled");
  if (!p.got_final)
    return Status(ErrorCode::kBadGateway,
                  op + ": " + Where(peer) + " ended without a final response");
  // Warning (some sub-operations failed) is not an error here: the caller counts what arrived.
  if (p.outcome.final_status != STATUS_Success && p.outcome.final_status != warning_status)
    return FromDimseStatus(p.outcome.final_status, op, Where(peer));
  return p.outcome;
}

}  // namespace

Result<RetrieveOutcome> DcmtkDimseClient::Move(const DimsePeer& peer, const RetrieveScope& scope,
                                               const std::atomic<bool>& cancel) const {
  MoveScu scu(cancel, peer.operation_timeout_seconds);
  Configure(scu, peer);
  scu.addPresentationContext(UID_MOVEStudyRootQueryRetrieveInformationModel,
                             List(kQueryTransferSyntaxes, 2));
  auto opened = Open(scu, peer, "C-MOVE", UID_MOVEStudyRootQueryRetrieveInformationModel);
  if (!opened.ok()) return opened.status();
  T_ASC_PresentationContextID pc = *opened;
  DcmDataset keys;
  RetrieveKeys(keys, scope);
  OFCondition c = scu.sendMOVERequest(pc, peer.calling_ae.c_str(), &keys, nullptr);
  Release(scu);
  return Finish(c, scu.progress, "C-MOVE", peer,
                STATUS_MOVE_Warning_SubOperationsCompleteOneOrMoreFailures);
}

Result<RetrieveOutcome> DcmtkDimseClient::Get(const DimsePeer& peer, const RetrieveScope& scope,
                                              const std::vector<std::string>& sop_classes,
                                              StoreTarget& target,
                                              const std::atomic<bool>& cancel) const {
  GetScu scu(cancel, peer.operation_timeout_seconds, target, target.TempDir());
  Configure(scu, peer);
  scu.addPresentationContext(UID_GETStudyRootQueryRetrieveInformationModel,
                             List(kQueryTransferSyntaxes, 2));
  // The SCP role for each storage class the PACS may send: the classes its C-FIND
  // reported, else the common ones (at most 128 contexts in all).
  std::vector<std::string> classes = sop_classes;
  if (classes.empty())
    for (int i = 0; i < numberOfDcmLongSCUStorageSOPClassUIDs && i < 100; ++i)
      classes.push_back(dcmLongSCUStorageSOPClassUIDs[i]);
  // One context per transfer syntax: offered one context listing every syntax, a
  // PACS accepts the first it supports and transcodes everything to it (Orthanc
  // picked explicit little endian, rewrote implicit-VR and RLE files and could not
  // send JPEG 2000 at all). Separate contexts let it send what it stores. When the
  // classes are unknown there is room only for one context each.
  const size_t syntax_count = sizeof kStorageTransferSyntaxes / sizeof *kStorageTransferSyntaxes;
  if (classes.size() * syntax_count <= 126) {
    for (auto& sop_class : classes)
      for (size_t k = 0; k < syntax_count; ++k)
        scu.addPresentationContext(sop_class.c_str(), List(kStorageTransferSyntaxes + k, 1),
                                   ASC_SC_ROLE_SCP);
  } else {
    auto storage = List(kStorageTransferSyntaxes, syntax_count);
    for (size_t i = 0; i < classes.size() && i < 120; ++i)
      scu.addPresentationContext(classes[i].c_str(), storage, ASC_SC_ROLE_SCP);
  }
  auto opened = Open(scu, peer, "C-GET", UID_GETStudyRootQueryRetrieveInformationModel);
  if (!opened.ok()) return opened.status();
  T_ASC_PresentationContextID pc = *opened;
  DcmDataset keys;
  RetrieveKeys(keys, scope);
  OFCondition c = scu.sendCGETRequest(pc, &keys, nullptr);
  Release(scu);
  if (c.good() && !scu.store_error.ok()) return scu.store_error;
  return Finish(c, scu.progress, "C-GET", peer,
                STATUS_GET_Warning_SubOperationsCompleteOneOrMoreFailures);
}

}  // namespace si::dimse
