#include "runtime/block_manager.h"

#include <algorithm>

#include "core/error.h"

namespace kiln {

namespace {
uint64_t mix64(uint64_t x) {  // splitmix64 finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}
}  // namespace

BlockManager::BlockManager(int32_t num_blocks, int32_t tokens_per_block)
    : tpb_(tokens_per_block), blocks_(size_t(std::max(num_blocks, 0))) {
  if (num_blocks <= 0) fail("KV cache: the pool has no blocks");
  if (tokens_per_block <= 0) fail("tokens_per_block {}: must be positive", tokens_per_block);
  free_.reserve(blocks_.size());
  for (int32_t b = num_blocks - 1; b >= 0; --b) free_.push_back(b);  // hand out low ids first
}

void BlockManager::check(int32_t b) const {
  if (b < 0 || b >= num_blocks()) fail("KV block {} is outside the pool of {}", b, num_blocks());
}

int32_t BlockManager::allocate() {
  int32_t b;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {
    b = lru_.front();
    lru_.pop_front();
    Block& blk = blocks_[b];
    by_hash_.erase(blk.hash);
    blk.cached = false;
    blk.tokens.clear();
    ++evictions_;
  } else {
    return -1;
  }
  blocks_[b].ref = 1;
  ++used_;
  return b;
}

void BlockManager::retain(int32_t b) {
  check(b);
  Block& blk = blocks_[b];
  if (blk.ref == 0) {
    if (!blk.cached) fail("KV block {}: retained while free", b);
    lru_.erase(blk.lru);
    ++used_;
  }
  ++blk.ref;
}

void BlockManager::release(int32_t b) {
  check(b);
  Block& blk = blocks_[b];
  if (blk.ref <= 0) fail("KV block {}: released more often than retained", b);
  if (--blk.ref > 0) return;
  --used_;
  if (blk.cached) {
    lru_.push_back(b);
    blk.lru = std::prev(lru_.end());
  } else {
    free_.push_back(b);
  }
}

int32_t BlockManager::refcount(int32_t b) const {
  check(b);
  return blocks_[b].ref;
}

uint64_t BlockManager::chain_hash(uint64_t parent, const int32_t* tokens, int32_t n) {
  uint64_t h = mix64(parent + 0x9e3779b97f4a7c15ULL);
  for (int32_t i = 0; i < n; ++i) h = mix64(h ^ (uint64_t(uint32_t(tokens[i])) + 0x9e3779b97f4a7c15ULL * (i + 1)));
  return h;
}

int32_t BlockManager::match(uint64_t hash, uint64_t parent, const int32_t* tokens) {
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return -1;
  const Block& blk = blocks_[it->second];
  if (blk.parent != parent || !std::equal(blk.tokens.begin(), blk.tokens.end(), tokens)) return -1;
  retain(it->second);
  return it->second;
}

void BlockManager::publish(int32_t b, uint64_t hash, uint64_t parent, const int32_t* tokens) {
  check(b);
  Block& blk = blocks_[b];
  if (blk.ref <= 0) fail("KV block {}: published while not in use", b);
  if (blk.cached || by_hash_.count(hash)) return;
  blk.cached = true;
  blk.hash = hash;
  blk.parent = parent;
  blk.tokens.assign(tokens, tokens + tpb_);
  by_hash_[hash] = b;
}

}  // namespace kiln
