// DcmtkPixelService on the pixel-variant study: frames, codec round trips
// (lossless ones bit-exact against the generator's pixels), refusals, and
// rendering checked pixel by pixel against the PS3.3 window functions.
#include "dimse/pixel_service.h"

#include <gtest/gtest.h>
#include <png.h>

#include <cmath>
#include <fstream>
#include <map>

#include "dimse/dcmtk_setup.h"
#include "dimse/pixel_samples.h"
#include "tests/unit/test_support.h"

namespace si::dimse {
namespace {

constexpr int kRows = kPixelSampleRows, kCols = kPixelSampleColumns;

std::string Mono16Frame(int f) {
  std::string b;
  for (int r = 0; r < kRows; ++r)
    for (int c = 0; c < kCols; ++c) {
      uint16_t v = Mono16Value(f, r, c);
      b += static_cast<char>(v & 0xff);
      b += static_cast<char>(v >> 8);
    }
  return b;
}

std::string RgbFrame() {
  std::string b;
  for (int r = 0; r < kRows; ++r)
    for (int c = 0; c < kCols; ++c)
      for (int k = 0; k < 3; ++k) b += static_cast<char>(RgbValue(r, c, k));
  return b;
}

struct Png {
  int width = 0, height = 0;
  std::vector<uint8_t> gray;
};

Png DecodeGrayPng(const std::string& bytes) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  Png out;
  if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size())) return out;
  image.format = PNG_FORMAT_GRAY;
  out.gray.resize(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, out.gray.data(), 0, nullptr)) return out;
  out.width = static_cast<int>(image.width);
  out.height = static_cast<int>(image.height);
  return out;
}

class PixelServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(InitializeDcmtk().ok());
    dir_ = new si::testing::TempDir("pixels");
    auto written = GeneratePixelSamples(dir_->path(), "P1");
    ASSERT_TRUE(written.ok()) << written.status().message();
    for (auto& s : *written) samples_[s.name] = s;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string PathOf(const std::string& name) { return samples_.at(name).path.string(); }
  // Writes bytes to a file in the temp dir and returns its path.
  static std::string Save(const std::string& name, const std::string& bytes) {
    auto p = dir_->path() / name;
    std::ofstream(p, std::ios::binary) << bytes;
    return p.string();
  }

  DcmtkPixelService px_;
  static si::testing::TempDir* dir_;
  static std::map<std::string, PixelSample> samples_;
};
si::testing::TempDir* PixelServiceTest::dir_ = nullptr;
std::map<std::string, PixelSample> PixelServiceTest::samples_;

TEST_F(PixelServiceTest, NativeFramesOfEveryStoredEncodingAreTheSourcePixels) {
  for (auto name : {"mono16", "mono16-jpegll", "mono16-jpegls", "mono16-rle", "mono16-deflate"}) {
    auto frames = px_.ExtractFrames(PathOf(name), {3, 1, 2}, ts::kExplicitLE);
    ASSERT_TRUE(frames.ok()) << name << ": " << frames.status().message();
    ASSERT_EQ(frames->size(), 3u);
    EXPECT_EQ((*frames)[0].bytes, Mono16Frame(3)) << name;
    EXPECT_EQ((*frames)[1].bytes, Mono16Frame(1)) << name;
    EXPECT_EQ((*frames)[2].bytes, Mono16Frame(2)) << name;
    EXPECT_EQ((*frames)[0].media_type, "application/octet-stream");
    EXPECT_EQ((*frames)[0].transfer_syntax, ts::kExplicitLE);
  }
  auto rgb = px_.ExtractFrames(PathOf("rgb"), {1}, ts::kExplicitLE);
  ASSERT_TRUE(rgb.ok());
  EXPECT_EQ(rgb->front().bytes, RgbFrame());
}

TEST_F(PixelServiceTest, StoredFramesKeepTheirBitstream) {
  auto jpeg = px_.ExtractFrames(PathOf("mono16-jpegll"), {1, 2, 3}, "*");
  ASSERT_TRUE(jpeg.ok()) << jpeg.status().message();
  for (auto& f : *jpeg) {
    EXPECT_EQ(f.media_type, "image/jpeg");
    EXPECT_EQ(f.transfer_syntax, ts::kJpegLossless70);
    ASSERT_GE(f.bytes.size(), 4u);
    EXPECT_EQ(static_cast<uint8_t>(f.bytes[0]), 0xFF);
    EXPECT_EQ(static_cast<uint8_t>(f.bytes[1]), 0xD8);
  }
  EXPECT_NE((*jpeg)[0].bytes, (*jpeg)[1].bytes);
  auto j2k = px_.ExtractFrames(PathOf("j2k"), {1}, "*");
  ASSERT_TRUE(j2k.ok());
  EXPECT_EQ(j2k->front().media_type, "image/jp2");
  EXPECT_EQ(j2k->front().bytes.substr(0, 4), std::string("\xFF\x4F\xFF\x51", 4));
  // Asking for the stored syntax by name is the same as "*".
  auto rle = px_.ExtractFrames(PathOf("mono16-rle"), {2}, ts::kRle);
  ASSERT_TRUE(rle.ok());
  EXPECT_EQ(rle->front().media_type, "image/dicom-rle");
}

TEST_F(PixelServiceTest, LosslessTranscodingRoundTripsBitExact) {
  for (std::string target : {ts::kImplicitLE, ts::kExplicitLE, ts::kJpegLossless57,
                             ts::kJpegLossless70, ts::kJpegLsLossless, ts::kRle}) {
    for (auto source : {"mono16", "mono16-jpegls", "mono16-deflate"}) {
      auto bytes = px_.Transcode(PathOf(source), target);
      ASSERT_TRUE(bytes.ok()) << source << " -> " << target << ": " << bytes.status().message();
      std::string back = Save("back.dcm", *bytes);
      auto stored = px_.ExtractFrames(back, {1}, "*");
      ASSERT_TRUE(stored.ok());
      // The file says what it holds: "*" reports the written syntax.
      EXPECT_EQ(stored->front().transfer_syntax, target);
      auto frames = px_.ExtractFrames(back, {1, 2, 3}, ts::kExplicitLE);
      ASSERT_TRUE(frames.ok()) << frames.status().message();
      for (int f = 1; f <= 3; ++f)
        EXPECT_EQ((*frames)[f - 1].bytes, Mono16Frame(f))
            << source << " -> " << target << " frame " << f;
    }
    auto rgb = px_.Transcode(PathOf("rgb"), target);
    ASSERT_TRUE(rgb.ok()) << "rgb -> " << target << ": " << rgb.status().message();
    auto frames = px_.ExtractFrames(Save("rgb-back.dcm", *rgb), {1}, ts::kExplicitLE);
    ASSERT_TRUE(frames.ok());
    EXPECT_EQ(frames->front().bytes, RgbFrame()) << "rgb -> " << target;
  }
}

TEST_F(PixelServiceTest, NearLosslessAndBaselineStayClose) {
  auto near = px_.Transcode(PathOf("mono16"), ts::kJpegLsNear);
  ASSERT_TRUE(near.ok()) << near.status().message();
  auto frames = px_.ExtractFrames(Save("near.dcm", *near), {2}, ts::kExplicitLE);
  ASSERT_TRUE(frames.ok());
  std::string want = Mono16Frame(2), got = frames->front().bytes;
  ASSERT_EQ(got.size(), want.size());
  int max_diff = 0;
  for (size_t i = 0; i < want.size(); i += 2) {
    int a = static_cast<uint8_t>(want[i]) | static_cast<uint8_t>(want[i + 1]) << 8;
    int b = static_cast<uint8_t>(got[i]) | static_cast<uint8_t>(got[i + 1]) << 8;
    max_diff = std::max(max_diff, std::abs(a - b));
  }
  EXPECT_LE(max_diff, 2);

  // RGB -> JPEG baseline (YBR_FULL_422) -> native: the pixels stay YBR (full
  // resolution); converted back to RGB they are close to the source.
  auto jpeg = px_.Transcode(PathOf("rgb"), ts::kJpegBaseline);
  ASSERT_TRUE(jpeg.ok()) << jpeg.status().message();
  auto ybr = px_.ExtractFrames(Save("ybr.dcm", *jpeg), {1}, ts::kExplicitLE);
  ASSERT_TRUE(ybr.ok());
  const std::string& y = ybr->front().bytes;
  ASSERT_EQ(y.size(), static_cast<size_t>(kRows * kCols * 3));
  double total = 0;
  for (int i = 0; i < kRows * kCols; ++i) {
    double Y = static_cast<uint8_t>(y[3 * i]), Cb = static_cast<uint8_t>(y[3 * i + 1]) - 128.0,
           Cr = static_cast<uint8_t>(y[3 * i + 2]) - 128.0;
    double rgb[3] = {Y + 1.402 * Cr, Y - 0.344136 * Cb - 0.714136 * Cr, Y + 1.772 * Cb};
    for (int k = 0; k < 3; ++k)
      total += std::abs(std::clamp(rgb[k], 0.0, 255.0) - RgbValue(i / kCols, i % kCols, k));
  }
  EXPECT_LT(total / (kRows * kCols * 3), 6.0) << "mean absolute error after JPEG baseline";
}

TEST_F(PixelServiceTest, RefusesWhatItCannotDoWithNotAcceptableOrNotFound) {
  EXPECT_FALSE(px_.CanDecode("1.2.840.10008.1.2.4.90"));
  EXPECT_TRUE(px_.CanDecode(ts::kJpegLsLossless));
  EXPECT_TRUE(px_.CanDecode(ts::kDeflatedLE));
  EXPECT_EQ(px_.ExtractFrames(PathOf("j2k"), {1}, ts::kExplicitLE).status().code(),
            ErrorCode::kNotAcceptable);
  EXPECT_EQ(px_.Transcode(PathOf("j2k"), ts::kExplicitLE).status().code(),
            ErrorCode::kNotAcceptable);
  EXPECT_EQ(px_.Render(PathOf("j2k"), 1, {}).status().code(), ErrorCode::kNotAcceptable);
  // 16-bit pixels never go silently into 8-bit JPEG baseline.
  EXPECT_EQ(px_.Transcode(PathOf("mono16"), ts::kJpegBaseline).status().code(),
            ErrorCode::kNotAcceptable);
  EXPECT_EQ(px_.ExtractFrames(PathOf("mono16"), {4}, ts::kExplicitLE).status().code(),
            ErrorCode::kNotFound);
  EXPECT_EQ(px_.ExtractFrames(PathOf("mono16"), {0}, "*").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(px_.Render(PathOf("mono16"), 4, {}).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(px_.ExtractFrames("/nonexistent.dcm", {1}, "*").status().code(), ErrorCode::kIoError);
}

// Every rendered pixel is the window function of the modality value (raw - 1024), within
// one grey level of rounding.
void ExpectWindowed(const Png& png, int frame, const Window& w) {
  ASSERT_EQ(png.width, kCols);
  ASSERT_EQ(png.height, kRows);
  int worst = 0;
  for (int r = 0; r < kRows; ++r)
    for (int c = 0; c < kCols; ++c) {
      double x = Mono16Value(frame, r, c) - 1024.0;
      int want = static_cast<int>(std::lround(ApplyWindow(w, x) * 255));
      worst = std::max(worst, std::abs(want - png.gray[r * kCols + c]));
    }
  EXPECT_LE(worst, 1);
}

TEST_F(PixelServiceTest, RenderingFollowsTheWindowFunctions) {
  RenderOptions png;
  png.media_type = "image/png";
  auto file_window = px_.Render(PathOf("mono16"), 1, png);  // the file's first window: 1000/4000
  ASSERT_TRUE(file_window.ok()) << file_window.status().message();
  ExpectWindowed(DecodeGrayPng(file_window->bytes), 1, {1000, 4000, WindowFunction::kLinear});
  for (WindowFunction fn :
       {WindowFunction::kLinear, WindowFunction::kLinearExact, WindowFunction::kSigmoid}) {
    RenderOptions o = png;
    o.window = Window{500, 1200, fn};
    auto r = px_.Render(PathOf("mono16-rle"), 2, o);
    ASSERT_TRUE(r.ok()) << r.status().message();
    ExpectWindowed(DecodeGrayPng(r->bytes), 2, *o.window);
  }
}

TEST_F(PixelServiceTest, RenderingMinMaxMonochrome1ViewportAndQuality) {
  RenderOptions png;
  png.media_type = "image/png";
  auto m1 = px_.Render(PathOf("mono1"), 1, png);
  ASSERT_TRUE(m1.ok()) << m1.status().message();
  Png p = DecodeGrayPng(m1->bytes);
  ASSERT_EQ(p.width, kCols);
  // No window in the file: min-max; MONOCHROME1: the lowest value is white.
  EXPECT_EQ(p.gray[10 * kCols + 0], 255);
  EXPECT_EQ(p.gray[10 * kCols + kCols - 1], 0);
  for (int c = 1; c < kCols; ++c) EXPECT_LE(p.gray[10 * kCols + c], p.gray[10 * kCols + c - 1]);

  RenderOptions small = png;
  small.viewport_width = small.viewport_height = 32;
  auto s = px_.Render(PathOf("mono16"), 1, small);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->width, 32);
  EXPECT_EQ(s->height, 24);
  Png sp = DecodeGrayPng(s->bytes);
  EXPECT_EQ(sp.width, 32);
  EXPECT_EQ(sp.height, 24);

  RenderOptions low, high;
  low.quality = 5;
  high.quality = 98;
  auto a = px_.Render(PathOf("rgb-jpeg"), 1, low), b = px_.Render(PathOf("rgb-jpeg"), 1, high);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->media_type, "image/jpeg");
  EXPECT_EQ(a->bytes.substr(0, 2), "\xFF\xD8");
  EXPECT_LT(a->bytes.size(), b->bytes.size());
}

}  // namespace
}  // namespace si::dimse
