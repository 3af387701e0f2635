#!/usr/bin/env python3
"""int8 on this CPU (issue 25: "measure int8 ... and keep it if it holds the tolerance"), measured on the plain
PyTorch dcl reference of scripts/bench_vs_pytorch.py (the shipped model's architecture and weights, read from its
weights.pt): the VGG features of the counter and the UNet localizer quantised by FX
post-training static quantisation (`--backend`, default "x86": fbgemm on AVX2/AVX-512, per-channel weights;
calibrated on the first val images), global message passing and the head left in fp32 (grid_sample has no int8 kernel). Times one
whole-image forward at each size, fp32 against int8, medians of interleaved runs, and the relative change of the
count (sum of the coarse map) and of the fine map. LibTorch 1.13's C++ API has no post-training quantisation of
C++ modules, so this says whether building one would pay on this machine.

Run: bash scripts/bench-vs-pytorch.sh makes build/bench-venv; then
  OMP_WAIT_POLICY=PASSIVE build/bench-venv/bin/python scripts/bench_int8.py --model models/dcl-vgg --threads 2
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_vs_pytorch import build_reference  # noqa: E402


def library_weights(torch, path: Path) -> dict:
    """The library's weights.pt (a LibTorch archive, readable by torch.jit.load) renamed to the reference's
    parameters: the counter's names are the same; the UNet's down<l>/up<l>/up_conv<l> become lists (up and
    up_conv in the order l = 3..0)."""
    m = torch.jit.load(str(path))
    out = {}
    for k, v in list(m.named_parameters()) + list(m.named_buffers()):
        if k.startswith("localizer.unet."):
            k = k[len("localizer."):]
            head, rest = k.split(".", 2)[1], k.split(".", 2)[2:]
            for name in ("up_conv", "down", "up"):
                if head.startswith(name) and head[len(name):].isdigit():
                    l = int(head[len(name):])
                    head = f"{name}.{l if name == 'down' else 3 - l}"
                    break
            k = ".".join(["unet", head] + rest)
        out[k] = v.detach().clone()
    return out


def vgg_images(torch, dataset: Path, split_file: Path, split: str) -> list:
    """dcl-vgg's input: the blue channel, normalised by the image's 1 / 99.8 percentiles (the model's "input")."""
    import csv

    import numpy as np
    from PIL import Image

    rows = [r for r in csv.DictReader(open(split_file)) if r["split"] == split]
    out = []
    for r in rows:
        img = np.asarray(Image.open(dataset / r["image"]).convert("RGB"), dtype=np.float32)[:, :, 2]
        lo, hi = np.percentile(img, [1.0, 99.8])
        out.append(torch.from_numpy(((img - lo) / max(hi - lo, 1e-6)).astype(np.float32))[None, None].contiguous())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/dcl-vgg")
    ap.add_argument("--sizes", default="512,1024")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dataset", default="../shared/datasets/vgg_cells",
                    help="real images for the count change (dcl-vgg's input rule), with --split-file")
    ap.add_argument("--split-file", default="datasets/splits/vgg_cells.csv")
    ap.add_argument("--split", default="val")
    ap.add_argument("--backend", default="x86", choices=["x86", "onednn", "fbgemm", "qnnpack"],
                    help="quantised engine; Debian's LibTorch 1.13 has onednn and qnnpack, not fbgemm (x86 uses fbgemm)")
    a = ap.parse_args()

    import torch
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.set_num_threads(a.threads)
    meta = json.loads((Path(a.model) / "model.json").read_text())
    arch = meta["architecture"]
    net = build_reference(arch).eval()
    net.load_state_dict(library_weights(torch, Path(a.model) / "weights.pt"))
    cin = arch.get("in_channels", 1)
    torch.manual_seed(1)
    # A cell-like input: bright blobs on a dark background, normalised to about [0, 1].
    def image(s: int) -> torch.Tensor:
        yy, xx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
        x = torch.zeros(s, s)
        for cx, cy in torch.randint(0, s, (s * s // 900, 2)).tolist():
            x += torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 18.0)
        return (x.clamp(max=1.0) + 0.02 * torch.randn(s, s))[None, None].expand(1, cin, s, s).contiguous()

    real = vgg_images(torch, Path(a.dataset), Path(a.split_file), a.split) if a.dataset else []
    qnet = copy.deepcopy(net)
    torch.backends.quantized.engine = a.backend
    qmap = get_default_qconfig_mapping(a.backend)
    calib = real[:4] if real else [image(256), image(512)]
    with torch.no_grad():
        qnet.counter.features = prepare_fx(qnet.counter.features, qmap, (calib[0],))
        # The UNet sees [image, conditioned coarse map]; calibrate it through the whole network.
        qnet.unet = prepare_fx(qnet.unet, qmap, (torch.cat([calib[0], calib[0][:, :1]], 1),))
        for x in calib:
            qnet(x)
        qnet.counter.features = convert_fx(qnet.counter.features)
        qnet.unet = convert_fx(qnet.unet)

    print(f"torch {torch.__version__}, backend {torch.backends.quantized.engine}, {a.threads} threads, "
          f"model {a.model} (unet_base {arch.get('unet_base', 16)}), medians of {a.repeats} interleaved runs")
    print("| size | fp32 ms | int8 ms | fp32/int8 | count change | fine map max change (of its max) |")
    print("|---|---|---|---|---|---|")
    for s in [int(v) for v in a.sizes.split(",")]:
        x = image(s)
        times = {"fp32": [], "int8": []}
        with torch.inference_mode():
            ref, q = net(x), qnet(x)
            for _ in range(a.repeats):
                for name, m in (("fp32", net), ("int8", qnet)):
                    t0 = time.perf_counter()
                    m(x)
                    times[name].append(time.perf_counter() - t0)
        f, i = (statistics.median(times[k]) * 1e3 for k in ("fp32", "int8"))
        c0, c1 = ref[0].sum().item(), q[0].sum().item()
        dmax = ((ref[1] - q[1]).abs().max() / ref[1].abs().max().clamp(min=1e-12)).item()
        print(f"| {s} | {f:.0f} | {i:.0f} | {f / i:.2f} | {100 * (c1 - c0) / max(abs(c0), 1e-12):+.2f} % | "
              f"{100 * dmax:.1f} % |")
    if real:
        rel = []
        with torch.inference_mode():
            for x in real[4:]:
                c0, c1 = net(x)[0].sum().item(), qnet(x)[0].sum().item()
                rel.append(abs(c1 - c0) / max(c0, 1e-6))
        print(f"\nCount change int8 against fp32 (the shipped weights, whole image) on {len(rel)} {a.split} images of "
              f"{a.dataset} (the first 4 calibrated the quantisation): mean {100 * statistics.mean(rel):.2f} %, "
              f"max {100 * max(rel):.2f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
