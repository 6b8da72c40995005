#pragma once
// Reads one attribute's value from a DICOM Part 10 file with DCMTK (/bulk/{tag}).
#include "src/bulk_data.h"

namespace si::dimse {

class DcmtkBulkDataReader final : public BulkDataReader {
 public:
  Result<BulkValue> Read(const std::string& path, uint32_t tag) const override;
};

}  // namespace si::dimse
