#include "src/bulk_data.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

namespace si {

std::string BulkDataPlaceholderUri(std::string_view study_uid, std::string_view series_uid,
                                   std::string_view sop_uid, uint32_t tag) {
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", tag);
  std::string uri(kBulkDataPlaceholder);
  uri.append("studies/").append(study_uid);
  uri.append("/series/").append(series_uid);
  uri.append("/instances/").append(sop_uid);
  uri.append("/bulk/").append(hex);
  return uri;
}

std::string ResolveBulkDataUris(std::string_view json, std::string_view public_root) {
  // The placeholder only ever starts a BulkDataURI string value, so matching the
  // key with it cannot touch other text (a value equal to "si-bulk:" is not preceded
  // by the key). The root is JSON-escaped once.
  std::string needle = "\"BulkDataURI\":\"" + std::string(kBulkDataPlaceholder);
  std::string escaped;
  for (char c : public_root) {
    if (c == '"' || c == '\\') escaped += '\\';
    escaped += c;
  }
  std::string replacement = "\"BulkDataURI\":\"" + escaped;
  std::string out;
  size_t from = 0;
  for (size_t at; (at = json.find(needle, from)) != std::string_view::npos;
       from = at + needle.size()) {
    if (out.empty()) out.reserve(json.size() + 256);
    out.append(json.substr(from, at - from));
    out.append(replacement);
  }
  if (from == 0) return std::string(json);
  out.append(json.substr(from));
  return out;
}

std::optional<uint32_t> ParseBulkTag(std::string_view text) {
  if (text.size() != 8 ||
      !std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isxdigit(c); }))
    return std::nullopt;
  return static_cast<uint32_t>(std::stoul(std::string(text), nullptr, 16));
}

}  // namespace si
