#include "io/json_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/fs_util.h"

namespace kiln {

namespace {

// nlohmann's DOM builder behind a depth check: an array or object deeper than kMaxJsonDepth stops the parse
// before its level is built.
class DepthLimitedSax {
 public:
  using json = nlohmann::json;
  explicit DepthLimitedSax(json& out) : dom_(out, true) {}
  bool null() { return dom_.null(); }
  bool boolean(bool v) { return dom_.boolean(v); }
  bool number_integer(json::number_integer_t v) { return dom_.number_integer(v); }
  bool number_unsigned(json::number_unsigned_t v) { return dom_.number_unsigned(v); }
  bool number_float(json::number_float_t v, const json::string_t& s) { return dom_.number_float(v, s); }
  bool string(json::string_t& v) { return dom_.string(v); }
  bool binary(json::binary_t& v) { return dom_.binary(v); }
  bool key(json::string_t& k) { return dom_.key(k); }
  bool start_object(std::size_t n) { return enter() && dom_.start_object(n); }
  bool end_object() {
    --depth_;
    return dom_.end_object();
  }
  bool start_array(std::size_t n) { return enter() && dom_.start_array(n); }
  bool end_array() {
    --depth_;
    return dom_.end_array();
  }
  template <typename Exception>
  bool parse_error(std::size_t pos, const std::string& token, const Exception& ex) {
    return dom_.parse_error(pos, token, ex);  // throws ex
  }
  bool too_deep() const { return too_deep_; }

 private:
  bool enter() {
    if (++depth_ <= kMaxJsonDepth) return true;
    too_deep_ = true;
    return false;
  }
  nlohmann::detail::json_sax_dom_parser<json> dom_;
  int depth_ = 0;
  bool too_deep_ = false;
};

}  // namespace

nlohmann::json parse_json(std::string_view text) {
  nlohmann::json j;
  DepthLimitedSax sax(j);
  try {
    nlohmann::json::sax_parse(text.data(), text.data() + text.size(), &sax);
  } catch (const nlohmann::json::exception& e) {
    throw Error(e.what());
  }
  if (sax.too_deep()) fail("arrays or objects nested deeper than {} levels", kMaxJsonDepth);
  return j;
}

std::string dump_json(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("{}: cannot open: {}", path, std::strerror(errno));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

nlohmann::json read_json_file(const std::string& path) {
  std::string s = read_text_file(path);
  try {
    return parse_json(s);
  } catch (const Error& e) {
    fail("{}: malformed JSON: {}", path, e.what());
  }
}

void write_json_file(const std::string& path, const nlohmann::json& j) { write_file_atomic(path, dump_json(j, 2) + "\n"); }

}  // namespace kiln
