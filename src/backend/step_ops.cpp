#include "backend/step_ops.h"

#include <fmt/format.h>

namespace kiln {

const char* fusion_name(Fusion f) {
  switch (f) {
    case Fusion::None: return "none";
    case Fusion::ResidualAdd: return "residual_add";
    case Fusion::NormPrologue: return "norm_prologue";
    case Fusion::SiluGate: return "silu_gate";
    case Fusion::RopeAttention: return "rope_attention";
    case Fusion::Argmax: return "argmax";
  }
  return "?";
}

std::string StepOps::describe() const {
  std::string s;
  for (size_t i = 0; i < ops.size(); ++i) {
    s += ops[i].label;
    s += ops[i].next == Fusion::None || i + 1 == ops.size() ? "\n" : fmt::format(" >{}> ", fusion_name(ops[i].next));
  }
  return s;
}

int StepOps::count(Fusion f) const {
  int n = 0;
  for (size_t i = 0; i + 1 < ops.size(); ++i) n += ops[i].next == f;
  return n;
}

void run_op(Backend& be, const OpParams& op) {
  std::visit(
      [&be](const auto& p) {
        using P = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<P, EmbeddingParams>)
          be.embedding(p);
        else if constexpr (std::is_same_v<P, NormParams>)
          be.norm(p);
        else if constexpr (std::is_same_v<P, LinearParams>)
          be.linear(p);
        else if constexpr (std::is_same_v<P, RopeKvParams>)
          be.rope_kv(p);
        else if constexpr (std::is_same_v<P, AttentionParams>)
          be.attention(p);
        else if constexpr (std::is_same_v<P, ActivationParams>)
          be.activation(p);
        else if constexpr (std::is_same_v<P, MoeParams>)
          be.moe(p);
        else if constexpr (std::is_same_v<P, GatherRowsParams>)
          be.gather_rows(p);
        else if constexpr (std::is_same_v<P, ArgmaxParams>)
          be.argmax(p);
      },
      op);
}

void Backend::run(const StepOps& plan) {
  for (const StepOp& op : plan.ops) run_op(*this, op.params);
}

}  // namespace kiln
