#pragma once
// ImageSource over a DICOMweb server (Orthanc, a VNA): the reference server's
// `images.type: "dicom-web"` tenants. Searches are QIDO-RS (studies, then the
// series of every study, concurrently with a bound, over reused keep-alive
// connections); WADO-RS responses are passed through while they stream, after a
// QIDO-RS for the scope's instances has shown that the scope exists and whose
// instances they are. Nothing is cached (`cache: true` is not implemented).
//
// Thread-safety: all methods may be called concurrently; the source is immutable
// after construction and the HttpClient is thread-safe.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "src/clock.h"
#include "src/http_client.h"
#include "src/image_source.h"
#include "src/tenant.h"

namespace si {

struct DicomWebSettings {
  std::string root;                    // the DICOMweb root, no trailing slash
  std::string authorization;           // Authorization header value, empty for "open"; never logged
  std::optional<double> lookup_until;  // delay.lookupUntil, Unix seconds
  std::optional<double> retrieve_until;  // delay.retrieveUntil
  int query_concurrency = 8;  // images.queryConcurrency: series queries in flight per search
  std::chrono::milliseconds timeout{
      30000};                    // images.timeoutSeconds: answer / stall limit per request
  bool cache_requested = false;  // images.cache (not implemented; logged)
  // studies-by-mrn tenants: plans list every instance with its PatientID (an
  // instance-level QIDO-RS, ~1 ms per instance on Orthanc); otherwise a plan only
  // shows that the study or series exists (one cheap study- or series-level query).
  bool patient_ids_needed = true;
};

// images.* of a dicom-web tenant (already schema-validated). InvalidConfig when
// http-basic lacks a username or bearer lacks a token.
Result<DicomWebSettings> ParseDicomWebSettings(const TenantConfig& tenant);

// Whole seconds until `until` (at least 1) while now is before it; 0 when not
// delayed (no value, or the moment has passed).
int64_t DelayRetryAfter(std::optional<double> until, int64_t now_seconds);

// Replaces every occurrence of one string in a stream, holding back only what
// could be the start of a match (so nothing is buffered whole).
class StreamingReplacer {
 public:
  StreamingReplacer(std::string from, std::string to)
      : from_(std::move(from)), to_(std::move(to)) {}
  // What can be emitted now.
  std::string Feed(std::string_view data);
  // The held-back tail, at the end of the stream.
  std::string Finish();

 private:
  std::string from_, to_, pending_;
};

class DicomWebSource final : public ImageSource {
 public:
  // The client and clock must outlive the source.
  DicomWebSource(DicomWebSettings settings, std::shared_ptr<HttpClient> client, const Clock& clock);

  Result<std::vector<StudyRecord>> FindStudies(const StudyQuery& query) const override;
  // A QIDO-RS for the scope's instances (with PatientID), or, when patient IDs are
  // not needed, for the study or series itself: NotFound when none.
  Result<std::vector<StoredInstance>> PlanRetrieval(const RetrieveScope& scope) const override;
  // Not used: this source passes responses through.
  Status Retrieve(const std::vector<StoredInstance>& plan, InstanceSink& sink) const override;
  Result<std::vector<std::string>> Metadata(const RetrieveScope& scope) const override;

  bool SupportsPassThrough() const override { return true; }
  Status PassThrough(const PassThroughRequest& request, PassThroughSink& sink) const override;

  const DicomWebSettings& settings() const { return settings_; }

 private:
  // GET root + rel (a QIDO-RS) to its body, errors mapped (see StatusForUpstream).
  Result<std::string> Query(const std::string& rel) const;
  Status CheckDelay(const std::optional<double>& until, const char* what) const;
  // Existence of a study or series, one row (no instance list).
  Result<std::vector<StoredInstance>> Exists(const RetrieveScope& scope) const;
  HttpClientRequest Request(const std::string& rel, const std::string& accept) const;

  const DicomWebSettings settings_;
  std::shared_ptr<HttpClient> client_;
  const Clock& clock_;
  const std::string host_;  // host:port, for messages
};

// An upstream HTTP status that is not a success, as our error: 404 stays 404,
// 503/504 stay, a refused Accept is 406, the rest (and refused credentials) 502.
Status StatusForUpstream(int http_status, const std::string& host, bool client_accept);

}  // namespace si
