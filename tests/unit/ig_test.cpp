// SMART Imaging Access IG pieces that are pure or local: system scopes, bearer
// capability tokens, _lastUpdated, the study change log, and the IG-profile
// elements the FHIR writers emit.
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>

#include "schema/fhir_resources.h"
#include "src/fhir_search.h"
#include "src/slow_search.h"
#include "src/smart_authorizer.h"
#include "src/study_change_log.h"
#include "src/study_token.h"
#include "src/tenant.h"

namespace si {
namespace {

TEST(IgScopes, SystemImagingScopesAreRecognizedSeparately) {
  for (const char* s : {"system/ImagingStudy.rs", "system/ImagingStudy.read",
                        "system/ImagingStudy.r", "system/*.rs", "system/ImagingStudy.s"})
    EXPECT_TRUE(ScopesGrantSystemImaging({s})) << s;
  for (const char* s :
       {"system/Patient.read", "system/ImagingStudy.c", "patient/ImagingStudy.rs",
        "user/ImagingStudy.rs", "system/DiagnosticReport.read", "systemImagingStudy.rs"})
    EXPECT_FALSE(ScopesGrantSystemImaging({s})) << s;
  // And the patient-level check never counts a system scope.
  EXPECT_FALSE(ScopeGrantsImaging("system/ImagingStudy.rs", SmartProfile::kStandard));
}

StudyBinding Binding() {
  StudyBinding b;
  b.study_uid = "1.2.3.4";
  b.tenant_key = "t";
  b.by_patient_id = "p1";
  return b;
}

TEST(IgBearerCapability, KindAndMrnRoundTripAndExpiryIsNeverLaterThanAsked) {
  FakeClock clock(1'700'000'000);
  StudyTokenCodec codec("secret", clock, std::chrono::seconds(3600));
  StudyBinding b = Binding();
  b.bearer = true;
  b.mrn = "MRN-1";
  b.expires_at = 1'700'000'100;  // the SMART token's exp
  auto token = codec.Issue(b);
  ASSERT_TRUE(token.ok());
  auto v = codec.Verify(*token);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->bearer);
  EXPECT_EQ(v->mrn.value_or(""), "MRN-1");
  EXPECT_EQ(v->expires_at, 1'700'000'100);
  clock.Advance(100);
  EXPECT_EQ(codec.Verify(*token).status().http_status(), 403);

  // A later exp than the configured lifetime is cut to the lifetime.
  StudyBinding late = Binding();
  late.expires_at = clock.NowSeconds() + 999'999;
  auto t2 = codec.Verify(*codec.Issue(late));
  ASSERT_TRUE(t2.ok());
  EXPECT_EQ(t2->expires_at, clock.NowSeconds() + 3600);
  EXPECT_FALSE(t2->bearer) << "a token-bound study token is not a capability";
}

TEST(IgLastUpdated, ParsesPrefixesAndFiltersOnTheSecond) {
  auto search = ParseStudySearch({{"patient", "p"}, {"_lastUpdated", "gt2023-04-17T04:00:00Z"}});
  ASSERT_TRUE(search.ok());
  ASSERT_EQ(search->last_updated.size(), 1u);
  StudyRecord s;
  s.study_instance_uid = "1.2";
  const int64_t boundary = 1681704000;  // 2023-04-17T04:00:00Z
  s.last_updated = boundary;
  EXPECT_FALSE(StudyMatches(*search, s, 0)) << "gt excludes the instant itself";
  s.last_updated = boundary + 1;
  EXPECT_TRUE(StudyMatches(*search, s, 0));
  s.last_updated = 0;
  EXPECT_FALSE(StudyMatches(*search, s, 0)) << "unknown lastUpdated never matches a filter";
  auto le = ParseStudySearch({{"patient", "p"}, {"_lastUpdated", "le2023-04-17"}});
  ASSERT_TRUE(le.ok());
  s.last_updated = boundary;
  EXPECT_TRUE(StudyMatches(*le, s, 0));
  s.last_updated = boundary + 86400;
  EXPECT_FALSE(StudyMatches(*le, s, 0));
  EXPECT_EQ(ParseStudySearch({{"_lastUpdated", "gtyesterday"}}).status().http_status(), 400);
}

TEST(IgChangeLog, FirstSeenThenOnlyCountChangesMoveIt) {
  auto dir =
      std::filesystem::temp_directory_path() / ("ig-change-log-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  FakeClock clock(1'000);
  {
    auto log = SqliteStudyChangeLog::Open(dir / "c.sqlite", clock);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    std::vector<StudyRecord> v(2);
    v[0].study_instance_uid = "1.1";
    v[0].number_of_series = 1;
    v[0].number_of_instances = 3;
    v[1].study_instance_uid = "1.2";
    v[1].last_updated = 77;  // the source knows: left alone
    ASSERT_TRUE((*log)->Observe("t", v).ok());
    EXPECT_EQ(v[0].last_updated, 1'000);
    EXPECT_EQ(v[1].last_updated, 77);
  }
  clock.Advance(50);
  auto log = SqliteStudyChangeLog::Open(dir / "c.sqlite", clock);  // survives a restart
  ASSERT_TRUE(log.ok());
  std::vector<StudyRecord> again(1);
  again[0].study_instance_uid = "1.1";
  again[0].number_of_series = 1;
  again[0].number_of_instances = 3;
  ASSERT_TRUE((*log)->Observe("t", again).ok());
  EXPECT_EQ(again[0].last_updated, 1'000) << "same counts: unchanged";
  std::vector<StudyRecord> other_tenant = again;
  other_tenant[0].last_updated = 0;
  ASSERT_TRUE((*log)->Observe("u", other_tenant).ok());
  EXPECT_EQ(other_tenant[0].last_updated, 1'050) << "tenants are separate";
  clock.Advance(10);
  again[0].last_updated = 0;
  again[0].number_of_instances = 4;
  ASSERT_TRUE((*log)->Observe("t", again).ok());
  EXPECT_EQ(again[0].last_updated, 1'060) << "an instance arrived";
  std::filesystem::remove_all(dir);
}

TEST(IgResources, ImagingStudyAndEndpointCarryTheProfilesElements) {
  StudyRecord s;
  s.study_instance_uid = "1.2.3";
  s.accession_number = "ACC-9";
  s.modalities = {"CT"};
  s.number_of_series = 1;
  s.number_of_instances = 1;
  s.last_updated = 1681704000;
  SeriesRecord se;
  se.series_instance_uid = "1.2.3.1";
  se.modality = "CT";
  se.number_of_instances = 1;
  s.series.push_back(se);
  schema::StudyLinks l;
  l.endpoint_id = "e1";
  l.endpoint_address = "http://x/t/wado/tok";
  l.subject_reference = "Patient/p1";
  for (bool needs_token : {true, false}) {
    l.requires_access_token = needs_token;
    rapidjson::StringBuffer sb;
    schema::JsonWriter w(sb);
    schema::WriteImagingStudy(w, s, l);
    rapidjson::Document d;
    d.Parse(sb.GetString());
    ASSERT_FALSE(d.HasParseError());
    EXPECT_STREQ(d["meta"]["lastUpdated"].GetString(), "2023-04-17T04:00:00Z");
    EXPECT_STREQ(d["meta"]["profile"][0].GetString(), schema::kSmartImagingStudyProfile);
    EXPECT_STREQ(d["basedOn"][0]["identifier"]["value"].GetString(), "ACC-9");
    const auto& e = d["contained"][0];
    EXPECT_STREQ(e["meta"]["profile"][0].GetString(), schema::kSmartWadoEndpointProfile);
    EXPECT_STREQ(e["extension"][0]["url"].GetString(), schema::kRequiresAccessTokenExtension);
    EXPECT_EQ(e["extension"][0]["valueBoolean"].GetBool(), needs_token);
    EXPECT_STREQ(e["status"].GetString(), "active");
    EXPECT_STREQ(e["connectionType"]["code"].GetString(), "dicom-wado-rs");
  }
}

}  // namespace
}  // namespace si

namespace si {
namespace {

// A source query the test releases by hand: no timing in the assertions.
struct Gate {
  std::mutex m;
  std::condition_variable cv;
  bool open = false;
  int calls = 0;
  void Open() {
    std::lock_guard<std::mutex> l(m);
    open = true;
    cv.notify_all();
  }
};

TEST(IgSlowSearch, AnswersUnavailableThenServesTheIdenticalRetryFromTheBackgroundResult) {
  FakeClock clock(1'000);
  SlowSearchCache cache(clock, 60);
  auto gate = std::make_shared<Gate>();
  auto compute = [gate](std::string uid) {
    return [gate, uid]() -> SlowSearchCache::Studies {
      std::unique_lock<std::mutex> l(gate->m);
      ++gate->calls;
      gate->cv.wait(l, [&] { return gate->open; });
      StudyRecord s;
      s.study_instance_uid = uid;
      return std::vector<StudyRecord>{s};
    };
  };
  auto first = cache.Get("t\np1\nq", std::chrono::milliseconds(0), compute("1.1"));
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.status().http_status(), 503);
  EXPECT_EQ(first.status().retry_after_seconds(), 1);
  // The same key while running joins it; another patient's key never sees its result.
  auto joined = cache.Get("t\np1\nq", std::chrono::milliseconds(0), compute("unused"));
  EXPECT_EQ(joined.status().http_status(), 503);
  auto other = cache.Get("t\np2\nq", std::chrono::milliseconds(0), compute("2.2"));
  EXPECT_EQ(other.status().http_status(), 503);
  gate->Open();
  auto retry = cache.Get("t\np1\nq", std::chrono::seconds(30), compute("unused"));
  ASSERT_TRUE(retry.ok()) << retry.status().ToString();
  EXPECT_EQ(retry->front().study_instance_uid, "1.1");
  auto p2 = cache.Get("t\np2\nq", std::chrono::seconds(30), compute("unused"));
  ASSERT_TRUE(p2.ok());
  EXPECT_EQ(p2->front().study_instance_uid, "2.2");
  {
    std::lock_guard<std::mutex> l(gate->m);
    EXPECT_EQ(gate->calls, 2) << "one query per key, the retries joined it";
  }
  EXPECT_EQ(cache.size(), 0u) << "results are handed out once";
  // A fast source answers within the wait: no 503 at all.
  auto fast = cache.Get("t\np1\nq", std::chrono::seconds(30), compute("3.3"));
  ASSERT_TRUE(fast.ok());
  EXPECT_EQ(fast->front().study_instance_uid, "3.3");
}

}  // namespace
}  // namespace si

namespace si {
namespace {

TEST(IgTenant, BackendServicesCapabilityAndSlowSearchSettingsLoad) {
  const char* json = R"({"capability": "bearer",
    "authorization": {"type": "mock", "disableAuthzChecks": true,
      "backendServices": {"lab": {"patients": ["p1", "p2"], "studies": ["1.2.3"]}, "reg": {"patients": []}}},
    "images": {"type": "folder", "path": "/tmp/x", "slowSearch": 250}})";
  auto t = ParseTenant("t", json, "t.json", "/");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_TRUE(t->bearer_capability);
  EXPECT_TRUE(t->backend_services_enabled);
  ASSERT_EQ(t->backend_services.size(), 2u);
  EXPECT_EQ(t->backend_services.at("lab").patients, (std::vector<std::string>{"p1", "p2"}));
  EXPECT_EQ(t->backend_services.at("lab").studies, (std::vector<std::string>{"1.2.3"}));
  EXPECT_TRUE(t->backend_services.at("reg").studies.empty());
  EXPECT_EQ(t->slow_search_ms, 250);
  auto plain = ParseTenant(
      "t", R"({"authorization": {"type": "mock"}, "images": {"type": "folder", "path": "/x"}})",
      "t.json", "/");
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->bearer_capability);
  EXPECT_FALSE(plain->backend_services_enabled);
  EXPECT_EQ(plain->slow_search_ms, 0);
  for (
      const char* bad :
      {R"({"capability": "open", "authorization": {"type": "mock"}, "images": {"type": "folder", "path": "/x"}})",
       R"({"authorization": {"type": "mock", "backendServices": {"c": {"studies": []}}}, "images": {"type": "folder", "path": "/x"}})",
       R"({"authorization": {"type": "mock"}, "images": {"type": "folder", "path": "/x", "slowSearch": 0}})"}) {
    auto r = ParseTenant("t", bad, "t.json", "/");
    EXPECT_FALSE(r.ok()) << bad;
  }
}

}  // namespace
}  // namespace si
