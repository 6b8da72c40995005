#pragma once
// The Authorizer seam: who is this request for? Implementations are thread-safe.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "src/status.h"
#include "src/tenant.h"

namespace si {

struct AuthRequest {
  std::string bearer_token;  // empty when no Authorization header
  // The patient (FHIR id) the request itself names: a search's patient/subject, a
  // study token's patient. Only the insecure meditech profile trusts it.
  std::string patient_hint;
};

struct AuthDecision {
  // The authorized patient; empty with any_patient for open tenants.
  std::optional<FhirPatient> patient;
  bool any_patient = false;
  std::vector<std::string> scopes;
  int64_t expires_at = 0;  // 0: no expiry of its own
  // Backend Services (a system-scoped token of a client in the tenant's policy): the
  // patient is the one the request named, checked against the policy; when the policy
  // lists studies, only those may be seen.
  bool system = false;
  std::optional<std::vector<std::string>> allowed_studies;
};

class Authorizer {
 public:
  virtual ~Authorizer() = default;
  virtual Result<AuthDecision> Authorize(const AuthRequest& request) const = 0;
  // The authorization server metadata served at {tenant}/fhir/.well-known/smart-configuration
  // (JSON text); NotFound for tenants without SMART authorization.
  virtual Result<std::string> SmartConfiguration() const {
    return NotFound("this tenant does not use SMART authorization");
  }
};

// The reference's "mock": the configured patient is the authorized one;
// disableAuthzChecks allows any patient.
class MockAuthorizer final : public Authorizer {
 public:
  explicit MockAuthorizer(const TenantConfig& tenant);
  Result<AuthDecision> Authorize(const AuthRequest& request) const override;

 private:
  AuthDecision decision_;
};

// For authorization types this build does not implement yet: every request gets
// a clear 501 naming the type.
class UnavailableAuthorizer final : public Authorizer {
 public:
  explicit UnavailableAuthorizer(std::string type) : type_(std::move(type)) {}
  Result<AuthDecision> Authorize(const AuthRequest& request) const override;

 private:
  std::string type_;
};

std::unique_ptr<Authorizer> MakeAuthorizer(const TenantConfig& tenant);

}  // namespace si
