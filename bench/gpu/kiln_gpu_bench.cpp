// kiln_gpu_bench: GPU measurements that are not figures of record, one JSON object per run on stdout. Decode,
// TTFT and throughput figures come from `kiln bench` (the Executor); this tool measures what the hardware allows and
// where a step's time goes:
//   copy-bw                                  device-to-device copy bandwidth (bytes read + written per second)
//   profile    --engine D [--prompt-len 128 --batch 1 --mode decode|prefill]   op by op (see profile())
//   sampling   [--reps 3]                        one Backend::sample call per filter setting (sampling_bench.cpp)
// Engines are usually synthetic (kiln build --synthetic CONFIG --target cuda).
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "core/error.h"
#include "model/weights.h"
#include "runtime/kv_cache.h"
#include "runtime/model_runner.h"
#include "sampling_bench.h"
#include "timeline.h"

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace kiln {
namespace {

double secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Args {
  std::string cmd, engine;
  int64_t prompt_len = 128, batch = 1, reps = 3;
  std::string mode = "decode";
};

Args parse(int argc, char** argv) {
  if (argc < 2) fail("usage: kiln_gpu_bench copy-bw | profile | sampling [--engine DIR] [options]");
  Args a;
  a.cmd = argv[1];
  for (int i = 2; i < argc; i += 2) {
    const std::string k = argv[i];
    if (i + 1 >= argc) fail("{}: missing value", k);
    const std::string v = argv[i + 1];
    if (k == "--engine") a.engine = v;
    else if (k == "--prompt-len") a.prompt_len = std::stoll(v);
    else if (k == "--batch") a.batch = std::stoll(v);
    else if (k == "--reps") a.reps = std::stoll(v);
    else if (k == "--mode") a.mode = v;
    else fail("unknown option {}", k);
  }
  return a;
}

std::vector<int32_t> random_prompt(int64_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_int_distribution<int32_t> u(0, int32_t(vocab - 1));
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = u(g);
  return v;
}

json copy_bw() {
  const size_t bytes = size_t(2) << 30;
  void *a = nullptr, *b = nullptr;
  KILN_CHECK(cudaMalloc(&a, bytes) == cudaSuccess && cudaMalloc(&b, bytes) == cudaSuccess, "cudaMalloc failed");
  cudaMemset(a, 1, bytes);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<double> gbs;
  for (int i = 0; i < 12; ++i) {
    cudaEventRecord(e0);
    cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice);
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    if (i >= 2) gbs.push_back(2.0 * double(bytes) / (ms * 1e-3) / 1e9);
  }
  cudaFree(a);
  cudaFree(b);
  return {{"bench", "copy_bw"}, {"bytes", bytes}, {"copy_bw_GBs", median(gbs)}, {"max_GBs", *std::max_element(gbs.begin(), gbs.end())}};
}

// Per-op profile of a decode step of `batch` sequences with prompt-len cached tokens each, or (mode prefill) of
// one prompt of prompt-len tokens. Each op is recorded num_layers x 4 times back to back in one graph (layer l's
// own weights, streamed from memory as in a real step) and timed by replay. Also: the whole decode step replayed
// with the host running ahead (device time) and with the host waiting for each token, or the prefill step.
json profile(const Args& a) {
  auto e = Engine::load(a.engine);
  Backend& be = e->backend();
  const ModelConfig& m = e->model();
  const bool prefill = a.mode == "prefill";
  const int64_t tpb = 32, P = a.prompt_len, B = prefill ? 1 : a.batch, nbs = (P + 64 + tpb - 1) / tpb;
  const int64_t T = prefill ? P : B, R = B;  // rows through the layers; rows of logits
  ModelRunner runner(*e, allocate_kv_cache(be, m, B * nbs, tpb));
  std::vector<std::vector<int32_t>> tables(static_cast<size_t>(B));
  for (int64_t s = 0; s < B; ++s)
    for (int64_t i = 0; i < nbs; ++i) tables[size_t(s)].push_back(int32_t(s * nbs + i));
  json j = {{"bench", "profile"}, {"mode", prefill ? "prefill" : "decode"}, {"batch", B}, {"prompt_len", P}};
  const int steps = prefill ? 5 : 30;
  Tensor ids = be.alloc(DType::I32, {B});
  std::function<void(bool)> step_fn;  // decode: one step (download: the host waits for the token)
  std::vector<int32_t> toks(static_cast<size_t>(B), 1);
  if (prefill) {
    SeqStep pre;
    pre.tokens = random_prompt(P, m.vocab_size, 3);
    pre.block_table = &tables[0];
    runner.step({pre});
    be.synchronize();
    auto t0 = Clock::now();
    for (int i = 0; i < steps; ++i) runner.step({pre});
    be.synchronize();
    j["prefill_step_ms"] = secs(t0, Clock::now()) / steps * 1e3;
  } else {
    for (int64_t s0 = 0; s0 < B; s0 += 32) {  // prefill in groups of 32 prompts
      std::vector<SeqStep> pre;
      for (int64_t s = s0; s < std::min(B, s0 + 32); ++s) {
        SeqStep q;
        q.tokens = random_prompt(P, m.vocab_size, uint32_t(s) + 3);
        q.block_table = &tables[size_t(s)];
        pre.push_back(std::move(q));
      }
      runner.step(pre);
    }
    auto decode_step = [&](bool download) {
      std::vector<SeqStep> st(static_cast<size_t>(B));
      for (int64_t s = 0; s < B; ++s) {
        st[size_t(s)].tokens = {toks[size_t(s)]};
        st[size_t(s)].num_cached = int32_t(P);
        st[size_t(s)].block_table = &tables[size_t(s)];
      }
      const Tensor chosen = runner.step_greedy(st);  // as generate_greedy runs it (the choice in the graph)
      if (download) be.download(toks.data(), chosen, size_t(B) * 4);
    };
    step_fn = decode_step;
    for (int i = 0; i < 4; ++i) decode_step(true);  // graphs recorded
    auto t0 = Clock::now();
    for (int i = 0; i < steps; ++i) decode_step(true);
    j["step_with_host_roundtrip_ms"] = secs(t0, Clock::now()) / steps * 1e3;
    be.synchronize();
    t0 = Clock::now();
    for (int i = 0; i < steps; ++i) decode_step(false);  // the host runs ahead: device time per step
    be.synchronize();
    j["step_device_bound_ms"] = secs(t0, Clock::now()) / steps * 1e3;
  }

  // Ops in isolation, over every layer's weights.
  const int64_t H = m.hidden_size, I = m.intermediate_size, L = m.num_layers;
  const DType dt = be.compute_dtype();
  Tensor x = be.random_weight({T, std::max({H, I, m.q_size()})}, 5, 1.f);
  Tensor y = be.alloc(dt, {T, std::max<int64_t>(2 * I, m.qkv_size())}), act = be.alloc(dt, {T, I});
  Tensor res = be.random_weight({T, H}, 6, 1.f), qkv = be.random_weight({T, m.qkv_size()}, 7, 1.f);
  Tensor logits = be.alloc(DType::F32, {R, m.vocab_size});
  KvCacheDesc cache = allocate_kv_cache(be, m, B * nbs, tpb);
  StepMeta meta;
  std::vector<int32_t> pos, seq, offs{0}, cached, tabs, slots;
  for (int64_t s = 0; s < B; ++s) {
    const int64_t n = prefill ? P : 1, c = prefill ? 0 : P;
    for (int64_t i = 0; i < n; ++i) {
      pos.push_back(int32_t(c + i));
      seq.push_back(int32_t(s));
      slots.push_back(tables[size_t(s)][size_t((c + i) / tpb)] * int32_t(tpb) + int32_t((c + i) % tpb));
    }
    offs.push_back(int32_t(pos.size()));
    cached.push_back(int32_t(c));
    tabs.insert(tabs.end(), tables[size_t(s)].begin(), tables[size_t(s)].end());
  }
  meta.num_tokens = int32_t(T);
  meta.num_seqs = int32_t(B);
  meta.max_blocks_per_seq = int32_t(nbs);
  meta.max_new_tokens = int32_t(prefill ? P : 1);
  meta.max_context = int32_t(prefill ? P : P + 1);
  auto i32 = [&](const std::vector<int32_t>& v) {
    Tensor t = be.alloc(DType::I32, {int64_t(v.size())});
    be.upload(t, v.data(), v.size() * 4);
    return t;
  };
  meta.positions = i32(pos);
  meta.token_seq = i32(seq);
  meta.seq_offsets = i32(offs);
  meta.num_cached = i32(cached);
  meta.block_tables = i32(tabs);
  meta.slot_mapping = i32(slots);
  auto W = [&](int64_t l, const std::string& n) { return e->weight(layer_name(l, n)); };
  auto time_op = [&](const std::string& name, const std::function<void(int64_t)>& op, int64_t layers) {
    const int reps = prefill ? 1 : 4;
    for (int64_t l = 0; l < layers; ++l) op(l);  // warm-up outside the recording
    be.synchronize();
    be.begin_capture();
    for (int r = 0; r < reps; ++r)
      for (int64_t l = 0; l < layers; ++l) op(l);
    auto g = be.end_capture();
    g->replay();
    be.synchronize();
    auto t = Clock::now();
    g->replay();
    be.synchronize();
    j["op_us"][name] = secs(t, Clock::now()) / double(reps * layers) * 1e6;
  };
  auto rows = [&](const Tensor& t, int64_t n) { return t.reshaped({T, n}); };
  time_op("norm", [&](int64_t l) { be.norm({m.norm, m.norm_eps, rows(x, H), res, W(l, "input_norm.weight"), Tensor(), rows(y, H)}); }, L);
  time_op("linear_qkv", [&](int64_t l) { be.linear({rows(x, H), W(l, "attention.qkv.weight"), Tensor(), rows(y, m.qkv_size())}); }, L);
  RopeKvParams rp;
  rp.qkv = qkv;
  rp.rope = m.rope;
  rp.num_heads = m.num_heads;
  rp.num_kv_heads = m.num_kv_heads;
  rp.head_dim = m.head_dim;
  rp.meta = &meta;
  rp.cache = cache;
  time_op("rope_kv", [&](int64_t l) { rp.layer = l; be.rope_kv(rp); }, L);
  AttentionParams ap;
  ap.qkv = qkv;
  ap.out = rows(y, m.q_size());
  ap.num_heads = m.num_heads;
  ap.num_kv_heads = m.num_kv_heads;
  ap.head_dim = m.head_dim;
  ap.scale = 0.1f;
  ap.meta = &meta;
  ap.cache = cache;
  time_op("attention", [&](int64_t l) { ap.layer = l; be.attention(ap); }, L);
  time_op("linear_dense", [&](int64_t l) { be.linear({rows(x, m.q_size()), W(l, "attention.dense.weight"), Tensor(), rows(y, H)}); }, L);
  time_op("linear_gate_up", [&](int64_t l) { be.linear({rows(x, H), W(l, "mlp.gate_up.weight"), Tensor(), rows(y, 2 * I)}); }, L);
  time_op("activation", [&](int64_t l) { be.activation({ActKind::SiluGated, rows(y, 2 * I), act}); }, L);
  time_op("gate_up_and_activation", [&](int64_t l) {  // fused when the GEMV path runs
    be.linear({rows(x, H), W(l, "mlp.gate_up.weight"), Tensor(), rows(y, 2 * I)});
    be.activation({ActKind::SiluGated, rows(y, 2 * I), act});
  }, L);
  time_op("linear_down", [&](int64_t l) { be.linear({act, W(l, "mlp.down.weight"), Tensor(), rows(y, H)}); }, L);
  const Tensor& head = m.tie_embeddings ? e->weight("embed.weight") : e->weight("lm_head.weight");
  time_op("lm_head", [&](int64_t) { be.linear({x.reshaped({T, H}).rows(0, R), head, Tensor(), logits}); }, 4);
  time_op("argmax", [&](int64_t) { be.argmax({logits, ids.rows(0, R)}); }, 4);
  double per_layer = 0;
  for (auto n : {"norm", "linear_qkv", "rope_kv", "attention", "linear_dense", "norm", "gate_up_and_activation",
                 "linear_down"})
    per_layer += j["op_us"][n].get<double>();
  j["sum_of_ops_ms"] = (per_layer * double(L) + j["op_us"]["lm_head"].get<double>() + j["op_us"]["norm"].get<double>() +
                        j["op_us"]["argmax"].get<double>()) / 1e3;
  const double bytes_layer = double(m.qkv_size() + m.q_size() + 3 * I) * double(H) * double(dtype_size(dt));
  const double gemm_us = j["op_us"]["linear_qkv"].get<double>() + j["op_us"]["linear_dense"].get<double>() +
                         j["op_us"]["gate_up_and_activation"].get<double>() + j["op_us"]["linear_down"].get<double>();
  j["layer_gemm_weight_GBs"] = bytes_layer / (gemm_us * 1e-6) / 1e9;
  j["layer_gemm_TFLOPs"] = bytes_layer / double(dtype_size(dt)) * 2.0 * double(T) / (gemm_us * 1e-6) / 1e12;
  // The device's kernel timeline of two decode steps with the host running ahead (the second is the one to
  // read: the first may start behind the host).
  if (step_fn) {
    step_fn(true);
    j["timeline"] = kernel_timeline([&] { step_fn(false); step_fn(false); }, [&] { be.synchronize(); });
  }
  return j;
}

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) {
  try {
    kiln::Args a = kiln::parse(argc, argv);
    json j;
    if (a.cmd == "copy-bw") {
      j = kiln::copy_bw();
    } else if (a.cmd == "profile") {
      j = kiln::profile(a);
    } else if (a.cmd == "sampling") {
      j = kiln::sampling_bench(a.reps);
    } else {
      kiln::fail("unknown benchmark '{}'", a.cmd);
    }
    j["engine"] = a.engine;
    j["gpu"] = kiln::cuda_device_name();
    std::printf("%s\n", j.dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
