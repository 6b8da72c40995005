// The DICOMweb source against a scripted HttpClient: the delay mode (503 with an
// integer Retry-After), QIDO-RS queries, concurrent series queries with a bound,
// exact patient matching, plans for PlanWado, and pass-through error mapping.
#include "src/dicomweb_source.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

namespace si {
namespace {

// Answers by URL path (without the query); counts concurrent requests.
class ScriptedHttp final : public HttpClient {
 public:
  struct Answer {
    int status = 200;
    std::string body;
    std::string content_type = "application/dicom+json";
  };
  std::map<std::string, Answer> answers;  // by path after the root
  std::chrono::milliseconds latency{0};
  std::atomic<int> in_flight{0}, max_in_flight{0}, requests{0};
  std::mutex mutex;
  std::vector<HttpClientRequest> seen;  // guarded by mutex
  Status fail_with;                     // non-OK: every request fails so

  Result<HttpClientResponse> Send(const HttpClientRequest&) override {
    return Internal("not used");
  }
  Status Stream(const HttpClientRequest& request, HttpStreamHandler& handler) override {
    {
      std::lock_guard<std::mutex> lock(mutex);
      seen.push_back(request);
    }
    ++requests;
    int now = ++in_flight;
    for (int m = max_in_flight; now > m && !max_in_flight.compare_exchange_weak(m, now);) {
    }
    std::this_thread::sleep_for(latency);
    --in_flight;
    if (!fail_with.ok()) return fail_with;
    std::string path = request.url.substr(std::string("http://pacs/dw").size());
    path = path.substr(0, path.find('?'));
    auto it = answers.find(path);
    Answer a = it == answers.end() ? Answer{404, "", "text/plain"} : it->second;
    SI_RETURN_IF_ERROR(handler.OnHead(a.status, {{"content-type", a.content_type}}));
    for (size_t i = 0; i < a.body.size(); i += 5)
      SI_RETURN_IF_ERROR(handler.OnBody(std::string_view(a.body).substr(i, 5)));
    return Status::Ok();
  }
};

std::string Study(const std::string& uid, const std::string& patient) {
  return R"({"0020000D":{"vr":"UI","Value":[")" + uid + R"("]},"00100020":{"vr":"LO","Value":[")" +
         patient + R"("]}})";
}
std::string Series(const std::string& uid, int n) {
  return R"({"0020000E":{"vr":"UI","Value":[")" + uid +
         R"("]},"00080060":{"vr":"CS","Value":["CT"]},"00201209":{"vr":"IS","Value":[)" +
         std::to_string(n) + "]}}";
}

struct Fixture {
  std::shared_ptr<ScriptedHttp> http = std::make_shared<ScriptedHttp>();
  FakeClock clock{1'700'000'000};
  DicomWebSettings settings;
  Fixture() {
    settings.root = "http://pacs/dw";
    settings.authorization = "Basic dXNlcjpzZWNyZXQ=";
  }
  DicomWebSource Source() { return DicomWebSource(settings, http, clock); }
};

TEST(DicomWebDelay, RetryAfterIsWholeSecondsAtLeastOne) {
  EXPECT_EQ(DelayRetryAfter(std::nullopt, 100), 0);
  EXPECT_EQ(DelayRetryAfter(100.0, 100), 0) << "the moment itself is past";
  EXPECT_EQ(DelayRetryAfter(99.0, 100), 0);
  EXPECT_EQ(DelayRetryAfter(100.2, 100), 1) << "fractions round up, never 0";
  EXPECT_EQ(DelayRetryAfter(101.0, 100), 1);
  EXPECT_EQ(DelayRetryAfter(160.5, 100), 61);
  EXPECT_EQ(DelayRetryAfter(4833623642.0, 1700000000), 3133623642) << "delayed.json's far future";
}

TEST(DicomWebDelay, LookupAndRetrieveAnswer503UntilTheirMoment) {
  Fixture f;
  f.settings.lookup_until = f.clock.NowSeconds() + 30.5;
  f.settings.retrieve_until = f.clock.NowSeconds() + 60;
  f.http->answers["/studies"] = {200, "[" + Study("1.2.1", "P") + "]"};
  f.http->answers["/studies/1.2.1/series"] = {200, "[" + Series("1.2.1.1", 2) + "]"};
  f.http->answers["/studies/1.2.1/instances"] = {
      200,
      R"([{"00080018":{"vr":"UI","Value":["1.2.1.1.1"]},"00100020":{"vr":"LO","Value":["P"]}}])"};
  auto source = f.Source();

  auto found = source.FindStudies({});
  ASSERT_FALSE(found.ok());
  EXPECT_EQ(found.status().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(found.status().http_status(), 503);
  EXPECT_EQ(found.status().retry_after_seconds(), 31);
  auto plan = source.PlanRetrieval({"1.2.1", {}, {}});
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().retry_after_seconds(), 60);
  EXPECT_EQ(f.http->requests, 0) << "a delayed tenant does not ask the server";

  f.clock.Advance(31);
  found = source.FindStudies({});
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(found->size(), 1u);
  plan = source.PlanRetrieval({"1.2.1", {}, {}});
  ASSERT_FALSE(plan.ok()) << "retrieval still delayed";
  EXPECT_EQ(plan.status().retry_after_seconds(), 29);
  f.clock.Advance(29);
  plan = source.PlanRetrieval({"1.2.1", {}, {}});
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
}

TEST(DicomWebDelay, SettingsComeFromTheTenantFile) {
  TenantConfig t;
  t.name = "delayed";
  t.endpoint = "http://orthanc:8042/dicom-web/";
  t.source_json =
      R"({"authorization":{"type":"mock"},"images":{"type":"dicom-web","endpoint":"http://orthanc:8042/dicom-web/",
    "delay":{"lookupUntil":4833623642,"retrieveUntil":1.5},"queryConcurrency":3,"timeoutSeconds":2.5,
    "authentication":{"type":"http-basic","username":"argonaut","password":"argonaut"}}})";
  auto s = ParseDicomWebSettings(t);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->root, "http://orthanc:8042/dicom-web");
  EXPECT_EQ(s->authorization, "Basic YXJnb25hdXQ6YXJnb25hdXQ=");
  EXPECT_EQ(*s->lookup_until, 4833623642.0);
  EXPECT_EQ(*s->retrieve_until, 1.5);
  EXPECT_EQ(s->query_concurrency, 3);
  EXPECT_EQ(s->timeout.count(), 2500);

  t.source_json =
      R"({"images":{"type":"dicom-web","authentication":{"type":"bearer","token":"T0K"}}})";
  s = ParseDicomWebSettings(t);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->authorization, "Bearer T0K");
  EXPECT_FALSE(s->lookup_until.has_value());
  t.source_json = R"({"images":{"type":"dicom-web","authentication":{"type":"bearer"}}})";
  s = ParseDicomWebSettings(t);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message().find("T0K"), std::string::npos);
  t.source_json = R"({"images":{"type":"dicom-web","authentication":{"type":"open"}}})";
  EXPECT_EQ(ParseDicomWebSettings(t)->authorization, "");
}

TEST(DicomWebSource, SeriesQueriesRunConcurrentlyWithinTheBound) {
  Fixture f;
  f.settings.query_concurrency = 4;
  f.http->latency = std::chrono::milliseconds(40);
  std::string studies = "[";
  for (int i = 1; i <= 10; ++i) {
    std::string uid = "1.2." + std::to_string(i);
    studies += (i > 1 ? "," : "") + Study(uid, "MRN-1");
    f.http->answers["/studies/" + uid + "/series"] = {
        200, "[" + Series(uid + ".1", i) + "," + Series(uid + ".2", 1) + "]"};
  }
  f.http->answers["/studies"] = {200, studies + "]"};
  auto source = f.Source();
  StudyQuery q;
  q.patient_id = "MRN-1";
  auto t0 = std::chrono::steady_clock::now();
  auto found = source.FindStudies(q);
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  ASSERT_EQ(found->size(), 10u);
  for (auto& s : *found) {
    EXPECT_EQ(s.series.size(), 2u);
    EXPECT_EQ(s.number_of_series, 2);
    EXPECT_EQ(s.modalities, (std::vector<std::string>{"CT"}));
  }
  EXPECT_EQ((*found)[9].number_of_instances, 11);
  EXPECT_EQ(f.http->requests, 11);
  EXPECT_EQ(f.http->max_in_flight, 4) << "bounded by queryConcurrency";
  // 1 study query + ceil(10 / 4) rounds of series queries, not 10 in a row.
  EXPECT_LT(ms, 40 * 8) << ms << " ms";

  std::lock_guard<std::mutex> lock(f.http->mutex);
  const auto& first = f.http->seen.front();
  EXPECT_NE(first.url.find("PatientID=MRN-1"), std::string::npos);
  EXPECT_NE(first.url.find("includefield=00201208"), std::string::npos);
  bool auth = false, accept = false;
  for (auto& [k, v] : first.headers) {
    auth |= k == "Authorization" && v == f.settings.authorization;
    accept |= k == "Accept" && v == "application/dicom+json";
  }
  EXPECT_TRUE(auth);
  EXPECT_TRUE(accept);
}

TEST(DicomWebSource, OnlyExactPatientMatchesCount) {
  Fixture f;
  // A server's wildcard or case-blind matching must not hand us another patient's studies.
  f.http->answers["/studies"] = {200, "[" + Study("1.2.1", "MRN-1") + "," +
                                          Study("1.2.2", "mrn-1") + "," + Study("1.2.3", "MRN-10") +
                                          "]"};
  f.http->answers["/studies/1.2.1/series"] = {200, "[]"};
  auto source = f.Source();
  StudyQuery q;
  q.patient_id = "MRN-1";
  auto found = source.FindStudies(q);
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ(found->front().study_instance_uid, "1.2.1");
}

TEST(DicomWebSource, PlansCarryPatientIdsAndStayInScope) {
  Fixture f;
  f.http->answers["/studies/1.2.1/series/1.2.1.1/instances"] = {200, R"([
    {"00080018":{"vr":"UI","Value":["1.2.1.1.1"]},"0020000E":{"vr":"UI","Value":["1.2.1.1"]},"00100020":{"vr":"LO","Value":["MRN-1"]}},
    {"00080018":{"vr":"UI","Value":["1.2.1.1.2"]},"0020000E":{"vr":"UI","Value":["1.2.1.1"]},"00100020":{"vr":"LO","Value":["OTHER"]}},
    {"00080018":{"vr":"UI","Value":["1.2.9.9.9"]},"0020000E":{"vr":"UI","Value":["1.2.9.9"]},"00100020":{"vr":"LO","Value":["MRN-1"]}}])"};
  f.http->answers["/studies/1.2.5/instances"] = {200, "[]"};
  auto source = f.Source();
  auto plan = source.PlanRetrieval({"1.2.1", std::string("1.2.1.1"), {}});
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  ASSERT_EQ(plan->size(), 2u) << "an instance of another series is not in scope";
  EXPECT_EQ((*plan)[1].patient_id, "OTHER") << "PlanWado refuses the whole scope for it";
  EXPECT_EQ(source.PlanRetrieval({"1.2.5", {}, {}}).status().code(), ErrorCode::kNotFound)
      << "empty answer";
  EXPECT_EQ(source.PlanRetrieval({"1.2.6", {}, {}}).status().code(), ErrorCode::kNotFound)
      << "upstream 404";
  auto one = source.PlanRetrieval({"1.2.1", std::string("1.2.1.1"), std::string("1.2.1.1.1")});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->size(), 1u);
}

TEST(DicomWebSource, WithoutPatientChecksPlansOnlyShowExistence) {
  Fixture f;
  f.settings.patient_ids_needed = false;  // all-studies-on-server
  f.http->answers["/studies"] = {200, "[" + Study("1.2.1", "P") + "]"};
  f.http->answers["/studies/1.2.1/series"] = {200, "[" + Series("1.2.1.1", 3) + "]"};
  auto source = f.Source();
  EXPECT_TRUE(source.PlanRetrieval({"1.2.1", {}, {}}).ok());
  EXPECT_TRUE(source.PlanRetrieval({"1.2.1", std::string("1.2.1.1"), {}}).ok());
  EXPECT_EQ(source.PlanRetrieval({"1.2.1", std::string("1.2.1.7"), {}}).status().code(),
            ErrorCode::kNotFound);
  EXPECT_EQ(source.PlanRetrieval({"1.2.2", {}, {}}).status().code(), ErrorCode::kNotFound);
  std::lock_guard<std::mutex> lock(f.http->mutex);
  for (auto& r : f.http->seen) EXPECT_EQ(r.url.find("/instances"), std::string::npos) << r.url;
}

TEST(DicomWebSource, UpstreamFailuresMapToClearStatuses) {
  Fixture f;
  f.http->answers["/studies"] = {500, "stack trace with secrets"};
  auto source = f.Source();
  auto r = source.FindStudies({});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().http_status(), 502);
  EXPECT_EQ(r.status().message().find("secrets"), std::string::npos)
      << "upstream bodies are never passed on";
  f.http->answers["/studies"] = {401, ""};
  EXPECT_EQ(source.FindStudies({}).status().http_status(), 502);
  f.http->answers["/studies"] = {200, "<html>not json</html>"};
  EXPECT_EQ(source.FindStudies({}).status().http_status(), 502);
  f.http->fail_with = Status(ErrorCode::kGatewayTimeout, "pacs stalled");
  EXPECT_EQ(source.FindStudies({}).status().http_status(), 504);
  f.http->fail_with = Unavailable("pacs cannot be reached");
  EXPECT_EQ(source.FindStudies({}).status().http_status(), 503);

  EXPECT_EQ(StatusForUpstream(404, "h:1", true).http_status(), 404);
  EXPECT_EQ(StatusForUpstream(406, "h:1", true).http_status(), 406);
  EXPECT_EQ(StatusForUpstream(400, "h:1", false).http_status(), 502);
  EXPECT_EQ(StatusForUpstream(503, "h:1", false).http_status(), 503);
  EXPECT_EQ(StatusForUpstream(504, "h:1", false).http_status(), 504);
  EXPECT_EQ(StatusForUpstream(302, "h:1", false).http_status(), 502);
}

class CollectingSink final : public PassThroughSink {
 public:
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  Status OnHead(int s, const std::vector<std::pair<std::string, std::string>>& h) override {
    status = s;
    headers = h;
    return Status::Ok();
  }
  Status OnBody(std::string_view b) override {
    body.append(b);
    return Status::Ok();
  }
};

TEST(DicomWebSource, PassThroughForwardsContentTypeAndRewritesMetadataUrls) {
  Fixture f;
  const std::string ct = "multipart/related; type=\"application/dicom\"; boundary=abc";
  f.http->answers["/studies/1.2.1"] = {200, "--abc\r\n...bytes...\r\n--abc--", ct};
  f.http->answers["/studies/1.2.1/metadata"] = {
      200,
      R"([{"7FE00010":{"vr":"OW","BulkDataURI":"http://pacs/dw/studies/1.2.1/series/1/instances/2/bulk/7fe00010"}}])"};
  auto source = f.Source();
  PassThroughRequest req;
  req.scope.study_uid = "1.2.1";
  req.public_root = "https://us.example/t/wado/TOKEN/";
  CollectingSink sink;
  ASSERT_TRUE(source.PassThrough(req, sink).ok());
  EXPECT_EQ(sink.status, 200);
  ASSERT_EQ(sink.headers.size(), 1u);
  EXPECT_EQ(sink.headers[0], std::make_pair(std::string("Content-Type"), ct));
  EXPECT_EQ(sink.body, "--abc\r\n...bytes...\r\n--abc--");
  {
    std::lock_guard<std::mutex> lock(f.http->mutex);
    bool as_stored = false;
    for (auto& [k, v] : f.http->seen.back().headers)
      as_stored |= k == "Accept" && v.find("transfer-syntax=*") != std::string::npos;
    EXPECT_TRUE(as_stored) << "no Accept from the client: ask for the stored files";
  }

  req.suffix = "metadata";
  CollectingSink meta;
  ASSERT_TRUE(source.PassThrough(req, meta).ok());
  EXPECT_EQ(
      meta.body,
      R"([{"7FE00010":{"vr":"OW","BulkDataURI":"https://us.example/t/wado/TOKEN/studies/1.2.1/series/1/instances/2/bulk/7fe00010"}}])");

  req.suffix = "";
  req.scope.study_uid = "1.2.7";
  CollectingSink missing;
  Status s = source.PassThrough(req, missing);
  EXPECT_EQ(s.http_status(), 404);
  EXPECT_EQ(missing.status, 0) << "nothing reached the client";

  f.settings.retrieve_until = f.clock.NowSeconds() + 5;
  auto delayed = f.Source();
  CollectingSink none;
  Status d = delayed.PassThrough(req, none);
  EXPECT_EQ(d.http_status(), 503);
  EXPECT_EQ(d.retry_after_seconds(), 5);
}

TEST(DicomWebSource, RenderedPassesThroughWithItsParametersAndTheClientsAccept) {
  Fixture f;
  f.http->answers["/studies/1.2.1/series/3/rendered"] = {200, "\xFF\xD8jpeg", "image/jpeg"};
  f.http->answers["/studies/1.2.1/series/3/instances/4/frames/1"] = {
      200, "--b\r\n", "multipart/related; boundary=b"};
  auto source = f.Source();
  PassThroughRequest req;
  req.scope.study_uid = "1.2.1";
  req.scope.series_uid = "3";
  req.suffix = "rendered";
  // Only the rendering parameters, with plain values, go upstream.
  req.query = "viewport=64,64&quality=80&window=40,400,linear&evil=x&quality=1%26a%3Db";
  CollectingSink sink;
  ASSERT_TRUE(source.PassThrough(req, sink).ok());
  EXPECT_EQ(sink.headers[0].second, "image/jpeg");
  auto accept_of = [&](const HttpClientRequest& r) {
    for (auto& [k, v] : r.headers)
      if (k == "Accept") return v;
    return std::string();
  };
  {
    std::lock_guard<std::mutex> lock(f.http->mutex);
    EXPECT_EQ(f.http->seen.back().url,
              "http://pacs/dw/studies/1.2.1/series/3/"
              "rendered?viewport=64,64&quality=80&window=40,400,linear");
    EXPECT_EQ(accept_of(f.http->seen.back()), "image/jpeg")
        << "no client Accept: the rendered default";
  }
  req.accept = "image/png";
  CollectingSink png;
  source.PassThrough(req, png).ok();
  {
    std::lock_guard<std::mutex> lock(f.http->mutex);
    EXPECT_EQ(accept_of(f.http->seen.back()), "image/png");
  }
  // Frames forward the client's transfer-syntax ask as it is.
  req.scope.sop_uid = "4";
  req.suffix = "frames/1";
  req.query = "";
  req.accept =
      "multipart/related; type=application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1";
  CollectingSink frames;
  ASSERT_TRUE(source.PassThrough(req, frames).ok());
  std::lock_guard<std::mutex> lock(f.http->mutex);
  EXPECT_EQ(accept_of(f.http->seen.back()), req.accept);
  EXPECT_EQ(f.http->seen.back().url, "http://pacs/dw/studies/1.2.1/series/3/instances/4/frames/1");
}

}  // namespace
}  // namespace si
