// DICOM JSON (QIDO-RS answers) into StudyRecord / SeriesRecord / StoredInstance:
// what maps, and that odd values are left out instead of failing.
#include "src/dicomweb_json.h"

#include <gtest/gtest.h>

#include "src/dicomweb_source.h"

namespace si::dicomweb {
namespace {

// Orthanc 1.10 / DICOMweb plugin 1.7 shape (values as it sends them).
constexpr const char* kOrthancStudies = R"([{
  "00080005": {"vr": "CS", "Value": ["ISO_IR 100"]},
  "00080020": {"vr": "DA", "Value": ["20200131"]},
  "00080030": {"vr": "TM", "Value": ["101530.25"]},
  "00080050": {"vr": "SH", "Value": ["ACC-1"]},
  "00080061": {"vr": "CS", "Value": ["CT", "SR", "CT"]},
  "00080090": {"vr": "PN", "Value": [{"Alphabetic": "Who^Doctor"}]},
  "00080201": {"vr": "SH", "Value": ["+0100"]},
  "00081030": {"vr": "LO", "Value": ["CT chest"]},
  "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Kshlerin^Danae^^^"}]},
  "00100020": {"vr": "LO", "Value": ["293ee354-f8ad-4345-b10c-759fdfdcc082"]},
  "0020000D": {"vr": "UI", "Value": ["1.2.3.4"]},
  "00200010": {"vr": "SH", "Value": ["S1"]},
  "00201206": {"vr": "IS", "Value": [2]},
  "00201208": {"vr": "IS", "Value": [12]}
}])";

TEST(DicomWebJson, MapsAStudyAsOrthancSendsIt) {
  auto studies = ParseStudies(kOrthancStudies);
  ASSERT_TRUE(studies.ok()) << studies.status().ToString();
  ASSERT_EQ(studies->size(), 1u);
  const StudyRecord& s = studies->front();
  EXPECT_EQ(s.study_instance_uid, "1.2.3.4");
  EXPECT_EQ(s.patient_id, "293ee354-f8ad-4345-b10c-759fdfdcc082");
  EXPECT_EQ(s.patient_name, "Kshlerin^Danae^^^");
  EXPECT_EQ(s.study_date, "20200131");
  EXPECT_EQ(s.study_time, "101530.25");
  EXPECT_EQ(s.timezone_offset, "+0100");
  EXPECT_EQ(s.accession_number, "ACC-1");
  EXPECT_EQ(s.study_id, "S1");
  EXPECT_EQ(s.description, "CT chest");
  EXPECT_EQ(s.referring_physician, "Who^Doctor");
  EXPECT_EQ(s.modalities, (std::vector<std::string>{"CT", "SR"}));
  EXPECT_EQ(s.number_of_series, 2);
  EXPECT_EQ(s.number_of_instances, 12);
  EXPECT_TRUE(s.series.empty());
}

TEST(DicomWebJson, OddValuesAreLeftOutNotFatal) {
  auto studies = ParseStudies(R"([
    {"0020000D": {"vr": "UI", "Value": ["1.2.3"]},
     "00080020": {"vr": "DA", "Value": [19970424]},
     "00081030": {"vr": "LO"},
     "00100020": {"vr": "LO", "Value": []},
     "00080061": {"vr": "CS", "Value": ["ct ", 7, null, "MR", "a b"]},
     "00201206": {"vr": "IS", "Value": ["3"]},
     "00201208": {"vr": "IS", "Value": [1.5]},
     "00080090": {"vr": "PN", "Value": [{"Ideographic": "x"}]},
     "00100010": {"vr": "PN", "Value": ["\u00e9t\u00e9"]}},
    {"0020000D": {"vr": "UI", "Value": ["not a uid"]}},
    {"0020000D": {"vr": "UI", "Value": ["1.2.3"]}},
    {"00100020": {"vr": "LO", "Value": ["no uid at all"]}},
    42, null, "x",
    {"0020000D": {"vr": "UI", "Value": ["1.2.4"]}, "00201206": {"vr": "IS", "Value": [-4]},
     "00201208": {"vr": "IS", "Value": ["12x"]}}
  ])");
  ASSERT_TRUE(studies.ok()) << studies.status().ToString();
  ASSERT_EQ(studies->size(), 2u) << "bad UID, duplicate UID, no UID and non-objects are skipped";
  const StudyRecord& a = (*studies)[0];
  EXPECT_EQ(a.study_instance_uid, "1.2.3");
  EXPECT_EQ(a.study_date, "") << "a number is no DA";
  EXPECT_EQ(a.description, "");
  EXPECT_EQ(a.patient_id, "");
  EXPECT_EQ(a.modalities, (std::vector<std::string>{"MR"}))
      << "codes not usable in FHIR are dropped";
  EXPECT_EQ(a.number_of_series, 3) << "IS as text";
  EXPECT_EQ(a.number_of_instances, 0) << "fractions are no IS";
  EXPECT_EQ(a.referring_physician, "");
  EXPECT_EQ(a.patient_name, "\xC3\xA9t\xC3\xA9") << "a PN sent as plain text is taken as it is";
  const StudyRecord& b = (*studies)[1];
  EXPECT_EQ(b.number_of_series, 0) << "negative counts are no count";
  EXPECT_EQ(b.number_of_instances, 0);
}

TEST(DicomWebJson, InvalidUtf8IsSanitized) {
  std::string json =
      "[{\"0020000D\":{\"vr\":\"UI\",\"Value\":[\"1.2\"]},\"00081030\":{\"vr\":\"LO\",\"Value\":["
      "\"a\xff\xfe"
      "b\"]}}]";
  auto studies = ParseStudies(json);
  ASSERT_TRUE(studies.ok());
  ASSERT_EQ(studies->size(), 1u);
  EXPECT_EQ(studies->front().description,
            "a\xEF\xBF\xBD\xEF\xBF\xBD"
            "b");
}

TEST(DicomWebJson, NotAnArrayIsABadGateway) {
  for (const char* body : {"{}", "<html>", "[1,", "\"x\""}) {
    auto r = ParseStudies(body);
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.status().code(), ErrorCode::kBadGateway) << body;
  }
  auto empty = ParseStudies("  ");
  ASSERT_TRUE(empty.ok()) << "an empty body is no matches";
  EXPECT_TRUE(empty->empty());
}

TEST(DicomWebJson, SeriesAndAttach) {
  auto series = ParseSeries(R"([
    {"0020000E": {"vr": "UI", "Value": ["1.2.3.2"]}, "00080060": {"vr": "CS", "Value": ["SR"]},
     "00200011": {"vr": "IS", "Value": [2]}, "00201209": {"vr": "IS", "Value": [1]},
     "0008103E": {"vr": "LO", "Value": ["report"]}},
    {"0020000E": {"vr": "UI", "Value": ["1.2.3.1"]}, "00080060": {"vr": "CS", "Value": ["CT"]},
     "00200011": {"vr": "IS", "Value": ["1"]}, "00201209": {"vr": "IS", "Value": [10]},
     "00180015": {"vr": "CS", "Value": ["CHEST"]}},
    {"0020000E": {"vr": "UI", "Value": ["1.2.3.9"]}, "00080060": {"vr": "CS", "Value": ["bad modality"]},
     "00200011": {"vr": "IS", "Value": ["one"]}},
    {"0020000E": {"vr": "UI", "Value": [""]}}
  ])");
  ASSERT_TRUE(series.ok()) << series.status().ToString();
  ASSERT_EQ(series->size(), 3u);
  EXPECT_EQ((*series)[2].modality, "");
  EXPECT_FALSE((*series)[2].series_number.has_value());

  StudyRecord study;
  study.study_instance_uid = "1.2.3";
  AttachSeries(study, std::move(series).value());
  ASSERT_EQ(study.series.size(), 3u);
  EXPECT_EQ(study.series[0].series_instance_uid, "1.2.3.1") << "sorted by series number";
  EXPECT_EQ(study.series[0].body_part_examined, "CHEST");
  EXPECT_EQ(study.series[1].description, "report");
  EXPECT_EQ(study.series[2].series_instance_uid, "1.2.3.9") << "no number sorts last";
  EXPECT_EQ(study.number_of_series, 3);
  EXPECT_EQ(study.number_of_instances, 11);
  EXPECT_EQ(study.modalities, (std::vector<std::string>{"CT", "SR"}));
}

TEST(DicomWebJson, InstancesForPlans) {
  auto instances = ParseInstances(R"([
    {"00080018": {"vr": "UI", "Value": ["1.2.3.1.1"]}, "0020000D": {"vr": "UI", "Value": ["1.2.3"]},
     "0020000E": {"vr": "UI", "Value": ["1.2.3.1"]}, "00100020": {"vr": "LO", "Value": ["MRN-1"]}},
    {"00080018": {"vr": "UI", "Value": ["1.2.3.1.2"]}, "0020000D": {"vr": "UI", "Value": ["1.2.3"]}},
    {"00080018": {"vr": "UI", "Value": ["1.2.3.1.1"]}}
  ])");
  ASSERT_TRUE(instances.ok());
  ASSERT_EQ(instances->size(), 2u);
  EXPECT_EQ((*instances)[0].patient_id, "MRN-1");
  EXPECT_EQ((*instances)[0].series_uid, "1.2.3.1");
  EXPECT_EQ((*instances)[1].patient_id, "")
      << "no PatientID: PlanWado refuses it for studies-by-mrn";
}

TEST(DicomWebJson, IncludeFieldsNameWhatTheMappingNeeds) {
  EXPECT_NE(StudyIncludeFields().find("includefield=00080201"), std::string::npos);
  EXPECT_NE(StudyIncludeFields().find("includefield=00081030"), std::string::npos);
  EXPECT_NE(SeriesIncludeFields().find("includefield=00201209"), std::string::npos);
  EXPECT_NE(InstanceIncludeFields().find("includefield=00100020"), std::string::npos);
}

TEST(StreamingReplacer, ReplacesAcrossPieceBoundaries) {
  const std::string from = "http://pacs:8042/dicom-web/";
  const std::string to = "https://us/t/wado/TOKEN/";
  std::string input = "[{\"u\":\"" + from + "studies/1/bulk/7fe00010\"},{\"u\":\"" + from +
                      "x\"}, \"http://pacs:8042/other\"]";
  std::string expected = "[{\"u\":\"" + to + "studies/1/bulk/7fe00010\"},{\"u\":\"" + to +
                         "x\"}, \"http://pacs:8042/other\"]";
  for (size_t piece : {1u, 2u, 3u, 7u, 26u, 27u, 28u, 1000u}) {
    StreamingReplacer r(from, to);
    std::string out;
    for (size_t i = 0; i < input.size(); i += piece)
      out += r.Feed(std::string_view(input).substr(i, piece));
    out += r.Finish();
    EXPECT_EQ(out, expected) << "piece " << piece;
  }
}

TEST(StreamingReplacer, HoldsBackLessThanTheNeedle) {
  StreamingReplacer r("abcdef", "X");
  std::string out = r.Feed(std::string(100000, 'z') + "abc");
  EXPECT_EQ(out.size(), 100000u) << "only a possible match is held back";
  EXPECT_EQ(r.Finish(), "abc");
}

}  // namespace
}  // namespace si::dicomweb
