#pragma once
// Bulk data of stored instances: the BulkDataURIs of precomputed metadata and the
// seam that reads one attribute's value from a file (DCMTK work, in dimse/).
//
// Metadata is computed once per instance at ingest, but its BulkDataURIs must name
// the client-facing WADO root, which holds the per-request study token. So the
// stored JSON carries "BulkDataURI":"<kBulkDataPlaceholder>studies/{S}/series/{SE}/
// instances/{I}/bulk/{tag}" and ResolveBulkDataUris puts the root in when serving.
// Only top-level attributes get URIs; bulk values inside sequences (icon images and
// the like) are left out of the metadata.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/status.h"

namespace si {

inline constexpr std::string_view kBulkDataPlaceholder = "si-bulk:";

// Binary values larger than this go to a BulkDataURI instead of the metadata.
inline constexpr uint32_t kBulkDataThreshold = 1024;

// The stored placeholder URI of a top-level attribute.
std::string BulkDataPlaceholderUri(std::string_view study_uid, std::string_view series_uid,
                                   std::string_view sop_uid, uint32_t tag);

// Replaces every placeholder BulkDataURI in a DICOM JSON text with public_root
// (the WADO root ending in '/'); text without placeholders comes back unchanged.
std::string ResolveBulkDataUris(std::string_view json, std::string_view public_root);

// "7fe00010" (case-insensitive, exactly eight hex digits) to a tag.
std::optional<uint32_t> ParseBulkTag(std::string_view text);

struct BulkValue {
  // One element per part of the answer: the whole value for ordinary attributes
  // and native pixel data; one frame's fragments each for encapsulated pixel data.
  std::vector<std::string> parts;
  bool encapsulated = false;
};

// Reads one top-level attribute's value from a DICOM Part 10 file. Thread-safe.
// NotFound when the file has no such attribute (or it is a sequence); IoError when
// the file cannot be read.
class BulkDataReader {
 public:
  virtual ~BulkDataReader() = default;
  virtual Result<BulkValue> Read(const std::string& path, uint32_t tag) const = 0;
};

}  // namespace si
