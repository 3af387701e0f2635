#!/usr/bin/env python3
"""Side-by-side benchmark (issue 25): the cellcount library against the same networks written in plain
PyTorch (random weights of the shipped width, whole image, eval + inference_mode), interleaved in one run.
dcl: counter + localizer. exemplar: counter (backbone, projection, similarity to three exemplar boxes, density
head), the segmenter's mask and the localizer, as the library's default (mask "seg").

Run through scripts/bench-vs-pytorch.sh, which makes the PyTorch venv. Two processes take turns so that both
sides see the same machine load: this one (PyTorch) and a worker (`--worker`, no torch import: LibTorch 1.13
of the library and PyPI torch must not share a process) that holds the library's model through the Python
binding. Per configuration (size, threads, precision) each side runs once untimed, then `--repeats` timed
runs alternate lib, torch, lib, torch, ...; medians are reported.

Writes a Markdown table (stdout and --out): library ms (default settings; and count only), PyTorch ms (all the
networks; and without the localizer), the ratios PyTorch / library (> 1: the library is faster), and the achieved
GFLOP/s of each side against a matmul ceiling measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def native_bf16() -> bool:
    """AMX or AVX512-BF16 in /proc/cpuinfo: the library's rule for precision "auto"."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                flags = set(line.split())
                return "amx_bf16" in flags or "avx512_bf16" in flags
    except OSError:
        pass
    return False


# ----------------------------------------------------------------------------------------- library worker

def worker() -> int:
    """Reads JSON commands on stdin, one per line, answers one JSON line each. Imports no torch."""
    import numpy as np
    import cellcount as cc

    model = None
    images: dict[int, np.ndarray] = {}
    boxes: dict[int, list] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-vs-pytorch-"))
    for line in sys.stdin:
        req = json.loads(line)
        try:
            if req["cmd"] == "load":
                model = cc.Model(req["model"])
                out = {"method": model.method, "info": model.refresh_info().get("architecture", {})}
            elif req["cmd"] == "image":
                s = int(req["size"])
                d = tmp / f"cells{s}"
                cells = max(1, s * s // 900)
                cc.synthesize(str(d), n=1, width=s, height=s, min_cells=cells, max_cells=cells, seed=1)
                sample = cc.read_dataset(str(d))["samples"][0]
                img = cc.read_image(str(d / sample["image"]))[0]
                img = img[..., 0] if img.ndim == 3 else img
                images[s] = np.ascontiguousarray(img, dtype=np.float32)
                np.save(req["npy"], images[s])
                if model.method == "exemplar":  # an RGB model: the grey image in three channels
                    images[s] = np.ascontiguousarray(np.repeat(images[s][..., None], 3, axis=2))
                # Three exemplar boxes (12 x 12) around the first three cells, for exemplar models.
                pts = [(float(q[0]), float(q[1])) for q in sample.get("points", [])[:3]] or [(s / 2, s / 2)]
                boxes[s] = [[max(0.0, x - 6), max(0.0, y - 6), min(s, x + 6), min(s, y + 6)] for x, y in pts]
                out = {"ok": True, "boxes": boxes[s]}
            elif req["cmd"] == "run":
                cc.set_num_threads(int(req["threads"]))
                t0 = time.perf_counter()
                size = int(req["size"])
                r = model.predict(images[size], boxes[size] if model.method == "exemplar" else None,
                                  precision=req["precision"], options=req.get("options") or None)
                dt = time.perf_counter() - t0
                out = {"seconds": dt, "count": float(r.count), "precision": r.precision, "points": int(r.n_points)}
            elif req["cmd"] == "info":
                out = {"info": model.refresh_info()}
            else:
                out = {"error": "unknown command"}
        except Exception as e:  # reported to the driver, which stops
            out = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    return 0


class Worker:
    def __init__(self, args: argparse.Namespace):
        env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
        self.p = subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, env=env)

    def __call__(self, **req) -> dict:
        self.p.stdin.write(json.dumps(req) + "\n")
        self.p.stdin.flush()
        out = json.loads(self.p.stdout.readline())
        if "error" in out:
            raise RuntimeError(f"library worker: {out['error']}")
        return out

    def close(self) -> None:
        self.p.stdin.close()
        self.p.wait(timeout=60)


# ----------------------------------------------------------------------------------------- PyTorch reference

def build_unet(cin: int, base: int):
    """libcellcount/src/core/unet.cpp in plain PyTorch, the localizer of dcl and exemplar: 4 levels of two 3x3
    conv + BatchNorm + ReLU (channels base << level), 2x2 max-pool down, 1x1 conv + pixel_shuffle up, softplus."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(True)]

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.down, i = nn.ModuleList(), cin
            for l in range(4):
                self.down.append(nn.Sequential(*block(i, base << l), *block(base << l, base << l)))
                i = base << l
            self.bottom = nn.Sequential(*block(i, base << 4), *block(base << 4, base << 4))
            i = base << 4
            self.up, self.up_conv = nn.ModuleList(), nn.ModuleList()
            for l in range(3, -1, -1):
                o = base << l
                self.up.append(nn.Conv2d(i, 4 * o, 1))
                self.up_conv.append(nn.Sequential(*block(2 * o, o), *block(o, o)))
                i = o
            self.out = nn.Conv2d(base, 1, 1)

        def forward(self, x):
            skips = []
            for d in self.down:
                x = d(x)
                skips.append(x)
                x = F.max_pool2d(x, 2, 2)
            x = self.bottom(x)
            for i, (u, c) in enumerate(zip(self.up, self.up_conv)):
                x = c(torch.cat([F.pixel_shuffle(u(x), 2), skips[-1 - i]], 1))
            return F.softplus(self.out(x))

    return UNet()


def build_reference(arch: dict):
    """libcellcount/src/methods/dcl/dcl_net.cpp in plain PyTorch: VGG-19-BN (width multiplier) without the
    last max-pool, bilinear x2, global message passing (K offsets, grid_sample, mean), 1x1 head, |.|; the
    UNet localizer (4 levels, base channels, 1x1 conv + pixel_shuffle up, softplus) fed the image and the
    upsampled coarse map."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def scaled(ch):
        return max(8, int(round(ch * arch.get("width", 0.25))))

    def block(i, o, bn=True):
        return [nn.Conv2d(i, o, 3, padding=1, bias=not bn)] + ([nn.BatchNorm2d(o)] if bn else []) + [nn.ReLU(True)]

    class Gmp(nn.Module):
        def __init__(self, c, k):
            super().__init__()
            self.k = k
            self.offset = nn.Conv2d(c, 2 * k, 1)

        def forward(self, x):
            n, c, h, w = x.shape
            off = self.offset(x).view(n, self.k, 2, h, w).float()
            ys = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1).expand(n, self.k, h, w)
            xs = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w).expand(n, self.k, h, w)
            gx = (xs + off[:, :, 0]) * (2.0 / max(w - 1, 1)) - 1.0
            gy = (ys + off[:, :, 1]) * (2.0 / max(h - 1, 1)) - 1.0
            grid = torch.stack([gx, gy], -1).view(n, self.k * h, w, 2)
            s = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True)
            return x + s.view(n, c, self.k, h, w).mean(2).to(x.dtype)

    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            cfg = [64, 64, -1, 128, 128, -1, 256, 256, 256, 256, -1, 512, 512, 512, 512, -1, 512, 512, 512, 512]
            layers, i = [], arch.get("in_channels", 1)
            for v in cfg:
                if v < 0:
                    layers.append(nn.MaxPool2d(2, 2))
                else:
                    layers += block(i, scaled(v), arch.get("batch_norm", True))
                    i = scaled(v)
            self.features = nn.Sequential(*layers)
            self.gmp = Gmp(i, arch.get("gmp_points", 8)) if arch.get("gmp", True) else None
            self.head = nn.Conv2d(i, 1, 1)

        def forward(self, x):
            f = F.interpolate(self.features(x), scale_factor=2.0, mode="bilinear", align_corners=True)
            if self.gmp is not None:
                f = self.gmp(f)
            return self.head(f).abs()

    class Dcl(nn.Module):
        def __init__(self):
            super().__init__()
            self.counter = Counter()
            self.unet = build_unet(arch.get("in_channels", 1) + 1, arch.get("unet_base", 16))
            self.cond_scale = arch.get("cond_scale", 100.0)
            self.target_scale = arch.get("target_scale", 100.0)

        def forward(self, x, localize=True):
            coarse = self.counter(x)
            if not localize:
                return coarse
            h, w = x.shape[2:]
            area = h * w / (coarse.shape[2] * coarse.shape[3])
            up = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False) * (self.cond_scale / area)
            return coarse, self.unet(torch.cat([x, up.to(x.dtype)], 1)) / self.target_scale

    torch.manual_seed(0)
    net = Dcl().eval()
    # BatchNorm statistics of a trained net (random weights otherwise; the times do not depend on values).
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.fill_(1.0)
    return net


def build_exemplar_reference(arch: dict, thresholds: dict):
    """libcellcount/src/methods/exemplar/exemplar_net.cpp and exemplar_predict.cpp (mask "seg") in plain PyTorch:
    two ResNet-50-shaped backbones to layer3 (width multiplier), the counter's 1x1 projection, exemplar vectors
    (crops resized to exemplar_size, backbone, mean, linear), similarity, the segmenter's cosine mask, the
    5-layer upsampling density head and the UNet localizer on the image and the density."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    width = arch.get("width", 0.25)

    def scaled(c, w):
        return max(8, int(round(c * w)))

    def conv(i, o, k, stride=1, bias=False):
        return nn.Conv2d(i, o, k, stride=stride, padding=k // 2, bias=bias)

    class Bottleneck(nn.Module):
        def __init__(self, i, p, o, stride):
            super().__init__()
            self.c1, self.b1 = conv(i, p, 1), nn.BatchNorm2d(p)
            self.c2, self.b2 = conv(p, p, 3, stride), nn.BatchNorm2d(p)
            self.c3, self.b3 = conv(p, o, 1), nn.BatchNorm2d(o)
            self.down = nn.Sequential(conv(i, o, 1, stride), nn.BatchNorm2d(o)) if stride != 1 or i != o else None

        def forward(self, x):
            y = F.relu(self.b1(self.c1(x)))
            y = F.relu(self.b2(self.c2(y)))
            y = self.b3(self.c3(y))
            return F.relu(y + (x if self.down is None else self.down(x)))

    class Backbone(nn.Module):
        def __init__(self, cin):
            super().__init__()
            c0 = scaled(64, width)
            self.stem = nn.Sequential(conv(cin, c0, 7, 2), nn.BatchNorm2d(c0), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
            layers, i = [], c0
            for planes, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2)):
                p = scaled(planes, width)
                for b in range(blocks):
                    layers.append(Bottleneck(i, p, 4 * p, stride if b == 0 else 1))
                    i = 4 * p
            self.layers = nn.Sequential(*layers)
            self.out_channels = i

        def forward(self, x):
            return self.layers(self.stem(x))

    class Exemplar(nn.Module):
        def __init__(self):
            super().__init__()
            cin, dim, hw = arch.get("in_channels", 3), arch.get("dim", 256), arch.get("head_width", 0.5)
            self.dim, self.size = dim, arch.get("exemplar_size", 64)
            self.backbone = Backbone(cin)
            self.proj = nn.Conv2d(self.backbone.out_channels, dim, 1)
            self.ex_proj = nn.Linear(self.backbone.out_channels, dim)
            ks, ws, i, head = (7, 5, 3, 1, 1), (scaled(196, hw), scaled(128, hw), scaled(64, hw), scaled(32, hw), 1), dim + 1, []
            for k, w in zip(ks, ws):
                head.append(conv(i, w, k, bias=True))
                i = w
            self.head = nn.ModuleList(head)
            self.seg_backbone = Backbone(cin)
            self.seg_proj = nn.Conv2d(self.seg_backbone.out_channels, arch.get("seg_dim", 128), 1)
            lb = arch.get("localizer_base", 0)
            self.localizer = build_unet(cin + 1, lb) if lb > 0 else None
            self.mask_threshold = thresholds.get("mask_threshold", 0.4)
            self.delta = thresholds.get("delta", 0.0)
            self.cond_scale, self.target_scale = arch.get("cond_scale", 100.0), arch.get("target_scale", 100.0)
            self.boxes = []

        def crops(self, x):
            out = []
            for x0, y0, x1, y1 in self.boxes:
                c = x[:, :, int(y0):max(int(y0) + 1, int(round(y1))), int(x0):max(int(x0) + 1, int(round(x1)))]
                out.append(F.interpolate(c, size=(self.size, self.size), mode="bilinear", align_corners=False))
            return torch.cat(out, 0)

        def forward(self, x, localize=True):
            crops = self.crops(x)
            b = self.ex_proj(self.backbone(crops).mean((2, 3)))                      # [E,dim]
            v = self.seg_proj(self.seg_backbone(crops)).mean((2, 3)).mean(0, keepdim=True)  # [1,seg_dim]
            f = self.proj(self.backbone(x))
            s = torch.einsum("ndhw,ed->nehw", f, b).mean(1, keepdim=True) / self.dim ** 0.5
            p = self.seg_proj(self.seg_backbone(x))
            m = torch.einsum("ndhw,nd->nhw", F.normalize(p, dim=1), F.normalize(v, dim=1)).unsqueeze(1)
            m = (m >= self.mask_threshold).to(s.dtype)
            d = torch.cat([f, torch.where(m > 0.5, s, torch.full_like(s, self.delta))], 1)
            for i, h in enumerate(self.head):
                d = h(d)
                d = F.relu(d) if i + 1 < len(self.head) else F.softplus(d)
                if i < 4:
                    d = F.interpolate(d, scale_factor=2.0, mode="bilinear", align_corners=True)
            d = d / self.target_scale * F.interpolate(m, size=x.shape[2:], mode="nearest")
            if not localize or self.localizer is None:
                return d
            return d, self.localizer(torch.cat([x, d * self.cond_scale], 1)) / self.target_scale

    torch.manual_seed(0)
    net = Exemplar().eval()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.fill_(1.0)
    return net


def conv_gflop(net, x, localize: bool) -> float:
    """Multiply-adds x 2 of every convolution in one forward (the rest is < 2 %)."""
    import torch
    total = [0]

    def hook(m, inp, out):
        total[0] += 2 * out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.inference_mode():
        net(x, localize)
    for h in hs:
        h.remove()
    return total[0] / 1e9


def matmul_ceiling(threads: int, dtype) -> float:
    import torch
    torch.set_num_threads(threads)
    n = 1536
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="models/dcl-vgg")
    ap.add_argument("--sizes", default="256,1024,2048")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--precisions", default="fp32,auto")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--lib-options", default="{}",
                    help='the library\'s dcl prediction options as JSON, e.g. \'{"tiling": "budget"}\'')
    ap.add_argument("--reference-architecture", default="{}",
                    help='fields replacing the model\'s architecture in the PyTorch reference only, e.g. '
                         '\'{"unet_base": 16}\' (dcl) or \'{"localizer_base": 16}\' (exemplar) to time a model with a '
                         'cheaper localizer against the network it replaced')
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    if a.worker:
        return worker()

    import numpy as np
    import torch

    lib = Worker(a)
    meta = lib(cmd="load", model=a.model)
    method = meta["method"]
    if method == "dcl":
        net = build_reference({**meta["info"], **json.loads(a.reference_architecture)})
    elif method == "exemplar":
        info = lib(cmd="info")["info"]
        net = build_exemplar_reference({**meta["info"], **json.loads(a.reference_architecture)}, info.get("thresholds", {}))
    else:
        raise SystemExit(f"{a.model}: the PyTorch reference exists for dcl and exemplar models (got {method})")
    cin = meta["info"].get("in_channels", 1)
    bf16 = native_bf16()
    sizes = [int(s) for s in a.sizes.split(",")]
    threads = [int(t) for t in a.threads.split(",")]
    precs = a.precisions.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="bench-vs-pytorch-"))
    rows = []
    ceil = {}
    for t in threads:
        ceil[(t, "fp32")] = matmul_ceiling(t, torch.float32)
        ceil[(t, "bf16")] = matmul_ceiling(t, torch.bfloat16)
    for s in sizes:
        npy = tmp / f"cells{s}.npy"
        boxes = lib(cmd="image", size=s, npy=str(npy))["boxes"]
        img = np.load(npy)
        lo, hi = np.percentile(img, [1.0, 99.8])
        x = torch.from_numpy(((img - lo) / max(hi - lo, 1e-6)).astype(np.float32))[None, None]
        x = x.expand(1, cin, s, s).contiguous()
        if method == "exemplar":
            net.boxes = boxes
        gf_full, gf_count = conv_gflop(net, x, True), conv_gflop(net, x, False)
        for t in threads:
            for p in precs:
                torch.set_num_threads(t)
                tp = "bf16" if (p == "bf16" or (p == "auto" and bf16)) else "fp32"

                def ref(localize: bool) -> float:
                    t0 = time.perf_counter()
                    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=tp == "bf16"):
                        net(x, localize)
                    return time.perf_counter() - t0

                L, LC, R, RC = [], [], [], []
                ran = ""
                libopt = json.loads(a.lib_options)
                lib(cmd="run", size=s, threads=t, precision=p, options=libopt)  # warm-up (and the auto check)
                lib(cmd="run", size=s, threads=t, precision=p, options={**libopt, "localize": False})
                ref(True), ref(False)
                for _ in range(a.repeats):
                    r = lib(cmd="run", size=s, threads=t, precision=p, options=libopt)
                    L.append(r["seconds"])
                    ran = r["precision"]
                    R.append(ref(True))
                    LC.append(lib(cmd="run", size=s, threads=t, precision=p, options={**libopt, "localize": False})["seconds"])
                    RC.append(ref(False))
                m = {k: statistics.median(v) for k, v in (("lib", L), ("libc", LC), ("ref", R), ("refc", RC))}
                row = dict(size=s, threads=t, precision=p, lib_ran=ran, ref_ran=tp, **m,
                           gflop=gf_full, gflop_count=gf_count, ceiling=ceil[(t, "bf16" if tp == "bf16" else "fp32")])
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    lib.close()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    ref_arch = "" if a.reference_architecture == "{}" else f", reference architecture {a.reference_architecture}"
    out = [f"cellcount vs PyTorch {torch.__version__} ({method}, {a.model}, library options {a.lib_options}{ref_arch}, random "
           f"weights in PyTorch), {cpu}, "
           f"native bf16: {bf16}, load average {os.getloadavg()[0]:.1f}, medians of {a.repeats} interleaved runs",
           "",
           "| size | threads | precision (lib / torch ran) | lib ms | torch ms | torch/lib | lib count-only ms | "
           "torch without localizer ms | torch/lib (count) | GFLOP | lib GFLOP/s | torch GFLOP/s | matmul ceiling GFLOP/s |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['size']} | {r['threads']} | {r['precision']} ({r['lib_ran']} / {r['ref_ran']}) | "
                   f"{r['lib'] * 1e3:.0f} | {r['ref'] * 1e3:.0f} | {r['ref'] / r['lib']:.2f} | "
                   f"{r['libc'] * 1e3:.0f} | {r['refc'] * 1e3:.0f} | {r['refc'] / r['libc']:.2f} | "
                   f"{r['gflop']:.1f} | {r['gflop'] / r['lib']:.1f} | {r['gflop'] / r['ref']:.1f} | {r['ceiling']:.0f} |")
    text = "\n".join(out) + "\n"
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
