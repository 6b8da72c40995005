#pragma once
// Accept header negotiation for WADO-RS (PS3.18 8.7), as pure functions.
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "src/status.h"

namespace si {

struct MediaRange {
  std::string type;                           // lower-case "multipart/related"
  std::map<std::string, std::string> params;  // lower-case names, unquoted values
  double q = 1.0;
};

// Splits on commas outside quotes; accepts quoted and unquoted parameter values.
std::vector<MediaRange> ParseAccept(std::string_view header);

enum class RetrieveShape { kMultipartDicom, kSingleDicom };

struct RetrieveFormat {
  RetrieveShape shape = RetrieveShape::kMultipartDicom;
  // Non-empty: every instance is to be written in this syntax (transcoded where
  // stored otherwise); empty: as stored.
  std::string transcode_to;
};

// A range asking for a transfer syntax other than the stored one is served when
// the syntax is in `producible` (the transcoding targets), else skipped.
// NotAcceptable when no range can be.
Result<RetrieveFormat> NegotiateRetrieve(std::string_view accept, bool single_instance,
                                         const std::set<std::string>& stored_syntaxes,
                                         const std::set<std::string>& producible = {});

// For metadata: application/dicom+json (or json, */*). NotAcceptable otherwise.
Status NegotiateMetadata(std::string_view accept);

}  // namespace si
