// twinvae training (CODE-FACTS 4.4 with the choices of 4.8 decided) and the scores of the paper (4.6).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <torch/torch.h>

#include "core/options.h"
#include "core/progress.h"
#include "methods/twinvae/twinvae_data.h"
#include "methods/twinvae/twinvae_net.h"

namespace cellcount::twinvae {

Options train_options();
nlohmann::json train(const nlohmann::json& request, const Progress& progress);

// The paper's metrics over the labelled frames of `f` (label != 0), predictions rounded to integers:
// MAE, MRE ("DEV", over labels != 0), accuracy ("correct"). Protocol "clean": z = mu on the clean frames (ours);
// "authors": z sampled, frames through the training augmentation (upstream's test, 4.8 item 4), seeded.
// The network is put in eval mode (dropout off, BatchNorm running statistics).
nlohmann::json score(TwinVae& net, const Frames& f, Domain d, const std::string& protocol, double noise, uint64_t seed,
                     torch::Device device);

// Parameter groups of the transfer schemes, by name (tests).
bool is_outer(const std::string& name);                    // a reader's or a writer's parameter
int thaw_stage(const std::string& name);                   // 0..4: the stage at which thawing frees it
void apply_scheme(TwinVae& net, const std::string& scheme, int64_t epoch, int64_t epochs);

}  // namespace cellcount::twinvae
