#include <gtest/gtest.h>

#include <filesystem>

#include "dimse/dcmtk_setup.h"
#include "dimse/dicom_file.h"

namespace si {
namespace {

// Real files with character sets, from Debian's python3-pydicom.
std::filesystem::path CharsetFile(const char* name) {
  return std::filesystem::path("/usr/lib/python3/dist-packages/pydicom/data/charset_files") / name;
}

TEST(Charset, NamesArriveAsUtf8ForEveryCharacterSet) {
  ASSERT_TRUE(dimse::InitializeDcmtk().ok());
  if (!std::filesystem::exists(CharsetFile("chrH31.dcm")))
    GTEST_SKIP() << "python3-pydicom test files absent";
  dimse::DcmtkInstanceParser parser;
  struct Case {
    const char* file;
    const char* expect;  // a substring of the UTF-8 patient name
  } cases[] = {
      {"chrH31.dcm", "山田"},  // ISO 2022 IR 87: DCMTK alone fails here
      {"chrH32.dcm", "ﾔﾏﾀﾞ"},  // ISO 2022 IR 13 (half-width katakana)
      {"chrRuss.dcm", "Люкceмбypг"},    {"chrGreek.dcm", "Διονυσιος"},
      {"chrKoreanMulti.dcm", "김희중"}, {"chrFren.dcm", "Buc^Jérôme"},
  };
  for (auto& c : cases) {
    auto parsed = parser.Parse(CharsetFile(c.file));
    ASSERT_TRUE(parsed.ok()) << c.file << ": " << parsed.status().ToString();
    EXPECT_NE(parsed->study.patient_name.find(c.expect), std::string::npos)
        << c.file << ": got " << parsed->study.patient_name;
    EXPECT_EQ(parsed->metadata_json.find("\x1b"), std::string::npos)
        << c.file << ": escape sequences left";
  }
}

}  // namespace
}  // namespace si
