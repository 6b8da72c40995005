#include "src/tenant.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/schema.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <fstream>
#include <mutex>
#include <sstream>

#include "src/fhirpath.h"
#include "src/jws.h"
#include "tenant_schema_text.h"

namespace si {
namespace {

const rapidjson::SchemaDocument& TenantSchema() {
  static const rapidjson::SchemaDocument* schema = [] {
    rapidjson::Document d;
    d.Parse(schema::kTenantSchemaJson);
    if (d.HasParseError()) std::abort();  // the schema is compiled in: a build bug
    return new rapidjson::SchemaDocument(d);
  }();
  return *schema;
}

const rapidjson::Document& TenantSchemaDocument() {
  static const rapidjson::Document* doc = [] {
    auto* d = new rapidjson::Document;
    d->Parse(schema::kTenantSchemaJson);
    return d;
  }();
  return *doc;
}

std::string PointerText(const rapidjson::Pointer& p) {
  rapidjson::StringBuffer sb;
  p.Stringify(sb);
  std::string s = sb.GetString();
  return s.empty() ? "/" : s;
}

// RapidJSON 1.1 (Debian 12) names only the failing keyword and the two
// pointers; turn them into words using the schema node and the document node.
std::string Describe(const rapidjson::SchemaValidator& v, const rapidjson::Document& doc) {
  std::string keyword = v.GetInvalidSchemaKeyword();
  const rapidjson::Value* node = v.GetInvalidSchemaPointer().Get(TenantSchemaDocument());
  const rapidjson::Value* value = v.GetInvalidDocumentPointer().Get(doc);
  std::ostringstream os;
  os << "at " << PointerText(v.GetInvalidDocumentPointer()) << ": ";
  if (keyword == "required" && node && node->HasMember("required") && value && value->IsObject()) {
    os << "missing required property";
    for (auto& r : (*node)["required"].GetArray())
      if (!value->HasMember(r.GetString())) os << " '" << r.GetString() << "'";
  } else if (keyword == "enum" && node && node->HasMember("enum")) {
    os << "must be one of";
    for (auto& e : (*node)["enum"].GetArray())
      if (e.IsString()) os << " '" << e.GetString() << "'";
  } else if (keyword == "type" && node && node->HasMember("type")) {
    os << "wrong type, expected ";
    const auto& t = (*node)["type"];
    if (t.IsString())
      os << t.GetString();
    else
      for (auto& e : t.GetArray()) os << e.GetString() << " ";
  } else if (keyword == "pattern" && node && node->HasMember("pattern")) {
    os << "does not match " << (*node)["pattern"].GetString();
  } else if (keyword == "minLength") {
    os << "must not be empty";
  } else if (keyword == "maxLength") {
    os << "is too long";
  } else if (keyword == "minimum") {
    os << "is too small";
  } else if (node && node->HasMember("description")) {
    os << (*node)["description"].GetString();
  } else {
    os << "fails '" << keyword << "'";
  }
  return os.str();
}

std::string GetString(const rapidjson::Value& obj, const char* key) {
  if (!obj.IsObject()) return "";
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsString()) return "";
  return {it->value.GetString(), it->value.GetStringLength()};
}

FhirPatient ParsePatient(const rapidjson::Value& p) {
  FhirPatient patient;
  patient.id = GetString(p, "id");
  auto ids = p.FindMember("identifier");
  if (ids != p.MemberEnd() && ids->value.IsArray()) {
    for (auto& i : ids->value.GetArray()) {
      PatientIdentifier pid;
      pid.system = GetString(i, "system");
      pid.value = GetString(i, "value");
      auto type = i.FindMember("type");
      if (type != i.MemberEnd() && type->value.IsObject()) {
        pid.type_text = GetString(type->value, "text");
        auto codings = type->value.FindMember("coding");
        if (codings != type->value.MemberEnd() && codings->value.IsArray())
          for (auto& c : codings->value.GetArray()) pid.type_codes.push_back(GetString(c, "code"));
      }
      patient.identifiers.push_back(std::move(pid));
    }
  }
  return patient;
}

std::string JsonText(const rapidjson::Value& v) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  v.Accept(w);
  return std::string(sb.GetString(), sb.GetSize());
}

// images.mrn expressions and the SMART client settings, checked now so that a bad
// tenant stops start-up instead of failing requests later. Messages name the file
// and the field; they never quote key material or secrets.
Status ParseSmartSettings(const rapidjson::Document& doc, std::string_view origin,
                          TenantConfig& t) {
  const std::string where = std::string(origin) + ": at ";
  for (size_t i = 0; i < t.mrn_expressions.size(); ++i) {
    auto e = FhirPathExpression::Parse(t.mrn_expressions[i]);
    if (!e.ok())
      return InvalidConfig(where + "/images/mrn/" + std::to_string(i) + ": " +
                           e.status().message());
  }
  const auto& authz = doc["authorization"];
  auto number = [&](const char* key, double& out) {
    if (authz.HasMember(key) && authz[key].IsNumber()) out = authz[key].GetDouble();
  };
  number("timeoutSeconds", t.auth_timeout_seconds);
  number("decisionCacheSeconds", t.decision_cache_seconds);
  number("negativeCacheSeconds", t.negative_cache_seconds);
  number("discoveryCacheSeconds", t.discovery_cache_seconds);
  if (authz.HasMember("backendServices") && authz["backendServices"].IsObject()) {
    t.backend_services_enabled = true;
    for (auto& m : authz["backendServices"].GetObject()) {
      TenantConfig::BackendClientPolicy policy;
      for (auto& v : m.value["patients"].GetArray()) policy.patients.emplace_back(v.GetString());
      if (m.value.HasMember("studies"))
        for (auto& v : m.value["studies"].GetArray()) policy.studies.emplace_back(v.GetString());
      t.backend_services[std::string(m.name.GetString(), m.name.GetStringLength())] =
          std::move(policy);
    }
  }
  // A configured mock patient gets the configured MRN expressions too.
  if (t.patient && !t.mrn_expressions.empty()) {
    auto p = ParsePatientResource(JsonText(authz["patient"]), t.mrn_expressions);
    if (p.ok()) t.patient->mrn = p->mrn;
  }
  if (!authz.HasMember("client") || !authz["client"].IsObject()) return Status::Ok();
  const auto& client = authz["client"];
  t.client_id = GetString(client, "client_id");
  t.client_secret = GetString(client, "client_secret");
  if (t.authorization_type == "mock" || t.authorization_type == "smart-on-fhir-backend-services")
    return Status::Ok();
  if (t.authorization_type == "smart-on-fhir-with-meditech-bugfixes") {
    if (t.client_secret.empty())
      return InvalidConfig(
          where +
          "/authorization/client/client_secret: the meditech profile needs a client_secret");
    return Status::Ok();
  }
  if (!client.HasMember("jwkPrivate"))
    return InvalidConfig(where + "/authorization/client/jwkPrivate: " + t.authorization_type +
                         " needs a private JWK (ES384 or RS384) to sign client assertions");
  if (client.HasMember("jwk")) t.jwk_alg_hint = GetString(client["jwk"], "alg");
  t.jwk_private_json = JsonText(client["jwkPrivate"]);
  auto signer = JwsSigner::FromJwk(t.jwk_private_json, t.jwk_alg_hint);
  if (!signer.ok())
    return InvalidConfig(where + "/authorization/client/jwkPrivate: " + signer.status().message());
  if (client.HasMember("jwk")) {
    const auto& pub = client["jwk"];
    const auto& priv = client["jwkPrivate"];
    for (const char* k : {"kty", "crv", "x", "y", "n", "e"}) {
      if (GetString(pub, k) != GetString(priv, k))
        return InvalidConfig(where + "/authorization/client/jwk: '" + k +
                             "' differs from jwkPrivate's: the two are not one key pair");
    }
  }
  return Status::Ok();
}

}  // namespace

Result<TenantConfig> ParseTenant(std::string_view name, std::string_view json_text,
                                 std::string_view origin, const std::filesystem::path& base_dir) {
  rapidjson::Document doc;
  doc.Parse(json_text.data(), json_text.size());
  if (doc.HasParseError()) {
    std::ostringstream os;
    os << origin << ": at /: not valid JSON (" << rapidjson::GetParseError_En(doc.GetParseError())
       << " at offset " << doc.GetErrorOffset() << ")";
    return InvalidConfig(os.str());
  }
  rapidjson::SchemaValidator validator(TenantSchema());
  if (!doc.Accept(validator)) {
    return InvalidConfig(std::string(origin) + ": " + Describe(validator, doc));
  }

  TenantConfig t;
  t.name = std::string(name);
  t.key = t.name;
  t.url_prefix = "/" + t.name;
  t.source_json = std::string(json_text);
  const auto& authz = doc["authorization"];
  t.authorization_type = GetString(authz, "type");
  t.fhir_base_url = GetString(authz, "fhirBaseUrl");
  while (!t.fhir_base_url.empty() && t.fhir_base_url.back() == '/') t.fhir_base_url.pop_back();
  t.scope = GetString(authz, "scope");
  if (authz.HasMember("disableAuthzChecks"))
    t.disable_authz_checks = authz["disableAuthzChecks"].GetBool();
  if (authz.HasMember("patient")) t.patient = ParsePatient(authz["patient"]);

  t.bearer_capability = GetString(doc, "capability") == "bearer";

  const auto& images = doc["images"];
  t.images_type = GetString(images, "type");
  t.lookup = GetString(images, "lookup") == "studies-by-mrn" ? Lookup::kStudiesByMrn
                                                             : Lookup::kAllStudiesOnServer;
  t.endpoint = GetString(images, "endpoint");
  t.ae = GetString(images, "ae");
  if (images.HasMember("mrn"))
    for (auto& m : images["mrn"].GetArray()) t.mrn_expressions.emplace_back(m.GetString());
  if (images.HasMember("rescanSeconds")) t.rescan_seconds = images["rescanSeconds"].GetDouble();
  if (images.HasMember("slowSearch")) t.slow_search_ms = images["slowSearch"].GetInt64();
  t.issuer_of_patient_id = GetString(images, "issuerOfPatientId");
  SI_RETURN_IF_ERROR(ParseSmartSettings(doc, origin, t));
  if (!GetString(images, "calledAe").empty()) t.called_ae = GetString(images, "calledAe");
  if (!GetString(images, "retrieval").empty()) t.retrieval = GetString(images, "retrieval");
  auto int_of = [&](const char* key, int& out) {
    if (images.HasMember(key) && images[key].IsInt()) out = images[key].GetInt();
  };
  int_of("maxAssociations", t.max_associations);
  int_of("connectTimeoutSeconds", t.connect_timeout_seconds);
  int_of("dimseTimeoutSeconds", t.dimse_timeout_seconds);
  int_of("operationTimeoutSeconds", t.operation_timeout_seconds);
  if (t.images_type == "folder") {
    std::filesystem::path p = GetString(images, "path");
    if (p.is_relative()) p = base_dir / p;
    t.folder_path = p.lexically_normal().string();
    while (t.folder_path.size() > 1 && t.folder_path.back() == '/') t.folder_path.pop_back();
  }
  return t;
}

Result<std::vector<TenantConfig>> LoadTenantDirectory(const std::filesystem::path& dir,
                                                      const std::filesystem::path& base_dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    return InvalidConfig(dir.string() + ": config directory does not exist");
  std::vector<std::filesystem::path> files;
  for (auto& entry : std::filesystem::directory_iterator(dir, ec))
    if (entry.is_regular_file() && entry.path().extension() == ".json")
      files.push_back(entry.path());
  if (ec) return InvalidConfig(dir.string() + ": " + ec.message());
  std::sort(files.begin(), files.end());
  std::vector<TenantConfig> tenants;
  for (auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    if (!in.good() && !in.eof()) return InvalidConfig(f.string() + ": cannot read file");
    std::string stem = f.stem().string();
    if (stem == "dyn" || stem.empty())
      return InvalidConfig(f.string() + ": tenant name '" + stem + "' is reserved");
    auto t = ParseTenant(stem, ss.str(), f.string(), base_dir);
    if (!t.ok()) return t.status();
    tenants.push_back(std::move(t).value());
  }
  return tenants;
}

Result<FhirPatient> ParsePatientResource(std::string_view json_text,
                                         const std::vector<std::string>& mrn_expressions) {
  rapidjson::Document doc;
  doc.Parse(json_text.data(), json_text.size());
  if (doc.HasParseError() || !doc.IsObject())
    return InvalidArgument("the Patient is not a JSON object");
  if (GetString(doc, "resourceType") != "Patient")
    return InvalidArgument("the resource is not a Patient");
  if (GetString(doc, "id").empty()) return InvalidArgument("the Patient has no id");
  if (doc.HasMember("identifier") && !doc["identifier"].IsArray())
    return InvalidArgument("the Patient's identifier is not an array");
  FhirPatient patient = ParsePatient(doc);
  std::vector<FhirPathExpression> expressions;
  for (auto& text : mrn_expressions.empty() ? std::vector<std::string>{kDefaultMrnExpression}
                                            : mrn_expressions) {
    auto e = FhirPathExpression::Parse(text);
    if (e.ok()) expressions.push_back(std::move(e).value());
  }
  patient.mrn = MrnFromPatient(expressions, doc);
  return patient;
}

std::optional<PatientIdentifier> MrnIdentifierOf(const FhirPatient& patient) {
  if (!patient.mrn.empty()) {
    for (auto& id : patient.identifiers)
      if (id.value == patient.mrn) return id;
    return PatientIdentifier{"", patient.mrn, {}, ""};
  }
  for (auto& id : patient.identifiers)
    if (std::find(id.type_codes.begin(), id.type_codes.end(), "MR") != id.type_codes.end())
      return id;
  if (!patient.identifiers.empty()) return patient.identifiers.front();
  return std::nullopt;
}

std::string Base64UrlEncode(std::string_view bytes) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == bytes.size()) {
    uint32_t v = uint8_t(bytes[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
  } else if (i + 2 == bytes.size()) {
    uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

std::optional<std::string> Base64UrlDecode(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-' || c == '+') return 62;
    if (c == '_' || c == '/') return 63;
    return -1;
  };
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((acc >> bits) & 0xFF);
    }
  }
  return out;
}

}  // namespace si
