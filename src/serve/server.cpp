#include "serve/server.h"

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <fmt/format.h>
#include <sys/resource.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <random>
#include <unordered_set>

#include "build/engine_format.h"
#include "core/error.h"
#include "core/fs_util.h"
#include "io/json_file.h"
#include "kiln/executor.h"
#include "serve/completion.h"
#include "serve/metrics.h"

namespace kiln::serve {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

const char* reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Payload Too Large";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

std::string random_id(const char* prefix) {
  static std::mt19937_64 rng(std::random_device{}());
  return fmt::format("{}{:016x}{:08x}", prefix, rng(), uint32_t(rng()));
}

class Session;

// Hands executor responses to the event loop, until the server stops (the executor may outlive the loop).
struct Poster {
  std::mutex mu;
  asio::io_context* ioc = nullptr;
  template <typename F>
  void post(F&& f) {
    std::lock_guard lk(mu);
    if (ioc) asio::post(*ioc, std::forward<F>(f));
  }
};

}  // namespace

struct Server {
  Server(Executor& ex_, const ModelContext& m_, const ServeOptions& o_)
      : ex(ex_), m(m_), o(o_), acceptor(ioc), signals(ioc, SIGTERM, SIGINT), drain_timer(ioc) {
    poster->ioc = &ioc;
  }
  ~Server() {
    std::lock_guard lk(poster->mu);
    poster->ioc = nullptr;
  }
  Executor& ex;
  const ModelContext& m;
  const ServeOptions& o;
  asio::io_context ioc{1};
  tcp::acceptor acceptor;
  asio::signal_set signals;
  asio::steady_timer drain_timer;
  Clock::time_point drain_deadline;
  bool draining = false, checking = false;
  int64_t active_generations = 0;
  std::unordered_set<Session*> sessions;
  Metrics metrics;
  std::shared_ptr<Poster> poster = std::make_shared<Poster>();

  void accept();
  void start_drain();
  void check_drain();
};

namespace {

// One client connection: reads requests one after another (keep-alive); a completion runs its choices as executor
// requests and writes their text as it comes. While one runs, a read on the socket watches for the client going
// away (which cancels the choices and frees their KV blocks).
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Server& s, tcp::socket sock) : srv_(s), stream_(std::move(sock)) {
    srv_.sessions.insert(this);
    ++srv_.metrics.open_connections;
  }
  ~Session() {
    srv_.sessions.erase(this);
    --srv_.metrics.open_connections;
  }
  void start() { read_request(); }
  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }
  // Drain deadline: stop this session's choices, and end its response with an error (an error event, then
  // [DONE], when streaming).
  void abort_generation() {
    if (!gen_) return;
    const ApiError e(503, "the server shut down before the request finished (--drain-timeout)", "", "shutdown",
                     "server_error");
    const bool stream = gen_->c->request().stream;
    finish_generation(true);
    if (stream) {
      send_chunk(sse_event(e.to_json()) + "data: [DONE]\n\n");
      response_done_ = true;
      send_raw("0\r\n\r\n");
    } else {
      send_error(e);
    }
  }
  bool busy() const { return gen_ || writing_; }

 private:
  struct Generation {
    std::unique_ptr<Completion> c;
    std::vector<RequestId> ids;
    std::vector<bool> finals;
    Clock::time_point start, last_token;
    std::vector<Clock::time_point> last;  // per choice: time of its latest tokens
    bool first_token = false;
  };

  void read_request() {
    parser_.emplace();
    parser_->body_limit(uint64_t(srv_.o.max_body_bytes));
    parser_->header_limit(64 * 1024);
    stream_.expires_after(std::chrono::milliseconds(int64_t(srv_.o.idle_timeout_s * 1000)));
    // The head first: a client that sent "Expect: 100-continue" (curl, for bodies over 1 KiB) waits for a 100
    // before it sends the body.
    http::async_read_header(stream_, buf_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec || self->parser_->is_done()) return self->on_read(ec);
      auto it = self->parser_->get().find(http::field::expect);
      if (it != self->parser_->get().end() && beast::iequals(it->value(), "100-continue")) {
        static const std::string cont = "HTTP/1.1 100 Continue\r\n\r\n";
        return asio::async_write(self->stream_.socket(), asio::buffer(cont), [self](beast::error_code ec, size_t) {
          if (ec) return self->close();
          self->read_body();
        });
      }
      self->read_body();
    });
  }

  void read_body() {
    http::async_read(stream_, buf_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      keep_alive_ = false;
      return send_error(ApiError(
          413, fmt::format("the request body is larger than {} bytes (--max-body-bytes)", srv_.o.max_body_bytes), "",
          "request_too_large"));
    }
    if (ec == http::error::header_limit) {
      keep_alive_ = false;
      return send_error(ApiError(431, "the request headers are too large"));
    }
    if (ec) return close();  // end of stream, timeout, reset, or a malformed request line
    stream_.expires_never();
    auto req = parser_->release();
    keep_alive_ = req.keep_alive() && !srv_.draining;
    ++srv_.metrics.http_requests;
    try {
      route(req);
    } catch (const ApiError& e) {
      send_error(e);
    } catch (const std::exception& e) {  // never crash on a request
      send_error(ApiError(500, e.what(), "", "internal_error", "server_error"));
    }
  }

  void route(const http::request<http::string_body>& req) {
    const std::string target(req.target());
    const std::string path = target.substr(0, target.find('?'));
    const bool get = req.method() == http::verb::get, post = req.method() == http::verb::post;
    auto only = [&](bool ok, const char* method) {
      if (!ok) throw ApiError(405, fmt::format("{} takes {} only", path, method), "", "method_not_allowed");
    };
    if (path == "/health") {
      only(get, "GET");
      return send(srv_.draining ? 503 : 200, "text/plain", srv_.draining ? "draining\n" : "");
    }
    if (path == "/version") {
      only(get, "GET");
      return send(200, "application/json", dump_json({{"version", kKilnVersion}}));
    }
    if (path == "/metrics") {
      only(get, "GET");
      return send(200, "text/plain; version=0.0.4", render_metrics(srv_.metrics, srv_.ex.stats(), srv_.m.model_name));
    }
    const bool completions = path == "/v1/completions", chat = path == "/v1/chat/completions";
    if (path != "/v1/models" && !completions && !chat)
      throw ApiError(404, fmt::format("no route {} {}", std::string(req.method_string()), path), "", "not_found");
    if (!srv_.o.api_key.empty()) {
      auto it = req.find(http::field::authorization);
      const std::string want = "Bearer " + srv_.o.api_key;
      if (it == req.end() || std::string(it->value()) != want)
        throw ApiError(401, it == req.end() ? "missing API key (Authorization: Bearer KEY)" : "invalid API key", "",
                       "invalid_api_key");
    }
    if (path == "/v1/models") {
      only(get, "GET");
      json model = {{"id", srv_.m.model_name},
                    {"object", "model"},
                    {"created", created_},
                    {"owned_by", "kiln"},
                    {"max_model_len", srv_.m.max_seq_len}};
      return send(200, "application/json", dump_json({{"object", "list"}, {"data", json::array({model})}}));
    }
    only(post, "POST");
    if (srv_.draining) {
      keep_alive_ = false;
      throw ApiError(503, "the server is shutting down", "", "shutting_down", "server_error");
    }
    json body;
    try {
      body = parse_json(req.body());
    } catch (const std::exception& e) {
      throw ApiError(400, fmt::format("the body is not valid JSON: {}", e.what()), "", "invalid_json");
    }
    start_generation(parse_completion_request(body, srv_.m, chat));
  }

  void start_generation(CompletionRequest creq) {
    const size_t n = creq.prompts.size() * size_t(creq.n);
    const Stats st = srv_.ex.stats();
    if (st.queued_requests + int64_t(n) > srv_.o.max_queued) {
      throw ApiError(429,
                     fmt::format("the queue is full ({} requests waiting, --max-queued {})", st.queued_requests,
                                 srv_.o.max_queued),
                     "", "queue_full", "rate_limit_error");
    }
    auto g = std::make_unique<Generation>();
    const std::string id = random_id(creq.chat ? "chatcmpl-" : "cmpl-");
    g->c = std::make_unique<Completion>(std::move(creq), srv_.m, id, std::time(nullptr));
    g->start = Clock::now();
    g->finals.assign(n, false);
    g->last.assign(n, g->start);
    std::weak_ptr<Session> weak = shared_from_this();
    for (size_t i = 0; i < n; ++i) {
      try {
        auto cb = [weak, i, poster = srv_.poster, gen = generation_](Response r) {
          poster->post([weak, i, gen, r = std::move(r)]() mutable {
            if (auto s = weak.lock()) s->on_response(gen, i, std::move(r));
          });
        };
        g->ids.push_back(srv_.ex.enqueue(g->c->executor_request(i), cb));
      } catch (const Error& e) {  // a limit the executor checks (KV pool, ...): nothing of this request runs
        for (RequestId id : g->ids) srv_.ex.release(id);
        throw api_error_from_executor(e.what(), g->c->request().chat);
      }
    }
    for (const auto& p : g->c->request().prompts) {
      srv_.metrics.prompt_tokens += uint64_t(p.size()) * uint64_t(g->c->request().n);
      srv_.metrics.prefix_cache_queries += uint64_t(p.size()) * uint64_t(g->c->request().n);
    }
    gen_ = std::move(g);
    ++srv_.active_generations;
    if (gen_->c->request().stream) {
      send_raw(
          "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
          "Transfer-Encoding: chunked\r\n" +
          std::string(keep_alive_ ? "" : "Connection: close\r\n") + "\r\n");
      send_chunk(gen_->c->stream_start());
    }
    watch();
  }

  void on_response(uint64_t gen, size_t i, Response r) {
    if (!gen_ || gen != generation_) return;  // a cancelled generation's late responses
    try {
      respond(i, std::move(r));
    } catch (const std::exception& e) {  // its choices stop and the connection closes; the server goes on
      std::fprintf(stderr, "kiln serve: error in a response: %s\n", e.what());
      if (gen_) finish_generation(true);
      close();
    }
  }

  void respond(size_t i, Response r) {
    Generation& g = *gen_;
    const Clock::time_point now = Clock::now();
    const size_t got = r.output_ids.empty() ? 0 : r.output_ids[0].size();
    if (got > 0) {
      if (!g.first_token)
        srv_.metrics.ttft.observe(seconds(now - g.start));
      else
        srv_.metrics.itl.observe(seconds(now - g.last[i]));
      g.first_token = true;
      g.last[i] = now;
      srv_.metrics.generation_tokens += got;
    }
    if (r.is_final) g.finals[i] = true;
    bool cancel = false;
    std::string events = g.c->on_response(i, r, &cancel);
    if (cancel) srv_.ex.cancel(g.ids[i]);
    if (g.c->request().stream) send_chunk(events);
    if (!g.c->done()) return;
    srv_.metrics.e2e.observe(seconds(now - g.start));
    for (const auto& reason : g.c->finish_reasons()) ++srv_.metrics.success_by_reason[reason];
    if (g.c->request().stream) {
      send_chunk(g.c->stream_end());
      response_done_ = true;
      send_raw("0\r\n\r\n");
    } else if (g.c->failed()) {
      send_error(ApiError(500, g.c->error(), "", "generation_failed", "server_error"));
    } else {
      send(200, "application/json", dump_json(g.c->body()));
    }
    end_generation();
  }

  void end_generation() {
    gen_.reset();
    ++generation_;
    --srv_.active_generations;
    srv_.check_drain();
  }

  // The client went away, or the drain deadline passed: the choices are cancelled and their responses dropped.
  void finish_generation(bool aborted) {
    for (RequestId id : gen_->ids) srv_.ex.release(id);
    if (aborted) srv_.metrics.success_by_reason["abort"] += gen_->ids.size();
    keep_alive_ = false;
    end_generation();
  }

  // A read while a completion runs: data is kept for the next request; an error means the client is gone.
  void watch() {
    watching_ = true;
    stream_.socket().async_read_some(buf_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
      self->watching_ = false;
      if (!ec) self->buf_.commit(n);
      if (ec && ec != asio::error::operation_aborted) {
        if (self->gen_) self->finish_generation(true);  // gone before the answer was complete
        return self->close();
      }
      if (self->gen_ && self->buf_.size() < (1 << 20)) return self->watch();
      self->maybe_next();
    });
  }

  // Once the response is written and the watch is over: the next request, or the end of the connection.
  void maybe_next() {
    if (gen_ || writing_ || watching_ || !response_done_) return;
    response_done_ = false;
    if (!keep_alive_ || srv_.draining) return linger_close();
    read_request();
  }

  // Closes after the client has seen the response: stop sending, read (and drop) what it still sends for a while.
  void linger_close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(std::chrono::seconds(2));
    buf_.clear();
    stream_.async_read_some(buf_.prepare(64 * 1024), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->close();
      self->linger_close();
    });
  }

  void send_error(const ApiError& e) {
    ++srv_.metrics.http_errors;
    std::string extra;
    if (e.status == 429 || e.status == 503) extra = "Retry-After: 1\r\n";
    send(e.status, "application/json", dump_json(e.to_json()), extra);
  }

  void send(int status, const char* type, const std::string& body, const std::string& extra = "") {
    response_done_ = true;
    send_raw(fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}{}\r\n", status,
                         reason_phrase(status), type, body.size(), extra, keep_alive_ ? "" : "Connection: close\r\n") +
             body);
  }

  void send_chunk(const std::string& data) {
    if (data.empty()) return;
    send_raw(fmt::format("{:x}\r\n", data.size()) + data + "\r\n");
  }

  void send_raw(std::string bytes) {
    out_ += bytes;
    if (!writing_) write();
  }

  void write() {
    writing_ = true;
    wbuf_ = std::move(out_);
    out_.clear();
    asio::async_write(stream_.socket(), asio::buffer(wbuf_), [self = shared_from_this()](beast::error_code ec, size_t) {
      self->writing_ = false;
      if (ec) {
        if (self->gen_) self->finish_generation(true);
        return self->close();
      }
      if (!self->out_.empty()) return self->write();
      if (self->gen_ || !self->response_done_) return;  // more to come
      if (self->watching_) {                            // its handler goes on with maybe_next
        beast::error_code ignored;
        self->stream_.socket().cancel(ignored);
        return;
      }
      self->maybe_next();
    });
  }

  Server& srv_;
  beast::tcp_stream stream_;
  beast::flat_buffer buf_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::unique_ptr<Generation> gen_;
  uint64_t generation_ = 0;
  std::string out_, wbuf_;
  bool writing_ = false, watching_ = false;
  bool keep_alive_ = true, response_done_ = false;
  int64_t created_ = std::time(nullptr);
};

}  // namespace

void Server::accept() {
  acceptor.async_accept([this](beast::error_code ec, tcp::socket sock) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) {
      beast::error_code ignored;
      sock.set_option(tcp::no_delay(true), ignored);
      std::make_shared<Session>(*this, std::move(sock))->start();
    }
    accept();  // an error (too many open files) must not stop the server
  });
}

void Server::start_drain() {
  if (draining) return;
  draining = true;
  std::fprintf(stderr, "kiln serve: draining (%lld requests in flight, at most %.0f s)\n",
               (long long)active_generations, o.drain_timeout_s);
  beast::error_code ec;
  acceptor.close(ec);
  drain_deadline = Clock::now() + std::chrono::milliseconds(int64_t(o.drain_timeout_s * 1000));
  check_drain();
}

void Server::check_drain() {
  if (!draining || checking) return;  // aborting a generation calls back here
  checking = true;
  struct Done {
    bool& b;
    ~Done() { b = false; }
  } done{checking};
  const Clock::time_point now = Clock::now();
  if (now >= drain_deadline && active_generations > 0) {
    std::vector<Session*> all(sessions.begin(), sessions.end());
    for (Session* s : all) s->abort_generation();
  }
  bool busy = false;
  for (Session* s : sessions) busy = busy || s->busy();
  // Responses still being written get a little longer than the deadline (a client that reads nothing, none).
  if (busy && now < drain_deadline + std::chrono::seconds(2)) {
    drain_timer.expires_after(std::chrono::milliseconds(20));
    drain_timer.async_wait([this](beast::error_code ec) {
      if (!ec) check_drain();
    });
    return;
  }
  std::vector<Session*> all(sessions.begin(), sessions.end());
  for (Session* s : all) s->close();
  ioc.stop();
}

void serve(Executor& ex, const ModelContext& m, const ServeOptions& o) {
  // A connection is a file descriptor: 1,000 clients need more than the usual soft limit of 1,024.
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  Server srv(ex, m, o);
  beast::error_code ec;
  const auto addr = asio::ip::make_address(o.host, ec);
  if (ec) fail("--host {}: not an IP address", o.host);
  const tcp::endpoint ep(addr, uint16_t(o.port));
  srv.acceptor.open(ep.protocol(), ec);
  if (!ec) srv.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) srv.acceptor.bind(ep, ec);
  if (!ec) srv.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) fail("cannot listen on {}:{}: {}", o.host, o.port, ec.message());
  const int port = srv.acceptor.local_endpoint().port();
  if (!o.port_file.empty()) write_file_atomic(o.port_file, std::to_string(port) + "\n");
  std::fprintf(stderr, "kiln serve: %s on http://%s:%d (model '%s')\n", "listening", o.host.c_str(), port,
               m.model_name.c_str());
  srv.signals.async_wait([&srv](beast::error_code ec, int) {
    if (!ec) srv.start_drain();
  });
  srv.accept();
  // A handler that throws (it should not: requests are answered with their error) costs its connection, never
  // the server: the loop goes on.
  for (;;) {
    try {
      srv.ioc.run();
      break;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "kiln serve: error: %s\n", e.what());
    }
  }
  std::fprintf(stderr, "kiln serve: stopped\n");
}

}  // namespace kiln::serve
