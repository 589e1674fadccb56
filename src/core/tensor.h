// Tensor: a typed, shaped view of memory owned by a backend (host memory for cpu, device memory for cuda).
// `owner` keeps the allocation alive; views share it. Shapes are row-major.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace kiln {

struct Tensor {
  std::shared_ptr<void> owner;
  void* data = nullptr;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;

  bool empty() const { return data == nullptr; }
  int64_t numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype); }
  int64_t dim(int i) const { return shape[i < 0 ? shape.size() + i : size_t(i)]; }
  template <typename T>
  T* ptr() const { return static_cast<T*>(data); }
  // A view of rows [begin, begin + count) along the first dimension.
  Tensor rows(int64_t begin, int64_t count) const {
    Tensor t = *this;
    int64_t row = numel() / (shape.empty() ? 1 : shape[0]);
    t.data = static_cast<uint8_t*>(data) + size_t(begin * row) * dtype_size(dtype);
    t.shape[0] = count;
    return t;
  }
  Tensor reshaped(std::vector<int64_t> s) const {
    Tensor t = *this;
    t.shape = std::move(s);
    return t;
  }
  std::string shape_str() const;
};

}  // namespace kiln
