// The fusion rules (src/runtime/fusion_plan.h) on the op list ModelRunner builds for a real model: which
// neighbouring ops a backend that accepts every proposal would fuse, and that an op placed between two fused ops
// separates them visibly (the plan's description and counts change) instead of being fused silently around.
#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.h"
#include "runtime/fusion_plan.h"
#include "runtime/kv_cache.h"
#include "runtime/model_runner.h"
#include "runtime_fixtures.h"

namespace kiln::test {
namespace {

// Every fusion a rule proposes, as a backend accepting all of them would decide.
StepOps accept_all(StepOps ops) {
  for (size_t i = 0; i + 1 < ops.ops.size(); ++i) ops.ops[i].next = propose_fusion(ops, i);
  return ops;
}

// The op list of one greedy decode step (one sequence, one new token) of `model` on the cpu backend, which fuses
// nothing itself.
StepOps decode_step_ops(const std::string& model, ModelRunner*& keep) {
  Engine& e = engine_for(model);
  static std::map<std::string, std::unique_ptr<ModelRunner>> runners;
  static std::vector<int32_t> table{0, 1};
  auto& r = runners[model];
  if (!r) r = std::make_unique<ModelRunner>(e, allocate_kv_cache(e.backend(), e.model(), 2, 16));
  keep = r.get();
  SeqStep prompt;
  prompt.tokens = {1, 2, 3};
  prompt.block_table = &table;
  r->step_greedy({prompt});
  SeqStep next;
  next.tokens = {4};
  next.num_cached = 3;
  next.block_table = &table;
  r->step_greedy({next});
  return r->last_plan();
}

TEST(FusionPlan, CpuBackendFusesNothing) {
  ModelRunner* r = nullptr;
  const StepOps ops = decode_step_ops("llama", r);
  for (const StepOp& op : ops.ops) EXPECT_EQ(op.next, Fusion::None) << ops.describe();
}

TEST(FusionPlan, LlamaDecodeStepRules) {
  ModelRunner* r = nullptr;
  const StepOps ops = accept_all(decode_step_ops("llama", r));
  const int L = int(engine_for("llama").model().num_layers);
  EXPECT_EQ(ops.count(Fusion::NormPrologue), 2 * L + 1) << ops.describe();  // input, post per layer; final
  EXPECT_EQ(ops.count(Fusion::ResidualAdd), 2 * L) << ops.describe();       // dense, down
  EXPECT_EQ(ops.count(Fusion::SiluGate), L) << ops.describe();
  EXPECT_EQ(ops.count(Fusion::RopeAttention), L) << ops.describe();
  EXPECT_EQ(ops.count(Fusion::Argmax), 1) << ops.describe();
  // A layer reads as five kernel groups.
  const std::string d = ops.describe();
  EXPECT_NE(d.find("norm(input) >norm_prologue> linear(qkv)\n"), std::string::npos) << d;
  EXPECT_NE(d.find("rope_kv >rope_attention> attention\n"), std::string::npos) << d;
  EXPECT_NE(d.find("linear(dense) >residual_add> norm(post) >norm_prologue> linear(gate_up) >silu_gate> silu_gated\n"),
            std::string::npos)
      << d;
  EXPECT_NE(d.find("linear(down) >residual_add> norm(final) >norm_prologue> linear(lm_head) >argmax> argmax"),
            std::string::npos)
      << d;
}

// GPT-2: LayerNorm and GELU; the rules still propose the norm prologue and residual add (the data flow is the
// same), and no SiLU gate. Whether LayerNorm can be a prologue is the backend's to refuse.
TEST(FusionPlan, Gpt2DecodeStepRules) {
  ModelRunner* r = nullptr;
  const StepOps ops = accept_all(decode_step_ops("gpt2", r));
  const int L = int(engine_for("gpt2").model().num_layers);
  EXPECT_EQ(ops.count(Fusion::SiluGate), 0) << ops.describe();
  EXPECT_EQ(ops.count(Fusion::ResidualAdd), 2 * L) << ops.describe();
  EXPECT_EQ(ops.count(Fusion::RopeAttention), L) << ops.describe();  // rope_kv writes the cache (no rotation)
}

// An op inserted between a norm and the linear reading its output (as an all-reduce or a quantize would be)
// separates them: the prologue fusion is gone, visibly, and the ops around it still fuse where they touch.
TEST(FusionPlan, AnOpBetweenTwoFusedOpsSeparatesThem) {
  ModelRunner* r = nullptr;
  StepOps ops = decode_step_ops("llama", r);
  const StepOps before = accept_all(ops);
  size_t at = 0;
  for (; at < ops.ops.size(); ++at)
    if (std::string(ops.ops[at].label) == "linear(qkv)") break;
  ASSERT_LT(at, ops.ops.size());
  const auto& norm = std::get<NormParams>(ops.ops[at - 1].params);
  ops.ops.insert(ops.ops.begin() + ptrdiff_t(at),
                 StepOp{OpParams(GatherRowsParams{norm.out, Tensor(), norm.out}), Fusion::None, "inserted"});
  const StepOps after = accept_all(ops);
  EXPECT_EQ(after.count(Fusion::NormPrologue), before.count(Fusion::NormPrologue) - 1);
  EXPECT_NE(after.describe().find("norm(input)\ninserted\nlinear(qkv)\n"), std::string::npos) << after.describe();
}

// A rule needs the data flow, not just the op kinds: a linear that does not read the norm's output is not its
// prologue's, and a norm whose add no linear before it has done cannot be a prologue.
TEST(FusionPlan, RulesFollowTheDataFlow) {
  CpuBackend be(1);
  Tensor a = be.alloc(DType::F32, {1, 8}), b = be.alloc(DType::F32, {1, 8}), res = be.alloc(DType::F32, {1, 8});
  Tensor w = be.alloc(DType::F32, {8}), W = be.alloc(DType::F32, {8, 8}), out = be.alloc(DType::F32, {1, 8});
  StepOps ops;
  ops.add(NormParams{NormType::RMSNorm, 1e-5, Tensor(), res, w, Tensor(), a}, "norm");
  ops.add(LinearParams{b, W, Tensor(), out}, "linear(other input)");
  EXPECT_EQ(propose_fusion(ops, 0), Fusion::None);
  std::get<LinearParams>(ops.ops[1].params).x = a;
  EXPECT_EQ(propose_fusion(ops, 0), Fusion::NormPrologue);
  std::get<NormParams>(ops.ops[0].params).add = b;  // an add nothing before it has done
  EXPECT_EQ(propose_fusion(ops, 0), Fusion::None);
  // The linear writing b, then the norm adding b: the residual add, and then the prologue.
  StepOps chain;
  chain.add(LinearParams{out, W, Tensor(), b}, "linear");
  chain.ops.push_back(ops.ops[0]);
  chain.ops.push_back(ops.ops[1]);
  chain = accept_all(chain);
  EXPECT_EQ(chain.describe(), "linear >residual_add> norm >norm_prologue> linear(other input)\n");
}

}  // namespace
}  // namespace kiln::test
