#include "src/accept.h"

#include <algorithm>

#include "src/text.h"

namespace si {
namespace {

std::vector<std::string> SplitOutsideQuotes(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (char c : s) {
    if (c == '"') quoted = !quoted;
    if (c == sep && !quoted) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

}  // namespace

std::vector<MediaRange> ParseAccept(std::string_view header) {
  std::vector<MediaRange> ranges;
  for (auto& item : SplitOutsideQuotes(header, ',')) {
    auto pieces = SplitOutsideQuotes(item, ';');
    MediaRange r;
    r.type = text::ToLower(text::Trim(pieces[0]));
    if (r.type.empty()) continue;
    for (size_t i = 1; i < pieces.size(); ++i) {
      std::string p = text::Trim(pieces[i]);
      auto eq = p.find('=');
      if (eq == std::string::npos) continue;
      std::string name = text::ToLower(text::Trim(p.substr(0, eq)));
      std::string value = text::Trim(p.substr(eq + 1));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
        value = value.substr(1, value.size() - 2);
      if (name == "q") {
        try {
          r.q = std::stod(value);
        } catch (...) {
          r.q = 0;
        }
      } else {
        r.params[name] = value;
      }
    }
    if (r.q > 0) ranges.push_back(std::move(r));
  }
  std::stable_sort(ranges.begin(), ranges.end(),
                   [](const MediaRange& a, const MediaRange& b) { return a.q > b.q; });
  return ranges;
}

Result<RetrieveFormat> NegotiateRetrieve(std::string_view accept, bool single_instance,
                                         const std::set<std::string>& stored,
                                         const std::set<std::string>& producible) {
  if (text::Trim(accept).empty()) return RetrieveFormat{};
  bool asked_unservable_syntax = false;
  for (auto& r : ParseAccept(accept)) {
    auto ts = r.params.find("transfer-syntax");
    bool as_stored = ts == r.params.end() || ts->second == "*" ||
                     (stored.size() == 1 && *stored.begin() == ts->second);
    if (!as_stored && !producible.count(ts->second)) {
      asked_unservable_syntax = true;
      continue;
    }
    std::string transcode = as_stored ? "" : ts->second;
    if (r.type == "*/*" || r.type == "multipart/*")
      return RetrieveFormat{RetrieveShape::kMultipartDicom, transcode};
    if (r.type == "multipart/related") {
      auto type = r.params.find("type");
      if (type == r.params.end() || text::ToLower(type->second) == "application/dicom")
        return RetrieveFormat{RetrieveShape::kMultipartDicom, transcode};
      continue;
    }
    if (r.type == "application/dicom" && single_instance)
      return RetrieveFormat{RetrieveShape::kSingleDicom, transcode};
  }
  if (asked_unservable_syntax)
    return NotAcceptable(
        "the requested transfer syntax is not available for this data; ask for transfer-syntax=*");
  return NotAcceptable("acceptable: multipart/related; type=\"application/dicom\"");
}

Status NegotiateMetadata(std::string_view accept) {
  if (text::Trim(accept).empty()) return Status::Ok();
  for (auto& r : ParseAccept(accept))
    if (r.type == "application/dicom+json" || r.type == "application/json" || r.type == "*/*" ||
        r.type == "application/*")
      return Status::Ok();
  return NotAcceptable("metadata is available as application/dicom+json");
}

}  // namespace si
