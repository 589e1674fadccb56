// Loading (tokenizer.json, vocab.json + merges.txt, the configs beside them) and the public Tokenizer API.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/json_file.h"
#include "kiln/tokenizer.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/json_util.h"
#include "tokenizer/tokenizer_impl.h"

namespace fs = std::filesystem;

namespace kiln {
namespace tok {
namespace {

nlohmann::json read_json(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) fail("cannot open {}", p.string());
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    return parse_json(ss.str());
  } catch (const Error& e) {
    fail("{} is not valid JSON: {}", p.string(), e.what());
  }
}

// bos_token / eos_token in tokenizer_config.json: a string, an {"content": ...} object, or null.
std::optional<std::string> token_string(const nlohmann::json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  fail("tokenizer_config.json field \"{}\" must be a string or an object with \"content\"", key);
}

std::vector<int32_t> id_list(const nlohmann::json& g, const char* key, const fs::path& p) {
  auto it = g.find(key);
  if (it == g.end() || it->is_null()) return {};
  if (it->is_number_integer()) return {it->get<int32_t>()};
  if (it->is_array()) {
    std::vector<int32_t> v;
    for (const auto& e : *it) {
      if (!e.is_number_integer()) fail("{}: \"{}\" must be an integer or a list of integers", p.string(), key);
      v.push_back(e.get<int32_t>());
    }
    return v;
  }
  fail("{}: \"{}\" must be an integer or a list of integers", p.string(), key);
}

std::vector<AddedToken> read_added_tokens(const nlohmann::json& arr) {
  std::vector<AddedToken> v;
  if (arr.is_null()) return v;
  if (!arr.is_array()) fail("tokenizer.json \"added_tokens\" must be an array");
  for (const auto& e : arr) {
    AddedToken t;
    t.content = field<std::string>(e, "content", "added token");
    t.id = field_or(e, "id", -1);
    t.special = field_or(e, "special", false);
    t.lstrip = field_or(e, "lstrip", false);
    t.rstrip = field_or(e, "rstrip", false);
    t.normalized = field_or(e, "normalized", !t.special);
    t.single_word = field_or(e, "single_word", false);
    v.push_back(std::move(t));
  }
  return v;
}

void build_from_tokenizer_json(TokenizerImpl& t, const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("model"))
    fail("{} is not a tokenizer.json (no \"model\")", t.source);
  const nlohmann::json null;
  auto get = [&](const char* k) -> const nlohmann::json& {
    auto it = j.find(k);
    return it == j.end() ? null : *it;
  };
  t.normalizer = make_normalizer(get("normalizer"));
  t.model = BpeModel::from_json(get("model"));
  const nlohmann::json& pre = get("pre_tokenizer");
  const nlohmann::json& m = get("model");
  auto empty_or_null = [&](const char* k) {
    auto it = m.find(k);
    return it == m.end() || it->is_null() || (it->is_string() && it->get<std::string>().empty());
  };
  PreTokOptions opt;
  opt.byte_level_raw = ends_with_byte_level(pre) && empty_or_null("continuing_subword_prefix") &&
                       empty_or_null("end_of_word_suffix");
  if (opt.byte_level_raw) t.model->use_raw_bytes();
  t.pre_tokenizer = make_pre_tokenizer(pre, opt);
  t.post_processor = make_post_processor(get("post_processor"));
  t.decoder = make_decoder(get("decoder"));
  if (const auto& tr = get("truncation"); !tr.is_null()) {
    t.truncate_to = field<size_t>(tr, "max_length", "tokenizer.json truncation");
    t.truncate_left = field_or<std::string>(tr, "direction", "Right") == "Left";
  }
  if (const auto& pd = get("padding"); !pd.is_null()) {
    // Padding a single sequence to the longest of its batch does nothing; a fixed length would.
    const auto& strategy = pd.contains("strategy") ? pd["strategy"] : null;
    if (!(strategy.is_string() && strategy.get<std::string>() == "BatchLongest"))
      fail("{}: padding with strategy {} is not supported", t.source, strategy.dump());
  }
  const BpeModel& model = *t.model;
  t.added.add(read_added_tokens(get("added_tokens")), [&](const std::string& c) { return model.token_to_id(c); },
              model.vocab_size(), t.normalizer.get());
}

void read_configs(TokenizerImpl& t, const fs::path& dir) {
  nlohmann::json cfg = nlohmann::json::object(), gen = nlohmann::json::object();
  const fs::path cfg_path = dir / "tokenizer_config.json", gen_path = dir / "generation_config.json";
  bool have_cfg = fs::exists(cfg_path), have_gen = fs::exists(gen_path);
  if (have_cfg) cfg = read_json(cfg_path);
  if (have_gen) gen = read_json(gen_path);
  if (!cfg.is_object()) fail("{} must hold a JSON object", cfg_path.string());
  if (!gen.is_object()) fail("{} must hold a JSON object", gen_path.string());

  auto resolve = [&](const std::string& tok, const char* key) -> int32_t {
    auto id = t.token_to_id(tok);
    if (!id) fail("{}: {} '{}' is not in the vocabulary", cfg_path.string(), key, tok);
    return *id;
  };
  for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token",
                          "mask_token"}) {
    if (auto s = token_string(cfg, key)) t.template_context[key] = *s;
  }
  if (auto s = token_string(cfg, "bos_token")) t.bos_id = resolve(*s, "bos_token");
  if (auto s = token_string(cfg, "eos_token")) t.eos_id = resolve(*s, "eos_token");
  if (auto it = cfg.find("additional_special_tokens"); it != cfg.end() && it->is_array()) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& e : *it) {
      if (e.is_string()) list.push_back(e);
      else if (e.is_object() && e.contains("content")) list.push_back(e["content"]);
    }
    t.template_context["additional_special_tokens"] = list;
  }
  std::vector<int32_t> gen_bos = id_list(gen, "bos_token_id", gen_path);
  std::vector<int32_t> gen_eos = id_list(gen, "eos_token_id", gen_path);
  if (!t.bos_id && !gen_bos.empty()) t.bos_id = gen_bos.front();
  if (!t.eos_id && !gen_eos.empty()) t.eos_id = gen_eos.front();
  if (t.eos_id) t.stop_ids.push_back(*t.eos_id);
  for (int32_t id : gen_eos)
    if (std::find(t.stop_ids.begin(), t.stop_ids.end(), id) == t.stop_ids.end()) t.stop_ids.push_back(id);

  if (auto it = cfg.find("chat_template"); it != cfg.end() && !it->is_null()) {
    if (it->is_string()) {
      t.chat_template = it->get<std::string>();
    } else if (it->is_array()) {  // [{"name": "default", "template": ...}, ...]
      for (const auto& e : *it)
        if (e.is_object() && e.value("name", "") == "default" && e.contains("template"))
          t.chat_template = e["template"].get<std::string>();
      if (!t.chat_template) fail("{}: chat_template list has no \"default\" entry", cfg_path.string());
    } else {
      fail("{}: chat_template must be a string or a list of named templates", cfg_path.string());
    }
  } else if (fs::exists(dir / "chat_template.jinja")) {  // where newer transformers save it
    std::ifstream f(dir / "chat_template.jinja", std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    t.chat_template = ss.str();
  } else if (fs::exists(dir / "chat_template.json")) {
    nlohmann::json ct = read_json(dir / "chat_template.json");
    if (!ct.is_object() || !ct.contains("chat_template") || !ct["chat_template"].is_string())
      fail("{}: expected {{\"chat_template\": \"...\"}}", (dir / "chat_template.json").string());
    t.chat_template = ct["chat_template"].get<std::string>();
  }
}

}  // namespace

std::unique_ptr<TokenizerImpl> load_tokenizer(const std::string& path) {
  fs::path p(path);
  std::error_code ec;
  if (!fs::exists(p, ec)) fail("tokenizer path {} does not exist", path);
  if (fs::is_directory(p, ec)) {
    if (fs::exists(p / "tokenizer.json"))
      p = p / "tokenizer.json";
    else if (fs::exists(p / "vocab.json"))
      p = p / "vocab.json";
    else
      fail("folder {} holds neither tokenizer.json nor vocab.json", path);
  }
  auto t = std::make_unique<TokenizerImpl>();
  t->source = p.string();
  nlohmann::json j = read_json(p);
  // A vocab.json may well hold a token "model"; a tokenizer.json's "model" is an object.
  if (j.is_object() && j.contains("model") && j["model"].is_object()) {
    build_from_tokenizer_json(*t, j);
  } else if (j.is_object()) {
    // vocab.json (+ merges.txt): GPT-2's BPE with a ByteLevel pre-tokenizer (no prefix space) and decoder.
    j = nlohmann::json();
    t->model = BpeModel::from_files(p.string(), (p.parent_path() / "merges.txt").string());
    t->model->use_raw_bytes();
    PreTokOptions opt;
    opt.byte_level_raw = true;
    t->pre_tokenizer = make_pre_tokenizer(
        nlohmann::json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}, opt);
    t->decoder = make_decoder(nlohmann::json{{"type", "ByteLevel"}});
  } else {
    fail("{} is neither a tokenizer.json nor a vocab.json", p.string());
  }
  t->vocab_size = static_cast<size_t>(std::max(t->model->max_id(), t->added.max_id()) + 1);
  read_configs(*t, p.parent_path().empty() ? fs::path(".") : p.parent_path());
  return t;
}

}  // namespace tok

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string& path) {
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  t->impl_ = tok::load_tokenizer(path);
  return t;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> ids;
  impl_->encode(text, add_special_tokens, ids);
  return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> toks;
  toks.reserve(ids.size());
  for (int32_t id : ids) {
    const std::string* s = impl_->token_of(id);
    if (!s) fail("token id {} is not in the vocabulary of {} (size {})", id, impl_->source, impl_->vocab_size);
    if (skip_special_tokens && impl_->added.is_special(id)) continue;
    toks.push_back(*s);
  }
  return tok::decode_tokens(impl_->decoder, std::move(toks));
}

size_t Tokenizer::vocab_size() const { return impl_->vocab_size; }
std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const { return impl_->token_to_id(token); }
std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  const std::string* s = impl_->token_of(id);
  if (!s) return std::nullopt;
  return *s;
}
bool Tokenizer::is_special(int32_t id) const { return impl_->added.is_special(id); }
std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos_id; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos_id; }
const std::vector<int32_t>& Tokenizer::stop_ids() const { return impl_->stop_ids; }
bool Tokenizer::has_chat_template() const { return impl_->chat_template.has_value(); }

std::string Tokenizer::apply_chat_template(const std::vector<ChatMessage>& msgs, bool add_generation_prompt) const {
  if (!impl_->chat_template) fail("{} has no chat template (tokenizer_config.json \"chat_template\")", impl_->source);
  return apply_chat_template(msgs, add_generation_prompt, *impl_->chat_template);
}

std::string Tokenizer::apply_chat_template(const std::vector<ChatMessage>& msgs, bool add_generation_prompt,
                                           const std::string& template_source) const {
  nlohmann::json ctx = impl_->template_context;
  nlohmann::json messages = nlohmann::json::array();
  for (const ChatMessage& m : msgs) messages.push_back({{"role", m.role}, {"content", m.content}});
  ctx["messages"] = std::move(messages);
  ctx["add_generation_prompt"] = add_generation_prompt;
  ctx["tools"] = nullptr;
  ctx["documents"] = nullptr;
  return tok::render_chat_template(template_source, ctx);
}

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tok, bool skip_special_tokens)
    : tok_(&tok), skip_special_(skip_special_tokens),
      stream_(std::make_unique<tok::DecodeStream>(tok.impl().decoder)) {}
IncrementalDecoder::~IncrementalDecoder() = default;
IncrementalDecoder::IncrementalDecoder(IncrementalDecoder&&) noexcept = default;
IncrementalDecoder& IncrementalDecoder::operator=(IncrementalDecoder&&) noexcept = default;

std::string IncrementalDecoder::push(int32_t id) {
  const tok::TokenizerImpl& t = tok_->impl();
  const std::string* s = t.token_of(id);
  if (!s) fail("token id {} is not in the vocabulary of {} (size {})", id, t.source, t.vocab_size);
  if (skip_special_ && t.added.is_special(id)) return {};
  return stream_->push(*s);
}

std::string IncrementalDecoder::flush() { return stream_->finish(); }

}  // namespace kiln
