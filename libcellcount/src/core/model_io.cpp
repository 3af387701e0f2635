#include "core/model_io.h"

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>

#include "cellcount/cellcount.h"
#include "core/error.h"
#include "core/files.h"
#include "core/limits.h"
#include "core/sha256.h"

namespace fs = std::filesystem;

namespace cellcount {

std::string ModelFiles::weights_path() const { return (fs::path(dir) / "weights.pt").string(); }

namespace {
// True when v is an integer in lo..hi (compared before any conversion); *out = its value.
bool int_in_range(const nlohmann::json& v, int64_t lo, int64_t hi, int64_t* out) {
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > uint64_t(hi)) return false;
    *out = int64_t(v.get<uint64_t>());
  } else if (v.is_number_integer()) {
    *out = v.get<int64_t>();
  } else {
    return false;
  }
  return *out >= lo && *out <= hi;
}
}  // namespace

ModelFiles read_model(const std::string& dir) {
  CC_CHECK(fs::is_directory(dir), CELLCOUNT_ERR_IO, "model folder '" + dir + "' does not exist");
  const fs::path json_path = fs::path(dir) / "model.json";
  const std::string jp = json_path.string();
  CC_CHECK(fs::exists(json_path), CELLCOUNT_ERR_IO, "model folder '" + dir + "' has no model.json");
  ModelFiles m;
  m.dir = dir;
  m.meta = read_json_file(jp, CELLCOUNT_ERR_MODEL_FORMAT);
  CC_CHECK(m.meta.is_object() && m.meta.contains("method") && m.meta["method"].is_string(),
           CELLCOUNT_ERR_MODEL_FORMAT, "'" + jp + "' has no \"method\" string");
  const auto& fv = m.meta.contains("format_version") ? m.meta["format_version"] : nlohmann::json();
  CC_CHECK(fv.is_number_integer(), CELLCOUNT_ERR_MODEL_FORMAT, "'" + jp + "' has no integer \"format_version\"");
  // Range-checked before any conversion: converted to int first, 4294967297 was read as 1 and loaded.
  int64_t version = 0;
  CC_CHECK(int_in_range(fv, 1, kModelFormatVersion, &version), CELLCOUNT_ERR_MODEL_FORMAT,
           "'" + jp + "' has format_version " + fv.dump() + "; this library reads 1.." +
               std::to_string(kModelFormatVersion) + " (upgrade cellcount)");
  check_tiling_meta(m.meta, jp);
  CC_CHECK(fs::exists(m.weights_path()), CELLCOUNT_ERR_IO, "model folder '" + dir + "' has no weights.pt");
  check_regular_file(m.weights_path(), kMaxWeightsBytes, CELLCOUNT_ERR_IO, "weights file");
  const auto& sha = m.meta.contains("weights_sha256") ? m.meta["weights_sha256"] : nlohmann::json();
  const std::string want = sha.is_string() ? sha.get<std::string>() : "";
  CC_CHECK(!want.empty(), CELLCOUNT_ERR_MODEL_FORMAT, "'" + jp + "' has no \"weights_sha256\" string");
  const std::string got = sha256_file(m.weights_path());
  CC_CHECK(got == want, CELLCOUNT_ERR_MODEL_FORMAT,
           "weights.pt in '" + dir + "' is corrupt or was replaced: sha256 " + got + ", model.json expects " + echo(want));
  return m;
}

void check_tiling_meta(const nlohmann::json& meta, const std::string& json_path) {
  if (!meta.contains("tiling")) return;
  const auto& t = meta["tiling"];
  auto field = [&](const char* k, int64_t lo, int64_t hi) {
    const nlohmann::json v = t.is_object() && t.contains(k) ? t[k] : nlohmann::json();
    int64_t x = 0;
    CC_CHECK(int_in_range(v, lo, hi, &x), CELLCOUNT_ERR_MODEL_FORMAT,
             "'" + json_path + "': tiling." + k + " must be an integer in " + std::to_string(lo) + ".." +
                 std::to_string(hi) + ", got " + echo(v.dump()));
    return x;
  };
  const int64_t tile = field("tile_size", kMinTileSize, kMaxImageSide);
  field("overlap", 0, (tile - 1) / 2);  // overlap < tile/2, as for a caller's overlap
  // Optional: "crop" (the default: tiles of tile_size) or "budget" (dcl: the largest tile the memory budget allows).
  const nlohmann::json mode = t.value("mode", nlohmann::json("crop"));
  CC_CHECK(mode == "crop" || mode == "budget", CELLCOUNT_ERR_MODEL_FORMAT,
           "'" + json_path + "': tiling.mode must be \"crop\" or \"budget\", got " + echo(mode.dump()));
}

ModelFiles read_model_of_method(const std::string& dir, const std::string& method) {
  ModelFiles init = read_model(dir);
  const std::string theirs_method = init.meta.value("method", "?");
  CC_CHECK(theirs_method == method, CELLCOUNT_ERR_INVALID_ARGUMENT,
           method + " train: init_from '" + dir + "' is a " + theirs_method + " model, not " + method);
  CC_CHECK(init.meta.contains("architecture"), CELLCOUNT_ERR_MODEL_FORMAT,
           "model '" + dir + "': model.json has no \"architecture\"");
  return init;
}

void check_same_architecture(const std::string& dir, const std::string& method, const nlohmann::json& theirs,
                             const nlohmann::json& ours) {
  CC_CHECK(theirs == ours, CELLCOUNT_ERR_INVALID_ARGUMENT,
           method + " train: init_from '" + dir + "' has another architecture (" +
               nlohmann::json::diff(theirs, ours).dump() +
               "); set \"architecture\" (and the input channels) as that model has them");
}

nlohmann::json init_provenance(const ModelFiles& init) {
  const auto provenance = init.meta.value("provenance", nlohmann::json::object());
  return {{"model", init.dir},
          {"weights_sha256", init.meta.value("weights_sha256", "")},
          {"command", provenance.value("request", nlohmann::json::object()).value("command", "")}};
}

void update_model_meta(const std::string& dir, const nlohmann::json& patch) {
  auto m = read_model(dir);
  m.meta.merge_patch(patch);
  const fs::path p = fs::path(dir) / "model.json", tmp = fs::path(dir) / "model.json.tmp";
  {
    std::ofstream f(tmp);
    f << m.meta.dump(2) << "\n";
    CC_CHECK(f.good(), CELLCOUNT_ERR_IO, "cannot write '" + tmp.string() + "'");
  }
  fs::rename(tmp, p);
}

void save_module(torch::nn::Module& module, const std::string& path) {
  torch::serialize::OutputArchive archive;
  module.save(archive);
  archive.save_to(path);
}

void load_module(torch::nn::Module& module, const std::string& path) {
  check_regular_file(path, kMaxWeightsBytes, CELLCOUNT_ERR_IO, "weights file");
  // LibTorch's load replaces each tensor with the archive's (Tensor::set_), whatever its shape or type: a
  // truncated tensor or another architecture loaded and changed the answers or failed only at predict.
  // Every parameter and buffer must come back exactly as the module built it.
  struct Want {
    std::vector<int64_t> shape;
    torch::ScalarType type;
  };
  std::vector<std::pair<std::string, Want>> want;
  for (const auto& p : module.named_parameters(true)) want.push_back({p.key(), {p.value().sizes().vec(), p.value().scalar_type()}});
  for (const auto& b : module.named_buffers(true)) want.push_back({b.key(), {b.value().sizes().vec(), b.value().scalar_type()}});
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    module.load(archive);
  } catch (const c10::Error& e) {
    fail(CELLCOUNT_ERR_MODEL_FORMAT,
         "'" + path + "' does not fit the network described by model.json: " + e.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    // A damaged archive's TorchScript part throws torch::jit::ErrorReport, not a c10::Error: it reached the
    // C ABI as ERR_INTERNAL (found by the fuzz target model).
    fail(CELLCOUNT_ERR_MODEL_FORMAT, "'" + path + "' is not a readable weights archive: " + e.what());
  }
  auto got = module.named_parameters(true);
  auto got_buffers = module.named_buffers(true);
  auto shape_str = [](const std::vector<int64_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
  };
  for (const auto& [name, w] : want) {
    const torch::Tensor* t = got.find(name);
    if (!t) t = got_buffers.find(name);
    CC_CHECK(t != nullptr, CELLCOUNT_ERR_MODEL_FORMAT, "'" + path + "' has no tensor '" + name + "'");
    CC_CHECK(t->sizes().vec() == w.shape && t->scalar_type() == w.type, CELLCOUNT_ERR_MODEL_FORMAT,
             "'" + path + "': tensor '" + name + "' is " + shape_str(t->sizes().vec()) + " " +
                 std::string(c10::toString(t->scalar_type())) + ", the network described by model.json needs " +
                 shape_str(w.shape) + " " + c10::toString(w.type));
  }
}

void load_weights(torch::nn::Module& module, const ModelFiles& files) { load_module(module, files.weights_path()); }

std::string utc_now_iso() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

nlohmann::json save_model(const std::string& dir, nlohmann::json meta, torch::nn::Module& module, bool overwrite) {
  const fs::path target(dir);
  CC_CHECK(overwrite || !fs::exists(target), CELLCOUNT_ERR_IO,
           "'" + dir + "' exists; pass \"overwrite\": true (CLI --overwrite) to replace it");
  if (overwrite) check_replaceable_model_dir(dir, "save model");
  if (target.has_parent_path()) fs::create_directories(target.parent_path());
  std::random_device rd;
  const fs::path tmp = target.string() + ".tmp-" + std::to_string(rd());
  fs::create_directories(tmp);
  try {
    const std::string weights = (tmp / "weights.pt").string();
    save_module(module, weights);
    meta["format_version"] = kModelFormatVersion;
    meta["library_version"] = CELLCOUNT_VERSION_STRING;
    if (!meta.contains("created")) meta["created"] = utc_now_iso();
    meta["weights_sha256"] = sha256_file(weights);
    std::ofstream f(tmp / "model.json");
    f << meta.dump(2) << "\n";
    f.close();
    CC_CHECK(f.good(), CELLCOUNT_ERR_IO, "error writing model.json in '" + tmp.string() + "'");
    if (fs::exists(target)) fs::remove_all(target);
    fs::rename(tmp, target);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  return meta;
}

void check_replaceable_model_dir(const std::string& dir, const std::string& what) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(dir, ec))) return;
  CC_CHECK(fs::is_directory(dir, ec), CELLCOUNT_ERR_IO, what + ": '" + dir + "' exists and is not a folder; refusing to replace it");
  bool model_json = false, other = false;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().filename() == "model.json" && e.is_regular_file()) model_json = true;
    if (!e.is_regular_file()) other = true;
  }
  const bool empty = fs::is_empty(dir, ec);
  CC_CHECK(empty || (model_json && !other), CELLCOUNT_ERR_IO,
           what + ": '" + dir + "' is not a cellcount model folder (no model.json, or it holds subfolders); " +
               "refusing to replace it under \"overwrite\" — name a new folder");
}

void copy_state(torch::nn::Module& dst, const torch::nn::Module& src) {
  torch::NoGradGuard ng;
  auto sp = src.named_parameters(true), sb = src.named_buffers(true);
  for (auto& p : dst.named_parameters(true)) p.value().copy_(sp[p.key()]);
  for (auto& b : dst.named_buffers(true)) b.value().copy_(sb[b.key()]);
}

}  // namespace cellcount
