// A generic trainer: loop over epochs and shuffled mini-batches, Adam/AdamW, cosine annealing with warm
// restarts (SGDR, per step), checkpoints (module + optimizer + epoch) with resume, seed determinism,
// progress and cancel. Methods supply the loss of a mini-batch.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <torch/torch.h>
#include <vector>

#include "core/progress.h"

namespace cellcount {

struct TrainConfig {
  int64_t epochs = 100;
  int64_t batch_size = 8;
  double lr = 1e-4;
  double weight_decay = 0.0;
  std::string optimizer = "adam";      // "adam" | "adamw"
  std::string schedule = "cosine_warm_restarts";  // | "constant"
  double restart_epochs = 10;          // T_0 of SGDR, in epochs
  double restart_mult = 2;             // T_mult
  double lr_min = 1e-6;
  uint64_t seed = 0;
  std::string checkpoint;              // file path; "" = no checkpoints
  int64_t checkpoint_every = 1;        // epochs
  bool resume = true;                  // continue from the checkpoint when it exists

  nlohmann::json to_json() const;
  // Reads the fields that are present; unknown fields are the caller's business.
  static TrainConfig from_json(const nlohmann::json& j, TrainConfig defaults);
  static TrainConfig from_json(const nlohmann::json& j) { return from_json(j, TrainConfig()); }
};

// The learning rate of SGDR at a (fractional) epoch: lr_min + (lr - lr_min) (1 + cos(pi t/T_i)) / 2.
double sgdr_lr(const TrainConfig& c, double epoch);
// True when `epochs_done` completed epochs end an SGDR period (the lr minimum; the next epoch restarts).
// The same period grid for the constant schedule.
bool sgdr_cycle_ends(const TrainConfig& c, int64_t epochs_done);

struct EpochStats {
  int64_t epoch;
  double loss;
  double lr;
};

// Precise BatchNorm (Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021): the running statistics of every
// BatchNorm2d in `module` recomputed as plain averages over `batches` calls of `forward_batch` (train mode, no
// gradients) instead of the momentum trail of the last optimiser steps, which lags the weights it is used
// with. Leaves the module in eval mode; a module without BatchNorm2d is left as it was.
void recompute_batchnorm(torch::nn::Module& module, const std::function<void()>& forward_batch, int64_t batches);

class Trainer {
 public:
  // loss_fn(batch indices, rng) -> scalar loss of that mini-batch (the trainer calls backward/step).
  using LossFn = std::function<torch::Tensor(const std::vector<size_t>& batch, std::mt19937_64& rng)>;
  // Called after each epoch (e.g. validation); may return extra JSON for the history.
  using EpochFn = std::function<nlohmann::json(const EpochStats&)>;

  Trainer(TrainConfig config, torch::nn::Module& module);

  // Trains on `n_samples` items. Returns {"epochs_run", "resumed_from", "history": [...], "seconds"}.
  // Cancel (through progress) throws Cancelled after the last checkpoint was written.
  nlohmann::json fit(size_t n_samples, const LossFn& loss_fn, const Progress& progress,
                     const EpochFn& on_epoch_end = nullptr);

 private:
  void save_checkpoint(int64_t epoch, const nlohmann::json& history);
  int64_t load_checkpoint(nlohmann::json& history);

  TrainConfig config_;
  torch::nn::Module& module_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
};

}  // namespace cellcount
