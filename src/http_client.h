#pragma once
// The HttpClient seam: outgoing HTTP(S) requests to EHRs (and later DICOMweb
// upstreams). CurlHttpClient is thread-safe: any number of threads may call Send
// at once; it keeps a pool of libcurl handles so connections are reused.
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "src/status.h"

namespace si {

struct HttpClientRequest {
  std::string method = "GET";  // GET, POST, ...
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // The whole exchange (connect, send, wait, read) must finish within this.
  std::chrono::milliseconds timeout{10000};
};

struct HttpClientResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::string Header(std::string_view name) const;  // first match, or ""
};

// Receives a streamed response (HttpClient::Stream): OnHead once, with the final
// status and headers (names lower-cased), before any body; then the body in the
// pieces it arrives in. A non-OK return from either stops the transfer.
class HttpStreamHandler {
 public:
  virtual ~HttpStreamHandler() = default;
  virtual Status OnHead(int status,
                        const std::vector<std::pair<std::string, std::string>>& headers) = 0;
  virtual Status OnBody(std::string_view data) = 0;
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  // Streams the response to the handler, nothing buffered whole, body bytes as sent
  // (no content decoding). request.timeout bounds the wait for the head and every
  // stall, not the whole transfer. Unavailable when the peer cannot be reached,
  // GatewayTimeout when it stalls; a handler's non-OK status is returned as it is.
  // Errors name the host only.
  virtual Status Stream(const HttpClientRequest& request, HttpStreamHandler& handler) {
    return NotImplemented("this HTTP client cannot stream");
  }
  // Any HTTP status is a response; Unavailable when the peer cannot be reached,
  // the exchange times out or the body exceeds the limit. Errors name the host,
  // never the query, headers or body (they may carry credentials).
  virtual Result<HttpClientResponse> Send(const HttpClientRequest& request) = 0;
};

struct CurlHttpClientOptions {
  size_t max_body_bytes = 8 * 1024 * 1024;
  std::chrono::milliseconds connect_timeout{5000};
  size_t max_idle_handles = 16;
};

class CurlHttpClient final : public HttpClient {
 public:
  explicit CurlHttpClient(CurlHttpClientOptions options = {});
  ~CurlHttpClient() override;
  CurlHttpClient(const CurlHttpClient&) = delete;
  CurlHttpClient& operator=(const CurlHttpClient&) = delete;

  Result<HttpClientResponse> Send(const HttpClientRequest& request) override;
  Status Stream(const HttpClientRequest& request, HttpStreamHandler& handler) override;

 private:
  void* TakeHandle();
  void ReturnHandle(void* handle);

  CurlHttpClientOptions options_;
  struct Shared;
  std::unique_ptr<Shared> shared_;
  std::mutex mutex_;
  std::vector<void*> idle_;  // guarded by mutex_: CURL* easy handles with live connections
};

// The process-wide client (libcurl initialized once), for components that are not
// given one explicitly.
std::shared_ptr<HttpClient> DefaultHttpClient();

// "https://host:8443/a?b" -> "host:8443", for error messages.
std::string HostPortOf(std::string_view url);

// application/x-www-form-urlencoded body.
std::string FormEncode(const std::vector<std::pair<std::string, std::string>>& fields);

}  // namespace si
