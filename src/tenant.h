#pragma once
// Tenants: one JSON file each, in the reference server's format, validated against
// schema/tenant.schema.json. A TenantConfig is immutable once loaded and may be
// shared between threads freely.
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/status.h"

namespace si {

struct PatientIdentifier {
  std::string system;
  std::string value;
  std::vector<std::string> type_codes;  // Identifier.type.coding[].code
  std::string type_text;
};

struct FhirPatient {
  std::string id;
  std::vector<PatientIdentifier> identifiers;
  // The MRN picked by the tenant's images.mrn expressions, when they were applied
  // (SMART patients, mock patients of tenants that set images.mrn); MrnIdentifierOf
  // then prefers it.
  std::string mrn;
};

enum class Lookup { kStudiesByMrn, kAllStudiesOnServer };

struct TenantConfig {
  std::string name;  // file stem, or "dyn" for /dyn/ tenants
  // Bound into study tokens: the file stem, or "dyn:" + SHA-256 of the encoded config.
  std::string key;
  // Path prefix of this tenant's URLs: "/{name}" or "/dyn/{encoded}".
  std::string url_prefix;

  // authorization
  std::string authorization_type;  // "mock", "smart-on-fhir", ...
  bool disable_authz_checks = false;
  std::optional<FhirPatient> patient;  // mock's authorized patient
  std::string fhir_base_url;
  std::string scope;
  std::vector<std::string>
      mrn_expressions;  // images.mrn (FHIRPath), checked at load against the supported subset

  // SMART (authorization.client and the optional timing settings)
  std::string client_id;
  std::string client_secret;         // meditech profile only
  std::string jwk_private_json;      // client.jwkPrivate as configured; checked at load
  std::string jwk_alg_hint;          // client.jwk.alg, used when jwkPrivate has no alg
  double auth_timeout_seconds = 10;  // authorization.timeoutSeconds: each EHR call
  double decision_cache_seconds =
      60;  // authorization.decisionCacheSeconds: max decision lifetime, 0 = off
  double negative_cache_seconds =
      5;  // authorization.negativeCacheSeconds: inactive / scope-less tokens
  double discovery_cache_seconds =
      600;  // authorization.discoveryCacheSeconds: .well-known/smart-configuration

  // authorization.backendServices (SMART Imaging Access, Backend Services mode): the
  // client_id of a system-scoped token -> which patients (FHIR ids) and, when
  // `studies` is non-empty, which study UIDs it may see. Empty: system scopes refused.
  struct BackendClientPolicy {
    std::vector<std::string> patients;
    std::vector<std::string> studies;  // empty: every study of the allowed patients
  };
  std::map<std::string, BackendClientPolicy> backend_services;
  bool backend_services_enabled = false;

  // "capability": "bearer": Endpoint addresses are bearer capability URLs that work
  // without Authorization (requires-access-token false); default token-bound.
  bool bearer_capability = false;

  // images
  std::string images_type;  // "folder", "dicom-web", "dicom-dimse"
  Lookup lookup = Lookup::kAllStudiesOnServer;
  std::string endpoint;
  std::string folder_path;  // absolute, for "folder"
  double rescan_seconds = 2.0;
  // images.slowSearch (ms): a search whose source has not answered by then gets 503
  // + Retry-After and finishes in the background for the identical retry; 0 = wait.
  int64_t slow_search_ms = 0;
  // images.issuerOfPatientId: the IssuerOfPatientID (0010,0021) of this site's MRNs.
  // An instance carrying another issuer is not the authorized patient's even when its
  // PatientID matches; instances without one are judged by PatientID alone.
  std::string issuer_of_patient_id;
  std::string ae;
  // dicom-dimse
  std::string called_ae = "ANY-SCP";
  std::string retrieval = "c-move";
  int max_associations = 4;
  int connect_timeout_seconds = 5;
  int dimse_timeout_seconds = 30;
  int operation_timeout_seconds = 600;

  std::string source_json;  // the file as loaded, for later issues' settings
};

// Validates and parses one tenant. `origin` names the file in error messages.
// Relative folder paths are resolved against `base_dir`.
Result<TenantConfig> ParseTenant(std::string_view name, std::string_view json_text,
                                 std::string_view origin, const std::filesystem::path& base_dir);

// Loads every *.json in dir (sorted). The first invalid file fails the whole load
// with "file: at /json/path: reason".
Result<std::vector<TenantConfig>> LoadTenantDirectory(const std::filesystem::path& dir,
                                                      const std::filesystem::path& base_dir);

// The identifier studies-by-mrn uses, as the reference server picks it: the
// identifier whose type is coded MR, else the first one. Empty when none.
// When patient.mrn is set (images.mrn applied), the identifier with that value,
// else an identifier of that value without system.
std::optional<PatientIdentifier> MrnIdentifierOf(const FhirPatient& patient);

// A FHIR Patient resource (JSON text) read from an EHR, with its MRN picked by
// `mrn_expressions` (images.mrn, else the default expression). InvalidArgument when
// the text is not a Patient.
Result<FhirPatient> ParsePatientResource(std::string_view json_text,
                                         const std::vector<std::string>& mrn_expressions);

// base64url without padding, as /dyn/ paths carry tenant JSON.
std::string Base64UrlEncode(std::string_view bytes);
std::optional<std::string> Base64UrlDecode(std::string_view text);

}  // namespace si
