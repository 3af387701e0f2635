"""How separable the simulator's white-blood-cell classes are from object-plane features at the true points.

Usage: .venv/bin/python scripts/llp_features.py DATASET [--shift PX] [--kl]
       (DATASET: a dataset of `cellcount synth --method llp`)

It propagates each hologram to the object plane (I = T(x), the wide angular spectrum of llp_transform.cpp, on
the contrast x / mean - 1 that llp's prepare_input makes), takes features at each true cell point, fits a
class-balanced multinomial logistic regression on the train split and prints per-class and average accuracy
on the val split for groups of features. This is how llp's embedding options were chosen: image_scales (the
energy |I|^2 averaged), texture_scales (its local s.d. and mean deviation from the 3 x 3 mean) and field_scales
(I's real and imaginary parts averaged). Analysis only: numpy and scipy, no model is written.

--shift PX moves every point at random by up to PX pixels first (how much a detector's position error costs).
--snap R then moves it to the peak of the 5 x 5 mean energy within R pixels (llp's embed_snap).
--kl also trains a linear classifier from the donors' proportions alone (bag KL-div, bags = donors.csv, one bag
per Adam step, lr 0.01, 30 epochs, as llp's `--loss kl --hidden 0 --scales [] --cls-batch 1`) on all features and
scores it on the val cells: learning from proportions with exact positions.
"""
import argparse
import collections
import csv

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


def kl_from_proportions(root, rows, keys, seed=0, epochs=30, lr=0.01):
    donor = {r["image"]: r["donor"] for r in csv.DictReader(open(f"{root}/donors.csv"))}
    props = collections.defaultdict(dict)
    for r in csv.DictReader(open(f"{root}/proportions.csv")):
        props[r["image"]][r["class"]] = float(r["fraction"])
    bags = collections.defaultdict(lambda: {"X": [], "Y": None})
    for f, _, name in rows["train"]:
        b = bags[donor[name]]
        b["X"].append([f[k] for k in keys])
        b["Y"] = np.array([props[name][c] for c in CLASSES])
    bags = list(bags.values())
    allX = np.concatenate([np.array(b["X"]) for b in bags])
    mu, sd = allX.mean(0), allX.std(0) + 1e-9
    for b in bags:
        b["X"] = (np.array(b["X"]) - mu) / sd
        b["Y"] = b["Y"] / b["Y"].sum()
    K, d = len(CLASSES), allX.shape[1]
    rng = np.random.default_rng(seed)
    W, c = rng.normal(0, 0.01, (d, K)), np.zeros(K)
    m = [np.zeros_like(W), np.zeros_like(c)]
    v = [np.zeros_like(W), np.zeros_like(c)]
    t = 0
    for _ in range(epochs):
        for i in rng.permutation(len(bags)):
            X, Y = bags[i]["X"], bags[i]["Y"]
            Z = X @ W + c
            Z -= Z.max(1, keepdims=True)
            P = np.exp(Z)
            P /= P.sum(1, keepdims=True)
            g = -(Y / np.maximum(P.mean(0), 1e-9))  # d KL(Y || mean P) / d mean P
            G = P * (g[None, :] - (P * g[None, :]).sum(1, keepdims=True)) / len(X)
            t += 1
            for j, (p, grad) in enumerate(((W, X.T @ G), (c, G.sum(0)))):
                m[j] = 0.9 * m[j] + 0.1 * grad
                v[j] = 0.999 * v[j] + 0.001 * grad ** 2
                p -= lr * (m[j] / (1 - 0.9 ** t)) / (np.sqrt(v[j] / (1 - 0.999 ** t)) + 1e-8)
    return val_accuracy(rows, keys, mu, sd, W, c)


def val_accuracy(rows, keys, mu, sd, W, c):
    """Per-class accuracy % on the val cells of the linear classifier (W, c) on features normalised by mu, sd."""
    Xv = (np.array([[f[k] for k in keys] for f, _, _ in rows["val"]]) - mu) / sd
    yv = np.array([y for _, y, _ in rows["val"]])
    pred = (Xv @ W + c).argmax(1)
    return [100 * np.mean(pred[yv == k] == k) for k in range(len(CLASSES))]


def main(root, shift, kl, snap):
    rng = np.random.default_rng(0)
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
            a, r = rng.uniform(0, 2 * np.pi), shift * np.sqrt(rng.uniform())
            cx, cy = cx + r * np.cos(a), cy + r * np.sin(a)
            ix = min(max(int(round(cx - 0.5)), 0), x.shape[1] - 1)
            iy = min(max(int(round(cy - 0.5)), 0), x.shape[0] - 1)
            if snap > 0:
                y0, x0 = max(0, iy - snap), max(0, ix - snap)
                w = maps["energy5"][y0:iy + snap + 1, x0:ix + snap + 1]
                j = np.unravel_index(np.argmax(w), w.shape)
                iy, ix = y0 + j[0], x0 + j[1]
            rows[split[name]].append(({k: v[iy, ix] for k, v in maps.items()}, c, name))

    def accuracy(keys):
        X = np.array([[f[k] for k in keys] for f, _, _ in rows["train"]])
        y = np.array([c for _, c, _ in rows["train"]])
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
        return val_accuracy(rows, keys, mu, sd, w[: d * K].reshape(d, K), w[d * K:])

    keys = list(rows["train"][0][0].keys())
    groups = {
        "energy (image_scales)": ("energy",),
        "+ texture (texture_scales)": ("energy", "sd", "dev"),
        "+ field (field_scales)": ("energy", "re", "im"),
        "energy + texture + field": ("energy", "sd", "dev", "re", "im"),
    }
    print(f"{len(rows['train'])} train cells, {len(rows['val'])} val cells, points moved by up to {shift} px, "
          f"snapped within {snap} px; "
          "val accuracy %, class-balanced linear classifier from per-cell labels")
    for name, prefixes in groups.items():
        ks = [k for k in keys if k.rstrip("0123456789") in prefixes]
        acc = accuracy(ks)
        print(f"{name:28s} d={len(ks):2d}  " + "  ".join(f"{c} {a:.1f}" for c, a in zip(CLASSES, acc)) +
              f"  average {np.mean(acc):.1f}")
    if kl:
        ks = [k for k in keys if k.rstrip("0123456789") in groups["energy + texture + field"]]
        acc = kl_from_proportions(root, rows, ks)
        print(f"{'from proportions (bag KL-div)':28s} d={len(ks):2d}  " +
              "  ".join(f"{c} {a:.1f}" for c, a in zip(CLASSES, acc)) + f"  average {np.mean(acc):.1f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset")
    ap.add_argument("--shift", type=float, default=0.0, help="move each point at random by up to this many pixels")
    ap.add_argument("--snap", type=int, default=0, help="then move it to the 5 x 5 energy peak within this many pixels")
    ap.add_argument("--kl", action="store_true", help="also learn a linear classifier from the donors' proportions")
    a = ap.parse_args()
    main(a.dataset, a.shift, a.kl, a.snap)
