// HttpServer on Pistache 0.0.5 with paced raw writes (see ../shared/PISTACHE.md).
// Pistache accepts, reads and parses; the response bytes are ours.
//
// Request side: our Http::Handler overrides onInput (the transport calls it through
// the public Tcp::Handler interface) and drives Pistache's own RequestParser with the
// public feed/parse/reset calls. We keep the raw request head beside it, because the
// parsed Request cannot give what HttpRequest promises: its query is an unordered_map
// (order and repeated keys lost) and its headers are unordered maps (order and
// repeated headers lost). Pistache's parser still owns framing (Content-Length and
// chunked bodies) and its idle checker still reads the parser's step and time.
// Because no Pistache ResponseWriter is ever created, nothing in Pistache writes a
// response of its own, except the idle checker's 408 for a connection that has sat on
// a half-received request for headerTimeout.
//
// Response side: every byte, status line and headers included, is written by the
// worker with non-blocking sendmsg() slices of at most 64 KiB on the connection's own
// dup() of the socket, waiting in poll() while the socket is full. Not through
// Tcp::Peer::send: Pistache queues writes by fd number (Transport::handleWriteQueue
// checks only isPeerFd(fd)), so a write queued for a connection that has just gone
// lands on the next connection accepted with the same number; measured here, 35 of
// 2158 fresh connections got another client's stream bytes (see the test
// NoBytesFromAVanishedConnectionReachTheNextOneOnItsFd). A dup()ed number cannot be
// reused while we hold it. Pacing stays as PISTACHE.md measured it: one slice at a
// time, never a spin (poll sleeps until the client reads), never the whole body
// buffered, and the reactor thread never waits. The few small answers the reactor
// gives itself (400, 413, 414, 503, 100 Continue) go out there with MSG_DONTWAIT.
//
// Threads: reactor threads (Pistache) own Connection's reactor-only fields and the
// parser; workers (WorkerPool) run the RequestHandler and write through a Channel.
#include "facade/http_server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pistache/endpoint.h>
#include <pistache/http.h>
#include <pistache/peer.h>
#include <pistache/tcp.h>
#include <pistache/transport.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <unordered_map>

#include "src/log.h"

namespace si::facade {

std::string HttpRequest::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return value;
  }
  return {};
}

namespace {

namespace P = Pistache;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Per sendmsg() of a response. PISTACHE.md's min(64 KiB, SO_SNDBUF/4) was about
// Pistache's write loop spinning; ours sleeps in poll(), which reports POLLOUT only once
// a good share of the send buffer is free, so a partial write costs one extra wake-up.
constexpr size_t kMaxWriteBytes = 64 * 1024;
// Per sendfile() of a file range: the kernel takes what the socket buffer holds.
constexpr size_t kMaxFileSlice = 1024 * 1024;
constexpr size_t kChunkFraming = 16;           // "<hex>\r\n" + "\r\n", generously
constexpr size_t kMaxHeaderBytes = 64 * 1024;  // header section beyond the request line
constexpr size_t kRequestLineSlack = 64;       // method, spaces and version around the target
constexpr size_t kMaxLoggedPath = 256;
constexpr auto kWaitSlice = 500ms;          // how often a waiting write looks for a dead peer
constexpr auto kParserResetInterval = 10s;  // during a response, see Channel::Send
constexpr auto kWorkerIdle = 30s;           // idle workers exit after this
constexpr auto kDrainTimeout = 10s;         // Shutdown waits this long for running handlers
constexpr const char* kConnectionKey = "si.connection";

// ---------------------------------------------------------------------------------
// Small text helpers.

char ToLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ToLower(c);
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ToLower(a[i]) != ToLower(b[i])) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// True when the comma-separated header value contains `token` (case-insensitive).
bool HasToken(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    if (EqualsIgnoreCase(Trim(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX decoding; malformed escapes stay as they are. Empty optional on an encoded NUL.
std::optional<std::string> PercentDecode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size()) {
      int hi = HexValue(in[i + 1]);
      int lo = HexValue(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        char c = static_cast<char>(hi * 16 + lo);
        if (c == '\0') return std::nullopt;
        out.push_back(c);
        i += 2;
        continue;
      }
    }
    out.push_back(in[i]);
  }
  return out;
}

std::string HttpDate() {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday % 7],
                tm.tm_mday, kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf;
}

std::string ReasonPhrase(int status) {
  const char* s = P::Http::codeString(static_cast<P::Http::Code>(status));
  if (s != nullptr && *s != '\0') return s;
  if (status >= 500) return "Server Error";
  if (status >= 400) return "Client Error";
  if (status >= 300) return "Redirection";
  if (status >= 200) return "Success";
  return "Informational";
}

bool ValidHeaderName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

bool ValidHeaderValue(std::string_view value) {
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

std::string ErrorBody(ErrorCode code, std::string_view message) {
  std::string out = "{\"error\":\"";
  out += InfoFor(code).name;
  out += "\",\"message\":\"";
  for (char c : message) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (static_cast<unsigned char>(c) >= 0x20) out.push_back(c);
  }
  out += "\"}";
  return out;
}

// ---------------------------------------------------------------------------------
// The parsed request head, taken from the raw bytes.

struct RequestHead {
  std::string method;
  std::string target;  // as received
  bool http10 = false;
  HeaderList headers;  // names lower-cased, arrival order, repeats kept
  bool chunked = false;
  std::optional<uint64_t> content_length;
};

// Parses "METHOD SP target SP HTTP/x.y" from `line` (no CRLF).
bool ParseRequestLine(std::string_view line, RequestHead& head) {
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return false;
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return false;
  head.method = std::string(line.substr(0, sp1));
  head.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  std::string_view version = line.substr(sp2 + 1);
  if (version == "HTTP/1.0") {
    head.http10 = true;
  } else if (version != "HTTP/1.1") {
    return false;
  }
  return true;
}

// `text` is the head without the final empty line.
bool ParseHead(std::string_view text, RequestHead& head) {
  size_t eol = text.find("\r\n");
  if (!ParseRequestLine(text.substr(0, eol), head)) return false;
  std::string_view rest = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 2);
  while (!rest.empty()) {
    size_t end = rest.find("\r\n");
    std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 2);
    if (line.empty()) continue;
    if ((line.front() == ' ' || line.front() == '\t') && !head.headers.empty()) {
      // Obsolete line folding: part of the previous value.
      head.headers.back().second += ' ';
      head.headers.back().second += Trim(line);
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    head.headers.emplace_back(Lower(Trim(line.substr(0, colon))),
                              std::string(Trim(line.substr(colon + 1))));
  }
  for (const auto& [name, value] : head.headers) {
    if (name == "transfer-encoding" && HasToken(value, "chunked")) head.chunked = true;
    if (name == "content-length") {
      uint64_t n = 0;
      auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || ptr != value.data() + value.size()) return false;
      head.content_length = n;
    }
  }
  return true;
}

// Splits the request target into raw path and raw query; absolute-form loses its
// scheme and authority.
void SplitTarget(std::string_view target, std::string& raw_path, std::string& raw_query) {
  if (size_t scheme = target.find("://");
      scheme != std::string_view::npos && target.front() != '/') {
    size_t slash = target.find('/', scheme + 3);
    size_t question = target.find('?', scheme + 3);
    if (slash == std::string_view::npos ||
        (question != std::string_view::npos && question < slash)) {
      std::string rebuilt = "/";
      if (question != std::string_view::npos) rebuilt += target.substr(question);
      SplitTarget(rebuilt, raw_path, raw_query);
      return;
    }
    target = target.substr(slash);
  }
  if (size_t hash = target.find('#'); hash != std::string_view::npos)
    target = target.substr(0, hash);
  size_t question = target.find('?');
  raw_path = std::string(target.substr(0, question));
  raw_query =
      question == std::string_view::npos ? std::string() : std::string(target.substr(question + 1));
}

// ---------------------------------------------------------------------------------
// Per-connection state, stored in the Peer's data map. The Peer holds it strongly; it
// holds the Peer weakly.

struct Connection {
  ~Connection() {
    if (wfd >= 0) ::close(wfd);
  }
  std::weak_ptr<P::Tcp::Peer> peer;
  P::Tcp::Transport* transport = nullptr;  // the reactor's transport owning this peer
  std::thread::id reactor;                 // the thread that runs that transport
  // Our own dup() of the socket. Every response byte and every shutdown goes through
  // it: Pistache keys writes by fd number, and a number freed by a disconnect can be
  // reused by the next accepted connection while a write is still queued for it.
  int wfd = -1;
  std::atomic<bool> gone{false};  // onDisconnection ran

  std::mutex mu;         // guards busy, closing, pending (reactor and worker)
  bool busy = false;     // a request is being answered; input goes to `pending`
  bool closing = false;  // the connection is being closed; input is dropped
  std::string pending;   // bytes received while busy (pipelined requests), in order

  // Reactor thread only.
  size_t fed = 0;          // bytes fed to the parser for the current request
  std::string head_bytes;  // raw bytes of the current request until its head is complete
  size_t head_len = 0;     // length of the head including the empty line, once known
  bool line_checked = false;
  RequestHead head;
  std::string method_for_log, path_for_log;
};

std::shared_ptr<P::Http::RequestParser> ParserOf(const std::shared_ptr<P::Tcp::Peer>& peer) {
  return std::static_pointer_cast<P::Http::RequestParser>(
      peer->tryGetData(P::Http::Handler::ParserData));
}

void ShutdownSocket(const Connection& conn, int how) {
  if (conn.wfd >= 0) ::shutdown(conn.wfd, how);
}

// Reactor thread: writes a small response without waiting. False when the socket
// would not take all of it (a client that does not read; it gets dropped).
bool SendNow(const Connection& conn, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(conn.wfd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return false;
    }
  }
  return true;
}

// Runs `fn` on the connection's reactor thread, soon. Uses a one-shot 1 ms timer of the
// transport; its Deferred is handed over only after the continuation is attached, so
// the continuation cannot run on this thread.
void RunOnReactor(const std::shared_ptr<Connection>& conn, std::function<void()> fn) {
  int tfd = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (tfd < 0) return;
  P::Async::Deferred<uint64_t> deferred;
  P::Async::Promise<uint64_t> promise(
      [&deferred](P::Async::Deferred<uint64_t> d) { deferred = std::move(d); });
  promise.then(
      [tfd, fn = std::move(fn)](uint64_t) {
        ::close(tfd);
        fn();
      },
      [tfd](std::exception_ptr) { ::close(tfd); });
  conn->transport->armTimer(tfd, 1ms, std::move(deferred));
}

// ---------------------------------------------------------------------------------
// Elastic worker pool: a thread per running request, spawned on demand up to
// max_workers; idle threads exit after kWorkerIdle. Thread-safe.

struct Core;

// One admitted request's place under max_workers. Released just before the response's
// last slice is written (so a client's next request on the same connection never meets
// a stale 503), or at the latest when the job ends.
struct Ticket {
  explicit Ticket(std::shared_ptr<Core> c) : core(std::move(c)) {}
  ~Ticket() { Release(); }
  void Release();
  std::shared_ptr<Core> core;
  std::atomic<bool> released{false};
};

struct Job {
  std::shared_ptr<Ticket> ticket;
  HttpRequest request;
  bool http10 = false;
  bool head_only = false;
  std::shared_ptr<Connection> conn;
};

class WorkerPool {
 public:
  WorkerPool(int max_workers, std::function<void(Job&)> run)
      : max_workers_(std::max(1, max_workers)), run_(std::move(run)) {}
  ~WorkerPool() { Stop(); }

  // False when stopping. Admission (max_workers) is the caller's: a job beyond the
  // thread limit waits for a thread that is finishing up its previous job.
  bool TrySubmit(std::unique_ptr<Job> job) {
    std::vector<std::thread> to_join;
    bool accepted = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      to_join.swap(exited_);
      if (!stopping_) {
        accepted = true;
        ++active_;
        queue_.push_back(std::move(job));
        if (static_cast<size_t>(idle_) < queue_.size() && threads_ < max_workers_) {
          try {
            std::thread t([this] { Loop(); });
            ++threads_;
            auto id = t.get_id();
            running_.emplace(id, std::move(t));
          } catch (const std::system_error&) {
            if (threads_ == 0) {  // nobody would ever take the job
              queue_.pop_back();
              --active_;
              accepted = false;
            }
          }
        } else {
          work_cv_.notify_one();
        }
      }
    }
    for (auto& t : to_join) t.join();  // already finished: quick
    return accepted;
  }

  // Waits until no job is queued or running, or the deadline passes.
  void WaitIdle(Clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait_until(lock, deadline, [this] { return active_ == 0; });
  }

  // Lets queued and running jobs finish, then joins every thread.
  void Stop() {
    std::vector<std::thread> to_join;
    {
      std::unique_lock<std::mutex> lock(mu_);
      stopping_ = true;
      work_cv_.notify_all();
      done_cv_.wait(lock, [this] { return threads_ == 0; });
      to_join.swap(exited_);
    }
    for (auto& t : to_join) t.join();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      auto idle_deadline = Clock::now() + kWorkerIdle;
      while (queue_.empty() && !stopping_) {
        ++idle_;
        auto st = work_cv_.wait_until(lock, idle_deadline);
        --idle_;
        if (st == std::cv_status::timeout && queue_.empty()) break;
      }
      if (queue_.empty()) break;  // idle too long, or stopping with nothing left
      std::unique_ptr<Job> job = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      try {
        run_(*job);
      } catch (...) {
        // run_ handles the handler's exceptions; nothing may escape a thread.
      }
      job.reset();
      lock.lock();
      --active_;
      if (active_ == 0) done_cv_.notify_all();
    }
    --threads_;
    auto self = running_.find(std::this_thread::get_id());
    if (self != running_.end()) {
      exited_.push_back(std::move(self->second));
      running_.erase(self);
    }
    done_cv_.notify_all();
  }

  const int max_workers_;
  const std::function<void(Job&)> run_;
  std::mutex mu_;
  std::condition_variable work_cv_;  // a job was queued, or stopping
  std::condition_variable done_cv_;  // active_ or threads_ dropped
  std::deque<std::unique_ptr<Job>> queue_;
  std::unordered_map<std::thread::id, std::thread> running_;
  std::vector<std::thread> exited_;  // finished threads, joined by the next caller
  int threads_ = 0;
  int idle_ = 0;
  int active_ = 0;  // queued + running jobs
  bool stopping_ = false;
};

// ---------------------------------------------------------------------------------
// State shared by the handler clones (one per reactor), the workers and the server.

struct Core {
  HttpServerOptions options;
  RequestHandler handler;
  std::unique_ptr<WorkerPool> pool;
  std::atomic<int> in_flight{0};      // admitted requests whose response is not finished
  std::atomic<bool> draining{false};  // Shutdown started: new requests get 503
  std::atomic<bool> stopped{false};   // reactors stopping: waiting writes give up

  std::string PathForLog(std::string_view raw_path) const {
    std::string out =
        options.redact_for_log ? options.redact_for_log(raw_path) : std::string(raw_path);
    if (out.size() > kMaxLoggedPath) {
      out.resize(kMaxLoggedPath);
      out += "...";
    }
    return out.empty() ? "-" : out;
  }

  void LogRequest(std::string_view method, std::string_view path, int status, uint64_t bytes,
                  Clock::time_point since, std::string_view note) const {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since).count();
    std::string line = std::string(method.empty() ? "-" : method) + " " + std::string(path) + " " +
                       std::to_string(status) + " " + std::to_string(bytes) + " bytes " +
                       std::to_string(ms) + " ms";
    if (!note.empty()) {
      line += " (";
      line += note;
      line += ")";
    }
    log::Info("http", line);
  }
};

void Ticket::Release() {
  if (!released.exchange(true)) core->in_flight.fetch_sub(1);
}

void ProcessInput(const std::shared_ptr<Core>& core, const std::shared_ptr<Connection>& conn,
                  const std::shared_ptr<P::Tcp::Peer>& peer, std::string_view data);

void ResetParser(const std::shared_ptr<Connection>& conn) {
  if (conn->fed != 0) return;  // a request is being parsed: leave it alone
  if (auto peer = conn->peer.lock()) {
    if (auto parser = ParserOf(peer)) parser->reset();
  }
}

// Reactor thread: parses what arrived while the connection was busy.
void ProcessPending(const std::shared_ptr<Core>& core, const std::shared_ptr<Connection>& conn) {
  std::string pending;
  {
    std::lock_guard<std::mutex> lock(conn->mu);
    if (conn->busy || conn->closing) return;
    pending.swap(conn->pending);
  }
  if (pending.empty()) return;
  if (auto peer = conn->peer.lock()) ProcessInput(core, conn, peer, pending);
}

// The response on `conn` has been written completely. Runs on the worker that wrote
// it, or on the reactor thread for responses the reactor answers itself.
void FinishResponse(const std::shared_ptr<Core>& core, const std::shared_ptr<Connection>& conn,
                    bool keep_alive, bool on_reactor) {
  if (on_reactor) ResetParser(conn);
  if (!keep_alive) {
    {
      std::lock_guard<std::mutex> lock(conn->mu);
      conn->closing = true;
      conn->pending.clear();
    }
    ShutdownSocket(*conn, SHUT_RDWR);
    return;
  }
  bool has_pending;
  {
    std::lock_guard<std::mutex> lock(conn->mu);
    conn->busy = false;
    has_pending = !conn->pending.empty();
  }
  if (!has_pending) return;
  if (on_reactor) {
    ProcessPending(core, conn);
  } else {
    RunOnReactor(conn, [core, conn] { ProcessPending(core, conn); });
  }
}

// Reactor thread: answers the current request without a worker (limits, 503, parse
// errors). Without keep_alive, the rest of the input is dropped and only the write side
// is shut once the bytes are out, so a client still sending a body can read the answer.
void RespondFromReactor(const std::shared_ptr<Core>& core, const std::shared_ptr<Connection>& conn,
                        const std::shared_ptr<P::Tcp::Peer>& peer, ErrorCode code,
                        std::string_view message, bool keep_alive, const HeaderList& extra = {}) {
  int status = InfoFor(code).http_status;
  std::string body = ErrorBody(code, message);
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + ReasonPhrase(status) + "\r\n";
  out += "Date: " + HttpDate() + "\r\n";
  out += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  for (const auto& [name, value] : extra) out += name + ": " + value + "\r\n";
  out += "Content-Type: application/json\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  out += body;
  core->LogRequest(conn->method_for_log, conn->path_for_log.empty() ? "-" : conn->path_for_log,
                   status, body.size(), Clock::now(), message);
  conn->fed = 0;
  conn->head_bytes.clear();
  conn->head_len = 0;
  conn->line_checked = false;
  {
    std::lock_guard<std::mutex> lock(conn->mu);
    conn->busy = true;
    if (!keep_alive) {
      conn->closing = true;
      conn->pending.clear();
    }
  }
  if (!SendNow(*conn, out)) {
    {
      std::lock_guard<std::mutex> lock(conn->mu);
      conn->closing = true;
      conn->pending.clear();
    }
    ShutdownSocket(*conn, SHUT_RDWR);
  } else if (keep_alive) {
    peer->setIdle(true);  // an idle keep-alive connection is closed silently, without a 408
    FinishResponse(core, conn, true, /*on_reactor=*/true);
  } else {
    ShutdownSocket(*conn, SHUT_WR);
  }
}

// ---------------------------------------------------------------------------------
// The response channel a worker writes through. One thread at a time.

class Channel final : public ResponseChannel {
 public:
  Channel(std::shared_ptr<Core> core, Job& job)
      : core_(std::move(core)),
        conn_(job.conn),
        ticket_(job.ticket),
        request_(job.request),
        http10_(job.http10),
        head_only_(job.head_only) {}

  Status SendWhole(int status, const HeaderList& headers, std::string_view body) override {
    if (phase_ != Phase::kNone) return Internal("response already started");
    // 204 and 304 carry no body; HEAD announces the length GET would send.
    bool bodiless_status = status == 204 || status == 304;
    std::optional<uint64_t> length;
    if (!bodiless_status) length = body.size();
    std::string head;
    SI_RETURN_IF_ERROR(FormatHead(status, headers, length, false, head));
    phase_ = Phase::kWhole;
    status_sent_ = status;
    bool send_body = !bodiless_status && !head_only_;
    Status s = send_body ? Write({head, body}, true) : Write({head}, true);
    if (s.ok()) {
      if (send_body) body_bytes_ += body.size();
      phase_ = Phase::kDone;
    }
    return s;
  }

  Status BeginChunked(int status, const HeaderList& headers) override {
    if (phase_ != Phase::kNone) return Internal("response already started");
    bool bodiless_status = status == 204 || status == 304;
    no_body_ = head_only_ || bodiless_status;
    // HTTP/1.0 has no chunked coding: the body ends when the connection closes.
    if (http10_ && !no_body_) request_.keep_alive = false;
    // HEAD announces what GET would.
    bool announce_chunked = !bodiless_status && !http10_;
    std::string head;
    SI_RETURN_IF_ERROR(FormatHead(status, headers, std::nullopt, announce_chunked, head));
    phase_ = Phase::kChunked;
    status_sent_ = status;
    Status s = Write({head}, no_body_);
    if (s.ok() && no_body_) phase_ = Phase::kDone;
    return s;
  }

  Status WriteChunk(std::string_view data) override {
    if (phase_ == Phase::kFailed) return failure_;
    if (phase_ == Phase::kDone && no_body_) return Status::Ok();
    if (phase_ != Phase::kChunked) return Internal("WriteChunk outside a chunked response");
    size_t piece_max = kMaxWriteBytes - kChunkFraming;
    while (!data.empty()) {
      std::string_view piece = data.substr(0, piece_max);
      data.remove_prefix(piece.size());
      if (http10_) {
        SI_RETURN_IF_ERROR(Write({piece}, false));
      } else {
        char size_line[24];
        int n = std::snprintf(size_line, sizeof size_line, "%zx\r\n", piece.size());
        SI_RETURN_IF_ERROR(
            Write({std::string_view(size_line, static_cast<size_t>(n)), piece, "\r\n"}, false));
      }
      body_bytes_ += piece.size();
    }
    return Status::Ok();
  }

  Status WriteFileChunk(std::string_view head, int fd, int64_t offset, size_t length) override {
    if (phase_ == Phase::kFailed) return failure_;
    if (phase_ == Phase::kDone && no_body_) return Status::Ok();
    if (phase_ != Phase::kChunked) return Internal("WriteFileChunk outside a chunked response");
    if (http10_) {
      SI_RETURN_IF_ERROR(Write({head}, false));
    } else {
      char size_line[24];
      int n = std::snprintf(size_line, sizeof size_line, "%zx\r\n", head.size() + length);
      SI_RETURN_IF_ERROR(Write({std::string_view(size_line, static_cast<size_t>(n)), head}, false));
    }
    SI_RETURN_IF_ERROR(SendFileRange(fd, offset, length));
    if (!http10_) SI_RETURN_IF_ERROR(Write({"\r\n"}, false));
    body_bytes_ += head.size() + length;
    return Status::Ok();
  }

  Status EndChunked() override {
    if (phase_ == Phase::kFailed) return failure_;
    if (phase_ == Phase::kDone && no_body_) return Status::Ok();
    if (phase_ != Phase::kChunked) return Internal("EndChunked outside a chunked response");
    Status s = Write({http10_ ? std::string_view() : std::string_view("0\r\n\r\n")}, true);
    if (s.ok()) phase_ = Phase::kDone;
    return s;
  }

  void Abort() override {
    ShutdownSocket(*conn_, SHUT_RDWR);
    aborted_ = true;
    if (phase_ != Phase::kFailed) {
      phase_ = Phase::kFailed;
      failure_ = Unavailable("response aborted");
    }
  }

  bool ClientGone() const override {
    return conn_->gone.load() || conn_->peer.expired() || phase_ == Phase::kFailed;
  }

  int status_sent() const override { return status_sent_; }

  bool started() const { return phase_ != Phase::kNone; }
  bool finished() const { return phase_ == Phase::kDone; }
  bool aborted() const { return aborted_; }
  bool failed() const { return phase_ == Phase::kFailed; }
  const Status& failure() const { return failure_; }
  uint64_t body_bytes() const { return body_bytes_; }

 private:
  enum class Phase { kNone, kWhole, kChunked, kDone, kFailed };

  Status Fail(Status s) {
    phase_ = Phase::kFailed;
    failure_ = s;
    return s;
  }

  Status FormatHead(int status, const HeaderList& headers, std::optional<uint64_t> content_length,
                    bool chunked, std::string& out) {
    // Interim (1xx) responses are not offered: 100 Continue is the server's own.
    if (status < 200 || status > 999) return Internal("invalid status " + std::to_string(status));
    bool has_date = false;
    for (const auto& [name, value] : headers) {
      if (!ValidHeaderName(name) || !ValidHeaderValue(value)) {
        return Internal("invalid response header '" + name + "'");
      }
      if (EqualsIgnoreCase(name, "connection") && HasToken(value, "close"))
        request_.keep_alive = false;
      if (EqualsIgnoreCase(name, "date")) has_date = true;
    }
    if (core_->draining.load()) request_.keep_alive = false;
    out = "HTTP/1.1 " + std::to_string(status) + " " + ReasonPhrase(status) + "\r\n";
    if (!has_date) out += "Date: " + HttpDate() + "\r\n";
    out += request_.keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
    for (const auto& [name, value] : headers) {
      if (EqualsIgnoreCase(name, "connection") || EqualsIgnoreCase(name, "content-length") ||
          EqualsIgnoreCase(name, "transfer-encoding")) {
        continue;  // the channel owns these
      }
      out += name;
      out += ": ";
      out += value;
      out += "\r\n";
    }
    if (content_length) out += "Content-Length: " + std::to_string(*content_length) + "\r\n";
    if (chunked) out += "Transfer-Encoding: chunked\r\n";
    out += "\r\n";
    return Status::Ok();
  }

  // Writes the concatenation of `parts` in slices of at most kMaxWriteBytes, each one
  // handed to the kernel before the next. `last`: these are the response's final bytes.
  Status Write(std::initializer_list<std::string_view> parts, bool last) {
    if (phase_ == Phase::kFailed) return failure_;
    std::vector<std::string_view> rest;
    size_t remaining = 0;
    for (auto p : parts) {
      if (!p.empty()) rest.push_back(p);
      remaining += p.size();
    }
    size_t index = 0;
    do {
      iovec iov[8];
      int count = 0;
      size_t slice = 0;
      while (index < rest.size() && count < 8 && slice < kMaxWriteBytes) {
        std::string_view& part = rest[index];
        size_t take = std::min(part.size(), kMaxWriteBytes - slice);
        iov[count].iov_base = const_cast<char*>(part.data());
        iov[count].iov_len = take;
        ++count;
        slice += take;
        part.remove_prefix(take);
        if (part.empty()) ++index;
      }
      remaining -= slice;
      SI_RETURN_IF_ERROR(Send(iov, count, last && remaining == 0));
    } while (remaining > 0);
    return Status::Ok();
  }

  // sendfile(2) of a file range in non-blocking slices, waiting like Send. The
  // response is never finished here: a chunk's CRLF always follows.
  Status SendFileRange(int fd, int64_t offset, size_t length) {
    auto last_progress = Clock::now();
    off_t at = static_cast<off_t>(offset);
    while (length > 0) {
      if (phase_ == Phase::kFailed) return failure_;
      if (conn_->gone.load() || core_->stopped.load() || conn_->peer.expired()) {
        return Fail(Unavailable("client disconnected"));
      }
      ssize_t n = ::sendfile(conn_->wfd, fd, &at, std::min(length, kMaxFileSlice));
      if (n > 0) {
        last_progress = Clock::now();
        length -= static_cast<size_t>(n);
        continue;
      }
      if (n == 0) return Fail(IoError("the file ended before the announced length"));
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        SI_RETURN_IF_ERROR(AwaitWritable(last_progress));
        continue;
      }
      if (errno == EINVAL || errno == ENOSYS) {
        return Fail(Internal("sendfile is not available for this file"));
      }
      return Fail(Unavailable("client disconnected"));
    }
    return Status::Ok();
  }

  // One wait for the socket to take more bytes; fails when the client is gone or
  // read nothing for stall_limit.
  Status AwaitWritable(Clock::time_point last_progress) {
    pollfd pfd{conn_->wfd, POLLOUT, 0};
    int ready = ::poll(&pfd, 1, static_cast<int>(kWaitSlice.count()));
    if (ready > 0 && (pfd.revents & (POLLERR | POLLNVAL)) != 0) {
      return Fail(Unavailable("client disconnected"));
    }
    if (ready == 0 && Clock::now() - last_progress >= core_->options.stall_limit) {
      ShutdownSocket(*conn_, SHUT_RDWR);
      return Fail(Unavailable("client stalled: nothing read for " +
                              std::to_string(core_->options.stall_limit.count()) + " s"));
    }
    return Status::Ok();
  }

  // Hands one slice to the kernel, waiting (poll, in slices of kWaitSlice) while the
  // socket is full; gives up when the client is gone or reads nothing for stall_limit.
  Status Send(iovec* iov, int count, bool last) {
    if (phase_ == Phase::kFailed) return failure_;
    // The response is as good as done: a request the client sends as soon as it has
    // these bytes must not be refused for want of a place.
    if (last) ticket_->Release();
    auto last_progress = Clock::now();
    while (count > 0) {
      if (conn_->gone.load() || core_->stopped.load() || conn_->peer.expired()) {
        return Fail(Unavailable("client disconnected"));
      }
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = static_cast<size_t>(count);
      ssize_t n = ::sendmsg(conn_->wfd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        last_progress = Clock::now();
        size_t done = static_cast<size_t>(n);
        while (count > 0 && done >= iov->iov_len) {
          done -= iov->iov_len;
          ++iov;
          --count;
        }
        if (count > 0) {
          iov->iov_base = static_cast<char*>(iov->iov_base) + done;
          iov->iov_len -= done;
        }
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        SI_RETURN_IF_ERROR(AwaitWritable(last_progress));
        continue;
      }
      return Fail(Unavailable("client disconnected"));
    }
    if (Clock::now() - last_parser_reset_ >= kParserResetInterval) {
      // Pistache's idle checker counts from the parser's last reset.
      last_parser_reset_ = Clock::now();
      auto conn = conn_;
      RunOnReactor(conn_, [conn] { ResetParser(conn); });
    }
    if (last) FinishResponse(core_, conn_, request_.keep_alive, /*on_reactor=*/false);
    return Status::Ok();
  }

  std::shared_ptr<Core> core_;
  std::shared_ptr<Connection> conn_;
  std::shared_ptr<Ticket> ticket_;
  HttpRequest& request_;
  const bool http10_;
  const bool head_only_;
  bool no_body_ = false;
  Phase phase_ = Phase::kNone;
  Status failure_;
  int status_sent_ = 0;
  uint64_t body_bytes_ = 0;
  bool aborted_ = false;
  Clock::time_point last_parser_reset_ = Clock::now();
};

// Worker thread: runs the handler for one request.
void RunJob(const std::shared_ptr<Core>& core, Job& job) {
  Channel channel(core, job);
  std::string note;
  try {
    core->handler(job.request, channel);
  } catch (const std::exception& e) {
    note = std::string("handler threw: ") + e.what();
  } catch (...) {
    note = "handler threw";
  }
  if (!channel.started()) {
    if (note.empty()) note = "handler sent nothing";
    Status s = channel.SendWhole(500, {{"Content-Type", "application/json"}},
                                 ErrorBody(ErrorCode::kInternal, "no response"));
    (void)s;
  } else if (!channel.finished() && !channel.failed()) {
    if (note.empty()) note = "handler left the response unfinished";
    channel.Abort();
  }
  // A response that did not finish leaves the connection out of step: drop it.
  if (!channel.finished()) ShutdownSocket(*job.conn, SHUT_RDWR);
  job.ticket->Release();
  if (channel.aborted() && note.empty()) note = "aborted";
  if (channel.failed() && note.empty()) note = channel.failure().message();
  core->LogRequest(job.request.method, core->PathForLog(job.request.raw_path),
                   channel.status_sent(), channel.body_bytes(), job.request.received_at, note);
}

// ---------------------------------------------------------------------------------
// Reactor side: parsing and dispatch.

void Dispatch(const std::shared_ptr<Core>& core, const std::shared_ptr<Connection>& conn,
              const std::shared_ptr<P::Tcp::Peer>& peer, std::unique_ptr<Job> job) {
  if (core->draining.load()) {
    RespondFromReactor(core, conn, peer, ErrorCode::kUnavailable, "server shutting down", false,
                       {{"Retry-After", "1"}});
    return;
  }
  bool keep_alive = job->request.keep_alive;
  if (core->in_flight.fetch_add(1) >= core->options.max_workers) {
    core->in_flight.fetch_sub(1);
    RespondFromReactor(core, conn, peer, ErrorCode::kUnavailable, "too many concurrent requests",
                       keep_alive, {{"Retry-After", "1"}});
    return;
  }
  job->ticket = std::make_shared<Ticket>(core);
  {
    std::lock_guard<std::mutex> lock(conn->mu);
    conn->busy = true;
  }
  // While we answer, the idle checker treats the connection as idle (keepaliveTimeout,
  // silent close) instead of sending a 408 into our response after headerTimeout.
  peer->setIdle(true);
  if (!core->pool->TrySubmit(std::move(job))) {  // stopping, or no thread could start
    {
      std::lock_guard<std::mutex> lock(conn->mu);
      conn->busy = false;
    }
    RespondFromReactor(core, conn, peer, ErrorCode::kUnavailable, "no worker available", false,
                       {{"Retry-After", "1"}});
  }
}

void ProcessInput(const std::shared_ptr<Core>& core, const std::shared_ptr<Connection>& conn,
                  const std::shared_ptr<P::Tcp::Peer>& peer, std::string_view data) {
  const HttpServerOptions& opt = core->options;
  while (!data.empty()) {
    {
      std::lock_guard<std::mutex> lock(conn->mu);
      if (conn->closing) return;
      // Busy, or older bytes still queued: keep the order.
      if (conn->busy || !conn->pending.empty()) {
        size_t limit = opt.max_target_bytes + kMaxHeaderBytes + opt.max_body_bytes;
        if (conn->pending.size() + data.size() > limit) {
          conn->closing = true;
          conn->pending.clear();
          ::shutdown(conn->wfd, SHUT_RDWR);
          return;
        }
        conn->pending.append(data);
        return;
      }
    }
    auto parser = ParserOf(peer);
    if (!parser) return;
    if (conn->fed == 0) {
      // Start of a request: empty lines before it are ignored (RFC 9112, 2.2).
      while (!data.empty() && (data.front() == '\r' || data.front() == '\n')) data.remove_prefix(1);
      if (data.empty()) return;
      parser->reset();
      peer->setIdle(false);
      conn->head_bytes.clear();
      conn->head_len = 0;
      conn->line_checked = false;
      conn->head = RequestHead();
      conn->method_for_log.clear();
      conn->path_for_log.clear();
    }
    if (!parser->feed(data.data(), data.size())) {
      RespondFromReactor(core, conn, peer, ErrorCode::kPayloadTooLarge, "request too large", false);
      return;
    }
    conn->fed += data.size();

    if (conn->head_len == 0) {
      size_t old = conn->head_bytes.size();
      conn->head_bytes.append(data);
      std::string_view raw = conn->head_bytes;
      if (!conn->line_checked) {
        size_t eol = raw.find("\r\n", old > 0 ? old - 1 : 0);
        if (eol == std::string_view::npos) {
          if (raw.size() > opt.max_target_bytes + kRequestLineSlack) {
            RespondFromReactor(core, conn, peer, ErrorCode::kUriTooLong, "request target too long",
                               false);
            return;
          }
        } else {
          RequestHead line;
          if (ParseRequestLine(raw.substr(0, eol), line)) {
            conn->method_for_log = line.method;
            std::string raw_path, raw_query;
            SplitTarget(line.target.substr(0, std::min(line.target.size(), kMaxLoggedPath * 4)),
                        raw_path, raw_query);
            conn->path_for_log = core->PathForLog(raw_path);
            if (line.target.size() > opt.max_target_bytes) {
              RespondFromReactor(core, conn, peer, ErrorCode::kUriTooLong,
                                 "request target too long", false);
              return;
            }
          }
          conn->line_checked = true;  // a malformed line is Pistache's parser's to reject
        }
      }
      size_t end = raw.find("\r\n\r\n", old > 3 ? old - 3 : 0);
      if (end == std::string_view::npos) {
        if (raw.size() > opt.max_target_bytes + kRequestLineSlack + kMaxHeaderBytes) {
          RespondFromReactor(core, conn, peer, ErrorCode::kPayloadTooLarge,
                             "request header section too large", false);
          return;
        }
      } else {
        conn->head_len = end + 4;
        conn->head_bytes.resize(conn->head_len);
        if (!ParseHead(std::string_view(conn->head_bytes).substr(0, end), conn->head)) {
          RespondFromReactor(core, conn, peer, ErrorCode::kInvalidArgument,
                             "malformed request head", false);
          return;
        }
        if (conn->head.content_length && *conn->head.content_length > opt.max_body_bytes) {
          RespondFromReactor(core, conn, peer, ErrorCode::kPayloadTooLarge,
                             "request body too large", false);
          return;
        }
        // A client waiting for permission to send its body gets it at once, rather
        // than after its own timeout (curl waits a second).
        bool body_follows = conn->head.chunked || conn->head.content_length.value_or(0) > 0;
        if (body_follows && !conn->head.http10 && conn->fed == conn->head_len) {
          for (const auto& [name, value] : conn->head.headers) {
            if (name == "expect" && EqualsIgnoreCase(value, "100-continue")) {
              if (!SendNow(*conn, "HTTP/1.1 100 Continue\r\n\r\n"))
                ShutdownSocket(*conn, SHUT_RDWR);
              break;
            }
          }
        }
      }
    }
    if (conn->head_len != 0 && conn->head.chunked &&
        conn->fed - conn->head_len > opt.max_body_bytes + opt.max_body_bytes / 8 + kMaxWriteBytes) {
      // Chunk framing allowance included; the decoded body is checked below.
      RespondFromReactor(core, conn, peer, ErrorCode::kPayloadTooLarge, "request body too large",
                         false);
      return;
    }

    P::Http::Private::State state;
    try {
      state = parser->parse();
    } catch (const P::Http::HttpError& e) {
      ErrorCode code = e.code() == 501 ? ErrorCode::kNotImplemented : ErrorCode::kInvalidArgument;
      RespondFromReactor(core, conn, peer, code, e.reason(), false);
      return;
    } catch (const std::exception& e) {
      RespondFromReactor(core, conn, peer, ErrorCode::kInvalidArgument, e.what(), false);
      return;
    }
    if (state != P::Http::Private::State::Done) return;  // wait for more bytes
    if (conn->head_len == 0) {
      RespondFromReactor(core, conn, peer, ErrorCode::kInvalidArgument, "malformed request head",
                         false);
      return;
    }

    // A complete request.
    const P::Http::Request& parsed = parser->request;
    const std::string& body = parsed.body();
    if (body.size() > opt.max_body_bytes) {
      RespondFromReactor(core, conn, peer, ErrorCode::kPayloadTooLarge, "request body too large",
                         false);
      return;
    }
    auto job = std::make_unique<Job>();
    RequestHead& head = conn->head;
    HttpRequest& req = job->request;
    req.method = head.method;
    SplitTarget(head.target, req.raw_path, req.raw_query);
    auto decoded = PercentDecode(req.raw_path);
    if (!decoded) {
      RespondFromReactor(core, conn, peer, ErrorCode::kInvalidArgument, "encoded NUL in path",
                         false);
      return;
    }
    req.path = std::move(*decoded);
    req.body = body;
    req.received_at = Clock::now();
    bool close_requested = false, keep_alive_requested = false;
    for (const auto& [name, value] : head.headers) {
      if (name == "connection") {
        close_requested = close_requested || HasToken(value, "close");
        keep_alive_requested = keep_alive_requested || HasToken(value, "keep-alive");
      }
    }
    req.keep_alive = head.http10 ? (keep_alive_requested && !close_requested) : !close_requested;
    // Where a chunked request body ends in the byte stream is not worth tracking here;
    // close after answering instead of guessing (clients rarely send these).
    if (head.chunked) req.keep_alive = false;
    req.headers = std::move(head.headers);
    job->http10 = head.http10;
    job->head_only = head.method == "HEAD";
    job->conn = conn;

    // Bytes after this request (a pipelined one) all came in this last slice.
    size_t consumed = conn->head_len + body.size();
    size_t extra = (!head.chunked && conn->fed > consumed) ? conn->fed - consumed : 0;
    std::string_view rest = data.substr(data.size() - std::min(extra, data.size()));
    conn->fed = 0;
    conn->head_bytes.clear();
    conn->head_len = 0;
    parser->reset();
    Dispatch(core, conn, peer, std::move(job));
    data = rest;  // goes to `pending` while busy, or is parsed right away after a 503
  }
}

// ---------------------------------------------------------------------------------
// The Pistache handler. Pistache clones it per reactor thread; clones share the Core.

class PistacheHandler final : public P::Http::Handler {
 public:
  HTTP_PROTOTYPE(PistacheHandler)

  explicit PistacheHandler(std::shared_ptr<Core> core) : core_(std::move(core)) {}

  // Never called: onInput below does the parsing and dispatch.
  void onRequest(const P::Http::Request&, P::Http::ResponseWriter) override {}

  // Called only for timers armed through a ResponseWriter, which we never create.
  void onTimeout(const P::Http::Request&, P::Http::ResponseWriter) override {}

  void onInput(const char* buffer, size_t len, const std::shared_ptr<P::Tcp::Peer>& peer) override {
    try {
      auto conn = ConnectionOf(peer);
      ProcessInput(core_, conn, peer, std::string_view(buffer, len));
    } catch (const std::exception& e) {
      // An exception would unwind through Pistache's reactor loop; drop the connection.
      log::Error("http", std::string("input handling failed: ") + e.what());
      ::shutdown(peer->fd(), SHUT_RDWR);
    }
  }

  void onDisconnection(const std::shared_ptr<P::Tcp::Peer>& peer) override {
    if (auto data = peer->tryGetData(kConnectionKey)) {
      std::static_pointer_cast<Connection>(data)->gone = true;
    }
    P::Http::Handler::onDisconnection(peer);
  }

 private:
  std::shared_ptr<Connection> ConnectionOf(const std::shared_ptr<P::Tcp::Peer>& peer) {
    if (auto data = peer->tryGetData(kConnectionKey))
      return std::static_pointer_cast<Connection>(data);
    auto conn = std::make_shared<Connection>();
    conn->peer = peer;
    conn->transport = transport();
    conn->reactor = std::this_thread::get_id();
    conn->wfd = ::fcntl(peer->fd(), F_DUPFD_CLOEXEC, 0);
    if (conn->wfd < 0) throw std::runtime_error(std::string("dup: ") + std::strerror(errno));
    int one = 1;
    ::setsockopt(conn->wfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    peer->putData(kConnectionKey, conn);
    return conn;
  }

  std::shared_ptr<Core> core_;
};

}  // namespace

// ---------------------------------------------------------------------------------

struct HttpServer::Impl {
  std::shared_ptr<Core> core;
  std::unique_ptr<P::Http::Endpoint> endpoint;
  uint16_t port = 0;
  bool running = false;
  bool used = false;  // Start was called once; a server does not restart
};

HttpServer::HttpServer(HttpServerOptions options, RequestHandler handler)
    : impl_(std::make_unique<Impl>()) {
  impl_->core = std::make_shared<Core>();
  impl_->core->options = std::move(options);
  impl_->core->handler = std::move(handler);
  std::weak_ptr<Core> weak = impl_->core;  // the pool lives inside Core: no cycle
  impl_->core->pool =
      std::make_unique<WorkerPool>(impl_->core->options.max_workers, [weak](Job& job) {
        if (auto core = weak.lock()) RunJob(core, job);
      });
}

HttpServer::~HttpServer() { Shutdown(); }

Status HttpServer::Start() {
  if (impl_->used) return Internal("HttpServer::Start called twice");
  impl_->used = true;
  const HttpServerOptions& opt = impl_->core->options;
  try {
    P::Address address(opt.bind_address, P::Port(opt.port));
    auto endpoint = std::make_unique<P::Http::Endpoint>(address);
    size_t max_request = opt.max_target_bytes + kRequestLineSlack + kMaxHeaderBytes +
                         opt.max_body_bytes + opt.max_body_bytes / 8 + 2 * kMaxWriteBytes;
    // Pistache's idle checker: a connection that we are answering counts as idle (see
    // Dispatch), so keepaliveTimeout, counted from the parser's last reset (at most
    // kParserResetInterval apart while a response is being written), is what could
    // close it; keep that well above stall_limit so our own stall handling decides.
    auto keepalive = std::max<std::chrono::seconds>(300s, opt.stall_limit + 30s);
    auto options = P::Http::Endpoint::options()
                       .threads(std::max(1, opt.reactor_threads))
                       .flags(P::Tcp::Options::ReuseAddr)
                       .maxRequestSize(max_request)
                       .keepaliveTimeout(keepalive);
    endpoint->init(options);
    endpoint->setHandler(P::Http::make_handler<PistacheHandler>(impl_->core));
    endpoint->serveThreaded();
    impl_->port = static_cast<uint16_t>(endpoint->getPort());
    impl_->endpoint = std::move(endpoint);
  } catch (const std::exception& e) {
    return IoError("cannot serve HTTP on " + opt.bind_address + ":" + std::to_string(opt.port) +
                   ": " + e.what());
  }
  impl_->running = true;
  log::Info("http", "socket bound to " + opt.bind_address + ":" + std::to_string(impl_->port));
  return Status::Ok();
}

uint16_t HttpServer::port() const { return impl_->port; }

void HttpServer::Shutdown() {
  if (!impl_ || !impl_->running) return;
  impl_->running = false;
  Core& core = *impl_->core;
  core.draining = true;                               // new requests: 503, Connection: close
  core.pool->WaitIdle(Clock::now() + kDrainTimeout);  // running handlers finish their responses
  core.stopped = true;                                // writes still waiting give up
  impl_->endpoint->shutdown();
  core.pool->Stop();  // joins every worker
  impl_->endpoint.reset();
}

Status ResponseChannel::WriteFileChunk(std::string_view head, int fd, int64_t offset,
                                       size_t length) {
  SI_RETURN_IF_ERROR(WriteChunk(head));
  constexpr size_t kPiece = 256 * 1024;
  auto buffer = std::make_unique_for_overwrite<char[]>(kPiece);
  while (length > 0) {
    ssize_t n = ::pread(fd, buffer.get(), std::min(length, kPiece), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("read failed");
    if (n == 0) return IoError("the file ended before the announced length");
    SI_RETURN_IF_ERROR(WriteChunk(std::string_view(buffer.get(), static_cast<size_t>(n))));
    offset += n;
    length -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

}  // namespace si::facade
