#include "schema/fhir_resources.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <ctime>

#include "src/text.h"

namespace si::schema {
namespace {

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int ToInt(std::string_view s) {
  int v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

void Str(JsonWriter& w, const char* key, std::string_view value) {
  w.Key(key);
  std::string clean = text::SanitizeUtf8(value);
  w.String(clean.c_str(), static_cast<rapidjson::SizeType>(clean.size()));
}

void Coding(JsonWriter& w, const char* system, std::string_view code) {
  w.StartObject();
  Str(w, "system", system);
  Str(w, "code", code);
  w.EndObject();
}

constexpr const char* kDcmSystem = "http://dicom.nema.org/resources/ontology/DCM";

}  // namespace

std::optional<std::string> NormalizeDicomDate(std::string_view raw) {
  std::string da = text::Trim(raw);
  std::string digits;
  for (char c : da) {
    if (c >= '0' && c <= '9')
      digits += c;
    else if (c != '.' && c != '-' && c != '/')
      return std::nullopt;
  }
  if (digits.size() != 4 && digits.size() != 6 && digits.size() != 8) return std::nullopt;
  int y = ToInt(std::string_view(digits).substr(0, 4));
  if (y < 1800 || y > 2200) return std::nullopt;
  std::string out = digits.substr(0, 4);
  if (digits.size() >= 6) {
    int m = ToInt(std::string_view(digits).substr(4, 2));
    if (m < 1 || m > 12) return std::nullopt;
    out += "-" + digits.substr(4, 2);
    if (digits.size() == 8) {
      static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
      bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
      int d = ToInt(std::string_view(digits).substr(6, 2));
      if (d < 1 || d > kDays[m - 1] + (m == 2 && leap)) return std::nullopt;
      out += "-" + digits.substr(6, 2);
    }
  }
  return out;
}

std::optional<std::string> NormalizeDicomTime(std::string_view raw) {
  std::string tm = text::Trim(raw);
  std::string frac;
  auto dot = tm.find('.');
  if (dot != std::string::npos) {
    frac = tm.substr(dot + 1);
    tm = tm.substr(0, dot);
    if (!frac.empty() && !AllDigits(frac)) return std::nullopt;
  }
  std::string digits;
  for (char c : tm) {
    if (c >= '0' && c <= '9')
      digits += c;
    else if (c != ':')
      return std::nullopt;
  }
  if (digits.size() != 2 && digits.size() != 4 && digits.size() != 6) return std::nullopt;
  while (digits.size() < 6) digits += "00";
  int h = ToInt(std::string_view(digits).substr(0, 2)),
      m = ToInt(std::string_view(digits).substr(2, 2)),
      s = ToInt(std::string_view(digits).substr(4, 2));
  if (h > 23 || m > 59 || s > 59) return std::nullopt;
  std::string out = digits.substr(0, 2) + ":" + digits.substr(2, 2) + ":" + digits.substr(4, 2);
  if (!frac.empty()) out += "." + frac.substr(0, 3);
  return out;
}

std::optional<int64_t> ParseDicomTimezone(std::string_view raw) {
  std::string tz = text::Trim(raw);
  if (tz.size() != 5 || (tz[0] != '+' && tz[0] != '-') ||
      !AllDigits(std::string_view(tz).substr(1)))
    return std::nullopt;
  int h = ToInt(std::string_view(tz).substr(1, 2)), m = ToInt(std::string_view(tz).substr(3, 2));
  if (h > 14 || m > 59) return std::nullopt;
  return (tz[0] == '-' ? -1 : 1) * (h * 3600 + m * 60);
}

std::optional<std::string> FhirDateTime(std::string_view da, std::string_view tm,
                                        std::string_view tz, int64_t assumed_offset_seconds) {
  auto date = NormalizeDicomDate(da);
  if (!date) return std::nullopt;
  auto time = NormalizeDicomTime(tm);
  if (date->size() != 10 || !time) return date;
  int64_t offset = ParseDicomTimezone(tz).value_or(assumed_offset_seconds);
  char zone[8];
  int64_t a = offset < 0 ? -offset : offset;
  std::snprintf(zone, sizeof zone, "%c%02d:%02d", offset < 0 ? '-' : '+',
                static_cast<int>(a / 3600), static_cast<int>((a % 3600) / 60));
  return *date + "T" + *time + zone;
}

std::string PersonNameDisplay(std::string_view pn) {
  std::string alphabetic(pn.substr(0, pn.find('=')));
  auto parts = text::Split(alphabetic, '^');
  parts.resize(5);
  std::string out;
  for (int i : {3, 1, 2, 0, 4}) {
    std::string p = text::Trim(parts[i]);
    if (p.empty()) continue;
    if (!out.empty()) out += ' ';
    out += p;
  }
  return out;
}

std::string ImagingStudyId(const StudyRecord& study) {
  // A UID is at most 64 digits and dots: a valid FHIR id as it is.
  return study.study_instance_uid;
}

std::string FhirInstant(int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

namespace {
void Meta(JsonWriter& w, const char* profile, int64_t last_updated) {
  w.Key("meta");
  w.StartObject();
  if (last_updated > 0) Str(w, "lastUpdated", FhirInstant(last_updated));
  w.Key("profile");
  w.StartArray();
  w.String(profile);
  w.EndArray();
  w.EndObject();
}
}  // namespace

void WriteEndpoint(JsonWriter& w, const std::string& id, const std::string& address,
                   bool requires_access_token) {
  w.StartObject();
  Str(w, "resourceType", "Endpoint");
  Str(w, "id", id);
  Meta(w, kSmartWadoEndpointProfile, 0);
  w.Key("extension");
  w.StartArray();
  w.StartObject();
  Str(w, "url", kRequiresAccessTokenExtension);
  w.Key("valueBoolean");
  w.Bool(requires_access_token);
  w.EndObject();
  w.EndArray();
  Str(w, "status", "active");
  w.Key("connectionType");
  Coding(w, "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "dicom-wado-rs");
  w.Key("payloadType");
  w.StartArray();
  w.StartObject();
  Str(w, "text", "DICOM");
  w.EndObject();
  w.EndArray();
  w.Key("payloadMimeType");
  w.StartArray();
  w.String("application/dicom");
  w.EndArray();
  Str(w, "address", address);
  w.EndObject();
}

void WriteImagingStudy(JsonWriter& w, const StudyRecord& study, const StudyLinks& links) {
  w.StartObject();
  Str(w, "resourceType", "ImagingStudy");
  Str(w, "id", ImagingStudyId(study));
  Meta(w, kSmartImagingStudyProfile, study.last_updated);
  if (links.contain_endpoint) {
    w.Key("contained");
    w.StartArray();
    WriteEndpoint(w, links.endpoint_id, links.endpoint_address, links.requires_access_token);
    w.EndArray();
  }
  w.Key("identifier");
  w.StartArray();
  w.StartObject();
  Str(w, "system", "urn:dicom:uid");
  Str(w, "value", "urn:oid:" + study.study_instance_uid);
  w.EndObject();
  if (!study.accession_number.empty()) {
    w.StartObject();
    w.Key("type");
    w.StartObject();
    w.Key("coding");
    w.StartArray();
    Coding(w, "http://terminology.hl7.org/CodeSystem/v2-0203", "ACSN");
    w.EndArray();
    w.EndObject();
    Str(w, "value", study.accession_number);
    w.EndObject();
  }
  w.EndArray();
  Str(w, "status", "available");
  if (!study.modalities.empty()) {
    w.Key("modality");
    w.StartArray();
    for (auto& m : study.modalities) Coding(w, kDcmSystem, m);
    w.EndArray();
  }
  w.Key("subject");
  w.StartObject();
  if (!links.subject_reference.empty()) {
    Str(w, "reference", links.subject_reference);
  } else if (links.subject_identifier) {
    w.Key("identifier");
    w.StartObject();
    if (!links.subject_identifier->first.empty()) Str(w, "system", links.subject_identifier->first);
    Str(w, "value", links.subject_identifier->second);
    w.EndObject();
  } else {
    Str(w, "display", "unknown patient");
  }
  w.EndObject();
  if (auto started = FhirDateTime(study.study_date, study.study_time, study.timezone_offset,
                                  links.assumed_offset_seconds))
    Str(w, "started", *started);
  if (!study.accession_number.empty()) {
    // The order the study fulfils, known by its Accession Number (IG: basedOn).
    w.Key("basedOn");
    w.StartArray();
    w.StartObject();
    w.Key("identifier");
    w.StartObject();
    w.Key("type");
    w.StartObject();
    w.Key("coding");
    w.StartArray();
    Coding(w, "http://terminology.hl7.org/CodeSystem/v2-0203", "ACSN");
    w.EndArray();
    w.EndObject();
    Str(w, "value", study.accession_number);
    w.EndObject();
    w.EndObject();
    w.EndArray();
  }
  std::string referrer = PersonNameDisplay(study.referring_physician);
  if (!referrer.empty()) {
    w.Key("referrer");
    w.StartObject();
    Str(w, "display", referrer);
    w.EndObject();
  }
  w.Key("endpoint");
  w.StartArray();
  w.StartObject();
  Str(w, "reference",
      links.contain_endpoint ? "#" + links.endpoint_id : "Endpoint/" + links.endpoint_id);
  w.EndObject();
  w.EndArray();
  w.Key("numberOfSeries");
  w.Int64(study.number_of_series);
  w.Key("numberOfInstances");
  w.Int64(study.number_of_instances);
  if (!text::Trim(study.description).empty()) Str(w, "description", text::Trim(study.description));
  if (!study.series.empty()) {
    w.Key("series");
    w.StartArray();
    for (auto& s : study.series) {
      w.StartObject();
      Str(w, "uid", s.series_instance_uid);
      if (s.series_number && *s.series_number >= 0) {
        w.Key("number");
        w.Int64(*s.series_number);
      }
      w.Key("modality");
      Coding(w, kDcmSystem, s.modality.empty() ? "OT" : s.modality);
      if (!s.description.empty()) Str(w, "description", s.description);
      w.Key("numberOfInstances");
      w.Int64(s.number_of_instances);
      if (!s.instances.empty()) {
        w.Key("instance");
        w.StartArray();
        for (auto& i : s.instances) {
          w.StartObject();
          Str(w, "uid", i.sop_instance_uid);
          w.Key("sopClass");
          Coding(w, "urn:ietf:rfc:3986", "urn:oid:" + i.sop_class_uid);
          if (i.instance_number && *i.instance_number >= 0) {
            w.Key("number");
            w.Int64(*i.instance_number);
          }
          w.EndObject();
        }
        w.EndArray();
      }
      w.EndObject();
    }
    w.EndArray();
  }
  w.EndObject();
}

std::string SearchsetBundle(int64_t total, const std::vector<BundleLink>& links,
                            const std::vector<const StudyRecord*>& studies,
                            const std::vector<StudyLinks>& study_links,
                            const std::string& endpoint_base_url) {
  rapidjson::StringBuffer sb;
  JsonWriter w(sb);
  w.StartObject();
  Str(w, "resourceType", "Bundle");
  Str(w, "type", "searchset");
  w.Key("total");
  w.Int64(total);
  w.Key("link");
  w.StartArray();
  for (auto& l : links) {
    w.StartObject();
    Str(w, "relation", l.relation);
    Str(w, "url", l.url);
    w.EndObject();
  }
  w.EndArray();
  w.Key("entry");
  w.StartArray();
  for (size_t i = 0; i < studies.size(); ++i) {
    w.StartObject();
    Str(w, "fullUrl", study_links[i].full_url);
    w.Key("resource");
    WriteImagingStudy(w, *studies[i], study_links[i]);
    w.Key("search");
    w.StartObject();
    Str(w, "mode", "match");
    w.EndObject();
    w.EndObject();
  }
  for (size_t i = 0; i < studies.size(); ++i) {
    if (study_links[i].contain_endpoint) continue;
    w.StartObject();
    Str(w, "fullUrl", endpoint_base_url + "/Endpoint/" + study_links[i].endpoint_id);
    w.Key("resource");
    WriteEndpoint(w, study_links[i].endpoint_id, study_links[i].endpoint_address,
                  study_links[i].requires_access_token);
    w.Key("search");
    w.StartObject();
    Str(w, "mode", "include");
    w.EndObject();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return sb.GetString();
}

std::string OperationOutcome(const char* severity, const char* code, std::string_view diagnostics) {
  rapidjson::StringBuffer sb;
  JsonWriter w(sb);
  w.StartObject();
  Str(w, "resourceType", "OperationOutcome");
  w.Key("issue");
  w.StartArray();
  w.StartObject();
  Str(w, "severity", severity);
  Str(w, "code", code);
  if (!diagnostics.empty()) Str(w, "diagnostics", diagnostics);
  w.EndObject();
  w.EndArray();
  w.EndObject();
  return sb.GetString();
}

std::string OperationOutcome(const Status& status) {
  const auto& info = InfoFor(status.code());
  return OperationOutcome(status.http_status() >= 500 ? "fatal" : "error", info.fhir_issue_code,
                          status.message());
}

std::string CapabilityStatement(const CapabilityOptions& o) {
  rapidjson::StringBuffer sb;
  JsonWriter w(sb);
  w.StartObject();
  Str(w, "resourceType", "CapabilityStatement");
  Str(w, "status", "active");
  Str(w, "date", "2026-12-01");
  Str(w, "kind", "instance");
  w.Key("software");
  w.StartObject();
  Str(w, "name", "smart-imaging");
  Str(w, "version", o.software_version);
  w.EndObject();
  w.Key("implementation");
  w.StartObject();
  Str(w, "description", "smart-imaging: FHIR ImagingStudy and DICOMweb for SMART apps");
  Str(w, "url", o.base_url);
  w.EndObject();
  Str(w, "fhirVersion", "4.0.1");
  w.Key("format");
  w.StartArray();
  w.String("application/fhir+json");
  w.String("json");
  w.EndArray();
  w.Key("rest");
  w.StartArray();
  w.StartObject();
  Str(w, "mode", "server");
  if (o.authorization_type != "mock") {
    w.Key("security");
    w.StartObject();
    w.Key("service");
    w.StartArray();
    w.StartObject();
    w.Key("coding");
    w.StartArray();
    Coding(w, "http://terminology.hl7.org/CodeSystem/restful-security-service", "SMART-on-FHIR");
    w.EndArray();
    w.EndObject();
    w.EndArray();
    Str(w, "description", "SMART on FHIR access tokens issued by the EHR at " + o.fhir_base_url);
    w.EndObject();
  }
  w.Key("resource");
  w.StartArray();
  w.StartObject();
  Str(w, "type", "ImagingStudy");
  w.Key("interaction");
  w.StartArray();
  w.StartObject();
  Str(w, "code", "search-type");
  w.EndObject();
  w.EndArray();
  w.Key("supportedProfile");
  w.StartArray();
  w.String(kSmartImagingStudyProfile);
  w.EndArray();
  w.Key("searchInclude");
  w.StartArray();
  w.String("ImagingStudy:endpoint");
  w.EndArray();
  w.Key("searchParam");
  w.StartArray();
  struct Param {
    const char* name;
    const char* definition;
    const char* type;
    const char* doc;
  };
  const Param params[] = {
      {"patient", "http://hl7.org/fhir/SearchParameter/clinical-patient", "reference",
       "Patient/{id}; must be the authorized patient"},
      {"identifier", "http://hl7.org/fhir/SearchParameter/clinical-identifier", "token",
       "urn:oid:{StudyInstanceUID}"},
      {"_lastUpdated", "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated", "date",
       "meta.lastUpdated: when this server first saw the study or last saw its series or "
       "instance counts change (folders: when the files were indexed)"},
      {"subject", "http://hl7.org/fhir/SearchParameter/ImagingStudy-subject", "reference",
       "same as patient"},
      {"started", "http://hl7.org/fhir/SearchParameter/ImagingStudy-started", "date",
       "StudyDate/StudyTime, with FHIR prefixes"},
      {"modality", "http://hl7.org/fhir/SearchParameter/ImagingStudy-modality", "token",
       "DICOM modality code of any series"},
  };
  for (auto& p : params) {
    w.StartObject();
    Str(w, "name", p.name);
    Str(w, "definition", p.definition);
    Str(w, "type", p.type);
    Str(w, "documentation", p.doc);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  w.EndArray();
  w.EndObject();
  w.EndArray();
  w.EndObject();
  return sb.GetString();
}

}  // namespace si::schema
