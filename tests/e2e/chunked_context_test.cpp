// The KV-cache path against itself: prefill in one step, prefill in chunks (max_num_tokens below the prompt),
// and decoding give the same logits (closed-form expectation: the computation is the same up to fp32 rounding).
#include <gtest/gtest.h>

#include "common/test_util.h"
#include "io/safetensors.h"

namespace kiln::test {
namespace {

TEST(ChunkedContext, SameLogitsAsSinglePrefill) {
  for (std::string model : {"llama", "mistral", "gpt2", "mixtral", "qwen3"}) {
    SCOPED_TRACE(model);
    TempDir tmp;
    ASSERT_EQ(run_kiln("convert --model " + model_dir(model) + " --output " + (tmp / "ck")).exit_code, 0);
    ASSERT_EQ(run_kiln("build --checkpoint " + (tmp / "ck") + " --output " + (tmp / "whole") + " --max-seq-len 100").exit_code, 0);
    auto b = run_kiln("build --checkpoint " + (tmp / "ck") + " --output " + (tmp / "chunk") +
                      " --max-seq-len 100 --max-num-tokens 8 --max-batch-size 1");
    ASSERT_EQ(b.exit_code, 0) << b.out;
    std::string ids;
    for (int i = 0; i < 45; ++i) ids += (i ? "," : "") + std::to_string((i * 37 + 11) % 300);
    for (auto e : {"whole", "chunk"}) {
      auto r = run_kiln("run --engine " + (tmp / e) + " --input-ids " + ids + " --max-new-tokens 10 --logits-out " +
                        (tmp / (std::string(e) + ".st")));
      ASSERT_EQ(r.exit_code, 0) << r.out;
    }
    SafetensorsFile a(tmp / "whole.st"), c(tmp / "chunk.st");
    for (auto name : {"context_logits", "generation_logits"}) {
      const auto& x = a.get(name);
      const auto& y = c.get(name);
      ASSERT_EQ(x.shape, y.shape);
      const int64_t V = x.shape[1];
      for (int64_t r = 0; r < x.shape[0]; ++r)
        ASSERT_LT(rel_err(static_cast<const float*>(y.data) + r * V, static_cast<const float*>(x.data) + r * V, size_t(V)), 1e-5)
            << name << " row " << r;
    }
  }
}

}  // namespace
}  // namespace kiln::test
