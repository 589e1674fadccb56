#include "model/quant.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

using json = nlohmann::json;

namespace kiln {

namespace {

constexpr std::pair<QuantAlgo, std::string_view> kAlgos[] = {
    {QuantAlgo::FP8, "FP8"},
    {QuantAlgo::FP8_PER_CHANNEL_PER_TOKEN, "FP8_PER_CHANNEL_PER_TOKEN"},
    {QuantAlgo::W8A8_SQ_PER_CHANNEL_PER_TOKEN, "W8A8_SQ_PER_CHANNEL_PER_TOKEN"},
    {QuantAlgo::W8A16, "W8A16"},
    {QuantAlgo::W4A16, "W4A16"},
    {QuantAlgo::W4A16_AWQ, "W4A16_AWQ"},
    {QuantAlgo::W4A16_GPTQ, "W4A16_GPTQ"},
};
constexpr std::pair<KvCacheQuantAlgo, std::string_view> kKvAlgos[] = {
    {KvCacheQuantAlgo::FP8, "FP8"},
    {KvCacheQuantAlgo::INT8, "INT8"},
};

template <typename E, size_t N>
std::string expected_names(const std::pair<E, std::string_view> (&table)[N]) {
  std::string s = "null";
  for (auto& [a, n] : table) s += fmt::format(", {}", n);
  return s;
}

// A name from `table` or null; anything else is refused naming the field and the value.
template <typename E, size_t N>
E parse_algo(const json& j, const char* field, const std::pair<E, std::string_view> (&table)[N],
             const std::string& src) {
  if (!j.contains(field) || j[field].is_null()) return E::None;
  const json& v = j[field];
  if (!v.is_string())
    fail("{}: quantization.{} {}: expected a string or null ({})", src, field, v.dump(), expected_names(table));
  const std::string s = v.get<std::string>();
  for (auto& [a, n] : table)
    if (n == s) return a;
  fail("{}: quantization.{} '{}': unknown (expected {})", src, field, s, expected_names(table));
}

}  // namespace

bool module_pattern_matches(std::string_view pat, std::string_view s) {
  size_t p = 0, i = 0, star = std::string_view::npos, mark = 0;
  while (i < s.size()) {
    if (p < pat.size() && pat[p] == '*') {
      star = p++;
      mark = i;
    } else if (p < pat.size() && pat[p] == s[i]) {
      ++p;
      ++i;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}

namespace {

bool per_group_required(QuantAlgo a) { return a == QuantAlgo::W4A16_AWQ || a == QuantAlgo::W4A16_GPTQ; }
bool per_group_allowed(QuantAlgo a) {
  return per_group_required(a) || a == QuantAlgo::W8A16 || a == QuantAlgo::W4A16;
}

}  // namespace

std::string_view quant_algo_name(QuantAlgo a) {
  for (auto& [x, n] : kAlgos)
    if (x == a) return n;
  return "null";
}

std::string_view kv_cache_quant_algo_name(KvCacheQuantAlgo a) {
  for (auto& [x, n] : kKvAlgos)
    if (x == a) return n;
  return "null";
}

bool QuantConfig::excludes(const std::string& module) const {
  for (auto& p : exclude_modules)
    if (module_pattern_matches(p, module)) return true;
  return false;
}

void QuantConfig::validate(const std::string& src) const {
  const auto algo = quant_algo_name(quant_algo);
  if (group_size < 0) fail("{}: quantization.group_size {} must be positive (or null)", src, group_size);
  if (group_size > 0 && !per_group_allowed(quant_algo))
    fail("{}: quantization.group_size {}: quant_algo {} does not quantize per group (group_size must be null)", src,
         group_size, algo);
  if (group_size == 0 && per_group_required(quant_algo))
    fail("{}: quantization.group_size is null but quant_algo {} quantizes per group of input channels (give "
         "group_size, e.g. 128)", src, algo);
  for (auto& p : exclude_modules)
    if (p.empty()) fail("{}: quantization.exclude_modules: an empty module name", src);
}

json quant_config_to_json(const QuantConfig& q) {
  auto name_or_null = [](std::string_view n) { return n == "null" ? json(nullptr) : json(std::string(n)); };
  return json{{"quant_algo", name_or_null(quant_algo_name(q.quant_algo))},
              {"kv_cache_quant_algo", name_or_null(kv_cache_quant_algo_name(q.kv_cache_quant_algo))},
              {"group_size", q.group_size > 0 ? json(q.group_size) : json(nullptr)},
              {"exclude_modules", q.exclude_modules}};
}

QuantConfig quant_config_from_json(const json& j, const std::string& src) {
  if (!j.is_object()) fail("{}: 'quantization' must be an object, not {}", src, j.dump());
  for (auto& [k, v] : j.items())
    if (k != "quant_algo" && k != "kv_cache_quant_algo" && k != "group_size" && k != "exclude_modules")
      fail("{}: quantization.{}: unknown field (kiln reads quant_algo, kv_cache_quant_algo, group_size and "
           "exclude_modules)", src, k);
  QuantConfig q;
  q.quant_algo = parse_algo(j, "quant_algo", kAlgos, src);
  q.kv_cache_quant_algo = parse_algo(j, "kv_cache_quant_algo", kKvAlgos, src);
  if (j.contains("group_size") && !j["group_size"].is_null()) {
    const json& g = j["group_size"];
    if (!g.is_number_integer()) fail("{}: quantization.group_size {}: expected an integer or null", src, g.dump());
    q.group_size = g.get<int64_t>();
    if (q.group_size <= 0) fail("{}: quantization.group_size {} must be positive (or null)", src, q.group_size);
  }
  if (j.contains("exclude_modules") && !j["exclude_modules"].is_null()) {
    const json& e = j["exclude_modules"];
    if (!e.is_array()) fail("{}: quantization.exclude_modules {}: expected a list of module names", src, e.dump());
    for (auto& m : e) {
      if (!m.is_string()) fail("{}: quantization.exclude_modules: {} is not a module name (a string)", src, m.dump());
      q.exclude_modules.push_back(m.get<std::string>());
    }
  }
  q.validate(src);
  return q;
}

std::vector<int64_t> QuantScheme::data_shape(std::vector<int64_t> lead, int64_t N, int64_t K) const {
  lead.push_back(N);
  lead.push_back(packing == WeightPacking::Int4x2 ? K / 2 : K);
  return lead;
}

std::vector<int64_t> QuantScheme::scale_shape(std::vector<int64_t> lead, int64_t N, int64_t K) const {
  switch (granularity) {
    case QuantGranularity::None: fail("scale_shape: the weight is not quantized");
    case QuantGranularity::PerTensor: lead.push_back(1); break;
    case QuantGranularity::PerChannel: lead.push_back(N); break;
    case QuantGranularity::PerGroup:
      lead.push_back(N);
      lead.push_back(K / group_size);
      break;
  }
  return lead;
}

QuantScheme linear_quant_scheme(const QuantConfig& q) {
  QuantScheme s;
  const bool grouped = q.group_size > 0;
  auto weight_only = [&](DType dt, bool packed) {
    s.weight_dtype = dt;
    s.packing = packed ? WeightPacking::Int4x2 : WeightPacking::None;
    s.granularity = grouped ? QuantGranularity::PerGroup : QuantGranularity::PerChannel;
    s.group_size = q.group_size;
  };
  switch (q.quant_algo) {
    case QuantAlgo::None: break;
    case QuantAlgo::FP8:
      s.granularity = QuantGranularity::PerTensor;
      s.weight_dtype = s.act_dtype = DType::F8_E4M3;
      s.activations = ActQuant::PerTensorStatic;
      s.input_scale = true;
      break;
    case QuantAlgo::FP8_PER_CHANNEL_PER_TOKEN:
      s.granularity = QuantGranularity::PerChannel;
      s.weight_dtype = s.act_dtype = DType::F8_E4M3;
      s.activations = ActQuant::PerTokenDynamic;
      break;
    case QuantAlgo::W8A8_SQ_PER_CHANNEL_PER_TOKEN:
      s.granularity = QuantGranularity::PerChannel;
      s.weight_dtype = s.act_dtype = DType::I8;
      s.activations = ActQuant::PerTokenDynamic;
      break;
    case QuantAlgo::W8A16: weight_only(DType::I8, false); break;
    case QuantAlgo::W4A16: weight_only(DType::I4X2, true); break;
    case QuantAlgo::W4A16_AWQ:
      weight_only(DType::I4X2, true);
      s.pre_quant_scale = true;
      break;
    case QuantAlgo::W4A16_GPTQ:
      weight_only(DType::I4X2, true);
      s.zero_point = true;
      break;
  }
  return s;
}

DType kv_cache_dtype(const QuantConfig& q, DType compute) {
  switch (q.kv_cache_quant_algo) {
    case KvCacheQuantAlgo::None: return compute;
    case KvCacheQuantAlgo::FP8: return DType::F8_E4M3;
    case KvCacheQuantAlgo::INT8: return DType::I8;
  }
  return compute;
}

}  // namespace kiln
