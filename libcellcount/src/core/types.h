// Plain value types shared by core, methods, capi and io. No LibTorch here (cheap to include).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace cellcount {

// A cell position: x = column, y = row, 0-based, pixel centres at integers.
struct Point {
  float x = 0, y = 0;
  int32_t cls = 0;
  float score = 1.0f;
};

// A point moved to an image resized by (sx, sy), pixel-centre convention: x' = (x + 0.5) * s - 0.5.
inline Point scale_point(Point p, double sx, double sy) {
  p.x = float((p.x + 0.5) * sx - 0.5);
  p.y = float((p.y + 0.5) * sy - 0.5);
  return p;
}

// Half-open box [x0,x1) x [y0,y1) in pixels.
struct Box {
  float x0 = 0, y0 = 0, x1 = 0, y1 = 0;
};

// An owned 2-D image, row-major H x W x C, float values in the file's own range (0..255, 0..65535, ...).
struct Image {
  int64_t width = 0, height = 0, channels = 0;
  std::vector<float> data;
  std::string source_dtype;  // "u8", "u16", "f32": what the file held
  float at(int64_t y, int64_t x, int64_t c = 0) const { return data[(y * width + x) * channels + c]; }
  float& at(int64_t y, int64_t x, int64_t c = 0) { return data[(y * width + x) * channels + c]; }
};

}  // namespace cellcount
