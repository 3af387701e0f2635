/* cellcount: export of a model folder as a package for another tool. Plain C, included after cellcount.h.
 * Kept beside cellcount.h only while this branch is open (adding it there rebuilds every file of the library on
 * the shared build machine); it is meant to move into cellcount.h, section "export", when merged. */
#ifndef CELLCOUNT_EXPORT_H
#define CELLCOUNT_EXPORT_H

#include "cellcount/cellcount.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes a model folder as a package for another tool. Request (BORROWED):
 *   {"model": folder, "out": file, "format": "bioimageio", "overwrite": false,
 *    "test_image": image file or "" (default: a synthetic image of the core's cells, "seed" 0),
 *    "exemplars": [[x0, y0, x1, y1], ...] (exemplar models; default: three boxes around synthetic cells),
 *    "size": input side of the exported network (0 = the method's default), "license": SPDX id ("CC-BY-4.0")}
 * "bioimageio": a BioImage Model Zoo model package (spec 0.5, zip of stored files): rdf.yaml, TorchScript
 * weights traced from the model's network, test input/output tensors (.npy), cover.png, README.md and the
 * model's model.json; rdf.yaml gives the sha256 of the weights, test tensors and attachment, README.md of all.
 * Report: {"out", "format", "method", "test_count", "files": [{"name", "bytes", "sha256"}], "inputs"}.
 * `out` is written whole or not at all and never overwritten unless "overwrite": true.
 * *out_report OWNED BY LIBRARY (cellcount_string_free); NULL = not wanted.
 * Statuses: OK, ERR_INVALID_ARGUMENT (bad JSON or field, exemplar outside the test image, test image too small),
 * ERR_IO (out exists or unwritable, model or test image unreadable), ERR_MODEL_FORMAT,
 * ERR_UNSUPPORTED (a method or model that cannot be exported to that format). */
CELLCOUNT_API cellcount_status cellcount_export(const char * request_json, char ** out_report);

#ifdef __cplusplus
}
#endif

#endif
