// exemplar's BioImage Model Zoo export: the counter, the segmenter and the exemplar crops traced as one TorchScript
// module that maps a normalised image and its exemplar boxes to the masked density and the mask (seg-then-count,
// what cellcount_predict returns).
#pragma once
#include "core/bioimageio.h"

namespace cellcount::exemplar {

ExportPackage export_bioimageio(const ExportInput& in);

}  // namespace cellcount::exemplar
