#include "src/fhir_search.h"

#include <gtest/gtest.h>

namespace si {
namespace {

TEST(FhirSearch, ParsesPatientForms) {
  for (const char* v : {"123", "Patient/123", "https://ehr.example/fhir/Patient/123"}) {
    auto s = ParseStudySearch({{"patient", v}});
    ASSERT_TRUE(s.ok()) << v;
    EXPECT_EQ(*s->patient_id, "123") << v;
  }
  auto s = ParseStudySearch({{"subject.identifier", "urn:mrn|M1"}});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->patient_identifier->system, "urn:mrn");
  EXPECT_EQ(s->patient_identifier->value, "M1");
  EXPECT_FALSE(ParseStudySearch({{"patient", "a,b"}}).ok());
  EXPECT_FALSE(ParseStudySearch({{"patient", "a"}, {"subject", "b"}}).ok());
}

TEST(FhirSearch, MalformedParametersAreInvalidArgument) {
  for (ParamList p : std::vector<ParamList>{{{"_count", "abc"}},
                                            {{"_count", "-1"}},
                                            {{"started", "notadate"}},
                                            {{"started", "2020-13-01"}},
                                            {{"started", "ge2020-02-30"}},
                                            {{"identifier", "urn:oid:1..2"}},
                                            {{"_include", "ImagingStudy:subject"}}}) {
    auto s = ParseStudySearch(p);
    ASSERT_FALSE(s.ok()) << p[0].first << "=" << p[0].second;
    EXPECT_EQ(s.status().http_status(), 400);
  }
  EXPECT_TRUE(ParseStudySearch({{"unknownparam", "x"}}).ok()) << "lenient by default";
}

TEST(FhirSearch, IdentifierAcceptsUrnOidWithAndWithoutSystem) {
  auto s = ParseStudySearch({{"identifier", "urn:dicom:uid|urn:oid:1.2.3,urn:oid:4.5"}});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->study_uids, (std::vector<std::string>{"1.2.3", "4.5"}));
  auto other = ParseStudySearch({{"identifier", "urn:other|urn:oid:1.2.3"}});
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->study_uids, (std::vector<std::string>{""})) << "another system matches nothing";
}

TEST(FhirSearch, DateRangesFollowFhirPrecision) {
  auto day = ParseFhirDateRange("2020-02-29", 0);
  ASSERT_TRUE(day);
  EXPECT_EQ(day->hi - day->lo, 86400);
  auto year = ParseFhirDateRange("2021", 0);
  EXPECT_EQ(year->hi - year->lo, 365 * 86400);
  auto zoned = ParseFhirDateRange("2020-01-01T10:00:00+02:00", 0);
  auto utc = ParseFhirDateRange("2020-01-01T08:00:00Z", 0);
  EXPECT_EQ(zoned->lo, utc->lo);
  EXPECT_FALSE(ParseFhirDateRange("2021-02-29", 0));
  EXPECT_FALSE(ParseFhirDateRange("2020-01-01T25:00", 0));
}

StudyRecord Study(const char* date, const char* time, std::vector<std::string> modalities) {
  StudyRecord s;
  s.study_instance_uid = "1.2.3";
  s.study_date = date;
  s.study_time = time;
  s.modalities = std::move(modalities);
  return s;
}

TEST(FhirSearch, StartedPrefixes) {
  StudyRecord s = Study("20200615", "101500", {"CT"});
  auto matches = [&](const char* v) {
    auto search = ParseStudySearch({{"started", v}});
    EXPECT_TRUE(search.ok()) << v;
    return StudyMatches(*search, s, 0);
  };
  EXPECT_TRUE(matches("2020-06-15"));
  EXPECT_TRUE(matches("eq2020-06"));
  EXPECT_FALSE(matches("eq2020-06-16"));
  EXPECT_TRUE(matches("ge2020-06-15"));
  EXPECT_TRUE(matches("gt2020-06-14"));
  EXPECT_FALSE(matches("gt2020-06-15"));
  EXPECT_TRUE(matches("lt2020-06-16"));
  EXPECT_FALSE(matches("lt2020-06-15"));
  EXPECT_TRUE(matches("le2020-06-15"));
  EXPECT_TRUE(matches("ne2019"));
  EXPECT_TRUE(matches("sa2020-06-14"));
  EXPECT_TRUE(matches("eb2020-06-16"));
  EXPECT_TRUE(matches("ge2020-06-15T10:15:00Z"));
  EXPECT_FALSE(matches("ge2020-06-15T10:16:00Z"));
  // A legacy date with dots still compares; a broken one never matches a date filter.
  s.study_date = "2020.06.15";
  EXPECT_TRUE(matches("2020-06-15"));
  s.study_date = "20200231";
  EXPECT_FALSE(matches("ge1900"));
}

TEST(FhirSearch, ModalityAndIdentifierFilters) {
  StudyRecord s = Study("20200615", "", {"CT", "SR"});
  auto search =
      ParseStudySearch({{"modality", "MR,http://dicom.nema.org/resources/ontology/DCM|SR"}});
  EXPECT_TRUE(StudyMatches(*search, s, 0));
  search = ParseStudySearch({{"modality", "MR"}});
  EXPECT_FALSE(StudyMatches(*search, s, 0));
  search = ParseStudySearch({{"identifier", "urn:oid:1.2.3"}});
  EXPECT_TRUE(StudyMatches(*search, s, 0));
  search = ParseStudySearch({{"identifier", "urn:oid:1.2.4"}});
  EXPECT_FALSE(StudyMatches(*search, s, 0));
}

TenantConfig MockTenant(bool open, std::optional<FhirPatient> patient) {
  TenantConfig t;
  t.name = t.key = "t";
  t.authorization_type = "mock";
  t.disable_authz_checks = open;
  t.patient = std::move(patient);
  return t;
}

FhirPatient Danae() {
  return FhirPatient{"87a339d0", {{"http://hospital.smarthealthit.org", "293ee354", {"MR"}, ""}}};
}

TEST(FhirSearch, PatientResolutionFollowsTheMockRules) {
  auto tenant = MockTenant(false, Danae());
  auto decision = MockAuthorizer(tenant).Authorize({});
  ASSERT_TRUE(decision.ok());
  auto search = [](ParamList p) { return *ParseStudySearch(p); };

  auto p = ResolveSearchPatient(tenant, *decision, search({{"patient", "87a339d0"}}));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->mrn->value, "293ee354");
  EXPECT_EQ(ResolveSearchPatient(tenant, *decision, search({{"patient", "other"}}))
                .status()
                .http_status(),
            403);
  EXPECT_EQ(ResolveSearchPatient(tenant, *decision, search({})).status().http_status(), 403);
  // Identifier: the system is compared when both sides have one.
  EXPECT_TRUE(
      ResolveSearchPatient(tenant, *decision, search({{"patient.identifier", "293ee354"}})).ok());
  EXPECT_TRUE(ResolveSearchPatient(
                  tenant, *decision,
                  search({{"patient.identifier", "http://hospital.smarthealthit.org|293ee354"}}))
                  .ok());
  EXPECT_FALSE(ResolveSearchPatient(tenant, *decision,
                                    search({{"patient.identifier", "urn:other|293ee354"}}))
                   .ok());

  // Open tenant: any patient; the configured one keeps its MRN, others use the id.
  auto open = MockTenant(true, Danae());
  auto any = MockAuthorizer(open).Authorize({});
  EXPECT_EQ(ResolveSearchPatient(open, *any, search({{"patient", "87a339d0"}}))->mrn->value,
            "293ee354");
  EXPECT_EQ(ResolveSearchPatient(open, *any, search({{"patient", "MRN-1"}}))->mrn->value, "MRN-1");
  EXPECT_EQ(ResolveSearchPatient(open, *any, search({})).status().http_status(), 403);
}

}  // namespace
}  // namespace si
