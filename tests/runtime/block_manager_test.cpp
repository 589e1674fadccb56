// BlockManager: reference counts, the free list, the prefix cache (hash chain, verification) and LRU eviction.
#include "runtime/block_manager.h"

#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "core/error.h"

namespace kiln {
namespace {

TEST(BlockManager, AllocatesEveryBlockOnceThenRunsOut) {
  BlockManager bm(4, 2);
  std::set<int32_t> got;
  for (int i = 0; i < 4; ++i) got.insert(bm.allocate());
  EXPECT_EQ(got, (std::set<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(bm.num_used(), 4);
  EXPECT_EQ(bm.num_available(), 0);
  EXPECT_EQ(bm.allocate(), -1);
  bm.release(2);
  EXPECT_EQ(bm.num_available(), 1);
  EXPECT_EQ(bm.allocate(), 2);
}

TEST(BlockManager, ReferenceCounts) {
  BlockManager bm(2, 4);
  int32_t b = bm.allocate();
  bm.retain(b);
  EXPECT_EQ(bm.refcount(b), 2);
  bm.release(b);
  EXPECT_EQ(bm.num_used(), 1);
  bm.release(b);
  EXPECT_EQ(bm.num_used(), 0);
  EXPECT_THROW(bm.release(b), Error);  // one release too many
  EXPECT_THROW(bm.retain(b), Error);   // a free block cannot be shared
  EXPECT_THROW(bm.refcount(7), Error);
}

TEST(BlockManager, PrefixCacheMatchesOnlyTheSameChain) {
  BlockManager bm(4, 2);
  const int32_t t0[] = {5, 6}, t1[] = {7, 8};
  int32_t a = bm.allocate(), b = bm.allocate();
  const uint64_t h0 = BlockManager::chain_hash(0, t0, 2), h1 = BlockManager::chain_hash(h0, t1, 2);
  bm.publish(a, h0, 0, t0);
  bm.publish(b, h1, h0, t1);
  EXPECT_EQ(bm.num_cached(), 2);
  bm.release(a);
  bm.release(b);
  EXPECT_EQ(bm.num_used(), 0);
  EXPECT_EQ(bm.num_available(), 4);  // cached blocks nobody holds count as available
  // Same tokens after a different first block: a different hash, no match.
  const int32_t other[] = {5, 9};
  const uint64_t g0 = BlockManager::chain_hash(0, other, 2);
  EXPECT_EQ(bm.match(BlockManager::chain_hash(g0, t1, 2), g0, t1), -1);
  // The right chain matches and takes a reference.
  EXPECT_EQ(bm.match(h0, 0, t0), a);
  EXPECT_EQ(bm.match(h1, h0, t1), b);
  EXPECT_EQ(bm.refcount(a), 1);
  EXPECT_EQ(bm.num_used(), 2);
  // A forged entry (right hash, wrong tokens) is refused: the tokens are compared.
  const int32_t wrong[] = {1, 2};
  EXPECT_EQ(bm.match(h0, 0, wrong), -1);
}

TEST(BlockManager, EvictsLeastRecentlyReleasedCachedBlock) {
  BlockManager bm(3, 1);
  const int32_t t[] = {1, 2, 3};
  int32_t b[3];
  uint64_t h[3];
  for (int i = 0; i < 3; ++i) {
    b[i] = bm.allocate();
    h[i] = BlockManager::chain_hash(0, &t[i], 1);
    bm.publish(b[i], h[i], 0, &t[i]);
  }
  bm.release(b[1]);
  bm.release(b[0]);
  bm.release(b[2]);  // LRU order: 1, 0, 2
  EXPECT_EQ(bm.num_cached(), 3);
  EXPECT_EQ(bm.allocate(), b[1]);
  EXPECT_EQ(bm.num_cached(), 2);
  EXPECT_EQ(bm.match(h[1], 0, &t[1]), -1);  // evicted
  EXPECT_EQ(bm.match(h[0], 0, &t[0]), b[0]);  // reused: leaves the LRU list
  EXPECT_EQ(bm.allocate(), b[2]);
  EXPECT_EQ(bm.allocate(), -1);
  EXPECT_EQ(bm.evictions(), 2);
}

TEST(BlockManager, PublishingAnExistingHashKeepsTheFirstBlock) {
  BlockManager bm(2, 1);
  const int32_t t[] = {4};
  const uint64_t h = BlockManager::chain_hash(0, t, 1);
  int32_t a = bm.allocate(), b = bm.allocate();
  bm.publish(a, h, 0, t);
  bm.publish(b, h, 0, t);
  EXPECT_EQ(bm.num_cached(), 1);
  bm.release(b);  // not cached: plainly free
  bm.release(a);
  EXPECT_EQ(bm.match(h, 0, t), a);
}

TEST(BlockManager, RejectsEmptyPool) {
  EXPECT_THROW(BlockManager(0, 32), Error);
  EXPECT_THROW(BlockManager(4, 0), Error);
}

}  // namespace
}  // namespace kiln
