// Host-side helpers of the cuda backend, usable from .cpp (g++) and .cu files: CUDA error checks that throw
// kiln::Error, and dispatch from a dtype to a CUDA element type (a generic lambda per call site, no macros).
// No fmt here: nvcc's front end stays away from it; throw_error is defined in a .cpp.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <utility>

#include "core/dtype.h"

namespace kiln::cuda {

[[noreturn]] void throw_error(const std::string& msg);  // throws kiln::Error
void check_cuda(cudaError_t e, const char* what, const char* file, int line);

#define KILN_CUDA_CHECK(x) ::kiln::cuda::check_cuda((x), #x, __FILE__, __LINE__)

template <class T>
struct Tag {
  using type = T;
};

// Calls f(Tag<T>{}) with T the CUDA type of a 16-bit float dtype.
template <class F>
void dispatch_half(DType dt, F&& f) {
  if (dt == DType::F16) {
    f(Tag<__half>{});
  } else if (dt == DType::BF16) {
    f(Tag<__nv_bfloat16>{});
  } else {
    throw_error("cuda backend: expected a float16 or bfloat16 tensor, got " + std::string(dtype_name(dt)));
  }
}

// Calls f(Tag<T>{}) with T in {__half, __nv_bfloat16, float}.
template <class F>
void dispatch_float(DType dt, F&& f) {
  if (dt == DType::F32) {
    f(Tag<float>{});
  } else {
    dispatch_half(dt, std::forward<F>(f));
  }
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace kiln::cuda
