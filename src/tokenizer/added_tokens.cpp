#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/normalizers.h"
#include "tokenizer/unicode.h"

namespace kiln::tok {

void AddedVocab::Trie::insert(std::string_view p, int32_t id) {
  if (p.empty()) return;
  int32_t node = 0;
  for (unsigned char c : p) {
    int32_t next = -1;
    for (auto& [k, child] : nodes[static_cast<size_t>(node)].kids)
      if (k == c) next = child;
    if (next < 0) {
      next = static_cast<int32_t>(nodes.size());
      nodes[static_cast<size_t>(node)].kids.emplace_back(c, next);
      nodes.emplace_back();
    }
    node = next;
  }
  first[static_cast<unsigned char>(p[0])] = true;
  Node& n = nodes[static_cast<size_t>(node)];
  if (n.token < 0) {  // the first of two identical patterns wins
    n.token = static_cast<int32_t>(tokens.size());
    tokens.push_back(id);
  }
}

size_t AddedVocab::Trie::longest_at(std::string_view s, size_t i, int32_t& id) const {
  size_t best = 0;
  int32_t node = 0;
  for (size_t k = i; k < s.size(); ++k) {
    int32_t next = -1;
    for (const auto& [c, child] : nodes[static_cast<size_t>(node)].kids)
      if (c == static_cast<unsigned char>(s[k])) {
        next = child;
        break;
      }
    if (next < 0) break;
    node = next;
    if (nodes[static_cast<size_t>(node)].token >= 0) {
      best = k + 1 - i;
      id = tokens[static_cast<size_t>(nodes[static_cast<size_t>(node)].token)];
    }
  }
  return best;
}

void AddedVocab::add_resolved(std::vector<AddedToken> tokens, const Normalizer* normalizer) {
  for (const AddedToken& t : tokens)
    if (t.special && std::find(order_.begin(), order_.end(), t.content) == order_.end()) {
      // specials keep their place at the front
      auto pos = std::find_if(order_.begin(), order_.end(), [&](const std::string& c) {
        auto it = by_content_.find(c);
        auto bt = it == by_content_.end() ? by_id_.end() : by_id_.find(it->second);
        return bt == by_id_.end() || !bt->second.special;
      });
      order_.insert(pos, t.content);
    }
  for (AddedToken& t : tokens) {
    if (!t.special && std::find(order_.begin(), order_.end(), t.content) == order_.end()) order_.push_back(t.content);
    by_id_[t.id] = std::move(t);
  }
  rebuild(normalizer);
}

void AddedVocab::rebuild(const Normalizer* normalizer) {
  tries_[0] = Trie();
  tries_[1] = Trie();
  for (const std::string& c : order_) {
    int32_t id = by_content_.at(c);
    auto it = by_id_.find(id);
    if (it == by_id_.end()) continue;
    const AddedToken& t = it->second;
    if (!t.normalized) {
      tries_[0].insert(t.content, id);
    } else {
      std::string n = t.content;
      bool at_origin = true;
      if (normalizer) normalizer->normalize(n, at_origin);
      tries_[1].insert(n, id);
    }
  }
}

namespace {
uint32_t last_char(std::string_view s) {
  size_t p = s.size() - 1;
  while (p > 0 && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80) --p;
  size_t n;
  return utf8_decode(s, p, n);
}
}  // namespace

void AddedVocab::find(std::string_view s, bool normalized_set, std::vector<AddedSplit>& out) const {
  const Trie& trie = tries_[normalized_set ? 1 : 0];
  if (s.empty()) {
    out.push_back({0, 0, -1});
    return;
  }
  size_t start_offset = 0;
  size_t i = 0;
  while (i < s.size()) {
    if (!trie.first[static_cast<unsigned char>(s[i])]) {
      ++i;
      continue;
    }
    int32_t id = -1;
    size_t len = trie.longest_at(s, i, id);
    if (len == 0) {
      ++i;
      continue;
    }
    size_t start = i, stop = i + len;
    i = stop;  // the automaton goes on after this match whatever is done with it
    const AddedToken& t = by_id_.at(id);
    if (t.single_word) {
      bool start_space = start == 0 || !is_word_char(last_char(s.substr(0, start)));
      size_t n;
      bool stop_space = stop == s.size() || !is_word_char(utf8_decode(s, stop, n));
      if (!start_space || !stop_space) continue;
    }
    if (t.lstrip) {
      size_t ns = start;
      while (ns > 0) {
        size_t p = ns - 1;
        while (p > 0 && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80) --p;
        size_t n;
        if (!is_whitespace(utf8_decode(s, p, n))) break;
        ns = p;
      }
      start = std::max(ns, start_offset);
    }
    if (t.rstrip) {
      while (stop < s.size()) {
        size_t n;
        if (!is_whitespace(utf8_decode(s, stop, n))) break;
        stop += n;
      }
    }
    if (start_offset < start) out.push_back({start_offset, start, -1});
    out.push_back({start, stop, id});
    start_offset = stop;
  }
  if (start_offset != s.size()) out.push_back({start_offset, s.size(), -1});
}

std::optional<int32_t> AddedVocab::token_to_id(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  if (it == by_content_.end()) return std::nullopt;
  return it->second;
}

const AddedToken* AddedVocab::by_id(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &it->second;
}

bool AddedVocab::is_special(int32_t id) const {
  const AddedToken* t = by_id(id);
  return t && t->special;
}

int32_t AddedVocab::max_id() const {
  int32_t m = -1;
  for (const auto& [id, t] : by_id_) m = std::max(m, id);
  return m;
}

}  // namespace kiln::tok
