#pragma once
// WADO-RS pixel routes of local sources (folder, DIMSE cache): frames, rendered,
// thumbnail, and instance retrieval transcoded on request. The pixel work runs on
// the request's worker thread, one instance in memory at a time.
#include <string>
#include <vector>

#include "facade/http_server.h"
#include "src/imaging_service.h"
#include "src/pixel_service.h"

namespace si::facade {

// Whether a path segment after the scope starts a pixel route.
bool IsPixelRoute(const std::string& segment);

class PixelRoutes {
 public:
  // pixels may be null (a build or test without it): pixel routes answer 501.
  PixelRoutes(const ImagingService& service, const PixelService* pixels)
      : service_(service), pixels_(pixels) {}

  // tail: the segments after the scope ("frames", "1,2" / "rendered" /
  // "frames", "2", "rendered" / "thumbnail").
  void Handle(const HttpRequest& request, ResponseChannel& out, const Tenant& tenant,
              const WadoAccess& access, const RetrieveScope& scope,
              const std::vector<std::string>& tail) const;

  // Instances (already planned and negotiated) as multipart/related or a single
  // application/dicom, each written in `target`; 406 before the head when one
  // cannot be decoded.
  void RetrieveTranscoded(const HttpRequest& request, ResponseChannel& out, const Tenant& tenant,
                          const std::vector<StoredInstance>& plan, const std::string& target,
                          bool single) const;

  const PixelService* pixels() const { return pixels_; }

 private:
  const ImagingService& service_;
  const PixelService* pixels_;
};

// Shared with facade.cpp (defined there): CORS headers, the DICOMweb-style
// error body, multipart boundaries.
namespace internal {
HeaderList CorsHeaders(const HttpRequest& request);
void SendWadoError(const HttpRequest& request, ResponseChannel& out, const Status& status);
std::string RandomBoundary();
}  // namespace internal

}  // namespace si::facade
