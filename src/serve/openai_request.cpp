#include "serve/openai_request.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"
#include "io/json_value.h"
#include "kiln/tokenizer.h"

namespace kiln::serve {

nlohmann::json ApiError::to_json() const {
  auto str_or_null = [](const std::string& s) { return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s); };
  return {{"error", {{"message", what()}, {"type", type}, {"param", str_or_null(param)}, {"code", str_or_null(code)}}}};
}

ApiError api_error_from_executor(const std::string& message, bool chat) {
  // The executor names its own fields; the client knows them by their OpenAI names.
  static const std::pair<const char*, const char*> names[] = {{"max_new_tokens", "max_tokens"},
                                                              {"prompt", ""},
                                                              {"input_ids", ""},
                                                              {"temperature", "temperature"},
                                                              {"top_k", "top_k"},
                                                              {"top_p", "top_p"},
                                                              {"min_p", "min_p"},
                                                              {"stop_sequences", "stop"},
                                                              {"bad_words", "logit_bias"},
                                                              {"end_id", "stop_token_ids"},
                                                              {"num_return_sequences", "n"},
                                                              {"repetition_penalty", "repetition_penalty"},
                                                              {"presence_penalty", "presence_penalty"},
                                                              {"frequency_penalty", "frequency_penalty"},
                                                              {"KV", "max_tokens"}};
  size_t best = std::string::npos;
  std::string param;
  for (auto [k, v] : names) {
    const size_t at = message.find(k);
    if (at < best) {
      best = at;
      param = *v ? v : (chat ? "messages" : "prompt");
    }
  }
  return ApiError(400, message, param);
}

namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& param, const std::string& message, const std::string& code = "") {
  throw ApiError(400, fmt::format("'{}': {}", param, message), param, code);
}

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    default:
      return "a number";
  }
}

bool get_bool(const json& v, const char* name) {
  if (!v.is_boolean()) bad(name, fmt::format("expected a boolean, got {}", type_name(v)));
  return v.get<bool>();
}

int64_t get_int(const json& v, const char* name, int64_t lo, int64_t hi) {
  int64_t x;
  if (!json_as_integer(v, &x)) bad(name, fmt::format("expected an integer, got {}", brief_json(v)));
  if (x < lo || x > hi) bad(name, fmt::format("{} is out of range: must be in [{}, {}]", x, lo, hi));
  return x;
}

float get_float(const json& v, const char* name, double lo, double hi) {
  float x;
  if (!json_as_float(v, &x)) bad(name, fmt::format("expected a number, got {}", brief_json(v)));
  if (!(x >= lo && x <= hi)) bad(name, fmt::format("{} is out of range: must be in [{}, {}]", x, lo, hi));
  return x;
}

std::string get_string(const json& v, const char* name) {
  if (!v.is_string()) bad(name, fmt::format("expected a string, got {}", type_name(v)));
  return v.get<std::string>();
}

// A list of token ids, each inside the vocabulary.
std::vector<int32_t> token_list(const json& v, const char* name, const ModelContext& m) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < v.size(); ++i) {
    int32_t x;
    if (!json_as_integer(v[i], &x)) bad(name, fmt::format("element {} is not a token id: {}", i, brief_json(v[i])));
    if (x < 0 || x >= m.vocab_size)
      bad(name, fmt::format("token id {} is outside the vocabulary (size {})", x, m.vocab_size));
    ids.push_back(x);
  }
  return ids;
}

void check_prompt_len(const std::vector<int32_t>& ids, const char* name, const ModelContext& m) {
  if (ids.empty()) bad(name, "the prompt is empty");
  if (int64_t(ids.size()) > m.max_input_len)
    bad(name,
        fmt::format("the prompt has {} tokens, more than the engine's max_input_len {}", ids.size(), m.max_input_len),
        "context_length_exceeded");
}

// prompt: a string, a list of strings, a list of token ids, or a list of lists of token ids.
void read_prompts(const json& v, const ModelContext& m, CompletionRequest& c) {
  auto add_text = [&](const std::string& s) {
    c.prompts.push_back(m.tok->encode(s, true));
    c.prompt_texts.push_back(s);
  };
  auto add_ids = [&](const json& a) {
    c.prompts.push_back(token_list(a, "prompt", m));
    c.prompt_texts.push_back(m.tok->decode(c.prompts.back(), true));
  };
  if (v.is_string()) {
    add_text(v.get<std::string>());
  } else if (v.is_array() && !v.empty()) {
    if (v[0].is_number()) {
      add_ids(v);
    } else {
      for (const auto& x : v) {
        if (x.is_string())
          add_text(x.get<std::string>());
        else if (x.is_array() && !x.empty())
          add_ids(x);
        else
          bad("prompt", "expected a string, a list of strings, a list of token ids or a list of such lists");
      }
    }
  } else {
    bad("prompt", v.is_array() ? "the list is empty"
                               : "expected a string, a list of strings, a list of token ids or a list of such lists");
  }
  for (const auto& p : c.prompts) check_prompt_len(p, "prompt", m);
}

std::vector<ChatMessage> read_messages(const json& v) {
  if (!v.is_array()) bad("messages", fmt::format("expected an array, got {}", type_name(v)));
  if (v.empty()) bad("messages", "the list is empty");
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < v.size(); ++i) {
    const json& x = v[i];
    const std::string at = fmt::format("messages[{}]", i);
    if (!x.is_object()) bad(at, fmt::format("expected an object, got {}", type_name(x)));
    if (!x.contains("role")) bad(at + ".role", "missing");
    const std::string role = get_string(x["role"], (at + ".role").c_str());
    if (role != "system" && role != "user" && role != "assistant" && role != "developer")
      bad(at + ".role", fmt::format("'{}' is not one of system, developer, user, assistant", role));
    if (!x.contains("content") || x["content"].is_null()) bad(at + ".content", "missing");
    const json& content = x["content"];
    std::string text;
    if (content.is_string()) {
      text = content.get<std::string>();
    } else if (content.is_array()) {
      for (size_t k = 0; k < content.size(); ++k) {
        const json& part = content[k];
        const std::string pat = fmt::format("{}.content[{}]", at, k);
        if (!part.is_object()) bad(pat, fmt::format("expected an object, got {}", type_name(part)));
        if (!part.contains("type") || !part["type"].is_string() || part["type"] != "text")
          bad(pat + ".type", "only content parts of type 'text' are supported");
        if (!part.contains("text")) bad(pat + ".text", "missing");
        text += get_string(part["text"], (pat + ".text").c_str());
      }
    } else {
      bad(at + ".content", fmt::format("expected a string or an array of content parts, got {}", type_name(content)));
    }
    for (auto& [k, unused] : x.items())
      if (k != "role" && k != "content" && k != "name") bad(at + "." + k, "unknown field");
    out.push_back({role, std::move(text)});
  }
  return out;
}

std::vector<std::string> read_stop(const json& v) {
  if (v.is_null()) return {};
  if (v.is_string()) {
    if (v.get<std::string>().empty()) bad("stop", "a stop sequence must not be empty");
    return {v.get<std::string>()};
  }
  if (!v.is_array()) bad("stop", fmt::format("expected a string or an array of strings, got {}", type_name(v)));
  if (v.size() > size_t(kMaxStop)) bad("stop", fmt::format("at most {} stop sequences", kMaxStop));
  std::vector<std::string> out;
  for (const auto& x : v) {
    if (!x.is_string()) bad("stop", fmt::format("expected strings, got {}", type_name(x)));
    if (x.get<std::string>().empty()) bad("stop", "a stop sequence must not be empty");
    out.push_back(x.get<std::string>());
  }
  return out;
}

// logit_bias {"token id": bias}: -100 bans the token (a bad word); other biases are not supported by the sampler.
void read_logit_bias(const json& v, const ModelContext& m, Request& r) {
  if (v.is_null()) return;
  if (!v.is_object()) bad("logit_bias", fmt::format("expected an object, got {}", type_name(v)));
  for (auto& [key, bias] : v.items()) {
    char* end = nullptr;
    const long id = std::strtol(key.c_str(), &end, 10);
    if (key.empty() || *end != '\0' || id < 0 || id >= m.vocab_size)
      bad("logit_bias", fmt::format("key '{}' is not a token id of the vocabulary (size {})", key, m.vocab_size));
    const float b = get_float(bias, "logit_bias", -100, 100);
    if (b == -100)
      r.bad_words.push_back({int32_t(id)});
    else if (b != 0)
      bad("logit_bias", fmt::format("bias {} for token {}: only -100 (never generate it) is supported", b, id));
  }
}

}  // namespace

std::string render_chat(const json& messages, const ModelContext& m) {
  const auto msgs = read_messages(messages);
  try {
    if (!m.chat_template.empty()) return m.tok->apply_chat_template(msgs, true, m.chat_template);
    if (!m.tok->has_chat_template())
      throw ApiError(400, "the model's tokenizer has no chat template (start kiln serve with --chat-template FILE)",
                     "messages", "no_chat_template");
    return m.tok->apply_chat_template(msgs, true);
  } catch (const Error& e) {  // the template refused the messages (raise_exception)
    throw ApiError(400, fmt::format("the chat template: {}", e.what()), "messages");
  }
}

CompletionRequest parse_completion_request(const json& body, const ModelContext& m, bool chat) {
  if (!body.is_object()) throw ApiError(400, fmt::format("the body must be a JSON object, got {}", type_name(body)));
  CompletionRequest c;
  c.chat = chat;
  Request& r = c.base;
  SamplingParams& s = r.sampling;
  const char* input = chat ? "messages" : "prompt";
  if (!body.contains("model")) bad("model", "missing");
  const std::string model = get_string(body["model"], "model");
  if (model != m.model_name)
    throw ApiError(404, fmt::format("the model '{}' does not exist (this server has '{}')", model, m.model_name),
                   "model", "model_not_found");
  if (!body.contains(input)) bad(input, "missing");
  std::optional<int64_t> max_tokens;
  std::optional<json> stream_options;
  bool ignore_eos = false;
  std::vector<int32_t> stop_token_ids;
  bool logprobs_flag = false;
  std::optional<int64_t> top_logprobs;
  for (auto& [key, v] : body.items()) {
    const char* k = key.c_str();
    if (key == "model") continue;
    if (key == "prompt" && !chat)
      read_prompts(v, m, c);
    else if (key == "messages" && chat) {
      const std::string text = render_chat(v, m);
      c.prompts.push_back(m.tok->encode(text, false));  // the template carries its special tokens
      c.prompt_texts.push_back(text);
      check_prompt_len(c.prompts.back(), "messages", m);
    } else if (key == "max_tokens" || (key == "max_completion_tokens" && chat)) {
      if (!v.is_null()) max_tokens = get_int(v, k, 1, m.max_seq_len);
    } else if (key == "temperature") {
      if (!v.is_null()) s.temperature = get_float(v, k, 0, 2);
    } else if (key == "top_p") {
      if (!v.is_null()) s.top_p = get_float(v, k, 0, 1);
      if (!(s.top_p > 0)) bad(k, "must be greater than 0");
    } else if (key == "n") {
      if (!v.is_null()) c.n = int(get_int(v, k, 1, kMaxN));
    } else if (key == "stream") {
      if (!v.is_null()) c.stream = get_bool(v, k);
    } else if (key == "stream_options") {
      if (!v.is_null()) stream_options = v;
    } else if (key == "stop")
      c.stop = read_stop(v);
    else if (key == "seed") {
      if (!v.is_null()) s.seed = uint64_t(get_int(v, k, INT64_MIN, INT64_MAX));
    } else if (key == "presence_penalty") {
      if (!v.is_null()) s.presence_penalty = get_float(v, k, -2, 2);
    } else if (key == "frequency_penalty") {
      if (!v.is_null()) s.frequency_penalty = get_float(v, k, -2, 2);
    } else if (key == "logit_bias")
      read_logit_bias(v, m, r);
    else if (key == "logprobs") {
      if (v.is_null()) continue;
      if (chat) {
        logprobs_flag = get_bool(v, k);
      } else {
        top_logprobs = get_int(v, k, 0, kMaxCompletionTopLogprobs);
        logprobs_flag = true;
      }
    } else if (key == "top_logprobs" && chat) {
      if (!v.is_null()) top_logprobs = get_int(v, k, 0, kMaxChatTopLogprobs);
    } else if (key == "echo" && !chat) {
      if (!v.is_null()) c.echo = get_bool(v, k);
    } else if (key == "user") {
      if (!v.is_null()) get_string(v, k);
    } else if (key == "top_k") {
      if (!v.is_null()) s.top_k = int32_t(get_int(v, k, -1, m.vocab_size));
      if (s.top_k < 0) s.top_k = 0;
    } else if (key == "min_p") {
      if (!v.is_null()) s.min_p = get_float(v, k, 0, 1);
    } else if (key == "repetition_penalty") {
      if (!v.is_null()) s.repetition_penalty = get_float(v, k, 0, 1e6);
      if (!(s.repetition_penalty > 0)) bad(k, "must be greater than 0");
    } else if (key == "ignore_eos") {
      if (!v.is_null()) ignore_eos = get_bool(v, k);
    } else if (key == "stop_token_ids") {
      if (v.is_null()) continue;
      if (!v.is_array()) bad(k, fmt::format("expected an array of token ids, got {}", type_name(v)));
      stop_token_ids = token_list(v, k, m);
    } else if (key == "tools" || key == "functions" || key == "tool_choice" || key == "function_call" ||
               key == "response_format" || key == "suffix" || key == "best_of" || key == "audio" ||
               key == "modalities" || key == "prediction") {
      if (!v.is_null()) bad(k, "is not supported by kiln serve", "unsupported_parameter");
    } else {
      bad(k, "unknown field (unrecognized request argument)", "unknown_parameter");
    }
  }
  if (stream_options) {
    if (!c.stream) bad("stream_options", "only allowed when 'stream' is true");
    if (!stream_options->is_object())
      bad("stream_options", fmt::format("expected an object, got {}", type_name(*stream_options)));
    for (auto& [key, v] : stream_options->items()) {
      if (key == "include_usage")
        c.include_usage = get_bool(v, "stream_options.include_usage");
      else if (key != "continuous_usage_stats")
        bad("stream_options." + key, "unknown field");
    }
  }
  if (top_logprobs && chat && !logprobs_flag) bad("top_logprobs", "needs 'logprobs': true");
  c.logprobs = logprobs_flag;
  c.top_logprobs = int(top_logprobs.value_or(0));
  if (c.top_logprobs > 0 && c.stream)
    bad(chat ? "top_logprobs" : "logprobs", "alternatives (top logprobs) are not supported with stream yet");
  if (c.echo && c.logprobs) bad("echo", "echo with logprobs is not supported (prompt log-probabilities)");
  // Defaults: 16 tokens for completions (as OpenAI), the rest of the context for chat.
  int64_t longest = 0;
  for (const auto& p : c.prompts) longest = std::max<int64_t>(longest, int64_t(p.size()));
  if (max_tokens) {
    if (longest + *max_tokens > m.max_seq_len)
      bad(body.contains("max_tokens") ? "max_tokens" : "max_completion_tokens",
          fmt::format("the prompt ({} tokens) + {} = {} exceeds the engine's max_seq_len {}", longest, *max_tokens,
                      longest + *max_tokens, m.max_seq_len),
          "context_length_exceeded");
    r.max_new_tokens = int32_t(*max_tokens);
  } else {
    r.max_new_tokens =
        int32_t(std::max<int64_t>(1, chat ? m.max_seq_len - longest : std::min<int64_t>(16, m.max_seq_len - longest)));
  }
  s.ignore_eos = ignore_eos;
  std::vector<int32_t> ends;
  if (!ignore_eos) ends = m.tok->stop_ids();
  ends.insert(ends.end(), stop_token_ids.begin(), stop_token_ids.end());
  if (ends.empty()) {
    r.end_id = -1;
  } else {
    r.end_id = ends[0];
    for (size_t i = 1; i < ends.size(); ++i) r.stop_sequences.push_back({ends[i]});
  }
  r.return_log_probs = c.logprobs;
  r.return_generation_logits = c.top_logprobs > 0;
  r.streaming = true;  // stop strings are matched as the text grows, so that a stopped choice is cancelled at once
  return c;
}

}  // namespace kiln::serve
