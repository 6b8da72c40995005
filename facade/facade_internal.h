#pragma once
// Helpers shared by the facade's route files (facade.cpp, dicomweb_routes.cpp).
#include <string>
#include <vector>

#include "facade/http_server.h"
#include "src/authorizer.h"
#include "src/bulk_data.h"
#include "src/imaging_service.h"
#include "src/status.h"

namespace si::facade {

// CORS response headers for a request carrying Origin (none otherwise).
HeaderList CorsHeaders(const HttpRequest& request);
// A DICOMweb-style JSON error with the status's HTTP code.
void SendWadoError(const HttpRequest& request, ResponseChannel& out, const Status& status);
AuthRequest AuthOf(const HttpRequest& request);
std::string RandomBoundary();

// QIDO-RS under the study token and /bulk of sources that serve files. Returns
// false, having sent nothing, when the request is none of these routes. rest is
// the path after the tenant prefix: wado/{token}/studies/...
bool HandleDicomWebRoute(const ImagingService& service, const BulkDataReader* bulk,
                         const Tenant& tenant, const HttpRequest& request, ResponseChannel& out,
                         const std::vector<std::string>& rest);

}  // namespace si::facade
