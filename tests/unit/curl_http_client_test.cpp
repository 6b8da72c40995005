#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "src/http_client.h"

namespace si {
namespace {

// A loopback listener on a free port, answering each connection with `reply` (after
// `delay`), keeping connections open for reuse; counts accepted connections.
class TinyServer {
 public:
  TinyServer(std::string reply, std::chrono::milliseconds delay = std::chrono::milliseconds(0))
      : reply_(std::move(reply)), delay_(delay) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::listen(fd_, 16);
    thread_ = std::thread([this] {
      for (;;) {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0 || stop_) {
          if (c >= 0) ::close(c);
          return;
        }
        ++connections_;
        workers_.emplace_back(
            [reply = reply_, delay = delay_, c] {  // copies: may outlive the server
              char buf[4096];
              std::string in;
              for (;;) {
                ssize_t n = ::recv(c, buf, sizeof buf, 0);
                if (n <= 0) break;
                in.append(buf, n);
                while (in.find("\r\n\r\n") != std::string::npos) {
                  in.erase(0, in.find("\r\n\r\n") + 4);
                  std::this_thread::sleep_for(delay);
                  ::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
                }
              }
              ::close(c);
            });
      }
    });
  }
  ~TinyServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
    for (auto& w : workers_) w.detach();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/x"; }
  int connections() const { return connections_; }

 private:
  std::string reply_;
  std::chrono::milliseconds delay_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread thread_;
  std::vector<std::thread> workers_;
};

const char* kOk =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}";

TEST(CurlHttpClient, ReusesConnectionsAcrossRequestsAndThreads) {
  TinyServer server(kOk);
  CurlHttpClient client;
  for (int i = 0; i < 5; ++i) {
    HttpClientRequest r;
    r.url = server.url();
    auto resp = client.Send(r);
    ASSERT_TRUE(resp.ok()) << resp.status().ToString();
    EXPECT_EQ(resp->status, 200);
    EXPECT_EQ(resp->body, "{\"ok\":true}");
    EXPECT_EQ(resp->Header("Content-Type"), "application/json");
  }
  EXPECT_EQ(server.connections(), 1);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        HttpClientRequest r;
        r.method = "POST";
        r.url = server.url();
        r.body = "token=abc";
        if (auto resp = client.Send(r); resp.ok() && resp->status == 200) ++ok;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 40);
  EXPECT_LE(server.connections(), 5);
}

TEST(CurlHttpClient, TimeoutsAndRefusalsAreUnavailableNamingOnlyTheHost) {
  TinyServer slow(kOk, std::chrono::milliseconds(1500));
  CurlHttpClient client;
  HttpClientRequest r;
  r.url = slow.url() + "?token=secret";
  r.timeout = std::chrono::milliseconds(300);
  auto t0 = std::chrono::steady_clock::now();
  auto resp = client.Send(r);
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(resp.ok());
  EXPECT_EQ(resp.status().code(), ErrorCode::kUnavailable);
  EXPECT_LT(took, std::chrono::milliseconds(1200));
  EXPECT_NE(resp.status().message().find("did not answer within 300 ms"), std::string::npos)
      << resp.status().message();
  EXPECT_EQ(resp.status().message().find("secret"), std::string::npos);

  int port;
  {
    TinyServer gone(kOk);
    port = std::stoi(gone.url().substr(17));
  }
  r.url = "http://127.0.0.1:" + std::to_string(port) + "/x";
  auto refused = client.Send(r);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(refused.status().message().find("cannot be reached"), std::string::npos);
}

TEST(CurlHttpClient, NoRedirectsAndBoundedBodies) {
  TinyServer redirect(
      "HTTP/1.1 302 Found\r\nLocation: http://elsewhere.invalid/\r\nContent-Length: 0\r\n\r\n");
  CurlHttpClient client;
  HttpClientRequest r;
  r.url = redirect.url();
  auto resp = client.Send(r);
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ(resp->status, 302);

  std::string big(2000, 'x');
  TinyServer large("HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n" + big);
  CurlHttpClientOptions o;
  o.max_body_bytes = 1000;
  CurlHttpClient small(o);
  r.url = large.url();
  auto too_big = small.Send(r);
  ASSERT_FALSE(too_big.ok());
  EXPECT_NE(too_big.status().message().find("larger than 1000 bytes"), std::string::npos);
  EXPECT_EQ(HostPortOf("https://user:pw@ehr.example:8443/a?b"), "ehr.example:8443");
  EXPECT_EQ(FormEncode({{"token", "a b&c=d"}, {"x", "1"}}), "token=a%20b%26c%3Dd&x=1");
}

}  // namespace
}  // namespace si
