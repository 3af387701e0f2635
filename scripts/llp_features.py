"""How separable the simulator's white-blood-cell classes are from object-plane features at the true points.

Usage: .venv/bin/python scripts/llp_features.py DATASET   (a dataset of `cellcount synth --method llp`)

It propagates each hologram to the object plane (I = T(x), the wide angular spectrum of llp_transform.cpp, on
the contrast x / mean - 1 that llp's prepare_input makes), takes features at each true cell point, fits a
class-balanced multinomial logistic regression on the train split and prints per-class and average accuracy
on the val split for groups of features. This is how llp's embedding options were chosen: image_scales (the
energy |I|^2 averaged), texture_scales (its local s.d. and mean deviation from the 3 x 3 mean) and field_scales
(I's real and imaginary parts averaged). Analysis only: numpy and scipy, no model is written.
"""
import collections
import csv
import sys

import imageio.v3 as iio
import numpy as np
from scipy.ndimage import uniform_filter
from scipy.optimize import minimize

CLASSES = ["granulocyte", "lymphocyte", "monocyte"]
PIXEL_UM, WAVELENGTH_UM, Z_UM = 1.837, 0.340, 1650.0


def transfer(h, w):
    fy = np.fft.fftfreq(h, PIXEL_UM)[:, None]
    fx = np.fft.fftfreq(w, PIXEL_UM)[None, :]
    a = 1 - (WAVELENGTH_UM * fx) ** 2 - (WAVELENGTH_UM * fy) ** 2
    return np.exp(1j * np.where(a >= 0, 2 * np.pi * Z_UM / WAVELENGTH_UM * np.sqrt(np.clip(a, 0, None)), 0))


def feature_maps(x):
    I = np.fft.ifft2(np.fft.fft2(x) * transfer(*x.shape))
    E = np.abs(I) ** 2
    mean = lambda m, s: uniform_filter(m, s, mode="nearest")
    maps = {}
    for s in [1, 3, 5, 7, 9, 11]:
        maps[f"energy{s}"] = mean(E, s)
        maps[f"re{s}"] = mean(I.real, s)
        maps[f"im{s}"] = mean(I.imag, s)
        if s > 1:
            maps[f"sd{s}"] = np.sqrt(np.maximum(mean(E * E, s) - maps[f"energy{s}"] ** 2, 0))
            maps[f"dev{s}"] = mean(np.abs(E - mean(E, 3)), s)
    return maps


def main(root):
    split = {r["image"]: r["split"] for r in csv.DictReader(open(f"{root}/split.csv"))}
    points = collections.defaultdict(list)
    for r in csv.DictReader(open(f"{root}/points.csv")):
        points[r["image"]].append((float(r["x"]), float(r["y"]), CLASSES.index(r["class"])))
    rows = {"train": [], "val": []}
    for name, pts in points.items():
        if split[name] not in rows:
            continue
        x = iio.imread(f"{root}/{name}").astype(np.float64)
        maps = feature_maps(x / x.mean() - 1)
        for cx, cy, c in pts:
            ix = min(max(int(round(cx - 0.5)), 0), x.shape[1] - 1)
            iy = min(max(int(round(cy - 0.5)), 0), x.shape[0] - 1)
            rows[split[name]].append(({k: v[iy, ix] for k, v in maps.items()}, c))

    def accuracy(keys):
        X = np.array([[f[k] for k in keys] for f, _ in rows["train"]])
        y = np.array([c for _, c in rows["train"]])
        mu, sd = X.mean(0), X.std(0) + 1e-9
        X = (X - mu) / sd
        n, d, K = X.shape[0], X.shape[1], len(CLASSES)
        weight = (n / (K * np.bincount(y, minlength=K)))[y]  # class-balanced: the metric is the class average
        Y = np.eye(K)[y]

        def loss(w):
            W, b = w[: d * K].reshape(d, K), w[d * K:]
            Z = X @ W + b
            Z -= Z.max(1, keepdims=True)
            P = np.exp(Z)
            P /= P.sum(1, keepdims=True)
            G = (P - Y) * weight[:, None] / n
            value = -(weight * np.log(P[np.arange(n), y] + 1e-12)).sum() / n + 1e-3 * (W ** 2).sum()
            return value, np.concatenate([(X.T @ G + 2e-3 * W).ravel(), G.sum(0)])

        w = minimize(loss, np.zeros(d * K + K), jac=True, method="L-BFGS-B", options={"maxiter": 2000}).x
        Xv = (np.array([[f[k] for k in keys] for f, _ in rows["val"]]) - mu) / sd
        yv = np.array([c for _, c in rows["val"]])
        pred = (Xv @ w[: d * K].reshape(d, K) + w[d * K:]).argmax(1)
        return [100 * np.mean(pred[yv == k] == k) for k in range(K)]

    keys = list(rows["train"][0][0].keys())
    groups = {
        "energy (image_scales)": ("energy",),
        "+ texture (texture_scales)": ("energy", "sd", "dev"),
        "+ field (field_scales)": ("energy", "re", "im"),
        "energy + texture + field": ("energy", "sd", "dev", "re", "im"),
    }
    print(f"{len(rows['train'])} train cells, {len(rows['val'])} val cells; val accuracy %")
    for name, prefixes in groups.items():
        ks = [k for k in keys if k.rstrip("0123456789") in prefixes]
        acc = accuracy(ks)
        print(f"{name:28s} d={len(ks):2d}  " + "  ".join(f"{c} {a:.1f}" for c, a in zip(CLASSES, acc)) +
              f"  average {np.mean(acc):.1f}")


if __name__ == "__main__":
    main(sys.argv[1])
