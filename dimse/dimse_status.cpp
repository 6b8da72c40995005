#include "dimse/dimse_status.h"

#include <dcmtk/dcmnet/cond.h>
#include <dcmtk/dcmnet/dimse.h>

#include <cstdio>

namespace si::dimse {

Status FromCondition(const OFCondition& c, const std::string& op, const std::string& where) {
  std::string text = c.text();
  if (c == DUL_ASSOCIATIONREJECTED)
    return Status(ErrorCode::kBadGateway,
                  op + ": " + where +
                      " rejected the association (check the called AE title "
                      "and that the PACS accepts our calling AE title)");
  if (c == DIMSE_NODATAAVAILABLE || c == DUL_READTIMEOUT || c == DIMSE_READPDVFAILED)
    return Status(ErrorCode::kGatewayTimeout,
                  op + ": " + where + " did not answer in time (" + text + ")");
  if (c.code() == DULC_TCPINITERROR || text.find("connect") != std::string::npos ||
      text.find("Connection refused") != std::string::npos || text.find("TCP") != std::string::npos)
    return Status(ErrorCode::kUnavailable,
                  op + ": PACS " + where + " is unreachable (" + text + ")");
  if (c == DUL_PEERABORTEDASSOCIATION || c == DUL_PEERREQUESTEDRELEASE || c == DUL_NETWORKCLOSED)
    return Status(ErrorCode::kBadGateway,
                  op + ": " + where + " ended the association (" + text + ")");
  return Status(ErrorCode::kBadGateway, op + ": " + where + ": " + text);
}

Status FromDimseStatus(uint16_t status, const std::string& op, const std::string& where) {
  char hex[8];
  std::snprintf(hex, sizeof hex, "%04X", status);
  std::string prefix = op + ": " + where + " answered status 0x" + hex;
  if (status == 0xA801)
    return Status(ErrorCode::kBadGateway,
                  prefix +
                      " (move destination unknown): the PACS must know our AE title, "
                      "host and DIMSE_PORT as a DICOM modality");
  if (status == 0xA701 || status == 0xA702)
    return Status(ErrorCode::kBadGateway,
                  prefix + " (out of resources: the PACS could not perform the sub-operations)");
  if (status == 0xFE00) return Status(ErrorCode::kUnavailable, prefix + " (cancelled)");
  if ((status & 0xF000) == 0xA000) return Status(ErrorCode::kBadGateway, prefix + " (refused)");
  if ((status & 0xF000) == 0xC000)
    return Status(ErrorCode::kBadGateway, prefix + " (unable to process)");
  return Status(ErrorCode::kBadGateway, prefix);
}

}  // namespace si::dimse
