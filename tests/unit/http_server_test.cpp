// HttpServer over real sockets on 127.0.0.1 (port 0): keep-alive, exact headers,
// limits, streaming without buffering, slow and vanishing clients, Abort.
#include "facade/http_server.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace si::facade {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// --- a minimal raw HTTP/1.1 client --------------------------------------------------

struct RawResponse {
  int status = 0;
  std::string head;    // status line and header lines, CRLF-separated, without the empty line
  HeaderList headers;  // as received
  std::string body;
  bool complete = false;  // body framing satisfied (Content-Length, last chunk, or EOF)

  std::string Get(std::string_view name) const {
    for (const auto& [n, v] : headers) {
      if (strcasecmp(n.c_str(), std::string(name).c_str()) == 0) return v;
    }
    return {};
  }
};

class RawSocket {
 public:
  explicit RawSocket(uint16_t port, int rcvbuf = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawSocket() { Close(); }
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  bool connected() const { return connected_; }
  int fd() const { return fd_; }

  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads some bytes into the buffer; false on EOF, error or timeout.
  bool Fill() {
    char buf[65536];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return false;
    buffer_.append(buf, static_cast<size_t>(n));
    return true;
  }

  // True when the peer closed the connection (recv returns 0 or an error) within 5 s.
  bool WaitClosed() {
    if (!buffer_.empty()) return false;
    char c;
    ssize_t n = ::recv(fd_, &c, 1, 0);
    if (n == 0) return true;
    if (n < 0) return errno == ECONNRESET || errno == EPIPE;
    buffer_.push_back(c);
    return false;
  }

  // Reads everything until the peer closes; returns what came.
  std::string ReadToEnd() {
    while (Fill()) {
    }
    std::string out;
    out.swap(buffer_);
    return out;
  }

  std::optional<RawResponse> ReadResponse(bool head_request = false) {
    size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return std::nullopt;
    }
    RawResponse r;
    r.head = buffer_.substr(0, end);
    buffer_.erase(0, end + 4);
    size_t line_end = r.head.find("\r\n");
    std::string status_line = r.head.substr(0, line_end);
    if (status_line.size() < 12) return std::nullopt;
    r.status = std::atoi(status_line.c_str() + 9);
    size_t pos = line_end;
    while (pos != std::string::npos && pos < r.head.size()) {
      size_t next = r.head.find("\r\n", pos + 2);
      std::string line =
          r.head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.erase(0, 1);
        r.headers.emplace_back(line.substr(0, colon), value);
      }
      pos = next;
    }
    if (head_request || r.status == 204 || r.status == 304) {
      r.complete = true;
      return r;
    }
    std::string cl = r.Get("Content-Length");
    if (!cl.empty()) {
      size_t n = std::stoull(cl);
      while (buffer_.size() < n) {
        if (!Fill()) return r;
      }
      r.body = buffer_.substr(0, n);
      buffer_.erase(0, n);
      r.complete = true;
      return r;
    }
    if (r.Get("Transfer-Encoding") == "chunked") {
      for (;;) {
        size_t eol;
        while ((eol = buffer_.find("\r\n")) == std::string::npos) {
          if (!Fill()) return r;
        }
        size_t size = std::stoull(buffer_.substr(0, eol), nullptr, 16);
        while (buffer_.size() < eol + 2 + size + 2) {
          if (!Fill()) return r;
        }
        if (size == 0) {
          buffer_.erase(0, eol + 4);
          r.complete = true;
          return r;
        }
        r.body += buffer_.substr(eol + 2, size);
        buffer_.erase(0, eol + 2 + size + 2);
      }
    }
    // Close-delimited.
    r.body = ReadToEnd();
    r.complete = true;
    return r;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

// One GET on a fresh connection; the time it took, or nullopt on failure.
std::optional<double> TimedGet(uint16_t port, const std::string& path) {
  auto start = Clock::now();
  RawSocket s(port);
  if (!s.connected()) return std::nullopt;
  if (!s.Send("GET " + path + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
    return std::nullopt;
  auto r = s.ReadResponse();
  if (!r || r->status != 200 || !r->complete) return std::nullopt;
  return Seconds(Clock::now() - start);
}

// --- process measurements -------------------------------------------------------------

long RssKb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// Deterministic bytes: piece i of a stream.
std::string Piece(uint64_t index, size_t size) {
  std::string out(size, '\0');
  uint64_t x = 0x9E3779B97F4A7C15ull ^ (index + 1) * 0xBF58476D1CE4E5B9ull;
  for (size_t i = 0; i + 8 <= size; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(&out[i], &x, 8);
  }
  return out;
}

// --- fixture --------------------------------------------------------------------------

HttpServerOptions TestOptions() {
  HttpServerOptions o;
  o.bind_address = "127.0.0.1";
  o.port = 0;
  o.reactor_threads = 2;
  return o;
}

class Server {
 public:
  Server(HttpServerOptions options, RequestHandler handler)
      : server_(std::move(options), std::move(handler)) {
    Status s = server_.Start();
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_NE(server_.port(), 0);
  }
  uint16_t port() const { return server_.port(); }
  HttpServer& get() { return server_; }

 private:
  HttpServer server_;
};

void Hello(HttpRequest& req, ResponseChannel& ch) {
  Status s = ch.SendWhole(200, {{"Content-Type", "text/plain"}}, "hello " + req.path);
  (void)s;
}

TEST(HttpServerTest, StartFailsWhenThePortIsTaken) {
  Server first(TestOptions(), Hello);
  HttpServerOptions o = TestOptions();
  o.port = first.port();
  HttpServer second(o, Hello);
  Status s = second.Start();
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(TimedGet(first.port(), "/still-there").has_value());
}

// --- 1. keep-alive ----------------------------------------------------------------------

TEST(HttpServerTest, Http11KeepsConnectionAliveAcrossRequests) {
  Server server(TestOptions(), Hello);
  RawSocket s(server.port());
  ASSERT_TRUE(s.connected());

  ASSERT_TRUE(s.Send("GET /a HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r1 = s.ReadResponse();
  ASSERT_TRUE(r1 && r1->complete);
  EXPECT_EQ(r1->status, 200);
  EXPECT_EQ(r1->Get("Connection"), "keep-alive");
  EXPECT_EQ(r1->body, "hello /a");
  EXPECT_FALSE(r1->Get("Date").empty());

  ASSERT_TRUE(s.Send("GET /b HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r2 = s.ReadResponse();
  ASSERT_TRUE(r2 && r2->complete);
  EXPECT_EQ(r2->Get("Connection"), "keep-alive");
  EXPECT_EQ(r2->body, "hello /b");
}

TEST(HttpServerTest, Http10ClosesUnlessKeepAliveAsked) {
  Server server(TestOptions(), Hello);
  {
    RawSocket s(server.port());
    ASSERT_TRUE(s.Send("GET /old HTTP/1.0\r\nHost: t\r\n\r\n"));
    auto r = s.ReadResponse();
    ASSERT_TRUE(r && r->complete);
    EXPECT_EQ(r->Get("Connection"), "close");
    EXPECT_EQ(r->body, "hello /old");
    EXPECT_TRUE(s.WaitClosed());
  }
  {
    RawSocket s(server.port());
    ASSERT_TRUE(s.Send("GET /one HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    auto r = s.ReadResponse();
    ASSERT_TRUE(r && r->complete);
    EXPECT_EQ(r->Get("Connection"), "keep-alive");
    ASSERT_TRUE(s.Send("GET /two HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    auto r2 = s.ReadResponse();
    ASSERT_TRUE(r2 && r2->complete);
    EXPECT_EQ(r2->body, "hello /two");
  }
  {
    RawSocket s(server.port());
    ASSERT_TRUE(s.Send("GET /bye HTTP/1.1\r\nConnection: close\r\n\r\n"));
    auto r = s.ReadResponse();
    ASSERT_TRUE(r && r->complete);
    EXPECT_EQ(r->Get("Connection"), "close");
    EXPECT_TRUE(s.WaitClosed());
  }
}

TEST(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  Server server(TestOptions(), Hello);
  RawSocket s(server.port());
  ASSERT_TRUE(
      s.Send("GET /p1 HTTP/1.1\r\nHost: t\r\n\r\nGET /p2 HTTP/1.1\r\nHost: t\r\n\r\n"
             "POST /p3 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /p4 HTTP/1.1\r\n\r\n"));
  for (const char* want : {"hello /p1", "hello /p2", "hello /p3", "hello /p4"}) {
    auto r = s.ReadResponse();
    ASSERT_TRUE(r && r->complete) << want;
    EXPECT_EQ(r->body, want);
  }
}

// --- 2. headers both ways -------------------------------------------------------------------

TEST(HttpServerTest, ResponseHeadersAreExactlyAsGiven) {
  const std::string content_type =
      "multipart/related; type=\"application/dicom\"; boundary=b0undary-42";
  Server server(TestOptions(), [&](HttpRequest&, ResponseChannel& ch) {
    Status s = ch.SendWhole(200,
                            {{"Content-Type", content_type},
                             {"Access-Control-Allow-Origin", "*"},
                             {"X-Custom", "a, b ,c"},
                             {"Set-Cookie", "a=1"},
                             {"Set-Cookie", "b=2"},
                             {"Content-Length", "999"}},  // the channel owns this one
                            "--b0undary-42--");
    (void)s;
  });
  RawSocket s(server.port());
  ASSERT_TRUE(s.Send("GET /x HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r = s.ReadResponse();
  ASSERT_TRUE(r && r->complete);
  EXPECT_NE(r->head.find("\r\nContent-Type: " + content_type + "\r\n"), std::string::npos)
      << r->head;
  EXPECT_NE(r->head.find("\r\nAccess-Control-Allow-Origin: *\r\n"), std::string::npos);
  EXPECT_NE(r->head.find("\r\nX-Custom: a, b ,c\r\n"), std::string::npos);
  EXPECT_NE(r->head.find("\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"), std::string::npos);
  EXPECT_EQ(r->head.find("999"), std::string::npos);
  EXPECT_EQ(r->Get("Content-Length"), "15");
  EXPECT_EQ(r->body, "--b0undary-42--");
  EXPECT_EQ(r->head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
}

TEST(HttpServerTest, RequestKeepsRawTargetAndHeadersInArrivalOrder) {
  std::mutex mu;
  HttpRequest seen;
  Server server(TestOptions(), [&](HttpRequest& req, ResponseChannel& ch) {
    {
      std::lock_guard<std::mutex> lock(mu);
      seen = req;
    }
    Status s = ch.SendWhole(204, {}, "");
    (void)s;
  });
  RawSocket s(server.port());
  ASSERT_TRUE(
      s.Send("GET /studies/1.2%2E3/x%20y?b=2&a=1&a=%20x+y&flag HTTP/1.1\r\n"
             "Host: example.org\r\n"
             "X-B: one\r\n"
             "Accept: multipart/related; type=\"application/dicom\"\r\n"
             "authorization:   Bearer abc.def  \r\n"
             "X-B: two\r\n"
             "Origin: https://app.example\r\n"
             "\r\n"));
  auto r = s.ReadResponse();
  ASSERT_TRUE(r && r->complete);
  EXPECT_EQ(r->status, 204);
  EXPECT_TRUE(r->Get("Content-Length").empty());
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(seen.method, "GET");
  EXPECT_EQ(seen.path, "/studies/1.2.3/x y");
  EXPECT_EQ(seen.raw_path, "/studies/1.2%2E3/x%20y");
  EXPECT_EQ(seen.raw_query, "b=2&a=1&a=%20x+y&flag");
  HeaderList want = {{"host", "example.org"},
                     {"x-b", "one"},
                     {"accept", "multipart/related; type=\"application/dicom\""},
                     {"authorization", "Bearer abc.def"},
                     {"x-b", "two"},
                     {"origin", "https://app.example"}};
  EXPECT_EQ(seen.headers, want);
  EXPECT_EQ(seen.Header("x-b"), "one");
  EXPECT_EQ(seen.Header("missing"), "");
  EXPECT_TRUE(seen.keep_alive);
}

TEST(HttpServerTest, HeadSendsHeadersOnly) {
  Server server(TestOptions(), Hello);
  RawSocket s(server.port());
  ASSERT_TRUE(s.Send("HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r = s.ReadResponse(/*head_request=*/true);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->Get("Content-Length"), "8");  // what GET would send: "hello /h"
  // The next response on the connection starts right away: no body bytes leaked.
  ASSERT_TRUE(s.Send("GET /g HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r2 = s.ReadResponse();
  ASSERT_TRUE(r2 && r2->complete);
  EXPECT_EQ(r2->body, "hello /g");
}

TEST(HttpServerTest, HeadOfAStreamAnnouncesChunkedButSendsNoBody) {
  Server server(TestOptions(), [](HttpRequest& req, ResponseChannel& ch) {
    if (!ch.BeginChunked(200, {{"Content-Type", "application/dicom"}}).ok()) return;
    Status a = ch.WriteChunk("body-bytes");
    Status b = ch.EndChunked();
    EXPECT_TRUE(a.ok() && b.ok());
  });
  RawSocket s(server.port());
  ASSERT_TRUE(s.Send("HEAD /s HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r = s.ReadResponse(/*head_request=*/true);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->Get("Transfer-Encoding"), "chunked");
  ASSERT_TRUE(s.Send("GET /s HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r2 = s.ReadResponse();
  ASSERT_TRUE(r2 && r2->complete);
  EXPECT_EQ(r2->body, "body-bytes");
}

TEST(HttpServerTest, ExpectContinueIsAnsweredBeforeTheBody) {
  Server server(TestOptions(), [](HttpRequest& req, ResponseChannel& ch) {
    Status s = ch.SendWhole(200, {}, "got " + std::to_string(req.body.size()));
    (void)s;
  });
  RawSocket s(server.port());
  ASSERT_TRUE(s.Send(
      "POST /stow HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  auto interim = s.ReadResponse(/*head_request=*/true);
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(s.Send("hello"));
  auto r = s.ReadResponse();
  ASSERT_TRUE(r && r->complete);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "got 5");
}

TEST(HttpServerTest, MalformedRequestGets400AndClose) {
  Server server(TestOptions(), Hello);
  for (const char* bad :
       {"FROB / HTTP/1.1\r\n\r\n", "GET / HTTP/2.7\r\n\r\n", "GET /%00x HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nno colon here\r\n\r\n"}) {
    RawSocket s(server.port());
    ASSERT_TRUE(s.Send(bad));
    auto r = s.ReadResponse();
    ASSERT_TRUE(r && r->complete) << bad;
    EXPECT_EQ(r->status, 400) << bad;
    EXPECT_EQ(r->Get("Connection"), "close") << bad;
    EXPECT_TRUE(s.WaitClosed()) << bad;
  }
}

TEST(HttpServerTest, HandlerThatSendsNothingOrThrowsGets500) {
  Server server(TestOptions(), [](HttpRequest& req, ResponseChannel&) {
    if (req.path == "/throw") throw std::runtime_error("boom");
  });
  for (const char* path : {"/nothing", "/throw"}) {
    RawSocket s(server.port());
    ASSERT_TRUE(s.Send(std::string("GET ") + path + " HTTP/1.1\r\nHost: t\r\n\r\n"));
    auto r = s.ReadResponse();
    ASSERT_TRUE(r && r->complete) << path;
    EXPECT_EQ(r->status, 500) << path;
  }
}

// --- 3. limits ----------------------------------------------------------------------------

TEST(HttpServerTest, EnforcesTargetAndBodyLimits) {
  HttpServerOptions o = TestOptions();
  o.max_target_bytes = 8 * 1024;
  o.max_body_bytes = 1024;
  Server server(o, [](HttpRequest& req, ResponseChannel& ch) {
    Status s = ch.SendWhole(200, {},
                            std::to_string(req.raw_path.size()) + " " +
                                std::to_string(req.raw_query.size()) + " " +
                                std::to_string(req.body.size()));
    (void)s;
  });
  {  // A 6 KB URL (above Pistache's default 4 KB request limit) works.
    RawSocket s(server.port());
    std::string path = "/" + std::string(3000, 'p');
    std::string query = std::string(3000, 'q');
    ASSERT_TRUE(s.Send("GET " + path + "?" + query + " HTTP/1.1\r\nHost: t\r\n\r\n"));
    auto r = s.ReadResponse();
    ASSERT_TRUE(r && r->complete);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "3001 3000 0");
  }
  {  // Too long a target: 414 and the connection closes.
    RawSocket s(server.port());
    ASSERT_TRUE(s.Send("GET /" + std::string(9000, 'x') + " HTTP/1.1\r\nHost: t\r\n\r\n"));
    auto r = s.ReadResponse();
    ASSERT_TRUE(r && r->complete);
    EXPECT_EQ(r->status, 414);
    EXPECT_EQ(r->Get("Connection"), "close");
    EXPECT_TRUE(s.WaitClosed());
  }
  {  // Too long a target, sent before its end arrives: still 414.
    RawSocket s(server.port());
    ASSERT_TRUE(s.Send("GET /" + std::string(20000, 'x')));
    auto r = s.ReadResponse();
    ASSERT_TRUE(r && r->complete);
    EXPECT_EQ(r->status, 414);
  }
  {  // A declared body over the limit: 413 before the body is read.
    RawSocket s(server.port());
    ASSERT_TRUE(s.Send("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n"));
    auto r = s.ReadResponse();
    ASSERT_TRUE(r && r->complete);
    EXPECT_EQ(r->status, 413);
    EXPECT_NE(r->body.find("payload-too-large"), std::string::npos);
  }
  {  // A chunked body over the limit: 413.
    RawSocket s(server.port());
    std::string chunk(800, 'c');
    ASSERT_TRUE(s.Send("POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n320\r\n" +
                       chunk + "\r\n320\r\n" + chunk + "\r\n0\r\n\r\n"));
    auto r = s.ReadResponse();
    ASSERT_TRUE(r && r->complete);
    EXPECT_EQ(r->status, 413);
  }
  {  // Within the limits, with a chunked body.
    RawSocket s(server.port());
    ASSERT_TRUE(
        s.Send("POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
               "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
    auto r = s.ReadResponse();
    ASSERT_TRUE(r && r->complete);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "3 0 5");
  }
}

// --- admission -----------------------------------------------------------------------------

TEST(HttpServerTest, BeyondMaxWorkersAnswers503AtOnce) {
  HttpServerOptions o = TestOptions();
  o.max_workers = 1;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> entered{0};
  Server server(o, [&](HttpRequest& req, ResponseChannel& ch) {
    if (req.path == "/block") {
      ++entered;
      released.wait();
    }
    Status s = ch.SendWhole(200, {}, "ok");
    (void)s;
  });
  RawSocket blocker(server.port());
  ASSERT_TRUE(blocker.Send("GET /block HTTP/1.1\r\nHost: t\r\n\r\n"));
  for (int i = 0; i < 200 && entered.load() == 0; ++i) std::this_thread::sleep_for(5ms);
  ASSERT_EQ(entered.load(), 1);

  auto start = Clock::now();
  RawSocket s(server.port());
  ASSERT_TRUE(s.Send("GET /other HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r = s.ReadResponse();
  ASSERT_TRUE(r && r->complete);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->Get("Retry-After"), "1");
  EXPECT_LT(Seconds(Clock::now() - start), 1.0);

  release.set_value();
  auto rb = blocker.ReadResponse();
  ASSERT_TRUE(rb && rb->complete);
  EXPECT_EQ(rb->status, 200);
  // The 503'd connection is still usable once there is room.
  ASSERT_TRUE(s.Send("GET /again HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r2 = s.ReadResponse();
  ASSERT_TRUE(r2 && r2->complete);
  EXPECT_EQ(r2->status, 200);
}

// --- 4. a large stream is not buffered ---------------------------------------------------------

TEST(HttpServerTest, Streams64MBByteExactWithBoundedMemory) {
  constexpr size_t kPiece = 256 * 1024;
  constexpr uint64_t kPieces = 256;  // 64 MiB
  Server server(TestOptions(), [&](HttpRequest&, ResponseChannel& ch) {
    if (!ch.BeginChunked(200, {{"Content-Type", "application/octet-stream"}}).ok()) return;
    for (uint64_t i = 0; i < kPieces; ++i) {
      if (!ch.WriteChunk(Piece(i, kPiece)).ok()) return;
    }
    Status s = ch.EndChunked();
    (void)s;
  });

  // Compares what arrives with the stream regenerated piece by piece.
  struct Sink {
    uint64_t bytes = 0;
    uint64_t next_piece = 0;
    std::string expected;
    size_t offset = 0;
    bool mismatch = false;
    uint64_t next_sample = 0;
    long max_rss_kb = 0;
  } sink;
  long rss_before = RssKb();
  CURL* curl = curl_easy_init();
  ASSERT_NE(curl, nullptr);
  std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/big";
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(
      curl, CURLOPT_WRITEFUNCTION, +[](char* data, size_t size, size_t n, void* user) -> size_t {
        auto* s = static_cast<Sink*>(user);
        std::string_view in(data, size * n);
        s->bytes += in.size();
        while (!in.empty()) {
          if (s->offset == s->expected.size()) {
            s->expected = Piece(s->next_piece++, kPiece);
            s->offset = 0;
          }
          size_t take = std::min(in.size(), s->expected.size() - s->offset);
          if (std::memcmp(in.data(), s->expected.data() + s->offset, take) != 0) s->mismatch = true;
          s->offset += take;
          in.remove_prefix(take);
        }
        if (s->bytes >= s->next_sample) {
          s->max_rss_kb = std::max(s->max_rss_kb, RssKb());
          s->next_sample += 4 << 20;
        }
        return size * n;
      });
  auto start = Clock::now();
  CURLcode rc = curl_easy_perform(curl);
  double secs = Seconds(Clock::now() - start);
  long code = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(curl);

  ASSERT_EQ(rc, CURLE_OK) << curl_easy_strerror(rc);
  EXPECT_EQ(code, 200);
  EXPECT_EQ(sink.bytes, kPieces * kPiece);
  EXPECT_FALSE(sink.mismatch);
  long growth_mb = (std::max(sink.max_rss_kb, RssKb()) - rss_before) / 1024;
#if !defined(__SANITIZE_ADDRESS__)  // ASan's quarantine keeps freed pieces resident
  EXPECT_LT(growth_mb, 64) << "RSS grew by " << growth_mb << " MB";
#endif
  std::printf(
      "[ figures  ] 64 MiB stream: %.2f s, %.0f MB/s (generated and compared on the fly), "
      "RSS growth %ld MB\n",
      secs, static_cast<double>(sink.bytes) / 1e6 / secs, growth_mb);
}

// File ranges go out by sendfile inside the chunked body, byte-exact, mixed with
// ordinary chunks; a file shorter than announced cuts the response.
TEST(HttpServerTest, FileChunksAreByteExactAndAShortFileCutsTheResponse) {
  char path[] = "/tmp/si-http-file-XXXXXX";
  int wfd = ::mkstemp(path);
  ASSERT_GE(wfd, 0);
  std::string content = Piece(7, 3 * 1024 * 1024 + 123);
  ASSERT_EQ(::write(wfd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
  ::close(wfd);
  Server server(TestOptions(), [&](HttpRequest& request, ResponseChannel& ch) {
    int fd = ::open(path, O_RDONLY);
    if (fd < 0 || !ch.BeginChunked(200, {{"Content-Type", "application/octet-stream"}}).ok()) {
      if (fd >= 0) ::close(fd);
      return;
    }
    bool short_file = request.path == "/short";
    Status s = ch.WriteFileChunk("head:", fd, 100, content.size() - 100 + (short_file ? 1 : 0));
    if (s.ok()) s = ch.WriteChunk("|middle|");
    if (s.ok()) s = ch.WriteFileChunk("", fd, 0, 10);
    ::close(fd);
    if (s.ok())
      s = ch.EndChunked();
    else
      ch.Abort();
  });
  auto fetch = [&](const char* target, std::string& body) {
    CURL* curl = curl_easy_init();
    std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + target;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(
        curl, CURLOPT_WRITEFUNCTION, +[](char* d, size_t size, size_t n, void* user) -> size_t {
          static_cast<std::string*>(user)->append(d, size * n);
          return size * n;
        });
    CURLcode rc = curl_easy_perform(curl);
    curl_easy_cleanup(curl);
    return rc;
  };
  std::string body;
  ASSERT_EQ(fetch("/whole", body), CURLE_OK);
  EXPECT_TRUE(body == "head:" + content.substr(100) + "|middle|" + content.substr(0, 10))
      << "got " << body.size() << " bytes";
  std::string cut;
  EXPECT_NE(fetch("/short", cut), CURLE_OK) << "a short file must not end as a clean response";
  ::unlink(path);
}

// --- 5. a slow client neither spins a core nor delays others -------------------------------------

TEST(HttpServerTest, SlowClientDoesNotSpinOrStarveOthers) {
  constexpr size_t kPiece = 256 * 1024;
  std::atomic<bool> stream_done{false};
  Server server(TestOptions(), [&](HttpRequest& req, ResponseChannel& ch) {
    if (req.path == "/small") {
      Status s = ch.SendWhole(200, {{"Content-Type", "text/plain"}}, "small");
      (void)s;
      return;
    }
    if (ch.BeginChunked(200, {{"Content-Type", "application/octet-stream"}}).ok()) {
      for (uint64_t i = 0; i < 128; ++i) {  // 32 MiB, more than the client will read
        if (!ch.WriteChunk(Piece(i, kPiece)).ok()) break;
      }
      Status s = ch.EndChunked();
      (void)s;
    }
    stream_done = true;
  });

  // The slow reader: small receive buffer, 64 KB reads paced at ~1 MB/s, for ~5 s.
  constexpr double kRate = 1e6;
  constexpr double kWindow = 5.0;
  std::atomic<bool> reading{false};
  std::atomic<uint64_t> slow_bytes{0};
  std::thread slow([&] {
    RawSocket s(server.port(), /*rcvbuf=*/16 * 1024);
    if (!s.Send("GET /big HTTP/1.1\r\nHost: t\r\n\r\n")) return;
    auto start = Clock::now();
    char buf[64 * 1024];
    while (Seconds(Clock::now() - start) < kWindow) {
      ssize_t n = ::recv(s.fd(), buf, sizeof buf, 0);
      if (n <= 0) break;
      slow_bytes += static_cast<uint64_t>(n);
      reading = true;
      double due = static_cast<double>(slow_bytes.load()) / kRate;
      double now = Seconds(Clock::now() - start);
      if (due > now) std::this_thread::sleep_for(std::chrono::duration<double>(due - now));
    }
  });
  for (int i = 0; i < 400 && !reading.load(); ++i) std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(reading.load());
  std::this_thread::sleep_for(300ms);  // let the server's buffers fill: the stream is now paced

  // CPU is sampled over a fixed 3 s inside the slow client's window, whatever the
  // small requests' latencies.
  constexpr double kCpuWindow = 3.0;
  std::promise<double> cpu_result;
  std::thread sampler([&] {
    double cpu_start = CpuSeconds();
    auto t0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(kCpuWindow));
    cpu_result.set_value((CpuSeconds() - cpu_start) / Seconds(Clock::now() - t0));
  });
  auto wall_start = Clock::now();
  double max_latency = 0;
  int ok = 0;
  for (int i = 0; i < 50; ++i) {
    auto latency = TimedGet(server.port(), "/small");
    if (latency) {
      ++ok;
      max_latency = std::max(max_latency, *latency);
    }
    std::this_thread::sleep_for(70ms);  // spread over the slow client's window
  }
  double wall = Seconds(Clock::now() - wall_start);
  uint64_t read_during = slow_bytes.load();
  sampler.join();
  double cpu_share = cpu_result.get_future().get();
  slow.join();

  double cpu_pct = 100.0 * cpu_share;
  std::printf(
      "[ figures  ] slow client: read %.1f MB; CPU %.1f %% of one core over %.0f s; "
      "50 small requests over %.1f s, max latency %.1f ms\n",
      static_cast<double>(read_during) / 1e6, cpu_pct, kCpuWindow, wall, max_latency * 1e3);
  EXPECT_EQ(ok, 50);
  EXPECT_LT(max_latency, 1.0);
  EXPECT_LT(cpu_pct, 50.0);
  // The stream really was throttled by the client rather than finished early.
  EXPECT_LT(read_during, 16u << 20);
  for (int i = 0; i < 200 && !stream_done.load(); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(stream_done.load());
}

// --- 6. vanishing and stalled clients ----------------------------------------------------------

struct StreamProbe {
  std::atomic<bool> failed{false};
  std::atomic<bool> finished{false};
  std::atomic<int64_t> failed_at_ns{0};
};

RequestHandler EndlessStream(StreamProbe& probe) {
  return [&probe](HttpRequest& req, ResponseChannel& ch) {
    if (req.path == "/small") {
      Status s = ch.SendWhole(200, {}, "small");
      (void)s;
      return;
    }
    if (ch.BeginChunked(200, {}).ok()) {
      std::string piece(64 * 1024, 'z');
      for (int i = 0; i < 100000; ++i) {
        if (!ch.WriteChunk(piece).ok()) {
          probe.failed_at_ns = Clock::now().time_since_epoch().count();
          probe.failed = true;
          EXPECT_TRUE(ch.ClientGone());
          break;
        }
      }
    }
    probe.finished = true;
  };
}

TEST(HttpServerTest, ClientDisconnectMidStreamStopsTheProducer) {
  StreamProbe probe;
  Server server(TestOptions(), EndlessStream(probe));
  {
    RawSocket s(server.port());
    ASSERT_TRUE(s.Send("GET /endless HTTP/1.1\r\nHost: t\r\n\r\n"));
    size_t got = 0;
    char buf[65536];
    while (got < (1u << 20)) {
      ssize_t n = ::recv(s.fd(), buf, sizeof buf, 0);
      ASSERT_GT(n, 0);
      got += static_cast<size_t>(n);
    }
  }  // closed here
  auto closed = Clock::now();
  for (int i = 0; i < 500 && !probe.finished.load(); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(probe.finished.load());
  ASSERT_TRUE(probe.failed.load());
  double after = std::max(
      0.0, Seconds(Clock::time_point(Clock::duration(probe.failed_at_ns.load())) - closed));
  std::printf("[ figures  ] disconnect noticed after %.0f ms\n", after * 1e3);
  EXPECT_LT(after, 3.0);
  EXPECT_TRUE(TimedGet(server.port(), "/small").has_value());
}

TEST(HttpServerTest, StalledClientIsDroppedAfterStallLimit) {
  HttpServerOptions o = TestOptions();
  o.stall_limit = std::chrono::seconds(1);
  StreamProbe probe;
  Server server(o, EndlessStream(probe));
  RawSocket s(server.port(), /*rcvbuf=*/16 * 1024);
  ASSERT_TRUE(s.Send("GET /endless HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto start = Clock::now();  // never reads
  for (int i = 0; i < 500 && !probe.finished.load(); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(probe.failed.load());
  double after = Seconds(Clock::time_point(Clock::duration(probe.failed_at_ns.load())) - start);
  EXPECT_GE(after, 0.9);
  EXPECT_LT(after, 3.5);
  EXPECT_TRUE(TimedGet(server.port(), "/small").has_value());
}

// Regression: Pistache queues writes by fd number, so a write queued for a connection
// that has just gone could land on the next connection given the same number. Streams
// whose clients vanish run next to fresh connections that must each get exactly their
// own response.
TEST(HttpServerTest, NoBytesFromAVanishedConnectionReachTheNextOneOnItsFd) {
  StreamProbe probe;
  Server server(TestOptions(), EndlessStream(probe));
  std::atomic<bool> stop{false};
  std::vector<std::thread> vanishing;
  for (int t = 0; t < 4; ++t) {
    vanishing.emplace_back([&] {
      while (!stop.load()) {
        RawSocket s(server.port());
        if (!s.Send("GET /endless HTTP/1.1\r\nHost: t\r\n\r\n")) continue;
        char buf[4096];
        (void)::recv(s.fd(), buf, sizeof buf, 0);
      }  // closed with unread data
    });
  }
  const std::string expected_tail = "\r\n\r\nsmall";
  int checked = 0, wrong = 0;
  std::string example;
  auto deadline = Clock::now() + 2s;
  while (Clock::now() < deadline) {
    RawSocket s(server.port());
    if (!s.Send("GET /small HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")) continue;
    std::string all = s.ReadToEnd();
    ++checked;
    bool ok =
        all.rfind("HTTP/1.1 200 OK\r\n", 0) == 0 && all.size() > expected_tail.size() &&
        all.compare(all.size() - expected_tail.size(), expected_tail.size(), expected_tail) == 0 &&
        all.find("zzzz") == std::string::npos;
    if (!ok) {
      ++wrong;
      if (example.empty()) example = all.substr(0, 80);
    }
  }
  stop = true;
  for (auto& t : vanishing) t.join();
  EXPECT_EQ(wrong, 0) << "of " << checked << " responses; e.g. " << example;
  EXPECT_GT(checked, 100);
}

// --- 7. Abort truncates
// ---------------------------------------------------------------------------

TEST(HttpServerTest, AbortClosesWithoutTheLastChunk) {
  Server server(TestOptions(), [](HttpRequest&, ResponseChannel& ch) {
    if (!ch.BeginChunked(200, {{"Content-Type", "application/dicom"}}).ok()) return;
    Status s = ch.WriteChunk("partial-data");
    (void)s;
    ch.Abort();
    EXPECT_FALSE(ch.WriteChunk("more").ok());
    EXPECT_FALSE(ch.EndChunked().ok());
  });
  RawSocket s(server.port());
  ASSERT_TRUE(s.Send("GET /x HTTP/1.1\r\nHost: t\r\n\r\n"));
  std::string all = s.ReadToEnd();
  EXPECT_NE(all.find("Transfer-Encoding: chunked\r\n"), std::string::npos);
  EXPECT_NE(all.find("c\r\npartial-data\r\n"), std::string::npos);
  EXPECT_EQ(all.find("0\r\n\r\n"), std::string::npos);
  EXPECT_EQ(all.find("more"), std::string::npos);
}

TEST(HttpServerTest, Http10StreamIsCloseDelimited) {
  Server server(TestOptions(), [](HttpRequest&, ResponseChannel& ch) {
    if (!ch.BeginChunked(200, {}).ok()) return;
    Status a = ch.WriteChunk("one,");
    Status b = ch.WriteChunk("two");
    Status c = ch.EndChunked();
    (void)a, (void)b, (void)c;
  });
  RawSocket s(server.port());
  ASSERT_TRUE(s.Send("GET /x HTTP/1.0\r\n\r\n"));
  auto r = s.ReadResponse();
  ASSERT_TRUE(r && r->complete);
  EXPECT_TRUE(r->Get("Transfer-Encoding").empty());
  EXPECT_EQ(r->Get("Connection"), "close");
  EXPECT_EQ(r->body, "one,two");
}

// --- logging
// ----------------------------------------------------------------------------------------

TEST(HttpServerTest, LogLineIsRedactedAndHasNoQuery) {
  HttpServerOptions o = TestOptions();
  o.redact_for_log = [](std::string_view path) {
    std::string p(path);
    if (p.rfind("/t/", 0) == 0) p = "/t/***";
    return p;
  };
  testing::internal::CaptureStderr();
  {
    Server server(o, Hello);
    RawSocket s(server.port());
    ASSERT_TRUE(s.Send("GET /t/secret-token?access_token=hunter2 HTTP/1.1\r\nHost: t\r\n\r\n"));
    auto r = s.ReadResponse();
    ASSERT_TRUE(r && r->complete);
  }  // Shutdown waits for the worker, which logs after the response
  std::string log = testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("GET /t/*** 200 "), std::string::npos) << log;
  EXPECT_EQ(log.find("secret-token"), std::string::npos) << log;
  EXPECT_EQ(log.find("hunter2"), std::string::npos) << log;
}

}  // namespace
}  // namespace si::facade
