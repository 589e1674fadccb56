// The MoE layer of the cuda backend (moe_runner.h).
#include "backend/cuda/moe_runner.h"

namespace kiln::cuda {

void MoeRunner::reserve(int64_t T, int64_t H, int64_t I, int64_t E, int64_t K, bool capturing) {
  logits_.get<float>(size_t(T * E), capturing, "moe");
  w_.get<float>(size_t(T * K), capturing, "moe");
  e_.get<int32_t>(size_t(T * K), capturing, "moe");
  off_.get<int32_t>(size_t(E + 1), capturing, "moe");
  slot_token_.get<int32_t>(size_t(T * K), capturing, "moe");
  token_slot_.get<int32_t>(size_t(T * K), capturing, "moe");
  gu_.get<uint16_t>(size_t(T * K * 2 * I), capturing, "moe");
  act_.get<uint16_t>(size_t(T * K * I), capturing, "moe");
  y_.get<float>(size_t(T * K * H), capturing, "moe");
}

void MoeRunner::run(const MoeParams& p, DType dt, GemmRunner& gemm, bool capturing, cudaStream_t s) {
  const int64_t T = p.x.dim(0), H = p.x.dim(1), E = p.router.dim(0), I = p.down.dim(2), K = p.top_k;
  if (T == 0) return;
  reserve(T, H, I, E, K, capturing);
  // router logits [T, E] in F32
  GemmArgs r;
  r.x = p.x.data;
  r.w = p.router.data;
  r.out = logits_.ptr;
  r.M = T;
  r.N = E;
  r.K = H;
  r.dt = dt;
  r.out_dt = DType::F32;
  gemm.run(r);
  MoeRouteKParams route;
  route.logits = static_cast<const float*>(logits_.ptr);
  route.T = T;
  route.E = E;
  route.top_k = K;
  route.topk_weight = static_cast<float*>(w_.ptr);
  route.topk_expert = static_cast<int32_t*>(e_.ptr);
  route.offsets = static_cast<int32_t*>(off_.ptr);
  route.slot_token = static_cast<int32_t*>(slot_token_.ptr);
  route.token_slot = static_cast<int32_t*>(token_slot_.ptr);
  invoke(route, s);
  // gate_up over the routed rows [T K, 2I], SiLU-gated [T K, I], down [T K, H] (F32), weighted combine.
  GroupedGemmKParams g;
  g.x = p.x.data;
  g.gather = route.slot_token;
  g.w = p.gate_up.data;
  g.offsets = route.offsets;
  g.out = gu_.ptr;
  g.E = E;
  g.M = T * K;
  g.N = 2 * I;
  g.K = H;
  g.max_group_rows = T;
  g.dt = dt;
  g.out_dt = dt;
  invoke(g, s);
  ActKParams a;
  a.in = gu_.ptr;
  a.out = act_.ptr;
  a.T = T * K;
  a.I = I;
  a.dt = dt;
  invoke(a, s);
  g.x = act_.ptr;
  g.gather = nullptr;
  g.w = p.down.data;
  g.out = y_.ptr;
  g.N = H;
  g.K = I;
  g.out_dt = DType::F32;
  invoke(g, s);
  MoeCombineKParams c;
  c.y = static_cast<const float*>(y_.ptr);
  c.topk_weight = route.topk_weight;
  c.token_slot = route.token_slot;
  c.out = p.out.data;
  c.T = T;
  c.H = H;
  c.top_k = K;
  c.dt = dt;
  invoke(c, s);
}


}  // namespace kiln::cuda
