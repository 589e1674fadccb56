// Backend::copy_kv_blocks on the cpu backend: whole blocks in every layer (k and v), nothing else touched,
// pairs applied in order, ids checked.
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

namespace kiln {
namespace {

TEST(CopyKvBlocks, CopiesWholeBlocksInEveryLayer) {
  auto be = std::make_unique<CpuBackend>(1);
  KvCacheDesc c;
  c.num_layers = 3;
  c.num_blocks = 5;
  c.num_kv_heads = 2;
  c.tokens_per_block = 4;
  c.head_dim = 3;
  c.pool = be->alloc(DType::F32, {3, 5, 2, 2, 4, 3});  // [layers, blocks, 2, nkv, tpb, hd]
  const int64_t n = c.pool.numel(), block = 2 * 2 * 4 * 3;
  std::vector<float> init(static_cast<size_t>(n));
  std::iota(init.begin(), init.end(), 0.0f);
  be->upload(c.pool, init.data(), size_t(n) * 4);
  // 1 -> 3, then 3 -> 4: in order, so block 4 receives block 1's values too.
  be->copy_kv_blocks(c, {{1, 3}, {3, 4}});
  std::vector<float> got(static_cast<size_t>(n));
  be->download(got.data(), c.pool, size_t(n) * 4);
  for (int64_t l = 0; l < 3; ++l)
    for (int64_t b = 0; b < 5; ++b) {
      const int64_t from = (b == 3 || b == 4) ? 1 : b;
      for (int64_t i = 0; i < block; ++i)
        ASSERT_EQ(got[size_t((l * 5 + b) * block + i)], init[size_t((l * 5 + from) * block + i)])
            << "layer " << l << " block " << b << " element " << i;
    }
  EXPECT_THROW(be->copy_kv_blocks(c, {{0, 5}}), Error);
  EXPECT_THROW(be->copy_kv_blocks(c, {{-1, 2}}), Error);
}

}  // namespace
}  // namespace kiln
