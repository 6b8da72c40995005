#pragma once
// The benchmark's baseline route: one fixed file, read once at start-up, served whole at
// GET /bench-static by the same HttpServer as every other response. It measures what the HTTP
// stack alone can do, so per-request figures of the real routes can be read against it.
// Off unless `serve --bench-static FILE` names a file; no request can choose another path.
#include <string>

#include "facade/http_server.h"
#include "src/status.h"

namespace si::facade {

class BenchStatic {
 public:
  // Reads the whole file (at most 64 MiB: this is a benchmark fixture, not a file server).
  static Result<BenchStatic> Load(const std::string& path);

  // True when the request was for /bench-static and has been answered. Thread-safe: the body
  // is immutable after Load.
  bool Handle(const HttpRequest& request, ResponseChannel& out) const;

 private:
  std::string body_;
};

}  // namespace si::facade
