#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/json_file.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace kiln {

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::string TensorView::shape_str() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail("{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) { ::close(fd); fail("{}: cannot stat", path); }
  size_ = size_t(st.st_size);
  if (size_ < 8) { ::close(fd); fail("{}: truncated: {} bytes, too short for a safetensors header", path, size_); }
  map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) { map_ = nullptr; fail("{}: mmap failed", path); }
  try {
    const auto* base = static_cast<const uint8_t*>(map_);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | base[i];
    if (hlen > size_ - 8) fail("{}: truncated: header claims {} bytes but the file has {}", path, hlen, size_ - 8);
    json header;
    try {
      header = parse_json(std::string_view(reinterpret_cast<const char*>(base) + 8, size_t(hlen)));
    } catch (const Error& e) {
      fail("{}: malformed header JSON: {}", path, e.what());
    }
    if (!header.is_object()) fail("{}: header is not a JSON object", path);
    const uint8_t* data = base + 8 + hlen;
    const size_t data_size = size_ - 8 - hlen;
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (auto& [name, v] : header.items()) {
      if (name == "__metadata__") {
        if (!v.is_object()) fail("{}: __metadata__ is not an object", path);
        for (auto& [k, mv] : v.items()) metadata_[k] = mv.is_string() ? mv.get<std::string>() : mv.dump();
        continue;
      }
      if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
        fail("{}: tensor '{}': header entry needs dtype, shape and data_offsets", path, name);
      TensorView t;
      t.name = name;
      if (!v["dtype"].is_string() || !dtype_from_st_name(v["dtype"].get<std::string>(), &t.dtype))
        fail("{}: tensor '{}': unknown dtype {}", path, name, v["dtype"].dump());
      if (!v["shape"].is_array()) fail("{}: tensor '{}': shape is not an array", path, name);
      uint64_t numel = 1;
      for (auto& d : v["shape"]) {
        if (!d.is_number_unsigned()) fail("{}: tensor '{}': bad dimension {}", path, name, d.dump());
        uint64_t dim = d.get<uint64_t>();
        if (dim != 0 && numel > (uint64_t(1) << 60) / dim) fail("{}: tensor '{}': shape too large", path, name);
        numel *= dim;
        t.shape.push_back(int64_t(dim));
      }
      auto& off = v["data_offsets"];
      if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
        fail("{}: tensor '{}': data_offsets must be two non-negative integers", path, name);
      uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
      if (b > e) fail("{}: tensor '{}': data_offsets [{}, {}] are reversed", path, name, b, e);
      if (e > data_size)
        fail("{}: tensor '{}': data_offsets [{}, {}] run past the end of the data ({} bytes; file truncated?)",
             path, name, b, e, data_size);
      uint64_t want = numel * dtype_size(t.dtype);
      if (e - b != want)
        fail("{}: tensor '{}': shape {} x {} needs {} bytes but data_offsets give {}", path, name,
             t.shape_str(), dtype_st_name(t.dtype), want, e - b);
      t.data = data + b;
      t.nbytes = size_t(want);
      if (e > b) ranges.emplace_back(b, e);
      tensors_.emplace(name, std::move(t));
    }
    std::sort(ranges.begin(), ranges.end());
    for (size_t i = 1; i < ranges.size(); ++i)
      if (ranges[i].first < ranges[i - 1].second) {
        std::string a, bname;
        for (auto& [n, t] : tensors_) {
          auto o = uint64_t(static_cast<const uint8_t*>(t.data) - data);
          if (o == ranges[i - 1].first && a.empty()) a = n;
          else if (o == ranges[i].first) bname = n;
        }
        fail("{}: tensors '{}' and '{}' overlap in the data section", path, a, bname);
      }
  } catch (...) {
    ::munmap(map_, size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, size_);
}

const TensorView& SafetensorsFile::get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail("{}: missing tensor '{}'", path_, name);
  return it->second;
}

SafetensorsSet::SafetensorsSet(const std::string& dir) : dir_(dir) {
  if (!fs::is_directory(dir)) fail("{}: not a directory", dir);
  std::vector<std::string> files;
  fs::path index = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(index)) {
    const json j = read_json_file(index.string());
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      fail("{}: no weight_map object", index.string());
    for (auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string()) fail("{}: weight_map entry '{}' is not a file name", index.string(), name);
      std::string fn = file.get<std::string>();
      if (std::find(files.begin(), files.end(), fn) == files.end()) files.push_back(fn);
    }
  } else {
    for (auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".safetensors") files.push_back(e.path().filename().string());
    std::sort(files.begin(), files.end());
  }
  if (files.empty()) fail("{}: no *.safetensors files", dir);
  for (auto& fn : files) {
    auto p = (fs::path(dir) / fn).string();
    if (!fs::exists(p)) fail("{}: missing shard listed in the index", p);
    files_.push_back(std::make_unique<SafetensorsFile>(p));
    for (auto& [name, t] : files_.back()->tensors()) {
      if (index_.count(name)) fail("{}: tensor '{}' appears in two shards", p, name);
      index_[name] = &t;
    }
  }
}

const TensorView& SafetensorsSet::get(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail("{}: missing tensor '{}'", dir_, name);
  return *it->second;
}

std::vector<std::string> SafetensorsSet::names() const {
  std::vector<std::string> out;
  for (auto& [n, t] : index_) out.push_back(n);
  return out;
}

void SafetensorsWriter::add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data,
                            size_t nbytes) {
  auto p = static_cast<const uint8_t*>(data);
  add(name, dtype, std::move(shape), std::vector<uint8_t>(p, p + nbytes));
}

void SafetensorsWriter::add_entry(Entry e) {
  int64_t n = 1;
  for (auto d : e.shape) n *= d;
  e.nbytes = size_t(n) * dtype_size(e.dtype);
  if (dtype_st_name(e.dtype).empty())
    fail("tensor '{}': {} has no safetensors dtype (store its bytes as U8 and record the packing)", e.name,
         dtype_name(e.dtype));
  if (!e.produce && e.nbytes != e.bytes.size())
    fail("tensor '{}': {} bytes do not match its shape", e.name, e.bytes.size());
  for (auto& x : entries_)
    if (x.name == e.name) fail("tensor '{}' added twice", e.name);
  entries_.push_back(std::move(e));
}

void SafetensorsWriter::add(const std::string& name, DType dtype, std::vector<int64_t> shape,
                            std::vector<uint8_t> bytes) {
  add_entry({name, dtype, std::move(shape), std::move(bytes), nullptr, 0});
}

void SafetensorsWriter::add_lazy(const std::string& name, DType dtype, std::vector<int64_t> shape, Producer produce) {
  add_entry({name, dtype, std::move(shape), {}, std::move(produce), 0});
}

void SafetensorsWriter::add_f32(const std::string& name, std::vector<int64_t> shape, const float* data) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  add(name, DType::F32, std::move(shape), data, size_t(n) * 4);
}

void SafetensorsWriter::write(const std::string& path) const {
  json header = json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t off = 0;
  for (auto& e : entries_) {
    header[e.name] = {{"dtype", dtype_st_name(e.dtype)}, {"shape", e.shape}, {"data_offsets", {off, off + e.nbytes}}};
    off += e.nbytes;
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8) h.push_back(' ');  // align the data section to 8 bytes
  if (fs::is_directory(path)) fail("{}: is a directory (give a file path)", path);
  std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail("{}: cannot create: {}", tmp, std::strerror(errno));
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t((uint64_t(h.size()) >> (8 * i)) & 0xff);
  bool ok = std::fwrite(len, 1, 8, f) == 8 && std::fwrite(h.data(), 1, h.size(), f) == h.size();
  try {
    std::vector<uint8_t> buf;
    for (size_t i = 0; i < entries_.size() && ok; ++i) {
      const Entry& e = entries_[i];
      const uint8_t* data = e.bytes.data();
      if (e.produce) {
        buf.assign(e.nbytes, 0);
        e.produce(buf.data());
        data = buf.data();
      }
      ok = std::fwrite(data, 1, e.nbytes, f) == e.nbytes;
      if (progress_) progress_(i + 1, entries_.size());
    }
  } catch (...) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) { std::remove(tmp.c_str()); fail("{}: write failed (disk full?)", path); }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) { std::remove(tmp.c_str()); fail("{}: cannot rename into place", path); }
}

}  // namespace kiln
