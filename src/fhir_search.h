#pragma once
// FHIR ImagingStudy search: parameters into a StudySearch, the patient the search
// is for, and the in-memory filters. Pure functions; no I/O.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "src/authorizer.h"
#include "src/model.h"
#include "src/status.h"
#include "src/tenant.h"

namespace si {

using ParamList = std::vector<std::pair<std::string, std::string>>;

// A closed-open instant range in Unix seconds, as FHIR date searching compares ranges.
struct TimeRange {
  int64_t lo = 0;
  int64_t hi = 0;
};

struct DateFilter {
  std::string prefix;  // eq ne gt lt ge le sa eb ap
  TimeRange range;
};

struct StudySearch {
  std::optional<std::string> patient_id;
  std::optional<PatientIdentifier> patient_identifier;
  std::vector<std::string> study_uids;   // OR
  std::vector<DateFilter> started;       // AND
  std::vector<DateFilter> last_updated;  // AND, against meta.lastUpdated
  std::vector<std::string> modalities;   // OR
  int count = 50;
  int offset = 0;
  bool include_endpoint = false;
  ParamList canonical;  // recognized parameters, for self/next links
};

inline constexpr int kMaxPageSize = 1000;

Result<StudySearch> ParseStudySearch(const ParamList& params);

// FHIR date/dateTime text (YYYY, YYYY-MM, YYYY-MM-DD, with time and zone) to the
// range it denotes. Values without a zone use `default_offset_seconds`.
std::optional<TimeRange> ParseFhirDateRange(std::string_view value, int64_t default_offset_seconds);
bool MatchesDate(const DateFilter& filter, const TimeRange& value);

struct SearchPatient {
  std::string fhir_id;  // may be empty when searched by identifier only
  std::optional<PatientIdentifier> mrn;
};

// Which patient the search is for, given what the caller is authorized for.
// Forbidden when no patient is named or the named one is not authorized.
Result<SearchPatient> ResolveSearchPatient(const TenantConfig& tenant, const AuthDecision& decision,
                                           const StudySearch& search);

// Whether a study passes identifier, started and modality filters.
// `dicom_offset_seconds` is the UTC offset assumed for DICOM times without one.
bool StudyMatches(const StudySearch& search, const StudyRecord& study,
                  int64_t dicom_offset_seconds);

// The instant range a study's StudyDate/StudyTime denote, if any.
std::optional<TimeRange> StudyStartRange(const StudyRecord& study, int64_t dicom_offset_seconds);

}  // namespace si
