// BioImage Model Zoo export (core/bioimageio.h): request, test image, package files, rdf.yaml, zip.
#include "core/bioimageio.h"

#include <torch/csrc/jit/frontend/tracer.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "cellcount/cellcount.h"
#include "core/error.h"
#include "core/log.h"
#include "core/method.h"
#include "core/options.h"
#include "core/sha256.h"
#include "core/synth.h"
#include "io/image_file.h"

namespace fs = std::filesystem;

namespace cellcount {

namespace {

std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}
std::map<std::pair<std::string, std::string>, Exporter>& registry() {
  static std::map<std::pair<std::string, std::string>, Exporter> r;
  return r;
}

// CRC-32 (IEEE), shared by the zip and PNG writers.
uint32_t crc32(const std::string& data, uint32_t crc = 0) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (unsigned char b : data) crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

void put16(std::string& s, uint32_t v) {
  s.push_back(char(v & 0xFF));
  s.push_back(char((v >> 8) & 0xFF));
}
void put32(std::string& s, uint32_t v) {
  put16(s, v & 0xFFFF);
  put16(s, v >> 16);
}
void put32be(std::string& s, uint32_t v) {
  for (int k = 3; k >= 0; --k) s.push_back(char((v >> (8 * k)) & 0xFF));
}
uint32_t get16(const std::string& s, size_t at) {
  CC_CHECK(at + 2 <= s.size(), CELLCOUNT_ERR_IO, "zip: truncated");
  return uint32_t(uint8_t(s[at])) | uint32_t(uint8_t(s[at + 1])) << 8;
}
uint32_t get32(const std::string& s, size_t at) { return get16(s, at) | get16(s, at + 2) << 16; }

std::string shape_text(const torch::Tensor& t) {
  // As Python writes a tuple: "(5,)", "(1, 2, 3)".
  std::string s = "(";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + (t.dim() == 1 ? ",)" : ")");
}

std::string sizes_text(const torch::Tensor& t) {
  std::string s;
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? "x" : "") + std::to_string(t.size(d));
  return s;
}

// An RGB cover: the test input (grey, clipped to [0,1]) beside the output map (a black-red-yellow-white ramp
// scaled to its 99.9th percentile).
std::string cover_png(const torch::Tensor& image, const torch::Tensor& map) {
  const int64_t h = image.size(0), w = image.size(1);
  auto img = image.to(torch::kFloat32).clamp(0, 1).contiguous();
  auto m = torch::nn::functional::interpolate(
               map.to(torch::kFloat32).unsqueeze(0).unsqueeze(0),
               torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kNearest))[0][0]
               .contiguous();
  auto sorted = std::get<0>(m.reshape({-1}).sort());
  const double top = std::max(1e-12, sorted[int64_t(0.999 * double(sorted.numel() - 1))].item<double>());
  m = (m / top).clamp(0, 1).contiguous();
  std::vector<uint8_t> rgb(size_t(h * 2 * w * 3));
  const float* pi = img.data_ptr<float>();
  const float* pm = m.data_ptr<float>();
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const uint8_t g = uint8_t(std::lround(pi[y * w + x] * 255));
      uint8_t* l = &rgb[size_t((y * 2 * w + x) * 3)];
      l[0] = l[1] = l[2] = g;
      const float v = pm[y * w + x] * 3;
      uint8_t* r = &rgb[size_t((y * 2 * w + w + x) * 3)];
      r[0] = uint8_t(std::lround(std::clamp(v, 0.f, 1.f) * 255));
      r[1] = uint8_t(std::lround(std::clamp(v - 1, 0.f, 1.f) * 255));
      r[2] = uint8_t(std::lround(std::clamp(v - 2, 0.f, 1.f) * 255));
    }
  return png_bytes(rgb, 2 * w, h);
}

std::string read_file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  CC_CHECK(f, CELLCOUNT_ERR_IO, "export: cannot read '" + path + "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const Options& export_options() {
  static const Options o = {
      Opt::path("model").needed().help("model folder (model.json + weights.pt)"),
      Opt::path("out").needed().help("package file to write (.zip); never overwritten unless overwrite"),
      Opt::choice("format", "bioimageio", {"bioimageio"}).help("bioimageio: BioImage Model Zoo model package, spec 0.5"),
      Opt::boolean("overwrite", false).help("replace an existing out file"),
      Opt::path("test_image").help("image for the test tensors and the cover; \"\" = a synthetic cell image"),
      Opt::any("exemplars", nlohmann::json::array())
          .help("exemplar boxes [[x0,y0,x1,y1],...] in the test image (exemplar models); [] = around synthetic cells"),
      Opt::integer("size", 0).range(0, 4096).help("input side of the exported network; 0 = the method's default"),
      Opt::string("license", "CC-BY-4.0").help("SPDX licence of the exported weights"),
      Opt::integer("seed", 0).range(0, INT64_MAX).folded().help("seed of the synthetic test image"),
  };
  return o;
}

std::string readme(const ExportPackage& p, const nlohmann::json& meta, const std::string& model_dir,
                   const std::vector<std::pair<std::string, std::string>>& files) {
  std::ostringstream r;
  r << "# " << p.name << "\n\n" << p.description << "\n\n";
  r << "Exported by cellcount " << CELLCOUNT_VERSION_STRING << " (`cellcount export --format bioimageio`) from the model folder `"
    << fs::path(model_dir).filename().string() << "` (method `" << meta.value("method", "") << "`; its model.json is attached).\n\n";
  r << p.documentation << "\n\n";
  r << "## Inputs\n\n";
  for (const auto& t : p.inputs)
    r << "- `" << t.id << "` (" << sizes_text(t.test) << " in the test): " << t.description << "\n";
  r << "\n## Outputs\n\n";
  for (const auto& t : p.outputs)
    r << "- `" << t.id << "` (" << sizes_text(t.test) << " in the test): " << t.description << "\n";
  r << "\nOn the test input the output sums to " << p.test_count << ".\n";
  r << "\n## Validation\n\n"
    << "The test outputs were computed by this TorchScript network (in LibTorch, at export) from the test inputs after "
    << "the preprocessing in rdf.yaml, which is cellcount's own normalisation; `bioimageio test` reproduces them in "
    << "PyTorch within the tolerance in rdf.yaml. cellcount's tests (`Bioimageio.*`) compare the network with the "
    << "library's own prediction on a 256 x 256 test input counted in one tile: the density agrees within 1e-4 per "
    << "pixel (and the exemplar mask exactly).\n";
  if (meta.contains("metrics")) r << "\n## Metrics (model.json)\n\n```json\n" << meta["metrics"].dump(2) << "\n```\n";
  if (meta.contains("provenance") && meta["provenance"].contains("request") && meta["provenance"]["request"].contains("command"))
    r << "\n## Training command\n\n```\n" << meta["provenance"]["request"]["command"].get<std::string>() << "\n```\n";
  r << "\n## Files (sha256)\n\n";
  for (const auto& [name, bytes] : files) r << "- `" << name << "` " << sha256_hex(bytes.data(), bytes.size()) << "\n";
  return r.str();
}

}  // namespace

void register_exporter(const std::string& method, const std::string& format, Exporter fn) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  registry()[{method, format}] = std::move(fn);
}

torch::jit::Module trace_module(torch::nn::Module& net, const std::string& class_name,
                                const std::vector<torch::Tensor>& example,
                                const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& fn) {
  torch::jit::Module m("__torch__.cellcount." + class_name);
  // The module's attributes are net's own tensors: the tracer maps every use of them to an attribute read.
  auto flat = [](std::string n) {
    std::replace(n.begin(), n.end(), '.', '_');
    return n;
  };
  for (const auto& p : net.named_parameters()) m.register_parameter(flat(p.key()), p.value(), false);
  for (const auto& b : net.named_buffers()) m.register_buffer(flat(b.key()), b.value());
  torch::jit::Stack inputs;
  for (const auto& t : example) inputs.emplace_back(t);
  auto traced = torch::jit::tracer::trace(
      inputs,
      [&](torch::jit::Stack in) {
        std::vector<torch::Tensor> ts;
        for (auto& v : in) ts.push_back(v.toTensor());
        return torch::jit::Stack{fn(ts)};
      },
      [](const torch::autograd::Variable&) { return std::string(); }, /*strict=*/true, /*force_outplace=*/false, &m);
  auto graph = traced.first->graph;
  auto function = m._ivalue()->compilation_unit()->create_function(c10::QualifiedName(*m.type()->name(), "forward"), graph);
  m.type()->addMethod(function);
  m.eval();
  return m;
}

nlohmann::json image_axes(const nlohmann::json& channel_names, int64_t size) {
  return {{{"type", "batch"}, {"size", 1}},
          {{"type", "channel"}, {"channel_names", channel_names}},
          {{"type", "space"}, {"id", "y"}, {"size", size}},
          {{"type", "space"}, {"id", "x"}, {"size", size}}};
}

nlohmann::json image_axes_like(const nlohmann::json& channel_names, const std::string& like, int64_t halo) {
  auto space = [&](const char* id) {
    nlohmann::json a = {{"type", "space"}, {"id", id}, {"size", {{"tensor_id", like}, {"axis_id", id}}}};
    if (halo > 0) a["halo"] = halo;
    return a;
  };
  return {{{"type", "batch"}, {"size", 1}}, {{"type", "channel"}, {"channel_names", channel_names}}, space("y"),
          space("x")};
}

nlohmann::json bioimageio_preprocessing(const Normalization& n) {
  if (n.mode == "fixed")
    return nlohmann::json::array({{{"id", "scale_linear"}, {"kwargs", {{"gain", n.scale}, {"offset", -n.offset * n.scale}}}}});
  // The library: (x - P_low) / (P_high - P_low) over all channels and pixels of one image, linear interpolation
  // between order statistics (numpy's default); scale_range adds eps = 1e-6 to the denominator.
  return nlohmann::json::array({{{"id", "scale_range"},
                                 {"kwargs",
                                  {{"axes", {"channel", "y", "x"}},
                                   {"min_percentile", n.p_low},
                                   {"max_percentile", n.p_high},
                                   {"eps", 1e-6}}}}});
}

std::string npy_bytes(const torch::Tensor& t0) {
  auto t = t0.to(torch::kCPU, torch::kFloat32).contiguous();
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_text(t) + ", }";
  const size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ') + "\n";
  std::string s = "\x93NUMPY";
  s.push_back(1);
  s.push_back(0);
  put16(s, uint32_t(header.size()));
  s += header;
  s.append(reinterpret_cast<const char*>(t.data_ptr<float>()), size_t(t.numel()) * sizeof(float));
  return s;
}

std::string png_bytes(const std::vector<uint8_t>& rgb, int64_t width, int64_t height) {
  CC_CHECK(width > 0 && height > 0 && rgb.size() == size_t(width * height * 3), CELLCOUNT_ERR_INVALID_ARGUMENT,
           "png: expected " + std::to_string(width) + " x " + std::to_string(height) + " x 3 bytes");
  // Raw scanlines (filter 0), wrapped in zlib with stored deflate blocks (no compression library needed).
  std::string raw;
  for (int64_t y = 0; y < height; ++y) {
    raw.push_back(0);
    raw.append(reinterpret_cast<const char*>(&rgb[size_t(y * width * 3)]), size_t(width * 3));
  }
  std::string z = "\x78\x01";
  for (size_t at = 0; at < raw.size() || at == 0; at += 65535) {
    const size_t n = std::min<size_t>(65535, raw.size() - at);
    z.push_back(at + n >= raw.size() ? 1 : 0);
    put16(z, uint32_t(n));
    put16(z, uint32_t(~n & 0xFFFF));
    z.append(raw, at, n);
    if (raw.empty()) break;
  }
  uint32_t a = 1, b = 0;
  for (unsigned char c : raw) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  put32be(z, (b << 16) | a);
  auto chunk = [](std::string& png, const std::string& type, const std::string& data) {
    put32be(png, uint32_t(data.size()));
    png += type + data;
    put32be(png, crc32(type + data));
  };
  std::string ihdr;
  put32be(ihdr, uint32_t(width));
  put32be(ihdr, uint32_t(height));
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8-bit RGB, deflate, no filter choice, no interlace
  std::string png = "\x89PNG\r\n\x1a\n";
  chunk(png, "IHDR", ihdr);
  chunk(png, "IDAT", z);
  chunk(png, "IEND", "");
  return png;
}

std::string zip_bytes(const std::vector<std::pair<std::string, std::string>>& files) {
  std::string out, central;
  const uint32_t dos_time = 0, dos_date = (0 << 9) | (1 << 5) | 1;  // 1980-01-01: the same bytes every export
  for (const auto& [name, data] : files) {
    CC_CHECK(data.size() < 0xFFFFFFFFull && out.size() < 0xFFFFFFFFull, CELLCOUNT_ERR_UNSUPPORTED,
             "zip: files over 4 GiB are not supported");
    const uint32_t crc = crc32(data), offset = uint32_t(out.size());
    auto common = [&](std::string& s) {
      put16(s, 20);  // version needed
      put16(s, 0);   // flags
      put16(s, 0);   // stored
      put16(s, dos_time);
      put16(s, dos_date);
      put32(s, crc);
      put32(s, uint32_t(data.size()));
      put32(s, uint32_t(data.size()));
      put16(s, uint32_t(name.size()));
      put16(s, 0);  // extra
    };
    put32(out, 0x04034b50);
    common(out);
    out += name;
    out += data;
    put32(central, 0x02014b50);
    put16(central, 20);  // made by
    common(central);
    put16(central, 0);  // comment
    put16(central, 0);  // disk
    put16(central, 0);  // internal attributes
    put32(central, 0);  // external attributes
    put32(central, offset);
    central += name;
  }
  const uint32_t cd_offset = uint32_t(out.size());
  out += central;
  put32(out, 0x06054b50);
  put16(out, 0);
  put16(out, 0);
  put16(out, uint32_t(files.size()));
  put16(out, uint32_t(files.size()));
  put32(out, uint32_t(central.size()));
  put32(out, cd_offset);
  put16(out, 0);
  return out;
}

std::vector<std::pair<std::string, std::string>> unzip_stored(const std::string& zip) {
  CC_CHECK(zip.size() >= 22, CELLCOUNT_ERR_IO, "zip: too short");
  const size_t eocd = zip.size() - 22;
  CC_CHECK(get32(zip, eocd) == 0x06054b50, CELLCOUNT_ERR_IO, "zip: no end of central directory (a comment?)");
  const uint32_t n = get16(zip, eocd + 10);
  size_t at = get32(zip, eocd + 16);
  std::vector<std::pair<std::string, std::string>> files;
  for (uint32_t i = 0; i < n; ++i) {
    CC_CHECK(get32(zip, at) == 0x02014b50, CELLCOUNT_ERR_IO, "zip: bad central directory entry");
    CC_CHECK(get16(zip, at + 10) == 0, CELLCOUNT_ERR_IO, "zip: only stored entries are read");
    const uint32_t size = get32(zip, at + 20), name_len = get16(zip, at + 28), extra = get16(zip, at + 30),
                   comment = get16(zip, at + 32), local = get32(zip, at + 42);
    CC_CHECK(at + 46 + name_len <= zip.size(), CELLCOUNT_ERR_IO, "zip: truncated");
    std::string name = zip.substr(at + 46, name_len);
    const size_t data_at = size_t(local) + 30 + get16(zip, local + 26) + get16(zip, local + 28);
    CC_CHECK(data_at + size <= zip.size(), CELLCOUNT_ERR_IO, "zip: truncated entry " + name);
    files.emplace_back(name, zip.substr(data_at, size));
    at += 46 + name_len + extra + comment;
  }
  return files;
}

nlohmann::json export_model(const nlohmann::json& request) {
  const auto req = resolve_options("export", export_options(), request);
  const std::string model_dir = req["model"], out = req["out"], format = req["format"];
  const bool overwrite = req["overwrite"];
  CC_CHECK(overwrite || !fs::exists(out), CELLCOUNT_ERR_IO,
           "export: '" + out + "' exists (give \"overwrite\": true to replace it)");
  CC_CHECK(!fs::is_directory(out), CELLCOUNT_ERR_IO, "export: '" + out + "' is a folder; give a file name (.zip)");
  const auto parent = fs::path(out).parent_path();
  CC_CHECK(parent.empty() || fs::is_directory(parent), CELLCOUNT_ERR_IO,
           "export: the folder of '" + out + "' does not exist");

  ExportInput in;
  in.model = read_model(model_dir);
  const std::string method = in.model.meta.value("method", "");
  find_method(method);  // the registry is built here: the method's factory registers its exporters
  Exporter exporter;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    auto it = registry().find({method, format});
    if (it != registry().end()) exporter = it->second;
  }
  if (!exporter) {
    std::string have;
    for (const auto& [key, fn] : registry())
      if (key.second == format) have += (have.empty() ? "" : ", ") + key.first;
    fail(CELLCOUNT_ERR_UNSUPPORTED, "export: method \"" + method + "\" has no " + format + " export (methods that have: " +
                                        (have.empty() ? "none" : have) + ")");
  }
  in.size = req["size"];

  const std::string test_image = req["test_image"];
  std::vector<Point> synth_points;
  if (!test_image.empty()) {
    in.image = image_to_tensor(io::read_image(test_image));
  } else {
    // The exported side (the method's default is the model's tile), 60..120 cells per 256 x 256.
    SynthCellsParams sp;
    sp.width = sp.height = in.size > 0 ? in.size : (in.model.meta.contains("tiling") && in.model.meta["tiling"].is_object() ? in.model.meta["tiling"].value("tile_size", int64_t(256)) : int64_t(256));
    const double area = double(sp.width * sp.height) / 65536.0;
    sp.min_cells = std::max(5, int(std::lround(60 * area)));
    sp.max_cells = std::max(10, int(std::lround(120 * area)));
    auto s = render_cells(sp, req["seed"].get<uint64_t>());
    in.image = image_to_tensor(s.image) * 255.0f;  // as an 8-bit image would come
    synth_points = s.points;
  }
  const int64_t H = in.image.size(1), W = in.image.size(2);
  const auto& ex = req["exemplars"];
  CC_CHECK(ex.is_array(), CELLCOUNT_ERR_INVALID_ARGUMENT, "export: \"exemplars\" expects [[x0,y0,x1,y1], ...]");
  for (const auto& b : ex) {
    CC_CHECK(b.is_array() && b.size() == 4 && std::all_of(b.begin(), b.end(), [](const auto& v) { return v.is_number(); }),
             CELLCOUNT_ERR_INVALID_ARGUMENT, "export: each exemplar is [x0, y0, x1, y1] in pixels, got " + b.dump());
    Box box{b[0].get<float>(), b[1].get<float>(), b[2].get<float>(), b[3].get<float>()};
    CC_CHECK(box.x0 >= 0 && box.y0 >= 0 && box.x1 <= W && box.y1 <= H && box.x1 - box.x0 >= 1 && box.y1 - box.y0 >= 1,
             CELLCOUNT_ERR_INVALID_ARGUMENT,
             "export: exemplar " + b.dump() + " must lie inside the " + std::to_string(W) + " x " + std::to_string(H) +
                 " test image with sides >= 1");
    in.exemplars.push_back(box);
  }
  if (in.exemplars.empty() && !synth_points.empty()) {
    // Three boxes of 14 px around synthetic cells away from the border (cell radius 3.5..7 px).
    for (const auto& p : synth_points) {
      if (p.x < 10 || p.y < 10 || p.x > W - 10 || p.y > H - 10) continue;
      in.exemplars.push_back({p.x - 7, p.y - 7, p.x + 7, p.y + 7});
      if (in.exemplars.size() == 3) break;
    }
  }

  ExportPackage pkg;
  {
    torch::NoGradGuard no_grad;
    try {
      pkg = exporter(in);
    } catch (const nlohmann::json::exception& e) {
      fail(CELLCOUNT_ERR_MODEL_FORMAT, "export: '" + model_dir + "/model.json' lacks what the export needs: " + e.what());
    }
  }
  CC_CHECK(!pkg.inputs.empty() && !pkg.outputs.empty(), CELLCOUNT_ERR_INTERNAL, "export: the exporter gave no tensors");

  // Files, then rdf.yaml with their sha256 (rdf.yaml is JSON, which YAML 1.2 reads as is).
  std::vector<std::pair<std::string, std::string>> files;
  auto add = [&](const std::string& name, std::string bytes) {
    files.emplace_back(name, std::move(bytes));
    return sha256_hex(files.back().second.data(), files.back().second.size());
  };
  std::ostringstream weights;
  pkg.module.save(weights);
  const std::string weights_sha = add("weights_torchscript.pt", weights.str());
  nlohmann::json inputs = nlohmann::json::array(), outputs = nlohmann::json::array();
  for (const auto& t : pkg.inputs) {
    const std::string name = "test_" + t.id + ".npy";
    const std::string sha = add(name, npy_bytes(t.test));
    inputs.push_back({{"id", t.id},
                      {"description", t.description.substr(0, 128)},
                      {"axes", t.axes},
                      {"data", {{"type", "float32"}}},
                      {"test_tensor", {{"source", name}, {"sha256", sha}}},
                      {"preprocessing", t.preprocessing}});
  }
  for (const auto& t : pkg.outputs) {
    const std::string name = "test_" + t.id + ".npy";
    const std::string sha = add(name, npy_bytes(t.test));
    outputs.push_back({{"id", t.id},
                       {"description", t.description.substr(0, 128)},
                       {"axes", t.axes},
                       {"data", {{"type", "float32"}}},
                       {"test_tensor", {{"source", name}, {"sha256", sha}}}});
  }
  const std::string cover_sha = add("cover.png", cover_png(pkg.cover_image, pkg.cover_map));
  const std::string meta_sha = add("model.json", read_file_bytes((fs::path(model_dir) / "model.json").string()));
  const std::string readme_text = readme(pkg, in.model.meta, model_dir, files);
  const std::string readme_sha = add("README.md", readme_text);

  nlohmann::json rdf = {
      {"format_version", "0.5.4"},
      {"type", "model"},
      {"name", pkg.name},
      {"description", pkg.description},
      {"authors", {{{"name", "cellcount contributors"}}}},
      {"cite", pkg.cite},
      {"license", req["license"]},
      {"tags", pkg.tags},
      {"documentation", "README.md"},
      {"covers", {"cover.png"}},
      {"attachments", {{{"source", "model.json"}, {"sha256", meta_sha}}}},
      {"inputs", inputs},
      {"outputs", outputs},
      {"weights",
       {{"torchscript",
         {{"source", "weights_torchscript.pt"},
          {"sha256", weights_sha},
          {"pytorch_version", std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR)},
          {"comment", "traced from the C++ network by cellcount " CELLCOUNT_VERSION_STRING " (LibTorch)"}}}}},
      {"config",
       {{"bioimageio",
         // Densities are small numbers (a cell spreads over ~50-100 pixels): the default absolute tolerance of
         // 1e-3 would let a wrong map pass. The traced network reproduces its test output to float rounding.
         {{"reproducibility_tolerance",
           {{{"absolute_tolerance", 1e-5}, {"relative_tolerance", 1e-3}, {"mismatched_elements_per_million", 100}}}}}},
        {"cellcount",
         {{"library_version", CELLCOUNT_VERSION_STRING},
          {"method", method},
          {"readme_sha256", readme_sha},
          {"cover_sha256", cover_sha},
          {"test_count", pkg.test_count},
          {"export", pkg.method_config}}}}}};
  files.insert(files.begin(), {"rdf.yaml", rdf.dump(2) + "\n"});

  // Written whole or not at all: a temporary file beside `out`, renamed over it.
  const std::string tmp = out + ".part";
  CC_CHECK(!fs::exists(tmp), CELLCOUNT_ERR_IO, "export: '" + tmp + "' exists (the export writes there first); move it away");
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    CC_CHECK(f, CELLCOUNT_ERR_IO, "export: cannot write '" + tmp + "'");
    const std::string zip = zip_bytes(files);
    f.write(zip.data(), std::streamsize(zip.size()));
    f.close();
    if (!f) {
      std::error_code ec;
      fs::remove(tmp, ec);
      fail(CELLCOUNT_ERR_IO, "export: writing '" + tmp + "' failed (disk full?)");
    }
  }
  std::error_code ec;
  fs::rename(tmp, out, ec);
  if (ec) {
    fs::remove(tmp, ec);
    fail(CELLCOUNT_ERR_IO, "export: cannot rename the package to '" + out + "'");
  }

  nlohmann::json report = {{"out", out}, {"format", format}, {"method", method}, {"test_count", pkg.test_count}};
  nlohmann::json listed = nlohmann::json::array();
  for (const auto& [name, bytes] : files)
    listed.push_back({{"name", name}, {"bytes", bytes.size()}, {"sha256", sha256_hex(bytes.data(), bytes.size())}});
  report["files"] = listed;
  nlohmann::json shapes = nlohmann::json::array();
  for (const auto& t : pkg.inputs) shapes.push_back({{"id", t.id}, {"shape", t.test.sizes().vec()}});
  report["inputs"] = shapes;
  return report;
}

}  // namespace cellcount
