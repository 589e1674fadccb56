// FlatStrMap: an open-addressing hash map from byte strings to a small value, keys stored back to back in one
// buffer. For the BPE hot path (vocabulary lookups, the per-thread word cache), where std::unordered_map's
// node chasing dominated.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::tok {

inline uint64_t hash_bytes(std::string_view s) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (s.size() * 0xff51afd7ed558ccdull);
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 29;
  }
  uint64_t tail = 0;
  if (i < s.size()) std::memcpy(&tail, s.data() + i, s.size() - i);
  h = (h ^ tail) * 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 32;
  return h;
}

template <typename V>
class FlatStrMap {
 public:
  size_t size() const { return count_; }
  void clear() {
    slots_.clear();
    keys_.clear();
    count_ = 0;
    mask_ = 0;
  }
  const V* find(std::string_view k) const { return find(k, hash_bytes(k)); }
  const V* find(std::string_view k, uint64_t h) const {
    if (slots_.empty()) return nullptr;
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.len == kEmpty) return nullptr;
      if (s.hash == h && s.len == k.size() && std::memcmp(keys_.data() + s.off, k.data(), k.size()) == 0)
        return &s.value;
    }
  }
  // Inserts or replaces.
  void put(std::string_view k, const V& v) { put(k, hash_bytes(k), v); }
  void put(std::string_view k, uint64_t h, const V& v) {
    if ((count_ + 1) * 2 > slots_.size()) grow();
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.len == kEmpty) {
        s = Slot{h, static_cast<uint32_t>(keys_.size()), static_cast<uint32_t>(k.size()), v};
        keys_.append(k);
        ++count_;
        return;
      }
      if (s.hash == h && s.len == k.size() && std::memcmp(keys_.data() + s.off, k.data(), k.size()) == 0) {
        s.value = v;
        return;
      }
    }
  }
  template <typename F>
  void for_each(F&& f) const {
    for (const Slot& s : slots_)
      if (s.len != kEmpty) f(std::string_view(keys_.data() + s.off, s.len), s.value);
  }

 private:
  static constexpr uint32_t kEmpty = 0xFFFFFFFFu;
  struct Slot {
    uint64_t hash = 0;
    uint32_t off = 0, len = kEmpty;
    V value{};
  };
  void grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    size_t cap = old.empty() ? 1024 : old.size() * 2;
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    for (const Slot& s : old) {
      if (s.len == kEmpty) continue;
      size_t i = s.hash & mask_;
      while (slots_[i].len != kEmpty) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }
  std::vector<Slot> slots_;
  std::string keys_;
  size_t count_ = 0, mask_ = 0;
};

}  // namespace kiln::tok
