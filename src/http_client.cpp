#include "src/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <array>

#include "src/text.h"

namespace si {
namespace {

std::once_flag g_curl_init;

struct Transfer {
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  size_t limit = 0;
  bool too_large = false;
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t bytes = size * n;
  if (t->body.size() + bytes > t->limit) {
    t->too_large = true;
    return 0;  // aborts the transfer
  }
  t->body.append(data, bytes);
  return bytes;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    t->headers.clear();  // a new response (after 100 Continue)
  } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
    t->headers.emplace_back(text::ToLower(text::Trim(line.substr(0, colon))),
                            text::Trim(line.substr(colon + 1)));
  }
  return size * n;
}

}  // namespace

std::string HttpClientResponse::Header(std::string_view name) const {
  std::string lower = text::ToLower(name);
  for (auto& [k, v] : headers)
    if (k == lower) return v;
  return "";
}

std::string HostPortOf(std::string_view url) {
  auto scheme = url.find("://");
  if (scheme == std::string_view::npos) return "?";
  std::string_view rest = url.substr(scheme + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (auto at = rest.rfind('@'); at != std::string_view::npos) rest = rest.substr(at + 1);
  return std::string(rest);
}

std::string FormEncode(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (auto& [k, v] : fields) {
    if (!out.empty()) out += '&';
    out += text::PercentEncode(k) + "=" + text::PercentEncode(v);
  }
  return out;
}

// libcurl's share object: DNS, TLS sessions and the connection cache shared by
// every handle of this client, each guarded by its own mutex.
struct CurlHttpClient::Shared {
  CURLSH* share = nullptr;
  std::array<std::mutex, CURL_LOCK_DATA_LAST> locks;
  static void Lock(CURL*, curl_lock_data data, curl_lock_access, void* user) {
    static_cast<Shared*>(user)->locks[data].lock();
  }
  static void Unlock(CURL*, curl_lock_data data, void* user) {
    static_cast<Shared*>(user)->locks[data].unlock();
  }
};

CurlHttpClient::CurlHttpClient(CurlHttpClientOptions options)
    : options_(options), shared_(std::make_unique<Shared>()) {
  std::call_once(g_curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  shared_->share = curl_share_init();
  curl_share_setopt(shared_->share, CURLSHOPT_LOCKFUNC, &Shared::Lock);
  curl_share_setopt(shared_->share, CURLSHOPT_UNLOCKFUNC, &Shared::Unlock);
  curl_share_setopt(shared_->share, CURLSHOPT_USERDATA, shared_.get());
  curl_share_setopt(shared_->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(shared_->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  curl_share_setopt(shared_->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
}

CurlHttpClient::~CurlHttpClient() {
  for (void* h : idle_) curl_easy_cleanup(static_cast<CURL*>(h));
  curl_share_cleanup(shared_->share);
}

void* CurlHttpClient::TakeHandle() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!idle_.empty()) {
      void* h = idle_.back();
      idle_.pop_back();
      return h;
    }
  }
  return curl_easy_init();
}

void CurlHttpClient::ReturnHandle(void* handle) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (idle_.size() < options_.max_idle_handles) {
    idle_.push_back(handle);
  } else {
    curl_easy_cleanup(static_cast<CURL*>(handle));
  }
}

Result<HttpClientResponse> CurlHttpClient::Send(const HttpClientRequest& request) {
  const std::string host = HostPortOf(request.url);
  CURL* curl = static_cast<CURL*>(TakeHandle());
  if (!curl) return Internal("cannot create an HTTP client handle");
  curl_easy_reset(curl);  // keeps live connections, forgets the previous request's options
  Transfer transfer;
  transfer.limit = options_.max_body_bytes;
  curl_slist* headers = nullptr;
  for (auto& [k, v] : request.headers) headers = curl_slist_append(headers, (k + ": " + v).c_str());
  // No "Expect: 100-continue" round trip for small POSTs.
  headers = curl_slist_append(headers, "Expect:");

  curl_easy_setopt(curl, CURLOPT_SHARE, shared_->share);
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);  // never carry credentials to another place
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::min(request.timeout, options_.connect_timeout).count()));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
  if (request.method == "GET") {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  } else if (request.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else {
    if (request.method != "POST")
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
  }

  CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) {
    // A failed handle may hold a broken connection: don't reuse it.
    curl_easy_cleanup(curl);
    if (transfer.too_large)
      return Unavailable(host + " sent a response larger than " +
                         std::to_string(options_.max_body_bytes) + " bytes");
    if (rc == CURLE_OPERATION_TIMEDOUT)
      return Unavailable(host + " did not answer within " +
                         std::to_string(request.timeout.count()) + " ms");
    return Unavailable(host + " cannot be reached: " + curl_easy_strerror(rc));
  }
  ReturnHandle(curl);
  HttpClientResponse response;
  response.status = static_cast<int>(status);
  response.headers = std::move(transfer.headers);
  response.body = std::move(transfer.body);
  return response;
}

namespace {

// One streamed exchange: the head goes to the handler just before the first body
// byte (or at the end when there is no body).
struct StreamTransfer {
  CURL* curl = nullptr;
  HttpStreamHandler* handler = nullptr;
  std::vector<std::pair<std::string, std::string>> headers;
  bool head_sent = false;
  Status failure;  // the handler's, when it stopped the transfer
};

size_t OnStreamHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<StreamTransfer*>(user);
  std::string_view line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    t->headers.clear();  // a new response (after 100 Continue)
  } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
    t->headers.emplace_back(text::ToLower(text::Trim(line.substr(0, colon))),
                            text::Trim(line.substr(colon + 1)));
  }
  return size * n;
}

bool SendStreamHead(StreamTransfer* t) {
  if (t->head_sent) return t->failure.ok();
  t->head_sent = true;
  long status = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
  t->failure = t->handler->OnHead(static_cast<int>(status), t->headers);
  return t->failure.ok();
}

size_t OnStreamBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<StreamTransfer*>(user);
  if (!SendStreamHead(t)) return 0;  // aborts the transfer
  t->failure = t->handler->OnBody(std::string_view(data, size * n));
  return t->failure.ok() ? size * n : 0;
}

}  // namespace

Status CurlHttpClient::Stream(const HttpClientRequest& request, HttpStreamHandler& handler) {
  const std::string host = HostPortOf(request.url);
  CURL* curl = static_cast<CURL*>(TakeHandle());
  if (!curl) return Internal("cannot create an HTTP client handle");
  curl_easy_reset(curl);  // keeps live connections, forgets the previous request's options
  StreamTransfer transfer;
  transfer.curl = curl;
  transfer.handler = &handler;
  curl_slist* headers = nullptr;
  for (auto& [k, v] : request.headers) headers = curl_slist_append(headers, (k + ": " + v).c_str());
  headers = curl_slist_append(headers, "Expect:");
  const long stall_seconds =
      std::max<long>(1, static_cast<long>((request.timeout.count() + 999) / 1000));

  curl_easy_setopt(curl, CURLOPT_SHARE, shared_->share);
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);  // never carry credentials to another place
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  // No whole-transfer limit (a study may take minutes); a stall of stall_seconds ends it.
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, stall_seconds);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::min(request.timeout, options_.connect_timeout).count()));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &OnStreamBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &OnStreamHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &transfer);
  // Larger pieces than libcurl's 16 KiB default: fewer, bigger writes downstream.
  curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, 256L * 1024);
  // The shared connection cache keeps only 5 idle connections by default: concurrent
  // streams (bounded query fan-out) would close and reopen the rest every time.
  curl_easy_setopt(curl, CURLOPT_MAXCONNECTS, 64L);
  // No CURLOPT_ACCEPT_ENCODING: the body is passed on exactly as sent.
  if (request.method == "GET") {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  } else if (request.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else {
    if (request.method != "POST")
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
  }

  CURLcode rc = curl_easy_perform(curl);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  curl_slist_free_all(headers);
  if (rc == CURLE_OK) {
    SendStreamHead(&transfer);  // a response without a body
    ReturnHandle(curl);
    return transfer.failure;
  }
  curl_easy_cleanup(curl);  // may hold a broken connection: don't reuse it
  if (!transfer.failure.ok()) return transfer.failure;
  if (rc == CURLE_OPERATION_TIMEDOUT)
    return Status(ErrorCode::kGatewayTimeout,
                  host + " stalled for more than " + std::to_string(stall_seconds) + " s");
  if (transfer.head_sent)
    return Status(ErrorCode::kBadGateway,
                  host + " broke off its response: " + curl_easy_strerror(rc));
  return Unavailable(host + " cannot be reached: " + curl_easy_strerror(rc));
}

std::shared_ptr<HttpClient> DefaultHttpClient() {
  static std::shared_ptr<HttpClient> client = std::make_shared<CurlHttpClient>();
  return client;
}

}  // namespace si
