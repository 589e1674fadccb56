#include "tokenizer/post_processor.h"

#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "tokenizer/json_util.h"

namespace kiln::tok {
namespace {

class Noop : public PostProcessor {
 public:
  void process(std::vector<int32_t>&, bool) const override {}
  size_t added_count() const override { return 0; }
};

// Ids before and after the sequence.
class Wrap : public PostProcessor {
 public:
  Wrap(std::vector<int32_t> before, std::vector<int32_t> after) : before_(std::move(before)), after_(std::move(after)) {}
  void process(std::vector<int32_t>& ids, bool add) const override {
    if (!add) return;
    ids.insert(ids.begin(), before_.begin(), before_.end());
    ids.insert(ids.end(), after_.begin(), after_.end());
  }
  size_t added_count() const override { return before_.size() + after_.size(); }

 private:
  std::vector<int32_t> before_, after_;
};

class SequenceProc : public PostProcessor {
 public:
  explicit SequenceProc(std::vector<std::unique_ptr<PostProcessor>> v) : v_(std::move(v)) {}
  void process(std::vector<int32_t>& ids, bool add) const override {
    for (const auto& p : v_) p->process(ids, add);
  }
  size_t added_count() const override {
    size_t n = 0;
    for (const auto& p : v_) n += p->added_count();
    return n;
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> v_;
};

std::unique_ptr<PostProcessor> template_processing(const nlohmann::json& j) {
  std::map<std::string, std::vector<int32_t>> specials;
  if (auto st = j.find("special_tokens"); st != j.end() && st->is_object()) {
    for (auto it = st->begin(); it != st->end(); ++it) {
      auto ids = it.value().find("ids");
      if (ids == it.value().end() || !ids->is_array())
        fail("TemplateProcessing special token '{}' has no \"ids\" array", it.key());
      specials[it.key()] = ids->get<std::vector<int32_t>>();
    }
  }
  auto single = j.find("single");
  if (single == j.end() || !single->is_array()) fail("TemplateProcessing has no \"single\" template");
  std::vector<int32_t> before, after;
  bool seen_a = false;
  for (const auto& piece : *single) {
    if (auto sp = piece.find("SpecialToken"); sp != piece.end()) {
      std::string id = field<std::string>(*sp, "id", "TemplateProcessing SpecialToken");
      auto it = specials.find(id);
      if (it == specials.end()) fail("TemplateProcessing uses special token '{}' that it does not define", id);
      auto& dst = seen_a ? after : before;
      dst.insert(dst.end(), it->second.begin(), it->second.end());
    } else if (auto sq = piece.find("Sequence"); sq != piece.end()) {
      std::string id = field<std::string>(*sq, "id", "TemplateProcessing Sequence");
      if (id != "A") fail("TemplateProcessing single template refers to sequence '{}' (only A exists)", id);
      if (seen_a) fail("TemplateProcessing single template holds sequence A twice");
      seen_a = true;
    } else {
      fail("TemplateProcessing template piece {} is neither SpecialToken nor Sequence", piece.dump());
    }
  }
  if (!seen_a) fail("TemplateProcessing single template has no sequence A");
  return std::make_unique<Wrap>(std::move(before), std::move(after));
}

int32_t pair_id(const nlohmann::json& j, const char* key, const char* what) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_array() || it->size() != 2 || !(*it)[1].is_number_integer())
    fail("{} has no [token, id] \"{}\" field", what, key);
  return (*it)[1].get<int32_t>();
}

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& j) {
  if (j.is_null()) return nullptr;
  std::string t = type_of(j, "post_processor");
  if (t == "TemplateProcessing") return template_processing(j);
  if (t == "ByteLevel") return std::make_unique<Noop>();  // only trims offsets, which kiln does not report
  if (t == "RobertaProcessing" || t == "BertProcessing") {
    const char* what = t == "RobertaProcessing" ? "RobertaProcessing" : "BertProcessing";
    return std::make_unique<Wrap>(std::vector<int32_t>{pair_id(j, "cls", what)},
                                  std::vector<int32_t>{pair_id(j, "sep", what)});
  }
  if (t == "Sequence") {
    auto it = j.find("processors");
    if (it == j.end() || !it->is_array()) fail("Sequence post-processor has no \"processors\" array");
    std::vector<std::unique_ptr<PostProcessor>> v;
    for (const auto& e : *it)
      if (auto p = make_post_processor(e)) v.push_back(std::move(p));
    return std::make_unique<SequenceProc>(std::move(v));
  }
  fail("unsupported post-processor type '{}' in tokenizer.json (kiln supports TemplateProcessing, ByteLevel, "
       "RobertaProcessing, BertProcessing, Sequence)",
       t);
}

}  // namespace kiln::tok
