// The parts a loaded Tokenizer is made of (internal).
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/decoders.h"
#include "tokenizer/model_bpe.h"
#include "tokenizer/normalizers.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizers.h"

namespace kiln::tok {

struct TokenizerImpl {
  std::string source;  // the file it was loaded from
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<BpeModel> model;
  std::unique_ptr<PostProcessor> post_processor;
  DecoderSpec decoder;
  AddedVocab added;
  size_t vocab_size = 0;
  // tokenizer.json "truncation" (single sequence): keep at most this many ids, special tokens included.
  std::optional<size_t> truncate_to;
  bool truncate_left = false;

  // From tokenizer_config.json / generation_config.json.
  std::optional<int32_t> bos_id, eos_id;
  std::vector<int32_t> stop_ids;
  std::optional<std::string> chat_template;
  nlohmann::json template_context = nlohmann::json::object();  // bos_token, eos_token, ... as strings

  std::optional<int32_t> token_to_id(std::string_view t) const {
    if (auto a = added.token_to_id(t)) return a;
    return model->token_to_id(t);
  }
  // The token string of an id (added tokens first); nullptr when there is none.
  const std::string* token_of(int32_t id) const {
    if (const AddedToken* a = added.by_id(id)) return &a->content;
    return model->id_to_token(id);
  }
  void encode(std::string_view text, bool add_special_tokens, std::vector<int32_t>& out) const;

 private:
  void encode_segment(std::string_view seg, bool at_origin, std::vector<int32_t>& out) const;
  void encode_normalized(std::string_view s, bool at_origin, std::vector<int32_t>& out) const;
};

// Loads tokenizer.json (or vocab.json + merges.txt) and the configs beside it.
std::unique_ptr<TokenizerImpl> load_tokenizer(const std::string& path);

}  // namespace kiln::tok
