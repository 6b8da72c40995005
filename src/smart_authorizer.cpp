#include "src/smart_authorizer.h"

#include <openssl/rand.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cmath>

#include "src/log.h"
#include "src/text.h"

namespace si {
namespace {

Status BadGateway(std::string m) { return {ErrorCode::kBadGateway, std::move(m)}; }

std::string Str(const rapidjson::Value& o, const char* key) {
  if (!o.IsObject()) return "";
  auto it = o.FindMember(key);
  if (it == o.MemberEnd() || !it->value.IsString()) return "";
  return {it->value.GetString(), it->value.GetStringLength()};
}

bool IsFhirId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
  });
}

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes));
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

std::string Base64(std::string_view in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += {k[v >> 18], k[(v >> 12) & 63], k[(v >> 6) & 63], k[v & 63]};
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += {k[v >> 18], k[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += {k[v >> 18], k[(v >> 12) & 63], k[(v >> 6) & 63], '='};
  }
  return out;
}

// The OAuth error code of an error response ({"error": "invalid_client"}), which is
// safe to repeat; descriptions may echo input, so they are left out.
std::string OAuthError(const std::string& body) {
  rapidjson::Document d;
  d.Parse(body.c_str());
  if (d.HasParseError()) return "";
  std::string e = Str(d, "error");
  if (e.size() > 64 || !std::all_of(e.begin(), e.end(), [](char c) {
        return std::isalnum((unsigned char)c) || c == '_';
      }))
    return "";
  return e.empty() ? "" : " (" + e + ")";
}

// Epic's `sub` is the Patient's absolute URL; accept it only under the tenant's
// FHIR base (we send our token there), or as a relative Patient reference.
std::string PatientIdFromSub(const std::string& sub, const std::string& base) {
  std::string prefix = base + "/Patient/";
  std::string rest;
  if (sub.rfind(prefix, 0) == 0)
    rest = sub.substr(prefix.size());
  else if (sub.rfind("Patient/", 0) == 0)
    rest = sub.substr(8);
  else
    return "";
  return IsFhirId(rest) ? rest : "";
}

class FailedAuthorizer final : public Authorizer {
 public:
  explicit FailedAuthorizer(Status s) : status_(std::move(s)) {}
  Result<AuthDecision> Authorize(const AuthRequest&) const override { return status_; }

 private:
  Status status_;
};

}  // namespace

std::optional<SmartProfile> SmartProfileOf(std::string_view type) {
  if (type == "smart-on-fhir" || type == "smart-on-fhir-independent")
    return SmartProfile::kStandard;
  if (type == "smart-on-fhir-with-epic-bugfixes") return SmartProfile::kEpic;
  if (type == "smart-on-fhir-with-meditech-bugfixes") return SmartProfile::kMeditech;
  return std::nullopt;
}

std::vector<std::string> SplitScopes(std::string_view scope) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < scope.size()) {
    while (i < scope.size() && std::isspace(static_cast<unsigned char>(scope[i]))) ++i;
    size_t j = i;
    while (j < scope.size() && !std::isspace(static_cast<unsigned char>(scope[j]))) ++j;
    if (j > i) out.emplace_back(scope.substr(i, j - i));
    i = j;
  }
  return out;
}

bool ScopeGrantsImaging(std::string_view scope, SmartProfile profile) {
  if (scope.rfind("patient/", 0) != 0) return false;
  std::string_view rest = scope.substr(8);
  auto dot = rest.find('.');
  if (dot == std::string_view::npos) return false;
  std::string_view resource = rest.substr(0, dot);
  std::string_view perms = rest.substr(dot + 1);
  bool has_query = false;
  if (auto q = perms.find('?'); q != std::string_view::npos) {
    perms = perms.substr(0, q);
    has_query = true;
  }
  if (profile != SmartProfile::kStandard && resource == "DiagnosticReport" && perms == "read" &&
      !has_query)
    return true;
  if (resource != "ImagingStudy" && resource != "*") return false;
  if (!has_query && (perms == "read" || perms == "*")) return true;  // SMART v1
  // SMART v2: a non-empty subsequence of "cruds", with r or s.
  static const std::string_view kOrder = "cruds";
  size_t at = 0;
  for (char c : perms) {
    auto p = kOrder.find(c, at);
    if (p == std::string_view::npos) return false;
    at = p + 1;
  }
  return !perms.empty() &&
         (perms.find('r') != std::string_view::npos || perms.find('s') != std::string_view::npos);
}

bool ScopesGrantImaging(const std::vector<std::string>& scopes, SmartProfile profile) {
  return std::any_of(scopes.begin(), scopes.end(),
                     [&](const std::string& s) { return ScopeGrantsImaging(s, profile); });
}

bool ScopesGrantSystemImaging(const std::vector<std::string>& scopes) {
  return std::any_of(scopes.begin(), scopes.end(), [](const std::string& s) {
    // The permission grammar is the patient one; DiagnosticReport never counts here.
    return s.rfind("system/", 0) == 0 &&
           ScopeGrantsImaging("patient/" + s.substr(7), SmartProfile::kStandard);
  });
}

SmartAuthorizer::SmartAuthorizer(const TenantConfig& t, SmartProfile profile,
                                 std::shared_ptr<HttpClient> http, const Clock& clock,
                                 std::shared_ptr<const JwsSigner> signer)
    : tenant_name_(t.name),
      fhir_base_url_(t.fhir_base_url),
      scope_(t.scope),
      client_id_(t.client_id),
      client_secret_(t.client_secret),
      mrn_expressions_(t.mrn_expressions),
      backend_services_enabled_(t.backend_services_enabled),
      backend_services_(t.backend_services),
      profile_(profile),
      timeout_(static_cast<int64_t>(std::llround(t.auth_timeout_seconds * 1000))),
      max_cache_seconds_(static_cast<int64_t>(t.decision_cache_seconds)),
      negative_cache_seconds_(static_cast<int64_t>(t.negative_cache_seconds)),
      discovery_ttl_seconds_(static_cast<int64_t>(t.discovery_cache_seconds)),
      http_(std::move(http)),
      clock_(clock),
      signer_(std::move(signer)),
      cache_(clock) {}

Result<std::unique_ptr<SmartAuthorizer>> SmartAuthorizer::Create(const TenantConfig& tenant,
                                                                 std::shared_ptr<HttpClient> http,
                                                                 const Clock& clock) {
  auto profile = SmartProfileOf(tenant.authorization_type);
  if (!profile)
    return InvalidConfig("tenant " + tenant.name + ": '" + tenant.authorization_type +
                         "' is not a SMART type");
  if (tenant.fhir_base_url.empty())
    return InvalidConfig("tenant " + tenant.name + ": authorization.fhirBaseUrl is required");
  std::shared_ptr<const JwsSigner> signer;
  if (*profile == SmartProfile::kMeditech) {
    if (tenant.client_secret.empty())
      return InvalidConfig(
          "tenant " + tenant.name +
          ": authorization.client.client_secret is required by the meditech profile");
    log::Warn(
        "auth",
        "tenant " + tenant.name +
            ": smart-on-fhir-with-meditech-bugfixes is INSECURE by design: the patient is taken "
            "from the "
            "request, not from the token, so any valid token of this client reaches any patient. "
            "Use it only against a sandbox.");
  } else {
    auto s = JwsSigner::FromJwk(tenant.jwk_private_json, tenant.jwk_alg_hint);
    if (!s.ok())
      return InvalidConfig("tenant " + tenant.name +
                           ": authorization.client.jwkPrivate: " + s.status().message());
    signer = *s;
  }
  return std::unique_ptr<SmartAuthorizer>(
      new SmartAuthorizer(tenant, *profile, std::move(http), clock, signer));
}

Result<HttpClientResponse> SmartAuthorizer::Send(HttpClientRequest request,
                                                 const std::string& what) const {
  request.timeout = timeout_;
  auto r = http_->Send(request);
  if (!r.ok())
    return Unavailable("the EHR is unavailable: " + what + " failed: " + r.status().message());
  return r;
}

Result<SmartAuthorizer::Discovery> SmartAuthorizer::Discover() const {
  std::lock_guard<std::mutex> lock(discovery_mutex_);
  const int64_t now = clock_.NowSeconds();
  if (discovery_ && now < discovery_->fetched_at + discovery_ttl_seconds_) return *discovery_;
  HttpClientRequest req;
  req.url = fhir_base_url_ + "/.well-known/smart-configuration";
  req.headers = {{"Accept", "application/json"}};
  const std::string host = HostPortOf(req.url);
  auto fail = [&](Status s) -> Result<Discovery> {
    if (discovery_) {  // a stale answer is better than none while the EHR recovers
      log::Warn("auth", "tenant " + tenant_name_ +
                            ": SMART discovery failed, using the previous answer: " + s.message());
      return *discovery_;
    }
    return s;
  };
  auto r = Send(req, "SMART discovery at " + host);
  if (!r.ok()) return fail(r.status());
  if (r->status != 200)
    return fail(
        BadGateway("SMART discovery at " + host + " answered HTTP " + std::to_string(r->status)));
  rapidjson::Document d;
  d.Parse(r->body.c_str());
  if (d.HasParseError() || !d.IsObject())
    return fail(BadGateway("SMART discovery at " + host + " did not return a JSON object"));
  Discovery disc;
  disc.json = r->body;
  disc.token_endpoint = Str(d, "token_endpoint");
  disc.introspection_endpoint = Str(d, "introspection_endpoint");
  disc.fetched_at = now;
  auto is_url = [](const std::string& u) {
    return u.rfind("https://", 0) == 0 || u.rfind("http://", 0) == 0;
  };
  if (profile_ != SmartProfile::kMeditech && !is_url(disc.token_endpoint))
    return fail(BadGateway("SMART discovery at " + host + " names no token_endpoint"));
  if (profile_ == SmartProfile::kEpic) {
    // Epic's introspection sits beside its token endpoint.
    std::string t = disc.token_endpoint;
    if (t.size() >= 6 && t.compare(t.size() - 6, 6, "/token") == 0)
      t = t.substr(0, t.size() - 6) + "/introspect";
    disc.introspection_endpoint = t;
  }
  if (!is_url(disc.introspection_endpoint))
    return fail(BadGateway("SMART discovery at " + host + " names no introspection_endpoint"));
  discovery_ = disc;
  return disc;
}

std::string SmartAuthorizer::ClientAssertion(const std::string& audience) const {
  const int64_t now = clock_.NowSeconds();
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("iss");
  w.String(client_id_.c_str());
  w.Key("sub");
  w.String(client_id_.c_str());
  w.Key("aud");
  w.String(audience.c_str());
  w.Key("iat");
  w.Int64(now);
  w.Key("exp");
  w.Int64(now + 60);
  w.Key("jti");
  w.String(RandomHex(16).c_str());
  w.EndObject();
  auto jws = signer_->Sign(sb.GetString());
  return jws.ok() ? *jws : "";
}

Result<std::string> SmartAuthorizer::OurToken(bool refresh) const {
  std::lock_guard<std::mutex> lock(token_mutex_);
  const int64_t now = clock_.NowSeconds();
  if (!refresh && !our_token_.empty() && now < our_token_refresh_at_) return our_token_;
  auto disc = Discover();
  if (!disc.ok()) return disc.status();
  const std::string host = HostPortOf(disc->token_endpoint);
  std::string assertion = ClientAssertion(disc->token_endpoint);
  if (assertion.empty()) return Internal("signing the client assertion failed");
  std::vector<std::pair<std::string, std::string>> form = {
      {"grant_type", "client_credentials"},
      {"client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
      {"client_assertion", assertion}};
  if (!scope_.empty()) form.emplace_back("scope", scope_);
  HttpClientRequest req;
  req.method = "POST";
  req.url = disc->token_endpoint;
  req.headers = {{"Content-Type", "application/x-www-form-urlencoded"},
                 {"Accept", "application/json"}};
  req.body = FormEncode(form);
  auto r = Send(req, "the token request at " + host);
  if (!r.ok()) return r.status();
  if (r->status != 200)
    return BadGateway("the EHR refused our client credentials at " + host + ": HTTP " +
                      std::to_string(r->status) + OAuthError(r->body));
  rapidjson::Document d;
  d.Parse(r->body.c_str());
  std::string token = d.HasParseError() ? "" : Str(d, "access_token");
  if (token.empty()) return BadGateway("the token response from " + host + " has no access_token");
  int64_t expires_in = 300;
  if (d.HasMember("expires_in") && d["expires_in"].IsNumber())
    expires_in = static_cast<int64_t>(d["expires_in"].GetDouble());
  if (expires_in <= 0)
    return BadGateway("the token response from " + host + " has a non-positive expires_in");
  // Renew a little before it runs out, so no request carries an about-to-expire token.
  int64_t margin = std::min<int64_t>(30, expires_in / 5);
  our_token_ = token;
  our_token_refresh_at_ = now + expires_in - margin;
  return our_token_;
}

DecisionCache::Computed SmartAuthorizer::Compute(const AuthRequest& request) const {
  const int64_t now = clock_.NowSeconds();
  const int64_t max_until = max_cache_seconds_ > 0 ? now + max_cache_seconds_ : 0;
  const int64_t negative_until =
      max_cache_seconds_ > 0 ? now + std::min(negative_cache_seconds_, max_cache_seconds_) : 0;
  auto transient = [](Status s) { return DecisionCache::Computed{std::move(s), 0}; };
  auto refused = [&](Status s) { return DecisionCache::Computed{std::move(s), negative_until}; };

  auto disc = Discover();
  if (!disc.ok()) return transient(disc.status());
  const std::string host = HostPortOf(disc->introspection_endpoint);

  // 1. Introspection (RFC 7662), with our token as Bearer (meditech: client_secret Basic).
  HttpClientRequest intro;
  intro.method = "POST";
  intro.url = disc->introspection_endpoint;
  intro.body = FormEncode({{"token", request.bearer_token}});
  Result<HttpClientResponse> r = Status(ErrorCode::kInternal, "not sent");
  for (int attempt = 0; attempt < 2; ++attempt) {
    intro.headers = {{"Content-Type", "application/x-www-form-urlencoded"},
                     {"Accept", "application/json"}};
    if (profile_ == SmartProfile::kMeditech) {
      intro.headers.emplace_back("Authorization",
                                 "Basic " + Base64(client_id_ + ":" + client_secret_));
    } else {
      auto ours = OurToken(attempt > 0);
      if (!ours.ok()) return transient(ours.status());
      intro.headers.emplace_back("Authorization", "Bearer " + *ours);
    }
    r = Send(intro, "introspection at " + host);
    if (!r.ok()) return transient(r.status());
    if (r->status != 401 || profile_ == SmartProfile::kMeditech)
      break;  // 401: our token went stale; renew once
  }
  if (r->status != 200)
    return transient(BadGateway("introspection at " + host + " answered HTTP " +
                                std::to_string(r->status) + OAuthError(r->body)));
  rapidjson::Document in;
  in.Parse(r->body.c_str());
  if (in.HasParseError() || !in.IsObject() || !in.HasMember("active") || !in["active"].IsBool())
    return transient(BadGateway("malformed introspection response from " + host +
                                ": not a JSON object with a boolean 'active'"));
  if (!in["active"].GetBool())
    return refused(
        Unauthorized("the access token is not active (expired, revoked or unknown to the EHR)"));
  int64_t exp = 0;
  if (in.HasMember("exp")) {
    if (!in["exp"].IsNumber())
      return transient(
          BadGateway("malformed introspection response from " + host + ": 'exp' is not a number"));
    exp = static_cast<int64_t>(in["exp"].GetDouble());
    if (exp <= now) return refused(Unauthorized("the access token has expired"));
  }
  if (in.HasMember("scope") && !in["scope"].IsString())
    return transient(
        BadGateway("malformed introspection response from " + host + ": 'scope' is not a string"));
  std::vector<std::string> scopes = SplitScopes(Str(in, "scope"));
  const bool patient_scope = ScopesGrantImaging(scopes, profile_);
  const bool system_scope = profile_ == SmartProfile::kStandard && ScopesGrantSystemImaging(scopes);
  if (!patient_scope && !system_scope)
    return refused(Forbidden(
        std::string("the access token does not grant imaging access: it needs the scope ") +
        kImagingScopeNeeded));

  // 2. Whose token is it.
  std::string patient_id;
  std::optional<std::vector<std::string>> allowed_studies;
  bool system = false;
  const bool has_patient_context = !Str(in, "patient").empty();
  if (system_scope && !(patient_scope && has_patient_context)) {
    // Backend Services: a system-level token is worth only what the tenant's policy
    // grants its client, for the patient this request names. A patient-level token
    // without patient context never gets here: it has no system scope.
    if (!backend_services_enabled_)
      return refused(
          Forbidden(std::string("this tenant does not accept system scopes (it has no "
                                "authorization.backendServices policy): it needs the scope ") +
                    kImagingScopeNeeded));
    auto policy = backend_services_.find(Str(in, "client_id"));
    if (policy == backend_services_.end())
      return refused(Forbidden("this client has no Backend Services access at this tenant"));
    patient_id = request.patient_hint;
    if (patient_id.empty() || !IsFhirId(patient_id))
      return refused(
          Forbidden("a Backend Services request must name the patient by FHIR id (patient=...)"));
    const auto& allowed = policy->second.patients;
    if (std::find(allowed.begin(), allowed.end(), patient_id) == allowed.end())
      return refused(Forbidden("this client is not authorized for this patient"));
    if (!policy->second.studies.empty()) allowed_studies = policy->second.studies;
    system = true;
  } else if (profile_ == SmartProfile::kMeditech) {
    patient_id = request.patient_hint;  // insecure by design: see the start-up warning
    if (!patient_id.empty() && !IsFhirId(patient_id))
      return refused(Forbidden("the request names a malformed patient id"));
  } else {
    if (profile_ == SmartProfile::kEpic)
      patient_id = PatientIdFromSub(Str(in, "sub"), fhir_base_url_);
    if (patient_id.empty()) patient_id = Str(in, "patient");
    if (!patient_id.empty() && !IsFhirId(patient_id))
      return transient(BadGateway("malformed introspection response from " + host +
                                  ": 'patient' is not a FHIR id"));
  }
  if (patient_id.empty())
    return refused(Forbidden(
        "the access token carries no patient context; imaging access needs a patient-level token"));

  // 3. The Patient, for its identifiers and MRN (meditech: read with the app's own token).
  HttpClientRequest pr;
  pr.url = fhir_base_url_ + "/Patient/" + patient_id;
  const std::string fhir_host = HostPortOf(pr.url);
  for (int attempt = 0; attempt < 2; ++attempt) {
    pr.headers = {{"Accept", "application/fhir+json"}};
    if (profile_ == SmartProfile::kMeditech) {
      pr.headers.emplace_back("Authorization", "Bearer " + request.bearer_token);
    } else {
      auto ours = OurToken(attempt > 0);
      if (!ours.ok()) return transient(ours.status());
      pr.headers.emplace_back("Authorization", "Bearer " + *ours);
    }
    r = Send(pr, "the Patient read at " + fhir_host);
    if (!r.ok()) return transient(r.status());
    if (r->status != 401 || profile_ == SmartProfile::kMeditech) break;
  }
  if (r->status != 200)
    return transient(BadGateway("the Patient read at " + fhir_host + " answered HTTP " +
                                std::to_string(r->status)));
  auto patient = ParsePatientResource(r->body, mrn_expressions_);
  if (!patient.ok())
    return transient(
        BadGateway("malformed Patient from " + fhir_host + ": " + patient.status().message()));
  if (patient->id != patient_id)
    return transient(BadGateway("the Patient read at " + fhir_host +
                                " returned another patient than asked for"));

  AuthDecision decision;
  decision.patient = std::move(patient).value();
  decision.scopes = std::move(scopes);
  decision.system = system;
  decision.allowed_studies = std::move(allowed_studies);
  decision.expires_at = exp;
  int64_t until = max_until;
  if (exp > 0 && until > exp) until = exp;
  return DecisionCache::Computed{std::move(decision), until};
}

Result<AuthDecision> SmartAuthorizer::Authorize(const AuthRequest& request) const {
  if (request.bearer_token.empty())
    return Unauthorized(
        "an access token is required: send Authorization: Bearer <token> from the EHR");
  // Meditech decisions depend on the patient the request names, so it is part of the key.
  std::string key = request.bearer_token;
  // So do Backend Services decisions (the policy is per patient).
  if (profile_ == SmartProfile::kMeditech || backend_services_enabled_)
    key += "\n" + request.patient_hint;
  return cache_.GetOrCompute(key, [&] { return Compute(request); });
}

Result<std::string> SmartAuthorizer::SmartConfiguration() const {
  auto disc = Discover();
  if (!disc.ok()) return disc.status();
  rapidjson::Document d;
  d.Parse(disc->json.c_str());
  auto& a = d.GetAllocator();
  // Adds each value to the array `key` unless it is there already (creates the array).
  auto ensure = [&](const char* key, std::initializer_list<const char*> values) {
    if (!d.HasMember(key) || !d[key].IsArray()) {
      d.RemoveMember(key);
      d.AddMember(rapidjson::Value(key, a), rapidjson::Value(rapidjson::kArrayType), a);
    }
    auto& array = d[key];
    for (const char* c : values) {
      bool present = false;
      for (auto& v : array.GetArray())
        present |= v.IsString() && std::string_view(v.GetString()) == c;
      if (!present) array.PushBack(rapidjson::Value(c, a), a);
    }
  };
  // This endpoint shares the EHR's authorization (SMART Imaging Access): app launch
  // always, Backend Services when the tenant has a policy for it.
  ensure("capabilities", {"smart-imaging-access",
                          "http://fhir.org/argonaut/smart-imaging/capabilities/app-launch"});
  ensure("grant_types_supported", {"authorization_code"});
  if (backend_services_enabled_) {
    ensure("capabilities", {"http://fhir.org/argonaut/smart-imaging/capabilities/backend-services",
                            "client-confidential-asymmetric"});
    ensure("grant_types_supported", {"client_credentials"});
    ensure("token_endpoint_auth_methods_supported", {"private_key_jwt"});
    ensure("token_endpoint_auth_signing_alg_values_supported", {"RS384", "ES384"});
    ensure("scopes_supported", {"system/ImagingStudy.rs"});
  }
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  d.Accept(w);
  return std::string(sb.GetString(), sb.GetSize());
}

std::unique_ptr<Authorizer> MakeSmartAuthorizer(const TenantConfig& tenant,
                                                std::shared_ptr<HttpClient> http,
                                                const Clock& clock) {
  auto a = SmartAuthorizer::Create(tenant, std::move(http), clock);
  if (!a.ok()) return std::make_unique<FailedAuthorizer>(a.status());
  return std::move(a).value();
}

}  // namespace si
