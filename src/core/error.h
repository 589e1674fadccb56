// kiln::Error: the one exception type. Its message is a single line naming what was wrong
// (the file, tensor, flag or field); the CLI prints it and exits non-zero.
#pragma once
#include <fmt/format.h>
#include <stdexcept>
#include <string>

namespace kiln {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

#define KILN_CHECK(cond, ...)          \
  do {                                 \
    if (!(cond)) ::kiln::fail(__VA_ARGS__); \
  } while (0)

}  // namespace kiln
