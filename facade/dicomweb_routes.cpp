// QIDO-RS under the study token, and /bulk/{tag} of sources that serve files.
// Thin: the answers are built by src/qido.h and read through src/bulk_data.h.
#include <string>
#include <vector>

#include "facade/facade_internal.h"
#include "src/accept.h"
#include "src/qido.h"
#include "src/text.h"

namespace si::facade {
namespace {

// Collects a passed-through upstream answer (a DICOMweb source's study metadata).
class CollectSink final : public PassThroughSink {
 public:
  Status OnHead(int, const std::vector<std::pair<std::string, std::string>>&) override {
    return Status::Ok();
  }
  Status OnBody(std::string_view bytes) override {
    body.append(bytes);
    return Status::Ok();
  }
  std::string body;
};

// Keeps where the source delivered each planned instance (for DIMSE: the cache).
class PathSink final : public InstanceSink {
 public:
  Status OnInstance(const StoredInstance& instance) override {
    paths.push_back(instance.path);
    return Status::Ok();
  }
  std::vector<std::string> paths;
};

std::string PublicRoot(const ImagingService& service, const Tenant& tenant,
                       const std::string& token) {
  return service.settings().base_url + tenant.config.url_prefix + "/wado/" + token + "/";
}

// The DICOM JSON of every instance in scope, from whatever the source offers:
// its metadata (cache or index), or the upstream's metadata passed through.
Result<std::vector<std::string>> InstanceObjects(const ImagingService& service,
                                                 const WadoAccess& access,
                                                 const RetrieveScope& scope,
                                                 const std::string& public_root) {
  auto plan = service.PlanWado(access, scope);  // existence and the patient check
  if (!plan.ok()) return plan.status();
  const ImageSource& source = *access.tenant->source;
  if (!source.SupportsPassThrough()) return service.Metadata(access, scope, *plan);
  PassThroughRequest pass;
  pass.scope = scope;
  pass.suffix = "metadata";
  pass.accept = "application/dicom+json";
  pass.public_root = public_root;
  CollectSink sink;
  SI_RETURN_IF_ERROR(source.PassThrough(pass, sink));
  return qido::SplitArray(sink.body);
}

void HandleQido(const ImagingService& service, const Tenant& tenant, const HttpRequest& request,
                ResponseChannel& out, const std::vector<std::string>& rest, qido::Level level) {
  const std::string& token = rest[1];
  std::string study_uid;
  if (rest.size() == 3) {
    // /studies: the token's own study; a bad token gets the same answer as WADO's.
    auto bound = service.BoundStudy(token);
    study_uid = bound.ok() ? *bound : "";
  } else {
    study_uid = rest[3];
    if (!text::IsValidUid(study_uid))
      return SendWadoError(request, out, InvalidArgument("malformed UID in path"));
  }
  RetrieveScope scope;
  scope.study_uid = study_uid;
  if (rest.size() == 7) {
    if (!text::IsValidUid(rest[5]))
      return SendWadoError(request, out, InvalidArgument("malformed UID in path"));
    scope.series_uid = rest[5];
  }
  auto query = qido::ParseQuery(level, text::ParseQueryString(request.raw_query));
  if (!query.ok()) return SendWadoError(request, out, query.status());
  query->series_uid = scope.series_uid;
  if (Status accept = NegotiateMetadata(request.Header("accept")); !accept.ok())
    return SendWadoError(request, out, accept);
  auto access = service.AuthorizeWado(tenant, AuthOf(request), token, study_uid);
  if (!access.ok()) return SendWadoError(request, out, access.status());

  const std::string root = PublicRoot(service, tenant, token);
  std::string body = "[]";
  auto objects = qido::ExcludesStudy(*query, study_uid)
                     ? Result<std::vector<std::string>>(std::vector<std::string>{})
                     : InstanceObjects(service, *access, scope, root);
  if (objects.ok() && objects->empty()) {
    // Nothing can match: "[]" without building anything.
  } else if (objects.ok()) {
    auto built = qido::BuildResponse(*query, *objects, root);
    if (!built.ok()) return SendWadoError(request, out, built.status());
    body = std::move(built).value();
  } else if (objects.status().code() != ErrorCode::kNotFound) {
    // A series that does not exist is an empty answer, not an error.
    return SendWadoError(request, out, objects.status());
  }
  HeaderList h = CorsHeaders(request);
  h.emplace_back("Content-Type", "application/dicom+json");
  out.SendWhole(200, h, body).ok();
}

// PS3.18 8.7.3.5: bulk data as multipart/related of application/octet-stream. Values
// are served as stored: "*" (or no transfer-syntax) takes anything; Explicit VR Little
// Endian, the default, suits every value but encapsulated pixel data (checked once read).
struct BulkAccept {
  bool as_stored = false;  // else explicit little endian only
};

Result<BulkAccept> NegotiateBulk(std::string_view accept) {
  if (text::Trim(accept).empty()) return BulkAccept{true};
  std::optional<BulkAccept> best;
  for (auto& r : ParseAccept(accept)) {
    if (r.q <= 0) continue;
    if (r.type == "*/*" || r.type == "multipart/*") return BulkAccept{true};
    if (r.type != "multipart/related") continue;
    auto type = r.params.find("type");
    if (type != r.params.end() && type->second != "application/octet-stream") continue;
    auto syntax = r.params.find("transfer-syntax");
    if (syntax == r.params.end() || syntax->second == "*") return BulkAccept{true};
    if (syntax->second == "1.2.840.10008.1.2.1") best = BulkAccept{false};
  }
  if (best) return *best;
  return NotAcceptable(
      "bulk data is available as multipart/related; type=\"application/octet-stream\"");
}

void HandleBulk(const ImagingService& service, const BulkDataReader* reader, const Tenant& tenant,
                const HttpRequest& request, ResponseChannel& out,
                const std::vector<std::string>& rest) {
  if (rest.size() != 10)
    return SendWadoError(request, out,
                         NotFound("bulk data inside sequences is not served; use a top-level tag"));
  auto tag = ParseBulkTag(rest[9]);
  if (!tag)
    return SendWadoError(request, out, InvalidArgument("bulk data tag must be 8 hex digits"));
  RetrieveScope scope;
  scope.study_uid = rest[3];
  scope.series_uid = rest[5];
  scope.sop_uid = rest[7];
  for (auto* uid : {&scope.study_uid, &*scope.series_uid, &*scope.sop_uid})
    if (!text::IsValidUid(*uid))
      return SendWadoError(request, out, InvalidArgument("malformed UID in path"));
  auto accept = NegotiateBulk(request.Header("accept"));
  if (!accept.ok()) return SendWadoError(request, out, accept.status());
  auto access = service.AuthorizeWado(tenant, AuthOf(request), rest[1], scope.study_uid);
  if (!access.ok()) return SendWadoError(request, out, access.status());
  if (!reader)
    return SendWadoError(request, out, NotImplemented("bulk data is not available in this build"));
  auto plan = service.PlanWado(*access, scope);
  if (!plan.ok()) return SendWadoError(request, out, plan.status());
  PathSink delivered;  // the file, fetched into the cache first for a PACS
  if (Status s = service.Retrieve(*access, *plan, delivered); !s.ok())
    return SendWadoError(request, out, s);
  if (delivered.paths.size() != 1 || delivered.paths.front().empty())
    return SendWadoError(request, out, Status(ErrorCode::kBadGateway, "instance not delivered"));
  auto value = reader->Read(delivered.paths.front(), *tag);
  if (!value.ok()) return SendWadoError(request, out, value.status());
  if (value->encapsulated && !accept->as_stored)
    return SendWadoError(request, out,
                         NotAcceptable("this pixel data is stored compressed; ask for "
                                       "transfer-syntax=* to get its frames as stored"));

  std::string boundary = RandomBoundary();
  std::string part_type = "application/octet-stream";
  if (value->encapsulated) part_type += "; transfer-syntax=" + plan->front().transfer_syntax_uid;
  std::string body;
  for (auto& part : value->parts) {
    body += "--" + boundary + "\r\nContent-Type: " + part_type +
            "\r\nContent-Length: " + std::to_string(part.size()) + "\r\n\r\n";
    body += part;
    body += "\r\n";
  }
  body += "--" + boundary + "--\r\n";
  HeaderList h = CorsHeaders(request);
  h.emplace_back("Content-Type",
                 "multipart/related; type=\"application/octet-stream\"; boundary=" + boundary);
  out.SendWhole(200, h, body).ok();
}

}  // namespace

bool HandleDicomWebRoute(const ImagingService& service, const BulkDataReader* bulk,
                         const Tenant& tenant, const HttpRequest& request, ResponseChannel& out,
                         const std::vector<std::string>& rest) {
  if (rest.size() < 3 || rest[0] != "wado" || rest[2] != "studies") return false;
  const size_t n = rest.size();
  std::optional<qido::Level> level;
  if (n == 3) level = qido::Level::kStudy;
  if (n == 5 && rest[4] == "series") level = qido::Level::kSeries;
  if (n == 5 && rest[4] == "instances") level = qido::Level::kInstance;
  if (n == 7 && rest[4] == "series" && rest[6] == "instances") level = qido::Level::kInstance;
  bool is_bulk = n >= 10 && rest[4] == "series" && rest[6] == "instances" && rest[8] == "bulk";
  if (is_bulk && n == 10 && !ParseBulkTag(rest[9])) {
    SendWadoError(request, out, InvalidArgument("bulk data tag must be 8 hex digits"));
    return true;
  }
  // Sources that pass responses through answer /bulk themselves (facade.cpp).
  if (is_bulk && tenant.source && tenant.source->SupportsPassThrough()) return false;
  if (!level && !is_bulk) return false;
  if (request.method != "GET" && request.method != "HEAD") {
    SendWadoError(request, out, {ErrorCode::kMethodNotAllowed, "use GET"});
    return true;
  }
  if (level)
    HandleQido(service, tenant, request, out, rest, *level);
  else
    HandleBulk(service, bulk, tenant, request, out, rest);
  return true;
}

}  // namespace si::facade
