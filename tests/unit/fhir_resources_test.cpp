#include "schema/fhir_resources.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

namespace si::schema {
namespace {

TEST(FhirResources, NormalizesLegacyDates) {
  EXPECT_EQ(*NormalizeDicomDate("19970424"), "1997-04-24");
  EXPECT_EQ(*NormalizeDicomDate("1997.04.24"), "1997-04-24");
  EXPECT_EQ(*NormalizeDicomDate(" 1997-04-24 "), "1997-04-24");
  EXPECT_EQ(*NormalizeDicomDate("199704"), "1997-04");
  EXPECT_EQ(*NormalizeDicomDate("1997"), "1997");
  EXPECT_FALSE(NormalizeDicomDate(""));
  EXPECT_FALSE(NormalizeDicomDate("19970231"));
  EXPECT_FALSE(NormalizeDicomDate("00000000"));
  EXPECT_FALSE(NormalizeDicomDate("unknown"));
  EXPECT_EQ(*NormalizeDicomTime("101500.123456"), "10:15:00.123");
  EXPECT_EQ(*NormalizeDicomTime("1015"), "10:15:00");
  EXPECT_FALSE(NormalizeDicomTime("256000"));
}

TEST(FhirResources, DateTimeCarriesAZone) {
  EXPECT_EQ(*FhirDateTime("20200615", "101500", "", 3600), "2020-06-15T10:15:00+01:00");
  EXPECT_EQ(*FhirDateTime("20200615", "101500", "-0500", 3600), "2020-06-15T10:15:00-05:00");
  EXPECT_EQ(*FhirDateTime("20200615", "", "", 0), "2020-06-15");
  EXPECT_EQ(*FhirDateTime("202006", "101500", "", 0), "2020-06") << "no time on a partial date";
  EXPECT_FALSE(FhirDateTime("garbage", "101500", "", 0));
}

TEST(FhirResources, PersonNames) {
  EXPECT_EQ(PersonNameDisplay("Smith^John^^Dr"), "Dr John Smith");
  EXPECT_EQ(PersonNameDisplay("Yamada^Tarou=山田^太郎"), "Tarou Yamada");
  EXPECT_EQ(PersonNameDisplay("^^^^"), "");
}

TEST(FhirResources, ImagingStudyOmitsWhatIsUnsafe) {
  StudyRecord s;
  s.study_instance_uid = "1.2.3";
  s.study_date = "1997.13.45";  // unusable: omitted, never a failure
  s.description = "  ";
  s.modalities = {"CT"};
  s.number_of_series = 1;
  s.number_of_instances = 1;
  SeriesRecord series;
  series.series_instance_uid = "1.2.3.1";
  series.number_of_instances = 1;
  series.instances.push_back(
      InstanceRecord{"1.2.3.1.1", "1.2.840.10008.5.1.4.1.1.2", "", 1, 1, "", 0});
  s.series.push_back(series);
  StudyLinks links;
  links.full_url = "http://x/t/fhir/ImagingStudy/1.2.3";
  links.endpoint_id = "wado-1";
  links.endpoint_address = "http://x/t/wado/TOKEN";
  links.subject_reference = "Patient/p1";
  std::string json = SearchsetBundle(1, {{"self", "http://x/t/fhir/ImagingStudy?patient=p1"}}, {&s},
                                     {links}, "http://x/t/fhir");
  rapidjson::Document d;
  d.Parse(json.c_str());
  ASSERT_FALSE(d.HasParseError()) << json;
  const auto& study = d["entry"][0]["resource"];
  EXPECT_FALSE(study.HasMember("started"));
  EXPECT_FALSE(study.HasMember("description"));
  EXPECT_STREQ(study["identifier"][0]["value"].GetString(), "urn:oid:1.2.3");
  EXPECT_STREQ(study["series"][0]["modality"]["code"].GetString(), "OT")
      << "series.modality is 1..1";
  EXPECT_STREQ(study["endpoint"][0]["reference"].GetString(), "#wado-1");
  EXPECT_STREQ(study["contained"][0]["address"].GetString(), "http://x/t/wado/TOKEN");
  EXPECT_STREQ(study["series"][0]["instance"][0]["sopClass"]["code"].GetString(),
               "urn:oid:1.2.840.10008.5.1.4.1.1.2");

  links.contain_endpoint = false;
  json = SearchsetBundle(1, {}, {&s}, {links}, "http://x/t/fhir");
  d.Parse(json.c_str());
  ASSERT_EQ(d["entry"].Size(), 2u);
  EXPECT_STREQ(d["entry"][1]["search"]["mode"].GetString(), "include");
  EXPECT_STREQ(d["entry"][0]["resource"]["endpoint"][0]["reference"].GetString(),
               "Endpoint/wado-1");
}

TEST(FhirResources, InvalidUtf8NeverReachesJson) {
  StudyRecord s;
  s.study_instance_uid = "1.2.3";
  s.description = "caf\xe9";  // Latin-1 left unconverted
  StudyLinks links;
  std::string json = SearchsetBundle(1, {}, {&s}, {links}, "");
  rapidjson::Document d;
  d.Parse<rapidjson::kParseValidateEncodingFlag>(json.c_str());
  EXPECT_FALSE(d.HasParseError());
}

}  // namespace
}  // namespace si::schema
