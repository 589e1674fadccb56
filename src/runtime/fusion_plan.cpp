#include "runtime/fusion_plan.h"

namespace kiln {

namespace {

// x and y are the same buffer, seen the same way.
bool same(const Tensor& x, const Tensor& y) {
  return !x.empty() && x.data == y.data && x.dtype == y.dtype && x.shape == y.shape;
}

template <class A, class B>
bool pair_is(const StepOps& plan, size_t i, const A*& a, const B*& b) {
  a = std::get_if<A>(&plan.ops[i].params);
  b = std::get_if<B>(&plan.ops[i + 1].params);
  return a && b;
}

}  // namespace

Fusion propose_fusion(const StepOps& plan, size_t i) {
  if (i + 1 >= plan.ops.size()) return Fusion::None;
  {
    const LinearParams* l;
    const NormParams* n;
    if (pair_is(plan, i, l, n) && same(n->add, l->out)) return Fusion::ResidualAdd;
  }
  {
    const NormParams* n;
    const LinearParams* l;
    // The norm's add, if it has one, must already be done by the linear before it.
    if (pair_is(plan, i, n, l) && same(l->x, n->out) &&
        (n->add.empty() || (i > 0 && plan.ops[i - 1].next == Fusion::ResidualAdd)))
      return Fusion::NormPrologue;
  }
  {
    const LinearParams* l;
    const ActivationParams* a;
    if (pair_is(plan, i, l, a) && a->kind == ActKind::SiluGated && same(a->in, l->out)) return Fusion::SiluGate;
  }
  {
    const RopeKvParams* r;
    const AttentionParams* a;
    if (pair_is(plan, i, r, a) && same(a->qkv, r->qkv) && a->layer == r->layer && a->meta == r->meta &&
        a->cache.pool.data == r->cache.pool.data)
      return Fusion::RopeAttention;
  }
  {
    const LinearParams* l;
    const ArgmaxParams* a;
    if (pair_is(plan, i, l, a) && same(a->logits, l->out)) return Fusion::Argmax;
  }
  return Fusion::None;
}

void plan_fusions(StepOps& plan, const Backend& be) {
  for (size_t i = 0; i + 1 < plan.ops.size(); ++i) {
    plan.ops[i].next = Fusion::None;
    const Fusion f = propose_fusion(plan, i);
    if (f != Fusion::None && be.can_fuse(plan, i, f)) plan.ops[i].next = f;
  }
}

}  // namespace kiln
