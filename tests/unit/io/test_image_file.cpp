// io/image_file: round trips through the built back ends, TIFF stacks written by an independent
// (hand-rolled, uncompressed) encoder, error statuses, the overwrite rule, overlays, and one real image.
#include "io/image_file.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "test_util.h"

namespace cellcount::io {
namespace {

namespace fs = std::filesystem;

#define REQUIRE_ANY_BACKEND()                                           \
  if (backends().empty()) {                                             \
    GTEST_SKIP() << "cellcount built without OpenCV and ITK";           \
  }

// A fresh path in the test temp dir (removed if a previous run left it).
std::string temp_path(const std::string& name) {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path p = fs::path(::testing::TempDir()) / (std::string("cellcount_io_") + info->name() + "_" + name);
  fs::remove(p);
  return p.string();
}

Image make_image(int64_t w, int64_t h, int64_t c) {
  Image img;
  img.width = w;
  img.height = h;
  img.channels = c;
  img.data.assign(static_cast<size_t>(w * h * c), 0.0f);
  return img;
}

// Status of the Error thrown by f (CELLCOUNT_OK if none); the message goes to *message.
using cellcount::test_util::status_of;

// Minimal baseline TIFF encoder: little-endian, uncompressed, grey, one strip per page; every page
// `w` x `h`, samples stored as uint8 (bits 8), uint16 (bits 16) or IEEE float (bits 32).
// Independent of OpenCV, ITK and libtiff.
void write_tiff_pages(const std::string& path, int w, int h, int bits, const std::vector<std::vector<double>>& pages) {
  std::vector<uint8_t> out;
  auto u16 = [&](uint32_t v) {
    out.push_back(static_cast<uint8_t>(v & 0xff));
    out.push_back(static_cast<uint8_t>((v >> 8) & 0xff));
  };
  auto u32 = [&](uint32_t v) {
    u16(v & 0xffff);
    u16(v >> 16);
  };
  auto patch32 = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) out[at + i] = static_cast<uint8_t>((v >> (8 * i)) & 0xff);
  };
  out.push_back('I');
  out.push_back('I');
  u16(42);
  size_t next_ifd_field = out.size();
  u32(0);
  for (const std::vector<double>& page : pages) {
    const uint32_t data_at = static_cast<uint32_t>(out.size());
    for (double v : page) {
      if (bits == 32) {
        const float f = static_cast<float>(v);
        uint32_t u;
        std::memcpy(&u, &f, 4);
        u32(u);
      } else if (bits == 16) {
        u16(static_cast<uint32_t>(v));
      } else {
        out.push_back(static_cast<uint8_t>(v));
      }
    }
    const uint32_t nbytes = static_cast<uint32_t>(out.size()) - data_at;
    if (out.size() % 2) out.push_back(0);  // IFDs start on a word boundary
    patch32(next_ifd_field, static_cast<uint32_t>(out.size()));
    const uint16_t kShort = 3, kLong = 4;
    struct Entry {
      uint16_t tag, type;
      uint32_t value;
    };
    const Entry entries[] = {
        {256, kLong, static_cast<uint32_t>(w)},  // ImageWidth
        {257, kLong, static_cast<uint32_t>(h)},  // ImageLength
        {258, kShort, static_cast<uint32_t>(bits)},  // BitsPerSample
        {259, kShort, 1},                        // Compression: none
        {262, kShort, 1},                        // PhotometricInterpretation: BlackIsZero
        {273, kLong, data_at},                   // StripOffsets
        {277, kShort, 1},                        // SamplesPerPixel
        {278, kLong, static_cast<uint32_t>(h)},  // RowsPerStrip
        {279, kLong, nbytes},                    // StripByteCounts
        {284, kShort, 1},                        // PlanarConfiguration: contiguous
        {339, kShort, bits == 32 ? 3u : 1u},     // SampleFormat: IEEE float or unsigned integer
    };
    u16(sizeof(entries) / sizeof(entries[0]));
    for (const Entry& e : entries) {
      u16(e.tag);
      u16(e.type);
      u32(1);
      if (e.type == kShort) {
        u16(e.value);
        u16(0);
      } else {
        u32(e.value);
      }
    }
    next_ifd_field = out.size();
    u32(0);
  }
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size()));
  ASSERT_TRUE(f.good()) << path;
}

TEST(ImageFile, IsImageFile) {
  EXPECT_TRUE(is_image_file("a.png"));
  EXPECT_TRUE(is_image_file("dir.x/a.PNG"));
  EXPECT_TRUE(is_image_file("a.jpg"));
  EXPECT_TRUE(is_image_file("a.JPEG"));
  EXPECT_TRUE(is_image_file("a.bmp"));
  EXPECT_TRUE(is_image_file("/x/y/a.tif"));
  EXPECT_TRUE(is_image_file("a.TIFF"));
  EXPECT_FALSE(is_image_file("a.csv"));
  EXPECT_FALSE(is_image_file("png"));
  EXPECT_FALSE(is_image_file("a.png.txt"));
  EXPECT_FALSE(is_image_file("dir.png/a"));
}

TEST(ImageFile, BackendsNameTheirVersion) {
  for (const std::string& b : backends()) {
    EXPECT_TRUE(b.rfind("opencv ", 0) == 0 || b.rfind("itk ", 0) == 0) << b;
    EXPECT_GT(b.size(), b.find(' ') + 1) << b;  // a version after the name
  }
}

TEST(ImageFile, UndecodableFileIsIoErrorOrUnsupportedWithoutBackends) {
  const std::string path = temp_path("x.png");
  std::ofstream(path) << "not empty";
  EXPECT_EQ(status_of([&] { read_image(path); }), backends().empty() ? CELLCOUNT_ERR_UNSUPPORTED : CELLCOUNT_ERR_IO);
}

TEST(ImageFile, GreyPng8RoundTrip) {
  REQUIRE_ANY_BACKEND();
  Image img = make_image(7, 5, 1);
  for (size_t i = 0; i < img.data.size(); ++i) img.data[i] = static_cast<float>((i * 37) % 256);
  // Rounding and clamping on the way out.
  img.at(0, 0) = -3.0f;
  img.at(0, 1) = 300.0f;
  img.at(0, 2) = 1.4f;
  img.at(0, 3) = 1.6f;
  const std::string path = temp_path("grey.png");
  write_image(path, img, 8);
  const Image back = read_image(path);
  ASSERT_EQ(back.width, 7);
  ASSERT_EQ(back.height, 5);
  ASSERT_EQ(back.channels, 1);
  EXPECT_EQ(back.source_dtype, "u8");
  EXPECT_EQ(back.at(0, 0), 0.0f);
  EXPECT_EQ(back.at(0, 1), 255.0f);
  EXPECT_EQ(back.at(0, 2), 1.0f);
  EXPECT_EQ(back.at(0, 3), 2.0f);
  for (int64_t y = 0; y < 5; ++y)
    for (int64_t x = (y == 0 ? 4 : 0); x < 7; ++x) EXPECT_EQ(back.at(y, x), img.at(y, x)) << x << "," << y;
  EXPECT_EQ(read_image_stack(path).size(), 1u);
}

TEST(ImageFile, RgbPngKeepsChannelOrder) {
  REQUIRE_ANY_BACKEND();
  Image img = make_image(3, 2, 3);
  img.at(0, 0, 0) = 255;  // red
  img.at(0, 1, 1) = 255;  // green
  img.at(0, 2, 2) = 255;  // blue
  for (int64_t x = 0; x < 3; ++x)
    for (int64_t c = 0; c < 3; ++c) img.at(1, x, c) = static_cast<float>(10 * x + c + 1);
  const std::string path = temp_path("rgb.png");
  write_image(path, img, 8);
  const Image back = read_image(path);
  ASSERT_EQ(back.width, 3);
  ASSERT_EQ(back.height, 2);
  ASSERT_EQ(back.channels, 3);
  EXPECT_EQ(back.source_dtype, "u8");
  EXPECT_EQ(back.at(0, 0, 0), 255.0f);  // R first
  EXPECT_EQ(back.at(0, 0, 1), 0.0f);
  EXPECT_EQ(back.at(0, 0, 2), 0.0f);
  EXPECT_EQ(back.at(0, 1, 1), 255.0f);
  EXPECT_EQ(back.at(0, 2, 2), 255.0f);
  EXPECT_EQ(back.data, img.data);
}

TEST(ImageFile, RgbaPngDropsAlpha) {
  REQUIRE_ANY_BACKEND();
  Image img = make_image(2, 2, 4);
  for (size_t i = 0; i < img.data.size(); ++i) img.data[i] = static_cast<float>(i * 10 + 5);
  const std::string path = temp_path("rgba.png");
  write_image(path, img, 8);
  const Image back = read_image(path);
  ASSERT_EQ(back.channels, 3);
  for (int64_t y = 0; y < 2; ++y)
    for (int64_t x = 0; x < 2; ++x)
      for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(back.at(y, x, c), img.at(y, x, c));
}

TEST(ImageFile, Png16RoundTrip) {
  REQUIRE_ANY_BACKEND();
  Image img = make_image(9, 4, 1);
  for (size_t i = 0; i < img.data.size(); ++i) img.data[i] = static_cast<float>((i * 1877 + 3) % 65536);
  img.at(3, 8) = 65535.0f;
  img.at(3, 7) = 70000.0f;  // clamped
  const std::string path = temp_path("grey16.png");
  write_image(path, img, 16);
  const Image back = read_image(path);
  ASSERT_EQ(back.width, 9);
  ASSERT_EQ(back.height, 4);
  ASSERT_EQ(back.channels, 1);
  EXPECT_EQ(back.source_dtype, "u16");
  img.at(3, 7) = 65535.0f;
  EXPECT_EQ(back.data, img.data);
}

TEST(ImageFile, Tiff16SinglePageRoundTrip) {
  REQUIRE_ANY_BACKEND();
  Image img = make_image(11, 6, 1);
  for (size_t i = 0; i < img.data.size(); ++i) img.data[i] = static_cast<float>((i * 977) % 65536);
  const std::string path = temp_path("grey16.tif");
  write_image(path, img, 16);
  const std::vector<Image> back = read_image_stack(path);
  ASSERT_EQ(back.size(), 1u);
  ASSERT_EQ(back[0].width, 11);
  ASSERT_EQ(back[0].height, 6);
  ASSERT_EQ(back[0].channels, 1);
  EXPECT_EQ(back[0].source_dtype, "u16");
  EXPECT_EQ(back[0].data, img.data);
}

TEST(ImageFile, RgbTiffKeepsChannelOrder) {
  REQUIRE_ANY_BACKEND();
  Image img = make_image(4, 3, 3);
  for (size_t i = 0; i < img.data.size(); ++i) img.data[i] = static_cast<float>((i * 29) % 256);
  img.at(0, 0, 0) = 255;
  img.at(0, 0, 1) = 0;
  img.at(0, 0, 2) = 0;
  const std::string path = temp_path("rgb.tiff");
  write_image(path, img, 8);
  const Image back = read_image(path);
  ASSERT_EQ(back.channels, 3);
  EXPECT_EQ(back.source_dtype, "u8");
  EXPECT_EQ(back.at(0, 0, 0), 255.0f);
  EXPECT_EQ(back.data, img.data);
}

TEST(ImageFile, HandWrittenTiff16SinglePage) {
  REQUIRE_ANY_BACKEND();
  const int w = 5, h = 3;
  std::vector<double> page(w * h);
  for (size_t i = 0; i < page.size(); ++i) page[i] = static_cast<double>(1000 * i + 7);
  const std::string path = temp_path("single.tif");
  write_tiff_pages(path, w, h, 16, {page});
  const std::vector<Image> back = read_image_stack(path);
  ASSERT_EQ(back.size(), 1u);
  ASSERT_EQ(back[0].width, w);
  ASSERT_EQ(back[0].height, h);
  ASSERT_EQ(back[0].channels, 1);
  EXPECT_EQ(back[0].source_dtype, "u16");
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) EXPECT_EQ(back[0].at(y, x), page[y * w + x]) << x << "," << y;
}

TEST(ImageFile, MultiPageTiffGivesOneImagePerSlice) {
  REQUIRE_ANY_BACKEND();
  const int w = 6, h = 4, n = 3;
  std::vector<std::vector<double>> pages(n, std::vector<double>(w * h));
  for (int z = 0; z < n; ++z)
    for (int i = 0; i < w * h; ++i) pages[z][i] = 20000 * z + 100 * i + 1;
  const std::string path = temp_path("stack.tif");
  write_tiff_pages(path, w, h, 16, pages);
  const std::vector<Image> back = read_image_stack(path);
  ASSERT_EQ(back.size(), static_cast<size_t>(n));
  for (int z = 0; z < n; ++z) {
    ASSERT_EQ(back[z].width, w);
    ASSERT_EQ(back[z].height, h);
    ASSERT_EQ(back[z].channels, 1);
    EXPECT_EQ(back[z].source_dtype, "u16");
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) EXPECT_EQ(back[z].at(y, x), pages[z][y * w + x]) << z << ":" << x << "," << y;
  }
  // read_image is the first plane.
  EXPECT_EQ(read_image(path).data, back[0].data);
}

TEST(ImageFile, MultiPage8BitTiff) {
  REQUIRE_ANY_BACKEND();
  const int w = 3, h = 2, n = 4;
  std::vector<std::vector<double>> pages(n, std::vector<double>(w * h));
  for (int z = 0; z < n; ++z)
    for (int i = 0; i < w * h; ++i) pages[z][i] = 50 * z + i;
  const std::string path = temp_path("stack8.tiff");
  write_tiff_pages(path, w, h, 8, pages);
  const std::vector<Image> back = read_image_stack(path);
  ASSERT_EQ(back.size(), static_cast<size_t>(n));
  for (int z = 0; z < n; ++z) {
    EXPECT_EQ(back[z].source_dtype, "u8");
    for (int i = 0; i < w * h; ++i) EXPECT_EQ(back[z].data[i], pages[z][i]);
  }
}

TEST(ImageFile, FloatTiffKeepsValues) {
  REQUIRE_ANY_BACKEND();
  const int w = 4, h = 2;
  const std::vector<double> page = {-1.5, 0.0, 3.25, 1e6, 0.125, 65536.5, -7.0, 42.0};
  const std::string path = temp_path("float.tif");
  write_tiff_pages(path, w, h, 32, {page, page});
  const std::vector<Image> back = read_image_stack(path);
  ASSERT_EQ(back.size(), 2u);
  for (const Image& img : back) {
    ASSERT_EQ(img.channels, 1);
    EXPECT_EQ(img.source_dtype, "f32");
    for (int i = 0; i < w * h; ++i) EXPECT_EQ(img.data[i], static_cast<float>(page[i])) << i;
  }
}

TEST(ImageFile, MissingFileIsIoErrorNamingThePath) {
  const std::string path = temp_path("does_not_exist.png");
  std::string msg;
  EXPECT_EQ(status_of([&] { read_image(path); }, &msg), CELLCOUNT_ERR_IO);
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_EQ(status_of([&] { read_image_stack(temp_path("nope.tif")); }), CELLCOUNT_ERR_IO);
}

TEST(ImageFile, CorruptOrEmptyFileIsIoError) {
  REQUIRE_ANY_BACKEND();
  std::mt19937 rng(1234);
  for (const char* name : {"corrupt.png", "corrupt.tif", "corrupt.jpg"}) {
    const std::string path = temp_path(name);
    {
      std::ofstream f(path, std::ios::binary);
      for (int i = 0; i < 4096; ++i) f.put(static_cast<char>(rng() & 0xff));
    }
    std::string msg;
    EXPECT_EQ(status_of([&] { read_image(path); }, &msg), CELLCOUNT_ERR_IO) << name << ": " << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
  }
  const std::string empty = temp_path("empty.png");
  std::ofstream(empty).close();
  EXPECT_EQ(status_of([&] { read_image(empty); }), CELLCOUNT_ERR_IO);
  // A truncated PNG: a valid header and nothing else.
  const std::string good = temp_path("good.png");
  write_image(good, make_image(32, 32, 1), 8);
  std::vector<char> bytes(static_cast<size_t>(fs::file_size(good)));
  std::ifstream(good, std::ios::binary).read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  const std::string cut = temp_path("truncated.png");
  std::ofstream(cut, std::ios::binary).write(bytes.data(), 20);
  EXPECT_EQ(status_of([&] { read_image(cut); }), CELLCOUNT_ERR_IO);
}

// Damaged copies of valid files (cut short, or one byte changed) must give a clean result or
// CELLCOUNT_ERR_IO, never a crash. Decoders may legitimately accept some damage (JPEG pads missing
// data), so only the short cuts, where no image can remain, must fail.
TEST(ImageFile, DamagedFilesNeverCrash) {
  REQUIRE_ANY_BACKEND();
  Image img = make_image(37, 23, 3);
  for (size_t i = 0; i < img.data.size(); ++i) img.data[i] = static_cast<float>((i * 53) % 256);
  for (const char* name : {"ok.png", "ok.jpg", "ok.bmp", "ok.tif"}) {
    const std::string good = temp_path(name);
    write_image(good, img, 8);
    std::vector<char> bytes(static_cast<size_t>(fs::file_size(good)));
    std::ifstream(good, std::ios::binary).read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (status_of([&] { read_image(good); }) == CELLCOUNT_ERR_UNSUPPORTED) continue;  // e.g. JPEG with old ITK only
    const std::string ext = fs::path(good).extension().string();
    const size_t n = bytes.size();
    for (size_t keep : {size_t{4}, size_t{8}, size_t{16}, size_t{30}, size_t{60}, n / 4, n / 2, n - 13, n - 1}) {
      const std::string cut = temp_path("cut" + std::to_string(keep) + ext);
      std::ofstream(cut, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(keep));
      std::string msg;
      const cellcount_status st = status_of([&] { read_image_stack(cut); }, &msg);
      EXPECT_TRUE(st == CELLCOUNT_OK || st == CELLCOUNT_ERR_IO) << name << " cut at " << keep << ": " << msg;
      if (keep <= 16) {
        EXPECT_EQ(st, CELLCOUNT_ERR_IO) << name << " cut at " << keep;
      }
    }
    for (size_t at : {size_t{9}, size_t{20}, size_t{40}, n / 3, n / 2, n - 5}) {
      std::vector<char> bad = bytes;
      bad[at] = static_cast<char>(bad[at] ^ 0x5a);
      const std::string flipped = temp_path("flip" + std::to_string(at) + ext);
      std::ofstream(flipped, std::ios::binary).write(bad.data(), static_cast<std::streamsize>(n));
      std::string msg;
      const cellcount_status st = status_of([&] { read_image_stack(flipped); }, &msg);
      EXPECT_TRUE(st == CELLCOUNT_OK || st == CELLCOUNT_ERR_IO) << name << " byte " << at << ": " << msg;
    }
  }
}

TEST(ImageFile, UnknownExtensionOrDirectory) {
  const std::string path = temp_path("data.csv");
  std::ofstream(path) << "a,b\n";
  EXPECT_EQ(status_of([&] { read_image(path); }), CELLCOUNT_ERR_UNSUPPORTED);
  EXPECT_EQ(status_of([&] { read_image(::testing::TempDir()); }), CELLCOUNT_ERR_IO);
  EXPECT_EQ(status_of([&] { write_image(temp_path("out.xyz"), make_image(2, 2, 1)); }),
            CELLCOUNT_ERR_INVALID_ARGUMENT);
}

TEST(ImageFile, WriteRejectsBadArguments) {
  const std::string path = temp_path("bad.png");
  EXPECT_EQ(status_of([&] { write_image(path, make_image(2, 2, 1), 12); }), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(status_of([&] { write_image(path, make_image(0, 2, 1)); }), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(status_of([&] { write_image(path, make_image(2, 2, 2)); }), CELLCOUNT_ERR_INVALID_ARGUMENT);
  Image short_data = make_image(2, 2, 1);
  short_data.data.pop_back();
  EXPECT_EQ(status_of([&] { write_image(path, short_data); }), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(status_of([&] { write_image(temp_path("bad16.jpg"), make_image(2, 2, 1), 16); }),
            CELLCOUNT_ERR_INVALID_ARGUMENT);
  // Without any back end, UNSUPPORTED comes first.
  EXPECT_EQ(status_of([&] { write_image(temp_path("no_such_dir") + "/x.png", make_image(2, 2, 1)); }),
            backends().empty() ? CELLCOUNT_ERR_UNSUPPORTED : CELLCOUNT_ERR_IO);
  EXPECT_FALSE(fs::exists(path));
}

TEST(ImageFile, NoOverwriteWithoutFlag) {
  REQUIRE_ANY_BACKEND();
  const std::string path = temp_path("keep.png");
  Image first = make_image(4, 4, 1);
  std::fill(first.data.begin(), first.data.end(), 10.0f);
  Image second = first;
  std::fill(second.data.begin(), second.data.end(), 200.0f);
  write_image(path, first);
  std::string msg;
  EXPECT_EQ(status_of([&] { write_image(path, second); }, &msg), CELLCOUNT_ERR_IO);
  EXPECT_NE(msg.find("exists"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_EQ(read_image(path).at(0, 0), 10.0f);  // untouched
  EXPECT_EQ(status_of([&] { write_overlay(path, second, {}); }), CELLCOUNT_ERR_IO);
  EXPECT_EQ(read_image(path).channels, 1);  // still the first file
  write_image(path, second, 8, /*overwrite=*/true);
  EXPECT_EQ(read_image(path).at(0, 0), 200.0f);
}

TEST(ImageFile, OverlayIsRgbWithClassColouredCrosses) {
  REQUIRE_ANY_BACKEND();
  const int64_t w = 40, h = 30;
  Image img = make_image(w, h, 1);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) img.at(y, x) = static_cast<float>(1000 + 50 * x + 3 * y);  // 16-bit-ish range
  Point a;
  a.x = 10;
  a.y = 8;
  Point b;
  b.x = 30.2f;
  b.y = 20.7f;
  b.cls = 2;
  Point edge;  // partly outside: must be clipped, not crash
  edge.x = 0;
  edge.y = 29;
  const std::string path = temp_path("overlay.png");
  write_overlay(path, img, {a, b, edge}, 3);
  const Image back = read_image(path);
  ASSERT_EQ(back.width, w);
  ASSERT_EQ(back.height, h);
  ASSERT_EQ(back.channels, 3);
  EXPECT_EQ(back.source_dtype, "u8");
  auto rgb = [&](int64_t y, int64_t x) {
    return std::vector<float>{back.at(y, x, 0), back.at(y, x, 1), back.at(y, x, 2)};
  };
  const std::vector<float> c0 = rgb(8, 10), c2 = rgb(21, 30);
  EXPECT_EQ(rgb(8, 13), c0);  // arm end, radius 3
  EXPECT_EQ(rgb(5, 10), c0);
  EXPECT_EQ(rgb(24, 30), c2);
  EXPECT_NE(c0, c2);         // classes differ in colour
  EXPECT_NE(c0[0], c0[2]);   // and the crosses are coloured, not grey
  EXPECT_NE(c2[0], c2[1]);
  // Off the crosses the picture is grey and stretched over 0..255.
  const std::vector<float> far = rgb(0, 39);
  EXPECT_EQ(far[0], far[1]);
  EXPECT_EQ(far[1], far[2]);
  EXPECT_EQ(rgb(0, 0)[0], 0.0f);      // darkest corner at the bottom of the range
  EXPECT_EQ(rgb(29, 39)[0], 255.0f);  // brightest corner saturates
  EXPECT_LT(rgb(15, 5)[0], rgb(15, 20)[0]);
  EXPECT_EQ(status_of([&] { write_overlay(temp_path("r.png"), img, {a}, -1); }), CELLCOUNT_ERR_INVALID_ARGUMENT);
  // Odd points are skipped or clipped, high class ids wrap around the palette, huge radii are cut.
  Point nan_point, far_point, high_class = a;
  nan_point.x = std::nanf("");
  far_point.x = 1e20f;
  far_point.y = -1e20f;
  high_class.cls = 9;
  const std::string odd = temp_path("odd.png");
  write_overlay(odd, img, {nan_point, far_point, high_class}, 1000000);
  EXPECT_EQ(read_image(odd).channels, 3);
}

TEST(ImageFile, RealVggCellImage) {
  const fs::path file = fs::path(CELLCOUNT_SHARED_DIR) / "datasets/vgg_cells/cells/001cell.png";
  if (!fs::exists(file)) GTEST_SKIP() << file << " not present (the shared VGG cells dataset is not mounted)";
  REQUIRE_ANY_BACKEND();
  const Image img = read_image(file.string());
  ASSERT_EQ(img.width, 256);
  ASSERT_EQ(img.height, 256);
  ASSERT_EQ(img.channels, 3);
  EXPECT_EQ(img.source_dtype, "u8");
  double sum[3] = {0, 0, 0};
  for (int64_t y = 0; y < img.height; ++y)
    for (int64_t x = 0; x < img.width; ++x)
      for (int c = 0; c < 3; ++c) sum[c] += img.at(y, x, c);
  // Synthetic fluorescence cells: the signal is in blue (channel 2 in RGB order).
  EXPECT_GT(sum[2], 2.0 * sum[0]) << "R " << sum[0] << " G " << sum[1] << " B " << sum[2];
  EXPECT_GT(sum[2], 2.0 * sum[1]) << "R " << sum[0] << " G " << sum[1] << " B " << sum[2];
}

}  // namespace
}  // namespace cellcount::io

// Issue 20: limits and damaged stacks.
namespace cellcount::io {
namespace {

TEST(ImageFile, PngLargerThanThePixelLimitIsRefusedFromItsHeader) {
  REQUIRE_ANY_BACKEND();
  // The header of a 20000 x 20000 grey PNG (a whole such file of zeros is 389 KB and decoded to 8 GB).
  const std::string path = temp_path("huge.png");
  const unsigned char header[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                                  0, 0, 0x4e, 0x20, 0, 0, 0x4e, 0x20, 8, 0, 0, 0, 0, 0, 0, 0, 0};
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(header), sizeof header);
  std::string msg;
  EXPECT_EQ(status_of([&] { read_image(path); }, &msg), CELLCOUNT_ERR_IO);
  EXPECT_NE(msg.find("20000 x 20000"), std::string::npos) << msg;
}

TEST(ImageFile, TruncatedTiffStackIsAnErrorNotOneSlice) {
  REQUIRE_ANY_BACKEND();
  const std::string path = temp_path("stack.tif");
  const int w = 16, h = 16;
  std::vector<std::vector<double>> pages(3, std::vector<double>(w * h, 7.0));
  write_tiff_pages(path, w, h, 8, pages);
  ASSERT_EQ(read_image_stack(path).size(), 3u);
  // Cut inside the second page's pixels: the first page's directory points past the end.
  fs::resize_file(path, fs::file_size(path) * 5 / 10);
  std::string msg;
  EXPECT_EQ(status_of([&] { read_image_stack(path); }, &msg), CELLCOUNT_ERR_IO);
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
}

}  // namespace
}  // namespace cellcount::io
