#include "src/dicomweb_json.h"

#include <rapidjson/document.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "src/text.h"

namespace si::dicomweb {
namespace {

using Value = rapidjson::Value;

// Study level: beyond the QIDO defaults (PS3.18 table 6.7.1-2), what the FHIR
// ImagingStudy needs. Servers that return some of them anyway ignore the repeat.
constexpr const char* kStudyFields[] = {
    "00080020", "00080030", "00080201", "00080050", "00200010", "00081030",
    "00080090", "00080061", "00201206", "00201208", "00100020", "00100010",
};
constexpr const char* kSeriesFields[] = {
    "00080060", "00200011", "0008103E", "00180015", "00080021", "00080031", "00201209",
};
constexpr const char* kInstanceFields[] = {"00100020", "0020000D", "0020000E", "00080016"};

template <size_t N>
std::string Include(const char* const (&fields)[N]) {
  std::string out;
  for (const char* f : fields) out += (out.empty() ? "" : "&") + std::string("includefield=") + f;
  return out;
}

// The first Value of an attribute, or null.
const Value* FirstValue(const Value& object, const char* tag) {
  auto it = object.FindMember(tag);
  if (it == object.MemberEnd() || !it->value.IsObject()) return nullptr;
  auto v = it->value.FindMember("Value");
  if (v == it->value.MemberEnd() || !v->value.IsArray() || v->value.Empty()) return nullptr;
  return &v->value[0];
}

std::string Clean(const char* s, size_t n) {
  return text::Trim(text::SanitizeUtf8(std::string_view(s, n)));
}

// Text of a string-valued attribute; a PN's Alphabetic group; empty otherwise.
std::string Text(const Value& object, const char* tag) {
  const Value* v = FirstValue(object, tag);
  if (!v) return "";
  if (v->IsString()) return Clean(v->GetString(), v->GetStringLength());
  if (v->IsObject()) {
    auto a = v->FindMember("Alphabetic");
    if (a != v->MemberEnd() && a->value.IsString())
      return Clean(a->value.GetString(), a->value.GetStringLength());
  }
  return "";
}

// Every string Value of a multi-valued attribute.
std::vector<std::string> Texts(const Value& object, const char* tag) {
  std::vector<std::string> out;
  auto it = object.FindMember(tag);
  if (it == object.MemberEnd() || !it->value.IsObject()) return out;
  auto v = it->value.FindMember("Value");
  if (v == it->value.MemberEnd() || !v->value.IsArray()) return out;
  for (auto& e : v->value.GetArray())
    if (e.IsString()) out.push_back(Clean(e.GetString(), e.GetStringLength()));
  return out;
}

// IS/US/UL values: a JSON integer, or a string holding exactly one (some servers
// send IS as text). Fractions, overflow and junk are no value.
std::optional<int64_t> Integer(const Value& object, const char* tag) {
  const Value* v = FirstValue(object, tag);
  if (!v) return std::nullopt;
  if (v->IsInt64()) return v->GetInt64();
  if (v->IsDouble()) {
    double d = v->GetDouble();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15)
      return static_cast<int64_t>(d);
    return std::nullopt;
  }
  if (v->IsString()) {
    std::string s = text::Trim(std::string_view(v->GetString(), v->GetStringLength()));
    if (s.empty() || s.size() > 18) return std::nullopt;
    size_t i = (s[0] == '+' || s[0] == '-') ? 1 : 0;
    if (i == s.size()) return std::nullopt;
    for (size_t k = i; k < s.size(); ++k)
      if (s[k] < '0' || s[k] > '9') return std::nullopt;
    return std::stoll(s);
  }
  return std::nullopt;
}

int64_t Count(const Value& object, const char* tag) {
  auto n = Integer(object, tag);
  return n && *n > 0 ? *n : 0;
}

std::string Uid(const Value& object, const char* tag) {
  std::string uid = Text(object, tag);
  while (!uid.empty() && uid.back() == '\0') uid.pop_back();
  return text::IsValidUid(uid) ? uid : "";
}

// A CS code usable as a FHIR code: upper-case letters, digits, '_' (e.g. "CT").
std::string Modality(std::string m) {
  if (m.empty() || m.size() > 16) return "";
  for (char c : m)
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return "";
  return m;
}

Result<rapidjson::Document> ParseArray(std::string_view json) {
  rapidjson::Document doc;
  // An empty body is how some servers say "no matches" (with 200 or 204).
  if (text::Trim(json).empty()) {
    doc.SetArray();
    return doc;
  }
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsArray())
    return Status(ErrorCode::kBadGateway,
                  "the DICOMweb server's QIDO-RS answer is not a DICOM JSON array");
  return doc;
}

}  // namespace

std::string StudyIncludeFields() { return Include(kStudyFields); }
std::string SeriesIncludeFields() { return Include(kSeriesFields); }
std::string InstanceIncludeFields() { return Include(kInstanceFields); }

Result<std::vector<StudyRecord>> ParseStudies(std::string_view json) {
  auto doc = ParseArray(json);
  if (!doc.ok()) return doc.status();
  std::vector<StudyRecord> out;
  std::set<std::string> seen;
  for (auto& o : doc->GetArray()) {
    if (!o.IsObject()) continue;
    StudyRecord s;
    s.study_instance_uid = Uid(o, "0020000D");
    if (s.study_instance_uid.empty() || !seen.insert(s.study_instance_uid).second) continue;
    s.patient_id = Text(o, "00100020");
    s.patient_name = Text(o, "00100010");
    s.study_date = Text(o, "00080020");
    s.study_time = Text(o, "00080030");
    s.timezone_offset = Text(o, "00080201");
    s.accession_number = Text(o, "00080050");
    s.study_id = Text(o, "00200010");
    s.description = Text(o, "00081030");
    s.referring_physician = Text(o, "00080090");
    for (auto& m : Texts(o, "00080061"))
      if (auto code = Modality(m);
          !code.empty() &&
          std::find(s.modalities.begin(), s.modalities.end(), code) == s.modalities.end())
        s.modalities.push_back(code);
    s.number_of_series = Count(o, "00201206");
    s.number_of_instances = Count(o, "00201208");
    out.push_back(std::move(s));
  }
  return out;
}

Result<std::vector<SeriesRecord>> ParseSeries(std::string_view json) {
  auto doc = ParseArray(json);
  if (!doc.ok()) return doc.status();
  std::vector<SeriesRecord> out;
  std::set<std::string> seen;
  for (auto& o : doc->GetArray()) {
    if (!o.IsObject()) continue;
    SeriesRecord s;
    s.series_instance_uid = Uid(o, "0020000E");
    if (s.series_instance_uid.empty() || !seen.insert(s.series_instance_uid).second) continue;
    s.modality = Modality(Text(o, "00080060"));
    s.series_number = Integer(o, "00200011");
    s.description = Text(o, "0008103E");
    s.body_part_examined = Text(o, "00180015");
    s.series_date = Text(o, "00080021");
    s.series_time = Text(o, "00080031");
    s.number_of_instances = Count(o, "00201209");
    out.push_back(std::move(s));
  }
  return out;
}

Result<std::vector<StoredInstance>> ParseInstances(std::string_view json) {
  auto doc = ParseArray(json);
  if (!doc.ok()) return doc.status();
  std::vector<StoredInstance> out;
  std::set<std::string> seen;
  for (auto& o : doc->GetArray()) {
    if (!o.IsObject()) continue;
    StoredInstance i;
    i.sop_instance_uid = Uid(o, "00080018");
    if (i.sop_instance_uid.empty() || !seen.insert(i.sop_instance_uid).second) continue;
    i.study_uid = Uid(o, "0020000D");
    i.series_uid = Uid(o, "0020000E");
    // Compared with the token's patient by PlanWado: empty when absent, which refuses.
    i.patient_id = Text(o, "00100020");
    i.transfer_syntax_uid = Uid(o, "00020010");
    out.push_back(std::move(i));
  }
  return out;
}

void AttachSeries(StudyRecord& study, std::vector<SeriesRecord> series) {
  std::sort(series.begin(), series.end(), [](const SeriesRecord& a, const SeriesRecord& b) {
    int64_t na = a.series_number.value_or(INT64_MAX), nb = b.series_number.value_or(INT64_MAX);
    return na != nb ? na < nb : a.series_instance_uid < b.series_instance_uid;
  });
  study.number_of_series = static_cast<int64_t>(series.size());
  int64_t instances = 0;
  for (auto& s : series) instances += s.number_of_instances;
  if (study.number_of_instances == 0 || (instances > 0 && instances != study.number_of_instances))
    study.number_of_instances = instances;
  for (auto& s : series)
    if (!s.modality.empty() && std::find(study.modalities.begin(), study.modalities.end(),
                                         s.modality) == study.modalities.end())
      study.modalities.push_back(s.modality);
  study.series = std::move(series);
}

}  // namespace si::dicomweb
