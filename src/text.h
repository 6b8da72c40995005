#pragma once
// Small text helpers shared by the mapping and the index.
#include <string>
#include <string_view>
#include <vector>

namespace si::text {

// Replaces invalid UTF-8 sequences with U+FFFD, so every string we emit as JSON is valid.
std::string SanitizeUtf8(std::string_view in);
std::string Trim(std::string_view s);
std::vector<std::string> Split(std::string_view s, char sep);
std::string ToLower(std::string_view s);
// application/x-www-form-urlencoded and URI query decoding ('+' as space when form).
std::string PercentDecode(std::string_view s, bool plus_is_space);
std::string PercentEncode(std::string_view s);
// "a=1&b=2" into ordered pairs, decoded.
std::vector<std::pair<std::string, std::string>> ParseQueryString(std::string_view query);
std::string HexSha256(std::string_view data);
bool IsValidUid(std::string_view uid);

}  // namespace si::text
