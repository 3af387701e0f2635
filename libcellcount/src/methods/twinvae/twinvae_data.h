// twinvae's data: the synthesize request (`cellcount synth --method twinvae`), the frames a training reads
// (which are synthetic, which natural, which labelled), the resize of any chamber image to the network's 128,
// and the authors' augmentation (CODE-FACTS 4.5).
//
// Dataset layout (our design; DESIGN.md's CSV form plus one file):
//   images/*.png     128x128 grey frames
//   frames.csv       image,domain,split   every frame, labelled or not; domain "synthetic" or "natural",
//                    split "train", "val" or "test"
//   counts.csv       image,count          the labelled frames only (an unlabelled frame has no row)
//   split.csv        image,split          the labelled frames (what `cellcount eval` and the core read)
// Without frames.csv every frame of counts.csv is taken as one domain (the request's "domain", natural by
// default), so a user's folder of hand-counted frames trains as it is; unlabelled frames then need frames.csv.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <torch/torch.h>
#include <vector>

#include "core/options.h"
#include "core/progress.h"
#include "methods/twinvae/twinvae_net.h"

namespace cellcount::twinvae {

// Smallest chamber image side predict accepts (a 128 frame shows cells of radius 3..9; below 32 pixels a
// frame cannot show one at a size the network has seen).
constexpr int64_t kMinSide = 32;

// A raw [C,H,W] image (values in the file's range: 0..255 for 8-bit) to the network's [1,128,128] in [0,1]:
// channels averaged to grey (upstream converts to 'L'), times `scale` (1/255), resized to 128x128 (area
// average when shrinking, bilinear when enlarging). Refuses sides below kMinSide (CELLCOUNT_ERR_INVALID_ARGUMENT
// naming the size).
torch::Tensor to_network_input(const torch::Tensor& raw, double scale);
// [1,128,128] back to [1,h,w] (bilinear), for the reconstruction image.
torch::Tensor from_network_size(const torch::Tensor& img, int64_t h, int64_t w);

struct Frames {
  torch::Tensor images;         // [N,128,128] uint8
  std::vector<float> labels;    // count, 0 = unlabelled (the authors' convention)
  std::vector<std::string> names;
  size_t labelled() const;
};

struct TwinData {
  Frames syn_train, syn_val, nat_train, nat_val, nat_test;
  std::string split_source;
};

// Reads `dataset` (and `synthetic_dataset` when given: a second folder, all of whose frames, or its frames.csv's
// synthetic ones, are synthetic). `domain`: the domain of the frames of a folder without frames.csv.
// A natural frame labelled with count 0 cannot be told from an unlabelled one (label 0 = unlabelled, as
// upstream): such training frames are treated as unlabelled and a warning says how many.
TwinData load_twin_data(const std::string& dataset, const std::string& synthetic_dataset, const std::string& domain,
                        const Progress& progress);

// The authors' training augmentation of a batch (dataloader.__getitem__), in order: rotation by 0 or 90
// degrees, horizontal flip (p 0.5), vertical flip (p 0.5), RandomResizedCrop(128, scale 0.9, ratio 1) (a
// 121x121 square at a random position, bilinear back to 128), to [0,1], + N(0, noise^2) (no clamp).
// `images` [B,128,128] uint8 -> [B,1,128,128] float. Draws from `rng` (geometry) and `gen` (noise).
// `light` > 0 (our addition, off by default as upstream): each frame then also gets a random illumination,
// x * gain * (1 + tilt * ramp) + offset with gain in [1 - light, 1 + light], offset in [-light/2, light/2] and a
// linear ramp of slope up to light/2 across the frame in a random direction, drawn from `rng` after the geometry.
// It keeps a regressor from reading the count off the frame's overall brightness (in the synthetic BF frames the
// count is almost a function of the mean grey value) and covers the uneven light of real chambers.
torch::Tensor augment(const torch::Tensor& images, double noise, std::mt19937_64& rng, at::Generator& gen,
                      double light = 0.0);
// Clean: [B,128,128] uint8 -> [B,1,128,128] in [0,1].
torch::Tensor clean(const torch::Tensor& images);

Options synth_options();
nlohmann::json synthesize(const nlohmann::json& request, const Progress& progress);

}  // namespace cellcount::twinvae
