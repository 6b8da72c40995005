#pragma once
// PixelService with DCMTK's codecs (dcmjpeg, dcmjpls, dcmdata RLE; deflate on
// input through the file reader) and dcmimage for rendering. Stateless and
// thread-safe once InitializeDcmtk() registered the codecs.
#include "src/pixel_service.h"

namespace si::dimse {

class DcmtkPixelService final : public PixelService {
 public:
  bool CanDecode(const std::string& transfer_syntax) const override;
  Result<std::vector<Frame>> ExtractFrames(const std::string& path, const std::vector<int>& frames,
                                           const std::string& target) const override;
  Result<std::string> Transcode(const std::string& path, const std::string& target) const override;
  Result<RenderedImage> Render(const std::string& path, int frame,
                               const RenderOptions& options) const override;
};

}  // namespace si::dimse
