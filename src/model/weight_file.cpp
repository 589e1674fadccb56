#include "model/weight_file.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/json_file.h"

namespace fs = std::filesystem;

namespace kiln {

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  TensorView v;
  v.shape = s;
  return v.shape_str();
}

bool needs_int4_packing(const std::vector<WeightSpec>& specs) {
  for (auto& s : specs)
    if (s.quant && s.dtype == DType::I4X2) return true;
  return false;
}

std::string dtype_label(DType t) {
  const auto st = dtype_st_name(t);
  return std::string(st.empty() ? dtype_name(t) : st);
}

}  // namespace

void write_checkpoint_config(const std::string& path, const ModelConfig& c) {
  c.validate();
  nlohmann::json j = config_to_json(c);
  j["format"] = "kiln-checkpoint";
  j["format_version"] = 1;
  write_json_file(path, j);
}

ModelConfig read_checkpoint_config(const std::string& dir) {
  if (!fs::is_directory(dir)) fail("--checkpoint {}: not a directory", dir);
  const std::string path = (fs::path(dir) / "config.json").string();
  if (!fs::exists(path)) fail("{}: missing (not a kiln checkpoint?)", path);
  auto j = read_json_file(path);
  if (!j.is_object() || j.value("format", "") != "kiln-checkpoint")
    fail("{}: not a kiln checkpoint (run kiln convert on a Hugging Face folder first)", path);
  return config_from_json(j, path);
}

DType storage_dtype(DType t) { return t == DType::I4X2 ? DType::U8 : t; }

void check_rank_files(const std::string& dir, const Mapping& m) {
  for (int64_t r = 0; r < m.world_size(); ++r) {
    const fs::path f = fs::path(dir) / rank_file_name(r);
    if (!fs::exists(f))
      fail("{}: missing (the mapping has {} rank{}: tp_size {} x pp_size {})", f.string(), m.world_size(),
           m.world_size() == 1 ? "" : "s", m.tp_size, m.pp_size);
  }
}

WeightFile::WeightFile(const std::string& path, const ModelConfig& c) : file_(path), specs_(expected_weights(c)) {
  if (needs_int4_packing(specs_)) {
    auto it = file_.metadata().find(kInt4PackingKey);
    if (it == file_.metadata().end())
      fail("{}: quant_algo {} stores int4 weights, but the file records no '{}' (expected '{}')", path,
           quant_algo_name(c.quant.quant_algo), kInt4PackingKey, kInt4Packing);
    if (it->second != kInt4Packing)
      fail("{}: {} '{}' is not a packing kiln reads (expected '{}')", path, kInt4PackingKey, it->second, kInt4Packing);
  }
  for (auto& spec : specs_) {
    TensorView t = file_.get(spec.name);
    if (spec.quant) {
      if (t.dtype != storage_dtype(spec.dtype))
        fail("{}: tensor '{}' has dtype {}, expected {} (quant_algo {})", path, spec.name, dtype_label(t.dtype),
             spec.dtype == DType::I4X2 ? "U8 (packed int4)" : dtype_label(spec.dtype),
             quant_algo_name(c.quant.quant_algo));
      t.dtype = spec.dtype;
    } else if (!is_float(t.dtype)) {
      fail("{}: tensor '{}' has dtype {}, expected a float type (F32, F16 or BF16): the config's quantization "
           "(quant_algo {}) does not quantize it", path, spec.name, dtype_label(t.dtype),
           quant_algo_name(c.quant.quant_algo));
    }
    if (t.shape != spec.shape)
      fail("{}: tensor '{}' has shape {}, expected {}", path, spec.name, t.shape_str(), shape_str(spec.shape));
    views_.emplace(spec.name, std::move(t));
  }
  // None extra either: a config whose num_layers was lowered would otherwise run on part of the weights.
  for (auto& [name, t] : file_.tensors())
    if (!views_.count(name))
      fail("{}: tensor '{}' is not part of the model its config describes ({} layers; was the config edited?)", path,
           name, c.num_layers);
}

const TensorView& WeightFile::get(const std::string& name) const {
  auto it = views_.find(name);
  if (it == views_.end()) fail("{}: no tensor '{}' in this model's weights", path(), name);
  return it->second;
}

WeightFileWriter::WeightFileWriter(const ModelConfig& c, const std::string& format) : specs_(expected_weights(c)) {
  w_.set_metadata("format", format);
  if (needs_int4_packing(specs_)) w_.set_metadata(kInt4PackingKey, kInt4Packing);
}

const WeightSpec& WeightFileWriter::check(const std::string& name, DType dtype) {
  const WeightSpec* spec = nullptr;
  for (auto& s : specs_)
    if (s.name == name) spec = &s;
  if (!spec) fail("weight file: '{}' is not a tensor of this model", name);
  if (spec->quant ? dtype != spec->dtype : !is_float(dtype))
    fail("weight file: tensor '{}' of dtype {}, expected {}", name, dtype_name(dtype),
         spec->quant ? std::string(dtype_name(spec->dtype)) : "float32, float16 or bfloat16");
  if (!added_.insert(name).second) fail("weight file: tensor '{}' added twice", name);
  return *spec;
}

void WeightFileWriter::add(const std::string& name, DType dtype, std::vector<uint8_t> bytes) {
  const WeightSpec& s = check(name, dtype);
  w_.add(name, storage_dtype(dtype), s.shape, std::move(bytes));
}

void WeightFileWriter::add_lazy(const std::string& name, DType dtype, SafetensorsWriter::Producer produce) {
  const WeightSpec& s = check(name, dtype);
  w_.add_lazy(name, storage_dtype(dtype), s.shape, std::move(produce));
}

void WeightFileWriter::write(const std::string& path) {
  for (auto& s : specs_)
    if (!added_.count(s.name)) fail("{}: tensor '{}' was not written", path, s.name);
  w_.write(path);
}

}  // namespace kiln
