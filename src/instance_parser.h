#pragma once
// The seam between the folder index (src/) and the DICOM toolkit (dimse/): reading
// one file into the records the index keeps. Implementations are thread-safe.
#include <filesystem>

#include "src/model.h"
#include "src/status.h"

namespace si {

class InstanceParser {
 public:
  virtual ~InstanceParser() = default;
  // InvalidArgument for files that are not usable DICOM Part 10 instances (the
  // caller logs and skips them); IoError when the file cannot be read.
  virtual Result<ParsedInstance> Parse(const std::filesystem::path& file) const = 0;
};

}  // namespace si
