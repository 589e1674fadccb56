// Normalizers of tokenizer.json: NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Prepend, Replace,
// Sequence. Anything else is a kiln::Error naming the type.
#pragma once
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace kiln::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Normalizes s in place. `at_origin` says whether the first character of s comes from the start of the
  // original text; a normalizer that deletes leading characters clears it (Metaspace's prepend_scheme
  // "first" reads it).
  virtual void normalize(std::string& s, bool& at_origin) const = 0;
};

// nullptr for a JSON null.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j);

}  // namespace kiln::tok
