// Bulk data with DCMTK: values read from files for /bulk/{tag} (native, encapsulated
// pixel data split into frames), and which attributes the parser's metadata gives a
// BulkDataURI. Test files are built here with DCMTK.
#include "dimse/bulk_data_reader.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcvrobow.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "dimse/dcmtk_setup.h"
#include "dimse/dicom_file.h"
#include "tests/unit/test_support.h"

namespace si::dimse {
namespace {

void Identify(DcmDataset& ds, const char* frames) {
  ds.putAndInsertString(DCM_SOPClassUID, "1.2.840.10008.5.1.4.1.1.7");
  ds.putAndInsertString(DCM_SOPInstanceUID, "1.2.3.4.5.6");
  ds.putAndInsertString(DCM_StudyInstanceUID, "1.2.3.4");
  ds.putAndInsertString(DCM_SeriesInstanceUID, "1.2.3.4.5");
  ds.putAndInsertString(DCM_NumberOfFrames, frames);
}

DcmPixelItem* Item(const std::string& bytes) {
  auto* item = new DcmPixelItem(DcmTag(DCM_Item, EVR_OB));
  item->putUint8Array(reinterpret_cast<const Uint8*>(bytes.data()),
                      static_cast<unsigned long>(bytes.size()));
  return item;
}

std::string Offsets(std::vector<Uint32> offsets) {
  return std::string(reinterpret_cast<const char*>(offsets.data()), offsets.size() * 4);
}

// An encapsulated (JPEG baseline) file with the given fragments and offset table.
std::string WriteEncapsulated(const std::filesystem::path& dir, const char* name,
                              const char* frames, const std::string& table,
                              const std::vector<std::string>& fragments) {
  DcmFileFormat ff;
  DcmDataset& ds = *ff.getDataset();
  Identify(ds, frames);
  auto* seq = new DcmPixelSequence(DcmTag(DCM_PixelData, EVR_OB));
  seq->insert(Item(table));
  for (auto& f : fragments) seq->insert(Item(f));
  auto* px = new DcmPixelData(DCM_PixelData);
  px->putOriginalRepresentation(EXS_JPEGProcess1, nullptr, seq);
  ds.insert(px);
  std::string path = (dir / name).string();
  EXPECT_TRUE(ff.saveFile(path.c_str(), EXS_JPEGProcess1).good());
  return path;
}

class BulkDataTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(InitializeDcmtk().ok()); }
  testing::TempDir dir_{"bulk"};
  DcmtkBulkDataReader reader_;
};

TEST_F(BulkDataTest, EncapsulatedPixelDataComesOutOneFramePerPart) {
  // One fragment per frame, empty offset table.
  auto a = WriteEncapsulated(dir_.path(), "a.dcm", "2", "", {"AAAA", "BBBBBB"});
  auto v = reader_.Read(a, 0x7FE00010);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_TRUE(v->encapsulated);
  EXPECT_EQ(v->parts, (std::vector<std::string>{"AAAA", "BBBBBB"}));
  // Frame 1 in two fragments: the offset table says where frame 2 starts.
  auto b = WriteEncapsulated(dir_.path(), "b.dcm", "2", Offsets({0, (4 + 8) + (2 + 8)}),
                             {"AAAA", "aa", "BBBBBB"});
  v = reader_.Read(b, 0x7FE00010);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->parts, (std::vector<std::string>{"AAAAaa", "BBBBBB"}));
  // A single frame in several fragments is one part.
  auto c = WriteEncapsulated(dir_.path(), "c.dcm", "1", "", {"AAAA", "aa"});
  v = reader_.Read(c, 0x7FE00010);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->parts, (std::vector<std::string>{"AAAAaa"}));
}

TEST_F(BulkDataTest, NativeValuesAbsentTagsAndSequences) {
  DcmFileFormat ff;
  DcmDataset& ds = *ff.getDataset();
  Identify(ds, "1");
  std::vector<Uint16> words(3000);
  for (size_t k = 0; k < words.size(); ++k) words[k] = static_cast<Uint16>(k * 7);
  ds.putAndInsertUint16Array(DCM_PixelData, words.data(), static_cast<unsigned long>(words.size()));
  std::string big(2048, 'x');
  // Private values with an explicit VR (OB), under their creator.
  ds.putAndInsertString(DcmTag(0x0009, 0x0010, EVR_LO), "SI TEST");
  for (auto [element, value] : {std::pair<Uint16, std::string>{0x1010, big}, {0x1011, "tiny"}}) {
    auto* e = new DcmOtherByteOtherWord(DcmTag(0x0009, element, EVR_OB));
    e->putUint8Array(reinterpret_cast<const Uint8*>(value.data()), value.size());
    ds.insert(e);
  }
  DcmItem* item = nullptr;
  ASSERT_TRUE(ds.findOrCreateSequenceItem(DCM_IconImageSequence, item, -2).good());
  item->putAndInsertUint16Array(DCM_PixelData, words.data(), 16);
  std::string path = (dir_.path() / "native.dcm").string();
  ASSERT_TRUE(ff.saveFile(path.c_str(), EXS_LittleEndianExplicit).good());

  auto v = reader_.Read(path, 0x7FE00010);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_FALSE(v->encapsulated);
  ASSERT_EQ(v->parts.size(), 1u);
  EXPECT_EQ(v->parts[0], std::string(reinterpret_cast<const char*>(words.data()), 6000));
  v = reader_.Read(path, 0x00091010);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->parts[0], big);
  EXPECT_EQ(reader_.Read(path, 0x00280010).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(reader_.Read(path, 0x00880200).status().code(), ErrorCode::kNotFound);  // a sequence
  EXPECT_EQ(reader_.Read((dir_.path() / "none.dcm").string(), 0x7FE00010).status().code(),
            ErrorCode::kIoError);

  // The parser's metadata: URIs for Pixel Data and the large private value, the small
  // one inline, nothing bulk inside the icon sequence.
  DcmtkInstanceParser parser;
  auto parsed = parser.Parse(path);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  rapidjson::Document d;
  d.Parse(parsed->metadata_json.c_str());
  ASSERT_FALSE(d.HasParseError());
  EXPECT_EQ(std::string(d["7FE00010"]["BulkDataURI"].GetString()),
            BulkDataPlaceholderUri("1.2.3.4", "1.2.3.4.5", "1.2.3.4.5.6", 0x7FE00010));
  EXPECT_EQ(std::string(d["00091010"]["BulkDataURI"].GetString()),
            BulkDataPlaceholderUri("1.2.3.4", "1.2.3.4.5", "1.2.3.4.5.6", 0x00091010));
  EXPECT_TRUE(d["00091011"].HasMember("InlineBinary"));
  ASSERT_TRUE(d.HasMember("00880200"));
  const auto& icon = d["00880200"]["Value"][0];
  EXPECT_FALSE(icon.HasMember("7FE00010"));
}

}  // namespace
}  // namespace si::dimse
