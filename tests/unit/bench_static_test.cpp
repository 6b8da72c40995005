// Tests for the benchmark's static route: it serves exactly the file read at start-up, only at
// /bench-static, and refuses what it cannot load.
#include "facade/bench_static.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace si::facade {
namespace {

namespace fs = std::filesystem;

// Records what a handler sent, as the real channel would put it on the wire.
class RecordingChannel : public ResponseChannel {
 public:
  Status SendWhole(int status, const HeaderList& headers, std::string_view body) override {
    status_ = status;
    headers_ = headers;
    body_ = std::string(body);
    return Status::Ok();
  }
  Status BeginChunked(int status, const HeaderList& headers) override {
    status_ = status;
    return Status::Ok();
  }
  Status WriteChunk(std::string_view data) override { return Status::Ok(); }
  Status EndChunked() override { return Status::Ok(); }
  void Abort() override {}
  bool ClientGone() const override { return false; }
  int status_sent() const override { return status_; }

  int status_ = 0;
  HeaderList headers_;
  std::string body_;
};

HttpRequest Request(std::string method, std::string path) {
  HttpRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  return r;
}

class BenchStaticTest : public ::testing::Test {
 protected:
  void SetUp() override {
    file_ = fs::temp_directory_path() / ("si-bench-static-" + std::to_string(::getpid()));
    std::ofstream out(file_, std::ios::binary);
    for (int i = 0; i < 512 * 1024; ++i) content_.push_back(static_cast<char>(i * 7 % 251));
    out << content_;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove(file_, ec);
  }
  fs::path file_;
  std::string content_;
};

TEST_F(BenchStaticTest, ServesTheFileBytesAtItsPathOnly) {
  auto s = BenchStatic::Load(file_.string());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  RecordingChannel get;
  EXPECT_TRUE(s->Handle(Request("GET", "/bench-static"), get));
  EXPECT_EQ(get.status_, 200);
  EXPECT_TRUE(get.body_ == content_);
  ASSERT_EQ(get.headers_.size(), 1u);
  EXPECT_EQ(get.headers_[0].second, "application/octet-stream");

  RecordingChannel other;
  EXPECT_FALSE(s->Handle(Request("GET", "/bench-static/x"), other));
  EXPECT_FALSE(s->Handle(Request("GET", "/open/fhir/metadata"), other));
  EXPECT_EQ(other.status_, 0);
}

TEST_F(BenchStaticTest, OtherMethodsGet405) {
  auto s = BenchStatic::Load(file_.string());
  ASSERT_TRUE(s.ok());
  RecordingChannel post;
  EXPECT_TRUE(s->Handle(Request("POST", "/bench-static"), post));
  EXPECT_EQ(post.status_, 405);
}

TEST_F(BenchStaticTest, MissingFileIsAConfigError) {
  auto s = BenchStatic::Load((file_.string() + ".missing"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kInvalidConfig);
  EXPECT_NE(s.status().message().find(".missing"), std::string::npos);
}

}  // namespace
}  // namespace si::facade
