#include "core/train_run.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "cellcount/cellcount.h"
#include "core/error.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/model_io.h"
#include "core/peaks.h"

namespace fs = std::filesystem;

namespace cellcount {

namespace {
constexpr const char* kMarker = "cellcount-run.json";
}

Options common_train_options(const std::string& method) {
  return {
      Opt::choice("method", method, {method}).help("the method this request trains"),
      Opt::path("out").help("new model folder (never overwritten unless overwrite is true)").needed(),
      Opt::boolean("overwrite", false).help("replace out when it is an existing model folder (other folders are refused)"),
      Opt::string("device", "auto").help("\"auto\", \"cpu\", \"cuda\" or \"cuda:N\""),
      Opt::integer("threads", 0).range(0, kMaxThreads).help("CPU threads (0 = one per core)"),
      Opt::integer("seed", 0).range(0, INT64_MAX).help("seed of every random draw of the run (weights, batches, augmentation)"),
      Opt::path("checkpoint_dir")
          .help("checkpoint folder (\"\" = out + \".ckpt\"); a rerun of the same request resumes from it")
          .folded(),
      Opt::string("command", "").help("the command line that asked for this training (provenance only)").folded(),
      Opt::integer("batch_size", 8).range(1, 4096).help("training batch size"),
      Opt::number("lr", 1e-4).range(1e-12, 10.0).help("peak learning rate"),
      Opt::number("weight_decay", 0.0).range(0.0, 10.0).help("weight decay (decoupled with adamw)").folded(),
      Opt::choice("optimizer", "adam", {"adam", "adamw"}).help("optimiser").folded(),
      Opt::choice("schedule", "cosine_warm_restarts", {"cosine_warm_restarts", "constant"})
          .help("learning-rate schedule (SGDR or constant)")
          .folded(),
      Opt::number("restart_epochs", 10.0).range(0.0, 1e6).help("epochs of the first cosine cycle").folded(),
      Opt::number("restart_mult", 2.0).range(1.0, 100.0).help("growth of each next cycle").folded(),
      Opt::number("lr_min", 1e-6).range(0.0, 10.0).help("learning rate at the end of a cycle").folded(),
      Opt::integer("checkpoint_every", 1).range(1, 1000000).help("epochs between checkpoints").folded(),
      Opt::boolean("resume", true).help("continue from the checkpoints of the same request when they exist").folded(),
  };
}

Options density_train_options(const std::string& method) {
  Options o = common_train_options(method);
  return add_options(o, {
      Opt::choice("precision", "auto", {"auto", "fp32", "bf16", "fp16"})
          .help("training steps under autocast (bf16 convs, fp32 weights); \"auto\" = bf16 where the CPU has "
                "AMX (without it bf16 was 1.7-11x slower than fp32), else fp32")
          .folded(),
      Opt::path("init_from").help("a model of this method and architecture whose weights start the training (fine-tuning)"),
      Opt::integer("validate_every", 10).range(1, 100000).help("counter epochs between validation MAEs (the best is kept)"),
      Opt::integer("crop", 128).range(32, 4096).help("random square training crops (a multiple of 16)"),
      Opt::number("eval_radius", 5.0).range(0.1, 1000.0).help("point-matching radius (pixels) for F1"),
      Opt::number("peak_min_distance", 3.0).range(0.0, 1000.0).help("smallest distance between two cell points (pixels)"),
  });
}

std::mutex& torch_rng_mutex() {
  static auto* m = new std::mutex;  // never destroyed (a front end's thread may still load a model at exit)
  return *m;
}

nlohmann::json run_key(const nlohmann::json& request, const std::vector<std::string>& may_change) {
  nlohmann::json key = request;
  for (const char* k : {"overwrite", "threads", "out", "resume", "command", "checkpoint_dir"}) key.erase(k);
  for (const auto& k : may_change) key.erase(k);
  return key;
}

TrainRun::TrainRun(const std::string& method, const Options& options, const nlohmann::json& request,
                   std::vector<std::string> checkpoint_files, std::vector<std::string> may_change)
    : method_(method), files_(std::move(checkpoint_files)), t0_(std::chrono::steady_clock::now()) {
  request_ = resolve_options(method + " train", options, request);
  out_ = request_.value("out", "");
  CC_CHECK(!out_.empty(), CELLCOUNT_ERR_INVALID_ARGUMENT, method + " train: \"out\" (the new model folder) is required");
  seed_ = request_.value("seed", uint64_t(0));
  const bool overwrite = request_.value("overwrite", false);
  CC_CHECK(overwrite || !fs::exists(out_), CELLCOUNT_ERR_IO,
           method + " train: '" + out_ + "' exists; pass \"overwrite\": true (CLI --overwrite) to replace it");
  if (overwrite) check_replaceable_model_dir(out_, method + " train");
  ckpt_dir_ = request_.value("checkpoint_dir", "");
  if (ckpt_dir_.empty()) ckpt_dir_ = out_ + ".ckpt";
  CC_CHECK(fs::weakly_canonical(ckpt_dir_) != fs::weakly_canonical(out_), CELLCOUNT_ERR_INVALID_ARGUMENT,
           method + " train: \"checkpoint_dir\" must not be the out folder");
  key_ = run_key(request_, may_change);
  key_["method"] = method;
  defaults_ = option_defaults(options);
  open_checkpoints();
}

void TrainRun::open_checkpoints() {
  const fs::path dir(ckpt_dir_), marker = dir / kMarker;
  std::error_code ec;
  if (fs::exists(marker)) {
    std::ifstream f(marker);
    nlohmann::json m = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
    CC_CHECK(m.is_object() && m.contains("request"), CELLCOUNT_ERR_IO,
             method_ + " train: '" + marker.string() + "' is unreadable; delete it or set \"checkpoint_dir\"");
    nlohmann::json old = m["request"];
    // A field this library added after those checkpoints were written counts as its default value there.
    if (old.is_object())
      for (const auto& [k, v] : key_.items())
        if (!old.contains(k) && defaults_.contains(k) && defaults_[k] == v) old[k] = v;
    CC_CHECK(old == key_, CELLCOUNT_ERR_INVALID_ARGUMENT,
             method_ + " train: the checkpoints in '" + ckpt_dir_ + "' belong to a different request (" +
                 nlohmann::json::diff(old, key_).dump() + "); delete that folder or set \"checkpoint_dir\"");
    created_dir_ = m.value("created_folder", false);
    resuming_ = request_.value("resume", true);
    if (resuming_) log_info(method_ + " train: resuming from the checkpoints in '" + ckpt_dir_ + "'");
    return;
  }
  if (fs::exists(dir)) {
    CC_CHECK(fs::is_directory(dir), CELLCOUNT_ERR_IO,
             method_ + " train: checkpoint_dir '" + ckpt_dir_ + "' exists and is not a folder");
    // A folder the driver did not make: usable, but none of the run's file names may be taken.
    for (const auto& f : files_)
      for (const std::string& name : {f, f + ".tmp"})
        CC_CHECK(!fs::exists(fs::symlink_status(dir / name, ec)), CELLCOUNT_ERR_IO,
                 method_ + " train: checkpoint_dir '" + ckpt_dir_ + "' already holds '" + name +
                     "', which this run would write; name another folder (it is left as it is)");
  } else {
    fs::create_directories(dir);
    created_dir_ = true;
  }
  const fs::path tmp = dir / (std::string(kMarker) + ".tmp");
  {
    std::ofstream f(tmp);
    f << nlohmann::json{{"method", method_}, {"request", key_}, {"created_folder", created_dir_},
                        {"files", files_}}.dump(2)
      << "\n";
    CC_CHECK(f.good(), CELLCOUNT_ERR_IO, method_ + " train: cannot write '" + tmp.string() + "'");
  }
  fs::rename(tmp, marker);
}

void TrainRun::split_if_unsplit(Dataset& ds) const {
  if (!ds.split_source.empty()) return;
  // Choice: no test part (a user's own images are evaluated apart); val picks checkpoints and thresholds.
  assign_split(ds, 0.8, 0.0, 0.2, seed_);
  ds.split_source = "auto: 80 % train, 20 % val by seed " + std::to_string(seed_) + " (the dataset has no split)";
  log_warn(method_ + " train: '" + ds.root + "' has no split; " + ds.split_source.substr(6) +
           " — give \"split_file\" to choose it");
}

TrainConfig TrainRun::stage_config(const std::string& stage, int64_t epochs) const {
  nlohmann::json r = request_;
  if (r.contains("restart_epochs") && r["restart_epochs"].is_number() && r["restart_epochs"].get<double>() <= 0)
    r["restart_epochs"] = std::max<int64_t>(1, epochs);
  TrainConfig c = TrainConfig::from_json(r);
  c.epochs = epochs;
  c.checkpoint = checkpoint(stage + ".ckpt");
  return c;
}

std::string TrainRun::checkpoint(const std::string& file) const {
  for (const auto& f : files_)
    if (f == file) return (fs::path(ckpt_dir_) / file).string();
  throw std::logic_error("TrainRun::checkpoint: '" + file + "' was not declared");
}

void TrainRun::remove_own_files(bool checkpoints_too) {
  std::error_code ec;
  const fs::path dir(ckpt_dir_);
  if (checkpoints_too)
    for (const auto& f : files_) {
      fs::remove(dir / f, ec);
      fs::remove(dir / (f + ".tmp"), ec);
    }
  fs::remove(dir / kMarker, ec);
  fs::remove(dir / (std::string(kMarker) + ".tmp"), ec);
  if (created_dir_ && fs::is_directory(dir, ec) && fs::is_empty(dir, ec)) fs::remove(dir, ec);
}

TrainRun::~TrainRun() {
  if (finished_) return;
  // Unfinished: keep what can resume the run; a run that wrote no checkpoint leaves nothing behind.
  std::error_code ec;
  bool wrote = false;
  for (const auto& f : files_) wrote = wrote || fs::exists(fs::path(ckpt_dir_) / f, ec);
  if (!wrote) remove_own_files(false);
}

double TrainRun::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
}

nlohmann::json TrainRun::save(nlohmann::json meta, torch::nn::Module& module, const std::string& device) {
  meta["method"] = method_;
  nlohmann::json provenance = meta.value("provenance", nlohmann::json::object());
  nlohmann::json req = request_;
  req.erase("overwrite");
  provenance["request"] = req;
  provenance["library_version"] = CELLCOUNT_VERSION_STRING;
  provenance["threads"] = at::get_num_threads();
  provenance["device"] = device;
  provenance["seconds"] = seconds();
  meta["provenance"] = provenance;
  auto saved = save_model(out_, meta, module, request_.value("overwrite", false));
  finished_ = true;
  remove_own_files(true);  // the model is saved; checkpoints only serve unfinished runs
  return saved;
}

float tune_peak_threshold_on(const std::vector<torch::Tensor>& maps, const std::vector<std::vector<Point>>& truth,
                             float min_distance, double radius, std::vector<float> candidates) {
  CC_CHECK(maps.size() == truth.size(), CELLCOUNT_ERR_INTERNAL, "tune_peak_threshold_on: maps and truth differ in number");
  if (candidates.empty()) candidates = peak_threshold_grid();
  std::vector<std::vector<float>> flat;
  std::vector<int64_t> hs, ws;
  for (const auto& m : maps) {
    auto c = m.to(torch::kCPU, torch::kFloat32).contiguous();
    CC_CHECK(c.dim() == 2, CELLCOUNT_ERR_INTERNAL, "tune_peak_threshold_on: maps must be [H,W]");
    flat.emplace_back(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
    hs.push_back(c.size(0));
    ws.push_back(c.size(1));
  }
  return tune_peak_threshold(flat, hs, ws, truth, min_distance, radius, candidates);
}

}  // namespace cellcount
