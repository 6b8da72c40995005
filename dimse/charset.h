#pragma once
// Text attributes to UTF-8 from the dataset's Specific Character Set. DCMTK's own
// conversion (glibc iconv) handles Latin-1, Cyrillic, Greek, Arabic, Hebrew and
// Korean, but not Japanese ISO 2022 IR 87 / IR 159: it asks iconv for "ISO-IR-87",
// which glibc lacks. For those we decode each text value as ISO-2022-JP ourselves.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcitem.h>

namespace si::dimse {

// True when every text value is now UTF-8 (SpecificCharacterSet says ISO_IR 192).
bool ConvertItemToUtf8(DcmItem& item);

}  // namespace si::dimse
