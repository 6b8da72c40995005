#include "src/pixel_params.h"

#include <algorithm>
#include <cmath>

#include "src/accept.h"
#include "src/text.h"

namespace si {

bool IsNativeSyntax(const std::string& t) {
  return t == ts::kImplicitLE || t == ts::kExplicitLE || t == ts::kDeflatedLE ||
         t == ts::kExplicitBE;
}

std::string FrameMediaType(const std::string& t) {
  if (IsNativeSyntax(t)) return "application/octet-stream";
  if (t == ts::kJpegBaseline || t == "1.2.840.10008.1.2.4.51" || t == ts::kJpegLossless57 ||
      t == ts::kJpegLossless70)
    return "image/jpeg";
  if (t == ts::kJpegLsLossless || t == ts::kJpegLsNear) return "image/jls";
  if (t == "1.2.840.10008.1.2.4.90" || t == "1.2.840.10008.1.2.4.91") return "image/jp2";
  if (t == "1.2.840.10008.1.2.4.92" || t == "1.2.840.10008.1.2.4.93") return "image/jpx";
  if (t == "1.2.840.10008.1.2.4.201" || t == "1.2.840.10008.1.2.4.202" ||
      t == "1.2.840.10008.1.2.4.203")
    return "image/jphc";
  if (t == ts::kRle) return "image/dicom-rle";
  return "application/octet-stream";
}

const std::set<std::string>& EncodableSyntaxes() {
  static const std::set<std::string> kSet = {
      ts::kImplicitLE,     ts::kExplicitLE,     ts::kJpegBaseline, ts::kJpegLossless57,
      ts::kJpegLossless70, ts::kJpegLsLossless, ts::kJpegLsNear,   ts::kRle};
  return kSet;
}

Result<std::vector<int>> ParseFrameList(std::string_view list) {
  std::vector<int> out;
  if (list.empty()) return InvalidArgument("empty frame list");
  for (auto& item : text::Split(std::string(list), ',')) {
    if (item.empty() || item.size() > 9 ||
        !std::all_of(item.begin(), item.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return InvalidArgument("malformed frame list '" + std::string(list) +
                             "': use 1-based numbers separated by commas");
    out.push_back(std::stoi(item));
  }
  return out;
}

Status CheckFrameRange(const std::vector<int>& frames, int number_of_frames) {
  for (int f : frames)
    if (f < 1 || f > number_of_frames)
      return NotFound("frame " + std::to_string(f) + " does not exist; the instance has " +
                      std::to_string(number_of_frames) + " frame(s)");
  return Status::Ok();
}

namespace {

// The syntax to write for a media type asked with (or without) a transfer-syntax
// parameter; "" when this range cannot be served.
std::string TargetFor(const std::string& media, const std::string* asked,
                      const std::string& stored) {
  const std::string stored_media = FrameMediaType(stored);
  if (media == "application/octet-stream") {
    if (!asked) return ts::kExplicitLE;
    if (*asked == "*") return "*";
    if (IsNativeSyntax(*asked) && *asked != ts::kDeflatedLE && *asked != ts::kExplicitBE)
      return *asked;
    return "";
  }
  if (!asked || *asked == "*") {
    if (stored_media == media) return "*";
    if (asked) return "";
    // PS3.18 table 8.7.3-5: the default syntax of each image media type.
    if (media == "image/jpeg") return ts::kJpegBaseline;
    if (media == "image/jls") return ts::kJpegLsLossless;
    if (media == "image/dicom-rle") return ts::kRle;
    return "";
  }
  if (FrameMediaType(*asked) != media) return "";
  if (*asked == stored) return "*";
  return EncodableSyntaxes().count(*asked) ? *asked : "";
}

}  // namespace

Result<FrameFormat> NegotiateFrames(std::string_view accept, const std::string& stored,
                                    size_t frame_count) {
  if (text::Trim(accept).empty()) return FrameFormat{};
  for (auto& r : ParseAccept(accept)) {
    auto ts_it = r.params.find("transfer-syntax");
    const std::string* asked = ts_it == r.params.end() ? nullptr : &ts_it->second;
    std::string target;
    bool single = false;
    if (r.type == "*/*" || r.type == "multipart/*") {
      target = TargetFor("application/octet-stream", asked, stored);
    } else if (r.type == "multipart/related") {
      auto type = r.params.find("type");
      std::string media =
          type == r.params.end() ? "application/octet-stream" : text::ToLower(type->second);
      target = TargetFor(media, asked, stored);
    } else if (frame_count == 1 &&
               (r.type.rfind("image/", 0) == 0 || r.type == "application/octet-stream")) {
      target = TargetFor(r.type, asked, stored);
      single = true;
    }
    if (!target.empty()) return FrameFormat{target, single};
  }
  return NotAcceptable(
      "frames are available as multipart/related; type=\"application/octet-stream\" "
      "(transfer-syntax " +
      std::string(ts::kExplicitLE) + " or *), or in " + FrameMediaType(stored) +
      "; transcoding targets: JPEG baseline/lossless, JPEG-LS, RLE");
}

double ApplyWindow(const Window& w, double x) {
  switch (w.function) {
    case WindowFunction::kLinearExact: {
      if (w.width <= 0) return x <= w.center ? 0 : 1;
      double y = (x - (w.center - w.width / 2)) / w.width;
      return std::clamp(y, 0.0, 1.0);
    }
    case WindowFunction::kSigmoid:
      return 1.0 / (1.0 + std::exp(-4.0 * (x - w.center) / w.width));
    case WindowFunction::kLinear:
    default: {
      // C.11.2.1.2.1 with the output range [0, 1].
      double c = w.center - 0.5, width = w.width - 1;
      if (x <= c - width / 2) return 0;
      if (x > c + width / 2) return 1;
      return std::clamp((x - c) / width + 0.5, 0.0, 1.0);
    }
  }
}

namespace {

bool ParseNumber(const std::string& s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return end && *end == '\0' && std::isfinite(out);
}

bool ParseInt(const std::string& s, int lo, int hi, int& out) {
  if (s.empty() || s.size() > 6 ||
      !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  out = std::stoi(s);
  return out >= lo && out <= hi;
}

}  // namespace

Result<RenderOptions> ParseRenderRequest(
    const std::vector<std::pair<std::string, std::string>>& query, std::string_view accept,
    bool thumbnail) {
  RenderOptions o;
  if (thumbnail) o.viewport_width = o.viewport_height = 128;
  for (auto& [name, value] : query) {
    if (name == "viewport") {
      auto p = text::Split(value, ',');
      // vw,vh with the optional source rectangle sx,sy,sw,sh not supported.
      if (p.size() != 2 || !ParseInt(p[0], 1, 4096, o.viewport_width) ||
          !ParseInt(p[1], 1, 4096, o.viewport_height))
        return InvalidArgument("viewport must be width,height in pixels (1..4096)");
    } else if (name == "quality") {
      if (!ParseInt(value, 1, 100, o.quality))
        return InvalidArgument("quality must be an integer from 1 to 100");
    } else if (name == "window") {
      auto p = text::Split(value, ',');
      Window w;
      if (p.size() < 2 || p.size() > 3 || !ParseNumber(p[0], w.center) ||
          !ParseNumber(p[1], w.width) || w.width <= 0)
        return InvalidArgument("window must be center,width[,function] with width > 0");
      std::string fn = p.size() == 3 ? text::ToLower(p[2]) : "linear";
      if (fn == "linear")
        w.function = WindowFunction::kLinear;
      else if (fn == "linear-exact")
        w.function = WindowFunction::kLinearExact;
      else if (fn == "sigmoid")
        w.function = WindowFunction::kSigmoid;
      else
        return InvalidArgument("window function '" + p[2] +
                               "' is not supported: use linear, linear-exact or sigmoid");
      if (w.function == WindowFunction::kLinear && w.width < 1)
        return InvalidArgument("a linear window needs width >= 1");
      o.window = w;
    }
    // Other parameters (annotation, charset, ...) are ignored, as PS3.18 allows.
  }
  if (text::Trim(accept).empty()) return o;
  for (auto& r : ParseAccept(accept)) {
    if (r.type == "image/jpeg" || r.type == "image/*" || r.type == "*/*") {
      o.media_type = "image/jpeg";
      return o;
    }
    if (r.type == "image/png") {
      o.media_type = "image/png";
      return o;
    }
  }
  return NotAcceptable("rendered images are available as image/jpeg or image/png");
}

std::pair<int, int> FitViewport(int columns, int rows, int vw, int vh) {
  if (columns <= 0 || rows <= 0) return {1, 1};
  if (vw <= 0 || vh <= 0) return {columns, rows};
  // Compare vw/columns with vh/rows in integers: the tighter side decides.
  if (static_cast<int64_t>(vw) * rows <= static_cast<int64_t>(vh) * columns) {
    int h = static_cast<int>((static_cast<int64_t>(rows) * vw + columns / 2) / columns);
    return {vw, std::max(1, h)};
  }
  int w = static_cast<int>((static_cast<int64_t>(columns) * vh + rows / 2) / rows);
  return {std::max(1, w), vh};
}

}  // namespace si
