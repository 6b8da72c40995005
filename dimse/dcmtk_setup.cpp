#include "dimse/dcmtk_setup.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/dcmnet/dcmtrans.h>
#include <dcmtk/dcmnet/dul.h>
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
    // DCMTK leaves Nagle's algorithm on; it reads this switch on every connect and
    // accept. Set once here, before any thread exists (setenv is not thread-safe).
    // With Nagle on, a 600-instance C-MOVE took 53 s instead of 1.08 s.
    setenv("TCP_NODELAY", "1", 1);
    // No reverse DNS lookups of peers on every association.
    dcmDisableGethostbyaddr.set(OFTrue);
    if (!dcmDataDict.isDictionaryLoaded()) {
      const char* env = std::getenv("DCMDICTPATH");
      result = InvalidConfig(
          std::string("DCMTK data dictionary not loaded (DCMDICTPATH=") + (env ? env : "unset") +
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
