// The CUDA error plumbing shared by the cuda backend's files and the device queries of cuda_backend.h.
#include <cuda_runtime.h>

#include <string>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "core/error.h"

namespace kiln {

namespace cuda {
void throw_error(const std::string& msg) { throw Error(msg); }
void check_cuda(cudaError_t e, const char* what, const char* file, int line) {
  if (e != cudaSuccess) fail("CUDA error: {} ({}) at {}:{}", cudaGetErrorString(e), what, file, line);
}
}  // namespace cuda

using cuda::check_cuda;

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}

namespace {
void require_device(int device) {
  const int n = cuda_device_count();
  if (n == 0) fail("no CUDA GPU is available on this machine");
  if (device < 0 || device >= n) fail("CUDA device {}: this machine has {} (ordinals 0 to {})", device, n, n - 1);
}
}  // namespace

std::string cuda_device_arch(int device) {
  require_device(device);
  cudaDeviceProp p{};
  KILN_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  return fmt::format("sm_{}{}", p.major, p.minor);
}

std::string cuda_device_name(int device) {
  require_device(device);
  cudaDeviceProp p{};
  KILN_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  return p.name;
}

}  // namespace kiln
