#include "core/train.h"

#include <chrono>
#include <cmath>
#include <filesystem>

#include "core/dataset.h"
#include "core/error.h"
#include "core/log.h"

namespace fs = std::filesystem;

namespace cellcount {

nlohmann::json TrainConfig::to_json() const {
  return {{"epochs", epochs},
          {"batch_size", batch_size},
          {"lr", lr},
          {"weight_decay", weight_decay},
          {"optimizer", optimizer},
          {"schedule", schedule},
          {"restart_epochs", restart_epochs},
          {"restart_mult", restart_mult},
          {"lr_min", lr_min},
          {"seed", seed},
          {"checkpoint", checkpoint},
          {"checkpoint_every", checkpoint_every},
          {"resume", resume}};
}

TrainConfig TrainConfig::from_json(const nlohmann::json& j, TrainConfig c) {
  c.epochs = j.value("epochs", c.epochs);
  c.batch_size = j.value("batch_size", c.batch_size);
  c.lr = j.value("lr", c.lr);
  c.weight_decay = j.value("weight_decay", c.weight_decay);
  c.optimizer = j.value("optimizer", c.optimizer);
  c.schedule = j.value("schedule", c.schedule);
  c.restart_epochs = j.value("restart_epochs", c.restart_epochs);
  c.restart_mult = j.value("restart_mult", c.restart_mult);
  c.lr_min = j.value("lr_min", c.lr_min);
  c.seed = j.value("seed", c.seed);
  c.checkpoint = j.value("checkpoint", c.checkpoint);
  c.checkpoint_every = j.value("checkpoint_every", c.checkpoint_every);
  c.resume = j.value("resume", c.resume);
  CC_CHECK(c.epochs >= 0, CELLCOUNT_ERR_INVALID_ARGUMENT, "train: epochs must be >= 0");
  CC_CHECK(c.batch_size >= 1, CELLCOUNT_ERR_INVALID_ARGUMENT, "train: batch_size must be >= 1");
  CC_CHECK(c.lr > 0 && std::isfinite(c.lr), CELLCOUNT_ERR_INVALID_ARGUMENT, "train: lr must be > 0");
  CC_CHECK(c.optimizer == "adam" || c.optimizer == "adamw", CELLCOUNT_ERR_INVALID_ARGUMENT,
           "train: optimizer must be \"adam\" or \"adamw\", got \"" + c.optimizer + "\"");
  CC_CHECK(c.schedule == "cosine_warm_restarts" || c.schedule == "constant", CELLCOUNT_ERR_INVALID_ARGUMENT,
           "train: schedule must be \"cosine_warm_restarts\" or \"constant\", got \"" + c.schedule + "\"");
  CC_CHECK(c.restart_epochs > 0 && c.restart_mult >= 1, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "train: restart_epochs must be > 0 and restart_mult >= 1");
  CC_CHECK(c.checkpoint_every >= 1, CELLCOUNT_ERR_INVALID_ARGUMENT, "train: checkpoint_every must be >= 1");
  return c;
}

namespace {
// Where `epoch` falls among the SGDR periods (restart_epochs x restart_mult^k): {offset into its period, period}.
std::pair<double, double> sgdr_position(const TrainConfig& c, double epoch) {
  double t = epoch, period = c.restart_epochs;
  while (t >= period) {
    t -= period;
    period *= c.restart_mult;
  }
  return {t, period};
}
}  // namespace

double sgdr_lr(const TrainConfig& c, double epoch) {
  if (c.schedule == "constant") return c.lr;
  const auto [t, period] = sgdr_position(c, epoch);
  return c.lr_min + (c.lr - c.lr_min) * 0.5 * (1.0 + std::cos(M_PI * t / period));
}

bool sgdr_cycle_ends(const TrainConfig& c, int64_t epochs_done) {
  if (epochs_done <= 0) return false;
  const auto [t, period] = sgdr_position(c, double(epochs_done));
  return t < 1e-9 || period - t < 1e-9;
}

Trainer::Trainer(TrainConfig config, torch::nn::Module& module) : config_(std::move(config)), module_(module) {
  auto params = module_.parameters();
  if (config_.optimizer == "adamw") {
    optimizer_ = std::make_unique<torch::optim::AdamW>(
        params, torch::optim::AdamWOptions(config_.lr).weight_decay(config_.weight_decay));
  } else {
    optimizer_ = std::make_unique<torch::optim::Adam>(
        params, torch::optim::AdamOptions(config_.lr).weight_decay(config_.weight_decay));
  }
}

void Trainer::save_checkpoint(int64_t epoch, const nlohmann::json& history) {
  if (config_.checkpoint.empty()) return;
  torch::serialize::OutputArchive archive, model_archive, optim_archive;
  module_.save(model_archive);
  optimizer_->save(optim_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", optim_archive);
  archive.write("epoch", torch::tensor(epoch, torch::kInt64));
  const std::string h = history.dump();
  archive.write("history", torch::from_blob(const_cast<char*>(h.data()), {int64_t(h.size())}, torch::kUInt8).clone());
  const fs::path p(config_.checkpoint);
  if (p.has_parent_path()) fs::create_directories(p.parent_path());
  const std::string tmp = config_.checkpoint + ".tmp";
  archive.save_to(tmp);
  fs::rename(tmp, p);  // atomic: a cancel or crash never leaves half a checkpoint
}

int64_t Trainer::load_checkpoint(nlohmann::json& history) {
  if (config_.checkpoint.empty() || !config_.resume || !fs::exists(config_.checkpoint)) return 0;
  try {
    torch::serialize::InputArchive archive, model_archive, optim_archive;
    archive.load_from(config_.checkpoint);
    archive.read("model", model_archive);
    archive.read("optimizer", optim_archive);
    module_.load(model_archive);
    optimizer_->load(optim_archive);
    torch::Tensor epoch, h;
    archive.read("epoch", epoch);
    archive.read("history", h);
    h = h.contiguous();
    history = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(h.data_ptr<uint8_t>()), h.numel()));
    return epoch.item<int64_t>();
  } catch (const c10::Error& e) {
    fail(CELLCOUNT_ERR_MODEL_FORMAT, "checkpoint '" + config_.checkpoint +
                                         "' does not fit this network (delete it or set resume false): " +
                                         e.what_without_backtrace());
  }
}

void recompute_batchnorm(torch::nn::Module& module, const std::function<void()>& forward_batch, int64_t batches) {
  std::vector<torch::nn::BatchNorm2dImpl*> bns;
  auto take = [&](torch::nn::Module& m) {
    if (auto* bn = m.as<torch::nn::BatchNorm2d>(); bn && bn->options.track_running_stats()) bns.push_back(bn);
  };
  take(module);
  for (auto& m : module.modules(/*include_self=*/false)) take(*m);  // (self: it may live on the stack)
  if (bns.empty() || batches <= 0) return;
  std::vector<c10::optional<double>> momentum;
  for (auto* bn : bns) {
    momentum.push_back(bn->options.momentum());
    bn->reset_running_stats();
    bn->options.momentum(c10::nullopt);  // cumulative average: batch b weighs 1/b
  }
  {
    torch::NoGradGuard ng;
    module.train();
    for (int64_t b = 0; b < batches; ++b) forward_batch();
  }
  for (size_t i = 0; i < bns.size(); ++i) bns[i]->options.momentum(momentum[i]);
  module.eval();
}

nlohmann::json Trainer::fit(size_t n, const LossFn& loss_fn, const Progress& progress, const EpochFn& on_epoch_end) {
  CC_CHECK(n >= 1, CELLCOUNT_ERR_DATASET, "train: the training split is empty");
  const auto t0 = std::chrono::steady_clock::now();
  nlohmann::json history = nlohmann::json::array();
  const int64_t start = load_checkpoint(history);
  if (start > 0) log_info("resuming from checkpoint '" + config_.checkpoint + "' at epoch " + std::to_string(start));
  const int64_t steps_per_epoch = int64_t((n + config_.batch_size - 1) / config_.batch_size);
  module_.train();
  for (int64_t epoch = start; epoch < config_.epochs; ++epoch) {
    // Every epoch has its own seed, so a resumed run continues exactly as an uninterrupted one. Its draws come
    // from this generator only (never LibTorch's global one, which other trainings in the process share).
    const uint64_t epoch_seed = config_.seed * 1000003ULL + uint64_t(epoch);
    std::mt19937_64 rng(epoch_seed);
    std::vector<size_t> order(n);
    for (size_t i = 0; i < n; ++i) order[i] = i;
    for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[uniform_index(rng(), i)]);
    double loss_sum = 0;
    double lr = config_.lr;
    for (int64_t s = 0; s < steps_per_epoch; ++s) {
      progress.report((epoch + double(s) / steps_per_epoch) / std::max<int64_t>(1, config_.epochs),
                      "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(config_.epochs));
      lr = sgdr_lr(config_, epoch + double(s) / steps_per_epoch);
      for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);
      const size_t b0 = size_t(s) * config_.batch_size, b1 = std::min(n, b0 + config_.batch_size);
      std::vector<size_t> batch(order.begin() + b0, order.begin() + b1);
      optimizer_->zero_grad();
      torch::Tensor loss = loss_fn(batch, rng);
      CC_CHECK(std::isfinite(loss.item<double>()), CELLCOUNT_ERR_INTERNAL,
               "train: the loss became " + std::to_string(loss.item<double>()) + " at epoch " +
                   std::to_string(epoch + 1) + " (try a lower lr)");
      loss.backward();
      optimizer_->step();
      loss_sum += loss.item<double>() * double(batch.size());
    }
    EpochStats st{epoch + 1, loss_sum / double(n), lr};
    nlohmann::json row{{"epoch", st.epoch}, {"loss", st.loss}, {"lr", st.lr}};
    if (on_epoch_end) {
      auto extra = on_epoch_end(st);
      module_.train();
      if (extra.is_object()) row.update(extra);
    }
    history.push_back(row);
    log_debug("epoch " + std::to_string(st.epoch) + " loss " + std::to_string(st.loss));
    if ((epoch + 1) % config_.checkpoint_every == 0 || epoch + 1 == config_.epochs) save_checkpoint(epoch + 1, history);
  }
  progress.report(1.0f, "training done");
  module_.eval();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {{"epochs_run", config_.epochs - start}, {"resumed_from", start}, {"history", history}, {"seconds", secs}};
}

}  // namespace cellcount
