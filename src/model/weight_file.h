// The files of a kiln checkpoint: config.json (the model config with its mapping and quantization) and
// DIR/rank{N}.safetensors for every rank of the mapping (parallel/mapping.h), holding the tensors of
// expected_weights (src/model/weights.h). Engines' weight files are the same kind of file in the target's layout.
//
// Packed int4 (DType::I4X2) has no safetensors dtype: a file stores such a tensor as U8 of the same shape
// ([lead..., N, K / 2] bytes) and records the packing in its metadata, "kiln.int4_packing": "int4x2-low-first"
// (two's complement nibbles; element 2j of a row in the low nibble of byte j, 2j + 1 in the high one, along the
// input dimension). A reader refuses a file whose int4 tensors come with another packing or none.
#pragma once
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/weights.h"

namespace kiln {

constexpr const char* kInt4PackingKey = "kiln.int4_packing";
constexpr const char* kInt4Packing = "int4x2-low-first";

// A kiln checkpoint's config.json: config_to_json plus "format": "kiln-checkpoint" and "format_version": 1.
void write_checkpoint_config(const std::string& path, const ModelConfig& c);
// Reads DIR/config.json of a kiln checkpoint (errors name the file): the model with its mapping and quantization.
ModelConfig read_checkpoint_config(const std::string& dir);

// The file a tensor of this dtype is stored as: U8 for I4X2, else itself.
DType storage_dtype(DType t);

// Checks that DIR has rank{N}.safetensors for every rank of the mapping; the error names the first missing file.
void check_rank_files(const std::string& dir, const Mapping& m);

// One rank's weight file, opened and checked against expected_weights(config): every tensor present, with its
// shape and dtype (float tensors: F32, F16 or BF16; quantized data and parameters: exactly the spec's dtype) and
// the int4 packing recorded. Errors name the file and the tensor. Tensors the config does not need are ignored.
class WeightFile {
 public:
  WeightFile(const std::string& path, const ModelConfig& c);
  const std::string& path() const { return file_.path(); }
  const std::vector<WeightSpec>& specs() const { return specs_; }
  // A tensor of the config (I4X2 tensors come back as I4X2 views of their bytes); throws naming it otherwise.
  const TensorView& get(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return file_.metadata(); }

 private:
  SafetensorsFile file_;
  std::vector<WeightSpec> specs_;
  std::map<std::string, TensorView> views_;
};

// Writes one rank's weight file: every tensor of expected_weights(config), each once, in the spec's dtype (float
// tensors: any of F32/F16/BF16). Each add is checked against its spec; write() refuses a missing tensor.
class WeightFileWriter {
 public:
  WeightFileWriter(const ModelConfig& c, const std::string& format);  // "kiln-checkpoint" | "kiln-engine"
  void add(const std::string& name, DType dtype, std::vector<uint8_t> bytes);
  // The producer fills the tensor's bytes while the file is written (SafetensorsWriter::add_lazy).
  void add_lazy(const std::string& name, DType dtype, SafetensorsWriter::Producer produce);
  void on_progress(std::function<void(size_t, size_t)> cb) { w_.on_progress(std::move(cb)); }
  void write(const std::string& path);

 private:
  const WeightSpec& check(const std::string& name, DType dtype);
  std::vector<WeightSpec> specs_;
  std::set<std::string> added_;
  SafetensorsWriter w_;
};

}  // namespace kiln
