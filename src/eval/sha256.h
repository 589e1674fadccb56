// SHA-256 (FIPS 180-4) of a byte string, as lower-case hex: the dataset digests in eval reports.
#pragma once
#include <string>
#include <string_view>

namespace kiln::eval {

std::string sha256_hex(std::string_view bytes);
std::string sha256_file(const std::string& path);  // throws naming the file when it cannot be read

}  // namespace kiln::eval
