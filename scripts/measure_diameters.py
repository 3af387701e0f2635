#!/usr/bin/env python3
"""Typical cell diameter (pixels) of each real kind of a recipe, on its train split at the recipe's tile scale.

Two measures, printed for every kind; datasets/recipes/dcl-general.json states which one it uses and why:
- blob: 2*sqrt(2)*sigma at the peak of the 99th percentile of the scale-normalised Laplacian of Gaussian
  (bright blobs or dark blobs, whichever responds more), the median over images;
- nn: the median distance from each annotated centre to its nearest neighbour (for packed cells, such as
  adipocytes, about one diameter; for sparse cells an upper bound).
Usage: python scripts/measure_diameters.py datasets/recipes/dcl-general.json [images per kind]
"""
import csv, collections, json, sys
from pathlib import Path
import numpy as np, imageio.v3 as iio, scipy.ndimage as nd
from scipy.spatial import cKDTree

def grey(path):
    a = iio.imread(path).astype(np.float32)
    if a.ndim == 3:
        a = a[..., :3].mean(2)
    lo, hi = np.percentile(a, [1, 99.8])
    return np.clip((a - lo) / max(hi - lo, 1e-6), 0, 1)

def blob(g, sigmas=np.geomspace(1.5, 24, 25)):
    r = np.stack([-s * s * nd.gaussian_laplace(g, s) for s in sigmas])
    eb, ed = np.percentile(r, 99, axis=(1, 2)), np.percentile(-r, 99, axis=(1, 2))
    e = eb if eb.max() >= ed.max() else ed
    return sigmas[e.argmax()] * 2 * np.sqrt(2)

def main():
    recipe_path = Path(sys.argv[1])
    n_max = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    recipe = json.loads(recipe_path.read_text())
    root = recipe_path.resolve().parents[2]
    size = recipe.get("size", 256)
    for k in recipe["kinds"]:
        if "dataset" not in k:
            continue
        ds = Path(k["dataset"]) if Path(k["dataset"]).exists() else root / k["dataset"]
        split = {r["image"]: r["split"] for r in csv.DictReader(open(root / k["split_file"]))}
        pts = collections.defaultdict(list)
        for r in csv.DictReader(open(ds / "points.csv")):
            pts[r["image"]].append((float(r["x"]), float(r["y"])))
        images = [i for i in sorted(pts) if split.get(i) == "train"][:n_max]
        grid = k.get("grid", 1)
        b, nn = [], []
        for i in images:
            g = grey(ds / i)
            scale = size / (max(g.shape) / grid)  # the recipe's tile scale
            b.append(blob(g) * scale)
            p = np.array(pts[i])
            if len(p) > 1:
                nn.append(np.median(cKDTree(p).query(p, 2)[0][:, 1]) * scale)
        print(f"{k['name']}: images {len(images)}, tile scale x{scale:.3f}, blob {np.median(b):.1f} px, "
              f"nn {np.median(nn):.1f} px")

if __name__ == "__main__":
    main()
