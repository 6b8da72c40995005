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
  std::vector<std::string> mrn_expressions;  // images.mrn (FHIRPath), used by the SMART issue

  // images
  std::string images_type;  // "folder", "dicom-web", "dicom-dimse"
  Lookup lookup = Lookup::kAllStudiesOnServer;
  std::string endpoint;
  std::string folder_path;  // absolute, for "folder"
  double rescan_seconds = 2.0;
  std::string ae;

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
std::optional<PatientIdentifier> MrnIdentifierOf(const FhirPatient& patient);

// base64url without padding, as /dyn/ paths carry tenant JSON.
std::string Base64UrlEncode(std::string_view bytes);
std::optional<std::string> Base64UrlDecode(std::string_view text);

}  // namespace si
