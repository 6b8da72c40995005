#pragma once
// SMART on FHIR authorization against the tenant's EHR, as the reference server
// does it and cached: discovery (.well-known/smart-configuration), our own
// client_credentials token (private_key_jwt, ES384/RS384), RFC 7662 introspection
// of the app's token with our token as Bearer, the scope check, and a Patient read
// for the MRN. Decisions are cached per token (SHA-256) within the tenant.
// Thread-safe: every mutable member is guarded.
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/authorizer.h"
#include "src/clock.h"
#include "src/decision_cache.h"
#include "src/http_client.h"
#include "src/jws.h"
#include "src/tenant.h"

namespace si {

enum class SmartProfile {
  kStandard,  // smart-on-fhir, smart-on-fhir-independent
  kEpic,      // introspection at .../introspect beside .../token; patient from `sub`
  kMeditech,  // client_secret Basic at introspection; patient from the request (insecure)
};

// The tenant's authorization type as a profile; nullopt for non-SMART types.
std::optional<SmartProfile> SmartProfileOf(std::string_view authorization_type);

// "a  b\tc" -> {"a","b","c"}.
std::vector<std::string> SplitScopes(std::string_view scope);

// Whether one scope grants reading/searching ImagingStudy at patient level:
// SMART v1 patient/ImagingStudy.read, patient/ImagingStudy.*, patient/*.read,
// patient/*.*; SMART v2 patient/{ImagingStudy|*}.{cruds subset with r or s},
// optionally with a ?query suffix. The Epic and Meditech profiles also accept
// patient/DiagnosticReport.read, as the reference does. System and user scopes
// never do: missing patient context is never system access.
bool ScopeGrantsImaging(std::string_view scope, SmartProfile profile);
bool ScopesGrantImaging(const std::vector<std::string>& scopes, SmartProfile profile);
// The same at system level (SMART Backend Services): system/ImagingStudy.rs, v1
// system/ImagingStudy.read and the like. Honoured only with a Backend Services policy.
bool ScopesGrantSystemImaging(const std::vector<std::string>& scopes);

// What a 403 says is needed.
inline constexpr const char* kImagingScopeNeeded =
    "patient/ImagingStudy.rs (SMART v2) or patient/ImagingStudy.read (SMART v1)";

class SmartAuthorizer final : public Authorizer {
 public:
  // InvalidConfig when the tenant's client settings are unusable.
  static Result<std::unique_ptr<SmartAuthorizer>> Create(const TenantConfig& tenant,
                                                         std::shared_ptr<HttpClient> http,
                                                         const Clock& clock);

  Result<AuthDecision> Authorize(const AuthRequest& request) const override;
  Result<std::string> SmartConfiguration() const override;

  const DecisionCache& cache() const { return cache_; }
  SmartProfile profile() const { return profile_; }

 private:
  struct Discovery {
    std::string json;
    std::string token_endpoint;
    std::string introspection_endpoint;
    int64_t fetched_at = 0;
  };

  SmartAuthorizer(const TenantConfig& tenant, SmartProfile profile,
                  std::shared_ptr<HttpClient> http, const Clock& clock,
                  std::shared_ptr<const JwsSigner> signer);

  DecisionCache::Computed Compute(const AuthRequest& request) const;
  Result<Discovery> Discover() const;
  // Our access token; `refresh` forces a new one (the EHR refused the cached one).
  Result<std::string> OurToken(bool refresh) const;
  Result<HttpClientResponse> Send(HttpClientRequest request, const std::string& what) const;
  std::string ClientAssertion(const std::string& audience) const;

  const std::string tenant_name_;
  const std::string fhir_base_url_;
  const std::string scope_;
  const std::string client_id_;
  const std::string client_secret_;
  const std::vector<std::string> mrn_expressions_;
  const bool backend_services_enabled_;
  const std::map<std::string, TenantConfig::BackendClientPolicy> backend_services_;
  const SmartProfile profile_;
  const std::chrono::milliseconds timeout_;
  const int64_t max_cache_seconds_;
  const int64_t negative_cache_seconds_;
  const int64_t discovery_ttl_seconds_;
  const std::shared_ptr<HttpClient> http_;
  const Clock& clock_;
  const std::shared_ptr<const JwsSigner> signer_;  // null for meditech

  mutable std::mutex discovery_mutex_;
  mutable std::optional<Discovery> discovery_;  // guarded by discovery_mutex_
  mutable std::mutex token_mutex_;  // held while a token is fetched: one refresh at a time
  mutable std::string our_token_;   // guarded by token_mutex_
  mutable int64_t our_token_refresh_at_ = 0;  // guarded by token_mutex_
  mutable DecisionCache cache_;
};

// A SmartAuthorizer, or when the tenant's settings are unusable one that answers
// every request with that configuration error.
std::unique_ptr<Authorizer> MakeSmartAuthorizer(const TenantConfig& tenant,
                                                std::shared_ptr<HttpClient> http,
                                                const Clock& clock);

}  // namespace si
