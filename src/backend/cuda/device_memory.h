// Device memory helpers of the cuda backend: a workspace buffer that grows on demand (never while a graph is
// recorded), and the cache of freed blocks behind CudaBackend::alloc.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <vector>

#include "backend/cuda/cuda_check.h"
#include "core/error.h"

namespace kiln {

// A device allocation that grows on demand (never while a graph is being recorded: it would move).
struct DeviceBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (ptr) cudaFree(ptr);
  }
  template <class T>
  T* get(size_t n, bool capturing, const char* what) {
    const size_t need = std::max<size_t>(n * sizeof(T), 256);
    if (need > bytes) {
      if (capturing) fail("cuda backend: workspace '{}' must grow while a step graph is recorded", what);
      if (ptr) KILN_CUDA_CHECK(cudaFree(ptr));
      ptr = nullptr;
      KILN_CUDA_CHECK(cudaMalloc(&ptr, need));
      // cudaMemset runs on the legacy default stream, which the backend's non-blocking stream does not wait
      // for: without the synchronize, a kernel could read the buffer (an attention counter) before it is zero.
      KILN_CUDA_CHECK(cudaMemset(ptr, 0, need));
      KILN_CUDA_CHECK(cudaDeviceSynchronize());
      bytes = need;
    }
    return static_cast<T*>(ptr);
  }
};

// Freed device blocks kept for reuse by size class (cudaMalloc/cudaFree synchronize the device and take
// milliseconds for large buffers, e.g. a runner's workspaces per request). Shared with every tensor's deleter,
// so tensors may outlive the backend.
class BlockCache {
 public:
  static size_t size_class(size_t bytes) {
    const size_t q = bytes < (size_t(1) << 20) ? 512 : (size_t(1) << 20);
    return (std::max<size_t>(bytes, 256) + q - 1) / q * q;
  }
  void* take(size_t cls) {
    std::lock_guard<std::mutex> g(mu_);
    auto it = free_.find(cls);
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    cached_ -= cls;
    return p;
  }
  void give(void* p, size_t cls) {
    std::lock_guard<std::mutex> g(mu_);
    free_[cls].push_back(p);
    cached_ += cls;
  }
  void release_all() {  // back to the driver (on an allocation failure, and at the end)
    std::lock_guard<std::mutex> g(mu_);
    for (auto& [cls, v] : free_)
      for (void* p : v) cudaFree(p);
    free_.clear();
    cached_ = 0;
  }
  size_t cached() const {
    std::lock_guard<std::mutex> g(mu_);
    return cached_;
  }
  ~BlockCache() { release_all(); }

 private:
  mutable std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0;
};

}  // namespace kiln
