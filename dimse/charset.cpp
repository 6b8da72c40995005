#include "dimse/charset.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcelem.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <iconv.h>

#include <algorithm>
#include <string>
#include <string_view>

namespace si::dimse {
namespace {

bool IsText(DcmEVR vr) {
  switch (vr) {
    case EVR_PN:
    case EVR_LO:
    case EVR_SH:
    case EVR_ST:
    case EVR_LT:
    case EVR_UT:
    case EVR_UC:
      return true;
    default:
      return false;
  }
}

// Japanese ISO 2022 text (DICOM PS3.5 6.1.2.5): escape sequences switch between
// ASCII/JIS X 0201 (ESC ( B, ESC ( J), JIS X 0208 (ESC $ B, ESC $ @) and JIS X 0212
// (ESC $ ( D); bytes 0xA1-0xDF are half-width katakana (IR 13, G1). Re-encoded as
// EUC-JP, which glibc's iconv turns into UTF-8.
bool Decode(const std::string& in, std::string& out) {
  std::string euc;
  enum { kSingle, kJis0208, kJis0212 } mode = kSingle;
  for (size_t i = 0; i < in.size(); ++i) {
    unsigned char c = in[i];
    if (c == 0x1b) {
      std::string_view rest(in.data() + i + 1, in.size() - i - 1);
      if (rest.rfind("$B", 0) == 0 || rest.rfind("$@", 0) == 0) {
        mode = kJis0208;
        i += 2;
      } else if (rest.rfind("$(D", 0) == 0) {
        mode = kJis0212;
        i += 3;
      } else if (rest.rfind("(B", 0) == 0 || rest.rfind("(J", 0) == 0) {
        mode = kSingle;
        i += 2;
      } else if (rest.rfind(")I", 0) == 0) {
        i += 2;
      } else
        return false;
      continue;
    }
    if (mode == kSingle || c < 0x21 || c > 0x7e) {
      if (c >= 0xa1 && c <= 0xdf) euc += '\x8e';
      euc += static_cast<char>(c);
      continue;
    }
    if (i + 1 >= in.size()) return false;
    unsigned char d = in[++i];
    if (mode == kJis0212) euc += '\x8f';
    euc += static_cast<char>(c | 0x80);
    euc += static_cast<char>(d | 0x80);
  }
  iconv_t cd = iconv_open("UTF-8", "EUC-JP");
  if (cd == reinterpret_cast<iconv_t>(-1)) return false;
  std::string buffer(euc.size() * 4 + 16, '\0');
  char* src = euc.data();
  size_t src_left = euc.size();
  char* dst = buffer.data();
  size_t dst_left = buffer.size();
  size_t r = iconv(cd, &src, &src_left, &dst, &dst_left);
  iconv_close(cd);
  if (r == static_cast<size_t>(-1) || src_left != 0) return false;
  out.assign(buffer.data(), buffer.size() - dst_left);
  return true;
}

bool ConvertJapanese(DcmItem& item) {
  bool ok = true;
  for (unsigned long i = 0; i < item.card(); ++i) {
    DcmElement* e = item.getElement(i);
    if (!e) continue;
    if (e->ident() == EVR_SQ) {
      auto* sq = static_cast<DcmSequenceOfItems*>(e);
      for (unsigned long k = 0; k < sq->card(); ++k) ok = ConvertJapanese(*sq->getItem(k)) && ok;
      continue;
    }
    if (!IsText(e->ident())) continue;
    char* raw = nullptr;
    if (e->getString(raw).bad() || !raw) continue;
    Uint32 len = e->getLength();
    std::string value(raw, len);
    std::string utf8;
    // ISO 2022 text is 7-bit: only escapes or G1 bytes mark what needs decoding.
    bool plain = std::all_of(value.begin(), value.end(), [](char ch) {
      return static_cast<unsigned char>(ch) < 0x80 && ch != '\x1b';
    });
    if (plain) continue;
    if (Decode(value, utf8))
      e->putString(utf8.c_str(), static_cast<Uint32>(utf8.size()));
    else
      ok = false;
  }
  return ok;
}

}  // namespace

bool ConvertItemToUtf8(DcmItem& item) {
  if (item.convertToUTF8().good()) return true;
  OFString charset;
  item.findAndGetOFStringArray(DCM_SpecificCharacterSet, charset);
  std::string cs = charset.c_str();
  if (cs.find("ISO 2022 IR 87") == std::string::npos &&
      cs.find("ISO 2022 IR 159") == std::string::npos &&
      cs.find("ISO 2022 IR 13") == std::string::npos)
    return false;
  if (!ConvertJapanese(item)) return false;
  item.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 192");
  return true;
}

}  // namespace si::dimse
