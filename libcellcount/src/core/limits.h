// Resource limits of the library, in one place. Each bounds what one bad input could otherwise make the
// library do without end (a hang, a crash, gigabytes of memory); each is refused with a clear error naming
// the limit, before the work or the allocation starts. The public ones are stated in cellcount.h.
#pragma once
#include <cstdint>
#include <string>

namespace cellcount {

// Images (C ABI views and image files): the largest side, and the most pixels (width x height) of one 2-D
// image or slice. 2^28 pixels = 16384 x 16384, 1 GiB as float32 per channel.
constexpr int64_t kMaxImageSide = int64_t(1) << 20;
constexpr int64_t kMaxImagePixels = int64_t(1) << 28;
// Channels of an image (C ABI views) and of a model's input (model.json input.channels).
constexpr int64_t kMaxChannels = 64;
// Pixel values: |v| <= 1e9. Larger finite values (3.4e38) overflow the normalisation and the networks to
// inf/NaN; no microscope image holds them (uint16 tops at 65535).
constexpr double kMaxAbsPixel = 1e9;
// Exemplar boxes per prediction: the papers use 3; each box costs a feature pass.
constexpr size_t kMaxExemplars = 64;
// Tiles per prediction (per slice): with the smallest tile (32) and the step >= tile/2 this is reached
// only by images of about 4096 x 4096 or more; larger images take larger tiles.
constexpr int64_t kMaxTiles = int64_t(1) << 16;
// CPU threads (cellcount_set_num_threads and the requests' "threads").
constexpr int kMaxThreads = 256;
// Class ids in a dataset (points.csv, proportions.csv): 0..kMaxClassId.
constexpr int64_t kMaxClassId = 65535;
// Files the library reads: model.json and other JSON files, weights, CSV tables, image files.
constexpr uint64_t kMaxJsonFileBytes = uint64_t(64) << 20;
constexpr int kMaxJsonDepth = 64;  // model.json nests 4 deep
constexpr uint64_t kMaxWeightsBytes = uint64_t(8) << 30;
constexpr uint64_t kMaxCsvFileBytes = uint64_t(1) << 30;
constexpr uint64_t kMaxImageFileBytes = uint64_t(16) << 30;
// Text from the caller echoed in a message (a device string, a field value): at most this many characters.
constexpr size_t kMaxEchoChars = 64;

// `s` as echoed in a message: cut to kMaxEchoChars characters, "..." appended when cut.
inline std::string echo(const std::string& s) {
  return s.size() <= kMaxEchoChars ? s : s.substr(0, kMaxEchoChars) + "... (" + std::to_string(s.size()) + " characters)";
}

}  // namespace cellcount
