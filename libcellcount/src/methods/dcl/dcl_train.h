// dcl training: the train request's fields and presets, the count loss, the counter's validation and the
// two-stage train() (the counter, then the localizer with the counter frozen).
#pragma once
#include <nlohmann/json.hpp>

#include "core/options.h"
#include "core/progress.h"

namespace cellcount::dcl {

// Every train field, declared once (core/options.h): the driver's density-method fields plus these. Of those,
// init_from is a dcl model of the same architecture (and channels) whose counter and localizer start both stages,
// e.g. a shipped model fine-tuned on one's own images ("" = from scratch; provenance records it), and crop is the
// random square crop of both stages, also the inference tile.
Options train_options();

// Trains a dcl model as the request asks (MethodSpec::train).
nlohmann::json train(const nlohmann::json& req0, const Progress& progress);

}  // namespace cellcount::dcl
