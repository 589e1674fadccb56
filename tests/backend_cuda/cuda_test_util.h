// Helpers for the cuda backend tests: GPU detection (tests skip with a message without one), host <-> backend
// tensors in any float dtype, random inputs rounded to the compute dtype (so both backends see the same values),
// a StepMeta builder for packed paged-attention batches, and cuda engines of the fixture models.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "build/engine_builder.h"
#include "common/test_util.h"
#include "convert/convert.h"
#include "runtime/backend_factory.h"
#ifdef KILN_WITH_CUDA
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_planner.h"
#endif

namespace kiln::test {

inline bool have_gpu() {
#ifdef KILN_WITH_CUDA
  return cuda_device_count() > 0;
#else
  return false;
#endif
}

inline const char* no_gpu_message() {
#ifdef KILN_WITH_CUDA
  return "no CUDA GPU on this machine: cuda backend tests skipped";
#else
  return "kiln built without CUDA: cuda backend tests skipped";
#endif
}

inline std::unique_ptr<Backend> cuda_backend(DType dt) {
#ifdef KILN_WITH_CUDA
  return make_cuda_backend(dt);
#else
  (void)dt;
  return nullptr;
#endif
}

inline double tol_for(DType dt) { return dt == DType::F16 ? 1e-2 : 4e-2; }

// n values uniform in [-scale, scale), rounded through dt.
inline std::vector<float> rnd(size_t n, uint32_t seed, float scale, DType dt) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = u(g);
  std::vector<uint16_t> h(n);
  if (dt != DType::F32) {
    convert_from_f32(v.data(), dt, h.data(), n);
    convert_to_f32(dt, h.data(), v.data(), n);
  }
  return v;
}

// A tensor on `be` in dtype dt holding `v` (converted from fp32).
inline Tensor put(Backend& be, const std::vector<float>& v, std::vector<int64_t> shape, DType dt) {
  Tensor t = be.alloc(dt, std::move(shape));
  if (size_t(t.numel()) != v.size()) ADD_FAILURE() << "put: " << v.size() << " values for " << t.shape_str();
  if (dt == DType::F32) {
    be.upload(t, v.data(), v.size() * 4);
  } else {
    std::vector<uint16_t> h(v.size());
    convert_from_f32(v.data(), dt, h.data(), v.size());
    be.upload(t, h.data(), h.size() * 2);
  }
  return t;
}

inline Tensor put_i32(Backend& be, const std::vector<int32_t>& v) {
  Tensor t = be.alloc(DType::I32, {int64_t(std::max<size_t>(v.size(), 1))});
  t.shape = {int64_t(v.size())};
  if (!v.empty()) be.upload(t, v.data(), v.size() * 4);
  return t;
}

inline std::vector<float> get(Backend& be, const Tensor& t) {
  std::vector<float> v(size_t(t.numel()));
  if (t.dtype == DType::F32) {
    be.download(v.data(), t, v.size() * 4);
  } else {
    std::vector<uint16_t> h(v.size());
    be.download(h.data(), t, h.size() * 2);
    convert_to_f32(t.dtype, h.data(), v.data(), v.size());
  }
  return v;
}

inline double rel(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return 1e9;
  for (float x : a)
    if (!std::isfinite(x)) return 1e9;
  return rel_err(a.data(), b.data(), a.size());
}

// Sequences of a packed step: (tokens already cached, new tokens). Blocks are a shuffled permutation.
struct MetaSpec {
  std::vector<std::pair<int32_t, int32_t>> seqs;
  int64_t tpb = 16;
  uint32_t seed = 7;
};

struct HostMeta {
  std::vector<int32_t> positions, token_seq, seq_offsets{0}, num_cached, block_tables, slot_mapping;
  int32_t T = 0, S = 0, max_blocks = 0, max_new = 0, max_ctx = 0, num_blocks = 0;
};

inline HostMeta make_meta(const MetaSpec& m) {
  HostMeta h;
  h.S = int32_t(m.seqs.size());
  for (auto [c, n] : m.seqs) {
    h.max_blocks = std::max<int32_t>(h.max_blocks, int32_t((c + n + m.tpb - 1) / m.tpb));
    h.max_new = std::max(h.max_new, n);
    h.max_ctx = std::max(h.max_ctx, c + n);
  }
  h.num_blocks = h.max_blocks * h.S + 3;
  std::vector<int32_t> perm(size_t(h.num_blocks));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(m.seed));
  h.block_tables.assign(size_t(h.S * h.max_blocks), 0);
  int next = 0;
  for (int32_t s = 0; s < h.S; ++s) {
    auto [c, n] = m.seqs[size_t(s)];
    const int32_t nb = int32_t((c + n + m.tpb - 1) / m.tpb);
    for (int32_t b = 0; b < nb; ++b) h.block_tables[size_t(s * h.max_blocks + b)] = perm[size_t(next++)];
    for (int32_t j = 0; j < n; ++j) {
      const int32_t p = c + j;
      h.positions.push_back(p);
      h.token_seq.push_back(s);
      h.slot_mapping.push_back(int32_t(h.block_tables[size_t(s * h.max_blocks + p / m.tpb)] * m.tpb + p % m.tpb));
    }
    h.seq_offsets.push_back(int32_t(h.positions.size()));
    h.num_cached.push_back(c);
  }
  h.T = int32_t(h.positions.size());
  return h;
}

// The same metadata on a backend (tensors kept alive by the returned struct).
inline StepMeta upload_meta(Backend& be, const HostMeta& h) {
  StepMeta m;
  m.num_tokens = h.T;
  m.num_seqs = h.S;
  m.max_blocks_per_seq = h.max_blocks;
  m.max_new_tokens = h.max_new;
  m.max_context = h.max_ctx;
  m.positions = put_i32(be, h.positions);
  m.token_seq = put_i32(be, h.token_seq);
  m.seq_offsets = put_i32(be, h.seq_offsets);
  m.num_cached = put_i32(be, h.num_cached);
  m.block_tables = put_i32(be, h.block_tables);
  m.block_tables.shape = {h.S, h.max_blocks};
  m.slot_mapping = put_i32(be, h.slot_mapping);
  return m;
}

inline KvCacheDesc make_cache(Backend& be, const std::vector<float>& v, int64_t layers, int64_t blocks, int64_t nkv,
                              int64_t tpb, int64_t hd, DType dt) {
  KvCacheDesc c;
  c.num_layers = layers;
  c.num_blocks = blocks;
  c.num_kv_heads = nkv;
  c.tokens_per_block = tpb;
  c.head_dim = hd;
  c.pool = put(be, v, {layers, blocks, 2, nkv, tpb, hd}, dt);
  return c;
}

// The engine directory of fixture `model` converted and built for cuda, once per (model, dtype, beam width).
inline const std::string& cuda_engine(const std::string& model, const std::string& dtype, int64_t max_beam_width = 1) {
  struct Built {
    TempDir dir;
    std::string engine;
  };
  static std::map<std::string, std::unique_ptr<Built>> cache;
  auto& b = cache[model + "/" + dtype + "/" + std::to_string(max_beam_width)];
  if (!b) {
    b = std::make_unique<Built>();
    ConvertOptions c;
    c.model_dir = model_dir(model);
    c.output_dir = b->dir / "ckpt";
    c.progress = false;
    convert_checkpoint(c);
    BuildOptions o;
    o.checkpoint_dir = c.output_dir;
    o.output_dir = b->dir / "engine";
    o.target = "cuda";
    o.dtype = dtype_from_name(dtype);
    o.limits.max_num_tokens = 256;  // fewer autotuning buckets; the prompts are short
    o.limits.max_beam_width = max_beam_width;
    o.plan = target_planner("cuda");
    build_engine(o);
    b->engine = o.output_dir;
  }
  return b->engine;
}

}  // namespace kiln::test
