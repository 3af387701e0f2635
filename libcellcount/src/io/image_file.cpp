// Dispatch between the file-format back ends (io/backends.h) and the parts that need none: argument
// checks, the overwrite rule, and overlay rendering. Includes neither OpenCV nor ITK.
#include "io/image_file.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "core/error.h"
#include "core/limits.h"
#include "io/backends.h"

#if !defined(CELLCOUNT_WITH_OPENCV)
#define CELLCOUNT_WITH_OPENCV 0
#endif
#if !defined(CELLCOUNT_WITH_ITK)
#define CELLCOUNT_WITH_ITK 0
#endif

namespace cellcount::io {
namespace {

namespace fs = std::filesystem;

enum class Format { kPng, kJpeg, kBmp, kTiff, kUnknown };

Format format_of(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](char ch) { return static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch); });
  if (ext == ".png") return Format::kPng;
  if (ext == ".jpg" || ext == ".jpeg") return Format::kJpeg;
  if (ext == ".bmp") return Format::kBmp;
  if (ext == ".tif" || ext == ".tiff") return Format::kTiff;
  return Format::kUnknown;
}

constexpr const char* kExtensions = ".png .jpg .jpeg .bmp .tif .tiff";

[[noreturn]] void no_backend(const std::string& path) {
  fail(CELLCOUNT_ERR_UNSUPPORTED, "cannot handle '" + path +
                                      "': cellcount was built without OpenCV and without ITK "
                                      "(CELLCOUNT_WITH_OPENCV=OFF, CELLCOUNT_WITH_ITK=OFF)");
}

// Which back end serves a format: ITK for TIFF, OpenCV for the rest, else whichever is built.
enum class Backend { kOpenCV, kITK };

Backend choose(Format f, const std::string& path) {
  const bool cv = CELLCOUNT_WITH_OPENCV, itk = CELLCOUNT_WITH_ITK;
  if (f == Format::kTiff) {
    if (itk) return Backend::kITK;
    if (cv) return Backend::kOpenCV;
  } else {
    if (cv) return Backend::kOpenCV;
    if (itk) return Backend::kITK;
  }
  no_backend(path);
}

void check_writable(const std::string& path, bool overwrite) {
  CC_CHECK(!path.empty(), CELLCOUNT_ERR_INVALID_ARGUMENT, "empty output path");
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (fs::exists(st)) {
    CC_CHECK(!fs::is_directory(st), CELLCOUNT_ERR_IO, "cannot write '" + path + "': it is a directory");
    CC_CHECK(overwrite, CELLCOUNT_ERR_IO, "'" + path + "' exists; pass overwrite=true to replace it");
  }
  const fs::path parent = fs::path(path).parent_path();
  CC_CHECK(parent.empty() || fs::is_directory(parent, ec), CELLCOUNT_ERR_IO,
           "cannot write '" + path + "': directory '" + parent.string() + "' does not exist");
}

void check_image(const std::string& path, const Image& image) {
  CC_CHECK(image.width > 0 && image.height > 0, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "cannot write '" + path + "': empty image (" + std::to_string(image.width) + "x" +
               std::to_string(image.height) + ")");
  CC_CHECK(image.channels == 1 || image.channels == 3 || image.channels == 4, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "cannot write '" + path + "': expected 1, 3 or 4 channels, got " + std::to_string(image.channels));
  const uint64_t expected = static_cast<uint64_t>(image.width) * static_cast<uint64_t>(image.height) *
                            static_cast<uint64_t>(image.channels);
  CC_CHECK(image.data.size() == expected, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "cannot write '" + path + "': data holds " + std::to_string(image.data.size()) + " values, expected " +
               std::to_string(expected) + " (width*height*channels)");
}

// Width and height from the header of a PNG, JPEG or BMP file, read before any decoder allocates the
// pixels ({0, 0} when the header cannot be read: the decoder then reports the damage). TIFF sizes come
// from ITK's header read (image_file_itk.cpp).
std::pair<int64_t, int64_t> header_size(const std::string& path, Format f) {
  std::ifstream in(path, std::ios::binary);
  unsigned char b[32] = {};
  auto be = [](const unsigned char* p, int n) {
    int64_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
    return v;
  };
  if (f == Format::kPng) {  // signature, IHDR length and type, then width and height (big-endian)
    if (!in.read(reinterpret_cast<char*>(b), 24) || std::memcmp(b + 12, "IHDR", 4) != 0) return {0, 0};
    return {be(b + 16, 4), be(b + 20, 4)};
  }
  if (f == Format::kBmp) {  // BITMAPINFOHEADER: int32 width at 18, height at 22 (negative = top-down)
    if (!in.read(reinterpret_cast<char*>(b), 26) || b[0] != 'B' || b[1] != 'M') return {0, 0};
    auto le32 = [&](int o) { return int64_t(int32_t(uint32_t(b[o]) | uint32_t(b[o + 1]) << 8 | uint32_t(b[o + 2]) << 16 | uint32_t(b[o + 3]) << 24)); };
    return {std::llabs(le32(18)), std::llabs(le32(22))};
  }
  if (f == Format::kJpeg) {  // markers up to the first start-of-frame: height then width (big-endian)
    if (!in.read(reinterpret_cast<char*>(b), 2) || b[0] != 0xFF || b[1] != 0xD8) return {0, 0};
    for (int guard = 0; guard < 1000 && in.read(reinterpret_cast<char*>(b), 4); ++guard) {
      if (b[0] != 0xFF) return {0, 0};
      const int marker = b[1];
      const int64_t len = be(b + 2, 2);
      const bool sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
      if (sof) {
        if (!in.read(reinterpret_cast<char*>(b), 5)) return {0, 0};
        return {be(b + 3, 2), be(b + 1, 2)};
      }
      if (len < 2) return {0, 0};
      in.seekg(len - 2, std::ios::cur);
    }
  }
  return {0, 0};
}

// ---- overlay rendering (no back end needed) ----

struct Rgb {
  uint8_t r, g, b;
};

// Class 0 (the only class of single-class methods) is yellow, which stands out on grey, blue and
// red stains alike; classes 1..7 get distinct colours, and higher ids wrap around 1..7.
Rgb class_colour(int32_t cls) {
  static const Rgb palette[8] = {
      {255, 220, 0},    // 0 yellow
      {255, 60, 60},    // 1 red
      {60, 220, 60},    // 2 green
      {70, 150, 255},   // 3 blue
      {255, 0, 255},    // 4 magenta
      {0, 230, 230},    // 5 cyan
      {255, 140, 0},    // 6 orange
      {255, 255, 255},  // 7 white
  };
  if (cls <= 0) return palette[0];
  return palette[1 + (cls - 1) % 7];
}

// Value at fraction q of the sorted finite values (nearest rank).
float percentile(std::vector<float>& v, double q) {
  const size_t k = static_cast<size_t>(std::llround(q * static_cast<double>(v.size() - 1)));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

// 8-bit RGB rendering of `image`: one stretch (1st..99.8th percentile over all shown channels, so the
// colour balance is kept) maps values to 0..255. Grey repeats channel 0; two channels show as R and G.
Image render_rgb(const Image& image) {
  const int64_t n = image.width * image.height, c = image.channels;
  const int64_t shown = std::min<int64_t>(c, 3);
  std::vector<float> finite;
  finite.reserve(static_cast<size_t>(n * shown));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < shown; ++k) {
      const float v = image.data[static_cast<size_t>(i * c + k)];
      if (std::isfinite(v)) finite.push_back(v);
    }
  float lo = 0, hi = 0;
  if (!finite.empty()) {
    lo = percentile(finite, 0.01);
    hi = percentile(finite, 0.998);
  }
  const double scale = hi > lo ? 255.0 / (static_cast<double>(hi) - lo) : 0.0;
  auto to8 = [&](float v) -> float {
    if (!std::isfinite(v)) return 0.0f;
    if (scale == 0.0) return v > lo ? 255.0f : (v < lo ? 0.0f : (hi > 0 ? 255.0f : 0.0f));
    const double s = (static_cast<double>(v) - lo) * scale;
    return static_cast<float>(std::clamp(s, 0.0, 255.0));
  };
  Image out;
  out.width = image.width;
  out.height = image.height;
  out.channels = 3;
  out.source_dtype = "u8";
  out.data.assign(static_cast<size_t>(n * 3), 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    const float* px = image.data.data() + i * c;
    float* o = out.data.data() + i * 3;
    if (c == 1) {
      o[0] = o[1] = o[2] = to8(px[0]);
    } else {
      for (int64_t k = 0; k < shown; ++k) o[k] = to8(px[k]);
    }
  }
  return out;
}

void draw_cross(Image& rgb, const Point& p, int radius) {
  const float lim = 1e9f;  // far outside any image; keeps llround defined
  if (!(std::fabs(p.x) < lim && std::fabs(p.y) < lim)) return;  // also skips NaN and inf
  const int64_t cx = std::llround(p.x), cy = std::llround(p.y);
  const int64_t r = std::min<int64_t>(radius, std::max(rgb.width, rgb.height));
  const Rgb col = class_colour(p.cls);
  auto put = [&](int64_t x, int64_t y) {
    if (x < 0 || y < 0 || x >= rgb.width || y >= rgb.height) return;
    float* o = rgb.data.data() + (y * rgb.width + x) * 3;
    o[0] = col.r;
    o[1] = col.g;
    o[2] = col.b;
  };
  for (int64_t d = -r; d <= r; ++d) {
    put(cx + d, cy);
    put(cx, cy + d);
  }
}

}  // namespace

std::vector<std::string> backends() {
  std::vector<std::string> names;
#if CELLCOUNT_WITH_OPENCV
  names.push_back(detail::opencv_version());
#endif
#if CELLCOUNT_WITH_ITK
  names.push_back(detail::itk_version());
#endif
  return names;
}

bool is_image_file(const std::string& path) { return format_of(path) != Format::kUnknown; }

void check_image_size(const std::string& path, int64_t width, int64_t height) {
  CC_CHECK(width <= kMaxImageSide && height <= kMaxImageSide && width * height <= kMaxImagePixels, CELLCOUNT_ERR_IO,
           "cannot read '" + path + "': " + std::to_string(width) + " x " + std::to_string(height) +
               " pixels is more than one image may have (" + std::to_string(kMaxImagePixels) +
               " pixels, 16384 x 16384; sides up to " + std::to_string(kMaxImageSide) + ")");
}

std::vector<Image> read_image_stack(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  CC_CHECK(fs::exists(st), CELLCOUNT_ERR_IO, "cannot read '" + path + "': no such file");
  CC_CHECK(fs::is_regular_file(st), CELLCOUNT_ERR_IO, "cannot read '" + path + "': not a regular file");
  const std::uintmax_t size = fs::file_size(path, ec);
  CC_CHECK(!ec, CELLCOUNT_ERR_IO, "cannot read '" + path + "': " + ec.message());
  CC_CHECK(size > 0, CELLCOUNT_ERR_IO, "cannot read '" + path + "': empty file");
  CC_CHECK(std::ifstream(path, std::ios::binary).good(), CELLCOUNT_ERR_IO,
           "cannot read '" + path + "': cannot open it (permissions?)");
  const Format f = format_of(path);
  CC_CHECK(f != Format::kUnknown, CELLCOUNT_ERR_UNSUPPORTED,
           "cannot read '" + path + "': unknown image extension (expected one of " + kExtensions + ")");
  const auto [hw, hh] = header_size(path, f);
  check_image_size(path, hw, hh);
  std::vector<Image> planes;
  switch (choose(f, path)) {
    case Backend::kOpenCV:
#if CELLCOUNT_WITH_OPENCV
      planes = detail::opencv_read(path);
#endif
      break;
    case Backend::kITK:
#if CELLCOUNT_WITH_ITK
      planes = detail::itk_read(path);
#endif
      break;
  }
  CC_CHECK(!planes.empty(), CELLCOUNT_ERR_IO, "cannot decode image '" + path + "': no image planes");
  return planes;
}

Image read_image(const std::string& path) { return std::move(read_image_stack(path).front()); }

void write_image(const std::string& path, const Image& image, int bit_depth, bool overwrite) {
  CC_CHECK(bit_depth == 8 || bit_depth == 16 || bit_depth == 32, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "cannot write '" + path + "': bit_depth must be 8, 16 or 32 (float), got " + std::to_string(bit_depth));
  const Format f = format_of(path);
  CC_CHECK(f != Format::kUnknown, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "cannot write '" + path + "': unknown image extension (expected one of " + kExtensions + ")");
  CC_CHECK(bit_depth == 8 || f == Format::kPng || f == Format::kTiff, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "cannot write '" + path + "' with 16 bits: only PNG and TIFF hold 16 bits");
  CC_CHECK(bit_depth != 32 || f == Format::kTiff, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "cannot write '" + path + "' as 32-bit float: only TIFF holds float pixels");
  check_image(path, image);
  const Backend b = choose(f, path);
  check_writable(path, overwrite);
  switch (b) {
    case Backend::kOpenCV:
#if CELLCOUNT_WITH_OPENCV
      detail::opencv_write(path, image, bit_depth);
#endif
      break;
    case Backend::kITK:
#if CELLCOUNT_WITH_ITK
      detail::itk_write(path, image, bit_depth);
#endif
      break;
  }
}

void write_overlay(const std::string& path, const Image& image, const std::vector<Point>& points, int radius,
                   bool overwrite) {
  CC_CHECK(radius >= 0, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "write_overlay: radius must be >= 0, got " + std::to_string(radius));
  CC_CHECK(image.width > 0 && image.height > 0 && image.channels > 0, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "write_overlay: empty image");
  CC_CHECK(image.data.size() == static_cast<size_t>(image.width * image.height * image.channels),
           CELLCOUNT_ERR_INVALID_ARGUMENT,
           "write_overlay: data holds " + std::to_string(image.data.size()) + " values, expected width*height*channels");
  check_writable(path, overwrite);  // fail before rendering; write_image checks again
  Image rgb = render_rgb(image);
  for (const Point& p : points) draw_cross(rgb, p, radius);
  write_image(path, rgb, 8, overwrite);
}

}  // namespace cellcount::io
