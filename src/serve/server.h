// kiln serve: an OpenAI-compatible HTTP server over one Executor.
//
// One thread runs Boost.Asio's event loop for every connection (no thread per connection); the executor's loop
// thread hands each response to it (Executor::enqueue with a callback, then asio::post), where the text is
// decoded and written. See docs/ARCHITECTURE.md, "kiln serve".
#pragma once
#include <cstdint>
#include <string>

#include "serve/openai_request.h"

namespace kiln {
class Executor;
}

namespace kiln::serve {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8000;                   // 0: any free port (written to port_file)
  std::string port_file;             // when set: the bound port is written here once the server listens
  std::string api_key;               // when set: /v1/* needs "Authorization: Bearer KEY"
  int64_t max_queued = 1024;         // choices waiting for admission before requests get 429
  int64_t max_body_bytes = 8 << 20;  // larger bodies get 413
  double drain_timeout_s = 30;       // SIGTERM: in-flight requests get this long to finish
  double idle_timeout_s = 60;        // a connection that sends nothing for this long is closed
};

// Serves until SIGTERM or SIGINT, then stops accepting, lets in-flight requests finish (cancelling those still
// running at the drain deadline) and returns.
void serve(Executor& ex, const ModelContext& m, const ServeOptions& o);

}  // namespace kiln::serve
