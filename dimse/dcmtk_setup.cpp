#include "dimse/dcmtk_setup.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcrleerg.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpeg/djencode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/dcmjpls/djencode.h>
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
    // Decoded YBR JPEG stays YBR (DCMTK then writes PhotometricInterpretation
    // YBR_FULL for the decoded pixels), so what we serve says what it is.
    DJDecoderRegistration::registerCodecs(EDC_never);
    DJLSDecoderRegistration::registerCodecs();
    DcmRLEDecoderRegistration::registerCodecs();
    // Encoders for transcoding on request: UIDs never change (the instance is the
    // same one the metadata describes); lossless stays bit-exact.
    DJEncoderRegistration::registerCodecs(ECC_lossyYCbCr, EUC_never);
    DJLSEncoderRegistration::registerCodecs(0, 0, 0, 0, OFTrue, 0, OFTrue, EJLSUC_never);
    DcmRLEEncoderRegistration::registerCodecs(OFFalse);
  });
  return result;
}

}  // namespace si::dimse
