// The cpu backend's matrix products are batch-invariant: a row's result is bitwise the same whatever other rows
// share the call (how many, and what they hold). The executor relies on it for seeded sampling to give the same
// tokens alone and in a busy batch. OpenBLAS switches kernels by problem size, so this is checked on the
// installed library for layer shapes from tiny to large, an MoE router's narrow one included.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"

namespace kiln {
namespace {

Tensor filled(Backend& be, std::vector<int64_t> shape, std::mt19937& rng) {
  Tensor t = be.alloc(DType::F32, std::move(shape));
  std::normal_distribution<float> d;
  std::vector<float> v(static_cast<size_t>(t.numel()));
  for (auto& x : v) x = d(rng);
  be.upload(t, v.data(), v.size() * 4);
  return t;
}

TEST(CpuGemmInvariance, LinearRowsDoNotDependOnTheBatch) {
  auto be = std::make_unique<CpuBackend>(2);
  std::mt19937 rng(5);
  const int64_t shapes[][2] = {{4, 64},   {8, 128},    {64, 32},    {96, 128},  {127, 256}, {128, 128},
                               {256, 128}, {384, 96},  {768, 256},  {1536, 256}, {4096, 256}, {256, 768}};
  for (auto [N, K] : shapes) {
    const int64_t Mmax = 300;
    Tensor w = filled(*be, {N, K}, rng), x = filled(*be, {Mmax, K}, rng);
    Tensor out = be->alloc(DType::F32, {Mmax, N}), one = be->alloc(DType::F32, {1, N});
    for (int64_t M : {1, 2, 3, 7, 15, 16, 17, 31, 32, 33, 64, 100, 255, 300}) {
      be->linear({x.rows(0, M), w, Tensor(), out.rows(0, M)});
      for (int64_t r : {int64_t(0), M / 2, M - 1}) {
        be->linear({x.rows(r, 1), w, Tensor(), one});
        ASSERT_EQ(std::memcmp(out.ptr<float>() + r * N, one.ptr<float>(), size_t(N) * 4), 0)
            << "N " << N << " K " << K << ": row " << r << " of " << M << " differs from the row alone";
      }
    }
  }
}

TEST(CpuGemmInvariance, MoeRowsDoNotDependOnTheBatch) {
  auto be = std::make_unique<CpuBackend>(2);
  std::mt19937 rng(6);
  const int64_t H = 64, I = 128, E = 4, T = 40;
  Tensor x = filled(*be, {T, H}, rng), router = filled(*be, {E, H}, rng);
  Tensor gate_up = filled(*be, {E, 2 * I, H}, rng), down = filled(*be, {E, H, I}, rng);
  Tensor out = be->alloc(DType::F32, {T, H}), one = be->alloc(DType::F32, {1, H});
  be->moe({x, router, gate_up, down, 2, out});
  for (int64_t t = 0; t < T; ++t) {
    be->moe({x.rows(t, 1), router, gate_up, down, 2, one});
    ASSERT_EQ(std::memcmp(out.ptr<float>() + t * H, one.ptr<float>(), size_t(H) * 4), 0) << "token " << t;
  }
}

}  // namespace
}  // namespace kiln
