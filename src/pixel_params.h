#pragma once
// Pure parsing and negotiation for WADO-RS frames, transcoding and rendering
// (PS3.18 8.3.5, 8.7.3, 8.3.5.1 rendered parameters): no I/O, no DICOM toolkit.
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "src/status.h"

namespace si {

namespace ts {
inline constexpr const char* kImplicitLE = "1.2.840.10008.1.2";
inline constexpr const char* kExplicitLE = "1.2.840.10008.1.2.1";
inline constexpr const char* kDeflatedLE = "1.2.840.10008.1.2.1.99";
inline constexpr const char* kExplicitBE = "1.2.840.10008.1.2.2";
inline constexpr const char* kJpegBaseline = "1.2.840.10008.1.2.4.50";
inline constexpr const char* kJpegLossless57 = "1.2.840.10008.1.2.4.57";
inline constexpr const char* kJpegLossless70 = "1.2.840.10008.1.2.4.70";
inline constexpr const char* kJpegLsLossless = "1.2.840.10008.1.2.4.80";
inline constexpr const char* kJpegLsNear = "1.2.840.10008.1.2.4.81";
inline constexpr const char* kRle = "1.2.840.10008.1.2.5";
}  // namespace ts

// Syntaxes whose pixel data is not encapsulated (frames are raw native pixels).
bool IsNativeSyntax(const std::string& transfer_syntax);
// The media type of one frame's bytes in the syntax (PS3.18 table 8.7.3-2):
// application/octet-stream for native, image/jpeg, image/jls, image/jp2, ...
std::string FrameMediaType(const std::string& transfer_syntax);
// The syntaxes this server can write (instances and frames), given decodable input.
const std::set<std::string>& EncodableSyntaxes();

// "1,3,5": 1-based frame numbers in the order given. InvalidArgument when
// malformed (empty items, signs, non-digits, absurd values).
Result<std::vector<int>> ParseFrameList(std::string_view list);
// NotFound when a number is 0 or beyond the instance's frame count.
Status CheckFrameRange(const std::vector<int>& frames, int number_of_frames);

struct FrameFormat {
  // "*": as stored (for encapsulated syntaxes, the compressed bitstream); else the
  // syntax the frames are to be written in.
  std::string target = ts::kExplicitLE;
  bool single_part = false;  // a lone image/jpeg (etc.) body instead of multipart
};
// Accept negotiation for /frames. Quoted and unquoted `type` values both work
// (OHIF sends `multipart/related; type=application/octet-stream; transfer-syntax=*`).
// NotAcceptable when no range can be served from data stored as `stored`.
Result<FrameFormat> NegotiateFrames(std::string_view accept, const std::string& stored,
                                    size_t frame_count);

enum class WindowFunction { kLinear, kLinearExact, kSigmoid };
struct Window {
  double center = 0;
  double width = 1;
  WindowFunction function = WindowFunction::kLinear;
};
// PS3.3 C.11.2.1.2: output in [0, 1] for a modality value x.
double ApplyWindow(const Window& window, double x);

struct RenderOptions {
  std::string media_type = "image/jpeg";
  int viewport_width = 0;  // 0: the image's own size
  int viewport_height = 0;
  int quality = 90;
  std::optional<Window> window;  // absent: the file's first window, else min-max
};
// Query parameters viewport=w,h, quality=1..100, window=center,width[,function]
// and the Accept header (image/jpeg default, image/png). InvalidArgument for bad
// parameters, NotAcceptable for an Accept without a picture type we write.
// Thumbnails default to a 128-pixel viewport.
Result<RenderOptions> ParseRenderRequest(
    const std::vector<std::pair<std::string, std::string>>& query, std::string_view accept,
    bool thumbnail);
// The largest size with the image's aspect that fits the viewport (at least 1x1).
std::pair<int, int> FitViewport(int columns, int rows, int viewport_width, int viewport_height);

}  // namespace si
