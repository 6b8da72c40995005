// Tests for the deterministic sample generator: layout, DICOM validity, determinism.
#include "dimse/samples.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <system_error>
#include <vector>

// clang-format off
#include <dcmtk/config/osconfig.h>  // must precede every other DCMTK header
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcuid.h>
// clang-format on

namespace si::dimse {
namespace {

namespace fs = std::filesystem;

constexpr char kDanaeId[] = "293ee354-f8ad-4345-b10c-759fdfdcc082";
constexpr double kTestScale = 0.1;

// A fresh directory under the system temp dir, removed when the test ends.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() / ("si-samples-" + std::to_string(::getpid()) + "-" +
                                         info->name() + "-" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::vector<fs::path> AllFiles(const fs::path& root) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.is_regular_file()) files.push_back(fs::relative(entry.path(), root));
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string ReadBytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string GetString(DcmItem* item, const DcmTagKey& tag) {
  OFString value;
  if (item->findAndGetOFStringArray(tag, value).bad()) return "";
  return value.c_str();
}

bool IsValidUid(const std::string& uid) {
  if (uid.empty() || uid.size() > 64 || uid.front() == '.' || uid.back() == '.') return false;
  for (size_t i = 0; i < uid.size(); ++i) {
    const char c = uid[i];
    if (c == '.') {
      if (uid[i + 1] == '.') return false;
      continue;
    }
    if (c < '0' || c > '9') return false;
    // No leading zeros in a component (except the component "0").
    const bool starts_component = i == 0 || uid[i - 1] == '.';
    if (starts_component && c == '0' && i + 1 < uid.size() && uid[i + 1] != '.') return false;
  }
  return true;
}

class SamplesTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(dcmDataDict.isDictionaryLoaded()); }
};

TEST_F(SamplesTest, GeneratesPatientsStudiesAndLayout) {
  TempDir dir;
  auto result = GenerateSamples(dir.path(), {.seed = 1, .scale = kTestScale});
  ASSERT_TRUE(result.ok()) << result.status().ToString();

  std::map<std::string, std::string> patients;  // id -> name
  std::set<std::string> modalities;
  int total_instances = 0;
  for (const SampleStudySummary& s : *result) {
    patients[s.patient_id] = s.patient_name;
    modalities.insert(s.modality);
    EXPECT_TRUE(IsValidUid(s.study_uid)) << s.study_uid;
    EXPECT_GE(s.series_count, 2) << s.study_uid;
    EXPECT_GE(s.instance_count, s.series_count) << s.study_uid;
    total_instances += s.instance_count;

    // <PatientID>/<StudyUID>/<SeriesUID>/<SOPInstanceUID>.dcm
    const fs::path study_dir = dir.path() / s.patient_id / s.study_uid;
    ASSERT_TRUE(fs::is_directory(study_dir)) << study_dir;
    int series_dirs = 0;
    for (const auto& series : fs::directory_iterator(study_dir)) {
      EXPECT_TRUE(series.is_directory());
      ++series_dirs;
    }
    EXPECT_EQ(series_dirs, s.series_count);
  }
  EXPECT_GE(patients.size(), 3u);
  ASSERT_TRUE(patients.count(kDanaeId));
  EXPECT_EQ(patients[kDanaeId], "Kshlerin^Danae");
  EXPECT_TRUE(modalities.count("CT"));
  EXPECT_TRUE(modalities.count("MR"));

  // Study UIDs are unique, and every patient has more than one study.
  std::set<std::string> study_uids;
  std::map<std::string, int> studies_per_patient;
  for (const SampleStudySummary& s : *result) {
    study_uids.insert(s.study_uid);
    ++studies_per_patient[s.patient_id];
  }
  EXPECT_EQ(study_uids.size(), result->size());
  for (const auto& [id, n] : studies_per_patient) EXPECT_GE(n, 2) << id;

  // Only finished .dcm files: no temporaries left behind.
  const std::vector<fs::path> files = AllFiles(dir.path());
  EXPECT_EQ(static_cast<int>(files.size()), total_instances);
  for (const fs::path& f : files) {
    EXPECT_EQ(f.extension(), ".dcm") << f;
    EXPECT_NE(f.filename().string().front(), '.') << f;
    EXPECT_EQ(std::distance(f.begin(), f.end()), 4) << f;
  }
}

TEST_F(SamplesTest, EveryFileIsCompleteDicom) {
  TempDir dir;
  auto result = GenerateSamples(dir.path(), {.seed = 7, .scale = kTestScale});
  ASSERT_TRUE(result.ok()) << result.status().ToString();

  std::set<std::string> sop_uids;
  const std::vector<fs::path> files = AllFiles(dir.path());
  ASSERT_FALSE(files.empty());
  for (const fs::path& rel : files) {
    SCOPED_TRACE(rel.string());
    DcmFileFormat file;
    ASSERT_TRUE(file.loadFile((dir.path() / rel).c_str()).good());
    DcmDataset* ds = file.getDataset();
    DcmMetaInfo* meta = file.getMetaInfo();

    const std::string modality = GetString(ds, DCM_Modality);
    const std::string sop_uid = GetString(ds, DCM_SOPInstanceUID);
    auto part = rel.begin();
    EXPECT_EQ(GetString(ds, DCM_PatientID), (part++)->string());
    EXPECT_EQ(GetString(ds, DCM_StudyInstanceUID), (part++)->string());
    EXPECT_EQ(GetString(ds, DCM_SeriesInstanceUID), (part++)->string());
    EXPECT_EQ(sop_uid + ".dcm", part->string());
    EXPECT_TRUE(IsValidUid(sop_uid)) << sop_uid;
    EXPECT_TRUE(sop_uids.insert(sop_uid).second) << "duplicate SOP UID " << sop_uid;

    // The meta header agrees with the dataset and names the syntax we wrote.
    EXPECT_EQ(GetString(meta, DCM_MediaStorageSOPInstanceUID), sop_uid);
    EXPECT_EQ(GetString(meta, DCM_MediaStorageSOPClassUID), GetString(ds, DCM_SOPClassUID));
    EXPECT_EQ(GetString(meta, DCM_TransferSyntaxUID), UID_LittleEndianExplicitTransferSyntax);

    for (const DcmTagKey& tag : {DCM_SpecificCharacterSet,
                                 DCM_SOPClassUID,
                                 DCM_StudyInstanceUID,
                                 DCM_SeriesInstanceUID,
                                 DCM_StudyDate,
                                 DCM_StudyTime,
                                 DCM_SeriesDate,
                                 DCM_SeriesTime,
                                 DCM_ContentDate,
                                 DCM_ContentTime,
                                 DCM_AccessionNumber,
                                 DCM_StudyID,
                                 DCM_StudyDescription,
                                 DCM_SeriesDescription,
                                 DCM_SeriesNumber,
                                 DCM_InstanceNumber,
                                 DCM_ReferringPhysicianName,
                                 DCM_InstitutionName,
                                 DCM_Manufacturer,
                                 DCM_BodyPartExamined,
                                 DCM_PatientName,
                                 DCM_PatientBirthDate,
                                 DCM_PatientSex,
                                 DCM_PhotometricInterpretation,
                                 DCM_PixelSpacing}) {
      EXPECT_FALSE(GetString(ds, tag).empty()) << DcmTag(tag).getTagName();
    }
    EXPECT_EQ(GetString(ds, DCM_SpecificCharacterSet), "ISO_IR 192");
    EXPECT_FALSE(ds->tagExists(DCM_TimezoneOffsetFromUTC));

    if (modality == "CT" || modality == "MR") {
      for (const DcmTagKey& tag :
           {DCM_FrameOfReferenceUID, DCM_ImagePositionPatient, DCM_ImageOrientationPatient,
            DCM_SliceThickness, DCM_SliceLocation, DCM_PatientPosition, DCM_WindowCenter,
            DCM_WindowWidth}) {
        EXPECT_FALSE(GetString(ds, tag).empty()) << DcmTag(tag).getTagName();
      }
      EXPECT_EQ(GetString(ds, DCM_SOPClassUID),
                modality == "CT" ? UID_CTImageStorage : UID_MRImageStorage);
    } else {
      EXPECT_EQ(modality, "CR");
      EXPECT_EQ(GetString(ds, DCM_SOPClassUID), UID_ComputedRadiographyImageStorage);
    }
    if (modality == "CT") {
      EXPECT_EQ(GetString(ds, DCM_RescaleIntercept), "-1024");
      EXPECT_EQ(GetString(ds, DCM_RescaleSlope), "1");
    }

    Uint16 rows = 0, cols = 0, samples = 0, bits_allocated = 0;
    ASSERT_TRUE(ds->findAndGetUint16(DCM_Rows, rows).good());
    ASSERT_TRUE(ds->findAndGetUint16(DCM_Columns, cols).good());
    ASSERT_TRUE(ds->findAndGetUint16(DCM_SamplesPerPixel, samples).good());
    ASSERT_TRUE(ds->findAndGetUint16(DCM_BitsAllocated, bits_allocated).good());
    EXPECT_EQ(samples, 1);
    EXPECT_GT(rows, 0);
    EXPECT_GT(cols, 0);
    // CT and MR are 16-bit, CR 8-bit.
    EXPECT_EQ(bits_allocated, modality == "CR" ? 8 : 16);

    DcmElement* pixels = nullptr;
    ASSERT_TRUE(ds->findAndGetElement(DCM_PixelData, pixels).good());
    const size_t expected_bytes = size_t{rows} * cols * (bits_allocated / 8);
    EXPECT_EQ(pixels->getLength(), expected_bytes);

    // Real images: the phantom spans a wide range of values, not a constant fill.
    Uint8* bytes = nullptr;
    ASSERT_TRUE(pixels->getUint8Array(bytes).good());
    ASSERT_NE(bytes, nullptr);
    std::set<Uint8> distinct(bytes, bytes + std::min<size_t>(expected_bytes, 65536));
    EXPECT_GT(distinct.size(), 32u);
  }
}

// The benchmark profile: the demo set unchanged, plus BENCH-0001 with five studies, the first
// two of 512x512 16-bit CT (3 and 4 series).
TEST_F(SamplesTest, BenchProfileAddsTheBenchPatientAndKeepsTheDemoSet) {
  TempDir demo, bench;
  auto d = GenerateSamples(demo.path(), {.seed = 5, .scale = 0.02});
  auto b =
      GenerateSamples(bench.path(), {.seed = 5, .scale = 0.02, .profile = SampleProfile::kBench});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  ASSERT_EQ(b->size(), d->size() + 5);
  for (size_t i = 0; i < d->size(); ++i) EXPECT_EQ((*b)[i].study_uid, (*d)[i].study_uid);
  std::vector<SampleStudySummary> mine(b->begin() + static_cast<long>(d->size()), b->end());
  for (const SampleStudySummary& s : mine) EXPECT_EQ(s.patient_id, "BENCH-0001");
  EXPECT_EQ(mine[0].series_count, 3);
  EXPECT_EQ(mine[0].instance_count, 3 * 4);  // 200 per series at scale 1
  EXPECT_EQ(mine[1].series_count, 4);
  EXPECT_EQ(mine[1].instance_count, 4 * 10);  // 500 per series at scale 1

  const fs::path study = bench.path() / "BENCH-0001" / mine[0].study_uid;
  fs::path first_file;
  for (const auto& e : fs::recursive_directory_iterator(study))
    if (e.is_regular_file()) first_file = e.path();
  ASSERT_FALSE(first_file.empty()) << study;
  DcmFileFormat ff;
  ASSERT_TRUE(ff.loadFile(first_file.c_str()).good());
  Uint16 rows = 0, columns = 0, bits = 0;
  DcmDataset* ds = ff.getDataset();
  ds->findAndGetUint16(DCM_Rows, rows);
  ds->findAndGetUint16(DCM_Columns, columns);
  ds->findAndGetUint16(DCM_BitsAllocated, bits);
  EXPECT_EQ(rows, 512);
  EXPECT_EQ(columns, 512);
  EXPECT_EQ(bits, 16);
  EXPECT_EQ(GetString(ds, DCM_Modality), "CT");
  EXPECT_GE(fs::file_size(first_file), 512u * 512u * 2u);
}

TEST_F(SamplesTest, SameSeedGivesByteIdenticalFiles) {
  TempDir first, second;
  auto a = GenerateSamples(first.path(), {.seed = 42, .scale = kTestScale});
  auto b = GenerateSamples(second.path(), {.seed = 42, .scale = kTestScale});
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  ASSERT_EQ(a->size(), b->size());
  for (size_t i = 0; i < a->size(); ++i) EXPECT_EQ((*a)[i].study_uid, (*b)[i].study_uid);

  const std::vector<fs::path> files = AllFiles(first.path());
  ASSERT_EQ(files, AllFiles(second.path()));
  for (const fs::path& rel : files) {
    EXPECT_TRUE(ReadBytes(first.path() / rel) == ReadBytes(second.path() / rel)) << rel;
  }
}

TEST_F(SamplesTest, RegeneratingInPlaceKeepsTheSameSet) {
  TempDir dir;
  ASSERT_TRUE(GenerateSamples(dir.path(), {.seed = 3, .scale = kTestScale}).ok());
  const std::vector<fs::path> before = AllFiles(dir.path());
  ASSERT_TRUE(GenerateSamples(dir.path(), {.seed = 3, .scale = kTestScale}).ok());
  EXPECT_EQ(AllFiles(dir.path()), before);
}

TEST_F(SamplesTest, DifferentSeedGivesDifferentUids) {
  TempDir first, second;
  auto a = GenerateSamples(first.path(), {.seed = 1, .scale = kTestScale});
  auto b = GenerateSamples(second.path(), {.seed = 2, .scale = kTestScale});
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  std::set<std::string> uids_a;
  for (const SampleStudySummary& s : *a) uids_a.insert(s.study_uid);
  for (const SampleStudySummary& s : *b) EXPECT_FALSE(uids_a.count(s.study_uid)) << s.study_uid;

  // Same patients either way: the seed varies UIDs and images, not who is in the set.
  ASSERT_EQ(a->size(), b->size());
  for (size_t i = 0; i < a->size(); ++i) EXPECT_EQ((*a)[i].patient_id, (*b)[i].patient_id);

  std::set<fs::path> files_a;
  for (const fs::path& f : AllFiles(first.path())) files_a.insert(f.filename());
  for (const fs::path& f : AllFiles(second.path())) EXPECT_FALSE(files_a.count(f.filename()));
}

TEST_F(SamplesTest, ScaleKeepsAtLeastOneInstancePerSeries) {
  TempDir tiny, small;
  auto t = GenerateSamples(tiny.path(), {.seed = 1, .scale = 1e-6});
  auto s = GenerateSamples(small.path(), {.seed = 1, .scale = 0.2});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  int tiny_total = 0, small_total = 0;
  for (const SampleStudySummary& study : *t) {
    EXPECT_EQ(study.instance_count, study.series_count) << study.study_uid;
    tiny_total += study.instance_count;
  }
  for (const SampleStudySummary& study : *s) small_total += study.instance_count;
  EXPECT_GT(small_total, tiny_total);
  EXPECT_EQ(static_cast<int>(AllFiles(tiny.path()).size()), tiny_total);
}

TEST_F(SamplesTest, SlicesAreOrderedAlongTheStack) {
  TempDir dir;
  ASSERT_TRUE(GenerateSamples(dir.path(), {.seed = 1, .scale = 0.25}).ok());
  // Per series: InstanceNumber -> SliceLocation; locations must be strictly monotonic.
  std::map<std::string, std::map<int, double>> locations;
  for (const fs::path& rel : AllFiles(dir.path())) {
    DcmFileFormat file;
    ASSERT_TRUE(file.loadFile((dir.path() / rel).c_str()).good());
    DcmDataset* ds = file.getDataset();
    if (GetString(ds, DCM_Modality) == "CR") continue;
    Float64 location = 0;
    ASSERT_TRUE(ds->findAndGetFloat64(DCM_SliceLocation, location).good());
    const int number = std::stoi(GetString(ds, DCM_InstanceNumber));
    locations[GetString(ds, DCM_SeriesInstanceUID)][number] = location;
  }
  ASSERT_FALSE(locations.empty());
  for (const auto& [series, by_number] : locations) {
    ASSERT_GE(by_number.size(), 2u) << series;
    double previous = std::nan("");
    for (const auto& [number, location] : by_number) {
      if (!std::isnan(previous)) {
        EXPECT_LT(location, previous) << series << " #" << number;
      }
      previous = location;
    }
  }
}

TEST_F(SamplesTest, NonAsciiNameIsUtf8) {
  TempDir dir;
  auto result = GenerateSamples(dir.path(), {.seed = 1, .scale = kTestScale});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  const std::string kMueller = "M\xC3\xBCller^J\xC3\xBCrgen";
  const SampleStudySummary* mueller = nullptr;
  for (const SampleStudySummary& s : *result) {
    if (s.patient_name == kMueller) mueller = &s;
  }
  ASSERT_NE(mueller, nullptr);
  const fs::path study_dir = dir.path() / mueller->patient_id / mueller->study_uid;
  fs::path first;
  for (const auto& entry : fs::recursive_directory_iterator(study_dir)) {
    if (entry.is_regular_file()) first = entry.path();
  }
  ASSERT_FALSE(first.empty());
  DcmFileFormat file;
  ASSERT_TRUE(file.loadFile(first.c_str()).good());
  EXPECT_EQ(GetString(file.getDataset(), DCM_PatientName), kMueller);
  EXPECT_EQ(GetString(file.getDataset(), DCM_SpecificCharacterSet), "ISO_IR 192");
}

TEST_F(SamplesTest, RejectsBadScale) {
  TempDir dir;
  for (double scale : {0.0, -1.0, std::nan(""), 1e9}) {
    auto result = GenerateSamples(dir.path(), {.seed = 1, .scale = scale});
    ASSERT_FALSE(result.ok()) << scale;
    EXPECT_EQ(result.status().code(), ErrorCode::kInvalidArgument) << scale;
  }
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST_F(SamplesTest, UnwritableDirectoryIsIoError) {
  TempDir dir;
  // A regular file where a directory should be: create_directories must fail, without root.
  const fs::path blocker = dir.path() / "not-a-dir";
  std::ofstream(blocker) << "x";
  auto result = GenerateSamples(blocker / "out", {.seed = 1, .scale = kTestScale});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kIoError) << result.status().ToString();
}

}  // namespace
}  // namespace si::dimse
