// BlockManager: the bookkeeping of the paged KV pool (the memory itself is a KvCacheDesc).
//
// Every block is in one of three states:
//   used       ref > 0: in the block table of at least one sequence
//   cached     ref == 0, full and registered in the prefix cache: reusable by hash, evictable (LRU)
//   free       ref == 0, not registered
// allocate() takes a free block, else evicts the least recently released cached one.
//
// Prefix cache: a full block is identified by a hash chain, h_i = H(h_{i-1}, tokens of block i), so a block
// matches only if every token before it matches too. The parent hash and tokens are kept beside the hash and
// compared on lookup, so a hash collision can never hand out the wrong KV.
#pragma once
#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

namespace kiln {

class BlockManager {
 public:
  BlockManager(int32_t num_blocks, int32_t tokens_per_block);

  int32_t num_blocks() const { return int32_t(blocks_.size()); }
  int32_t tokens_per_block() const { return tpb_; }
  int32_t num_used() const { return used_; }
  int32_t num_available() const { return num_blocks() - used_; }  // free + cached-unreferenced
  int32_t num_cached() const { return int32_t(by_hash_.size()); }
  int64_t evictions() const { return evictions_; }

  // A block with ref 1, or -1 when every block is in use.
  int32_t allocate();
  void retain(int32_t block);
  void release(int32_t block);
  int32_t refcount(int32_t block) const;

  // Hash of a full block given its parent's hash (0 for the first block).
  static uint64_t chain_hash(uint64_t parent, const int32_t* tokens, int32_t n);
  // The cached block for (hash, parent, tokens), retained; -1 when there is none.
  int32_t match(uint64_t hash, uint64_t parent, const int32_t* tokens);
  // Registers a full, computed block under its hash (no-op when that hash is already registered).
  void publish(int32_t block, uint64_t hash, uint64_t parent, const int32_t* tokens);

 private:
  struct Block {
    int32_t ref = 0;
    bool cached = false;  // registered in by_hash_
    uint64_t hash = 0, parent = 0;
    std::vector<int32_t> tokens;      // [tokens_per_block] when cached
    std::list<int32_t>::iterator lru;  // valid when cached and ref == 0
  };
  void check(int32_t block) const;

  int32_t tpb_;
  int32_t used_ = 0;
  int64_t evictions_ = 0;
  std::vector<Block> blocks_;
  std::vector<int32_t> free_;  // ref 0, not cached (a stack)
  std::list<int32_t> lru_;     // ref 0, cached; front: least recently released
  std::unordered_map<uint64_t, int32_t> by_hash_;
};

}  // namespace kiln
