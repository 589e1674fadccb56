// A gtest parameter name from a case name: '-' (not allowed in test names) becomes '_'.
#pragma once
#include <string>

namespace kiln::test {

struct DashToUnderscore {
  template <class Info>
  std::string operator()(const Info& info) const {
    std::string n = info.param.name;
    for (auto& ch : n)
      if (ch == '-') ch = '_';
    return n;
  }
};

}  // namespace kiln::test
