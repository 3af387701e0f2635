// Private to io/: the functions each file-format back end provides to the dispatcher (image_file.cpp).
// OpenCV headers live only in image_file_opencv.cpp and ITK headers only in image_file_itk.cpp; this
// header includes neither. A back end's functions exist only when it is built (CELLCOUNT_WITH_OPENCV,
// CELLCOUNT_WITH_ITK set to 1 by io.cmake).
//
// Contract shared by every back end (the dispatcher checks the rest before calling):
//  - read_*: `path` names an existing regular file. Returns one Image per 2-D plane, RGB order, alpha
//    dropped, values in the file's range, source_dtype set. Throws Error(CELLCOUNT_ERR_IO, ...) naming
//    the path when the file cannot be decoded; never lets a library exception (cv::Exception,
//    itk::ExceptionObject) escape.
//  - write_*: `image` is validated (1, 3 or 4 channels, data size = w*h*c) and `bit_depth` is 8 or 16;
//    the overwrite rule has been applied. Values are rounded and clamped to the bit depth. The format
//    comes from the extension. Throws Error(CELLCOUNT_ERR_IO, ...) naming the path on failure.
#pragma once
#include <string>
#include <vector>

#include "core/types.h"

namespace cellcount::io::detail {

#if defined(CELLCOUNT_WITH_OPENCV) && CELLCOUNT_WITH_OPENCV
std::string opencv_version();  // e.g. "opencv 4.6.0"
std::vector<Image> opencv_read(const std::string& path);
void opencv_write(const std::string& path, const Image& image, int bit_depth);
#endif

#if defined(CELLCOUNT_WITH_ITK) && CELLCOUNT_WITH_ITK
std::string itk_version();  // e.g. "itk 5.2.1"
std::vector<Image> itk_read(const std::string& path);
void itk_write(const std::string& path, const Image& image, int bit_depth);
#endif

// Rounds and clamps one value to [0, max_value]; NaN becomes 0. Shared by both back ends' writers.
inline double to_integer_range(float v, double max_value) {
  if (!(v == v)) return 0.0;  // NaN
  double r = static_cast<double>(v) + 0.5;
  if (r <= 0.0) return 0.0;
  if (r >= max_value) return max_value;
  return static_cast<double>(static_cast<long long>(r));  // floor of v + 0.5 for v >= 0
}

}  // namespace cellcount::io::detail
