#include "dimse/dicom_file.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcjson.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcuid.h>

#include <set>
#include <sstream>

#include "dimse/charset.h"
#include "dimse/dicom_values.h"
#include "src/bulk_data.h"
#include "src/text.h"

namespace si::dimse {
namespace {

// Elements above this size stay on disk while we read the header: indexing a
// 500 MB multi-frame file must not load its pixels.
constexpr Uint32 kMaxReadLength = 4096;

// Bulk data is not inlined in metadata, so metadata stays small and fast for large
// series: pixel data and the like, and any binary value above the threshold.
bool IsBulkTag(const DcmTagKey& tag) {
  return tag == DCM_PixelData || tag == DCM_FloatPixelData || tag == DCM_DoubleFloatPixelData ||
         tag == DCM_SpectroscopyData || tag == DCM_EncapsulatedDocument ||
         (tag.getGroup() >= 0x6000 && tag.getGroup() <= 0x60FF && tag.getElement() == 0x3000) ||
         tag == DCM_WaveformData;
}

bool IsBulk(DcmElement& e) {
  if (IsBulkTag(e.getTag())) return true;
  switch (e.getTag().getEVR()) {
    case EVR_OB:
    case EVR_OW:
    case EVR_OF:
    case EVR_OD:
    case EVR_OL:
    case EVR_OV:
    case EVR_UN:
    case EVR_ox:
    case EVR_px:
      // The length is known without loading the value (it may still be on disk).
      return e.getLength() > kBulkDataThreshold;
    default:
      return false;
  }
}

// Inside sequences bulk values are left out (PS3.18 allows it): their URIs would
// need an item path, and viewers do not ask for them. Elements sharing a tag with
// a top-level bulk attribute go too, so the JSON writer (which only sees tags)
// cannot give them the top-level attribute's URI.
void RemoveNestedBulk(DcmItem& item, const std::set<DcmTagKey>& top_level) {
  for (unsigned long i = item.card(); i-- > 0;) {
    DcmElement* e = item.getElement(i);
    if (!e) continue;
    if (IsBulk(*e) || top_level.count(e->getTag())) {
      delete item.remove(e);
    } else if (e->ident() == EVR_SQ) {
      auto* sq = static_cast<DcmSequenceOfItems*>(e);
      for (unsigned long k = 0; k < sq->card(); ++k) RemoveNestedBulk(*sq->getItem(k), top_level);
    }
  }
}

// Writes top-level bulk attributes as placeholder BulkDataURIs (src/bulk_data.h).
class BulkUriFormat final : public DcmJsonFormatCompact {
 public:
  BulkUriFormat(std::set<DcmTagKey> bulk, const ParsedInstance& p)
      : DcmJsonFormatCompact(OFTrue), bulk_(std::move(bulk)), p_(p) {}
  OFBool asBulkDataURI(const DcmTagKey& tag, OFString& uri) override {
    if (!bulk_.count(tag)) return OFFalse;
    uri = BulkDataPlaceholderUri(p_.study.study_instance_uid, p_.series.series_instance_uid,
                                 p_.instance.sop_instance_uid,
                                 (static_cast<uint32_t>(tag.getGroup()) << 16) | tag.getElement())
              .c_str();
    return OFTrue;
  }

 private:
  std::set<DcmTagKey> bulk_;
  const ParsedInstance& p_;
};

}  // namespace

Result<ParsedInstance> DcmtkInstanceParser::Parse(const std::filesystem::path& file) const {
  std::error_code ec;
  auto size = std::filesystem::file_size(file, ec);
  if (ec) return IoError("cannot stat file: " + ec.message());
  DcmFileFormat ff;
  OFCondition cond =
      ff.loadFile(file.c_str(), EXS_Unknown, EGL_noChange, kMaxReadLength, ERM_fileOnly);
  if (cond.bad()) return InvalidArgument(std::string("not a DICOM Part 10 file: ") + cond.text());
  DcmDataset& ds = *ff.getDataset();
  DcmMetaInfo& meta = *ff.getMetaInfo();

  ParsedInstance p;
  // Convert text to UTF-8 first so every string we index is readable. Character
  // sets iconv lacks (ISO 2022 IR 87) fail here; the values are then sanitized.
  bool converted = ConvertItemToUtf8(ds);

  p.instance.sop_instance_uid = TextValue(ds, DCM_SOPInstanceUID);
  p.instance.sop_class_uid = TextValue(ds, DCM_SOPClassUID);
  p.instance.transfer_syntax_uid = TextValue(meta, DCM_TransferSyntaxUID);
  p.instance.instance_number = IntValue(ds, DCM_InstanceNumber);
  p.instance.number_of_frames = IntValue(ds, DCM_NumberOfFrames).value_or(1);
  p.instance.path = file.string();
  p.instance.size_bytes = static_cast<int64_t>(size);
  p.series.series_instance_uid = TextValue(ds, DCM_SeriesInstanceUID);
  p.series.modality = TextValue(ds, DCM_Modality);
  p.series.series_number = IntValue(ds, DCM_SeriesNumber);
  p.series.description = TextValue(ds, DCM_SeriesDescription);
  p.series.body_part_examined = TextValue(ds, DCM_BodyPartExamined);
  p.series.series_date = TextValue(ds, DCM_SeriesDate);
  p.series.series_time = TextValue(ds, DCM_SeriesTime);
  p.study.study_instance_uid = TextValue(ds, DCM_StudyInstanceUID);
  p.study.patient_id = TextValue(ds, DCM_PatientID);
  p.study.patient_name = TextValue(ds, DCM_PatientName);
  p.study.study_date = TextValue(ds, DCM_StudyDate);
  p.study.study_time = TextValue(ds, DCM_StudyTime);
  p.study.timezone_offset = TextValue(ds, DCM_TimezoneOffsetFromUTC);
  p.study.accession_number = TextValue(ds, DCM_AccessionNumber);
  p.study.study_id = TextValue(ds, DCM_StudyID);
  p.study.description = TextValue(ds, DCM_StudyDescription);
  p.study.referring_physician = TextValue(ds, DCM_ReferringPhysicianName);

  if (!text::IsValidUid(p.study.study_instance_uid) ||
      !text::IsValidUid(p.series.series_instance_uid) ||
      !text::IsValidUid(p.instance.sop_instance_uid))
    return InvalidArgument("missing or invalid Study/Series/SOP Instance UID");
  if (p.instance.sop_class_uid.empty()) return InvalidArgument("missing SOP Class UID");
  if (p.instance.transfer_syntax_uid.empty())
    return InvalidArgument("missing Transfer Syntax UID in meta header");

  std::set<DcmTagKey> bulk;
  for (unsigned long i = 0; i < ds.card(); ++i)
    if (DcmElement* e = ds.getElement(i); e && e->ident() != EVR_SQ && IsBulk(*e))
      bulk.insert(e->getTag());
  for (unsigned long i = 0; i < ds.card(); ++i)
    if (DcmElement* e = ds.getElement(i); e && e->ident() == EVR_SQ) {
      auto* sq = static_cast<DcmSequenceOfItems*>(e);
      for (unsigned long k = 0; k < sq->card(); ++k) RemoveNestedBulk(*sq->getItem(k), bulk);
    }
  std::ostringstream json;
  BulkUriFormat format(std::move(bulk), p);
  cond = ds.writeJsonExt(json, format, OFTrue, OFTrue);
  if (cond.bad())
    return InvalidArgument(std::string("cannot express as DICOM JSON: ") + cond.text());
  p.metadata_json = converted ? json.str() : text::SanitizeUtf8(json.str());
  return p;
}

}  // namespace si::dimse
