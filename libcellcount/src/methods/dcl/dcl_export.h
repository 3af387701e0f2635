// dcl's BioImage Model Zoo export: both networks traced as one TorchScript module that maps a normalised image to
// the fine density map rescaled to the counter's count (what cellcount_predict returns as the density).
#pragma once
#include "core/bioimageio.h"

namespace cellcount::dcl {

ExportPackage export_bioimageio(const ExportInput& in);

}  // namespace cellcount::dcl
