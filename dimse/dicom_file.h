#pragma once
// Reads DICOM Part 10 files with DCMTK into index records and DICOM JSON.
#include "src/instance_parser.h"

namespace si::dimse {

class DcmtkInstanceParser final : public InstanceParser {
 public:
  Result<ParsedInstance> Parse(const std::filesystem::path& file) const override;
};

}  // namespace si::dimse
