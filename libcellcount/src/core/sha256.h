// SHA-256 (FIPS 180-4), for model weight checksums. No LibTorch.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace cellcount {

std::string sha256_hex(const void* data, size_t n);
// Throws Error(CELLCOUNT_ERR_IO) if the file cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace cellcount
