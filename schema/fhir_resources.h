#pragma once
// FHIR R4 resources we emit, as pure functions writing JSON. Legacy DICOM values
// are normalized here when that is safe and omitted otherwise: one odd StudyDate
// must never fail a search.
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/model.h"
#include "src/status.h"

namespace si::schema {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

// "19970424", "1997.04.24", "1997-04-24", "199704", "1997" to FHIR date text.
std::optional<std::string> NormalizeDicomDate(std::string_view da);
// "HHMMSS.ffffff", "HH:MM:SS", "HHMM", "HH" to "HH:MM:SS[.fff]".
std::optional<std::string> NormalizeDicomTime(std::string_view tm);
// "+0100" / "-0500" to seconds east of UTC.
std::optional<int64_t> ParseDicomTimezone(std::string_view tz);
// FHIR dateTime of a DICOM date and time, with the zone (dataset's, else the
// assumed one). Only the date when there is no usable time.
std::optional<std::string> FhirDateTime(std::string_view da, std::string_view tm,
                                        std::string_view tz, int64_t assumed_offset_seconds);
// "Smith^John^^Dr" to "Dr John Smith" (the alphabetic group only).
std::string PersonNameDisplay(std::string_view pn);

struct StudyLinks {
  std::string full_url;           // {BASE}/{prefix}/fhir/ImagingStudy/{id}
  std::string endpoint_id;        // Endpoint.id
  std::string endpoint_address;   // {BASE}/{prefix}/wado/{token}
  bool contain_endpoint = true;   // contained (#id) or a separate, included Endpoint
  std::string subject_reference;  // "Patient/123" or absolute EHR URL; empty: use identifier
  std::optional<std::pair<std::string, std::string>> subject_identifier;  // system, value
  int64_t assumed_offset_seconds = 0;
  // The Endpoint's requires-access-token: true when the SMART token must accompany
  // the address (token-bound), false for a bearer capability URL or an open tenant.
  bool requires_access_token = true;
};

inline constexpr const char* kSmartImagingStudyProfile =
    "http://fhir.org/argonaut/smart-imaging/StructureDefinition/smart-imaging-study";
inline constexpr const char* kSmartWadoEndpointProfile =
    "http://fhir.org/argonaut/smart-imaging/StructureDefinition/smart-wado-endpoint";
inline constexpr const char* kRequiresAccessTokenExtension =
    "http://fhir.org/argonaut/smart-imaging/StructureDefinition/requires-access-token";

// Unix seconds as a FHIR instant, "2026-12-01T23:12:15Z".
std::string FhirInstant(int64_t unix_seconds);

// meta.lastUpdated comes from study.last_updated (omitted when 0).
void WriteImagingStudy(JsonWriter& w, const StudyRecord& study, const StudyLinks& links);
void WriteEndpoint(JsonWriter& w, const std::string& id, const std::string& address,
                   bool requires_access_token);
std::string ImagingStudyId(const StudyRecord& study);

struct BundleLink {
  std::string relation;
  std::string url;
};

// A searchset Bundle; `entries` are the ImagingStudies of the page with their
// links; included Endpoints follow when contain_endpoint is false.
std::string SearchsetBundle(int64_t total, const std::vector<BundleLink>& links,
                            const std::vector<const StudyRecord*>& studies,
                            const std::vector<StudyLinks>& study_links,
                            const std::string& endpoint_base_url);

std::string OperationOutcome(const Status& status);
std::string OperationOutcome(const char* severity, const char* code, std::string_view diagnostics);

struct CapabilityOptions {
  std::string base_url;  // {BASE}/{prefix}/fhir
  std::string software_version;
  std::string authorization_type;  // "mock" or a SMART type
  std::string fhir_base_url;       // the EHR, for SMART security
};
std::string CapabilityStatement(const CapabilityOptions& options);

}  // namespace si::schema
