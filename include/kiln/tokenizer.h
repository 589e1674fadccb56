// kiln::Tokenizer: Hugging Face tokenizer.json (and GPT-2 vocab.json + merges.txt) encoding and decoding,
// bit-exact with the `tokenizers` library; streaming decode; chat templates from tokenizer_config.json.
//
// Every unsupported component or malformed file is a kiln::Error naming it. A Tokenizer is immutable after
// load(); encode/decode may be called from several threads at once (each thread keeps its own word cache).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln {

struct ChatMessage {
  std::string role, content;
};

namespace tok {
struct TokenizerImpl;
class DecodeStream;
}  // namespace tok

class Tokenizer {
 public:
  // path: a tokenizer.json, a vocab.json (merges.txt beside it), or a folder holding either
  // (tokenizer_config.json / generation_config.json beside it are read when present).
  static std::unique_ptr<Tokenizer> load(const std::string& path);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Invalid UTF-8 in `text` is replaced by U+FFFD (one per maximal invalid subsequence, as Rust's
  // String::from_utf8_lossy and Python's errors="replace" do) before encoding.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // Throws kiln::Error for an id the vocabulary does not have.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;

  size_t vocab_size() const;  // model vocabulary plus added tokens (largest id + 1)
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(int32_t id) const;
  bool is_special(int32_t id) const;  // an added token marked special
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  const std::vector<int32_t>& stop_ids() const;  // eos + generation_config eos ids
  bool has_chat_template() const;
  // Renders the chat template (Jinja) with messages, add_generation_prompt, bos_token, eos_token and the
  // other special tokens of tokenizer_config.json. Throws kiln::Error when there is no template, when the
  // template uses something the interpreter does not support, or when it calls raise_exception().
  std::string apply_chat_template(const std::vector<ChatMessage>& msgs, bool add_generation_prompt) const;
  // The same with another template (kiln serve --chat-template), in this tokenizer's context (special tokens).
  std::string apply_chat_template(const std::vector<ChatMessage>& msgs, bool add_generation_prompt,
                                  const std::string& template_source) const;

  const tok::TokenizerImpl& impl() const { return *impl_; }

 private:
  Tokenizer();
  std::unique_ptr<tok::TokenizerImpl> impl_;
};

// Streaming decode: push() returns the text newly completed by a token (only whole UTF-8 characters; may
// be empty), flush() what remains at the end. The concatenation of every push() and the final flush()
// equals tok.decode(all ids) exactly.
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer& tok, bool skip_special_tokens = false);
  ~IncrementalDecoder();
  IncrementalDecoder(IncrementalDecoder&&) noexcept;
  IncrementalDecoder& operator=(IncrementalDecoder&&) noexcept;
  std::string push(int32_t id);  // text newly completed by this token (may be empty)
  std::string flush();           // whatever remains at the end of the stream

 private:
  const Tokenizer* tok_;
  bool skip_special_;
  std::unique_ptr<tok::DecodeStream> stream_;
};

}  // namespace kiln
