#include "src/qido.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <tuple>

#include "src/text.h"

namespace si::qido {
namespace {

struct Keyword {
  const char* name;
  uint32_t tag;
};

// The keywords a QIDO client is likely to use as match keys or includefields;
// any other attribute can still be named by its tag.
constexpr Keyword kKeywords[] = {
    {"SpecificCharacterSet", 0x00080005},
    {"ImageType", 0x00080008},
    {"SOPClassUID", 0x00080016},
    {"SOPInstanceUID", 0x00080018},
    {"StudyDate", 0x00080020},
    {"SeriesDate", 0x00080021},
    {"AcquisitionDate", 0x00080022},
    {"ContentDate", 0x00080023},
    {"StudyTime", 0x00080030},
    {"SeriesTime", 0x00080031},
    {"AcquisitionTime", 0x00080032},
    {"ContentTime", 0x00080033},
    {"AccessionNumber", 0x00080050},
    {"InstanceAvailability", 0x00080056},
    {"Modality", 0x00080060},
    {"ModalitiesInStudy", 0x00080061},
    {"Manufacturer", 0x00080070},
    {"InstitutionName", 0x00080080},
    {"ReferringPhysicianName", 0x00080090},
    {"TimezoneOffsetFromUTC", 0x00080201},
    {"StationName", 0x00081010},
    {"StudyDescription", 0x00081030},
    {"SeriesDescription", 0x0008103E},
    {"PerformingPhysicianName", 0x00081050},
    {"OperatorsName", 0x00081070},
    {"ManufacturerModelName", 0x00081090},
    {"RetrieveURL", 0x00081190},
    {"PatientName", 0x00100010},
    {"PatientID", 0x00100020},
    {"IssuerOfPatientID", 0x00100021},
    {"PatientBirthDate", 0x00100030},
    {"PatientSex", 0x00100040},
    {"OtherPatientIDs", 0x00101000},
    {"PatientAge", 0x00101010},
    {"PatientWeight", 0x00101030},
    {"BodyPartExamined", 0x00180015},
    {"SliceThickness", 0x00180050},
    {"ProtocolName", 0x00181030},
    {"StudyInstanceUID", 0x0020000D},
    {"SeriesInstanceUID", 0x0020000E},
    {"StudyID", 0x00200010},
    {"SeriesNumber", 0x00200011},
    {"AcquisitionNumber", 0x00200012},
    {"InstanceNumber", 0x00200013},
    {"ImagePositionPatient", 0x00200032},
    {"ImageOrientationPatient", 0x00200037},
    {"FrameOfReferenceUID", 0x00200052},
    {"NumberOfStudyRelatedSeries", 0x00201206},
    {"NumberOfStudyRelatedInstances", 0x00201208},
    {"NumberOfSeriesRelatedInstances", 0x00201209},
    {"SamplesPerPixel", 0x00280002},
    {"PhotometricInterpretation", 0x00280004},
    {"NumberOfFrames", 0x00280008},
    {"Rows", 0x00280010},
    {"Columns", 0x00280011},
    {"PixelSpacing", 0x00280030},
    {"BitsAllocated", 0x00280100},
    {"BitsStored", 0x00280101},
    {"HighBit", 0x00280102},
    {"PixelRepresentation", 0x00280103},
    {"WindowCenter", 0x00281050},
    {"WindowWidth", 0x00281051},
    {"ScheduledProcedureStepID", 0x00400009},
    {"PerformedProcedureStepStartDate", 0x00400244},
    {"PerformedProcedureStepStartTime", 0x00400245},
    {"RequestAttributesSequence", 0x00400275},
    {"RequestedProcedureID", 0x00401001},
    {"ConceptNameCodeSequence", 0x0040A043},
    {"CompletionFlag", 0x0040A491},
    {"VerificationFlag", 0x0040A493},
    {"ContentLabel", 0x00700080},
};

constexpr uint32_t kSpecificCharacterSet = 0x00080005;
constexpr uint32_t kInstanceAvailability = 0x00080056;
constexpr uint32_t kModality = 0x00080060;
constexpr uint32_t kModalitiesInStudy = 0x00080061;
constexpr uint32_t kRetrieveUrl = 0x00081190;
constexpr uint32_t kStudyUid = 0x0020000D;
constexpr uint32_t kSeriesUid = 0x0020000E;
constexpr uint32_t kSopUid = 0x00080018;
constexpr uint32_t kSeriesNumber = 0x00200011;
constexpr uint32_t kInstanceNumber = 0x00200013;
constexpr uint32_t kStudySeriesCount = 0x00201206;
constexpr uint32_t kStudyInstanceCount = 0x00201208;
constexpr uint32_t kSeriesInstanceCount = 0x00201209;

// PS3.18 Tables 10.6.3-3/-4/-5: what every answer at a level carries when present.
const std::vector<uint32_t> kStudyDefaults = {
    0x00080005, 0x00080020, 0x00080030, 0x00080050, 0x00080056, 0x00080061,
    0x00080090, 0x00080201, 0x00081030, 0x00081190, 0x00100010, 0x00100020,
    0x00100030, 0x00100040, 0x0020000D, 0x00200010, 0x00201206, 0x00201208};
const std::vector<uint32_t> kSeriesDefaults = {
    0x00080005, 0x00080021, 0x00080031, 0x00080056, 0x00080060, 0x00080201, 0x0008103E, 0x00081190,
    0x0020000D, 0x0020000E, 0x00200011, 0x00201209, 0x00400244, 0x00400245, 0x00400275};
// Study and series identification too, as for a study-level instance query.
const std::vector<uint32_t> kInstanceDefaults = {
    0x00080005, 0x00080016, 0x00080018, 0x00080056, 0x00080060, 0x00080201, 0x00081190, 0x0020000D,
    0x0020000E, 0x00200011, 0x00200013, 0x00280008, 0x00280010, 0x00280011, 0x00280100};

bool IsHexTag(std::string_view s) {
  return s.size() == 8 &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isxdigit(c); });
}

std::string TagKey(uint32_t tag) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08X", tag);
  return buf;
}

Result<size_t> ParseCount(const std::string& name, const std::string& value) {
  if (value.empty() || value.size() > 9 ||
      !std::all_of(value.begin(), value.end(), [](unsigned char c) { return std::isdigit(c); }))
    return InvalidArgument(name + " must be a non-negative integer");
  return static_cast<size_t>(std::stoul(value));
}

// One parsed instance: its attributes by tag, pointing into its document.
struct Instance {
  rapidjson::Document doc;
  std::map<uint32_t, const rapidjson::Value*> attrs;
};

const rapidjson::Value* Find(const Instance& i, uint32_t tag) {
  auto it = i.attrs.find(tag);
  return it == i.attrs.end() ? nullptr : it->second;
}

std::string Vr(const rapidjson::Value& attr) {
  auto it = attr.FindMember("vr");
  return it != attr.MemberEnd() && it->value.IsString() ? it->value.GetString() : "";
}

// The attribute's values as text: numbers as written, PN as the alphabetic group.
std::vector<std::string> TextValues(const rapidjson::Value& attr) {
  std::vector<std::string> out;
  auto it = attr.FindMember("Value");
  if (it == attr.MemberEnd() || !it->value.IsArray()) return out;
  for (auto& v : it->value.GetArray()) {
    if (v.IsString()) {
      std::string s = v.GetString();
      while (!s.empty() && s.back() == ' ') s.pop_back();
      out.push_back(std::move(s));
    } else if (v.IsInt64()) {
      out.push_back(std::to_string(v.GetInt64()));
    } else if (v.IsNumber()) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.17g", v.GetDouble());
      out.push_back(buf);
    } else if (v.IsObject()) {
      auto a = v.FindMember("Alphabetic");
      out.push_back(a != v.MemberEnd() && a->value.IsString() ? a->value.GetString() : "");
    }
  }
  return out;
}

std::optional<int64_t> IntOf(const Instance& i, uint32_t tag) {
  const rapidjson::Value* a = Find(i, tag);
  if (!a) return std::nullopt;
  auto values = TextValues(*a);
  if (values.empty()) return std::nullopt;
  try {
    return std::stoll(values.front());
  } catch (...) {
    return std::nullopt;
  }
}

std::string FirstText(const Instance& i, uint32_t tag) {
  const rapidjson::Value* a = Find(i, tag);
  if (!a) return "";
  auto values = TextValues(*a);
  return values.empty() ? "" : values.front();
}

bool Glob(std::string_view pattern, std::string_view value) {
  // Iterative '*'/'?' matching with backtracking to the last star.
  size_t p = 0, v = 0, star = std::string_view::npos, mark = 0;
  while (v < value.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == value[v])) {
      ++p;
      ++v;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = v;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      v = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool ValueMatches(const std::string& vr, std::string value, std::string key, bool fuzzy) {
  if (vr == "PN" && fuzzy) {
    value = text::ToLower(value);
    key = text::ToLower(key);
  }
  if ((vr == "DA" || vr == "TM" || vr == "DT") && key.find('-') != std::string::npos &&
      key.find_first_of("*?") == std::string::npos) {
    auto dash = key.find('-');
    std::string lo = key.substr(0, dash), hi = key.substr(dash + 1);
    if (!lo.empty() && value.compare(0, lo.size(), lo) < 0) return false;
    if (!hi.empty() && value.compare(0, hi.size(), hi) > 0) return false;
    return true;
  }
  if (key.find_first_of("*?") != std::string::npos) return Glob(key, value);
  return value == key;
}

// Whether an attribute (absent: nullptr) matches a key value.
bool AttrMatches(const rapidjson::Value* attr, const std::string& key, bool fuzzy) {
  if (key.empty()) return true;
  if (!attr) return false;
  std::string vr = Vr(*attr);
  std::vector<std::string> alternatives;
  if (vr == "UI" || vr == "CS") {
    for (auto& part : text::Split(key, ','))
      for (auto& uid : text::Split(part, '\\')) alternatives.push_back(text::Trim(uid));
  } else {
    alternatives.push_back(key);
  }
  for (auto& value : TextValues(*attr))
    for (auto& alt : alternatives)
      if (ValueMatches(vr, value, alt, fuzzy)) return true;
  return false;
}

using Doc = rapidjson::Document;
using Alloc = rapidjson::Document::AllocatorType;

rapidjson::Value MakeAttr(const char* vr, rapidjson::Value values, Alloc& a) {
  rapidjson::Value attr(rapidjson::kObjectType);
  attr.AddMember("vr", rapidjson::Value(vr, a), a);
  attr.AddMember("Value", std::move(values), a);
  return attr;
}

rapidjson::Value StringsAttr(const char* vr, const std::vector<std::string>& values, Alloc& a) {
  rapidjson::Value array(rapidjson::kArrayType);
  for (auto& v : values) array.PushBack(rapidjson::Value(v.c_str(), a), a);
  return MakeAttr(vr, std::move(array), a);
}

rapidjson::Value CountAttr(int64_t n, Alloc& a) {
  rapidjson::Value array(rapidjson::kArrayType);
  array.PushBack(rapidjson::Value(n), a);
  return MakeAttr("IS", std::move(array), a);
}

bool IsBulk(const rapidjson::Value& attr) {
  return attr.IsObject() && (attr.HasMember("BulkDataURI") || attr.HasMember("InlineBinary"));
}

// One answer: a study, a series or an instance, with the instances it covers.
struct Group {
  std::vector<const Instance*> members;  // sorted; members.front() represents the group
  std::map<uint32_t, rapidjson::Value> computed;
};

}  // namespace

std::optional<uint32_t> TagOf(std::string_view s) {
  if (IsHexTag(s)) return static_cast<uint32_t>(std::stoul(std::string(s), nullptr, 16));
  for (auto& k : kKeywords)
    if (s == k.name) return k.tag;
  return std::nullopt;
}

Result<Query> ParseQuery(Level level, const ParamList& params) {
  Query q;
  q.level = level;
  for (auto& [name, value] : params) {
    if (name == "includefield") {
      for (auto& field : text::Split(value, ',')) {
        std::string f = text::Trim(field);
        if (f.empty()) continue;
        if (f == "all") {
          q.include_all = true;
          continue;
        }
        auto tag = TagOf(f);
        if (!tag) return InvalidArgument("includefield: unknown attribute '" + f + "'");
        q.include.insert(*tag);
      }
    } else if (name == "limit") {
      auto n = ParseCount("limit", value);
      if (!n.ok()) return n.status();
      q.limit = *n;
    } else if (name == "offset") {
      auto n = ParseCount("offset", value);
      if (!n.ok()) return n.status();
      q.offset = *n;
    } else if (name == "fuzzymatching") {
      if (value != "true" && value != "false")
        return InvalidArgument("fuzzymatching must be true or false");
      q.fuzzy = value == "true";
    } else {
      auto tag = TagOf(name);
      if (!tag)
        return InvalidArgument("unknown query parameter '" + name +
                               "': use an attribute keyword or tag");
      q.keys.push_back({*tag, value});
    }
  }
  return q;
}

bool ExcludesStudy(const Query& query, const std::string& study_uid) {
  rapidjson::Document attr;
  attr.SetObject();
  attr.AddMember("vr", "UI", attr.GetAllocator());
  rapidjson::Value values(rapidjson::kArrayType);
  values.PushBack(rapidjson::Value(study_uid.c_str(), attr.GetAllocator()), attr.GetAllocator());
  attr.AddMember("Value", values, attr.GetAllocator());
  for (auto& key : query.keys)
    if (key.tag == kStudyUid && !AttrMatches(&attr, key.value, query.fuzzy)) return true;
  return false;
}

Result<std::vector<std::string>> SplitArray(std::string_view json) {
  Doc doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsArray())
    return Status(ErrorCode::kBadGateway, "metadata is not a JSON array");
  std::vector<std::string> out;
  for (auto& v : doc.GetArray()) {
    if (!v.IsObject()) return Status(ErrorCode::kBadGateway, "metadata holds a non-object");
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    v.Accept(w);
    out.emplace_back(sb.GetString(), sb.GetSize());
  }
  return out;
}

Result<std::string> BuildResponse(const Query& query, const std::vector<std::string>& objects,
                                  const std::string& retrieve_root) {
  std::vector<Instance> instances(objects.size());
  for (size_t k = 0; k < objects.size(); ++k) {
    Instance& i = instances[k];
    i.doc.Parse(objects[k].data(), objects[k].size());
    if (i.doc.HasParseError() || !i.doc.IsObject())
      return Status(ErrorCode::kBadGateway, "instance metadata is not a DICOM JSON object");
    for (auto& m : i.doc.GetObject()) {
      std::string_view key(m.name.GetString(), m.name.GetStringLength());
      if (IsHexTag(key) && m.value.IsObject())
        i.attrs[static_cast<uint32_t>(std::stoul(std::string(key), nullptr, 16))] = &m.value;
    }
  }
  std::vector<const Instance*> sorted;
  for (auto& i : instances)
    if (!query.series_uid || FirstText(i, kSeriesUid) == *query.series_uid) sorted.push_back(&i);
  std::stable_sort(sorted.begin(), sorted.end(), [](const Instance* a, const Instance* b) {
    auto key = [](const Instance* i) {
      return std::make_tuple(
          IntOf(*i, kSeriesNumber).value_or(INT64_MAX), FirstText(*i, kSeriesUid),
          IntOf(*i, kInstanceNumber).value_or(INT64_MAX), FirstText(*i, kSopUid));
    };
    return key(a) < key(b);
  });

  Doc out(rapidjson::kArrayType);
  Alloc& a = out.GetAllocator();

  // Group by the level's identity, keeping the sorted order.
  std::vector<Group> groups;
  {
    std::map<std::string, size_t> index;
    for (const Instance* i : sorted) {
      std::string id = query.level == Level::kStudy    ? FirstText(*i, kStudyUid)
                       : query.level == Level::kSeries ? FirstText(*i, kSeriesUid)
                                                       : FirstText(*i, kSopUid);
      auto [it, inserted] = index.emplace(id, groups.size());
      if (inserted) groups.emplace_back();
      groups[it->second].members.push_back(i);
    }
  }
  for (Group& g : groups) {
    const Instance& rep = *g.members.front();
    std::string study = FirstText(rep, kStudyUid);
    std::string url = retrieve_root + "studies/" + study;
    if (query.level == Level::kStudy) {
      std::set<std::string> modalities, series;
      for (auto* m : g.members) {
        if (auto mod = FirstText(*m, kModality); !mod.empty()) modalities.insert(mod);
        series.insert(FirstText(*m, kSeriesUid));
      }
      g.computed[kModalitiesInStudy] = StringsAttr("CS", {modalities.begin(), modalities.end()}, a);
      g.computed[kStudySeriesCount] = CountAttr(static_cast<int64_t>(series.size()), a);
      g.computed[kStudyInstanceCount] = CountAttr(static_cast<int64_t>(g.members.size()), a);
    } else {
      url += "/series/" + FirstText(rep, kSeriesUid);
      if (query.level == Level::kSeries)
        g.computed[kSeriesInstanceCount] = CountAttr(static_cast<int64_t>(g.members.size()), a);
      else
        url += "/instances/" + FirstText(rep, kSopUid);
    }
    g.computed[kRetrieveUrl] = StringsAttr("UR", {url}, a);
    g.computed[kInstanceAvailability] = StringsAttr("CS", {"ONLINE"}, a);
  }

  // A group matches when, for every key, its computed value or one of its instances does.
  std::vector<Group*> matching;
  for (Group& g : groups) {
    bool ok = true;
    for (auto& key : query.keys) {
      auto c = g.computed.find(key.tag);
      if (c != g.computed.end()) {
        ok = AttrMatches(&c->second, key.value, query.fuzzy);
      } else {
        ok = std::any_of(g.members.begin(), g.members.end(), [&](const Instance* m) {
          return AttrMatches(Find(*m, key.tag), key.value, query.fuzzy);
        });
      }
      if (!ok) break;
    }
    if (ok) matching.push_back(&g);
  }

  const std::vector<uint32_t>& defaults = query.level == Level::kStudy    ? kStudyDefaults
                                          : query.level == Level::kSeries ? kSeriesDefaults
                                                                          : kInstanceDefaults;
  size_t begin = std::min(query.offset, matching.size());
  size_t end = begin + std::min(query.limit, matching.size() - begin);
  for (size_t k = begin; k < end; ++k) {
    Group& g = *matching[k];
    const Instance& rep = *g.members.front();
    std::set<uint32_t> wanted(defaults.begin(), defaults.end());
    wanted.insert(query.include.begin(), query.include.end());
    for (auto& key : query.keys) wanted.insert(key.tag);  // matched keys are returned too
    if (query.include_all)
      for (auto& [tag, attr] : rep.attrs) wanted.insert(tag);
    wanted.insert(kSpecificCharacterSet);
    rapidjson::Value object(rapidjson::kObjectType);
    for (uint32_t tag : wanted) {
      rapidjson::Value value;
      if (auto c = g.computed.find(tag); c != g.computed.end()) {
        value.CopyFrom(c->second, a);
      } else if (const rapidjson::Value* attr = Find(rep, tag); attr && !IsBulk(*attr)) {
        value.CopyFrom(*attr, a);
      } else {
        continue;
      }
      object.AddMember(rapidjson::Value(TagKey(tag).c_str(), a), std::move(value), a);
    }
    out.PushBack(std::move(object), a);
  }
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  out.Accept(w);
  return std::string(sb.GetString(), sb.GetSize());
}

}  // namespace si::qido
