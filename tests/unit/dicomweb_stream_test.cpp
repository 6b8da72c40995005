// CurlHttpClient::Stream, the pass-through call of DICOMweb sources, against a tiny
// HTTP/1.1 server on loopback: head before body, bytes exactly as sent, keep-alive
// reuse, a handler that stops, stalls (504) and refusals (503).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "src/http_client.h"

namespace si {
namespace {

class StreamServer {
 public:
  StreamServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 16);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Accept(); });
  }
  ~StreamServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
    for (auto& t : workers_) t.join();
  }
  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  int connections() const { return connections_; }
  static std::string Body() {
    std::string b;
    for (int i = 0; i < 300000; ++i) b += static_cast<char>(i * 7 % 256);
    return b;
  }

 private:
  void Accept() {
    for (;;) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      ++connections_;
      workers_.emplace_back([this, c] { Serve(c); });
    }
  }
  void Serve(int c) {
    std::string in;
    char buf[4096];
    while (!stop_) {
      size_t end;
      while ((end = in.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) return (void)::close(c);
        in.append(buf, static_cast<size_t>(n));
      }
      std::string head = in.substr(0, end);
      in.erase(0, end + 4);
      std::string path = head.substr(4, head.find(' ', 4) - 4);
      path = path.substr(0, path.find('?'));
      std::string out;
      if (path == "/ok") {
        std::string body = Body();
        out =
            "HTTP/1.1 200 OK\r\nContent-Type: multipart/related; type=\"application/dicom\"; "
            "boundary=xyz\r\n"
            "Content-Length: " +
            std::to_string(body.size()) + "\r\n\r\n" + body;
      } else if (path == "/empty") {
        out = "HTTP/1.1 204 No Content\r\n\r\n";
      } else if (path == "/stall") {
        out = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nab";
        ::send(c, out.data(), out.size(), MSG_NOSIGNAL);
        for (int i = 0; i < 40 && !stop_; ++i)
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        return (void)::close(c);
      } else {
        out = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
      }
      if (::send(c, out.data(), out.size(), MSG_NOSIGNAL) < 0) return (void)::close(c);
    }
    ::close(c);
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread thread_;
  std::vector<std::thread> workers_;  // joined at destruction
};

class Recorder final : public HttpStreamHandler {
 public:
  int status = 0;
  int heads = 0;
  std::string content_type;
  std::string body;
  bool body_before_head = false;
  size_t stop_after = 0;  // non-zero: fail once this many bytes arrived
  Status OnHead(int s, const std::vector<std::pair<std::string, std::string>>& headers) override {
    ++heads;
    status = s;
    for (auto& [k, v] : headers)
      if (k == "content-type") content_type = v;
    return Status::Ok();
  }
  Status OnBody(std::string_view data) override {
    if (heads == 0) body_before_head = true;
    body.append(data);
    if (stop_after && body.size() >= stop_after)
      return Status(ErrorCode::kUnavailable, "client gone");
    return Status::Ok();
  }
};

HttpClientRequest Get(const std::string& url, int timeout_ms = 5000) {
  HttpClientRequest r;
  r.url = url;
  r.timeout = std::chrono::milliseconds(timeout_ms);
  return r;
}

TEST(DicomWebStream, HeadThenBodyExactlyAsSentOverOneKeptAliveConnection) {
  StreamServer server;
  CurlHttpClient client;
  for (int i = 0; i < 3; ++i) {
    Recorder r;
    ASSERT_TRUE(client.Stream(Get(server.Url("/ok")), r).ok());
    EXPECT_EQ(r.heads, 1);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.content_type, "multipart/related; type=\"application/dicom\"; boundary=xyz");
    EXPECT_FALSE(r.body_before_head);
    EXPECT_TRUE(r.body == StreamServer::Body()) << "body differs (" << r.body.size() << " bytes)";
  }
  Recorder none;
  ASSERT_TRUE(client.Stream(Get(server.Url("/empty")), none).ok());
  EXPECT_EQ(none.heads, 1) << "a response without a body still gets its head";
  EXPECT_EQ(none.status, 204);
  Recorder missing;
  ASSERT_TRUE(client.Stream(Get(server.Url("/nothing")), missing).ok())
      << "any HTTP status is a response";
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(server.connections(), 1) << "keep-alive: one connection for every request";
}

TEST(DicomWebStream, AHandlerThatStopsEndsTheTransferWithItsStatus) {
  StreamServer server;
  CurlHttpClient client;
  Recorder r;
  r.stop_after = 1;
  Status s = client.Stream(Get(server.Url("/ok")), r);
  EXPECT_EQ(s.code(), ErrorCode::kUnavailable);
  EXPECT_EQ(s.message(), "client gone");
  EXPECT_LT(r.body.size(), StreamServer::Body().size());
  Recorder again;  // the broken connection is not reused
  ASSERT_TRUE(client.Stream(Get(server.Url("/ok")), again).ok());
  EXPECT_EQ(again.body.size(), StreamServer::Body().size());
}

TEST(DicomWebStream, StallsAre504AndRefusals503NamingOnlyTheHost) {
  StreamServer server;
  CurlHttpClient client;
  Recorder r;
  auto t0 = std::chrono::steady_clock::now();
  Status s = client.Stream(Get(server.Url("/stall?secret=1"), 1000), r);
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  EXPECT_EQ(s.code(), ErrorCode::kGatewayTimeout) << s.ToString();
  EXPECT_EQ(r.body, "ab") << "what arrived before the stall was passed on";
  EXPECT_LT(ms, 3500);
  EXPECT_EQ(s.message().find("secret"), std::string::npos);

  int probe = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(probe, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(probe, reinterpret_cast<sockaddr*>(&a), &len);
  int closed_port = ntohs(a.sin_port);
  ::close(probe);  // nothing listens there now
  Recorder nobody;
  Status refused = client.Stream(
      Get("http://user:pw@127.0.0.1:" + std::to_string(closed_port) + "/x?token=abc"), nobody);
  EXPECT_EQ(refused.code(), ErrorCode::kUnavailable) << refused.ToString();
  EXPECT_EQ(refused.message().find("pw"), std::string::npos);
  EXPECT_EQ(refused.message().find("abc"), std::string::npos);
  EXPECT_EQ(nobody.heads, 0);
}

}  // namespace
}  // namespace si
