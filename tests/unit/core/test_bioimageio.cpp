// BioImage Model Zoo export (core/bioimageio.h): the file formats it writes by hand (npy, PNG, zip) against their
// definitions, and the exported TorchScript networks of the shipped dcl-vgg and exemplar-cells against the
// library's own prediction on the package's test input (the density within 1e-4 per pixel).
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <fstream>
#include <map>
#include <sstream>

#include "core/bioimageio.h"
#include "core/error.h"
#include "core/method.h"
#include "core/sha256.h"

namespace fs = std::filesystem;

namespace cellcount {
namespace {

std::map<std::string, std::string> unzip_map(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  std::map<std::string, std::string> m;
  for (auto& [name, bytes] : unzip_stored(ss.str())) m[name] = bytes;
  return m;
}

// Reads an .npy of float32 written by npy_bytes (checks the header as numpy defines it).
torch::Tensor read_npy(const std::string& b) {
  EXPECT_EQ(b.substr(0, 6), "\x93NUMPY");
  const size_t header_len = uint8_t(b[8]) | size_t(uint8_t(b[9])) << 8;
  EXPECT_EQ((10 + header_len) % 64, 0u);
  const std::string header = b.substr(10, header_len);
  EXPECT_NE(header.find("'descr': '<f4'"), std::string::npos) << header;
  EXPECT_EQ(header.back(), '\n');
  std::vector<int64_t> shape;
  std::stringstream ss(header.substr(header.find("'shape': (") + 10));
  for (std::string part; std::getline(ss, part, ',');) {
    if (part.find(')') != std::string::npos) {
      if (part.find_first_of("0123456789") < part.find(')')) shape.push_back(std::stoll(part));
      break;
    }
    shape.push_back(std::stoll(part));
  }
  int64_t n = 1;
  for (auto s : shape) n *= s;
  EXPECT_EQ(b.size(), 10 + header_len + size_t(n) * 4);
  auto t = torch::empty(shape, torch::kFloat32);
  std::memcpy(t.data_ptr<float>(), b.data() + 10 + header_len, size_t(n) * 4);
  return t;
}

fs::path scratch(const std::string& name) {
  auto d = fs::temp_directory_path() / ("cellcount-bioimageio-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

TEST(Bioimageio, NpyHeaderAndData) {
  auto t = torch::arange(24, torch::kFloat32).view({1, 2, 3, 4});
  const std::string b = npy_bytes(t);
  EXPECT_TRUE(torch::equal(read_npy(b), t));
  EXPECT_NE(b.find("'shape': (1, 2, 3, 4), }"), std::string::npos);
  // A 1-d shape is written as numpy does, "(5,)".
  EXPECT_NE(npy_bytes(torch::zeros({5})).find("'shape': (5,), }"), std::string::npos);
}

TEST(Bioimageio, ZipRoundTripWithCrc) {
  std::vector<std::pair<std::string, std::string>> files = {
      {"a.txt", "hello"}, {"empty", ""}, {"big.bin", std::string(200000, '\x7f')}};
  const std::string z = zip_bytes(files);
  EXPECT_EQ(z.substr(0, 4), std::string("PK\x03\x04", 4));
  EXPECT_EQ(unzip_stored(z), files);
  // CRC-32 of "hello" (IEEE) in the local header at offset 14.
  const uint32_t crc = uint8_t(z[14]) | uint32_t(uint8_t(z[15])) << 8 | uint32_t(uint8_t(z[16])) << 16 |
                       uint32_t(uint8_t(z[17])) << 24;
  EXPECT_EQ(crc, 0x3610a686u);
  EXPECT_THROW(unzip_stored("PK not a zip"), Error);
}

TEST(Bioimageio, PngIsWellFormed) {
  std::vector<uint8_t> rgb(3 * 70000 * 2);  // > 64 KiB of scanlines: several stored deflate blocks
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = uint8_t(i * 7);
  const std::string png = png_bytes(rgb, 350, 400);
  EXPECT_EQ(png.substr(0, 8), "\x89PNG\r\n\x1a\n");
  EXPECT_EQ(png.substr(12, 4), "IHDR");
  // The zlib stream holds the raw scanlines (a filter byte + 3 x 350 bytes each) uncompressed.
  const size_t idat = png.find("IDAT");
  ASSERT_NE(idat, std::string::npos);
  const uint32_t len = uint32_t(uint8_t(png[idat - 4])) << 24 | uint32_t(uint8_t(png[idat - 3])) << 16 |
                       uint32_t(uint8_t(png[idat - 2])) << 8 | uint8_t(png[idat - 1]);
  const size_t raw = 400 * (1 + 3 * 350), blocks = (raw + 65534) / 65535;
  EXPECT_EQ(len, 2 + raw + 5 * blocks + 4);
  EXPECT_EQ(png.substr(png.size() - 8, 4), "IEND");
  EXPECT_THROW(png_bytes(rgb, 10, 10), Error);
}

// Exports a shipped model at 256 x 256 and returns the package's files.
std::map<std::string, std::string> export_shipped(const std::string& model, const fs::path& dir, nlohmann::json extra = {}) {
  nlohmann::json req = {{"model", (fs::path(CELLCOUNT_SOURCE_DIR) / "models" / model).string()},
                        {"out", (dir / (model + ".zip")).string()},
                        {"size", 256}};
  for (auto& [k, v] : extra.items()) req[k] = v;
  const auto report = export_model(req);
  EXPECT_EQ(report["method"], model.substr(0, model.find('-')));
  auto files = unzip_map(req["out"]);
  // rdf.yaml (JSON) names the files it describes, each with the sha256 of the bytes in the zip.
  const auto rdf = nlohmann::json::parse(files.at("rdf.yaml"));
  EXPECT_EQ(rdf["format_version"].get<std::string>().substr(0, 4), "0.5.");
  EXPECT_EQ(rdf["type"], "model");
  auto check = [&](const nlohmann::json& fd) {
    const std::string src = fd["source"], sha = fd["sha256"];
    ASSERT_TRUE(files.count(src)) << src;
    EXPECT_EQ(sha256_hex(files[src].data(), files[src].size()), sha) << src;
  };
  check(rdf["weights"]["torchscript"]);
  for (const auto& t : rdf["inputs"]) check(t["test_tensor"]);
  for (const auto& t : rdf["outputs"]) check(t["test_tensor"]);
  for (const auto& a : rdf["attachments"]) check(a);
  EXPECT_TRUE(files.count("README.md") && files.count("cover.png"));
  return files;
}

torch::jit::Module load_weights_entry(const std::string& bytes) {
  std::istringstream in(bytes);
  return torch::jit::load(in);
}

// The library's prediction of a shipped model on an image [C,H,W] in one tile.
Prediction library_predict(const std::string& model, const torch::Tensor& image, std::vector<Box> boxes = {}) {
  auto files = read_model((fs::path(CELLCOUNT_SOURCE_DIR) / "models" / model).string());
  auto method = load_method(find_method(files.meta["method"]), files);
  PredictInput in;
  in.image = image;
  in.exemplars = std::move(boxes);
  PredictOptions o;
  o.tile_size = image.size(2);
  o.tile_overlap = 0;
  return method->predict(in, o);
}

TEST(Bioimageio, DclTorchScriptEqualsLibraryDensity) {
  const auto dir = scratch("dcl");
  auto files = export_shipped("dcl-vgg", dir);
  auto raw = read_npy(files.at("test_raw.npy"));         // [1,1,256,256], as a consumer gives it
  auto expected = read_npy(files.at("test_density.npy"));  // what bioimageio test reproduces in PyTorch
  ASSERT_EQ(raw.sizes(), (std::vector<int64_t>{1, 1, 256, 256}));
  auto module = load_weights_entry(files.at("weights_torchscript.pt"));
  // The consumer's preprocessing (rdf: scale_range of percentiles 1 and 99.8 over the image) is the library's.
  auto x = normalize(raw[0], Normalization{}).unsqueeze(0);
  torch::NoGradGuard ng;
  auto out = module.forward({x}).toTensor();
  EXPECT_LT((out - expected).abs().max().item<double>(), 1e-6);
  const auto pred = library_predict("dcl-vgg", raw[0]);
  ASSERT_TRUE(pred.density.defined());
  const double diff = (out[0][0] - pred.density).abs().max().item<double>();
  EXPECT_LT(diff, 1e-4) << "exported dcl density differs from the library's by " << diff;
  std::cout << "[   info   ] dcl-vgg 256 x 256: max |TorchScript - library| density " << diff << ", counts "
            << out.sum().item<double>() << " / " << pred.count << "\n";
  EXPECT_NEAR(out.sum().item<double>(), pred.count, 1e-3 * std::max(1.0, pred.count));
  EXPECT_GT(pred.count, 10);  // the synthetic test image has 60..120 cells
  fs::remove_all(dir);
}

TEST(Bioimageio, ExemplarTorchScriptEqualsLibraryDensity) {
  const auto dir = scratch("exemplar");
  auto files = export_shipped("exemplar-cells", dir, {{"exemplars", {{40, 50, 54, 64}, {100, 120, 113, 131}}}});
  auto raw = read_npy(files.at("test_raw.npy"));      // [1,3,256,256]
  auto boxes = read_npy(files.at("test_boxes.npy"));  // [1,2,4]
  ASSERT_EQ(boxes.sizes(), (std::vector<int64_t>{1, 2, 4}));
  EXPECT_EQ(boxes[0][1][2].item<float>(), 113.f);
  auto module = load_weights_entry(files.at("weights_torchscript.pt"));
  auto x = normalize(raw[0], Normalization{}).unsqueeze(0);
  torch::NoGradGuard ng;
  auto out = module.forward({x, boxes}).toTensor();
  EXPECT_LT((out - read_npy(files.at("test_maps.npy"))).abs().max().item<double>(), 1e-6);
  const auto pred = library_predict("exemplar-cells", raw[0], {{40, 50, 54, 64}, {100, 120, 113, 131}});
  const double diff = (out[0][0] - pred.density).abs().max().item<double>();
  EXPECT_LT(diff, 1e-4) << "exported exemplar density differs from the library's by " << diff;
  std::cout << "[   info   ] exemplar-cells 256 x 256, 2 boxes: max |TorchScript - library| density " << diff
            << ", counts " << out[0][0].sum().item<double>() << " / " << pred.count << "\n";
  EXPECT_TRUE(torch::equal(out[0][1], pred.mask));
  fs::remove_all(dir);
}

TEST(Bioimageio, RefusesWhatItCannotDo) {
  const auto dir = scratch("refuse");
  const std::string models = (fs::path(CELLCOUNT_SOURCE_DIR) / "models").string();
  const std::string out = (dir / "x.zip").string();
  auto status_of = [](const nlohmann::json& req) {
    try {
      export_model(req);
    } catch (const Error& e) {
      return e.status();
    }
    return CELLCOUNT_OK;
  };
  EXPECT_EQ(status_of({{"model", models + "/dcl-vgg"}, {"out", out}, {"format", "onnx"}}), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(status_of({{"model", models + "/dcl-vgg"}, {"out", out}, {"sise", 256}}), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(status_of({{"model", models + "/dcl-vgg"}, {"out", out}, {"size", 100}}), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(status_of({{"model", models + "/dcl-mbm"}, {"out", out}}), CELLCOUNT_ERR_UNSUPPORTED);  // input.scale 0.853
  EXPECT_EQ(status_of({{"model", models + "/llp-wbc"}, {"out", out}}), CELLCOUNT_ERR_UNSUPPORTED);
  EXPECT_EQ(status_of({{"model", models + "/exemplar-cells"}, {"out", out}, {"size", 256}, {"exemplars", {{250, 250, 270, 270}}}}),
            CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(status_of({{"model", models + "/dcl-vgg"}, {"out", (dir / "no" / "x.zip").string()}}), CELLCOUNT_ERR_IO);
  EXPECT_FALSE(fs::exists(out));
  EXPECT_EQ(fs::directory_iterator(dir), fs::directory_iterator());  // nothing left behind
  {
    std::ofstream f(out);
    f << "mine";
  }
  EXPECT_EQ(status_of({{"model", models + "/dcl-vgg"}, {"out", out}}), CELLCOUNT_ERR_IO);
  {
    std::ofstream part(out + "2.part");  // a file of the user's where the export would stage its zip
    part << "mine too";
  }
  EXPECT_EQ(status_of({{"model", models + "/dcl-vgg"}, {"out", out + "2"}}), CELLCOUNT_ERR_IO);
  EXPECT_EQ(fs::file_size(out + "2.part"), 8u);
  std::ifstream f(out);
  std::string s;
  f >> s;
  EXPECT_EQ(s, "mine");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace cellcount
