#include "src/tenant.h"

#include <gtest/gtest.h>

#include <fstream>

#include "tests/unit/test_support.h"

namespace si {
namespace {

Result<TenantConfig> Parse(const std::string& json) {
  return ParseTenant("t", json, "t.json", "/base");
}

TEST(Tenant, FolderTenantResolvesRelativePath) {
  auto t = Parse(R"({"authorization":{"type":"mock","disableAuthzChecks":true},
                     "images":{"type":"folder","path":"samples/","lookup":"studies-by-mrn"}})");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->folder_path, "/base/samples");
  EXPECT_EQ(t->lookup, Lookup::kStudiesByMrn);
  EXPECT_TRUE(t->disable_authz_checks);
  EXPECT_EQ(t->key, "t");
}

TEST(Tenant, InvalidFilesNameFilePathAndReason) {
  struct Case {
    const char* json;
    const char* expect;
  } cases[] = {
      {R"({"authorization":{"type":"mock"}})", "t.json: at /: missing required property 'images'"},
      {R"({"authorization":{"type":"mock"},"images":{"type":"ftp"}})",
       "at /images/type: must be one of"},
      {R"({"authorization":{"type":"mock"},"images":{"type":"folder"}})",
       "at /images: folder needs path"},
      {R"({"authorization":{"type":"mock"},"images":{"type":"folder","path":"x","lookup":"some"}})",
       "at /images/lookup: must be one of 'studies-by-mrn' 'all-studies-on-server'"},
      {R"({"authorization":{"type":"smart-on-fhir"},"images":{"type":"folder","path":"x"}})",
       "at /authorization: SMART authorization types need fhirBaseUrl and client"},
      {R"({"authorization":{"type":"mock","disableAuthzChecks":"yes"},"images":{"type":"folder","path":"x"}})",
       "at /authorization/disableAuthzChecks: wrong type, expected boolean"},
      {R"({"authorization":{"type":"mock"},"images":{"type":"dicom-dimse","endpoint":"dimse://pacs:104"}})",
       "at /images: folder needs path; dicom-web needs an http(s) endpoint; dicom-dimse needs "
       "endpoint"},
      {R"({"authorization": )", "t.json: at /: not valid JSON"},
  };
  for (auto& c : cases) {
    auto t = Parse(c.json);
    ASSERT_FALSE(t.ok()) << c.json;
    EXPECT_NE(t.status().message().find(c.expect), std::string::npos)
        << "got: " << t.status().message() << "\nwanted: " << c.expect;
  }
}

TEST(Tenant, MrnIsTheIdentifierCodedMrElseTheFirst) {
  auto t = Parse(
      R"({"authorization":{"type":"mock","patient":{"resourceType":"Patient","id":"p1","identifier":[
      {"system":"urn:ssn","value":"999"},
      {"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]},"system":"urn:mrn","value":"M42"}]}},
      "images":{"type":"folder","path":"x"}})");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  auto mrn = MrnIdentifierOf(*t->patient);
  ASSERT_TRUE(mrn);
  EXPECT_EQ(mrn->value, "M42");
  EXPECT_EQ(mrn->system, "urn:mrn");
  FhirPatient plain{"p2", {{"", "first", {}, ""}, {"", "second", {}, ""}}};
  EXPECT_EQ(MrnIdentifierOf(plain)->value, "first");
  EXPECT_FALSE(MrnIdentifierOf(FhirPatient{"p3", {}}).has_value());
}

TEST(Tenant, Base64UrlRoundTrip) {
  for (std::string s : {"", "a", "ab", "abc", "abcd", "{\"x\":\"\xff\xfe\"}"}) {
    auto decoded = Base64UrlDecode(Base64UrlEncode(s));
    ASSERT_TRUE(decoded) << s;
    EXPECT_EQ(*decoded, s);
  }
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  EXPECT_FALSE(Base64UrlDecode("a$b").has_value());
}

// The reference server's tenant files must load unchanged. They live in
// ../shared beside the checkout in CI; a user's clone may not have them.
TEST(Tenant, ReferenceSeedConfigsLoadUnchanged) {
  std::filesystem::path seeds =
      std::filesystem::path(SI_SOURCE_DIR) / ".." / "shared" / "seed-configs";
  if (!std::filesystem::is_directory(seeds))
    GTEST_SKIP() << "../shared/seed-configs is absent: skipping";
  testing::TempDir dir("seeds");
  int copied = 0;
  for (auto& e : std::filesystem::directory_iterator(seeds)) {
    std::filesystem::copy_file(e.path(), dir.path() / e.path().filename());
    ++copied;
  }
  ASSERT_GT(copied, 10);
  auto tenants = LoadTenantDirectory(dir.path(), dir.path());
  ASSERT_TRUE(tenants.ok()) << tenants.status().ToString();
  EXPECT_EQ(static_cast<int>(tenants->size()), copied);
  for (auto& t : *tenants) {
    EXPECT_FALSE(t.authorization_type.empty()) << t.name;
    EXPECT_FALSE(t.images_type.empty()) << t.name;
    if (t.name == "hardcoded-patient") {
      ASSERT_TRUE(t.patient.has_value());
      EXPECT_EQ(t.patient->id, "87a339d0-8cae-418e-89c7-8651e6aab3c6");
      EXPECT_EQ(MrnIdentifierOf(*t.patient)->value, "293ee354-f8ad-4345-b10c-759fdfdcc082");
    }
    if (t.name == "epic-sandbox") EXPECT_EQ(t.mrn_expressions.size(), 1u);
  }
}

}  // namespace
}  // namespace si
