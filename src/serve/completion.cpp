#include "serve/completion.h"

#include <algorithm>
#include <cmath>

#include "io/json_file.h"

namespace kiln::serve {

using nlohmann::json;

std::string sse_event(const json& j) { return "data: " + dump_json(j) + "\n\n"; }

std::string StopMatcher::push(const std::string& piece) {
  if (stopped_) return {};
  held_ += piece;
  size_t first = std::string::npos;
  for (const auto& s : stops_) first = std::min(first, held_.find(s));
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, first);
    held_.clear();
    return out;
  }
  // Hold back the longest end of the text that begins some stop string.
  size_t keep = 0;
  for (const auto& s : stops_)
    for (size_t k = std::min(s.size() - 1, held_.size()); k > keep; --k)
      if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
        keep = k;
        break;
      }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopMatcher::finish() {
  std::string out = stopped_ ? std::string() : held_;
  held_.clear();
  return out;
}

Completion::Completion(CompletionRequest req, const ModelContext& m, std::string id, int64_t created)
    : req_(std::move(req)), m_(m), id_(std::move(id)), created_(created) {
  choices_.resize(req_.prompts.size() * size_t(req_.n));
  for (size_t i = 0; i < choices_.size(); ++i) {
    Choice& c = choices_[i];
    c.prompt = i / size_t(req_.n);
    c.dec = std::make_unique<IncrementalDecoder>(*m_.tok, true);
    c.stop = std::make_unique<StopMatcher>(req_.stop);
  }
}

Request Completion::executor_request(size_t i) const {
  Request r = req_.base;
  r.input_ids = req_.prompts[choices_[i].prompt];
  // n independent choices of one seeded request: seeds seed, seed + 1, ... (reproducible, and different).
  if (r.sampling.seed) r.sampling.seed = *r.sampling.seed + uint64_t(i % size_t(req_.n));
  return r;
}

json Completion::chunk(json choices) const {
  json j = {{"id", id_},
            {"object", req_.chat ? "chat.completion.chunk" : "text_completion"},
            {"created", created_},
            {"model", m_.model_name},
            {"choices", std::move(choices)}};
  if (req_.include_usage) j["usage"] = nullptr;
  return j;
}

json Completion::logprobs_json(const Choice& c, size_t from, size_t to, bool with_top) const {
  const int64_t V = m_.vocab_size;
  // Alternatives from the generation logits: log-softmax of the row the token was chosen from.
  auto top = [&](size_t j) {
    std::vector<std::pair<float, int32_t>> best;
    if (!with_top || req_.top_logprobs == 0 || (j + 1) * size_t(V) > c.generation_logits.size()) return best;
    const float* row = c.generation_logits.data() + j * size_t(V);
    const float mx = *std::max_element(row, row + V);
    double z = 0;
    for (int64_t v = 0; v < V; ++v) z += std::exp(double(row[v] - mx));
    const double lz = std::log(z) + mx;
    std::vector<int32_t> idx(static_cast<size_t>(V));
    for (int64_t v = 0; v < V; ++v) idx[size_t(v)] = int32_t(v);
    const size_t k = std::min<size_t>(size_t(req_.top_logprobs), size_t(V));
    std::partial_sort(idx.begin(), idx.begin() + long(k), idx.end(),
                      [&](int32_t a, int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
    for (size_t q = 0; q < k; ++q) best.push_back({float(double(row[idx[q]]) - lz), idx[q]});
    return best;
  };
  auto piece = [&](int32_t id) { return m_.tok->decode({id}, false); };
  if (req_.chat) {
    json content = json::array();
    for (size_t j = from; j < to; ++j) {
      auto bytes_of = [](const std::string& s) {
        json b = json::array();
        for (unsigned char ch : s) b.push_back(int(ch));
        return b;
      };
      json alts = json::array();
      for (auto [lp, id] : top(j))
        alts.push_back({{"token", piece(id)}, {"logprob", lp}, {"bytes", bytes_of(piece(id))}});
      const std::string t = piece(c.tokens[j]);
      content.push_back({{"token", t}, {"logprob", c.log_probs.at(j)}, {"bytes", bytes_of(t)}, {"top_logprobs", alts}});
    }
    return {{"content", content}, {"refusal", nullptr}};
  }
  json tokens = json::array(), lps = json::array(), offs = json::array(), tops = json::array();
  for (size_t j = from; j < to; ++j) {
    tokens.push_back(piece(c.tokens[j]));
    lps.push_back(c.log_probs.at(j));
    offs.push_back(c.offsets.at(j));
    json alt = json::object();
    for (auto [lp, id] : top(j)) alt[piece(id)] = lp;
    tops.push_back(alt);
  }
  return {{"tokens", tokens},
          {"token_logprobs", lps},
          {"top_logprobs", req_.top_logprobs ? tops : json(nullptr)},
          {"text_offset", offs}};
}

json Completion::choice_delta(size_t i, const std::string& text, const char* finish, bool with_logprobs) {
  Choice& c = choices_[i];
  json ch = {{"index", i}};
  json lp = nullptr;
  if (with_logprobs && req_.logprobs) {
    lp = logprobs_json(c, c.reported_tokens, c.tokens.size(), false);
    c.reported_tokens = c.tokens.size();
  }
  if (req_.chat) {
    json delta = json::object();
    if (!text.empty() || !finish) delta["content"] = text;
    ch["delta"] = delta;
  } else {
    ch["text"] = text;
  }
  ch["logprobs"] = lp;
  ch["finish_reason"] = finish ? json(finish) : json(nullptr);
  return ch;
}

std::string Completion::on_response(size_t i, const Response& r, bool* cancel) {
  *cancel = false;
  Choice& c = choices_.at(i);
  if (r.is_final) {
    if (c.final_seen) return {};
    c.final_seen = true;
    ++finished_;
    if (!r.generation_logits.empty()) c.generation_logits = r.generation_logits;
  }
  if (c.ended) return {};
  std::string out;
  if (!r.output_ids.empty()) {
    const auto& ids = r.output_ids[0];
    for (size_t j = 0; j < ids.size(); ++j) {
      if (c.stop->stopped()) break;  // tokens after a stop string are not part of the completion
      c.tokens.push_back(ids[j]);
      if (req_.logprobs)
        c.log_probs.push_back(!r.log_probs.empty() && j < r.log_probs[0].size() ? r.log_probs[0][j] : 0.0f);
      c.offsets.push_back(c.text.size());
      c.text += c.stop->push(c.dec->push(ids[j]));
    }
  }
  if (r.is_final && !r.error.empty()) {
    c.ended = true;
    c.finish = "error";
    error_ = r.error;
    if (req_.stream) out += sse_event(ApiError(500, r.error, "", "generation_failed", "server_error").to_json());
    return out;
  }
  const bool ends = r.is_final || c.stop->stopped();
  if (ends) {
    if (!c.stop->stopped()) c.text += c.stop->push(c.dec->flush()) + c.stop->finish();
    const FinishReason fr = r.finish_reasons.empty() ? FinishReason::Stop : r.finish_reasons[0];
    c.finish = c.stop->stopped() || fr != FinishReason::Length ? "stop" : "length";
    c.ended = true;
    *cancel = !r.is_final;  // a stop string ended it: the executor request still runs
  }
  if (req_.stream) {
    const std::string delta = c.text.substr(c.sent);
    c.sent = c.text.size();
    // A chunk per executor response that brought tokens, even when they complete no character yet (its text is
    // then empty): clients time tokens by chunks (kiln bench --url).
    if (ends || !delta.empty() || (!r.output_ids.empty() && !r.output_ids[0].empty()))
      out += sse_event(chunk(json::array({choice_delta(i, delta, ends ? c.finish.c_str() : nullptr, true)})));
  }
  return out;
}

std::string Completion::stream_start() const {
  std::string out;
  for (size_t i = 0; i < choices_.size(); ++i) {
    json ch = {{"index", i}};
    if (req_.chat) {
      ch["delta"] = {{"role", "assistant"}, {"content", ""}};
    } else if (req_.echo) {
      ch["text"] = req_.prompt_texts[choices_[i].prompt];
    } else {
      continue;
    }
    ch["logprobs"] = nullptr;
    ch["finish_reason"] = nullptr;
    out += sse_event(chunk(json::array({ch})));
  }
  return out;
}

json Completion::usage() const {
  const int64_t p = prompt_tokens(), c = completion_tokens();
  return {{"prompt_tokens", p}, {"completion_tokens", c}, {"total_tokens", p + c}};
}

std::string Completion::stream_end() const {
  std::string out;
  if (req_.include_usage) {
    json j = chunk(json::array());
    j["usage"] = usage();
    out += sse_event(j);
  }
  return out + "data: [DONE]\n\n";
}

json Completion::body() const {
  json choices = json::array();
  for (size_t i = 0; i < choices_.size(); ++i) {
    const Choice& c = choices_[i];
    json ch = {{"index", i}};
    const json lp = req_.logprobs ? logprobs_json(c, 0, c.tokens.size(), true) : json(nullptr);
    if (req_.chat) {
      ch["message"] = {{"role", "assistant"}, {"content", c.text}, {"refusal", nullptr}};
    } else {
      ch["text"] = req_.echo ? req_.prompt_texts[c.prompt] + c.text : c.text;
    }
    ch["logprobs"] = lp;
    ch["finish_reason"] = c.finish;
    choices.push_back(ch);
  }
  return {{"id", id_},           {"object", req_.chat ? "chat.completion" : "text_completion"},
          {"created", created_}, {"model", m_.model_name},
          {"choices", choices},  {"usage", usage()}};
}

int64_t Completion::prompt_tokens() const {
  int64_t n = 0;
  for (const auto& p : req_.prompts) n += int64_t(p.size());
  return n;
}

int64_t Completion::completion_tokens() const {
  int64_t n = 0;
  for (const auto& c : choices_) n += int64_t(c.tokens.size());
  return n;
}

std::vector<std::string> Completion::finish_reasons() const {
  std::vector<std::string> out;
  for (const auto& c : choices_) out.push_back(c.finish);
  return out;
}

}  // namespace kiln::serve
