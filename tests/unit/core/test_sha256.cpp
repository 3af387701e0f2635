// SHA-256 against the FIPS 180-4 / NIST example vectors; the file path streams to the same digest.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/sha256.h"

namespace cellcount {
namespace {

std::string sha(const std::string& s) { return sha256_hex(s.data(), s.size()); }

TEST(Sha256, FipsVectors) {
  EXPECT_EQ(sha(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex(nullptr, 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),  // 448 bits
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
                "mnopqrstnopqrstu"),  // 896 bits
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  EXPECT_EQ(sha(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, FileEqualsBuffer) {
  std::mt19937_64 rng(3);
  const std::string path = ::testing::TempDir() + "cellcount_test_sha256.bin";
  // Sizes around the 64-byte block, the 56-byte padding limit and the 64 KiB read chunk.
  for (size_t n : {0, 1, 55, 56, 63, 64, 65, 119, 120, 65535, 65536, 65537, 200001}) {
    std::string data(n, '\0');
    for (char& c : data) c = static_cast<char>(rng() & 0xff);
    {
      std::ofstream f(path, std::ios::binary);
      f.write(data.data(), static_cast<std::streamsize>(data.size()));
    }
    EXPECT_EQ(sha256_file(path), sha(data)) << "size " << n;
  }
  std::remove(path.c_str());
}

TEST(Sha256, MissingFileGivesIoError) {
  const std::string path = ::testing::TempDir() + "cellcount_test_sha256_missing.bin";
  std::remove(path.c_str());
  try {
    sha256_file(path);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), CELLCOUNT_ERR_IO);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cellcount
