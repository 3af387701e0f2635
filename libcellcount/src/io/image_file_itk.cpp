// ITK back end: TIFF (multi-page, 3-D stacks, 8/16/32-bit, float, RGB), and PNG/JPEG/BMP when OpenCV
// is not built. The only file that includes ITK.
//
// We talk to itk::ImageIOBase directly rather than through a templated ImageFileReader: the pixel type
// is only known at run time (component type x number of components x 2-D/3-D), and the raw buffer is
// already in our layout (components interleaved, x fastest, then y, then z).
//
// We pick the ImageIO class ourselves (by the file's magic bytes for reading, by extension for
// writing) instead of asking itk::ImageIOFactory: the factory probes every registered reader's
// CanReadFile, and in ITK 5.2 the JPEG probe segfaults on a damaged JPEG (longjmp into a dead frame,
// fixed in ITK 5.3). Not using factories also means no UseITK.cmake and no
// ITK_IO_FACTORY_REGISTER_MANAGER: the build needs no directory-wide ITK settings.
#include <itkBMPImageIO.h>
#include <itkConfigure.h>
#include <itkImageIOBase.h>
#include <itkImageIORegion.h>
#include <itkJPEGImageIO.h>
#include <itkPNGImageIO.h>
#include <itkTIFFImageIO.h>
#include <itkVersion.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/backends.h"
#include "io/image_file.h"

namespace cellcount::io::detail {
namespace {

using Component = itk::IOComponentEnum;
using PixelKind = itk::IOPixelEnum;

// ITK before 5.3 crashes (segfault) on damaged JPEG files, in CanReadFile and in Read (ITK #2928).
constexpr bool kItkJpegIsSafe = ITK_VERSION_MAJOR > 5 || (ITK_VERSION_MAJOR == 5 && ITK_VERSION_MINOR >= 3);

// Splits ITK's buffer (planes one after another, each w*h pixels of `src_c` interleaved components of
// type T) into `planes`, already sized; each keeps its first `channels` components (alpha dropped).
template <typename T>
void unpack(const unsigned char* buf, std::vector<Image>& planes, int64_t src_c) {
  for (size_t z = 0; z < planes.size(); ++z) {
    Image& img = planes[z];
    const int64_t n = img.width * img.height, c = img.channels;
    const unsigned char* base = buf + z * static_cast<size_t>(n * src_c) * sizeof(T);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < c; ++k) {
        T v;
        std::memcpy(&v, base + static_cast<size_t>(i * src_c + k) * sizeof(T), sizeof(T));
        img.data[static_cast<size_t>(i * c + k)] = static_cast<float>(v);
      }
  }
}

const char* dtype_name(Component t) {
  switch (t) {
    case Component::UCHAR: return "u8";
    case Component::USHORT: return "u16";
    default: return "f32";  // everything else is stored as float with its values kept
  }
}

// ---- PNG pre-check ----
// ITK 5.2's PNGImageIO::ReadImageInformation sets no libpng error handler, so libpng abort()s the whole
// process on a damaged header (fixed in ITK 5.3, PR #2942). PNGs only reach ITK when OpenCV is not
// built; we then walk the chunk structure first and refuse what libpng would call a critical error:
// bad signature, truncation, an invalid chunk name, a critical chunk with a wrong CRC, invalid IHDR, missing PLTE or IDAT.

uint32_t crc32_update(uint32_t crc, const unsigned char* p, size_t n) {
  static const std::vector<uint32_t> table = [] {
    std::vector<uint32_t> t(256);
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xffu] ^ (crc >> 8);
  return crc;
}

uint32_t be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// Empty string if the PNG's structure is sound, else what is wrong.
std::string png_structure_problem(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  unsigned char sig[8];
  static const unsigned char kSig[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  if (!f.read(reinterpret_cast<char*>(sig), 8) || std::memcmp(sig, kSig, 8) != 0) return "not a PNG signature";
  bool have_ihdr = false, have_plte = false, have_idat = false;
  int colour_type = -1;
  std::vector<unsigned char> data;
  for (;;) {
    unsigned char head[8];
    if (!f.read(reinterpret_cast<char*>(head), 8)) return "truncated (no IEND chunk)";
    const uint32_t len = be32(head);
    if (len > 0x7fffffffu) return "chunk length out of range";
    const std::string type(reinterpret_cast<const char*>(head + 4), 4);
    for (char ch : type)
      if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z'))) return "invalid chunk name";
    const bool critical = (head[4] & 0x20) == 0;
    uint32_t crc = crc32_update(0xffffffffu, head + 4, 4);
    data.clear();
    uint32_t left = len;
    unsigned char block[65536];
    while (left > 0) {
      const uint32_t n = std::min<uint32_t>(left, sizeof(block));
      if (!f.read(reinterpret_cast<char*>(block), n)) return "truncated inside chunk " + type;
      crc = crc32_update(crc, block, n);
      if (type == "IHDR" && data.size() < 13) data.insert(data.end(), block, block + std::min<uint32_t>(n, 13));
      left -= n;
    }
    unsigned char crc_bytes[4];
    if (!f.read(reinterpret_cast<char*>(crc_bytes), 4)) return "truncated inside chunk " + type;
    if (critical && (crc ^ 0xffffffffu) != be32(crc_bytes)) return "CRC error in chunk " + type;
    if (!have_ihdr) {
      if (type != "IHDR" || len != 13) return "first chunk is not a valid IHDR";
      const uint32_t w = be32(data.data()), h = be32(data.data() + 4);
      const int depth = data[8];
      colour_type = data[9];
      if (w == 0 || h == 0 || w > 0x7fffffffu || h > 0x7fffffffu) return "invalid image size in IHDR";
      bool depth_ok = false;
      switch (colour_type) {
        case 0: depth_ok = depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16; break;
        case 3: depth_ok = depth == 1 || depth == 2 || depth == 4 || depth == 8; break;
        case 2: case 4: case 6: depth_ok = depth == 8 || depth == 16; break;
        default: return "invalid colour type in IHDR";
      }
      if (!depth_ok) return "invalid bit depth in IHDR";
      if (data[10] != 0 || data[11] != 0 || data[12] > 1) return "invalid compression, filter or interlace in IHDR";
      have_ihdr = true;
    } else if (type == "IHDR") {
      return "duplicate IHDR";
    } else if (type == "PLTE") {
      if (len == 0 || len % 3 != 0 || len > 3 * 256) return "invalid PLTE length";
      have_plte = true;
    } else if (type == "IDAT") {
      if (colour_type == 3 && !have_plte) return "missing PLTE before IDAT";
      have_idat = true;
    } else if (type == "IEND") {
      return have_idat ? std::string() : "no IDAT chunk";
    }
  }
}

// ITK's BMPImageIO reads past the end of a truncated or damaged file and returns garbage (a flipped bit
// in the width gives a 5898277-pixel-wide image). For uncompressed BMPs the pixel rows must fit in the
// file, so we check that before ITK sees it. Empty string if sound, else what is wrong.
std::string bmp_structure_problem(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  const std::streamoff file_size = f.tellg();
  unsigned char h[34];
  f.seekg(0);
  if (file_size < 34 || !f.read(reinterpret_cast<char*>(h), 34)) return "truncated header";
  auto le16 = [&](int at) { return static_cast<uint32_t>(h[at] | (h[at + 1] << 8)); };
  auto le32 = [&](int at) { return le16(at) | (le16(at + 2) << 16); };
  const uint32_t data_offset = le32(10), dib_size = le32(14);
  int64_t w = 0, rows = 0;
  uint32_t bits = 0, compression = 0;
  if (dib_size == 12) {  // BITMAPCOREHEADER
    w = le16(18);
    rows = le16(20);
    bits = le16(24);
  } else if (dib_size >= 40) {  // BITMAPINFOHEADER and later
    w = static_cast<int32_t>(le32(18));
    rows = static_cast<int32_t>(le32(22));
    bits = le16(28);
    compression = le32(30);
  } else {
    return "unknown header size " + std::to_string(dib_size);
  }
  if (rows < 0) rows = -rows;  // top-down
  if (w <= 0 || rows == 0) return "invalid image size";
  if (bits != 1 && bits != 4 && bits != 8 && bits != 16 && bits != 24 && bits != 32) return "invalid bit depth";
  if (compression == 0 || compression == 3) {  // BI_RGB, BI_BITFIELDS: rows stored as they are
    const int64_t stride = (w * bits + 31) / 32 * 4;
    if (static_cast<int64_t>(data_offset) + stride * rows > static_cast<int64_t>(file_size))
      return "truncated pixel data (" + std::to_string(w) + "x" + std::to_string(rows) + " needs more than the " +
             std::to_string(file_size) + "-byte file)";
  }
  return std::string();
}

// A classic TIFF whose chain of image directories leaves the file: what a stack cut short looks like.
// libtiff stops counting pages at the first directory it cannot read, so ITK read such a stack as its
// first slice without a word. "" when the chain is whole (or the file is a BigTIFF, not walked here).
std::string tiff_chain_problem(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  unsigned char h[8] = {};
  if (!f.read(reinterpret_cast<char*>(h), 8)) return "shorter than a TIFF header";
  const bool le = h[0] == 'I';
  auto u16 = [&](const unsigned char* p) { return le ? uint32_t(p[0] | p[1] << 8) : uint32_t(p[0] << 8 | p[1]); };
  auto u32 = [&](const unsigned char* p) {
    return le ? uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24
              : uint32_t(p[3]) | uint32_t(p[2]) << 8 | uint32_t(p[1]) << 16 | uint32_t(p[0]) << 24;
  };
  if (u16(h + 2) != 42) return std::string();  // BigTIFF
  f.seekg(0, std::ios::end);
  const uint64_t size = static_cast<uint64_t>(f.tellg());
  uint64_t at = u32(h + 4);
  for (int page = 1; at != 0; ++page) {
    if (page > 1000000) return "more than 1000000 image directories (a loop?)";
    unsigned char c[2];
    f.seekg(static_cast<std::streamoff>(at));
    if (at + 2 > size || !f.read(reinterpret_cast<char*>(c), 2))
      return "truncated: the directory of page " + std::to_string(page) + " lies past the end of the " +
             std::to_string(size) + "-byte file";
    const uint64_t next_field = at + 2 + 12 * uint64_t(u16(c));
    unsigned char n[4];
    f.seekg(static_cast<std::streamoff>(next_field));
    if (next_field + 4 > size || !f.read(reinterpret_cast<char*>(n), 4))
      return "truncated: the directory of page " + std::to_string(page) + " ends past the end of the " +
             std::to_string(size) + "-byte file";
    const uint64_t next = u32(n);
    if (next != 0 && next <= at) return "image directories loop back (damaged file)";
    at = next;
  }
  return std::string();
}

enum class FileKind { kTiff, kPng, kJpeg, kBmp, kUnknown };

FileKind sniff(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  unsigned char m[4] = {0, 0, 0, 0};
  f.read(reinterpret_cast<char*>(m), 4);
  if ((m[0] == 'I' && m[1] == 'I' && (m[2] == 42 || m[2] == 43) && m[3] == 0) ||
      (m[0] == 'M' && m[1] == 'M' && m[2] == 0 && (m[3] == 42 || m[3] == 43)))
    return FileKind::kTiff;  // classic TIFF or BigTIFF, either byte order
  if (m[0] == 0x89 && m[1] == 'P' && m[2] == 'N' && m[3] == 'G') return FileKind::kPng;
  if (m[0] == 0xff && m[1] == 0xd8 && m[2] == 0xff) return FileKind::kJpeg;
  if (m[0] == 'B' && m[1] == 'M') return FileKind::kBmp;
  return FileKind::kUnknown;
}

FileKind kind_of_extension(const std::string& path) {
  const auto dot = path.find_last_of("./");
  if (dot == std::string::npos || path[dot] != '.') return FileKind::kUnknown;
  std::string ext = path.substr(dot);
  for (char& ch : ext) ch = static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
  if (ext == ".tif" || ext == ".tiff") return FileKind::kTiff;
  if (ext == ".png") return FileKind::kPng;
  if (ext == ".jpg" || ext == ".jpeg") return FileKind::kJpeg;
  if (ext == ".bmp") return FileKind::kBmp;
  return FileKind::kUnknown;
}

itk::ImageIOBase::Pointer make_io(FileKind k) {
  switch (k) {
    case FileKind::kTiff: return itk::TIFFImageIO::New().GetPointer();
    case FileKind::kPng: return itk::PNGImageIO::New().GetPointer();
    case FileKind::kJpeg: return itk::JPEGImageIO::New().GetPointer();
    case FileKind::kBmp: return itk::BMPImageIO::New().GetPointer();
    case FileKind::kUnknown: break;
  }
  return nullptr;
}

}  // namespace

std::string itk_version() { return std::string("itk ") + itk::Version::GetITKVersion(); }

std::vector<Image> itk_read(const std::string& path) {
  std::vector<Image> planes;
  try {
    const FileKind kind = sniff(path);  // by content, whatever the extension says
    CC_CHECK(kind != FileKind::kUnknown, CELLCOUNT_ERR_IO,
             "cannot decode image '" + path + "': not a TIFF, PNG, JPEG or BMP file (ITK)");
    if (kind == FileKind::kJpeg && !kItkJpegIsSafe)
      fail(CELLCOUNT_ERR_UNSUPPORTED, "cannot read JPEG '" + path + "': this build has no OpenCV, and ITK " +
                                          itk::Version::GetITKVersion() +
                                          " crashes on damaged JPEG files (fixed in ITK 5.3); "
                                          "build with CELLCOUNT_WITH_OPENCV=ON or convert the file");
    if (kind == FileKind::kPng) {
      const std::string problem = png_structure_problem(path);
      CC_CHECK(problem.empty(), CELLCOUNT_ERR_IO, "cannot decode image '" + path + "': damaged PNG (" + problem + ")");
    }
    if (kind == FileKind::kTiff) {
      // Choice: an error, not a warning: reading what is left would silently drop slices of a stack.
      const std::string problem = tiff_chain_problem(path);
      CC_CHECK(problem.empty(), CELLCOUNT_ERR_IO, "cannot read TIFF '" + path + "': " + problem);
    }
    if (kind == FileKind::kBmp) {
      const std::string problem = bmp_structure_problem(path);
      CC_CHECK(problem.empty(), CELLCOUNT_ERR_IO, "cannot decode image '" + path + "': damaged BMP (" + problem + ")");
    }
    itk::ImageIOBase::Pointer io = make_io(kind);
    CC_CHECK(io && io->CanReadFile(path.c_str()), CELLCOUNT_ERR_IO,
             "cannot decode image '" + path + "': not readable by ITK");
    io->SetFileName(path);
    io->ReadImageInformation();

    const unsigned dims = io->GetNumberOfDimensions();
    const Component type = io->GetComponentType();
    const int64_t src_c = io->GetNumberOfComponents();
    CC_CHECK(dims == 2 || dims == 3, CELLCOUNT_ERR_IO,
             "cannot read '" + path + "': " + std::to_string(dims) + "-D image; expected 2-D or 3-D");
    CC_CHECK(src_c >= 1, CELLCOUNT_ERR_IO, "cannot read '" + path + "': no components");
    CC_CHECK(io->GetPixelType() != PixelKind::COMPLEX, CELLCOUNT_ERR_UNSUPPORTED,
             "cannot read '" + path + "': complex pixels are not supported");

    const int64_t w = static_cast<int64_t>(io->GetDimensions(0));
    const int64_t h = static_cast<int64_t>(io->GetDimensions(1));
    const int64_t d = dims == 3 ? static_cast<int64_t>(io->GetDimensions(2)) : 1;
    CC_CHECK(w > 0 && h > 0 && d > 0, CELLCOUNT_ERR_IO, "cannot decode image '" + path + "': empty image");
    check_image_size(path, w, h);  // before the buffer for the pixels is allocated

    // Read the whole file in one go.
    itk::ImageIORegion region(dims);
    for (unsigned i = 0; i < dims; ++i) {
      region.SetIndex(i, 0);
      region.SetSize(i, io->GetDimensions(i));
    }
    io->SetIORegion(region);
    const size_t bytes = static_cast<size_t>(io->GetImageSizeInBytes());
    const size_t comp_bytes = io->GetComponentSize();
    CC_CHECK(comp_bytes > 0 && bytes == static_cast<size_t>(w * h * d * src_c) * comp_bytes, CELLCOUNT_ERR_IO,
             "cannot decode image '" + path + "': unexpected buffer size from ITK");
    std::unique_ptr<unsigned char[]> buf(new unsigned char[bytes]);
    io->Read(buf.get());

    // 1 = grey, 2 = grey + alpha, 3 = RGB, 4 = RGBA; other vector images keep their first component.
    const int64_t dst_c = (src_c == 3 || src_c == 4) ? 3 : 1;
    planes.resize(static_cast<size_t>(d));
    for (Image& img : planes) {
      img.width = w;
      img.height = h;
      img.channels = dst_c;
      img.data.resize(static_cast<size_t>(w * h * dst_c));
      img.source_dtype = dtype_name(type);
    }
    const unsigned char* p = buf.get();
    switch (type) {
      case Component::UCHAR: unpack<unsigned char>(p, planes, src_c); break;
      case Component::CHAR: unpack<signed char>(p, planes, src_c); break;
      case Component::USHORT: unpack<unsigned short>(p, planes, src_c); break;
      case Component::SHORT: unpack<short>(p, planes, src_c); break;
      case Component::UINT: unpack<unsigned int>(p, planes, src_c); break;
      case Component::INT: unpack<int>(p, planes, src_c); break;
      case Component::ULONG: unpack<unsigned long>(p, planes, src_c); break;
      case Component::LONG: unpack<long>(p, planes, src_c); break;
      case Component::ULONGLONG: unpack<unsigned long long>(p, planes, src_c); break;
      case Component::LONGLONG: unpack<long long>(p, planes, src_c); break;
      case Component::FLOAT: unpack<float>(p, planes, src_c); break;
      case Component::DOUBLE: unpack<double>(p, planes, src_c); break;
      default:
        fail(CELLCOUNT_ERR_IO, "cannot read '" + path + "': unsupported component type " +
                                   itk::ImageIOBase::GetComponentTypeAsString(type));
    }
  } catch (const itk::ExceptionObject& e) {
    fail(CELLCOUNT_ERR_IO, "cannot decode image '" + path + "' (ITK): " + e.GetDescription());
  }
  return planes;
}

void itk_write(const std::string& path, const Image& image, int bit_depth) {
  try {
    itk::ImageIOBase::Pointer io = make_io(kind_of_extension(path));
    CC_CHECK(io, CELLCOUNT_ERR_INVALID_ARGUMENT, "cannot write '" + path + "': ITK has no writer for this extension");
    const int64_t w = image.width, h = image.height, c = image.channels;
    io->SetNumberOfDimensions(2);
    io->SetDimensions(0, static_cast<itk::SizeValueType>(w));
    io->SetDimensions(1, static_cast<itk::SizeValueType>(h));
    for (unsigned i = 0; i < 2; ++i) {
      io->SetSpacing(i, 1.0);
      io->SetOrigin(i, 0.0);
      std::vector<double> axis(2, 0.0);
      axis[i] = 1.0;
      io->SetDirection(i, axis);
    }
    io->SetComponentType(bit_depth == 32 ? Component::FLOAT : bit_depth == 16 ? Component::USHORT : Component::UCHAR);
    io->SetNumberOfComponents(static_cast<unsigned>(c));
    io->SetPixelType(c == 1 ? PixelKind::SCALAR : c == 3 ? PixelKind::RGB : PixelKind::RGBA);
    io->SetFileName(path);
    io->SetUseCompression(true);
    itk::ImageIORegion region(2);
    region.SetIndex(0, 0);
    region.SetIndex(1, 0);
    region.SetSize(0, static_cast<itk::SizeValueType>(w));
    region.SetSize(1, static_cast<itk::SizeValueType>(h));
    io->SetIORegion(region);

    const size_t n = image.data.size();
    const double max_value = bit_depth == 16 ? 65535.0 : 255.0;
    if (bit_depth == 32) {
      io->WriteImageInformation();
      io->Write(image.data.data());  // float pixels as they are
    } else if (bit_depth == 16) {
      std::vector<uint16_t> buf(n);
      for (size_t i = 0; i < n; ++i) buf[i] = static_cast<uint16_t>(to_integer_range(image.data[i], max_value));
      io->WriteImageInformation();
      io->Write(buf.data());
    } else {
      std::vector<uint8_t> buf(n);
      for (size_t i = 0; i < n; ++i) buf[i] = static_cast<uint8_t>(to_integer_range(image.data[i], max_value));
      io->WriteImageInformation();
      io->Write(buf.data());
    }
  } catch (const itk::ExceptionObject& e) {
    fail(CELLCOUNT_ERR_IO, "cannot write image '" + path + "' (ITK): " + e.GetDescription());
  }
}

}  // namespace cellcount::io::detail
