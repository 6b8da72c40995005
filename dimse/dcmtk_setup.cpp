#include "dimse/dcmtk_setup.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>

#include <cstdlib>
#include <mutex>
#include <string>

namespace si::dimse {

Status InitializeDcmtk() {
  static std::once_flag once;
  static Status result;
  std::call_once(once, [] {
    OFLog::configure(OFLogger::WARN_LOG_LEVEL);
    if (!dcmDataDict.isDictionaryLoaded()) {
      const char* env = std::getenv("DCMDICTPATH");
      result = InvalidConfig(std::string("DCMTK data dictionary not loaded (DCMDICTPATH=") +
                             (env ? env : "unset") +
                             "); install libdcmtk17 (/usr/share/libdcmtk17/dicom.dic) or set DCMDICTPATH");
      return;
    }
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
    DcmRLEDecoderRegistration::registerCodecs();
  });
  return result;
}

}  // namespace si::dimse
