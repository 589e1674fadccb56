// OpenAI request bodies (/v1/completions, /v1/chat/completions) into executor requests, and the API's error object.
//
// Every field is checked here for its type and range as the OpenAI API documents it; what the executor checks
// (limits of the engine, the vocabulary, the KV pool) it checks again at enqueue, and the server reports those
// errors through api_error_from_executor. Unknown fields are refused, as the OpenAI API does.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "kiln/request.h"

namespace kiln {
class Tokenizer;
}

namespace kiln::serve {

// {"error": {"message", "type", "param", "code"}} with its HTTP status.
struct ApiError : std::runtime_error {
  int status = 400;
  std::string type = "invalid_request_error";
  std::string param;  // "" -> null
  std::string code;   // "" -> null
  ApiError(int status_, std::string message, std::string param_ = "", std::string code_ = "",
           std::string type_ = "invalid_request_error")
      : std::runtime_error(std::move(message)),
        status(status_),
        type(std::move(type_)),
        param(std::move(param_)),
        code(std::move(code_)) {}
  nlohmann::json to_json() const;
};

// A kiln::Error from Executor::enqueue as a 400 naming the OpenAI field its message names (max_new_tokens is
// max_tokens, input_ids the prompt or messages, ...).
ApiError api_error_from_executor(const std::string& message, bool chat);

// What the server knows of the engine and the model when it reads a request.
struct ModelContext {
  std::string model_name;
  const Tokenizer* tok = nullptr;  // required: prompts are text
  std::string chat_template;       // --chat-template; "": the tokenizer's
  int64_t vocab_size = 0;
  int64_t max_input_len = 0;
  int64_t max_seq_len = 0;
};

constexpr int kMaxN = 128;   // choices per request
constexpr int kMaxStop = 4;  // stop strings, as OpenAI
constexpr int kMaxCompletionTopLogprobs = 5;
constexpr int kMaxChatTopLogprobs = 20;

struct CompletionRequest {
  bool chat = false;
  std::vector<std::vector<int32_t>> prompts;  // token ids; choice i runs prompt i / n
  std::vector<std::string> prompt_texts;      // for echo
  int n = 1;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool echo = false;
  bool logprobs = false;          // report each token's log-probability
  int top_logprobs = 0;           // and its k most likely alternatives
  std::vector<std::string> stop;  // text stop sequences, trimmed from the output
  Request base;                   // everything but input_ids
};

// Throws ApiError naming the field. The request's end ids are the tokenizer's stop ids (unless ignore_eos) plus
// stop_token_ids.
CompletionRequest parse_completion_request(const nlohmann::json& body, const ModelContext& m, bool chat);

// The prompt of a chat request: the chat template rendered with the messages and the generation prompt.
std::string render_chat(const nlohmann::json& messages, const ModelContext& m);

}  // namespace kiln::serve
