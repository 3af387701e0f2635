"""Sample data from the checkout's samples/: synthetic fluorescence cells the project generated (not
copied from any public set), with their true cell positions as a Points layer."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ._models import samples_folder

SET = "dcl-vgg"


def _folder() -> Path:
    f = samples_folder()
    if f is None or not (f / SET).is_dir():
        raise FileNotFoundError(f"cellcount sample images not found (looked for samples/{SET} in the cellcount "
                                "checkout); install the plugin from a checkout: pip install -e napari-plugin")
    return f / SET


def _truth(folder: Path) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {}
    with (folder / "points.csv").open() as f:
        for row in csv.DictReader(f):
            out.setdefault(row["image"], []).append((float(row["y"]), float(row["x"])))
    return out


def _images(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


def cells() -> list[tuple]:
    """One 256x256 image (cells_00000) and its true cells."""
    import imageio.v3 as iio

    folder = _folder()
    img = _images(folder)[0]
    pts = np.array(_truth(folder).get(img.name, []), dtype=float).reshape(-1, 2)
    return [(iio.imread(img), {"name": img.stem}, "image"),
            (pts, {"name": f"{img.stem} true cells", "size": 6, "face_color": "lime", "visible": False}, "points")]


def cells_stack() -> list[tuple]:
    """All sample images as one stack (one image per plane) and their true cells per plane."""
    import imageio.v3 as iio

    folder = _folder()
    files = _images(folder)
    truth = _truth(folder)
    stack = np.stack([iio.imread(f) for f in files])
    pts = [(z, y, x) for z, f in enumerate(files) for y, x in truth.get(f.name, [])]
    return [(stack, {"name": "cells stack"}, "image"),
            (np.array(pts, dtype=float).reshape(-1, 3),
             {"name": "cells stack true cells", "size": 6, "face_color": "lime", "visible": False}, "points")]


def exemplar_cells() -> list[tuple]:
    """Two kinds of cells in one image (samples/exemplar-cells, our renderer's kinds), the exemplar boxes
    around three cells of the kind to count as a Shapes layer, and the true cells with their kinds."""
    import imageio.v3 as iio

    f = samples_folder()
    folder = f / "exemplar-cells" if f is not None else None
    if folder is None or not folder.is_dir():
        raise FileNotFoundError("cellcount sample images not found (looked for samples/exemplar-cells in the "
                                "cellcount checkout); install the plugin from a checkout")
    image = "images/test_0000.png"
    with (folder / "boxes.csv").open() as fh:
        boxes = [[float(r[k]) for k in ("x0", "y0", "x1", "y1")] for r in csv.DictReader(fh) if r["image"] == image]
    with (folder / "points.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["image"] == image]
    # a box [x0, x1) x [y0, y1) in pixels is the napari rectangle with those edges (pixel centres at integers)
    rects = [np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]]) for x0, y0, x1, y1 in boxes]
    pts = np.array([[float(r["y"]), float(r["x"])] for r in rows]).reshape(-1, 2)
    return [(iio.imread(folder / image), {"name": "two kinds", "rgb": True}, "image"),
            (rects, {"name": "exemplars", "shape_type": "rectangle", "edge_color": "yellow", "edge_width": 1.5,
                     "face_color": "transparent"}, "shapes"),
            (pts, {"name": "two kinds true cells", "size": 6, "features": {"class": [r.get("class", "") for r in rows]},
                   "face_color": "lime", "visible": False}, "points")]
