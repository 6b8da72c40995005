#include "src/folder_index.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <sqlite3.h>

#include <fstream>

#include "dimse/dcmtk_setup.h"
#include "dimse/dicom_file.h"
#include "dimse/samples.h"
#include "src/bulk_data.h"
#include "src/folder_source.h"
#include "tests/unit/test_support.h"

namespace si {
namespace {

class FolderIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dimse::InitializeDcmtk().ok());
    auto studies = dimse::GenerateSamples(samples_.path(), dimse::SampleOptions{7, 0.1});
    ASSERT_TRUE(studies.ok()) << studies.status().ToString();
    summaries_ = *studies;
  }
  std::unique_ptr<FolderIndex> Open() {
    auto index =
        FolderIndex::Open(cache_.path() / "index.sqlite", samples_.path(), parser_, clock_);
    EXPECT_TRUE(index.ok()) << index.status().ToString();
    return index.ok() ? std::move(index).value() : nullptr;
  }

  testing::TempDir samples_{"samples"};
  testing::TempDir cache_{"cache"};
  dimse::DcmtkInstanceParser parser_;
  FakeClock clock_{1'700'000'000};
  std::vector<dimse::SampleStudySummary> summaries_;
};

TEST_F(FolderIndexTest, IndexesEveryStudyWithSeriesAndInstances) {
  auto index = Open();
  auto stats = index->Rescan();
  ASSERT_TRUE(stats.ok());
  int expected_instances = 0;
  for (auto& s : summaries_) expected_instances += s.instance_count;
  EXPECT_EQ(stats->added, expected_instances);
  EXPECT_EQ(stats->skipped, 0);

  auto all = index->FindStudies({});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), summaries_.size());
  for (auto& summary : summaries_) {
    auto found = index->FindStudies(StudyQuery{summary.patient_id, summary.study_uid, true});
    ASSERT_TRUE(found.ok());
    ASSERT_EQ(found->size(), 1u);
    const StudyRecord& s = found->front();
    EXPECT_EQ(s.number_of_series, summary.series_count);
    EXPECT_EQ(s.number_of_instances, summary.instance_count);
    EXPECT_EQ(s.modalities.front(), summary.modality);
    for (auto& series : s.series)
      EXPECT_EQ(static_cast<int64_t>(series.instances.size()), series.number_of_instances);
  }
  auto danae =
      index->FindStudies(StudyQuery{"293ee354-f8ad-4345-b10c-759fdfdcc082", std::nullopt, false});
  ASSERT_TRUE(danae.ok());
  EXPECT_GE(danae->size(), 2u);
  for (auto& s : *danae) EXPECT_EQ(s.patient_id, "293ee354-f8ad-4345-b10c-759fdfdcc082");
}

TEST_F(FolderIndexTest, MetadataIsDicomJsonWithPixelDataAsPlaceholderBulkDataUri) {
  auto index = Open();
  ASSERT_TRUE(index->Rescan().ok());
  auto metadata = index->FindMetadata(summaries_.front().study_uid, std::nullopt, std::nullopt);
  ASSERT_TRUE(metadata.ok());
  ASSERT_EQ(static_cast<int>(metadata->size()), summaries_.front().instance_count);
  rapidjson::Document d;
  d.Parse<rapidjson::kParseValidateEncodingFlag>(metadata->front().c_str());
  ASSERT_FALSE(d.HasParseError());
  EXPECT_STREQ(d["0020000D"]["vr"].GetString(), "UI");
  EXPECT_STREQ(d["0020000D"]["Value"][0].GetString(), summaries_.front().study_uid.c_str());
  // Pixel data by reference only: the placeholder the facade swaps for its WADO root.
  ASSERT_TRUE(d.HasMember("7FE00010"));
  EXPECT_FALSE(d["7FE00010"].HasMember("InlineBinary"));
  std::string sop = d["00080018"]["Value"][0].GetString();
  std::string series = d["0020000E"]["Value"][0].GetString();
  EXPECT_EQ(d["7FE00010"]["BulkDataURI"].GetString(),
            BulkDataPlaceholderUri(summaries_.front().study_uid, series, sop, 0x7FE00010));
  EXPECT_TRUE(d.HasMember("00280010"));  // Rows stays
}

TEST_F(FolderIndexTest, MigrationFiveParsesAnOlderIndexAgainOnce) {
  {
    auto index = Open();
    ASSERT_TRUE(index->Rescan().ok());
  }
  // Make it an index of schema 4, whose metadata had no BulkDataURIs.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((cache_.path() / "index.sqlite").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE instances SET metadata_json='{}'; PRAGMA user_version=4;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  int expected = 0;
  for (auto& s : summaries_) expected += s.instance_count;
  auto index = Open();
  auto stats = index->Rescan();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->added, expected);  // every file parsed again
  auto metadata = index->FindMetadata(summaries_.front().study_uid, std::nullopt, std::nullopt);
  ASSERT_TRUE(metadata.ok());
  ASSERT_FALSE(metadata->empty());
  EXPECT_NE(metadata->front().find(std::string(kBulkDataPlaceholder)), std::string::npos);
  EXPECT_EQ(index->Rescan()->added, 0);  // and only once
}

TEST_F(FolderIndexTest, SkipsJunkAndFollowsChangesWithoutRestart) {
  auto index = Open();
  ASSERT_TRUE(index->Rescan().ok());
  size_t before = index->FindStudies({})->size();

  std::ofstream(samples_.path() / "notes.txt") << "not dicom";
  std::ofstream(samples_.path() / "truncated.dcm") << std::string(200, '\0');
  auto stats = index->Rescan();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->skipped, 2);
  EXPECT_EQ(stats->added, 0);
  // Skipped files are remembered: no second parse, no second log line.
  stats = index->Rescan();
  EXPECT_EQ(stats->skipped, 0);

  // A new study appears in another subfolder.
  testing::TempDir more("more");
  auto extra = dimse::GenerateSamples(more.path(), dimse::SampleOptions{99, 0.05});
  ASSERT_TRUE(extra.ok());
  std::filesystem::copy(more.path(), samples_.path() / "incoming",
                        std::filesystem::copy_options::recursive);
  stats = index->Rescan();
  ASSERT_TRUE(stats.ok());
  EXPECT_GT(stats->added, 0);
  EXPECT_EQ(index->FindStudies({})->size(), before + extra->size());

  // And goes away again.
  std::filesystem::remove_all(samples_.path() / "incoming");
  stats = index->Rescan();
  EXPECT_GT(stats->removed, 0);
  EXPECT_EQ(index->FindStudies({})->size(), before);
}

TEST_F(FolderIndexTest, ReopenedIndexParsesNothingAgain) {
  {
    auto index = Open();
    ASSERT_TRUE(index->Rescan().ok());
  }
  auto index = Open();
  auto stats = index->Rescan();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->added, 0);
  EXPECT_EQ(index->FindStudies({})->size(), summaries_.size());
}

TEST_F(FolderIndexTest, PlanRetrievalOrdersAndReportsMissing) {
  FolderSource source(Open(), 60);
  const auto& s = summaries_.front();
  auto plan = source.PlanRetrieval(RetrieveScope{s.study_uid, std::nullopt, std::nullopt});
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(static_cast<int>(plan->size()), s.instance_count);
  for (auto& i : *plan) {
    EXPECT_TRUE(std::filesystem::exists(i.path));
    EXPECT_EQ(i.patient_id, s.patient_id);
  }
  auto missing = source.PlanRetrieval(RetrieveScope{"1.2.3.4.5", std::nullopt, std::nullopt});
  EXPECT_EQ(missing.status().http_status(), 404);
  auto series =
      source.PlanRetrieval(RetrieveScope{s.study_uid, plan->front().series_uid, std::nullopt});
  ASSERT_TRUE(series.ok());
  for (auto& i : *series) EXPECT_EQ(i.series_uid, plan->front().series_uid);
}

}  // namespace
}  // namespace si
