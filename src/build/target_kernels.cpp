#include "build/target_kernels.h"

#include <fmt/format.h>

#include "core/error.h"

namespace kiln {

namespace {

// The GEMM kernel a quant_algo needs, as users know it.
std::string gemm_kernel(QuantAlgo a) {
  switch (a) {
    case QuantAlgo::None: return "";
    case QuantAlgo::FP8: return "FP8 GEMM";
    case QuantAlgo::FP8_PER_CHANNEL_PER_TOKEN: return "FP8 per-channel/per-token GEMM";
    case QuantAlgo::W8A8_SQ_PER_CHANNEL_PER_TOKEN: return "int8 SmoothQuant (W8A8) GEMM";
    case QuantAlgo::W8A16: return "int8 weight-only (W8A16) GEMM";
    case QuantAlgo::W4A16: return "int4 weight-only (W4A16) GEMM";
    case QuantAlgo::W4A16_AWQ: return "int4 AWQ (W4A16_AWQ) GEMM";
    case QuantAlgo::W4A16_GPTQ: return "int4 GPTQ (W4A16_GPTQ) GEMM";
  }
  return "";
}

std::string kv_kernel(KvCacheQuantAlgo a) {
  switch (a) {
    case KvCacheQuantAlgo::None: return "";
    case KvCacheQuantAlgo::FP8: return "FP8 KV-cache attention";
    case KvCacheQuantAlgo::INT8: return "INT8 KV-cache attention";
  }
  return "";
}

// The kernels each target has. cpu: every quantized GEMM and KV cache (the reference, src/backend/cpu/quant_linear.h);
// cuda: none quantized yet.
bool has_gemm(const std::string& target, QuantAlgo a) { return a == QuantAlgo::None || target == "cpu"; }
bool has_kv(const std::string& target, KvCacheQuantAlgo a) { return a == KvCacheQuantAlgo::None || target == "cpu"; }

}  // namespace

std::string missing_quant_kernels(const std::string& target, const QuantConfig& q) {
  const bool gemm = !has_gemm(target, q.quant_algo), kv = !has_kv(target, q.kv_cache_quant_algo);
  if (!gemm && !kv) return "";
  if (gemm && kv)
    return fmt::format("the {} target has no {} kernel and no {} kernel yet", target, gemm_kernel(q.quant_algo),
                       kv_kernel(q.kv_cache_quant_algo));
  return fmt::format("the {} target has no {} kernel yet", target,
                     gemm ? gemm_kernel(q.quant_algo) : kv_kernel(q.kv_cache_quant_algo));
}

void require_quant_kernels(const std::string& target, const QuantConfig& q, const std::string& what) {
  const std::string missing = missing_quant_kernels(target, q);
  if (missing.empty()) return;
  std::string fields;
  if (q.quant_algo != QuantAlgo::None) fields = fmt::format("quant_algo {}", quant_algo_name(q.quant_algo));
  if (q.kv_cache_quant_algo != KvCacheQuantAlgo::None)
    fields += fmt::format("{}kv_cache_quant_algo {}", fields.empty() ? "" : " and ",
                          kv_cache_quant_algo_name(q.kv_cache_quant_algo));
  fail("{} has {}: {}", what, fields, missing);
}

}  // namespace kiln
