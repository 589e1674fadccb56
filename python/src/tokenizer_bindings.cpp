// kiln._kiln.Tokenizer and IncrementalDecoder over kiln::Tokenizer (include/kiln/tokenizer.h).
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bindings.h"
#include "kiln/tokenizer.h"

namespace kiln::py {

void bind_tokenizer(pb::module_& m) {
  pb::class_<Tokenizer, std::unique_ptr<Tokenizer>>(m, "Tokenizer", "A Hugging Face tokenizer (kiln::Tokenizer).")
      .def_static("load", [](const std::string& path) {
        pb::gil_scoped_release nogil;
        return Tokenizer::load(path);
      }, pb::arg("path"), "A tokenizer.json, a vocab.json (merges.txt beside it) or a folder holding either.")
      .def("encode", [](const Tokenizer& t, const std::string& text, bool add_special_tokens) {
        pb::gil_scoped_release nogil;
        return t.encode(text, add_special_tokens);
      }, pb::arg("text"), pb::arg("add_special_tokens") = true)
      .def("decode", [](const Tokenizer& t, const std::vector<int32_t>& ids, bool skip_special_tokens) {
        std::string s;
        {
          pb::gil_scoped_release nogil;
          s = t.decode(ids, skip_special_tokens);
        }
        return utf8(s);
      }, pb::arg("ids"), pb::arg("skip_special_tokens") = false)
      .def_property_readonly("vocab_size", &Tokenizer::vocab_size)
      .def("token_to_id", [](const Tokenizer& t, const std::string& tok) { return t.token_to_id(tok); })
      .def("id_to_token", [](const Tokenizer& t, int32_t id) -> pb::object {
        auto s = t.id_to_token(id);
        return s ? pb::object(utf8(*s)) : pb::object(pb::none());
      })
      .def("is_special", &Tokenizer::is_special)
      .def_property_readonly("bos_id", &Tokenizer::bos_id)
      .def_property_readonly("eos_id", &Tokenizer::eos_id)
      .def_property_readonly("stop_ids", &Tokenizer::stop_ids)
      .def_property_readonly("has_chat_template", &Tokenizer::has_chat_template)
      .def("apply_chat_template",
           [](const Tokenizer& t, const std::vector<std::pair<std::string, std::string>>& messages,
              bool add_generation_prompt) {
             std::vector<ChatMessage> msgs;
             for (const auto& [role, content] : messages) msgs.push_back({role, content});
             std::string s;
             {
               pb::gil_scoped_release nogil;
               s = t.apply_chat_template(msgs, add_generation_prompt);
             }
             return utf8(s);
           },
           pb::arg("messages"), pb::arg("add_generation_prompt"), "messages: (role, content) pairs.");

  pb::class_<IncrementalDecoder>(m, "IncrementalDecoder",
                                 "Streaming decode: the pieces push() and flush() return concatenate to decode(ids).")
      .def(pb::init<const Tokenizer&, bool>(), pb::arg("tokenizer"), pb::arg("skip_special_tokens"),
           pb::keep_alive<1, 2>())
      .def("push", [](IncrementalDecoder& d, int32_t id) { return utf8(d.push(id)); }, pb::arg("id"))
      .def("flush", [](IncrementalDecoder& d) { return utf8(d.flush()); });
}

}  // namespace kiln::py
