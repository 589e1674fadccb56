// Interim: the Jinja interpreter lands in the next commit.
#include "tokenizer/chat_template.h"

#include "core/error.h"

namespace kiln::tok {
std::string render_chat_template(const std::string&, const nlohmann::json&) {
  fail("chat templates are not implemented yet in this build");
}
}  // namespace kiln::tok
