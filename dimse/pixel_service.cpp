#include "dimse/pixel_service.h"

#include <dcmtk/config/osconfig.h>
// dcmimage.h first: the plugin headers rely on its definitions.
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcrlerp.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmimage/diregist.h>
#include <dcmtk/dcmimgle/dcmimage.h>
#include <dcmtk/dcmjpeg/djrplol.h>
#include <dcmtk/dcmjpeg/djrploss.h>
#include <dcmtk/dcmjpls/djrparam.h>
// The image plugins need dcmimgle's definitions included before them.
#include <dcmtk/dcmimage/dipipng.h>
#include <dcmtk/dcmimgle/didefine.h>
#include <dcmtk/dcmjpeg/dipijpeg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

namespace si::dimse {
namespace {

// Syntaxes with a decoder registered in InitializeDcmtk (JPEG 2000 has none in
// Debian's DCMTK 3.6.7).
const std::set<std::string>& DecodableEncapsulated() {
  static const std::set<std::string> kSet = {ts::kJpegBaseline,
                                             "1.2.840.10008.1.2.4.51",
                                             ts::kJpegLossless57,
                                             ts::kJpegLossless70,
                                             ts::kJpegLsLossless,
                                             ts::kJpegLsNear,
                                             ts::kRle};
  return kSet;
}

Status CannotDecode(const std::string& stored) {
  return NotAcceptable("the instance is stored as " + stored + " (" +
                       DcmXfer(stored.c_str()).getXferName() +
                       "), which this server cannot decode; ask for transfer-syntax=* to get the "
                       "stored data");
}

struct Loaded {
  DcmFileFormat file;
  DcmDataset* dataset = nullptr;
  std::string stored;  // transfer syntax UID as stored
};

Result<std::unique_ptr<Loaded>> Load(const std::string& path) {
  auto l = std::make_unique<Loaded>();
  OFCondition c = l->file.loadFile(path.c_str());
  if (c.bad()) return IoError("cannot read the instance file: " + std::string(c.text()));
  l->dataset = l->file.getDataset();
  l->stored = DcmXfer(l->dataset->getOriginalXfer()).getXferID();
  const char* meta_ts = nullptr;
  if (l->file.getMetaInfo()->findAndGetString(DCM_TransferSyntaxUID, meta_ts).good() && meta_ts)
    l->stored = meta_ts;
  return l;
}

int NumberOfFrames(DcmDataset& ds) {
  Sint32 n = 1;
  if (ds.findAndGetSint32(DCM_NumberOfFrames, n).bad() || n < 1) n = 1;
  return n;
}

DcmPixelData* PixelDataOf(DcmDataset& ds) {
  DcmElement* e = nullptr;
  if (ds.findAndGetElement(DCM_PixelData, e).bad() || !e) return nullptr;
  return dynamic_cast<DcmPixelData*>(e);
}

// The representation parameter for an encapsulated target; null for RLE-less defaults.
std::unique_ptr<DcmRepresentationParameter> ParamFor(const std::string& target) {
  if (target == ts::kJpegBaseline) return std::make_unique<DJ_RPLossy>(90);
  if (target == ts::kJpegLossless57 || target == ts::kJpegLossless70)
    return std::make_unique<DJ_RPLossless>(1, 0);
  if (target == ts::kJpegLsLossless)
    return std::make_unique<DJLSRepresentationParameter>(0, OFTrue);
  if (target == ts::kJpegLsNear) return std::make_unique<DJLSRepresentationParameter>(2, OFFalse);
  if (target == ts::kRle) return std::make_unique<DcmRLERepresentationParameter>();
  return nullptr;
}

// Brings the dataset into the target syntax (native or encapsulated); the
// parameter used stays owned by the caller for getEncapsulatedRepresentation.
Status Convert(Loaded& l, const std::string& target,
               std::unique_ptr<DcmRepresentationParameter>& param) {
  DcmXfer to(target.c_str());
  if (to.getXfer() == EXS_Unknown) return NotAcceptable("unknown transfer syntax " + target);
  if (!EncodableSyntaxes().count(target)) return NotAcceptable("cannot write " + target);
  bool stored_native = IsNativeSyntax(l.stored);
  if (!stored_native && !DecodableEncapsulated().count(l.stored)) return CannotDecode(l.stored);
  if (target == ts::kJpegBaseline || target == ts::kJpegLsNear) {
    Uint16 bits = 0;
    l.dataset->findAndGetUint16(DCM_BitsAllocated, bits);
    // Never change bit depth silently: DCMTK would rescale 16-bit data to 8 bits.
    if (target == ts::kJpegBaseline && bits > 8)
      return NotAcceptable("JPEG baseline holds 8-bit samples; this instance has " +
                           std::to_string(bits) + "-bit pixels (ask for a lossless syntax)");
  }
  if (!PixelDataOf(*l.dataset)) return NotAcceptable("the instance has no pixel data");
  OFCondition c = l.dataset->chooseRepresentation(EXS_LittleEndianExplicit, nullptr);
  if (c.bad()) return CannotDecode(l.stored);
  if (IsNativeSyntax(target)) return Status::Ok();
  param = ParamFor(target);
  c = l.dataset->chooseRepresentation(to.getXfer(), param.get());
  if (c.bad() || !l.dataset->canWriteXfer(to.getXfer()))
    return NotAcceptable("cannot encode this instance's pixels as " + target + ": " +
                         std::string(c.text()));
  return Status::Ok();
}

struct Geometry {
  Uint16 rows = 0, columns = 0, samples = 1, bits_allocated = 0;
};

Geometry GeometryOf(DcmDataset& ds) {
  Geometry g;
  ds.findAndGetUint16(DCM_Rows, g.rows);
  ds.findAndGetUint16(DCM_Columns, g.columns);
  ds.findAndGetUint16(DCM_SamplesPerPixel, g.samples);
  ds.findAndGetUint16(DCM_BitsAllocated, g.bits_allocated);
  return g;
}

Result<std::vector<std::string>> NativeFrames(Loaded& l, const std::vector<int>& frames) {
  DcmPixelData* pd = PixelDataOf(*l.dataset);
  if (!pd) return NotAcceptable("the instance has no pixel data");
  Geometry g = GeometryOf(*l.dataset);
  if (g.bits_allocated % 8 != 0 || g.bits_allocated == 0)
    return NotAcceptable("frames of " + std::to_string(g.bits_allocated) +
                         "-bit packed pixel data are not supported");
  size_t frame_size = size_t(g.rows) * g.columns * g.samples * (g.bits_allocated / 8);
  Uint8* data = nullptr;
  if (pd->getUint8Array(data).bad() || !data) return Internal("pixel data not readable");
  size_t length = pd->getLength();
  std::vector<std::string> out;
  for (int f : frames) {
    size_t start = size_t(f - 1) * frame_size;
    if (start + frame_size > length)
      return NotFound("frame " + std::to_string(f) + " is beyond the pixel data");
    out.emplace_back(reinterpret_cast<const char*>(data) + start, frame_size);
  }
  return out;
}

// Maps fragments to frames: one frame (all fragments), one fragment per frame, or
// the Basic Offset Table.
Result<std::vector<std::string>> EncapsulatedFrames(DcmPixelSequence& seq, int number_of_frames,
                                                    const std::vector<int>& frames) {
  unsigned long count = seq.card();
  if (count < 2) return NotAcceptable("encapsulated pixel data without fragments");
  std::vector<std::string> fragments;
  std::vector<uint64_t> positions;  // offset of each fragment's item tag after the table
  uint64_t pos = 0;
  for (unsigned long i = 1; i < count; ++i) {
    DcmPixelItem* item = nullptr;
    if (seq.getItem(item, i).bad() || !item) return Internal("unreadable fragment");
    Uint8* bytes = nullptr;
    item->getUint8Array(bytes);
    fragments.emplace_back(bytes ? reinterpret_cast<const char*>(bytes) : "", item->getLength());
    positions.push_back(pos);
    pos += 8 + item->getLength();
  }
  std::vector<std::vector<size_t>> by_frame(number_of_frames);
  if (number_of_frames == 1) {
    for (size_t i = 0; i < fragments.size(); ++i) by_frame[0].push_back(i);
  } else if (static_cast<int>(fragments.size()) == number_of_frames) {
    for (size_t i = 0; i < fragments.size(); ++i) by_frame[i].push_back(i);
  } else {
    DcmPixelItem* table = nullptr;
    Uint8* t = nullptr;
    if (seq.getItem(table, 0).bad() || !table || table->getLength() != 4u * number_of_frames ||
        table->getUint8Array(t).bad() || !t)
      return NotAcceptable("cannot tell the frames apart: no usable Basic Offset Table");
    std::vector<uint64_t> offsets;
    for (int f = 0; f < number_of_frames; ++f)
      offsets.push_back(uint64_t(t[4 * f]) | uint64_t(t[4 * f + 1]) << 8 |
                        uint64_t(t[4 * f + 2]) << 16 | uint64_t(t[4 * f + 3]) << 24);
    for (size_t i = 0; i < fragments.size(); ++i) {
      int f = number_of_frames - 1;
      while (f > 0 && positions[i] < offsets[f]) --f;
      by_frame[f].push_back(i);
    }
  }
  std::vector<std::string> out;
  for (int f : frames) {
    std::string bytes;
    for (size_t i : by_frame[f - 1]) bytes += fragments[i];
    out.push_back(std::move(bytes));
  }
  return out;
}

Result<std::string> ReadWhole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return IoError("instance file vanished");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

bool DcmtkPixelService::CanDecode(const std::string& t) const {
  return IsNativeSyntax(t) || DecodableEncapsulated().count(t) > 0;
}

Result<std::vector<Frame>> DcmtkPixelService::ExtractFrames(const std::string& path,
                                                            const std::vector<int>& frames,
                                                            const std::string& target) const {
  auto loaded = Load(path);
  if (!loaded.ok()) return loaded.status();
  Loaded& l = **loaded;
  const int n = NumberOfFrames(*l.dataset);
  SI_RETURN_IF_ERROR(CheckFrameRange(frames, n));
  std::string written = target == "*" ? l.stored : target;
  std::unique_ptr<DcmRepresentationParameter> param;
  if (written != l.stored) {
    SI_RETURN_IF_ERROR(Convert(l, written, param));
  }
  std::vector<Frame> out;
  Result<std::vector<std::string>> bytes = std::vector<std::string>{};
  if (IsNativeSyntax(written)) {
    // Native frames are the same little-endian pixels whatever the native syntax
    // (deflate and big endian are undone on reading).
    if (written != ts::kImplicitLE) written = ts::kExplicitLE;
    bytes = NativeFrames(l, frames);
  } else {
    DcmPixelData* pd = PixelDataOf(*l.dataset);
    DcmPixelSequence* seq = nullptr;
    if (!pd ||
        pd->getEncapsulatedRepresentation(DcmXfer(written.c_str()).getXfer(), param.get(), seq)
            .bad() ||
        !seq)
      return NotAcceptable("no encapsulated pixel data in " + written);
    bytes = EncapsulatedFrames(*seq, n, frames);
  }
  if (!bytes.ok()) return bytes.status();
  for (auto& b : *bytes) out.push_back(Frame{FrameMediaType(written), written, std::move(b)});
  return out;
}

Result<std::string> DcmtkPixelService::Transcode(const std::string& path,
                                                 const std::string& target) const {
  auto loaded = Load(path);
  if (!loaded.ok()) return loaded.status();
  Loaded& l = **loaded;
  if (target == l.stored) return ReadWhole(path);
  std::unique_ptr<DcmRepresentationParameter> param;
  if (!IsNativeSyntax(target) || PixelDataOf(*l.dataset))
    SI_RETURN_IF_ERROR(Convert(l, target, param));
  // Write through a private temporary file: DCMTK's stream writer wants a file.
  std::string tmpl = (std::filesystem::temp_directory_path() / "si-transcode-XXXXXX").string();
  int fd = mkstemp(tmpl.data());
  if (fd < 0) return IoError("cannot create a temporary file");
  ::close(fd);
  OFCondition c = l.file.saveFile(tmpl.c_str(), DcmXfer(target.c_str()).getXfer());
  Result<std::string> bytes =
      c.good() ? ReadWhole(tmpl)
               : Result<std::string>(
                     Internal("cannot write the transcoded instance: " + std::string(c.text())));
  ::unlink(tmpl.c_str());
  return bytes;
}

Result<RenderedImage> DcmtkPixelService::Render(const std::string& path, int frame,
                                                const RenderOptions& options) const {
  auto loaded = Load(path);
  if (!loaded.ok()) return loaded.status();
  Loaded& l = **loaded;
  if (!CanDecode(l.stored)) return CannotDecode(l.stored);
  const int n = NumberOfFrames(*l.dataset);
  SI_RETURN_IF_ERROR(CheckFrameRange({frame}, n));
  DicomImage image(&l.file, l.dataset->getOriginalXfer(), CIF_DecompressCompletePixelData,
                   static_cast<unsigned long>(frame - 1), 1);
  if (image.getStatus() != EIS_Normal)
    return NotAcceptable(std::string("cannot render this instance: ") +
                         DicomImage::getString(image.getStatus()));
  auto [w, h] = FitViewport(static_cast<int>(image.getWidth()), static_cast<int>(image.getHeight()),
                            options.viewport_width, options.viewport_height);
  std::unique_ptr<DicomImage> scaled;
  DicomImage* out = &image;
  if (w != static_cast<int>(image.getWidth()) || h != static_cast<int>(image.getHeight())) {
    scaled.reset(image.createScaledImage(static_cast<unsigned long>(w),
                                         static_cast<unsigned long>(h), 1, 0));
    if (!scaled || scaled->getStatus() != EIS_Normal) return Internal("cannot scale the image");
    out = scaled.get();
  }
  if (out->isMonochrome()) {
    if (options.window) {
      Window win = *options.window;
      // linear-exact (c, w) is linear (c + 0.5, w + 1): DCMTK knows linear and sigmoid.
      if (win.function == WindowFunction::kLinearExact) {
        win.center += 0.5;
        win.width += 1;
      }
      out->setVoiLutFunction(win.function == WindowFunction::kSigmoid ? EFV_Sigmoid : EFV_Linear);
      out->setWindow(win.center, win.width);
    } else if (out->getWindowCount() > 0) {
      out->setWindow(0);
    } else {
      out->setMinMaxWindow();
    }
  }
  char* buffer = nullptr;
  size_t size = 0;
  FILE* mem = open_memstream(&buffer, &size);
  if (!mem) return Internal("out of memory");
  int ok = 0;
  if (options.media_type == "image/png") {
    DiPNGPlugin png;
    // Interlacing only makes a small picture bigger and slower to decode.
    png.setInterlaceType(E_pngInterlaceNone);
    ok = out->writePluginFormat(&png, mem, 0);
  } else {
    DiJPEGPlugin jpeg;
    jpeg.setQuality(static_cast<unsigned int>(options.quality));
    ok = out->writePluginFormat(&jpeg, mem, 0);
  }
  fclose(mem);
  std::string bytes(buffer ? buffer : "", size);
  free(buffer);
  if (!ok || bytes.empty()) return Internal("the image encoder failed");
  return RenderedImage{options.media_type, std::move(bytes), w, h};
}

}  // namespace si::dimse
