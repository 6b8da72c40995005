#pragma once
// Reading attribute values as the index and the FHIR mapping want them: trimmed,
// valid UTF-8 text; integers only when the text is one.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcitem.h>

#include <cstdint>
#include <optional>
#include <string>

#include "src/text.h"

namespace si::dimse {

inline std::string TextValue(DcmItem& item, const DcmTagKey& tag) {
  OFString value;
  if (item.findAndGetOFStringArray(tag, value).good())
    return text::SanitizeUtf8(text::Trim(value.c_str()));
  return "";
}

inline std::optional<int64_t> IntValue(DcmItem& item, const DcmTagKey& tag) {
  std::string s = TextValue(item, tag);
  if (s.empty()) return std::nullopt;
  try {
    size_t used = 0;
    long long v = std::stoll(s, &used);
    if (used != s.size()) return std::nullopt;
    return v;
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace si::dimse
