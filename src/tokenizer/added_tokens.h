// Added tokens (tokenizer.json's "added_tokens"): found in the raw text before normalization (tokens with
// normalized: false) or in the normalized text (normalized: true), leftmost-longest first, with the
// single_word, lstrip and rstrip rules of the tokenizers library.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kiln::tok {

class Normalizer;

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false, lstrip = false, rstrip = false, normalized = true, single_word = false;
};

struct AddedSplit {
  size_t start, end;
  int32_t id;  // -1: plain text
};

class AddedVocab {
 public:
  // Adds tokens as the library does: an id comes from an earlier added token of the same content, else
  // from the model vocabulary (model_id), else the next free id after the model's.
  template <typename ModelId>
  void add(const std::vector<AddedToken>& tokens, ModelId model_id, size_t model_vocab_size,
           const Normalizer* normalizer);

  // Splits `s` into plain-text and token parts covering it (the library's find_matches).
  void find(std::string_view s, bool normalized_set, std::vector<AddedSplit>& out) const;

  std::optional<int32_t> token_to_id(std::string_view content) const;
  const AddedToken* by_id(int32_t id) const;
  bool is_special(int32_t id) const;
  int32_t max_id() const;
  bool empty() const { return by_id_.empty(); }
  bool has_normalized() const { return !tries_[1].tokens.empty(); }

 private:
  struct Trie {
    struct Node {
      std::vector<std::pair<unsigned char, int32_t>> kids;
      int32_t token = -1;  // index into `tokens`
    };
    std::vector<Node> nodes{1};
    std::vector<int32_t> tokens;  // ids
    bool first[256] = {};
    void insert(std::string_view pattern, int32_t id);
    // Longest pattern starting at s[i]; returns its length (0: none) and sets id.
    size_t longest_at(std::string_view s, size_t i, int32_t& id) const;
  };
  void add_resolved(std::vector<AddedToken> tokens, const Normalizer* normalizer);
  void rebuild(const Normalizer* normalizer);

  std::unordered_map<std::string, int32_t> by_content_;
  std::unordered_map<int32_t, AddedToken> by_id_;
  std::vector<std::string> order_;  // special tokens first, then the others, each in order of addition
  Trie tries_[2];                   // [0]: non-normalized tokens; [1]: normalized tokens (normalized form)
};

template <typename ModelId>
void AddedVocab::add(const std::vector<AddedToken>& tokens, ModelId model_id, size_t model_vocab_size,
                     const Normalizer* normalizer) {
  std::vector<AddedToken> resolved;
  int32_t max_added = -1;
  for (const auto& [c, id] : by_content_) max_added = std::max(max_added, id);
  for (AddedToken t : tokens) {
    if (t.content.empty()) continue;
    if (auto it = by_content_.find(t.content); it != by_content_.end()) {
      t.id = it->second;
    } else if (std::optional<int32_t> mid = model_id(t.content)) {
      t.id = *mid;
    } else if (max_added < 0) {
      t.id = static_cast<int32_t>(model_vocab_size);
    } else {
      t.id = (max_added >= static_cast<int32_t>(model_vocab_size) || model_vocab_size == 0)
                 ? max_added + 1
                 : static_cast<int32_t>(model_vocab_size);
    }
    by_content_[t.content] = t.id;
    max_added = std::max(max_added, t.id);
    resolved.push_back(std::move(t));
  }
  add_resolved(std::move(resolved), normalizer);
}

}  // namespace kiln::tok
