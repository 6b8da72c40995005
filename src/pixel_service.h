#pragma once
// The PixelService seam: frames, transcoding and rendering of one stored DICOM
// file, so that src/ and facade/ never include the DICOM toolkit (dimse/ implements
// it with DCMTK's codecs). Implementations are thread-safe and hold no per-request
// state; each call reads one file and keeps at most that instance in memory.
#include <cstdint>
#include <string>
#include <vector>

#include "src/pixel_params.h"
#include "src/status.h"

namespace si {

struct Frame {
  std::string media_type;       // "application/octet-stream", "image/jpeg", ...
  std::string transfer_syntax;  // of these bytes
  std::string bytes;
};

struct RenderedImage {
  std::string media_type;  // "image/jpeg" or "image/png"
  std::string bytes;
  int width = 0;
  int height = 0;
};

class PixelService {
 public:
  virtual ~PixelService() = default;
  // Whether this build can decode pixel data stored in the syntax (JPEG 2000: no).
  virtual bool CanDecode(const std::string& transfer_syntax) const = 0;
  // The frames (1-based numbers, in the order asked) of the file at path, in the
  // target syntax, or as stored when target is "*". NotFound for a frame beyond
  // NumberOfFrames; NotAcceptable when the stored syntax cannot be decoded or the
  // target cannot hold the pixels (JPEG baseline of 16-bit data).
  virtual Result<std::vector<Frame>> ExtractFrames(const std::string& path,
                                                   const std::vector<int>& frames,
                                                   const std::string& target) const = 0;
  // The whole instance as a Part 10 file in the target syntax; UIDs unchanged, the
  // header's PhotometricInterpretation that of the pixels written.
  virtual Result<std::string> Transcode(const std::string& path,
                                        const std::string& target) const = 0;
  // One frame (1-based) as a picture.
  virtual Result<RenderedImage> Render(const std::string& path, int frame,
                                       const RenderOptions& options) const = 0;
};

}  // namespace si
