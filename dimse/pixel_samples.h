#pragma once
// A test study whose series hold one instance each in a different pixel encoding
// (native multi-frame 16-bit, JPEG lossless, JPEG-LS, RLE, deflate, RGB, JPEG
// baseline YBR_FULL_422, MONOCHROME1, and a JPEG 2000 file that this build cannot
// decode), written with DCMTK's own encoders so tests need no shipped files.
#include <filesystem>
#include <string>
#include <vector>

#include "src/status.h"

namespace si::dimse {

struct PixelSample {
  std::string name;             // "mono16", "mono16-jpegll", ...
  std::string transfer_syntax;  // as stored
  std::string series_uid;
  std::string sop_uid;
  std::filesystem::path path;
};

// Writes out_dir/<patient>/<study>/<series>/<sop>.dcm (the samples layout).
// Needs InitializeDcmtk() (encoders).
Result<std::vector<PixelSample>> GeneratePixelSamples(const std::filesystem::path& out_dir,
                                                      const std::string& patient_id);

// The pixel values every "mono16" variant holds: frame f (1-based), row r, column c.
uint16_t Mono16Value(int frame, int row, int column);
// The RGB sample s (0..2) of the "rgb" variants.
uint8_t RgbValue(int row, int column, int sample);
inline constexpr int kPixelSampleRows = 48;
inline constexpr int kPixelSampleColumns = 64;
inline constexpr int kPixelSampleFrames = 3;

}  // namespace si::dimse
