// Pre-tokenizers of tokenizer.json: Split (regex or string; Removed, Isolated, MergedWithPrevious,
// MergedWithNext, Contiguous; invert), ByteLevel, Metaspace, Digits, WhitespaceSplit, CharDelimiterSplit,
// Punctuation, Sequence. Anything else is a kiln::Error naming the type.
#pragma once
#include <deque>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/regex.h"

namespace kiln::tok {

// A piece of normalized text on its way to the model. `at_origin`: it begins at offset 0 of the
// original input (Metaspace's prepend_scheme "first").
struct Piece {
  std::string_view text;
  bool at_origin;
};

// Storage for text a pre-tokenizer rewrites (pieces point into it) and scratch vectors.
struct PreTokScratch {
  std::deque<std::string> arena;
  std::vector<Span> spans;
  std::vector<Piece> tmp;
  std::string_view keep(std::string s) {
    arena.push_back(std::move(s));
    return arena.back();
  }
  void clear() {
    arena.clear();
    spans.clear();
    tmp.clear();
  }
};

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` with their pre-tokenized parts (empty parts dropped, as the library does).
  virtual void apply(std::vector<Piece>& pieces, PreTokScratch& s) const = 0;
};

struct PreTokOptions {
  // When true, a ByteLevel pre-tokenizer does not map bytes to GPT-2's printable code points: the BPE
  // model then works on raw bytes with a translated vocabulary (same ids, less work).
  bool byte_level_raw = false;
};

// nullptr for a JSON null.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, const PreTokOptions& opt);

// True when the pre-tokenizer (or the last of a Sequence) is ByteLevel and no other step comes after it,
// so that the raw-byte mode above is exact.
bool ends_with_byte_level(const nlohmann::json& j);
bool contains_byte_level(const nlohmann::json& j);

// Splits `p` at the matches (sorted, non-overlapping spans of p.text) by `behavior`, appending the parts.
void split_piece(const Piece& p, const std::vector<Span>& matches, SplitBehavior behavior, bool invert,
                 std::vector<Piece>& out);

}  // namespace kiln::tok
