#include "src/dicomweb_source.h"

#include <rapidjson/document.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>

#include "src/dicomweb_json.h"
#include "src/log.h"
#include "src/text.h"

namespace si {
namespace {

constexpr size_t kMaxQidoBytes = 64 * 1024 * 1024;
constexpr const char* kDicomJson = "application/dicom+json";

std::string Base64(std::string_view in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s : {18, 12, 6, 0}) out += kAlphabet[(v >> s) & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

// Collects a QIDO-RS answer (bounded); the body of an error answer is dropped
// (it is the upstream's, and never reaches our clients or logs).
class BodyCollector final : public HttpStreamHandler {
 public:
  Status OnHead(int status, const std::vector<std::pair<std::string, std::string>>&) override {
    status_ = status;
    return Status::Ok();
  }
  Status OnBody(std::string_view data) override {
    if (status_ < 200 || status_ >= 300) return Status::Ok();
    if (body_.size() + data.size() > kMaxQidoBytes)
      return Status(ErrorCode::kBadGateway, "the DICOMweb server's QIDO-RS answer exceeds 64 MiB");
    body_.append(data);
    return Status::Ok();
  }
  int status() const { return status_; }
  std::string& body() { return body_; }

 private:
  int status_ = 0;
  std::string body_;
};

std::string ScopePath(const RetrieveScope& scope) {
  std::string p = "/studies/" + scope.study_uid;
  if (scope.series_uid) p += "/series/" + *scope.series_uid;
  if (scope.sop_uid) p += "/instances/" + *scope.sop_uid;
  return p;
}

}  // namespace

Result<DicomWebSettings> ParseDicomWebSettings(const TenantConfig& tenant) {
  rapidjson::Document doc;
  doc.Parse(tenant.source_json.data(), tenant.source_json.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("images") ||
      !doc["images"].IsObject())
    return InvalidConfig("tenant " + tenant.name + ": images is not an object");
  const auto& images = doc["images"];
  DicomWebSettings s;
  s.root = tenant.endpoint;
  while (!s.root.empty() && s.root.back() == '/') s.root.pop_back();
  auto str = [](const rapidjson::Value& o, const char* k) -> std::string {
    auto it = o.FindMember(k);
    return it != o.MemberEnd() && it->value.IsString()
               ? std::string(it->value.GetString(), it->value.GetStringLength())
               : "";
  };
  const std::string where = "tenant " + tenant.name + ": at /images/authentication: ";
  if (images.HasMember("authentication") && images["authentication"].IsObject()) {
    const auto& a = images["authentication"];
    std::string type = str(a, "type");
    if (type == "http-basic") {
      if (!a.HasMember("username")) return InvalidConfig(where + "http-basic needs a username");
      s.authorization = "Basic " + Base64(str(a, "username") + ":" + str(a, "password"));
    } else if (type == "bearer") {
      if (str(a, "token").empty()) return InvalidConfig(where + "bearer needs a token");
      s.authorization = "Bearer " + str(a, "token");
    }
  }
  if (images.HasMember("delay") && images["delay"].IsObject()) {
    const auto& d = images["delay"];
    if (d.HasMember("lookupUntil") && d["lookupUntil"].IsNumber())
      s.lookup_until = d["lookupUntil"].GetDouble();
    if (d.HasMember("retrieveUntil") && d["retrieveUntil"].IsNumber())
      s.retrieve_until = d["retrieveUntil"].GetDouble();
  }
  if (images.HasMember("queryConcurrency") && images["queryConcurrency"].IsInt())
    s.query_concurrency = std::max(1, images["queryConcurrency"].GetInt());
  if (images.HasMember("timeoutSeconds") && images["timeoutSeconds"].IsNumber())
    s.timeout = std::chrono::milliseconds(
        static_cast<int64_t>(std::max(0.1, images["timeoutSeconds"].GetDouble()) * 1000));
  if (images.HasMember("cache") && images["cache"].IsBool())
    s.cache_requested = images["cache"].GetBool();
  s.patient_ids_needed = tenant.lookup == Lookup::kStudiesByMrn;
  return s;
}

int64_t DelayRetryAfter(std::optional<double> until, int64_t now_seconds) {
  if (!until || !std::isfinite(*until)) return 0;
  double left = *until - static_cast<double>(now_seconds);
  if (left <= 0) return 0;
  if (left > 9e15) return static_cast<int64_t>(9e15);
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(left)));
}

std::string StreamingReplacer::Feed(std::string_view data) {
  pending_.append(data);
  if (from_.empty()) return std::exchange(pending_, "");
  std::string out;
  size_t pos = 0;
  for (;;) {
    size_t hit = pending_.find(from_, pos);
    if (hit == std::string::npos) break;
    out.append(pending_, pos, hit - pos);
    out += to_;
    pos = hit + from_.size();
  }
  // Keep only what could still become a match: the longest tail that begins from_.
  size_t keep = std::min(pending_.size() - pos, from_.size() - 1);
  while (keep > 0 && pending_.compare(pending_.size() - keep, keep, from_, 0, keep) != 0) --keep;
  size_t keep_from = pending_.size() - keep;
  out.append(pending_, pos, keep_from - pos);
  pending_.erase(0, keep_from);
  return out;
}

std::string StreamingReplacer::Finish() { return std::exchange(pending_, ""); }

Status StatusForUpstream(int http_status, const std::string& host, bool client_accept) {
  const std::string who = "the DICOMweb server " + host;
  switch (http_status) {
    case 404:
    case 410:
      return NotFound("not found on " + who);
    case 400:
    case 406:
    case 415:
      if (client_accept)
        return NotAcceptable(who + " cannot serve the requested media type (HTTP " +
                             std::to_string(http_status) + ")");
      return Status(ErrorCode::kBadGateway,
                    who + " refused the request (HTTP " + std::to_string(http_status) + ")");
    case 401:
    case 403:
      return Status(ErrorCode::kBadGateway,
                    who + " refused our credentials (HTTP " + std::to_string(http_status) + ")");
    case 429:
    case 503:
      return Unavailable(who + " is busy or unavailable (HTTP " + std::to_string(http_status) +
                         ")");
    case 504:
      return Status(ErrorCode::kGatewayTimeout, who + " timed out (HTTP 504)");
    default:
      return Status(ErrorCode::kBadGateway, who + " answered HTTP " + std::to_string(http_status));
  }
}

DicomWebSource::DicomWebSource(DicomWebSettings settings, std::shared_ptr<HttpClient> client,
                               const Clock& clock)
    : settings_(std::move(settings)),
      client_(std::move(client)),
      clock_(clock),
      host_(HostPortOf(settings_.root)) {
  if (settings_.cache_requested)
    log::Warn(
        "dicomweb",
        host_ + ": images.cache is not implemented in this version; every read goes to the server");
}

HttpClientRequest DicomWebSource::Request(const std::string& rel, const std::string& accept) const {
  HttpClientRequest r;
  r.url = settings_.root + rel;
  r.timeout = settings_.timeout;
  if (!accept.empty()) r.headers.emplace_back("Accept", accept);
  if (!settings_.authorization.empty())
    r.headers.emplace_back("Authorization", settings_.authorization);
  return r;
}

Status DicomWebSource::CheckDelay(const std::optional<double>& until, const char* what) const {
  int64_t wait = DelayRetryAfter(until, clock_.NowSeconds());
  if (wait == 0) return Status::Ok();
  return Unavailable(std::string(what) + " are not available yet; retry in " +
                     std::to_string(wait) + " s")
      .WithRetryAfter(wait);
}

Result<std::string> DicomWebSource::Query(const std::string& rel) const {
  BodyCollector collector;
  Status s = client_->Stream(Request(rel, kDicomJson), collector);
  if (!s.ok()) {
    log::Warn("dicomweb", "QIDO-RS to " + host_ + " failed: " + s.message());
    return s;
  }
  if (collector.status() == 204) return std::string();
  if (collector.status() < 200 || collector.status() >= 300) {
    Status mapped = StatusForUpstream(collector.status(), host_, false);
    if (mapped.code() != ErrorCode::kNotFound)
      log::Warn("dicomweb",
                "QIDO-RS to " + host_ + " answered HTTP " + std::to_string(collector.status()));
    return mapped;
  }
  return std::move(collector.body());
}

Result<std::vector<StudyRecord>> DicomWebSource::FindStudies(const StudyQuery& query) const {
  SI_RETURN_IF_ERROR(CheckDelay(settings_.lookup_until, "studies"));
  std::string rel = "/studies?" + dicomweb::StudyIncludeFields();
  if (query.patient_id) rel += "&PatientID=" + text::PercentEncode(*query.patient_id);
  if (query.study_instance_uid)
    rel += "&StudyInstanceUID=" + text::PercentEncode(*query.study_instance_uid);
  auto body = Query(rel);
  if (!body.ok()) return body.status();
  auto studies = dicomweb::ParseStudies(*body);
  if (!studies.ok()) return studies.status();
  // QIDO matching treats '*' and '?' as wildcards and may be fuzzy or case-blind:
  // only exact matches are this patient's (or this study).
  std::vector<StudyRecord> found;
  for (auto& s : *studies) {
    if (query.patient_id && s.patient_id != *query.patient_id) continue;
    if (query.study_instance_uid && s.study_instance_uid != *query.study_instance_uid) continue;
    found.push_back(std::move(s));
  }
  if (!query.include_series || found.empty()) return found;

  // The series of every study: concurrently, at most query_concurrency in flight,
  // each worker reusing pooled keep-alive connections.
  std::vector<Status> errors(found.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < found.size();) {
      auto series = Query("/studies/" + found[i].study_instance_uid + "/series?" +
                          dicomweb::SeriesIncludeFields());
      if (!series.ok()) {
        // A study removed between the two queries has no series: it is left out.
        errors[i] = series.status();
        continue;
      }
      auto parsed = dicomweb::ParseSeries(*series);
      if (!parsed.ok()) {
        errors[i] = parsed.status();
        continue;
      }
      dicomweb::AttachSeries(found[i], std::move(parsed).value());
    }
  };
  size_t workers = std::min<size_t>(found.size(), static_cast<size_t>(settings_.query_concurrency));
  std::vector<std::thread> threads;
  for (size_t w = 1; w < workers; ++w) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();

  std::vector<StudyRecord> out;
  for (size_t i = 0; i < found.size(); ++i) {
    if (errors[i].code() == ErrorCode::kNotFound) continue;
    if (!errors[i].ok()) return errors[i];  // a partial answer would misstate the studies
    out.push_back(std::move(found[i]));
  }
  return out;
}

Result<std::vector<StoredInstance>> DicomWebSource::PlanRetrieval(
    const RetrieveScope& scope) const {
  SI_RETURN_IF_ERROR(CheckDelay(settings_.retrieve_until, "images"));
  if (!settings_.patient_ids_needed && !scope.sop_uid) return Exists(scope);
  std::string rel = "/studies/" + scope.study_uid;
  if (scope.series_uid) rel += "/series/" + *scope.series_uid;
  rel += "/instances?" + dicomweb::InstanceIncludeFields();
  if (scope.sop_uid) rel += "&SOPInstanceUID=" + *scope.sop_uid;
  auto body = Query(rel);
  const char* what = scope.sop_uid ? "instance" : scope.series_uid ? "series" : "study";
  if (!body.ok()) {
    if (body.status().code() == ErrorCode::kNotFound)
      return NotFound(std::string(what) + " not found");
    return body.status();
  }
  auto instances = dicomweb::ParseInstances(*body);
  if (!instances.ok()) return instances.status();
  // A server that ignores a filter must not widen the scope.
  std::vector<StoredInstance> plan;
  for (auto& i : *instances) {
    if (!i.study_uid.empty() && i.study_uid != scope.study_uid) continue;
    if (scope.series_uid && !i.series_uid.empty() && i.series_uid != *scope.series_uid) continue;
    if (scope.sop_uid && i.sop_instance_uid != *scope.sop_uid) continue;
    if (i.study_uid.empty()) i.study_uid = scope.study_uid;
    if (i.series_uid.empty() && scope.series_uid) i.series_uid = *scope.series_uid;
    plan.push_back(std::move(i));
  }
  if (plan.empty()) return NotFound(std::string(what) + " not found");
  return plan;
}

Result<std::vector<StoredInstance>> DicomWebSource::Exists(const RetrieveScope& scope) const {
  StoredInstance row;
  row.study_uid = scope.study_uid;
  if (scope.series_uid) {
    auto body =
        Query("/studies/" + scope.study_uid + "/series?SeriesInstanceUID=" + *scope.series_uid);
    if (!body.ok() && body.status().code() != ErrorCode::kNotFound) return body.status();
    auto series = body.ok() ? dicomweb::ParseSeries(*body)
                            : Result<std::vector<SeriesRecord>>(std::vector<SeriesRecord>{});
    if (!series.ok()) return series.status();
    bool found = std::any_of(series->begin(), series->end(), [&](const SeriesRecord& r) {
      return r.series_instance_uid == *scope.series_uid;
    });
    if (!found) return NotFound("series not found");
    row.series_uid = *scope.series_uid;
  } else {
    auto body = Query("/studies?StudyInstanceUID=" + scope.study_uid + "&includefield=00100020");
    if (!body.ok() && body.status().code() != ErrorCode::kNotFound) return body.status();
    auto studies = body.ok() ? dicomweb::ParseStudies(*body)
                             : Result<std::vector<StudyRecord>>(std::vector<StudyRecord>{});
    if (!studies.ok()) return studies.status();
    auto it = std::find_if(studies->begin(), studies->end(), [&](const StudyRecord& r) {
      return r.study_instance_uid == scope.study_uid;
    });
    if (it == studies->end()) return NotFound("study not found");
    row.patient_id = it->patient_id;
  }
  return std::vector<StoredInstance>{row};
}

Status DicomWebSource::Retrieve(const std::vector<StoredInstance>&, InstanceSink&) const {
  return NotImplemented("DICOMweb sources pass responses through");
}

Result<std::vector<std::string>> DicomWebSource::Metadata(const RetrieveScope&) const {
  return NotImplemented("DICOMweb sources pass responses through");
}

namespace {

// Forwards the upstream head (Content-Type only) and body; metadata has the
// upstream's own URLs (BulkDataURI, RetrieveURL) rewritten to our WADO root.
class Forwarder final : public HttpStreamHandler {
 public:
  Forwarder(PassThroughSink& sink, std::string host, bool client_accept,
            std::optional<StreamingReplacer> rewrite)
      : sink_(sink),
        host_(std::move(host)),
        client_accept_(client_accept),
        rewrite_(std::move(rewrite)) {}
  Status OnHead(int status,
                const std::vector<std::pair<std::string, std::string>>& headers) override {
    if (status < 200 || status >= 300 || status == 204) {
      if (status == 204) return NotFound("no content on the DICOMweb server " + host_);
      return StatusForUpstream(status, host_, client_accept_);
    }
    std::vector<std::pair<std::string, std::string>> forward;
    for (auto& [k, v] : headers)
      if (k == "content-type") forward.emplace_back("Content-Type", v);
    if (forward.empty())
      return Status(ErrorCode::kBadGateway,
                    "the DICOMweb server " + host_ + " sent no Content-Type");
    head_sent_ = true;
    return sink_.OnHead(status, forward);
  }
  Status OnBody(std::string_view data) override {
    if (!rewrite_) return sink_.OnBody(data);
    std::string out = rewrite_->Feed(data);
    return out.empty() ? Status::Ok() : sink_.OnBody(out);
  }
  Status Finish() {
    if (!rewrite_ || !head_sent_) return Status::Ok();
    std::string tail = rewrite_->Finish();
    return tail.empty() ? Status::Ok() : sink_.OnBody(tail);
  }
  bool head_sent() const { return head_sent_; }

 private:
  PassThroughSink& sink_;
  std::string host_;
  bool client_accept_;
  std::optional<StreamingReplacer> rewrite_;
  bool head_sent_ = false;
};

}  // namespace

Status DicomWebSource::PassThrough(const PassThroughRequest& request, PassThroughSink& sink) const {
  SI_RETURN_IF_ERROR(CheckDelay(settings_.retrieve_until, "images"));
  const bool metadata = request.suffix == "metadata";
  const bool rendered =
      request.suffix.ends_with("rendered") || request.suffix.ends_with("thumbnail");
  const bool octets = !rendered && (request.suffix.rfind("frames/", 0) == 0 ||
                                    request.suffix.rfind("bulk/", 0) == 0);
  std::string accept = text::Trim(request.accept);
  const bool client_accept = !accept.empty() && accept != "*/*";
  if (!client_accept) {
    // As stored, like the folder source: without transfer-syntax=* a server transcodes
    // to Explicit VR Little Endian.
    accept = metadata   ? kDicomJson
             : rendered ? "image/jpeg"
             : octets   ? "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*"
                        : "multipart/related; type=\"application/dicom\"; transfer-syntax=*";
  }
  std::string rel = ScopePath(request.scope) + (request.suffix.empty() ? "" : "/" + request.suffix);
  if (rendered) {
    // Only the rendering parameters go upstream, and only plain values.
    std::string query;
    for (auto& [name, value] : text::ParseQueryString(request.query)) {
      if (name != "viewport" && name != "quality" && name != "window") continue;
      bool plain = std::all_of(value.begin(), value.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == ',' || c == '.' || c == '-';
      });
      if (plain) query += (query.empty() ? "?" : "&") + name + "=" + value;
    }
    rel += query;
  }
  std::optional<StreamingReplacer> rewrite;
  if (metadata && !request.public_root.empty())
    rewrite.emplace(settings_.root + "/", request.public_root);
  Forwarder forwarder(sink, host_, client_accept, std::move(rewrite));
  Status s = client_->Stream(Request(rel, accept), forwarder);
  if (s.ok()) s = forwarder.Finish();
  if (!s.ok() && s.code() != ErrorCode::kNotFound && s.code() != ErrorCode::kNotAcceptable)
    log::Warn("dicomweb", "WADO-RS from " + host_ +
                              (forwarder.head_sent() ? " broke off: " : " failed: ") + s.message());
  return s;
}

}  // namespace si
