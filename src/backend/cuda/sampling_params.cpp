// The cuda backend's sample and top_log_probs ops, host side: from the op's tensors (backend.h) to the kernel
// params of sampling.cu.
#include "backend/backend.h"
#include "backend/cuda/kernels.h"

namespace kiln::cuda {

namespace {

SampleKParams lists_kparams(const char* op, const Tensor& logits, const Tensor& rows, const Tensor& penalties,
                            const Tensor& bans, int64_t R) {
  check_sample_tensors(op, logits, rows, penalties, bans, R);
  SampleKParams k;
  k.logits = logits.ptr<float>();
  k.rows = rows.ptr<SampleRowParams>();
  k.penalties = penalties.empty() ? nullptr : penalties.ptr<PenaltyEntry>();
  k.bans = bans.empty() ? nullptr : bans.ptr<int32_t>();
  k.R = R;
  k.L = logits.dim(0);
  k.V = logits.dim(1);
  k.num_penalties = penalties.empty() ? 0 : penalties.numel() / 2;
  k.num_bans = bans.empty() ? 0 : bans.numel();
  return k;
}

}  // namespace

SampleKParams sample_kparams(const SampleParams& p) {
  const int64_t R = p.ids.numel();
  if (p.ids.dtype != DType::I32 || p.log_probs.dtype != DType::F32 || p.log_probs.numel() != R)
    fail("sample: ids must be I32 [R] and log_probs F32 [R]");
  SampleKParams k = lists_kparams("sample", p.logits, p.rows, p.penalties, p.bans, R);
  k.ids = p.ids.ptr<int32_t>();
  k.values = p.log_probs.ptr<float>();
  return k;
}

SampleKParams sample_kparams(const TopLogProbsParams& p) {
  const int64_t R = p.ids.shape.empty() ? 0 : p.ids.dim(0);
  if (p.ids.dtype != DType::I32 || p.values.dtype != DType::F32 || p.ids.numel() != R * p.k ||
      p.values.numel() != R * p.k)
    fail("top_log_probs: ids must be I32 [R, k] and values F32 [R, k]");
  SampleKParams k = lists_kparams("top_log_probs", p.logits, p.rows, p.penalties, p.bans, R);
  k.ids = p.ids.ptr<int32_t>();
  k.values = p.values.ptr<float>();
  k.k = p.k;
  return k;
}

}  // namespace kiln::cuda
