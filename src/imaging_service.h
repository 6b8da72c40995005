#pragma once
// The logic behind the HTTP handlers, free of any HTTP library: tenants with
// their authorizer and image source, FHIR search, and WADO access decisions.
// Thread-safe: everything here is immutable after start-up or internally locked.
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "src/authorizer.h"
#include "src/clock.h"
#include "src/fhir_search.h"
#include "src/image_source.h"
#include "src/slow_search.h"
#include "src/study_change_log.h"
#include "src/study_token.h"
#include "src/tenant.h"

namespace si {

struct Tenant {
  TenantConfig config;
  std::unique_ptr<Authorizer> authorizer;
  // Null when the source type is not available in this build: requests get 501.
  std::shared_ptr<ImageSource> source;
  Status source_status;
};

// Builds the image source for a tenant (the composition root supplies it, so
// that src/ does not depend on the DICOM toolkit).
using SourceFactory = std::function<Result<std::shared_ptr<ImageSource>>(const TenantConfig&)>;

struct ServiceSettings {
  std::string base_url;  // no trailing slash
  bool dyn_enabled = false;
  std::vector<std::string> dyn_allowed_hosts;
  // Offset assumed for DICOM times without TimezoneOffsetFromUTC: the site's zone.
  int64_t dicom_offset_seconds = 0;
  std::string version = "0.1.0";
};

struct WadoAccess {
  const Tenant* tenant = nullptr;
  StudyBinding binding;
  // For studies-by-mrn tenants: every served instance must carry this PatientID,
  // and, when both it and the tenant have one, this IssuerOfPatientID.
  std::optional<std::string> required_patient_id;
  std::optional<std::string> required_issuer;
  // Reached with a bearer capability URL (no SMART token).
  bool bearer_capability = false;
};

// What the Endpoint's requires-access-token says for a tenant: false for bearer
// capability URLs and for mock tenants (they read no Authorization header).
bool EndpointRequiresAccessToken(const TenantConfig& tenant);

class ImagingService {
 public:
  ImagingService(ServiceSettings settings, const StudyTokenCodec& codec, SourceFactory factory);

  // Takes the tenants loaded from the config directory.
  void AddTenant(TenantConfig config);

  // Where meta.lastUpdated comes from for sources that keep no change times; set
  // once before serving. Without one, such studies carry no meta.lastUpdated (and
  // _lastUpdated matches none of them).
  void SetChangeLog(std::shared_ptr<StudyChangeLog> log) { change_log_ = std::move(log); }

  // The tenant at a URL prefix: "name" or a /dyn/ encoded config. NotFound for an
  // unknown name; for /dyn/: NotFound when disabled, InvalidArgument when the
  // config is invalid, Forbidden when its upstream is not allowed.
  Result<std::shared_ptr<const Tenant>> FindTenant(const std::string& name) const;
  Result<std::shared_ptr<const Tenant>> FindDynTenant(const std::string& encoded) const;

  // FHIR ImagingStudy search: a searchset Bundle (JSON text).
  Result<std::string> SearchStudies(const Tenant& tenant, const AuthRequest& auth,
                                    const ParamList& params) const;

  std::string CapabilityStatement(const Tenant& tenant) const;

  // WADO-RS: checks the study token and the caller against the study asked for.
  Result<WadoAccess> AuthorizeWado(const Tenant& tenant, const AuthRequest& auth,
                                   std::string_view token, const std::string& study_uid) const;

  // The study a verified token binds: QIDO at the WADO root names no study in its
  // path. The token's own error when it does not verify.
  Result<std::string> BoundStudy(std::string_view token) const;

  // The instances of a WADO scope, after checking that every one belongs to the
  // token's patient (a study mixing patients is refused whole, logged with a count
  // and a hash of the study UID, never a patient identifier).
  Result<std::vector<StoredInstance>> PlanWado(const WadoAccess& access,
                                               const RetrieveScope& scope) const;

  // Delivers a planned scope to the sink. A source that learns each instance's
  // PatientID only when it arrives (a PACS, on a cold retrieval) is checked here
  // again: an instance of another patient is never passed on; the delivery stops
  // (the caller cuts the response, which never ends as a whole study) and, since
  // the retrieval still completes into the cache, the next request is refused whole.
  Status Retrieve(const WadoAccess& access, const std::vector<StoredInstance>& plan,
                  InstanceSink& sink) const;

  // The DICOM JSON of a planned scope (a PACS fills its cache first), with the
  // instances' own PatientIDs checked as in Retrieve: a study holding another
  // patient's instance is refused whole.
  Result<std::vector<std::string>> Metadata(const WadoAccess& access, const RetrieveScope& scope,
                                            const std::vector<StoredInstance>& plan) const;

  const ServiceSettings& settings() const { return settings_; }

 private:
  std::shared_ptr<Tenant> Build(TenantConfig config) const;

  ServiceSettings settings_;
  const StudyTokenCodec& codec_;
  SourceFactory factory_;
  SystemClock system_clock_;
  std::shared_ptr<StudyChangeLog> change_log_;
  mutable SlowSearchCache slow_searches_{system_clock_};  // images.slowSearch tenants
  std::map<std::string, std::shared_ptr<const Tenant>> tenants_;
  mutable std::mutex dyn_mutex_;
  mutable std::map<std::string, std::shared_ptr<const Tenant>>
      dyn_tenants_;  // guarded by dyn_mutex_
};

}  // namespace si
