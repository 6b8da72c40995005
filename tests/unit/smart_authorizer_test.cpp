#include "src/smart_authorizer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>

#include "src/decision_cache.h"

namespace si {
namespace {

TEST(SmartScopes, V1AndV2ImagingScopes) {
  for (const char* s :
       {"patient/ImagingStudy.read", "patient/ImagingStudy.*", "patient/*.read", "patient/*.*",
        "patient/ImagingStudy.rs", "patient/ImagingStudy.r", "patient/ImagingStudy.s",
        "patient/*.rs", "patient/*.cruds", "patient/ImagingStudy.rs?category=x"})
    EXPECT_TRUE(ScopeGrantsImaging(s, SmartProfile::kStandard)) << s;
  for (const char* s :
       {"patient/Observation.rs", "user/ImagingStudy.read", "system/ImagingStudy.rs",
        "launch/patient", "patient/ImagingStudy.write", "patient/ImagingStudy.cud",
        "patient/ImagingStudy.sr", "patient/ImagingStudy.", "patient/ImagingStudy",
        "patient/DiagnosticReport.read", "patient/ImagingStudy.read?x=1", "openid"})
    EXPECT_FALSE(ScopeGrantsImaging(s, SmartProfile::kStandard)) << s;
  EXPECT_TRUE(ScopeGrantsImaging("patient/DiagnosticReport.read", SmartProfile::kEpic));
  EXPECT_TRUE(ScopeGrantsImaging("patient/DiagnosticReport.read", SmartProfile::kMeditech));
  EXPECT_EQ(SplitScopes("  openid \t patient/*.rs\nlaunch "),
            (std::vector<std::string>{"openid", "patient/*.rs", "launch"}));
  EXPECT_TRUE(
      ScopesGrantImaging(SplitScopes("openid patient/ImagingStudy.rs"), SmartProfile::kStandard));
  EXPECT_FALSE(ScopesGrantImaging({}, SmartProfile::kStandard));
}

AuthDecision DecisionFor(const std::string& id) {
  AuthDecision d;
  d.patient = FhirPatient{id, {}, ""};
  return d;
}

TEST(DecisionCache, LivesUntilItsExpiryAndCachesRefusalsBriefly) {
  FakeClock clock(1000);
  DecisionCache cache(clock);
  int computed = 0;
  auto ok_until = [&](int64_t until) {
    return [&, until] {
      ++computed;
      return DecisionCache::Computed{DecisionFor("p1"), until};
    };
  };
  EXPECT_EQ(cache.GetOrCompute("tok", ok_until(1060))->patient->id, "p1");
  EXPECT_EQ(cache.GetOrCompute("tok", ok_until(1060))->patient->id, "p1");
  EXPECT_EQ(computed, 1);
  clock.Advance(59);
  cache.GetOrCompute("tok", ok_until(1060)).ok();
  EXPECT_EQ(computed, 1);
  clock.Advance(1);  // at expiry: recomputed
  cache.GetOrCompute("tok", ok_until(1120)).ok();
  EXPECT_EQ(computed, 2);
  // Another token is another entry; the token is never a key in clear.
  cache.GetOrCompute("other", ok_until(2000)).ok();
  EXPECT_EQ(computed, 3);
  // Refusals: cached for as long as the caller says.
  int refused = 0;
  auto refuse = [&] {
    ++refused;
    return DecisionCache::Computed{Unauthorized("inactive"), clock.NowSeconds() + 5};
  };
  EXPECT_EQ(cache.GetOrCompute("bad", refuse).status().code(), ErrorCode::kUnauthorized);
  EXPECT_EQ(cache.GetOrCompute("bad", refuse).status().code(), ErrorCode::kUnauthorized);
  EXPECT_EQ(refused, 1);
  clock.Advance(5);
  cache.GetOrCompute("bad", refuse).ok();
  EXPECT_EQ(refused, 2);
  // Transient failures (expires_at <= now) are not cached.
  int down = 0;
  auto unavailable = [&] {
    ++down;
    return DecisionCache::Computed{Unavailable("EHR down"), 0};
  };
  cache.GetOrCompute("t2", unavailable).ok();
  cache.GetOrCompute("t2", unavailable).ok();
  EXPECT_EQ(down, 2);
  EXPECT_EQ(cache.hits(), 3u);
}

TEST(DecisionCache, ConcurrentMissesAskOnce) {
  FakeClock clock(1000);
  DecisionCache cache(clock);
  std::atomic<int> computed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&] {
      auto r = cache.GetOrCompute("tok", [&] {
        ++computed;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        return DecisionCache::Computed{DecisionFor("p1"), 1060};
      });
      EXPECT_TRUE(r.ok());
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(computed.load(), 1);
}

TEST(DecisionCache, BoundedSize) {
  FakeClock clock(1000);
  DecisionCache cache(clock, 100);
  for (int i = 0; i < 1000; ++i)
    cache
        .GetOrCompute("t" + std::to_string(i),
                      [] {
                        return DecisionCache::Computed{DecisionFor("p"), 2000};
                      })
        .ok();
  EXPECT_LE(cache.size(), 100u);
}

// A scripted EHR behind the HttpClient seam: the black-box suite runs the real one.
class ScriptedEhr final : public HttpClient {
 public:
  std::map<std::string, HttpClientResponse> by_url;
  std::vector<HttpClientRequest> seen;
  std::mutex mutex;
  Result<HttpClientResponse> Send(const HttpClientRequest& r) override {
    std::lock_guard<std::mutex> lock(mutex);
    seen.push_back(r);
    auto it = by_url.find(r.url);
    if (it == by_url.end()) return Unavailable("ehr cannot be reached");
    return it->second;
  }
  int Count(const std::string& url) {
    int n = 0;
    for (auto& r : seen) n += r.url == url;
    return n;
  }
};

constexpr const char* kEcJwk = R"({"kty":"EC","crv":"P-384",
  "d":"0PycFXdRavo2skKh0bWl--px1MnAEdoF2LeQJOonQ1dM-5EgRFva1KiDtw5aoDFc",
  "x":"bbUYFIVmARbcbKT4SxVp4EC_nVWXEBdTQZtbEcsjPnZnrB1AAHE1we3pfqMVoxUJ",
  "y":"5Mv6RH4jrXO5jSDILYhaFOzKDf0o-T0Dw4IKY9fdKzJvlvSI-Gte7YsjL36C6Ka5","alg":"ES384"})";

class SmartAuthorizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tenant.name = "t";
    tenant.authorization_type = "smart-on-fhir";
    tenant.fhir_base_url = "https://ehr/fhir";
    tenant.scope = "system/Patient.read";
    tenant.client_id = "facade";
    tenant.jwk_private_json = kEcJwk;
    ehr->by_url["https://ehr/fhir/.well-known/smart-configuration"] = {
        200,
        {},
        R"({"token_endpoint":"https://ehr/token","introspection_endpoint":"https://ehr/introspect"})"};
    ehr->by_url["https://ehr/token"] = {
        200, {}, R"({"access_token":"ours","token_type":"Bearer","expires_in":300})"};
    Introspect(R"({"active":true,"scope":"patient/ImagingStudy.rs","patient":"p1","exp":1000100})");
    ehr->by_url["https://ehr/fhir/Patient/p1"] = {
        200, {}, R"({"resourceType":"Patient","id":"p1","identifier":[
        {"type":{"coding":[{"code":"MR"}]},"system":"urn:mrn","value":"M1"}]})"};
  }
  void Introspect(const std::string& body) {
    ehr->by_url["https://ehr/introspect"] = {200, {}, body};
  }
  std::unique_ptr<SmartAuthorizer> Make() {
    auto a = SmartAuthorizer::Create(tenant, ehr, clock);
    EXPECT_TRUE(a.ok()) << a.status().ToString();
    return std::move(a).value();
  }
  TenantConfig tenant;
  std::shared_ptr<ScriptedEhr> ehr = std::make_shared<ScriptedEhr>();
  FakeClock clock{1000000};
};

TEST_F(SmartAuthorizerTest, FlowAndCaching) {
  auto a = Make();
  EXPECT_EQ(a->Authorize({}).status().code(), ErrorCode::kUnauthorized);
  auto d = a->Authorize({"app-token", ""});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->patient->id, "p1");
  EXPECT_EQ(MrnIdentifierOf(*d->patient)->value, "M1");
  EXPECT_EQ(d->expires_at, 1000100);
  // Introspection: our token as Bearer, the app's token in the form.
  const HttpClientRequest* intro = nullptr;
  for (auto& r : ehr->seen)
    if (r.url == "https://ehr/introspect") intro = &r;
  ASSERT_NE(intro, nullptr);
  EXPECT_EQ(intro->body, "token=app-token");
  bool bearer = false;
  for (auto& [k, v] : intro->headers) bearer |= k == "Authorization" && v == "Bearer ours";
  EXPECT_TRUE(bearer);
  // Cached: no second introspection, until the token's exp (100 s, before the 60 s max? no: 60 s
  // wins).
  a->Authorize({"app-token", ""}).ok();
  EXPECT_EQ(ehr->Count("https://ehr/introspect"), 1);
  clock.Advance(60);
  a->Authorize({"app-token", ""}).ok();
  EXPECT_EQ(ehr->Count("https://ehr/introspect"), 2);
  // Our own token is reused until shortly before it expires.
  EXPECT_EQ(ehr->Count("https://ehr/token"), 1);
  clock.Advance(240);
  Introspect(R"({"active":true,"scope":"patient/ImagingStudy.rs","patient":"p1","exp":2000000})");
  a->Authorize({"app-token", ""}).ok();
  EXPECT_EQ(ehr->Count("https://ehr/token"), 2);
}

TEST_F(SmartAuthorizerTest, CacheNeverOutlivesTheToken) {
  Introspect(R"({"active":true,"scope":"patient/ImagingStudy.rs","patient":"p1","exp":1000010})");
  auto a = Make();
  ASSERT_TRUE(a->Authorize({"t", ""}).ok());
  clock.Advance(9);
  a->Authorize({"t", ""}).ok();
  EXPECT_EQ(ehr->Count("https://ehr/introspect"), 1);
  clock.Advance(1);
  Introspect(R"({"active":false})");
  EXPECT_EQ(a->Authorize({"t", ""}).status().code(), ErrorCode::kUnauthorized);
}

TEST_F(SmartAuthorizerTest, FailuresMapToStatuses) {
  auto a = Make();
  Introspect(R"({"active":true,"scope":"patient/Observation.rs","patient":"p1"})");
  auto s = a->Authorize({"noscope", ""});
  EXPECT_EQ(s.status().code(), ErrorCode::kForbidden);
  EXPECT_NE(s.status().message().find("patient/ImagingStudy.rs"), std::string::npos);
  Introspect(R"({"active":true,"scope":"patient/*.rs"})");
  EXPECT_EQ(a->Authorize({"nopatient", ""}).status().code(), ErrorCode::kForbidden);
  Introspect(R"(["not an object"])");
  EXPECT_EQ(a->Authorize({"malformed", ""}).status().code(), ErrorCode::kBadGateway);
  Introspect(R"({"active":true,"scope":"patient/*.rs","patient":"../../admin"})");
  EXPECT_EQ(a->Authorize({"badid", ""}).status().code(), ErrorCode::kBadGateway);
  Introspect(R"({"active":true,"scope":"patient/*.rs","patient":"p1"})");
  ehr->by_url["https://ehr/fhir/Patient/p1"] = {200, {}, R"({"resourceType":"Patient","id":"p9"})"};
  EXPECT_EQ(a->Authorize({"otherpatient", ""}).status().code(), ErrorCode::kBadGateway);
  ehr->by_url.erase("https://ehr/introspect");
  auto down = a->Authorize({"down", ""});
  EXPECT_EQ(down.status().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(down.status().message().find("down"), std::string::npos)
      << "no token in: " << down.status().message();
  ehr->by_url["https://ehr/token"] = {
      400, {}, R"({"error":"invalid_client","error_description":"x"})"};
  clock.Advance(1000);
  Introspect(R"({"active":true,"scope":"patient/*.rs","patient":"p1"})");
  auto refused = a->Authorize({"creds", ""});
  EXPECT_EQ(refused.status().code(), ErrorCode::kBadGateway);
  EXPECT_NE(refused.status().message().find("invalid_client"), std::string::npos);
}

TEST_F(SmartAuthorizerTest, EpicAndMeditechProfiles) {
  tenant.authorization_type = "smart-on-fhir-with-epic-bugfixes";
  ehr->by_url["https://ehr/fhir/.well-known/smart-configuration"] = {
      200, {}, R"({"token_endpoint":"https://ehr/oauth2/token"})"};
  ehr->by_url["https://ehr/oauth2/token"] = {
      200, {}, R"({"access_token":"ours","expires_in":300})"};
  ehr->by_url["https://ehr/oauth2/introspect"] = {
      200,
      {},
      R"({"active":true,"scope":"patient/DiagnosticReport.read","sub":"https://ehr/fhir/Patient/p1"})"};
  auto epic = Make();
  auto d = epic->Authorize({"t", ""});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->patient->id, "p1");
  ehr->by_url["https://ehr/oauth2/introspect"] = {
      200,
      {},
      R"({"active":true,"scope":"patient/ImagingStudy.read","sub":"https://elsewhere/fhir/Patient/p1"})"};
  EXPECT_EQ(epic->Authorize({"t2", ""}).status().code(), ErrorCode::kForbidden)
      << "a sub outside the FHIR base";

  tenant.authorization_type = "smart-on-fhir-with-meditech-bugfixes";
  tenant.client_secret = "s3cret";
  tenant.jwk_private_json.clear();
  ehr->by_url["https://ehr/fhir/.well-known/smart-configuration"] = {
      200, {}, R"({"introspection_endpoint":"https://ehr/introspect"})"};
  Introspect(R"({"active":true,"scope":"patient/ImagingStudy.read"})");
  auto meditech = Make();
  auto m = meditech->Authorize({"app", "p1"});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->patient->id, "p1");
  const HttpClientRequest& last = ehr->seen.back();
  EXPECT_EQ(last.url, "https://ehr/fhir/Patient/p1");
  bool app_token = false;
  for (auto& [k, v] : last.headers) app_token |= k == "Authorization" && v == "Bearer app";
  EXPECT_TRUE(app_token) << "meditech reads the Patient with the app's token";
  EXPECT_EQ(meditech->Authorize({"app", ""}).status().code(), ErrorCode::kForbidden);
}

}  // namespace
}  // namespace si
