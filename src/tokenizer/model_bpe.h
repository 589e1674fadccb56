// The BPE model of tokenizer.json (and of GPT-2's vocab.json + merges.txt): merges by rank, lowest first
// and leftmost on ties; ignore_merges; byte_fallback; unk_token with fuse_unk; continuing_subword_prefix
// and end_of_word_suffix. Results are cached per word in a per-thread cache.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/flat_map.h"

namespace kiln::tok {

struct SvHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept;
};
using Vocab = std::unordered_map<std::string, int32_t, SvHash, std::equal_to<>>;

// Open-addressing map from a pair of ids to (rank, merged id).
class MergeMap {
 public:
  void build(const std::vector<std::pair<uint64_t, std::pair<uint32_t, int32_t>>>& entries);
  // Returns false when the pair has no merge.
  bool find(int32_t a, int32_t b, uint32_t& rank, int32_t& id) const {
    if (slots_.empty()) return false;
    uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
    size_t h = hash(key) & mask_;
    while (true) {
      const Slot& s = slots_[h];
      if (s.key == key) {
        rank = s.rank;
        id = s.id;
        return true;
      }
      if (s.key == kEmpty) return false;
      h = (h + 1) & mask_;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~0ull;
  static size_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return static_cast<size_t>(k);
  }
  struct Slot {
    uint64_t key = kEmpty;
    uint32_t rank = 0;
    int32_t id = 0;
  };
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

class BpeModel {
 public:
  static std::unique_ptr<BpeModel> from_json(const nlohmann::json& model);
  static std::unique_ptr<BpeModel> from_files(const std::string& vocab_json, const std::string& merges_txt);

  // Switches to raw-byte words: every vocabulary entry spelled in GPT-2's byte-level alphabet is re-keyed
  // by its bytes, so that a ByteLevel pre-tokenizer need not map bytes to code points. Exact: same ids.
  void use_raw_bytes();

  // Appends the ids of one pre-tokenized word.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  const std::string* id_to_token(int32_t id) const;
  size_t vocab_size() const { return vocab_.size(); }
  int32_t max_id() const { return static_cast<int32_t>(id_to_tok_.size()) - 1; }

 private:
  BpeModel() = default;
  void init(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges);
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;
  void add_char(std::string_view word, size_t i, size_t n, std::vector<int32_t>& syms,
                std::optional<int32_t>& unk) const;
  void apply_merges(std::vector<int32_t>& syms) const;
  void apply_merges_long(std::vector<int32_t>& syms) const;  // priority queue, any length
  // Long words: cut where no vocabulary token holds the two units (code points, or bytes in raw mode) that
  // meet there, since no merge can then ever join the two sides; each part is merged on its own.
  void build_boundaries();
  bool joinable(int32_t left, int32_t right) const;

  Vocab vocab_;                        // token -> id, as in the file
  std::vector<std::string> id_to_tok_;  // id -> token ("" with has_ = false for holes)
  std::vector<bool> has_;
  FlatStrMap<int32_t> work_;           // what words are looked up in (vocab_, or re-keyed by bytes)
  MergeMap merges_;
  MergeMap bigrams_;                          // unit pairs that occur inside some token (value unused)
  std::vector<uint32_t> first_unit_, last_unit_;  // per id; kNoUnit when unknown
  bool split_long_words_ = false;
  bool raw_bytes_ = false;
  int32_t byte_id_[256];               // raw-byte mode: id of each single byte, -1 if none
  std::optional<std::string> unk_token_;
  std::optional<std::string> prefix_, suffix_;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  int32_t byte_tokens_[256];           // byte_fallback: id of "<0xXX>", -1 if absent
  uint64_t instance_ = 0;              // key of the per-thread word cache
};

}  // namespace kiln::tok
