#include "dimse/bulk_data_reader.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <cstring>

#include "dimse/dicom_values.h"

namespace si::dimse {
namespace {

// Large values stay on disk while the file is opened; only the asked-for one is read.
constexpr Uint32 kMaxReadLength = 4096;

Result<std::string> FragmentBytes(DcmPixelItem& item) {
  Uint8* data = nullptr;
  if (item.getLength() == 0) return std::string();
  if (item.getUint8Array(data).bad() || !data) return IoError("cannot read a pixel data fragment");
  return std::string(reinterpret_cast<const char*>(data), item.getLength());
}

// Encapsulated pixel data as one part per frame (PS3.18 8.7.3.5): frames are found
// from the Basic Offset Table, or one fragment per frame, or all fragments in one
// frame when there is a single frame. Without a table and with more fragments than
// frames, frame boundaries are unknown: the fragments go out as one part.
Result<BulkValue> EncapsulatedFrames(DcmPixelSequence& seq, int64_t frames) {
  BulkValue value;
  value.encapsulated = true;
  const unsigned long card = seq.card();
  if (card == 0) return value;
  DcmPixelItem* table_item = nullptr;
  seq.getItem(table_item, 0);
  std::vector<Uint32> offsets;
  if (table_item && table_item->getLength() >= 4) {
    auto table = FragmentBytes(*table_item);
    if (!table.ok()) return table.status();
    for (size_t k = 0; k + 4 <= table->size(); k += 4) {
      Uint32 o;
      std::memcpy(&o, table->data() + k, 4);  // little endian on disk and on our hosts
      offsets.push_back(o);
    }
  }
  const unsigned long fragments = card - 1;
  bool per_fragment = frames > 1 && static_cast<unsigned long>(frames) == fragments;
  bool by_table = !per_fragment && frames > 1 && offsets.size() == static_cast<size_t>(frames);
  Uint32 position = 0;  // byte offset of the current fragment after the table
  size_t next_frame = 1;
  value.parts.emplace_back();
  for (unsigned long k = 1; k < card; ++k) {
    DcmPixelItem* item = nullptr;
    if (seq.getItem(item, k).bad() || !item) return IoError("cannot read pixel data fragments");
    bool starts_frame = k > 1 && (per_fragment || (by_table && next_frame < offsets.size() &&
                                                   position == offsets[next_frame]));
    if (starts_frame) {
      value.parts.emplace_back();
      if (by_table) ++next_frame;
    }
    auto bytes = FragmentBytes(*item);
    if (!bytes.ok()) return bytes.status();
    value.parts.back() += *bytes;
    position += item->getLength() + 8;  // item tag and length precede every fragment
  }
  return value;
}

}  // namespace

Result<BulkValue> DcmtkBulkDataReader::Read(const std::string& path, uint32_t tag) const {
  DcmFileFormat ff;
  OFCondition cond =
      ff.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, kMaxReadLength, ERM_autoDetect);
  if (cond.bad()) return IoError(std::string("cannot read the instance file: ") + cond.text());
  DcmDataset& ds = *ff.getDataset();
  DcmTagKey key(static_cast<Uint16>(tag >> 16), static_cast<Uint16>(tag & 0xFFFF));
  DcmElement* element = nullptr;
  if (ds.findAndGetElement(key, element, OFFalse).bad() || !element)
    return NotFound("the instance has no such attribute");
  if (element->ident() == EVR_SQ) return NotFound("the attribute is a sequence, not bulk data");

  if (key == DCM_PixelData && DcmXfer(ds.getOriginalXfer()).isEncapsulated()) {
    auto* pixels = static_cast<DcmPixelData*>(element);
    DcmPixelSequence* seq = nullptr;
    if (pixels->getEncapsulatedRepresentation(ds.getOriginalXfer(), nullptr, seq).bad() || !seq)
      return IoError("cannot read encapsulated pixel data");
    return EncapsulatedFrames(*seq, IntValue(ds, DCM_NumberOfFrames).value_or(1));
  }
  BulkValue value;
  const Uint32 length = element->getLength();
  std::string bytes(length, '\0');
  // Straight from the file when the value was not loaded; little endian as PS3.18 wants.
  if (length > 0 &&
      element->getPartialValue(bytes.data(), 0, length, nullptr, EBO_LittleEndian).bad())
    return IoError("cannot read the attribute value");
  value.parts.push_back(std::move(bytes));
  return value;
}

}  // namespace si::dimse
