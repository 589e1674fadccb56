// Encoding: added tokens in the raw text, normalization, added tokens in the normalized text,
// pre-tokenization, the BPE model, then the post-processor (the library's encode_single_sequence).
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace kiln::tok {

namespace {
struct EncodeScratch {
  PreTokScratch pre;
  std::vector<Piece> pieces;
  std::vector<AddedSplit> splits, sub_splits;
};
EncodeScratch& scratch() {
  thread_local EncodeScratch s;
  return s;
}
}  // namespace

void TokenizerImpl::encode_normalized(std::string_view s, bool at_origin, std::vector<int32_t>& out) const {
  EncodeScratch& sc = scratch();
  sc.pieces.clear();
  sc.pre.clear();
  if (s.empty()) return;
  sc.pieces.push_back({s, at_origin});
  if (pre_tokenizer) pre_tokenizer->apply(sc.pieces, sc.pre);
  for (const Piece& p : sc.pieces) model->tokenize(p.text, out);
}

void TokenizerImpl::encode_segment(std::string_view seg, bool at_origin, std::vector<int32_t>& out) const {
  if (!normalizer && !added.has_normalized()) {
    encode_normalized(seg, at_origin, out);
    return;
  }
  std::string norm(seg);
  if (normalizer) normalizer->normalize(norm, at_origin);
  if (!added.has_normalized()) {
    encode_normalized(norm, at_origin, out);
    return;
  }
  std::vector<AddedSplit> subs;  // not the scratch one: encode_normalized reuses scratch
  added.find(norm, true, subs);
  for (const AddedSplit& sp : subs) {
    if (sp.id >= 0)
      out.push_back(sp.id);
    else if (sp.end > sp.start)
      encode_normalized(std::string_view(norm).substr(sp.start, sp.end - sp.start), at_origin && sp.start == 0,
                        out);
  }
}

void TokenizerImpl::encode(std::string_view text, bool add_special_tokens, std::vector<int32_t>& out) const {
  std::string cleaned;
  if (!utf8_valid(text)) {
    cleaned = utf8_lossy(text);
    text = cleaned;
  }
  out.clear();
  out.reserve(text.size() / 3 + 4);
  if (text.empty()) {
  } else if (added.empty()) {
    encode_segment(text, true, out);
  } else {
    std::vector<AddedSplit> splits;
    added.find(text, false, splits);
    for (const AddedSplit& sp : splits) {
      if (sp.id >= 0)
        out.push_back(sp.id);
      else if (sp.end > sp.start)
        encode_segment(text.substr(sp.start, sp.end - sp.start), sp.start == 0, out);
    }
  }
  if (truncate_to) {
    size_t extra = post_processor && add_special_tokens ? post_processor->added_count() : 0;
    size_t keep = *truncate_to > extra ? *truncate_to - extra : 0;
    if (out.size() > keep) {
      if (truncate_left)
        out.erase(out.begin(), out.end() - static_cast<std::ptrdiff_t>(keep));
      else
        out.resize(keep);
    }
  }
  if (post_processor) post_processor->process(out, add_special_tokens);
}

}  // namespace kiln::tok
