#include "src/pixel_params.h"

#include <gtest/gtest.h>

#include <cmath>

#include "src/accept.h"

namespace si {
namespace {

TEST(FrameList, ParsesInOrderAndRejectsMalformed) {
  auto l = ParseFrameList("3,1,5");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(*l, (std::vector<int>{3, 1, 5}));
  EXPECT_EQ(*ParseFrameList("7"), std::vector<int>{7});
  for (const char* bad : {"", ",", "1,", ",1", "1,,2", "a", "-1", "+1", "1.5", "1 2", "9999999999"})
    EXPECT_EQ(ParseFrameList(bad).status().code(), ErrorCode::kInvalidArgument) << bad;
  // 0 parses (a well-formed number) but is out of range: 404, not 400.
  ASSERT_TRUE(ParseFrameList("0").ok());
  EXPECT_EQ(CheckFrameRange({0}, 3).code(), ErrorCode::kNotFound);
  EXPECT_EQ(CheckFrameRange({1, 4}, 3).code(), ErrorCode::kNotFound);
  EXPECT_TRUE(CheckFrameRange({3, 1, 2}, 3).ok());
}

TEST(FrameNegotiation, DefaultsQuotesStarAndImageTypes) {
  const std::string jpegll = ts::kJpegLossless70;
  auto target = [&](const char* accept, const std::string& stored, size_t n = 1) {
    auto f = NegotiateFrames(accept, stored, n);
    return f.ok() ? f->target + (f->single_part ? " single" : "") : "406";
  };
  EXPECT_EQ(target("", jpegll), ts::kExplicitLE);
  EXPECT_EQ(target("*/*", jpegll), ts::kExplicitLE);
  EXPECT_EQ(target("multipart/related; type=\"application/octet-stream\"", jpegll),
            ts::kExplicitLE);
  // OHIF's unquoted form.
  EXPECT_EQ(target("multipart/related; type=application/octet-stream; transfer-syntax=*", jpegll),
            "*");
  EXPECT_EQ(
      target("multipart/related; type=application/octet-stream; transfer-syntax=1.2.840.10008.1.2",
             jpegll),
      ts::kImplicitLE);
  // octet-stream cannot carry a compressed syntax by name.
  EXPECT_EQ(target("multipart/related; type=application/octet-stream; "
                   "transfer-syntax=1.2.840.10008.1.2.4.80",
                   jpegll),
            "406");
  EXPECT_EQ(target("multipart/related; type=\"image/jpeg\"", jpegll), "*");
  EXPECT_EQ(target("multipart/related; type=\"image/jpeg\"", ts::kExplicitLE), ts::kJpegBaseline);
  EXPECT_EQ(target("multipart/related; type=\"image/jls\"; transfer-syntax=1.2.840.10008.1.2.4.80",
                   ts::kExplicitLE),
            ts::kJpegLsLossless);
  EXPECT_EQ(target("multipart/related; type=\"image/jpeg\"; transfer-syntax=1.2.840.10008.1.2.4.80",
                   ts::kExplicitLE),
            "406");  // the syntax does not match the media type
  EXPECT_EQ(target("multipart/related; type=\"image/jp2\"", ts::kExplicitLE), "406");
  EXPECT_EQ(target("image/jpeg", jpegll), "* single");
  EXPECT_EQ(target("image/jpeg", jpegll, 2), "406");  // one part holds one frame
  EXPECT_EQ(target("text/html, multipart/related; type=image/jpeg; q=0.5", jpegll), "*");
  EXPECT_EQ(NegotiateFrames("text/html", jpegll, 1).status().code(), ErrorCode::kNotAcceptable);
}

TEST(FrameNegotiation, MediaTypesOfSyntaxes) {
  EXPECT_EQ(FrameMediaType(ts::kExplicitLE), "application/octet-stream");
  EXPECT_EQ(FrameMediaType(ts::kDeflatedLE), "application/octet-stream");
  EXPECT_EQ(FrameMediaType(ts::kJpegBaseline), "image/jpeg");
  EXPECT_EQ(FrameMediaType(ts::kJpegLsNear), "image/jls");
  EXPECT_EQ(FrameMediaType("1.2.840.10008.1.2.4.90"), "image/jp2");
  EXPECT_EQ(FrameMediaType(ts::kRle), "image/dicom-rle");
}

TEST(RetrieveNegotiation, TranscodesOnlyToProducibleSyntaxes) {
  std::set<std::string> stored = {ts::kExplicitLE};
  const char* ls =
      "multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.4.80";
  EXPECT_EQ(NegotiateRetrieve(ls, false, stored).status().code(), ErrorCode::kNotAcceptable);
  auto f = NegotiateRetrieve(ls, false, stored, EncodableSyntaxes());
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->transcode_to, ts::kJpegLsLossless);
  auto same = NegotiateRetrieve(
      "multipart/related; type=application/dicom; transfer-syntax=1.2.840.10008.1.2.1", false,
      stored, EncodableSyntaxes());
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->transcode_to, "");  // stored already
  EXPECT_EQ(NegotiateRetrieve(
                "multipart/related; type=application/dicom; transfer-syntax=1.2.840.10008.1.2.4.90",
                false, stored, EncodableSyntaxes())
                .status()
                .code(),
            ErrorCode::kNotAcceptable);  // no JPEG 2000 encoder
  auto single = NegotiateRetrieve("application/dicom; transfer-syntax=1.2.840.10008.1.2.5", true,
                                  stored, EncodableSyntaxes());
  ASSERT_TRUE(single.ok());
  EXPECT_EQ(single->shape, RetrieveShape::kSingleDicom);
  EXPECT_EQ(single->transcode_to, ts::kRle);
}

TEST(Window, LinearFollowsPs33) {
  // C.11.2.1.2.1 for center 40, width 400: below c - 0.5 - (w-1)/2 is 0, above c - 0.5 + (w-1)/2
  // is 1.
  Window w{40, 400, WindowFunction::kLinear};
  EXPECT_EQ(ApplyWindow(w, -160), 0.0);
  EXPECT_EQ(ApplyWindow(w, -500), 0.0);
  EXPECT_EQ(ApplyWindow(w, 240), 1.0);
  EXPECT_NEAR(ApplyWindow(w, 39.5), 0.5, 1e-12);
  EXPECT_NEAR(ApplyWindow(w, 139.5), 0.5 + 100.0 / 399, 1e-12);
  // Width 1: a threshold at the center.
  Window t{100, 1, WindowFunction::kLinear};
  EXPECT_EQ(ApplyWindow(t, 99), 0.0);
  EXPECT_EQ(ApplyWindow(t, 100), 1.0);
}

TEST(Window, LinearExactAndSigmoid) {
  Window e{0, 100, WindowFunction::kLinearExact};
  EXPECT_EQ(ApplyWindow(e, -50), 0.0);
  EXPECT_NEAR(ApplyWindow(e, 0), 0.5, 1e-12);
  EXPECT_NEAR(ApplyWindow(e, 25), 0.75, 1e-12);
  EXPECT_EQ(ApplyWindow(e, 50), 1.0);
  Window s{0, 100, WindowFunction::kSigmoid};
  EXPECT_NEAR(ApplyWindow(s, 0), 0.5, 1e-12);
  EXPECT_NEAR(ApplyWindow(s, 50), 1.0 / (1.0 + std::exp(-2.0)), 1e-12);
  EXPECT_NEAR(ApplyWindow(s, -50) + ApplyWindow(s, 50), 1.0, 1e-12);  // symmetric
}

TEST(Viewport, FitsKeepingAspect) {
  EXPECT_EQ(FitViewport(512, 512, 128, 128), std::make_pair(128, 128));
  EXPECT_EQ(FitViewport(64, 48, 128, 128), std::make_pair(128, 96));
  EXPECT_EQ(FitViewport(64, 48, 32, 32), std::make_pair(32, 24));
  EXPECT_EQ(FitViewport(48, 64, 100, 50), std::make_pair(38, 50));
  EXPECT_EQ(FitViewport(2000, 10, 100, 100), std::make_pair(100, 1));  // never 0 pixels
  EXPECT_EQ(FitViewport(300, 200, 0, 0), std::make_pair(300, 200));    // no viewport: own size
}

TEST(RenderRequest, ParametersAndAccept) {
  auto o = ParseRenderRequest({}, "", false);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->media_type, "image/jpeg");
  EXPECT_EQ(o->viewport_width, 0);
  EXPECT_FALSE(o->window);
  auto t = ParseRenderRequest({}, "image/png", true);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->media_type, "image/png");
  EXPECT_EQ(t->viewport_width, 128);
  auto p =
      ParseRenderRequest({{"viewport", "200,100"}, {"quality", "55"}, {"window", "40,400,SIGMOID"}},
                         "text/html, image/*;q=0.8", false);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->media_type, "image/jpeg");
  EXPECT_EQ(p->viewport_width, 200);
  EXPECT_EQ(p->viewport_height, 100);
  EXPECT_EQ(p->quality, 55);
  ASSERT_TRUE(p->window);
  EXPECT_EQ(p->window->function, WindowFunction::kSigmoid);
  EXPECT_EQ(p->window->center, 40);
  for (auto bad : std::vector<std::pair<std::string, std::string>>{{"viewport", "0,10"},
                                                                   {"viewport", "10"},
                                                                   {"viewport", "1,2,3,4,5,6"},
                                                                   {"quality", "0"},
                                                                   {"quality", "101"},
                                                                   {"window", "40"},
                                                                   {"window", "40,0"},
                                                                   {"window", "40,400,cubic"},
                                                                   {"window", "x,400"}})
    EXPECT_EQ(ParseRenderRequest({bad}, "", false).status().code(), ErrorCode::kInvalidArgument)
        << bad.first << "=" << bad.second;
  EXPECT_EQ(ParseRenderRequest({}, "image/gif", false).status().code(), ErrorCode::kNotAcceptable);
}

}  // namespace
}  // namespace si
