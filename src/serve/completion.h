// One OpenAI completion or chat completion in progress: its choices (one executor request each), their text as
// it is decoded, stop strings matched across token boundaries and trimmed, and the bodies the client receives
// (Server-Sent Events chunks while streaming, or one JSON object at the end).
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kiln/executor.h"
#include "kiln/tokenizer.h"
#include "serve/openai_request.h"

namespace kiln::serve {

// Text that may still be followed by a stop string is held back; the rest is released. push() returns the text
// released (the stop string and what follows it never are); stopped() once a stop string was seen.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  std::string push(const std::string& piece);
  std::string finish();  // the end of the text: what was held back
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

class Completion {
 public:
  Completion(CompletionRequest req, const ModelContext& m, std::string id, int64_t created);
  const CompletionRequest& request() const { return req_; }
  size_t num_choices() const { return choices_.size(); }
  // The executor request of choice i (its prompt, its seed: seed + i when the request has one).
  Request executor_request(size_t i) const;

  // One executor response of choice i. Streaming: returns the SSE events it makes ("data: {...}\n\n"), possibly
  // none. Sets *cancel when the choice has met a stop string (its executor request should be cancelled).
  std::string on_response(size_t i, const Response& r, bool* cancel);
  // Every choice's executor request has sent its final response.
  bool done() const { return finished_ == choices_.size(); }
  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }

  std::string stream_start() const;  // chat: each choice's first chunk (the assistant role); echo: the prompt
  std::string stream_end() const;    // the usage chunk (stream_options.include_usage), then data: [DONE]
  nlohmann::json body() const;       // the whole response (not streaming), once done()

  int64_t prompt_tokens() const;
  int64_t completion_tokens() const;
  // Finish reasons of the choices ("stop", "length"; "" while running, "error" on failure).
  std::vector<std::string> finish_reasons() const;

 private:
  struct Choice {
    size_t prompt = 0;
    std::unique_ptr<IncrementalDecoder> dec;
    std::unique_ptr<StopMatcher> stop;
    std::string text;
    std::vector<int32_t> tokens;
    std::vector<float> log_probs;
    std::vector<size_t> offsets;  // each token's text offset (completions logprobs)
    std::vector<float> generation_logits;
    size_t reported_tokens = 0;  // tokens whose logprobs were streamed
    size_t sent = 0;             // bytes of text streamed
    std::string finish;
    bool ended = false;       // the text is complete (a finish reason, or an error)
    bool final_seen = false;  // the executor's final response arrived
  };
  nlohmann::json chunk(nlohmann::json choices) const;
  nlohmann::json choice_delta(size_t i, const std::string& text, const char* finish, bool with_logprobs);
  nlohmann::json logprobs_json(const Choice& c, size_t from, size_t to, bool with_top) const;
  nlohmann::json usage() const;

  CompletionRequest req_;
  const ModelContext& m_;
  std::string id_;
  int64_t created_;
  std::vector<Choice> choices_;
  size_t finished_ = 0;
  std::string error_;
};

// Server-Sent Events framing of one JSON value.
std::string sse_event(const nlohmann::json& j);

}  // namespace kiln::serve
