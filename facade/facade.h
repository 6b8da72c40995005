#pragma once
// The HTTP face: routes requests to FHIR and WADO-RS handlers, with CORS, error
// mapping (OperationOutcome for FHIR, DICOMweb-style JSON for WADO) and
// streaming multipart responses. Handlers are thin; the logic is ImagingService.
#include <string>
#include <string_view>

#include "facade/http_server.h"
#include "facade/pixel_routes.h"
#include "src/imaging_service.h"

namespace si::facade {

class Facade {
 public:
  // pixels (frames, transcoding, rendering) may be null: those routes answer 501.
  explicit Facade(const ImagingService& service, const PixelService* pixels = nullptr)
      : service_(service), pixel_routes_(service, pixels) {}
  // Runs on an HTTP worker thread; may block while streaming.
  void Handle(HttpRequest& request, ResponseChannel& response) const;

  // Path for the request log: study tokens and /dyn/ configs replaced, query dropped.
  static std::string RedactForLog(std::string_view raw_path);

 private:
  const ImagingService& service_;
  PixelRoutes pixel_routes_;
};

}  // namespace si::facade
