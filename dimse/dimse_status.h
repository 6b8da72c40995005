#pragma once
// DCMTK conditions and DIMSE status codes into Status, in one place. Every message
// names the operation and the PACS (AE@host:port), never credentials.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/ofstd/ofcond.h>

#include <cstdint>
#include <string>

#include "src/status.h"

namespace si::dimse {

Status FromCondition(const OFCondition& condition, const std::string& operation,
                     const std::string& where);
Status FromDimseStatus(uint16_t status, const std::string& operation, const std::string& where);

}  // namespace si::dimse
