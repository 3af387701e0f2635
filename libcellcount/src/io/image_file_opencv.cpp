// OpenCV back end: PNG, JPEG, BMP (and TIFF when ITK is not built). The only file that includes OpenCV.
#include <opencv2/core.hpp>
#include <opencv2/core/version.hpp>
#include <opencv2/imgcodecs.hpp>

#include <climits>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/backends.h"

namespace cellcount::io::detail {
namespace {

// Source types OpenCV can decode to; the file's range is kept, only the storage changes to float.
template <typename T>
void copy_plane(const cv::Mat& m, Image& out) {
  const int src_c = m.channels();
  const int64_t w = out.width, h = out.height, c = out.channels;
  // Source channel for each output channel: OpenCV stores BGR(A); we want RGB, alpha dropped.
  int map[3] = {0, 0, 0};
  if (c == 3) {
    map[0] = 2;
    map[1] = 1;
    map[2] = 0;
  }
  for (int64_t y = 0; y < h; ++y) {
    const T* row = m.ptr<T>(static_cast<int>(y));
    float* dst = out.data.data() + y * w * c;
    for (int64_t x = 0; x < w; ++x) {
      const T* px = row + x * src_c;
      for (int64_t k = 0; k < c; ++k) dst[x * c + k] = static_cast<float>(px[map[k]]);
    }
  }
}

Image mat_to_image(const cv::Mat& m, const std::string& path) {
  CC_CHECK(m.dims == 2 && m.rows > 0 && m.cols > 0, CELLCOUNT_ERR_IO,
           "cannot decode image '" + path + "': empty or not a 2-D image");
  Image img;
  img.width = m.cols;
  img.height = m.rows;
  // 1 = grey, 2 = grey + alpha, 3 = BGR, 4 = BGRA. Other counts (multi-sample TIFF) keep the first one.
  img.channels = m.channels() >= 3 ? 3 : 1;
  img.data.resize(static_cast<size_t>(img.width * img.height * img.channels));
  switch (m.depth()) {
    case CV_8U: img.source_dtype = "u8"; copy_plane<uint8_t>(m, img); break;
    case CV_16U: img.source_dtype = "u16"; copy_plane<uint16_t>(m, img); break;
    case CV_32F: img.source_dtype = "f32"; copy_plane<float>(m, img); break;
    // Rare in practice (signed or double TIFF through OpenCV): values kept, reported as float.
    case CV_8S: img.source_dtype = "f32"; copy_plane<int8_t>(m, img); break;
    case CV_16S: img.source_dtype = "f32"; copy_plane<int16_t>(m, img); break;
    case CV_32S: img.source_dtype = "f32"; copy_plane<int32_t>(m, img); break;
    case CV_64F: img.source_dtype = "f32"; copy_plane<double>(m, img); break;
    default: fail(CELLCOUNT_ERR_IO, "cannot decode image '" + path + "': unsupported sample type");
  }
  return img;
}

bool has_extension(const std::string& path, const char* const* exts) {
  const auto dot = path.find_last_of('.');
  if (dot == std::string::npos) return false;
  std::string ext = path.substr(dot);
  for (char& ch : ext) ch = static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
  for (const char* const* e = exts; *e; ++e)
    if (ext == *e) return true;
  return false;
}

}  // namespace

std::string opencv_version() { return std::string("opencv ") + CV_VERSION; }

std::vector<Image> opencv_read(const std::string& path) {
  static const char* const tiff_exts[] = {".tif", ".tiff", nullptr};
  std::vector<Image> out;
  try {
    std::vector<cv::Mat> mats;
    if (has_extension(path, tiff_exts)) {
      if (!cv::imreadmulti(path, mats, cv::IMREAD_UNCHANGED)) mats.clear();
    } else {
      cv::Mat m = cv::imread(path, cv::IMREAD_UNCHANGED);
      if (!m.empty()) mats.push_back(std::move(m));
    }
    CC_CHECK(!mats.empty(), CELLCOUNT_ERR_IO,
             "cannot decode image '" + path + "': empty, truncated or not an image (OpenCV)");
    out.reserve(mats.size());
    for (const cv::Mat& m : mats) out.push_back(mat_to_image(m, path));
  } catch (const cv::Exception& e) {
    fail(CELLCOUNT_ERR_IO, "cannot decode image '" + path + "' (OpenCV): " + e.what());
  }
  return out;
}

void opencv_write(const std::string& path, const Image& image, int bit_depth) {
  CC_CHECK(image.width <= INT_MAX / 4 && image.height <= INT_MAX, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "cannot write '" + path + "': image too large for OpenCV");
  const int w = static_cast<int>(image.width), h = static_cast<int>(image.height);
  const int c = static_cast<int>(image.channels);
  const double max_value = bit_depth == 16 ? 65535.0 : 255.0;
  cv::Mat m(h, w, CV_MAKETYPE(bit_depth == 32 ? CV_32F : bit_depth == 16 ? CV_16U : CV_8U, c));
  // RGB(A) in, BGR(A) out.
  int map[4] = {0, 1, 2, 3};
  if (c >= 3) {
    map[0] = 2;
    map[2] = 0;
  }
  for (int y = 0; y < h; ++y) {
    const float* src = image.data.data() + static_cast<int64_t>(y) * w * c;
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) {
        if (bit_depth == 32) {
          m.ptr<float>(y)[x * c + k] = src[x * c + map[k]];
          continue;
        }
        const double v = to_integer_range(src[x * c + map[k]], max_value);
        if (bit_depth == 16)
          m.ptr<uint16_t>(y)[x * c + k] = static_cast<uint16_t>(v);
        else
          m.ptr<uint8_t>(y)[x * c + k] = static_cast<uint8_t>(v);
      }
  }
  bool ok = false;
  try {
    ok = cv::imwrite(path, m);
  } catch (const cv::Exception& e) {
    fail(CELLCOUNT_ERR_IO, "cannot write image '" + path + "' (OpenCV): " + e.what());
  }
  CC_CHECK(ok, CELLCOUNT_ERR_IO, "cannot write image '" + path + "' (OpenCV): unknown format or unwritable path");
}

}  // namespace cellcount::io::detail
