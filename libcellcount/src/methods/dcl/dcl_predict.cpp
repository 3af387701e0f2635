// dcl inference: the tiled pass of both networks and DclMethod (scale, tile, stitch, rescale, peaks).
#include "methods/dcl/dcl_predict.h"

#include <cmath>

#include "core/augment.h"
#include "core/device.h"
#include "core/error.h"
#include "core/peaks.h"
#include "core/tiling.h"

namespace F = torch::nn::functional;

namespace cellcount::dcl {

torch::Tensor spread_coarse(const torch::Tensor& coarse, int64_t h, int64_t w) {
  const double area = double(h * w) / double(coarse.size(2) * coarse.size(3));
  return F::interpolate(coarse, F::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kNearest)) /
         area;
}

namespace {

// Runs both networks on one tile [1,C,h,w] and returns [1,2,h,w]: the fine map (density per pixel) and
// the spread coarse map.
torch::Tensor run_tile(DclNet& net, const DclConfig& cfg, const torch::Tensor& tile) {
  auto coarse = net->counter->forward(tile);
  auto fine = net->localizer->forward(tile, coarse) / cfg.target_scale;
  return torch::cat({fine, spread_coarse(coarse, tile.size(2), tile.size(3))}, 1).to(torch::kFloat32);
}

}  // namespace

torch::Tensor tiled_maps(DclNet& net, const DclConfig& cfg, const torch::Tensor& x, int64_t tile, int64_t overlap,
                         const torch::Device& device, torch::ScalarType precision, const Progress& progress) {
  return run_tiled(
      x, tile, overlap, 16,
      [&](const torch::Tensor& t) {
        auto input = t.to(device, precision);
        if (precision != torch::kFloat32) input = input.contiguous(torch::MemoryFormat::ChannelsLast);
        return run_tile(net, cfg, input).to(torch::kCPU);
      },
      progress);
}

torch::Tensor rescaled_fine(const torch::Tensor& maps) {
  const double count = maps[1].sum().item<double>(), fine_sum = maps[0].sum().item<double>();
  auto fine = fine_sum > 1e-12 ? maps[0] * (count / fine_sum) : torch::full_like(maps[0], count / maps[0].numel());
  return fine.contiguous();
}

namespace {

class DclMethod : public ModelMethod {
 public:
  explicit DclMethod(const ModelFiles& f)
      : ModelMethod(f.meta), cfg_(DclConfig::from_json(f.meta.at("architecture"))), net_(cfg_) {
    scale_ = meta_["input"].value("scale", 1.0);
    CC_CHECK(scale_ > 0.05 && scale_ < 20, CELLCOUNT_ERR_MODEL_FORMAT, "dcl: input.scale out of range");
    load_weights(*net_, f);
    net_->eval();
  }

  Prediction predict(const PredictInput& in, const PredictOptions& o) override {
    auto& net = net_for(o.device, o.precision);
    const int64_t H = in.image.size(1), W = in.image.size(2);
    auto x = resize_by(spec_.prepare(in.image), scale_);
    // One rule for every method (core resolve_tiling): the caller's, else model.json's tiling.
    const auto [tile, overlap] = resolve_tiling(o.tile_size, o.tile_overlap, meta_["tiling"]);
    auto maps = tiled_maps(net, cfg_, x, tile, overlap, o.device, o.precision, o.progress);
    const double count_scaled = maps[1].sum().item<double>();
    auto fine = rescaled_fine(maps);
    const auto [thr, md] = peak_settings(o);
    auto peaks = find_peaks(fine.data_ptr<float>(), fine.size(0), fine.size(1), thr, md);
    // Back to the caller's pixel grid.
    torch::Tensor density = resize_mass(fine, H, W);
    const double sx = double(W) / double(x.size(2)), sy = double(H) / double(x.size(1));
    Prediction p;
    for (const auto& q : peaks) p.points.push_back(scale_point(q, sx, sy));
    p.points = points_in_region(p.points, in.region);  // the core's region rule, as every method's
    density = mask_density(density, in.region);
    p.count = in.region.defined() ? density.sum().item<double>() : count_scaled;
    p.class_counts = {p.count};
    if (o.want_density) p.density = density.contiguous();
    return p;
  }

 private:
  // The network on a device and precision; fp32 weights are kept, other copies are made from them.
  DclNet& net_for(const torch::Device& device, torch::ScalarType precision) {
    if (precision == torch::kFloat32) {
      move_to(*net_, device);
      return net_;
    }
    if (!low_.is_empty() && low_device_ == device && low_type_ == precision) return low_;
    low_ = DclNet(cfg_);
    copy_state(*low_, *net_);
    low_->to(device, precision);
    low_->eval();
    low_device_ = device;
    low_type_ = precision;
    return low_;
  }

  DclConfig cfg_;
  DclNet net_;
  double scale_ = 1.0;
  DclNet low_{nullptr};
  torch::Device low_device_ = torch::kCPU;
  torch::ScalarType low_type_ = torch::kFloat32;
};

}  // namespace

std::unique_ptr<Method> make_method(const ModelFiles& f) { return std::make_unique<DclMethod>(f); }

}  // namespace cellcount::dcl
