// The cpu backend: fp32 compute, multi-threaded, GEMMs through OpenBLAS. The reference for every other backend.
#pragma once
#include <memory>

#include "backend/backend.h"
#include "core/thread_pool.h"

namespace kiln {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int num_threads = 0);
  std::string name() const override { return "cpu"; }
  DType compute_dtype() const override { return DType::F32; }

  Tensor alloc(DType dtype, std::vector<int64_t> shape) override;
  void upload(Tensor& dst, const void* src, size_t bytes) override;
  void download(void* dst, const Tensor& src, size_t bytes) override;
  void fill_zero(Tensor& t) override;
  void synchronize() override {}
  size_t free_memory() const override;
  Tensor load_weight(const WeightView& v) override;

  void embedding(const EmbeddingParams& p) override;
  void norm(const NormParams& p) override;
  void linear(const LinearParams& p) override;
  void rope_kv(const RopeKvParams& p) override;
  void attention(const AttentionParams& p) override;
  void activation(const ActivationParams& p) override;
  void moe(const MoeParams& p) override;
  void gather_rows(const GatherRowsParams& p) override;
  void copy_kv_blocks(const KvCacheDesc& cache, const std::vector<std::pair<int32_t, int32_t>>& src_dst) override;
  void argmax(const ArgmaxParams& p) override;
  void sample(const SampleParams& p) override;
  void top_log_probs(const TopLogProbsParams& p) override;
  Tensor random_weight(std::vector<int64_t> shape, uint64_t seed, float scale) override;

 private:
  ThreadPool pool_;
};

}  // namespace kiln
