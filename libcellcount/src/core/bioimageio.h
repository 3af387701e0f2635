// Export of a model folder as a BioImage Model Zoo package (model spec 0.5: a zip with rdf.yaml, TorchScript
// weights, test tensors as .npy, a cover and a README). The core knows no method: a method registers an exporter
// that traces its network (trace_module) and describes its tensors; the core checks the request, picks the test
// image, writes the files, their sha256 and the zip (whole or not at all).
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <torch/script.h>
#include <torch/torch.h>
#include <vector>

#include "core/image_tensor.h"
#include "core/model_io.h"
#include "core/types.h"

namespace cellcount {

// What the core gives a method's exporter.
struct ExportInput {
  ModelFiles model;
  torch::Tensor image;           // [C,H,W] float32 raw test image (not normalised)
  std::vector<Box> exemplars;    // inside the image (exemplar methods)
  int64_t size = 0;              // requested input side of the exported network, 0 = the method's default
};

// One input or output tensor of the package.
struct ExportTensor {
  std::string id, description;
  nlohmann::json axes;                                       // spec 0.5 axes
  nlohmann::json preprocessing = nlohmann::json::array();    // inputs: spec 0.5 preprocessing steps
  torch::Tensor test;                                        // the test tensor as the consumer gives / gets it
};

// What an exporter returns.
struct ExportPackage {
  torch::jit::Module module;                 // traced; forward takes the inputs in order, after preprocessing
  std::vector<ExportTensor> inputs, outputs;
  std::string name, description;             // rdf name (no '/') and one-paragraph description
  std::string documentation;                 // markdown: what the consumer gets and how to count with it
  nlohmann::json cite = nlohmann::json::array();
  nlohmann::json tags = nlohmann::json::array();
  torch::Tensor cover_image, cover_map;      // [H,W] float: the test input (about [0,1]) and the output map
  double test_count = 0;                     // sum of the test output's density
  nlohmann::json method_config = nlohmann::json::object();  // rdf config.cellcount (what the export fixed)
};

using Exporter = std::function<ExportPackage(const ExportInput&)>;

// Called by a method's factory (method_spec_<id>): `format` is "bioimageio".
void register_exporter(const std::string& method, const std::string& format, Exporter fn);

// Traces `fn` (a pure function of the example inputs that calls `net`) into a TorchScript module whose
// parameters and buffers are those of `net` (so the saved file holds the weights). Sizes read from tensors are
// fixed at the example's (LibTorch's C++ tracer records sizes as constants): the module takes exactly the
// example's shapes.
torch::jit::Module trace_module(torch::nn::Module& net, const std::string& class_name,
                                const std::vector<torch::Tensor>& example,
                                const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& fn);

// The model's normalisation as spec 0.5 preprocessing of an input whose axes are batch, channel, y, x:
// "percentile" -> scale_range over channel, y, x (per sample, as the library: all channels jointly),
// "fixed" -> scale_linear.
nlohmann::json bioimageio_preprocessing(const Normalization& n);

// Spec 0.5 axes of an image tensor: batch (1), channel (named), then space y and x, each `size` pixels
// (image_axes) or as large as the same axis of the tensor `like` with `halo` pixels on each side discarded
// when > 0 (image_axes_like: an output the size of its input).
nlohmann::json image_axes(const nlohmann::json& channel_names, int64_t size);
nlohmann::json image_axes_like(const nlohmann::json& channel_names, const std::string& like, int64_t halo = 0);

// The C ABI's cellcount_export. Request fields: see cellcount.h. Errors: CELLCOUNT_ERR_INVALID_ARGUMENT,
// CELLCOUNT_ERR_IO, CELLCOUNT_ERR_MODEL_FORMAT, CELLCOUNT_ERR_UNSUPPORTED.
nlohmann::json export_model(const nlohmann::json& request);

// Building blocks, exposed for tests: an .npy (v1.0, little-endian float32, C order) of a tensor, an 8-bit RGB
// PNG (stored deflate) of [H,W,3] bytes, and a zip (stored entries) of named byte strings.
std::string npy_bytes(const torch::Tensor& t);
std::string png_bytes(const std::vector<uint8_t>& rgb, int64_t width, int64_t height);
std::string zip_bytes(const std::vector<std::pair<std::string, std::string>>& files);
// The entries of a zip written by zip_bytes (stored entries only). Errors: CELLCOUNT_ERR_IO.
std::vector<std::pair<std::string, std::string>> unzip_stored(const std::string& zip);

}  // namespace cellcount
