#include "serve/http_bench.h"

#include <sys/resource.h>

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <fmt/format.h>

#include <boost/asio.hpp>
#include <deque>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace kiln::serve {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

void parse_http_url(const std::string& url, std::string* host, std::string* port) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) fail("--url {}: expected http://HOST:PORT", url);
  std::string rest = url.substr(scheme.size());
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0 || rest.find('/') != std::string::npos)
    fail("--url {}: expected http://HOST:PORT", url);
  *host = rest.substr(0, colon);
  *port = rest.substr(colon + 1);
  if (port->empty() || port->size() > 5 || port->find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(*port) < 1 || std::stoi(*port) > 65535)
    fail("--url {}: '{}' is not a port", url, *port);
}

namespace {

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// One streamed request on its own connection: HTTP/1.1 response head, chunked body, SSE events.
class Stream : public std::enable_shared_from_this<Stream> {
 public:
  Stream(asio::io_context& ioc, const tcp::resolver::results_type& ep, std::string request, HttpBenchTiming& t,
         std::function<void()> done)
      : sock_(ioc), ep_(ep), req_(std::move(request)), t_(t), done_(std::move(done)) {}

  void start() {
    t_.sent = Clock::now();
    asio::async_connect(sock_, ep_, [self = shared_from_this()](boost::system::error_code ec, const tcp::endpoint&) {
      if (ec) return self->finish("connect: " + ec.message());
      boost::system::error_code ignored;
      self->sock_.set_option(tcp::no_delay(true), ignored);
      asio::async_write(self->sock_, asio::buffer(self->req_), [self](boost::system::error_code ec, size_t) {
        if (ec) return self->finish("write: " + ec.message());
        self->read();
      });
    });
  }

 private:
  void read() {
    sock_.async_read_some(asio::buffer(buf_), [self = shared_from_this()](boost::system::error_code ec, size_t n) {
      if (ec) return self->finish(self->complete_ ? "" : "connection closed before [DONE]: " + ec.message());
      self->in_.append(self->buf_.data(), n);
      try {
        self->parse();
      } catch (const std::exception& e) {
        return self->finish(e.what());
      }
      if (self->complete_) return self->finish(self->error_);
      self->read();
    });
  }

  void parse() {
    if (!head_done_) {
      const size_t end = in_.find("\r\n\r\n");
      if (end == std::string::npos) return;
      const std::string head = in_.substr(0, end);
      in_.erase(0, end + 4);
      head_done_ = true;
      if (head.rfind("HTTP/1.1 200", 0) != 0) {
        error_ = "HTTP " + head.substr(9, 3);
        complete_ = true;
        return;
      }
      if (head.find("Transfer-Encoding: chunked") == std::string::npos) fail("the response is not a chunked stream");
    }
    for (;;) {  // chunks: SIZE\r\nDATA\r\n
      const size_t nl = in_.find("\r\n");
      if (nl == std::string::npos) return;
      const size_t size = std::stoul(in_.substr(0, nl), nullptr, 16);
      if (in_.size() < nl + 2 + size + 2) return;
      sse_.append(in_, nl + 2, size);
      in_.erase(0, nl + 4 + size);
      if (size == 0) {
        complete_ = true;
        if (!done_seen_ && error_.empty()) error_ = "the stream ended without data: [DONE]";
        return;
      }
      events();
    }
  }

  void events() {
    for (size_t end; (end = sse_.find("\n\n")) != std::string::npos;) {
      const std::string ev = sse_.substr(0, end);
      sse_.erase(0, end + 2);
      if (ev.rfind("data: ", 0) != 0) fail("not an SSE data event: {}", ev.substr(0, 80));
      if (ev == "data: [DONE]") {
        done_seen_ = true;
        continue;
      }
      const auto j = nlohmann::json::parse(ev.substr(6));
      if (j.contains("error")) {
        error_ = j["error"].value("message", "an error event");
        continue;
      }
      if (j.contains("usage") && j["usage"].is_object()) t_.tokens = j["usage"].value("completion_tokens", int64_t(0));
      if (j.value("choices", nlohmann::json::array()).empty()) continue;
      const Clock::time_point now = Clock::now();
      if (t_.started) t_.gaps_ms.push_back(ms(now - t_.last));
      if (!t_.started) t_.first = now;
      t_.started = true;
      t_.last = now;
    }
  }

  void finish(const std::string& error) {
    if (finished_) return;
    finished_ = true;
    if (!error.empty() && t_.error.empty()) t_.error = error;
    if (!t_.started) t_.last = Clock::now();
    boost::system::error_code ignored;
    sock_.close(ignored);
    done_();
  }

  tcp::socket sock_;
  tcp::resolver::results_type ep_;
  std::string req_;
  HttpBenchTiming& t_;
  std::function<void()> done_;
  std::array<char, 16384> buf_{};
  std::string in_, sse_, error_;
  bool head_done_ = false, complete_ = false, done_seen_ = false, finished_ = false;
};

}  // namespace

std::vector<HttpBenchTiming> run_http_bench(const HttpBenchConfig& cfg, const std::vector<std::string>& bodies,
                                            Clock::time_point* start, Clock::time_point* end,
                                            const std::function<void(size_t)>& progress) {
  // A request in flight is a connection: 2,000 at once need more than the usual soft limit of 1,024 descriptors.
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  asio::io_context ioc(1);
  tcp::resolver resolver(ioc);
  boost::system::error_code ec;
  const auto ep = resolver.resolve(cfg.host, cfg.port, ec);
  if (ec) fail("--url: cannot resolve {}:{}: {}", cfg.host, cfg.port, ec.message());
  const size_t n = bodies.size();
  std::vector<HttpBenchTiming> tm(n);
  std::vector<std::string> requests(n);
  const std::string auth = cfg.api_key.empty() ? "" : "Authorization: Bearer " + cfg.api_key + "\r\n";
  for (size_t i = 0; i < n; ++i)
    requests[i] = fmt::format(
        "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\n{}"
        "Content-Length: {}\r\nConnection: close\r\n\r\n{}",
        cfg.path, cfg.host, cfg.port, auth, bodies[i].size(), bodies[i]);
  size_t next = 0, done = 0, inflight = 0;
  asio::steady_timer timer(ioc);
  *start = Clock::now();
  *end = *start;
  std::function<void()> launch;
  launch = [&] {
    const double now_s = std::chrono::duration<double>(Clock::now() - *start).count();
    for (; next < n && cfg.arrival_s[next] <= now_s && (cfg.concurrency == 0 || int64_t(inflight) < cfg.concurrency);
         ++next) {
      ++inflight;
      std::make_shared<Stream>(ioc, ep, std::move(requests[next]), tm[next], [&] {
        --inflight;
        *end = std::max(*end, Clock::now());
        if (progress) progress(++done);
        launch();
      })->start();
    }
    if (next < n && (cfg.concurrency == 0 || int64_t(inflight) < cfg.concurrency)) {
      timer.expires_at(*start +
                       std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cfg.arrival_s[next])));
      timer.async_wait([&](boost::system::error_code ec) {
        if (!ec) launch();
      });
    }
  };
  launch();
  ioc.run();
  return tm;
}

}  // namespace kiln::serve
