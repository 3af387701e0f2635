// exemplar training: the train request's fields and the three-stage train() (base counter, pseudo masks,
// segmenter), then the tuning of the mask and peak thresholds.
#pragma once
#include <nlohmann/json.hpp>

#include "core/options.h"
#include "core/progress.h"

namespace cellcount::exemplar {

// Every train field, declared once (core/options.h): the train-run driver's common fields plus these.
Options train_options();

// Trains an exemplar model as the request asks (MethodSpec::train).
nlohmann::json train(const nlohmann::json& req0, const Progress& progress);

}  // namespace cellcount::exemplar
