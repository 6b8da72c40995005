#pragma once
// The HTTP face: routes requests to FHIR and WADO-RS handlers, with CORS, error
// mapping (OperationOutcome for FHIR, DICOMweb-style JSON for WADO) and
// streaming multipart responses. Handlers are thin; the logic is ImagingService.
#include <string>
#include <string_view>

#include "facade/http_server.h"
#include "facade/pixel_routes.h"
#include "src/bulk_data.h"
#include "src/imaging_service.h"

namespace si::facade {

class Facade {
 public:
  // bulk reads attribute values for /bulk of file-serving sources; pixels does frames,
  // transcoding and rendering. Either may be null (those requests then get 501) and
  // must outlive the facade.
  explicit Facade(const ImagingService& service, const BulkDataReader* bulk = nullptr,
                  const PixelService* pixels = nullptr)
      : service_(service), bulk_(bulk), pixel_routes_(service, pixels) {}
  // Runs on an HTTP worker thread; may block while streaming.
  void Handle(HttpRequest& request, ResponseChannel& response) const;

  // Path for the request log: study tokens and /dyn/ configs replaced, query dropped.
  static std::string RedactForLog(std::string_view raw_path);

 private:
  const ImagingService& service_;
  const BulkDataReader* bulk_;
  PixelRoutes pixel_routes_;
};

}  // namespace si::facade
