// Image files in and out. Implemented with ITK (TIFF stacks, 16-bit, spacing) and OpenCV (PNG/JPEG/BMP);
// when a back end is not built, the formats it serves fail with CELLCOUNT_ERR_UNSUPPORTED.
// No LibTorch here.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/types.h"

namespace cellcount::io {

// Names of the built back ends, e.g. {"opencv 4.6.0", "itk 5.2.1"}.
std::vector<std::string> backends();

// True if the file extension is one we read (.png .jpg .jpeg .bmp .tif .tiff; case-insensitive).
bool is_image_file(const std::string& path);

// Reads every 2-D plane of a file (a PNG gives one; a multi-page or 3-D TIFF gives one per slice).
// Channels are interleaved in RGB order (never BGR); alpha is dropped. Values stay in the file's range
// (uint8 0..255, uint16 0..65535, float as stored) and Image::source_dtype says which.
// Images larger than kMaxImagePixels (2^28, core/limits.h) per plane are refused from the file's header,
// before the pixels are decoded (PNG, JPEG, BMP by our header read; TIFF by ITK's).
// Errors: CELLCOUNT_ERR_IO (missing, not a regular file, unreadable, undecodable, too large, with the path),
// CELLCOUNT_ERR_UNSUPPORTED.
std::vector<Image> read_image_stack(const std::string& path);

// CELLCOUNT_ERR_IO naming the file when width x height is more than one image may have.
void check_image_size(const std::string& path, int64_t width, int64_t height);

// The first plane of read_image_stack.
Image read_image(const std::string& path);

// Writes a PNG (or TIFF by extension). Values are rounded and clamped to uint8 (or uint16 when
// bit_depth == 16); bit_depth == 32 writes float pixels unchanged (TIFF only). Refuses to overwrite an existing file unless overwrite is true (CELLCOUNT_ERR_IO).
void write_image(const std::string& path, const Image& image, int bit_depth = 8, bool overwrite = false);

// Writes an RGB PNG: the image contrast-stretched to grey or colour (1st-99.8th percentile), with a
// coloured cross of radius `radius` at every point (colour by class). Same overwrite rule.
void write_overlay(const std::string& path, const Image& image, const std::vector<Point>& points,
                   int radius = 3, bool overwrite = false);

}  // namespace cellcount::io
