#include "facade/facade.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cstring>
#include <memory>
#include <random>
#include <set>

#include "facade/facade_internal.h"
#include "schema/fhir_resources.h"
#include "src/accept.h"
#include "src/log.h"
#include "src/pixel_params.h"
#include "src/text.h"

namespace si::facade {
namespace {

constexpr const char* kFhirJson = "application/fhir+json; charset=utf-8";

struct Route {
  std::shared_ptr<const Tenant> tenant;
  std::vector<std::string> rest;  // segments after the tenant prefix
};

// Integer seconds, as RFC 9110 wants: the status's own (a delayed tenant), else 5.
std::string RetryAfterOf(const Status& status) {
  return std::to_string(status.retry_after_seconds() > 0 ? status.retry_after_seconds() : 5);
}

void SendFhirError(const HttpRequest& request, ResponseChannel& out, const Status& status) {
  HeaderList h = CorsHeaders(request);
  h.emplace_back("Content-Type", kFhirJson);
  if (status.code() == ErrorCode::kUnauthorized) h.emplace_back("WWW-Authenticate", "Bearer");
  if (status.code() == ErrorCode::kUnavailable) h.emplace_back("Retry-After", RetryAfterOf(status));
  out.SendWhole(status.http_status(), h, schema::OperationOutcome(status)).ok();
}

// Writes instance files as multipart parts, or with no boundary the one instance
// of a single-part application/dicom answer.
class MultipartSink final : public InstanceSink {
 public:
  // The head goes out with the first instance, so a source that fails before
  // delivering anything still gets a proper error status instead of a cut 200.
  MultipartSink(ResponseChannel& out, std::string boundary, HeaderList head)
      : out_(out), boundary_(std::move(boundary)), head_(std::move(head)) {}
  bool started() const { return started_; }
  Status Start() {
    if (started_) return Status::Ok();
    started_ = true;
    return out_.BeginChunked(200, head_);
  }
  Status OnInstance(const StoredInstance& instance) override {
    int fd = ::open(instance.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return IoError("instance file vanished");
    struct stat st {};
    if (::fstat(fd, &st) != 0 || st.st_size != instance.size_bytes) {
      ::close(fd);
      return IoError("instance file changed before it was sent");
    }
    if (Status s = Start(); !s.ok()) {
      ::close(fd);
      return s;
    }
    // The part head follows the previous part's closing CRLF in one write.
    std::string head = boundary_.empty()
                           ? std::string()
                           : std::string(parts_ > 0 ? "\r\n" : "") + "--" + boundary_ +
                                 "\r\nContent-Type: application/dicom; transfer-syntax=" +
                                 instance.transfer_syntax_uid +
                                 "\r\nContent-Length: " + std::to_string(instance.size_bytes) +
                                 "\r\n\r\n";
    // The file's bytes go from the page cache to the socket (sendfile): no copy
    // through this process.
    Status status = out_.WriteFileChunk(head, fd, 0, static_cast<size_t>(instance.size_bytes));
    ::close(fd);
    if (status.ok()) ++parts_;
    return status;
  }
  // What ends the body after the last part: its CRLF and the closing boundary.
  std::string Closing() const {
    if (boundary_.empty()) return {};
    return (parts_ > 0 ? "\r\n--" : "--") + boundary_ + "--\r\n";
  }
  int parts() const { return parts_; }

 private:
  ResponseChannel& out_;
  std::string boundary_;
  HeaderList head_;
  bool started_ = false;
  int parts_ = 0;
};

// Writes a response a source passes through from its upstream, as it arrives.
class PassThroughWriter final : public PassThroughSink {
 public:
  PassThroughWriter(ResponseChannel& out, HeaderList head) : out_(out), head_(std::move(head)) {}
  Status OnHead(int status,
                const std::vector<std::pair<std::string, std::string>>& headers) override {
    for (auto& h : headers) head_.push_back(h);
    started_ = true;
    return out_.BeginChunked(status, head_);
  }
  Status OnBody(std::string_view bytes) override {
    return bytes.empty() ? Status::Ok() : out_.WriteChunk(bytes);
  }
  bool started() const { return started_; }

 private:
  ResponseChannel& out_;
  HeaderList head_;
  bool started_ = false;
};

}  // namespace

HeaderList CorsHeaders(const HttpRequest& request) {
  HeaderList h;
  std::string origin = request.Header("origin");
  if (!origin.empty()) {
    h.emplace_back("Access-Control-Allow-Origin", origin);
    h.emplace_back("Vary", "Origin");
    h.emplace_back("Access-Control-Expose-Headers",
                   "Content-Type, Content-Length, Content-Location, Retry-After, Link");
  }
  return h;
}

// DICOMweb has no error body format of its own; a small JSON object says what
// went wrong without leaking anything about tokens or other studies.
void SendWadoError(const HttpRequest& request, ResponseChannel& out, const Status& status) {
  HeaderList h = CorsHeaders(request);
  h.emplace_back("Content-Type", "application/json; charset=utf-8");
  if (status.code() == ErrorCode::kUnauthorized) h.emplace_back("WWW-Authenticate", "Bearer");
  if (status.code() == ErrorCode::kUnavailable) h.emplace_back("Retry-After", RetryAfterOf(status));
  rapidjson::StringBuffer sb;
  schema::JsonWriter w(sb);
  w.StartObject();
  w.Key("status");
  w.Int(status.http_status());
  w.Key("error");
  w.String(InfoFor(status.code()).name);
  w.Key("message");
  std::string m = text::SanitizeUtf8(status.message());
  w.String(m.c_str());
  w.EndObject();
  out.SendWhole(status.http_status(), h, sb.GetString()).ok();
}

AuthRequest AuthOf(const HttpRequest& request) {
  AuthRequest auth;
  std::string h = text::Trim(request.Header("authorization"));
  if (h.size() > 7 && text::ToLower(h.substr(0, 7)) == "bearer ")
    auth.bearer_token = text::Trim(h.substr(7));
  return auth;
}

std::string RandomBoundary() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* kHex = "0123456789abcdef";
  std::string b = "si-";
  for (int i = 0; i < 32; ++i) b += kHex[rng() & 15];
  return b;
}

std::string Facade::RedactForLog(std::string_view raw_path) {
  std::string path(raw_path.substr(0, raw_path.find('?')));
  auto segments = text::Split(path, '/');
  for (size_t i = 0; i + 1 < segments.size(); ++i) {
    if (segments[i] == "wado") segments[i + 1] = "{token}";
    if (segments[i] == "dyn" && i == 1) segments[i + 1] = "{config}";
  }
  std::string out;
  for (size_t i = 0; i < segments.size(); ++i) out += (i ? "/" : "") + segments[i];
  if (raw_path.find('?') != std::string_view::npos) out += "?{query}";
  return out;
}

void Facade::Handle(HttpRequest& request, ResponseChannel& out) const {
  auto segments = text::Split(request.path, '/');
  // "/a/b" splits as ["", "a", "b"]; drop the leading and any trailing empty segment.
  if (!segments.empty() && segments.front().empty()) segments.erase(segments.begin());
  if (!segments.empty() && segments.back().empty()) segments.pop_back();

  if (request.method == "OPTIONS") {
    HeaderList h = CorsHeaders(request);
    if (request.Header("origin").empty()) h.emplace_back("Access-Control-Allow-Origin", "*");
    h.emplace_back("Access-Control-Allow-Methods", "GET, HEAD, POST, OPTIONS");
    std::string asked = request.Header("access-control-request-headers");
    h.emplace_back("Access-Control-Allow-Headers",
                   asked.empty() ? "Authorization, Content-Type, Accept, Prefer" : asked);
    h.emplace_back("Access-Control-Max-Age", "600");
    out.SendWhole(204, h, "").ok();
    return;
  }
  if (segments.empty() || (segments.size() == 1 && segments[0] == "healthz")) {
    HeaderList h = CorsHeaders(request);
    h.emplace_back("Content-Type", "application/json");
    out.SendWhole(200, h, "{\"status\":\"ok\",\"service\":\"smart-imaging\"}").ok();
    return;
  }

  // Resolve the tenant: "/{name}/..." or "/dyn/{encoded}/...".
  bool is_fhir = false;
  Route route;
  {
    Result<std::shared_ptr<const Tenant>> tenant = NotFound("unknown tenant");
    size_t consumed = 1;
    if (segments[0] == "dyn" && segments.size() >= 2) {
      tenant = service_.FindDynTenant(segments[1]);
      consumed = 2;
    } else {
      tenant = service_.FindTenant(segments[0]);
    }
    is_fhir = segments.size() > consumed && segments[consumed] == "fhir";
    if (!tenant.ok()) {
      is_fhir || segments.size() <= consumed ? SendFhirError(request, out, tenant.status())
                                             : SendWadoError(request, out, tenant.status());
      return;
    }
    route.tenant = std::move(tenant).value();
    route.rest.assign(segments.begin() + static_cast<long>(consumed), segments.end());
  }
  const Tenant& tenant = *route.tenant;
  const auto& rest = route.rest;
  bool is_get = request.method == "GET" || request.method == "HEAD";

  if (is_fhir) {
    if (rest.size() == 2 && rest[1] == "metadata") {
      if (!is_get) return SendFhirError(request, out, {ErrorCode::kMethodNotAllowed, "use GET"});
      HeaderList h = CorsHeaders(request);
      h.emplace_back("Content-Type", kFhirJson);
      out.SendWhole(200, h, service_.CapabilityStatement(tenant)).ok();
      return;
    }
    if (rest.size() == 3 && rest[1] == ".well-known" && rest[2] == "smart-configuration") {
      if (!is_get) return SendFhirError(request, out, {ErrorCode::kMethodNotAllowed, "use GET"});
      auto config = tenant.authorizer->SmartConfiguration();  // the EHR's metadata, cached
      if (!config.ok()) return SendFhirError(request, out, config.status());
      HeaderList h = CorsHeaders(request);
      h.emplace_back("Content-Type", "application/json");
      out.SendWhole(200, h, *config).ok();
      return;
    }
    bool search_get = rest.size() == 2 && rest[1] == "ImagingStudy" && is_get;
    bool search_post = rest.size() == 3 && rest[1] == "ImagingStudy" && rest[2] == "_search" &&
                       request.method == "POST";
    if (search_get || search_post) {
      ParamList params = text::ParseQueryString(request.raw_query);
      if (search_post) {
        std::string type = text::ToLower(request.Header("content-type"));
        if (!request.body.empty() &&
            type.find("application/x-www-form-urlencoded") == std::string::npos)
          return SendFhirError(
              request, out,
              InvalidArgument("POST _search needs an application/x-www-form-urlencoded body"));
        for (auto& p : text::ParseQueryString(request.body)) params.push_back(p);
      }
      auto bundle = service_.SearchStudies(tenant, AuthOf(request), params);
      if (!bundle.ok()) return SendFhirError(request, out, bundle.status());
      HeaderList h = CorsHeaders(request);
      h.emplace_back("Content-Type", kFhirJson);
      out.SendWhole(200, h, *bundle).ok();
      return;
    }
    if (rest.size() >= 2 && rest[1] == "ImagingStudy")
      return SendFhirError(request, out,
                           {ErrorCode::kMethodNotAllowed,
                            "ImagingStudy supports search (GET, or POST _search) only"});
    std::string type = rest.size() >= 2 ? rest[1] : "";
    return SendFhirError(
        request, out,
        NotFound("resource type '" + type + "' is not supported; this server offers ImagingStudy"));
  }

  // QIDO-RS and /bulk (facade/dicomweb_routes.cpp).
  if (HandleDicomWebRoute(service_, bulk_, tenant, request, out, rest)) return;

  // WADO-RS: wado/{token}/studies/{S}[/series/{SE}[/instances/{I}]][/metadata]
  if (rest.size() < 4 || rest[0] != "wado" || rest[2] != "studies")
    return SendWadoError(request, out, NotFound("no such resource"));
  if (!is_get) return SendWadoError(request, out, {ErrorCode::kMethodNotAllowed, "use GET"});
  RetrieveScope scope;
  scope.study_uid = rest[3];
  size_t i = 4;
  if (i + 1 < rest.size() && rest[i] == "series") {
    scope.series_uid = rest[i + 1];
    i += 2;
    if (i + 1 < rest.size() && rest[i] == "instances") {
      scope.sop_uid = rest[i + 1];
      i += 2;
    }
  }
  bool metadata = false;
  if (i < rest.size() && rest[i] == "metadata") {
    metadata = true;
    ++i;
  }
  // frames/{list} and bulk/{tag...} of an instance, rendered and thumbnail at any
  // level: passed through as they are for passed-through sources.
  std::string suffix;
  const bool passes_through = tenant.source && tenant.source->SupportsPassThrough();
  if (passes_through && i < rest.size() &&
      ((scope.sop_uid && i + 1 < rest.size() && (rest[i] == "frames" || rest[i] == "bulk")) ||
       rest[i] == "rendered" || rest[i] == "thumbnail")) {
    for (; i < rest.size(); ++i) {
      for (char c : rest[i])
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != ',' && c != '.')
          return SendWadoError(request, out,
                               InvalidArgument("malformed frame list or bulk data path"));
      suffix += (suffix.empty() ? "" : "/") + rest[i];
    }
  }
  // Frames, rendered and thumbnails of local files: facade/pixel_routes.cpp.
  std::vector<std::string> pixel_tail;
  if (!passes_through && !metadata && i < rest.size() && IsPixelRoute(rest[i])) {
    pixel_tail.assign(rest.begin() + static_cast<long>(i), rest.end());
    i = rest.size();
  }
  if (i != rest.size()) return SendWadoError(request, out, NotFound("no such resource"));
  for (auto* uid : {&scope.study_uid, scope.series_uid ? &*scope.series_uid : nullptr,
                    scope.sop_uid ? &*scope.sop_uid : nullptr})
    if (uid && !text::IsValidUid(*uid))
      return SendWadoError(request, out, InvalidArgument("malformed UID in path"));

  auto access = service_.AuthorizeWado(tenant, AuthOf(request), rest[1], scope.study_uid);
  if (!access.ok()) return SendWadoError(request, out, access.status());
  if (!pixel_tail.empty())
    return pixel_routes_.Handle(request, out, tenant, *access, scope, pixel_tail);

  if (tenant.source->SupportsPassThrough()) {
    // Existence and the patient check before the first byte; then the upstream's
    // response as it arrives (its Content-Type and boundary, its bytes).
    auto plan = service_.PlanWado(*access, scope);
    if (!plan.ok()) return SendWadoError(request, out, plan.status());
    PassThroughRequest pass;
    pass.scope = scope;
    pass.suffix = metadata ? "metadata" : suffix;
    pass.accept = request.Header("accept");
    pass.query = request.raw_query;
    pass.public_root =
        service_.settings().base_url + tenant.config.url_prefix + "/wado/" + rest[1] + "/";
    PassThroughWriter writer(out, CorsHeaders(request));
    Status s = tenant.source->PassThrough(pass, writer);
    if (!writer.started()) {
      if (!out.ClientGone())
        SendWadoError(request, out,
                      s.ok() ? Status(ErrorCode::kBadGateway, "empty upstream answer") : s);
      return;
    }
    if (s.ok()) s = out.EndChunked();
    if (!s.ok()) {
      if (!out.ClientGone())
        log::Warn("wado", "pass-through failed after the response started: " + s.message());
      out.Abort();
    }
    return;
  }

  if (metadata) {
    Status accept = NegotiateMetadata(request.Header("accept"));
    if (!accept.ok()) return SendWadoError(request, out, accept);
    auto plan = service_.PlanWado(*access, scope);  // also the patient check
    if (!plan.ok()) return SendWadoError(request, out, plan.status());
    auto objects = service_.Metadata(*access, scope, *plan);
    if (!objects.ok()) return SendWadoError(request, out, objects.status());
    const std::string root =
        service_.settings().base_url + tenant.config.url_prefix + "/wado/" + rest[1] + "/";
    std::string body = "[";
    for (size_t k = 0; k < objects->size(); ++k)
      body += (k ? "," : "") + ResolveBulkDataUris((*objects)[k], root);
    body += "]";
    HeaderList h = CorsHeaders(request);
    h.emplace_back("Content-Type", "application/dicom+json");
    out.SendWhole(200, h, body).ok();
    return;
  }

  auto plan = service_.PlanWado(*access, scope);
  if (!plan.ok()) return SendWadoError(request, out, plan.status());
  std::set<std::string> syntaxes;
  for (auto& inst : *plan) syntaxes.insert(inst.transfer_syntax_uid);
  auto format =
      NegotiateRetrieve(request.Header("accept"), scope.sop_uid.has_value(), syntaxes,
                        pixel_routes_.pixels() ? EncodableSyntaxes() : std::set<std::string>{});
  if (!format.ok()) return SendWadoError(request, out, format.status());
  if (!format->transcode_to.empty())
    return pixel_routes_.RetrieveTranscoded(request, out, *access, *plan, format->transcode_to,
                                            format->shape == RetrieveShape::kSingleDicom);

  HeaderList h = CorsHeaders(request);
  std::string boundary;
  if (format->shape == RetrieveShape::kSingleDicom) {
    plan->resize(1);
    h.emplace_back("Content-Type",
                   "application/dicom; transfer-syntax=" + plan->front().transfer_syntax_uid);
  } else {
    boundary = RandomBoundary();
    h.emplace_back("Content-Type",
                   "multipart/related; type=\"application/dicom\"; boundary=" + boundary);
  }
  MultipartSink sink(out, boundary, h);
  Status s = service_.Retrieve(*access, *plan, sink);  // re-checks arriving PatientIDs
  if (!s.ok() && !sink.started()) {
    // Nothing went out yet: say what failed (PACS down, timeout) with a real status.
    if (!out.ClientGone()) SendWadoError(request, out, s);
    return;
  }
  // The closing boundary only when every planned instance went out: a client must
  // never mistake a partial study for a whole one.
  if (s.ok() && sink.parts() == static_cast<int>(plan->size())) {
    if (std::string closing = sink.Closing(); !closing.empty()) s = out.WriteChunk(closing);
  } else if (s.ok())
    s = Status(ErrorCode::kBadGateway, "fewer instances than planned");
  if (s.ok()) s = out.EndChunked();
  if (!s.ok()) {
    if (!out.ClientGone())
      log::Warn("wado", "retrieval failed after the response started: " + s.message());
    out.Abort();
  }
}

}  // namespace si::facade
