#include "dimse/pixel_samples.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcrlerp.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djrplol.h>
#include <dcmtk/dcmjpeg/djrploss.h>
#include <dcmtk/dcmjpls/djrparam.h>

#include <memory>

#include "src/pixel_params.h"

namespace si::dimse {
namespace fs = std::filesystem;

uint16_t Mono16Value(int frame, int row, int column) {
  // A 12-bit ramp with a bright square that moves with the frame, so frames differ.
  int v = (row * 61 + column * 37 + frame * 500) % 4096;
  if (row >= 10 && row < 20 && column >= 10 * frame && column < 10 * frame + 10) v = 4000;
  return static_cast<uint16_t>(v);
}

uint8_t RgbValue(int row, int column, int sample) {
  switch (sample) {
    case 0:
      return static_cast<uint8_t>(row * 5);
    case 1:
      return static_cast<uint8_t>(column * 4);
    default:
      return static_cast<uint8_t>(255 - row * 2 - column);
  }
}

namespace {

constexpr const char* kRoot = "2.25.31415926535897932384626433";

struct Variant {
  const char* name;
  const char* kind;  // mono16, rgb, mono1, j2k
  const char* syntax;
};

const Variant kVariants[] = {
    {"mono16", "mono16", ts::kExplicitLE},
    {"mono16-jpegll", "mono16", ts::kJpegLossless70},
    {"mono16-jpegls", "mono16", ts::kJpegLsLossless},
    {"mono16-rle", "mono16", ts::kRle},
    {"mono16-deflate", "mono16", ts::kDeflatedLE},
    {"rgb", "rgb", ts::kExplicitLE},
    {"rgb-jpeg", "rgb", ts::kJpegBaseline},
    {"mono1", "mono1", ts::kExplicitLE},
    {"j2k", "j2k", "1.2.840.10008.1.2.4.90"},
};

std::unique_ptr<DcmRepresentationParameter> ParamFor(const std::string& t) {
  if (t == ts::kJpegBaseline) return std::make_unique<DJ_RPLossy>(90);
  if (t == ts::kJpegLossless70) return std::make_unique<DJ_RPLossless>(1, 0);
  if (t == ts::kJpegLsLossless) return std::make_unique<DJLSRepresentationParameter>(0, OFTrue);
  if (t == ts::kRle) return std::make_unique<DcmRLERepresentationParameter>();
  return nullptr;
}

Status Check(const OFCondition& c, const std::string& what) {
  return c.good() ? Status::Ok() : Internal("pixel sample " + what + ": " + c.text());
}

}  // namespace

Result<std::vector<PixelSample>> GeneratePixelSamples(const fs::path& out_dir,
                                                      const std::string& patient_id) {
  const std::string study_uid = std::string(kRoot) + ".1";
  std::vector<PixelSample> out;
  int index = 0;
  for (const Variant& v : kVariants) {
    ++index;
    PixelSample s{v.name,
                  v.syntax,
                  std::string(kRoot) + ".2." + std::to_string(index),
                  std::string(kRoot) + ".3." + std::to_string(index),
                  {}};
    DcmFileFormat file;
    DcmDataset* d = file.getDataset();
    const std::string kind = v.kind;
    const int rows = kPixelSampleRows, cols = kPixelSampleColumns;
    const int frames = kind == "mono16" ? kPixelSampleFrames : 1;
    auto str = [&](const DcmTagKey& tag, const std::string& value) {
      return Check(d->putAndInsertString(tag, value.c_str()), tag.toString().c_str());
    };
    auto u16 = [&](const DcmTagKey& tag, Uint16 value) {
      return Check(d->putAndInsertUint16(tag, value), tag.toString().c_str());
    };
    Status st;
    for (Status x : {str(DCM_SOPClassUID, kind == "mono16" ? "1.2.840.10008.5.1.4.1.1.7.3"
                                                           : "1.2.840.10008.5.1.4.1.1.7"),
                     str(DCM_SOPInstanceUID, s.sop_uid),
                     str(DCM_StudyInstanceUID, study_uid),
                     str(DCM_SeriesInstanceUID, s.series_uid),
                     str(DCM_PatientID, patient_id),
                     str(DCM_PatientName, "Pixels^Test"),
                     str(DCM_PatientBirthDate, "19700101"),
                     str(DCM_PatientSex, "O"),
                     str(DCM_StudyDate, "20240102"),
                     str(DCM_StudyTime, "101500"),
                     str(DCM_StudyID, "PIX1"),
                     str(DCM_AccessionNumber, "PIX0001"),
                     str(DCM_Modality, "OT"),
                     str(DCM_StudyDescription, "Pixel encodings"),
                     str(DCM_SeriesDescription, v.name),
                     str(DCM_SeriesNumber, std::to_string(index)),
                     str(DCM_InstanceNumber, "1"),
                     str(DCM_ConversionType, "SYN"),
                     u16(DCM_Rows, rows),
                     u16(DCM_Columns, cols)})
      if (st.ok()) st = x;
    if (kind == "mono16") {
      std::vector<Uint16> px;
      for (int f = 1; f <= frames; ++f)
        for (int r = 0; r < rows; ++r)
          for (int c = 0; c < cols; ++c) px.push_back(Mono16Value(f, r, c));
      for (Status x :
           {u16(DCM_SamplesPerPixel, 1), str(DCM_PhotometricInterpretation, "MONOCHROME2"),
            u16(DCM_BitsAllocated, 16), u16(DCM_BitsStored, 12), u16(DCM_HighBit, 11),
            u16(DCM_PixelRepresentation, 0), str(DCM_NumberOfFrames, std::to_string(frames)),
            str(DCM_RescaleIntercept, "-1024"), str(DCM_RescaleSlope, "1"),
            str(DCM_WindowCenter, "1000\\40"), str(DCM_WindowWidth, "4000\\400"),
            Check(d->putAndInsertUint16Array(DCM_PixelData, px.data(), px.size()), "pixels")})
        if (st.ok()) st = x;
    } else if (kind == "rgb") {
      std::vector<Uint8> px;
      for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols; ++c)
          for (int k = 0; k < 3; ++k) px.push_back(RgbValue(r, c, k));
      for (Status x :
           {u16(DCM_SamplesPerPixel, 3), str(DCM_PhotometricInterpretation, "RGB"),
            u16(DCM_PlanarConfiguration, 0), u16(DCM_BitsAllocated, 8), u16(DCM_BitsStored, 8),
            u16(DCM_HighBit, 7), u16(DCM_PixelRepresentation, 0),
            Check(d->putAndInsertUint8Array(DCM_PixelData, px.data(), px.size()), "pixels")})
        if (st.ok()) st = x;
    } else {
      for (Status x :
           {u16(DCM_SamplesPerPixel, 1),
            str(DCM_PhotometricInterpretation, kind == "mono1" ? "MONOCHROME1" : "MONOCHROME2"),
            u16(DCM_BitsAllocated, 8), u16(DCM_BitsStored, 8), u16(DCM_HighBit, 7),
            u16(DCM_PixelRepresentation, 0)})
        if (st.ok()) st = x;
      if (kind == "mono1") {
        std::vector<Uint8> px;
        for (int r = 0; r < rows; ++r)
          for (int c = 0; c < cols; ++c) px.push_back(static_cast<Uint8>(50 + c * 2));
        if (st.ok())
          st = Check(d->putAndInsertUint8Array(DCM_PixelData, px.data(), px.size()), "pixels");
      } else {
        // Not a decodable JPEG 2000 image: a codestream start (SOC, SIZ marker) and
        // filler, enough for a server that must refuse to decode it.
        auto* pixel = new DcmPixelData(DCM_PixelData);
        auto* seq = new DcmPixelSequence(DcmTag(DCM_PixelSequenceTag));
        seq->insert(new DcmPixelItem(DcmTag(DCM_Item, EVR_OB)));
        auto* fragment = new DcmPixelItem(DcmTag(DCM_Item, EVR_OB));
        std::vector<Uint8> code = {0xFF, 0x4F, 0xFF, 0x51, 0x00, 0x29, 0x00, 0x00};
        code.resize(64, 0x11);
        code.push_back(0xFF);
        code.push_back(0xD9);
        fragment->putUint8Array(code.data(), static_cast<Uint32>(code.size()));
        seq->insert(fragment);
        pixel->putOriginalRepresentation(EXS_JPEG2000LosslessOnly, nullptr, seq);
        if (st.ok()) st = Check(d->insert(pixel, true), "pixel sequence");
      }
    }
    if (!st.ok()) return st;
    E_TransferSyntax xfer = DcmXfer(v.syntax).getXfer();
    auto param = ParamFor(v.syntax);
    if (param) {
      SI_RETURN_IF_ERROR(
          Check(d->chooseRepresentation(xfer, param.get()), std::string("encode ") + v.name));
      if (!d->canWriteXfer(xfer))
        return Internal(std::string("pixel sample: cannot write ") + v.name);
    }
    fs::path dir = out_dir / patient_id / study_uid / s.series_uid;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return IoError("cannot create " + dir.string() + ": " + ec.message());
    s.path = dir / (s.sop_uid + ".dcm");
    SI_RETURN_IF_ERROR(Check(file.saveFile(s.path.c_str(), xfer), std::string("save ") + v.name));
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace si::dimse
