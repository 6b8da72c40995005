#include "src/authorizer.h"

#include "src/smart_authorizer.h"

namespace si {

MockAuthorizer::MockAuthorizer(const TenantConfig& tenant) {
  decision_.patient = tenant.patient;
  decision_.any_patient = tenant.disable_authz_checks;
  decision_.scopes = {"patient/*.read"};
}

Result<AuthDecision> MockAuthorizer::Authorize(const AuthRequest&) const { return decision_; }

Result<AuthDecision> UnavailableAuthorizer::Authorize(const AuthRequest&) const {
  return NotImplemented("authorization type '" + type_ +
                        "' is not available in this version of smart-imaging");
}

std::unique_ptr<Authorizer> MakeAuthorizer(const TenantConfig& tenant) {
  if (tenant.authorization_type == "mock") return std::make_unique<MockAuthorizer>(tenant);
  if (SmartProfileOf(tenant.authorization_type)) {
    static const SystemClock clock;
    return MakeSmartAuthorizer(tenant, DefaultHttpClient(), clock);
  }
  return std::make_unique<UnavailableAuthorizer>(tenant.authorization_type);
}

}  // namespace si
