// exemplar evaluate and synthesize requests: their options, the benchmark evaluation (mask modes, the
// two-kind error) and the writing of a two-kind benchmark dataset from a recipe.
#pragma once
#include <nlohmann/json.hpp>

#include "core/options.h"
#include "core/progress.h"

namespace cellcount::exemplar {

Options eval_options();

Options synth_options();

// Evaluates a model on a dataset split (MethodSpec::evaluate).
nlohmann::json evaluate(const nlohmann::json& req0, const Progress& progress);

// Writes a two-kind benchmark dataset (MethodSpec::synthesize).
nlohmann::json synthesize(const nlohmann::json& req0, const Progress& progress);

}  // namespace cellcount::exemplar
