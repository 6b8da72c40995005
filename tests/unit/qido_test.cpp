// QIDO-RS answers built from one study's instance metadata (matching, levels,
// includefield, paging), and the BulkDataURI placeholders of stored metadata.
#include "src/qido.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "src/bulk_data.h"

namespace si::qido {
namespace {

std::string Instance(const std::string& series, int series_number, const std::string& modality,
                     const std::string& sop, int number,
                     const std::string& sop_class = "1.2.840.1") {
  return R"({"00080005":{"vr":"CS","Value":["ISO_IR 192"]},)"
         R"("00080016":{"vr":"UI","Value":[")" +
         sop_class + R"("]},"00080018":{"vr":"UI","Value":[")" + sop +
         R"("]},"00080020":{"vr":"DA","Value":["20200131"]},)"
         R"("00080060":{"vr":"CS","Value":[")" +
         modality +
         R"("]},"00100010":{"vr":"PN","Value":[{"Alphabetic":"Doe^Jane"}]},)"
         R"("00100020":{"vr":"LO","Value":["MRN1"]},"0020000D":{"vr":"UI","Value":["1.2.3"]},)"
         R"("0020000E":{"vr":"UI","Value":[")" +
         series + R"("]},"00200011":{"vr":"IS","Value":[)" + std::to_string(series_number) +
         R"(]},"00200013":{"vr":"IS","Value":[)" + std::to_string(number) +
         R"(]},"00280010":{"vr":"US","Value":[512]},)"
         R"("7FE00010":{"vr":"OW","BulkDataURI":"si-bulk:studies/1.2.3/series/)" +
         series + "/instances/" + sop + R"(/bulk/7fe00010"}})";
}

// Two series (numbered 2 and 1, so order must come from SeriesNumber), three instances.
std::vector<std::string> Study() {
  return {Instance("1.2.3.2", 2, "SR", "1.2.3.2.1", 1, "1.2.840.10008.5.1.4.1.1.88.22"),
          Instance("1.2.3.1", 1, "CT", "1.2.3.1.2", 2),
          Instance("1.2.3.1", 1, "CT", "1.2.3.1.1", 1)};
}

rapidjson::Document Answer(Level level, const ParamList& params,
                           std::optional<std::string> series = std::nullopt) {
  auto q = ParseQuery(level, params);
  EXPECT_TRUE(q.ok()) << q.status().ToString();
  q->series_uid = series;
  auto built = BuildResponse(*q, Study(), "https://x/t/wado/TOKEN/");
  EXPECT_TRUE(built.ok()) << built.status().ToString();
  rapidjson::Document d;
  d.Parse(built.ok() ? built->c_str() : "[]");
  EXPECT_TRUE(d.IsArray());
  return d;
}

std::vector<std::string> Uids(const rapidjson::Document& d, const char* tag) {
  std::vector<std::string> out;
  for (auto& o : d.GetArray()) out.push_back(o[tag]["Value"][0].GetString());
  return out;
}

TEST(Qido, StudyLevelIsTheOneStudyWithComputedAttributes) {
  auto d = Answer(Level::kStudy, {});
  ASSERT_EQ(d.Size(), 1u);
  const auto& s = d[0];
  EXPECT_STREQ(s["0020000D"]["Value"][0].GetString(), "1.2.3");
  EXPECT_EQ(s["00201206"]["Value"][0].GetInt(), 2);
  EXPECT_EQ(s["00201208"]["Value"][0].GetInt(), 3);
  ASSERT_EQ(s["00080061"]["Value"].Size(), 2u);
  EXPECT_STREQ(s["00080061"]["Value"][0].GetString(), "CT");
  EXPECT_STREQ(s["00081190"]["Value"][0].GetString(), "https://x/t/wado/TOKEN/studies/1.2.3");
  EXPECT_STREQ(s["00100010"]["Value"][0]["Alphabetic"].GetString(), "Doe^Jane");
  EXPECT_FALSE(s.HasMember("00080018"));  // instance attributes are no study default
  EXPECT_FALSE(s.HasMember("00280010"));
}

TEST(Qido, KeysThatReachBeyondTheStudyMatchNothing) {
  EXPECT_EQ(Answer(Level::kStudy, {{"StudyInstanceUID", "1.2.4"}}).Size(), 0u);
  EXPECT_EQ(Answer(Level::kStudy, {{"PatientID", "MRN2"}}).Size(), 0u);
  EXPECT_EQ(Answer(Level::kStudy, {{"StudyInstanceUID", "1.2.4,1.2.3"}}).Size(), 1u);
  EXPECT_EQ(Answer(Level::kStudy, {{"0020000D", "1.2.3"}}).Size(), 1u);
}

TEST(Qido, StudyUidKeysCanRuleTheStudyOutBeforeAnyFetch) {
  auto q = ParseQuery(Level::kStudy, {{"StudyInstanceUID", "1.2.4"}});
  ASSERT_TRUE(q.ok());
  EXPECT_TRUE(ExcludesStudy(*q, "1.2.3"));
  q = ParseQuery(Level::kSeries, {{"StudyInstanceUID", "1.2.4,1.2.3"}, {"PatientID", "x"}});
  EXPECT_FALSE(ExcludesStudy(*q, "1.2.3"));
  q = ParseQuery(Level::kInstance, {{"0020000D", "1.2.*"}});
  EXPECT_FALSE(ExcludesStudy(*q, "1.2.3"));
  q = ParseQuery(Level::kStudy, {});
  EXPECT_FALSE(ExcludesStudy(*q, "1.2.3"));
}

TEST(Qido, SeriesInNumberOrderWithCounts) {
  auto d = Answer(Level::kSeries, {});
  EXPECT_EQ(Uids(d, "0020000E"), (std::vector<std::string>{"1.2.3.1", "1.2.3.2"}));
  EXPECT_EQ(d[0]["00201209"]["Value"][0].GetInt(), 2);
  EXPECT_STREQ(d[0]["00081190"]["Value"][0].GetString(),
               "https://x/t/wado/TOKEN/studies/1.2.3/series/1.2.3.1");
  EXPECT_EQ(Uids(Answer(Level::kSeries, {{"Modality", "SR"}}), "0020000E"),
            (std::vector<std::string>{"1.2.3.2"}));
  EXPECT_EQ(Answer(Level::kSeries, {{"Modality", "CT,SR"}}).Size(), 2u);
  EXPECT_EQ(Answer(Level::kSeries, {{"SeriesNumber", "2"}}).Size(), 1u);
}

TEST(Qido, InstancesOrderedAndScopedToTheSeries) {
  EXPECT_EQ(Uids(Answer(Level::kInstance, {}), "00080018"),
            (std::vector<std::string>{"1.2.3.1.1", "1.2.3.1.2", "1.2.3.2.1"}));
  EXPECT_EQ(Uids(Answer(Level::kInstance, {}, "1.2.3.2"), "00080018"),
            (std::vector<std::string>{"1.2.3.2.1"}));
  EXPECT_EQ(Answer(Level::kInstance, {}, "1.2.3.9").Size(), 0u);
  auto d = Answer(Level::kInstance, {{"InstanceNumber", "2"}});
  EXPECT_EQ(Uids(d, "00080018"), (std::vector<std::string>{"1.2.3.1.2"}));
  EXPECT_EQ(d[0]["00280010"]["Value"][0].GetInt(), 512);  // Rows is an instance default
  EXPECT_FALSE(d[0].HasMember("7FE00010"));               // never bulk data
  EXPECT_EQ(Answer(Level::kInstance, {{"SOPClassUID", "1.2.840.10008.5.1.4.1.1.88.22"}}).Size(),
            1u);
}

TEST(Qido, WildcardsRangesAndFuzzyNames) {
  EXPECT_EQ(Answer(Level::kInstance, {{"SOPInstanceUID", "1.2.3.1.*"}}).Size(), 2u);
  EXPECT_EQ(Answer(Level::kInstance, {{"SOPInstanceUID", "1.2.3.?.1"}}).Size(), 2u);
  EXPECT_EQ(Answer(Level::kStudy, {{"PatientName", "Doe*"}}).Size(), 1u);
  EXPECT_EQ(Answer(Level::kStudy, {{"PatientName", "doe^jane"}}).Size(), 0u);
  EXPECT_EQ(Answer(Level::kStudy, {{"PatientName", "doe^jane"}, {"fuzzymatching", "true"}}).Size(),
            1u);
  EXPECT_EQ(Answer(Level::kStudy, {{"StudyDate", "20200101-20200201"}}).Size(), 1u);
  EXPECT_EQ(Answer(Level::kStudy, {{"StudyDate", "20200201-"}}).Size(), 0u);
  EXPECT_EQ(Answer(Level::kStudy, {{"StudyDate", "-20200131"}}).Size(), 1u);
  EXPECT_EQ(Answer(Level::kStudy, {{"StudyDate", ""}}).Size(), 1u);          // empty: universal
  EXPECT_EQ(Answer(Level::kStudy, {{"AccessionNumber", "A1"}}).Size(), 0u);  // absent attribute
}

TEST(Qido, IncludeFieldLimitOffset) {
  auto d = Answer(Level::kSeries, {{"includefield", "Rows,00100020"}});
  EXPECT_TRUE(d[0].HasMember("00280010"));
  EXPECT_TRUE(d[0].HasMember("00100020"));
  auto all = Answer(Level::kSeries, {{"includefield", "all"}});
  EXPECT_TRUE(all[0].HasMember("00200013"));
  EXPECT_FALSE(all[0].HasMember("7FE00010"));
  EXPECT_EQ(Uids(Answer(Level::kInstance, {{"limit", "1"}, {"offset", "1"}}), "00080018"),
            (std::vector<std::string>{"1.2.3.1.2"}));
  EXPECT_EQ(Answer(Level::kInstance, {{"offset", "5"}}).Size(), 0u);
  EXPECT_EQ(Answer(Level::kInstance, {{"limit", "0"}}).Size(), 0u);
}

TEST(Qido, BadQueriesAreInvalidArguments) {
  for (ParamList p : std::vector<ParamList>{{{"limit", "-1"}},
                                            {{"offset", "x"}},
                                            {{"fuzzymatching", "yes"}},
                                            {{"NoSuchKeyword", "1"}},
                                            {{"includefield", "Nope"}}}) {
    auto q = ParseQuery(Level::kStudy, p);
    ASSERT_FALSE(q.ok()) << p.front().first;
    EXPECT_EQ(q.status().code(), ErrorCode::kInvalidArgument);
  }
  Query q;
  EXPECT_EQ(BuildResponse(q, {"not json"}, "/").status().code(), ErrorCode::kBadGateway);
  EXPECT_EQ(SplitArray("{}").status().code(), ErrorCode::kBadGateway);
  auto parts = SplitArray(R"([{"a":1},{"b":[2]}])");
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ(*parts, (std::vector<std::string>{R"({"a":1})", R"({"b":[2]})"}));
}

TEST(BulkDataUris, PlaceholdersTakeTheRequestRoot) {
  std::string stored = Instance("1.2.3.1", 1, "CT", "1.2.3.1.1", 1);
  std::string served = ResolveBulkDataUris(stored, "https://x/t/wado/TOK/");
  EXPECT_EQ(served.find("si-bulk:"), std::string::npos);
  EXPECT_NE(served.find(R"("BulkDataURI":"https://x/t/wado/TOK/studies/1.2.3/series/1.2.3.1/)"
                        R"(instances/1.2.3.1.1/bulk/7fe00010")"),
            std::string::npos);
  // Text without placeholders, and placeholder-like text outside BulkDataURI, stay as they are.
  EXPECT_EQ(ResolveBulkDataUris(R"({"a":{"vr":"LO","Value":["si-bulk:x"]}})", "/r/"),
            R"({"a":{"vr":"LO","Value":["si-bulk:x"]}})");
  EXPECT_EQ(ResolveBulkDataUris(R"("BulkDataURI":"si-bulk:a","BulkDataURI":"si-bulk:b")", "R\""),
            R"("BulkDataURI":"R\"a","BulkDataURI":"R\"b")");
  EXPECT_EQ(BulkDataPlaceholderUri("1", "2", "3", 0x7FE00010),
            "si-bulk:studies/1/series/2/instances/3/bulk/7fe00010");
}

TEST(BulkDataUris, TagsAreEightHexDigits) {
  EXPECT_EQ(ParseBulkTag("7fe00010"), 0x7FE00010u);
  EXPECT_EQ(ParseBulkTag("7FE00010"), 0x7FE00010u);
  EXPECT_FALSE(ParseBulkTag("7fe0001"));
  EXPECT_FALSE(ParseBulkTag("7fe00010a"));
  EXPECT_FALSE(ParseBulkTag("zzzzzzzz"));
}

}  // namespace
}  // namespace si::qido
