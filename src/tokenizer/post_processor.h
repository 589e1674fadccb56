// Post-processors of tokenizer.json for a single sequence: TemplateProcessing, ByteLevel (ids unchanged),
// RobertaProcessing, BertProcessing, Sequence. Anything else is a kiln::Error naming the type.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <vector>

namespace kiln::tok {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Adds the special tokens around one encoded sequence (only when add_special_tokens).
  virtual void process(std::vector<int32_t>& ids, bool add_special_tokens) const = 0;
  // How many ids process() adds to a single sequence with add_special_tokens.
  virtual size_t added_count() const = 0;
};

// nullptr for a JSON null.
std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& j);

}  // namespace kiln::tok
