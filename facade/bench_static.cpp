#include "facade/bench_static.h"

#include <fstream>
#include <iterator>

namespace si::facade {

Result<BenchStatic> BenchStatic::Load(const std::string& path) {
  constexpr std::streamoff kMaxBytes = 64 << 20;
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return InvalidConfig("bench-static: cannot open " + path);
  std::streamoff size = in.tellg();
  if (size < 0 || size > kMaxBytes)
    return InvalidConfig("bench-static: " + path + " is over 64 MiB");
  in.seekg(0);
  BenchStatic s;
  s.body_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) return IoError("bench-static: cannot read " + path);
  return s;
}

bool BenchStatic::Handle(const HttpRequest& request, ResponseChannel& out) const {
  if (request.path != "/bench-static") return false;
  if (request.method != "GET" && request.method != "HEAD") {
    out.SendWhole(405, {{"Allow", "GET, HEAD"}, {"Content-Type", "text/plain"}}, "use GET\n").ok();
    return true;
  }
  out.SendWhole(200, {{"Content-Type", "application/octet-stream"}}, body_).ok();
  return true;
}

}  // namespace si::facade
