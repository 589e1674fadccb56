#include "tokenizer/model_bpe.h"

#include <algorithm>
#include <cstring>
#include <atomic>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>

#include "io/json_file.h"
#include "tokenizer/json_util.h"
#include "tokenizer/unicode.h"

namespace kiln::tok {

size_t SvHash::operator()(std::string_view s) const noexcept { return static_cast<size_t>(hash_bytes(s)); }

void MergeMap::build(const std::vector<std::pair<uint64_t, std::pair<uint32_t, int32_t>>>& entries) {
  size_t cap = 16;
  while (cap < entries.size() * 2 + 1) cap <<= 1;
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  for (const auto& [key, v] : entries) {
    size_t h = hash(key) & mask_;
    while (slots_[h].key != kEmpty && slots_[h].key != key) h = (h + 1) & mask_;
    slots_[h] = Slot{key, v.first, v.second};  // a later duplicate replaces the earlier, as in the library
  }
}

namespace {
std::atomic<uint64_t> g_instances{1};

// Per-thread word caches, one per recently used model.
struct WordCache {
  uint64_t owner = 0;
  uint64_t last_use = 0;
  FlatStrMap<std::pair<uint32_t, uint32_t>> map;  // word -> (offset, count) in ids
  std::vector<int32_t> ids;
};
constexpr size_t kCacheSlots = 4;
constexpr size_t kMaxCachedWords = 1 << 16;  // the library keeps 10,000
constexpr size_t kMaxCachedWordLen = 256;

WordCache& cache_for(uint64_t owner) {
  thread_local WordCache slots[kCacheSlots];
  thread_local uint64_t clock = 0;
  ++clock;
  WordCache* victim = &slots[0];
  for (auto& c : slots) {
    if (c.owner == owner) {
      c.last_use = clock;
      return c;
    }
    if (c.last_use < victim->last_use) victim = &c;
  }
  victim->owner = owner;
  victim->last_use = clock;
  victim->map.clear();
  victim->ids.clear();
  return *victim;
}
}  // namespace

std::unique_ptr<BpeModel> BpeModel::from_json(const nlohmann::json& m) {
  std::string type = m.contains("type") ? m.value("type", "") : "BPE";
  if (type != "BPE")
    fail("unsupported model type '{}' in tokenizer.json (kiln supports BPE)", type);
  auto vit = m.find("vocab");
  if (vit == m.end() || !vit->is_object()) fail("BPE model has no \"vocab\" object");
  auto mit = m.find("merges");
  if (mit == m.end() || !mit->is_array()) fail("BPE model has no \"merges\" array");
  if (auto d = m.find("dropout"); d != m.end() && !d->is_null() && d->get<double>() > 0.0)
    fail("BPE dropout ({}) is not supported: encoding would not be deterministic", d->get<double>());

  std::unique_ptr<BpeModel> b(new BpeModel());
  Vocab vocab;
  vocab.reserve(vit->size());
  for (auto it = vit->begin(); it != vit->end(); ++it) {
    if (!it.value().is_number_integer()) fail("BPE vocab entry '{}' is not an integer id", it.key());
    vocab[it.key()] = it.value().get<int32_t>();
  }
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(mit->size());
  size_t rank = 0;
  for (const auto& e : *mit) {
    if (e.is_string()) {
      const std::string& line = e.get_ref<const std::string&>();
      if (line.rfind("#version", 0) == 0) continue;
      size_t sp = line.find(' ');
      if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos)
        fail("BPE merge {} ('{}') is not two tokens separated by one space", rank + 1, line);
      merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
    } else {
      fail("BPE merge {} is neither \"a b\" nor [\"a\", \"b\"]: {}", rank + 1, e.dump());
    }
    ++rank;
  }
  b->unk_token_ = opt_string(m, "unk_token");
  b->prefix_ = opt_string(m, "continuing_subword_prefix");
  b->suffix_ = opt_string(m, "end_of_word_suffix");
  b->fuse_unk_ = field_or(m, "fuse_unk", false);
  b->byte_fallback_ = field_or(m, "byte_fallback", false);
  b->ignore_merges_ = field_or(m, "ignore_merges", false);
  b->init(std::move(vocab), merges);
  return b;
}

std::unique_ptr<BpeModel> BpeModel::from_files(const std::string& vocab_json, const std::string& merges_txt) {
  std::ifstream vf(vocab_json, std::ios::binary);
  if (!vf) fail("cannot open {}", vocab_json);
  nlohmann::json v;
  try {
    std::stringstream ss;
    ss << vf.rdbuf();
    v = parse_json(ss.str());
  } catch (const Error& e) {
    fail("{} is not valid JSON: {}", vocab_json, e.what());
  }
  if (!v.is_object()) fail("{} must hold a JSON object mapping tokens to ids", vocab_json);
  std::ifstream mf(merges_txt, std::ios::binary);
  if (!mf) fail("cannot open {} (vocab.json needs merges.txt beside it)", merges_txt);
  nlohmann::json merges = nlohmann::json::array();
  std::string line;
  std::vector<std::string> lines;
  while (std::getline(mf, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();  // trailing blank lines
  for (auto& l : lines) merges.push_back(std::move(l));
  nlohmann::json m = nlohmann::json::object();
  m["type"] = "BPE";
  m["vocab"] = std::move(v);
  m["merges"] = std::move(merges);
  try {
    return from_json(m);
  } catch (const Error& e) {
    fail("{}: {}", merges_txt, e.what());
  }
}

void BpeModel::init(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges) {
  instance_ = g_instances.fetch_add(1);
  vocab_ = std::move(vocab);
  int32_t max_id = -1;
  for (const auto& [t, id] : vocab_) {
    if (id < 0) fail("BPE vocab entry '{}' has a negative id {}", t, id);
    max_id = std::max(max_id, id);
  }
  id_to_tok_.assign(static_cast<size_t>(max_id + 1), std::string());
  has_.assign(static_cast<size_t>(max_id + 1), false);
  for (const auto& [t, id] : vocab_) {
    id_to_tok_[static_cast<size_t>(id)] = t;
    has_[static_cast<size_t>(id)] = true;
  }
  size_t prefix_len = prefix_ ? prefix_->size() : 0;
  std::vector<std::pair<uint64_t, std::pair<uint32_t, int32_t>>> entries;
  entries.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const auto& [a, b] = merges[i];
    auto ia = vocab_.find(a), ib = vocab_.find(b);
    if (ia == vocab_.end()) fail("BPE merge {} ('{} {}'): '{}' is not in the vocabulary", i + 1, a, b, a);
    if (ib == vocab_.end()) fail("BPE merge {} ('{} {}'): '{}' is not in the vocabulary", i + 1, a, b, b);
    std::string merged = a + (prefix_len <= b.size() ? b.substr(prefix_len) : std::string());
    auto im = vocab_.find(merged);
    if (im == vocab_.end()) fail("BPE merge {} ('{} {}'): '{}' is not in the vocabulary", i + 1, a, b, merged);
    uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(ia->second)) << 32) |
                   static_cast<uint32_t>(ib->second);
    entries.push_back({key, {static_cast<uint32_t>(i), im->second}});
  }
  merges_.build(entries);
  work_.clear();
  for (const auto& [t, id] : vocab_) work_.put(t, id);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    auto it = vocab_.find(std::string_view(name));
    byte_tokens_[b] = it == vocab_.end() ? -1 : it->second;
    byte_id_[b] = -1;
  }
  if (unk_token_ && !vocab_.count(*unk_token_))
    fail("BPE unk_token '{}' is not in the vocabulary", *unk_token_);
  build_boundaries();
}

namespace {
constexpr uint32_t kNoUnit = 0xFFFFFFFFu;
}

void BpeModel::build_boundaries() {
  split_long_words_ = !(prefix_ && !prefix_->empty()) && !(suffix_ && !suffix_->empty());
  first_unit_.assign(id_to_tok_.size(), kNoUnit);
  last_unit_.assign(id_to_tok_.size(), kNoUnit);
  std::vector<std::pair<uint64_t, std::pair<uint32_t, int32_t>>> pairs;
  std::vector<uint32_t> units;
  work_.for_each([&](std::string_view key, int32_t id) {
    units.clear();
    if (raw_bytes_) {
      for (unsigned char c : key) units.push_back(c);
    } else {
      for (size_t i = 0; i < key.size();) {
        size_t n;
        units.push_back(utf8_decode(key, i, n));
        i += n;
      }
    }
    if (units.empty() || id < 0 || static_cast<size_t>(id) >= first_unit_.size()) return;
    first_unit_[static_cast<size_t>(id)] = units.front();
    last_unit_[static_cast<size_t>(id)] = units.back();
    for (size_t k = 0; k + 1 < units.size(); ++k)
      pairs.push_back({(static_cast<uint64_t>(units[k]) << 32) | units[k + 1], {0u, 0}});
  });
  bigrams_.build(pairs);
}

bool BpeModel::joinable(int32_t left, int32_t right) const {
  uint32_t a = last_unit_[static_cast<size_t>(left)], b = first_unit_[static_cast<size_t>(right)];
  if (a == kNoUnit || b == kNoUnit) return true;
  uint32_t r;
  int32_t v;
  return bigrams_.find(static_cast<int32_t>(a), static_cast<int32_t>(b), r, v);
}

void BpeModel::use_raw_bytes() {
  FlatStrMap<int32_t> w;
  for (const auto& [t, id] : vocab_) {
    std::string bytes;
    bool ok = true;
    for (size_t i = 0; i < t.size() && ok;) {
      size_t n;
      int b = unicode_to_byte(utf8_decode(t, i, n));
      if (b < 0) ok = false;
      bytes.push_back(static_cast<char>(b));
      i += n;
    }
    if (ok && !bytes.empty()) w.put(bytes, id);  // tokens outside the byte alphabet cannot be reached
  }
  work_ = std::move(w);
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    const int32_t* id = work_.find(std::string_view(&c, 1));
    byte_id_[b] = id ? *id : -1;
  }
  raw_bytes_ = true;
  prefix_.reset();
  suffix_.reset();
  build_boundaries();
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_tok_.size() || !has_[static_cast<size_t>(id)]) return nullptr;
  return &id_to_tok_[static_cast<size_t>(id)];
}

// One character of the word (bytes [i, i+n)), as the library's merge_word handles it.
void BpeModel::add_char(std::string_view word, size_t i, size_t n, std::vector<int32_t>& syms,
                        std::optional<int32_t>& unk) const {
  int32_t id = -1;
  std::string_view fallback_bytes;
  std::string mapped;
  if (raw_bytes_) {
    unsigned char c = static_cast<unsigned char>(word[i]);
    id = byte_id_[c];
    if (id < 0) {  // the byte's code point is not in the vocabulary: fall back on its UTF-8 spelling
      utf8_append(mapped, byte_to_unicode()[c]);
      fallback_bytes = mapped;
    }
  } else {
    std::string_view s = word.substr(i, n);
    const bool prefixed = i > 0 && prefix_, suffixed = i + n == word.size() && suffix_;
    if (prefixed || suffixed) {
      mapped = (prefixed ? *prefix_ : std::string()) + std::string(s) + (suffixed ? *suffix_ : std::string());
      s = mapped;
    }
    if (const int32_t* found = work_.find(s))
      id = *found;
    else
      fallback_bytes = s;
  }
  if (id >= 0) {
    if (unk) {
      syms.push_back(*unk);
      unk.reset();
    }
    syms.push_back(id);
    return;
  }
  if (byte_fallback_) {
    bool all = true;
    for (unsigned char c : fallback_bytes) all = all && byte_tokens_[c] >= 0;
    if (all) {
      for (unsigned char c : fallback_bytes) syms.push_back(byte_tokens_[c]);
      return;
    }
  }
  if (unk_token_) {
    int32_t unk_id = vocab_.find(*unk_token_)->second;
    if (unk && !fuse_unk_) syms.push_back(*unk);
    unk = unk_id;
  }
}

void BpeModel::apply_merges(std::vector<int32_t>& syms) const {
  const size_t n0 = syms.size();
  if (n0 < 2) return;
  constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
  if (n0 <= 64) {
    // Short words: keep the rank of every adjacent pair; merge the lowest (leftmost on ties).
    uint32_t ranks[64];
    int32_t ids[64];
    size_t n = n0;
    for (size_t i = 0; i + 1 < n; ++i)
      if (!merges_.find(syms[i], syms[i + 1], ranks[i], ids[i])) ranks[i] = kNone;
    while (true) {
      uint32_t best = kNone;
      size_t p = 0;
      for (size_t i = 0; i + 1 < n; ++i)
        if (ranks[i] < best) {
          best = ranks[i];
          p = i;
        }
      if (best == kNone) break;
      syms[p] = ids[p];
      for (size_t i = p + 1; i + 1 < n; ++i) {
        syms[i] = syms[i + 1];
        ranks[i] = ranks[i + 1];
        ids[i] = ids[i + 1];
      }
      --n;
      if (p > 0 && !merges_.find(syms[p - 1], syms[p], ranks[p - 1], ids[p - 1])) ranks[p - 1] = kNone;
      if (p + 1 < n && !merges_.find(syms[p], syms[p + 1], ranks[p], ids[p])) ranks[p] = kNone;
    }
    syms.resize(n);
    return;
  }
  if (split_long_words_) {
    size_t cuts = 0;
    for (size_t i = 0; i + 1 < n0; ++i) cuts += !joinable(syms[i], syms[i + 1]);
    if (cuts > 0) {
      std::vector<int32_t> out, part;
      out.reserve(n0);
      size_t b = 0;
      for (size_t i = 0; i < n0; ++i) {
        if (i + 1 == n0 || !joinable(syms[i], syms[i + 1])) {
          part.assign(syms.begin() + static_cast<std::ptrdiff_t>(b), syms.begin() + static_cast<std::ptrdiff_t>(i + 1));
          if (part.size() > 64) {
            apply_merges_long(part);
          } else {
            apply_merges(part);
          }
          out.insert(out.end(), part.begin(), part.end());
          b = i + 1;
        }
      }
      syms.swap(out);
      return;
    }
  }
  apply_merges_long(syms);
}

void BpeModel::apply_merges_long(std::vector<int32_t>& syms) const {
  const size_t n0 = syms.size();
  // Long words: the library's priority queue over (rank, position) with a linked list of symbols.
  struct Merge {
    uint32_t rank;
    uint32_t pos;
    int32_t id;
    bool operator>(const Merge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<int32_t> prev(n0), next(n0);
  std::vector<bool> alive(n0, true);
  for (size_t i = 0; i < n0; ++i) {
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n0 ? static_cast<int32_t>(i + 1) : -1;
  }
  std::priority_queue<Merge, std::vector<Merge>, std::greater<Merge>> q;
  for (size_t i = 0; i + 1 < n0; ++i) {
    uint32_t r;
    int32_t id;
    if (merges_.find(syms[i], syms[i + 1], r, id)) q.push({r, static_cast<uint32_t>(i), id});
  }
  while (!q.empty()) {
    Merge top = q.top();
    q.pop();
    size_t p = top.pos;
    if (!alive[p] || next[p] < 0) continue;
    size_t nx = static_cast<size_t>(next[p]);
    uint32_t r;
    int32_t id;
    if (!merges_.find(syms[p], syms[nx], r, id) || id != top.id) continue;  // stale entry
    syms[p] = top.id;
    alive[nx] = false;
    next[p] = next[nx];
    if (next[nx] >= 0) prev[static_cast<size_t>(next[nx])] = static_cast<int32_t>(p);
    if (prev[p] >= 0) {
      size_t pv = static_cast<size_t>(prev[p]);
      if (merges_.find(syms[pv], syms[p], r, id)) q.push({r, static_cast<uint32_t>(pv), id});
    }
    if (next[p] >= 0) {
      if (merges_.find(syms[p], syms[static_cast<size_t>(next[p])], r, id))
        q.push({r, static_cast<uint32_t>(p), id});
    }
  }
  size_t w = 0;
  for (size_t i = 0; i < n0; ++i)
    if (alive[i]) syms[w++] = syms[i];
  syms.resize(w);
}

void BpeModel::merge_word(std::string_view word, std::vector<int32_t>& out) const {
  thread_local std::vector<int32_t> syms;
  syms.clear();
  std::optional<int32_t> unk;
  for (size_t i = 0; i < word.size();) {
    size_t n = raw_bytes_ ? 1 : std::min(utf8_len(static_cast<unsigned char>(word[i])), word.size() - i);
    add_char(word, i, n, syms, unk);
    i += n;
  }
  if (unk) syms.push_back(*unk);
  apply_merges(syms);
  out.insert(out.end(), syms.begin(), syms.end());
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (const int32_t* id = work_.find(word)) {
      out.push_back(*id);
      return;
    }
  }
  if (word.size() >= kMaxCachedWordLen) {
    merge_word(word, out);
    return;
  }
  WordCache& c = cache_for(instance_);
  const uint64_t h = hash_bytes(word);
  if (const auto* hit = c.map.find(word, h)) {
    out.insert(out.end(), c.ids.begin() + hit->first, c.ids.begin() + hit->first + hit->second);
    return;
  }
  size_t before = out.size();
  merge_word(word, out);
  if (c.map.size() >= kMaxCachedWords) {
    c.map.clear();
    c.ids.clear();
  }
  uint32_t off = static_cast<uint32_t>(c.ids.size());
  c.ids.insert(c.ids.end(), out.begin() + static_cast<std::ptrdiff_t>(before), out.end());
  c.map.put(word, h, std::make_pair(off, static_cast<uint32_t>(out.size() - before)));
}

}  // namespace kiln::tok
