// The client side of kiln bench --url: streams completions from an OpenAI-compatible server on one thread
// (Boost.Asio), sending each request at its arrival time under a concurrency cap, and times every SSE chunk.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace kiln::serve {

struct HttpBenchTiming {
  std::chrono::steady_clock::time_point sent, first, last;
  bool started = false;         // a chunk with tokens arrived
  int64_t tokens = 0;           // completion tokens (the final usage chunk)
  std::vector<double> gaps_ms;  // between consecutive chunks that carried tokens
  std::string error;            // non-empty: the request failed (HTTP status, an error event, a broken stream)
};

struct HttpBenchConfig {
  std::string host, port;  // from --url http://HOST:PORT
  std::string path = "/v1/completions";
  std::string api_key;            // sent as Authorization: Bearer KEY when set
  int64_t concurrency = 0;        // requests in flight at most (0: no limit)
  std::vector<double> arrival_s;  // per request: seconds after the start
};

// Sends bodies[i] (a JSON request with "stream": true and stream_options.include_usage) at arrival_s[i]; returns
// when every request has finished. *start and *end: when the first was sent, when the last finished.
std::vector<HttpBenchTiming> run_http_bench(const HttpBenchConfig& cfg, const std::vector<std::string>& bodies,
                                            std::chrono::steady_clock::time_point* start,
                                            std::chrono::steady_clock::time_point* end,
                                            const std::function<void(size_t done)>& progress);

// "http://HOST:PORT[/]" into host and port; throws kiln::Error naming --url otherwise.
void parse_http_url(const std::string& url, std::string* host, std::string* port);

}  // namespace kiln::serve
