#include "src/fhir_search.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <ctime>

#include "schema/fhir_resources.h"
#include "src/text.h"

namespace si {
namespace {

bool ParseInt(std::string_view s, int& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

int64_t EpochOf(int y, int mo, int d, int h, int mi, int s) {
  return DaysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
}

std::string StripPatientReference(std::string v) {
  auto pos = v.rfind("Patient/");
  if (pos != std::string::npos) v = v.substr(pos + 8);
  return v;
}

}  // namespace

std::optional<TimeRange> ParseFhirDateRange(std::string_view v, int64_t default_offset) {
  int y = 0, mo = 1, d = 1, h = 0, mi = 0, s = 0;
  auto digits = [&](size_t pos, size_t n, int& out) {
    return pos + n <= v.size() && ParseInt(v.substr(pos, n), out) &&
           std::all_of(v.begin() + pos, v.begin() + pos + n,
                       [](char c) { return c >= '0' && c <= '9'; });
  };
  if (!digits(0, 4, y)) return std::nullopt;
  if (v.size() == 4)
    return TimeRange{EpochOf(y, 1, 1, 0, 0, 0) - default_offset,
                     EpochOf(y + 1, 1, 1, 0, 0, 0) - default_offset};
  if (v[4] != '-' || !digits(5, 2, mo) || mo < 1 || mo > 12) return std::nullopt;
  if (v.size() == 7) {
    int ny = mo == 12 ? y + 1 : y, nm = mo == 12 ? 1 : mo + 1;
    return TimeRange{EpochOf(y, mo, 1, 0, 0, 0) - default_offset,
                     EpochOf(ny, nm, 1, 0, 0, 0) - default_offset};
  }
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (v[7] != '-' || !digits(8, 2, d) || d < 1 || d > kDays[mo - 1] + (mo == 2 && leap))
    return std::nullopt;
  if (v.size() == 10) {
    int64_t lo = EpochOf(y, mo, d, 0, 0, 0) - default_offset;
    return TimeRange{lo, lo + 86400};
  }
  if (v[10] != 'T' || !digits(11, 2, h) || v.size() < 16 || v[13] != ':' || !digits(14, 2, mi) ||
      h > 23 || mi > 59)
    return std::nullopt;
  size_t pos = 16;
  int64_t precision = 60;
  if (pos < v.size() && v[pos] == ':') {
    if (!digits(pos + 1, 2, s) || s > 60) return std::nullopt;
    pos += 3;
    precision = 1;
    if (pos < v.size() && v[pos] == '.') {
      ++pos;
      while (pos < v.size() && v[pos] >= '0' && v[pos] <= '9') ++pos;
    }
  }
  int64_t offset = default_offset;
  if (pos < v.size()) {
    if (v[pos] == 'Z' && pos + 1 == v.size()) {
      offset = 0;
    } else if ((v[pos] == '+' || v[pos] == '-') && pos + 6 == v.size() && v[pos + 3] == ':') {
      int oh = 0, om = 0;
      if (!digits(pos + 1, 2, oh) || !digits(pos + 4, 2, om)) return std::nullopt;
      offset = (oh * 3600 + om * 60) * (v[pos] == '-' ? -1 : 1);
    } else {
      return std::nullopt;
    }
  }
  int64_t lo = EpochOf(y, mo, d, h, mi, s) - offset;
  return TimeRange{lo, lo + precision};
}

bool MatchesDate(const DateFilter& f, const TimeRange& r) {
  const TimeRange& p = f.range;
  if (f.prefix == "eq") return r.lo >= p.lo && r.hi <= p.hi;
  if (f.prefix == "ne") return !(r.lo >= p.lo && r.hi <= p.hi);
  if (f.prefix == "gt") return r.hi > p.hi;
  if (f.prefix == "lt") return r.lo < p.lo;
  if (f.prefix == "ge") return r.hi > p.lo;
  if (f.prefix == "le") return r.lo < p.hi;
  if (f.prefix == "sa") return r.lo >= p.hi;
  if (f.prefix == "eb") return r.hi <= p.lo;
  if (f.prefix == "ap") {
    // Approximately: within 10 % of the distance from now, at least a day.
    int64_t now = static_cast<int64_t>(std::time(nullptr));
    int64_t slack = std::max<int64_t>(86400, std::llabs(now - p.lo) / 10);
    return r.hi > p.lo - slack && r.lo < p.hi + slack;
  }
  return false;
}

Result<StudySearch> ParseStudySearch(const ParamList& params) {
  StudySearch search;
  for (const auto& [raw_name, value] : params) {
    std::string name = raw_name;
    if (name == "patient" || name == "subject") {
      if (value.empty()) return InvalidArgument("parameter '" + name + "' is empty");
      if (value.find(',') != std::string::npos) return InvalidArgument("one patient per search");
      std::string id = StripPatientReference(value);
      if (search.patient_id && *search.patient_id != id)
        return InvalidArgument("conflicting patient parameters");
      search.patient_id = id;
    } else if (name == "patient.identifier" || name == "subject.identifier" ||
               name == "patient:Patient.identifier") {
      if (value.empty() || value.find(',') != std::string::npos)
        return InvalidArgument("parameter '" + name + "' needs one system|value or value");
      PatientIdentifier id;
      auto bar = value.find('|');
      if (bar == std::string::npos) {
        id.value = value;
      } else {
        id.system = value.substr(0, bar);
        id.value = value.substr(bar + 1);
      }
      if (id.value.empty()) return InvalidArgument("parameter '" + name + "' has no value");
      search.patient_identifier = id;
    } else if (name == "identifier") {
      for (auto& item : text::Split(value, ',')) {
        std::string v = item;
        auto bar = v.find('|');
        if (bar != std::string::npos) {
          std::string system = v.substr(0, bar);
          if (!system.empty() && system != "urn:dicom:uid") continue;  // no study has it
          v = v.substr(bar + 1);
        }
        if (v.rfind("urn:oid:", 0) == 0) v = v.substr(8);
        if (!text::IsValidUid(v))
          return InvalidArgument("identifier '" + item + "' is not a urn:oid: study UID");
        search.study_uids.push_back(v);
      }
      if (search.study_uids.empty()) search.study_uids.push_back("");  // matches nothing
    } else if (name == "started" || name == "_lastUpdated") {
      std::string prefix = "eq";
      std::string v = value;
      static const char* kPrefixes[] = {"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"};
      for (const char* p : kPrefixes)
        if (v.size() > 2 && v.compare(0, 2, p) == 0) {
          prefix = p;
          v = v.substr(2);
          break;
        }
      auto range = ParseFhirDateRange(v, 0);
      if (!range)
        return InvalidArgument("parameter '" + name + "' has an invalid date '" + value + "'");
      (name == "started" ? search.started : search.last_updated)
          .push_back(DateFilter{prefix, *range});
    } else if (name == "modality") {
      for (auto& item : text::Split(value, ',')) {
        std::string v = item;
        auto bar = v.find('|');
        if (bar != std::string::npos) v = v.substr(bar + 1);
        if (v.empty()) return InvalidArgument("parameter 'modality' is empty");
        search.modalities.push_back(v);
      }
    } else if (name == "_count") {
      int n = 0;
      if (!ParseInt(value, n) || n < 0)
        return InvalidArgument("parameter '_count' must be a non-negative integer");
      search.count = std::min(n, kMaxPageSize);
    } else if (name == "_offset") {
      int n = 0;
      if (!ParseInt(value, n) || n < 0)
        return InvalidArgument("parameter '_offset' must be a non-negative integer");
      search.offset = n;
      continue;  // links set it themselves
    } else if (name == "_include") {
      if (value != "ImagingStudy:endpoint" && value != "ImagingStudy:endpoint:Endpoint")
        return InvalidArgument("_include supports only ImagingStudy:endpoint");
      search.include_endpoint = true;
    } else if (name == "_format") {
      if (value != "json" && value != "application/fhir+json" && value != "application/json")
        return NotAcceptable("only JSON is supported (_format=json)");
      continue;
    } else {
      continue;  // lenient handling: unknown parameters are ignored and left out of the self link
    }
    search.canonical.emplace_back(name, value);
  }
  return search;
}

Result<SearchPatient> ResolveSearchPatient(const TenantConfig& tenant, const AuthDecision& decision,
                                           const StudySearch& search) {
  if (!search.patient_id && !search.patient_identifier)
    return Forbidden("a patient, subject or patient.identifier parameter is required");
  auto identifier_matches = [](const PatientIdentifier& asked, const PatientIdentifier& known) {
    if (asked.value != known.value) return false;
    // Compare systems when both sides carry one; the reference compares values only.
    return asked.system.empty() || known.system.empty() || asked.system == known.system;
  };
  auto is_authorized_patient = [&](const FhirPatient& p) {
    if (search.patient_id && *search.patient_id != p.id) return false;
    if (search.patient_identifier) {
      bool any =
          std::any_of(p.identifiers.begin(), p.identifiers.end(), [&](const PatientIdentifier& k) {
            return identifier_matches(*search.patient_identifier, k);
          });
      if (!any) return false;
    }
    return true;
  };
  if (decision.patient && is_authorized_patient(*decision.patient))
    return SearchPatient{decision.patient->id, MrnIdentifierOf(*decision.patient)};
  if (!decision.any_patient)
    return Forbidden("the access token is not authorized for this patient");
  // Open tenant, a patient we know nothing of: the named identifier, else the id, is the MRN.
  SearchPatient p;
  p.fhir_id = search.patient_id.value_or("");
  if (search.patient_identifier) {
    p.mrn = search.patient_identifier;
  } else {
    PatientIdentifier id;
    id.value = *search.patient_id;
    p.mrn = id;
  }
  (void)tenant;
  return p;
}

std::optional<TimeRange> StudyStartRange(const StudyRecord& study, int64_t dicom_offset_seconds) {
  auto date = schema::NormalizeDicomDate(study.study_date);
  if (!date) return std::nullopt;
  auto time = schema::NormalizeDicomTime(study.study_time);
  int64_t offset = dicom_offset_seconds;
  if (auto tz = schema::ParseDicomTimezone(study.timezone_offset)) offset = *tz;
  std::string v = *date;
  if (date->size() == 10 && time) {
    auto r = ParseFhirDateRange(v + "T" + time->substr(0, 8), offset);
    if (r) return r;
  }
  return ParseFhirDateRange(v, offset);
}

bool StudyMatches(const StudySearch& search, const StudyRecord& study,
                  int64_t dicom_offset_seconds) {
  if (!search.study_uids.empty() && std::find(search.study_uids.begin(), search.study_uids.end(),
                                              study.study_instance_uid) == search.study_uids.end())
    return false;
  if (!search.modalities.empty()) {
    bool any =
        std::any_of(study.modalities.begin(), study.modalities.end(), [&](const std::string& m) {
          return std::find(search.modalities.begin(), search.modalities.end(), m) !=
                 search.modalities.end();
        });
    if (!any) return false;
  }
  if (!search.last_updated.empty()) {
    // meta.lastUpdated is an instant to the second: the range of that second.
    if (study.last_updated <= 0) return false;
    TimeRange r{study.last_updated, study.last_updated + 1};
    for (const auto& f : search.last_updated)
      if (!MatchesDate(f, r)) return false;
  }
  if (!search.started.empty()) {
    auto range = StudyStartRange(study, dicom_offset_seconds);
    if (!range) return false;
    for (const auto& f : search.started)
      if (!MatchesDate(f, *range)) return false;
  }
  return true;
}

}  // namespace si
