// safetensors: a memory-mapped reader with zero-copy views, sharded checkpoints, and a writer.
//
// File layout: u64 little-endian header length N, N bytes of JSON header
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data section; offsets are relative to the data section.
// The reader validates everything in the header and throws kiln::Error naming the file and tensor.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace kiln {

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // points into the mapping; valid while the file is open
  size_t nbytes = 0;
  int64_t numel() const;
  std::string shape_str() const;  // "[4, 128]"
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // opens, maps and validates
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  const TensorView& get(const std::string& name) const;  // throws naming the file and tensor
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint directory: model.safetensors.index.json (sharded) or all *.safetensors files in it.
class SafetensorsSet {
 public:
  explicit SafetensorsSet(const std::string& dir);
  bool has(const std::string& name) const { return index_.count(name) != 0; }
  const TensorView& get(const std::string& name) const;  // throws naming the directory and tensor
  std::vector<std::string> names() const;

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*> index_;
};

// Collects tensors and writes one safetensors file (to PATH.tmp, then renamed). A lazy tensor's bytes are
// produced by a callback while the file is written, so a writer never holds more than one of them in memory.
class SafetensorsWriter {
 public:
  using Producer = std::function<void(uint8_t* dst)>;  // fills exactly numel * dtype_size bytes
  void add_lazy(const std::string& name, DType dtype, std::vector<int64_t> shape, Producer produce);
  // Called after each tensor is written with (tensors written, total).
  void on_progress(std::function<void(size_t, size_t)> cb) { progress_ = std::move(cb); }
  // Copies the bytes.
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data, size_t nbytes);
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, std::vector<uint8_t> bytes);
  void add_f32(const std::string& name, std::vector<int64_t> shape, const float* data);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  void write(const std::string& path) const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;  // eager tensors
    Producer produce;            // lazy tensors
    size_t nbytes = 0;
  };
  void add_entry(Entry e);
  std::vector<Entry> entries_;
  std::function<void(size_t, size_t)> progress_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace kiln
