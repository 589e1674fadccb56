// The pybind11 module kiln._kiln: thin bindings over the public C++ API (the Executor, the Tokenizer, convert and
// build). The Python layer (python/kiln/*.py) validates arguments, names errors and shapes the results; nothing here
// decides how a request runs.
#pragma once
#include <pybind11/pybind11.h>

#include <string>

namespace kiln::py {

namespace pb = pybind11;

// Text produced by the tokenizer as a Python str. Decoded text is UTF-8 by construction; a byte sequence that is
// not (a byte-fallback token decoded alone) becomes U+FFFD rather than a UnicodeDecodeError.
pb::str utf8(const std::string& s);

void bind_tokenizer(pb::module_& m);
void bind_executor(pb::module_& m);

}  // namespace kiln::py
