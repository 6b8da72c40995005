#pragma once
// The HTTP server: Pistache underneath, with every response byte written through
// paced raw sends (one chunk in flight per connection), so slow clients never make a
// reactor spin and headers are exactly what we write (see ../shared/PISTACHE.md).
//
// Threading: the reactor threads only parse requests and hand them to an elastic
// worker pool; the RequestHandler runs on a worker thread and may block (it is where
// a stream waits for the socket). A ResponseChannel is used by one thread at a time.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "src/status.h"

namespace si::facade {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;     // "GET", "POST", "OPTIONS", ...
  std::string path;       // percent-decoded path, no query string
  std::string raw_path;   // as received (used for logging after redaction)
  std::string raw_query;  // after '?', undecoded, may be empty
  HeaderList headers;     // names lower-cased, in arrival order
  std::string body;
  bool keep_alive = true;  // what the response will announce
  std::chrono::steady_clock::time_point received_at;

  // First header with this (lower-case) name, or empty.
  std::string Header(std::string_view lower_name) const;
};

// One response. Exactly one of SendWhole or BeginChunked may be called. All calls
// block until their bytes are handed to the kernel (that is the backpressure); they
// return a non-OK Status once the client has gone or stalled past the stall limit,
// after which the producer should stop.
class ResponseChannel {
 public:
  virtual ~ResponseChannel() = default;
  // Status line + headers + body with Content-Length. Date, Connection and
  // Content-Length are added by the channel.
  virtual Status SendWhole(int status, const HeaderList& headers, std::string_view body) = 0;
  // Status line + headers with Transfer-Encoding: chunked.
  virtual Status BeginChunked(int status, const HeaderList& headers) = 0;
  // One or more HTTP chunks (large data is split into <= 64 KiB writes).
  virtual Status WriteChunk(std::string_view data) = 0;
  // `head`, then `length` bytes of the open file `fd` from `offset`, as chunked body
  // data. The server's channel moves the file bytes from the page cache to the
  // socket (sendfile) without a copy through user space; this default reads and
  // writes. A file shorter than `length` is an IoError (the caller aborts).
  virtual Status WriteFileChunk(std::string_view head, int fd, int64_t offset, size_t length);
  // The terminating zero-length chunk.
  virtual Status EndChunked() = 0;
  // Failure after the head went out: drop the connection so the client sees a
  // truncated transfer, never a clean end.
  virtual void Abort() = 0;
  virtual bool ClientGone() const = 0;
  // Status code sent, or 0 when nothing was sent yet.
  virtual int status_sent() const = 0;
};

using RequestHandler = std::function<void(HttpRequest&, ResponseChannel&)>;

struct HttpServerOptions {
  std::string bind_address = "127.0.0.1";
  uint16_t port = 8000;  // 0 picks a free port
  int reactor_threads = 2;
  size_t max_target_bytes = 16 * 1024;   // longer request targets get 414
  size_t max_body_bytes = 1024 * 1024;   // larger bodies get 413
  int max_workers = 512;                 // concurrent requests beyond this get 503
  std::chrono::seconds stall_limit{30};  // a client that reads nothing this long is dropped
  // Applied to the raw path before it is logged (tokens must never reach the log).
  std::function<std::string(std::string_view)> redact_for_log;
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, RequestHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts serving in background threads.
  Status Start();
  uint16_t port() const;
  // Stops accepting, lets running handlers finish.
  void Shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace si::facade
