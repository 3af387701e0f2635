"""Layers in, library inputs out (and back): planes of an image layer, exemplar boxes from a Shapes layer,
a region mask from a Labels or Shapes layer, points and density back as layer data. Coordinates go
through napari's world space, so each layer's scale and translate (and, for shapes, any affine) are
respected. No numerics here: the library does the counting.

Conventions: napari data coordinates are (..., row, column) with pixel centres at integers; the library
takes x = column, y = row, pixel centres at integers, boxes half-open [x0, x1) x [y0, y1). A rectangle
drawn over pixels 0..9 spans -0.5..9.5 in napari and selects the same pixels as the box [-0.5, 9.5).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


class InputError(ValueError):
    """Bad input the user can fix; the message says what to do."""


# ------------------------------------------------------------------ image planes


@dataclass
class ImageSpec:
    """What the counting job needs from an image layer, captured on the main thread."""
    name: str
    data: Any                      # array-like (numpy, dask, zarr); read plane by plane in the worker
    lead_shape: tuple[int, ...]    # the axes in front of (rows, columns) — planes of a stack
    plane_shape: tuple[int, int]   # (rows, columns)
    channels: int                  # 3 or 4 for an RGB(A) layer, else 1
    ndim: int                      # layer.ndim: lead axes + 2 (the RGB axis is not a layer dimension)
    transform: dict = field(default_factory=dict)  # scale, translate, rotate, shear, affine of the layer
    path: str = ""                 # the file the layer was read from ("" when made in the session)
    pixel: tuple[float, float] = (1.0, 1.0)  # (height, width) of a pixel: the layer's scale of rows, columns
    unit: str = "pixel"            # the layer's unit of rows/columns (napari layer.units), "pixel" when none

    def plane(self, idx: tuple[int, ...]) -> np.ndarray:
        return np.asarray(self.data[idx] if idx else self.data)

    def all_planes(self) -> list[tuple[int, ...]]:
        return [tuple(int(i) for i in ix) for ix in np.ndindex(*self.lead_shape)] if self.lead_shape else [()]


def layer_transform(layer: Any) -> dict:
    return {"scale": np.array(layer.scale), "translate": np.array(layer.translate),
            "rotate": np.array(layer.rotate), "shear": np.array(layer.shear), "affine": layer.affine.affine_matrix.copy()}


def image_spec(layer: Any) -> ImageSpec:
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    shape = tuple(int(s) for s in data.shape)
    channels = shape[-1] if layer.rgb else 1
    spatial = shape[:-1] if layer.rgb else shape
    if len(spatial) < 2:
        raise InputError(f"image layer '{layer.name}' is {len(spatial)}-D; a 2-D image or a stack of them is needed")
    source = getattr(getattr(layer, "source", None), "path", None)
    units = getattr(layer, "units", None)
    unit = str(units[-1]) if units is not None and len(units) else "pixel"
    scale = [float(v) for v in layer.scale[-2:]]
    return ImageSpec(name=layer.name, data=data, lead_shape=spatial[:-2], plane_shape=spatial[-2:],
                     channels=channels, ndim=len(spatial), transform=layer_transform(layer),
                     path=str(source) if source else "", pixel=(scale[0], scale[1]), unit=unit)


def calibrated(spec: ImageSpec) -> bool:
    """The layer says how big a pixel is: a unit other than pixels, or a scale other than 1."""
    return spec.unit != "pixel" or spec.pixel != (1.0, 1.0)


def current_plane(layer: Any, viewer: Any) -> tuple[int, ...]:
    """Indices of the plane of `layer` shown at the viewer's current position."""
    spec = image_spec(layer)
    if not spec.lead_shape:
        return ()
    pos = np.asarray(layer.world_to_data(viewer.dims.point), dtype=float)
    lead = pos[: len(spec.lead_shape)]
    return tuple(int(np.clip(np.round(v), 0, n - 1)) for v, n in zip(lead, spec.lead_shape))


def plane_label(idx: tuple[int, ...]) -> str:
    return ",".join(str(i) for i in idx) if idx else ""


# ------------------------------------------------------------------ shapes -> image coordinates


def _shape_in_image(shapes: Any, i: int, image: Any) -> np.ndarray:
    """Vertices of shape i of a Shapes layer in the data coordinates of an image layer, (n, image.ndim)."""
    verts = np.asarray(shapes.data[i], dtype=float)
    return np.array([np.asarray(image.world_to_data(shapes.data_to_world(v)), dtype=float) for v in verts])


def _plane_of(verts: np.ndarray, n_lead: int, lead_shape: tuple[int, ...], shapes_ndim: int,
              what: str) -> tuple[int, ...] | None:
    """The plane a shape lies on, or None when the Shapes layer is 2-D (its shapes apply to every plane)."""
    if n_lead == 0 or shapes_ndim < 2 + n_lead:
        return None
    lead = np.round(verts[:, :n_lead]).astype(int)
    if (lead != lead[0]).any():
        raise InputError(f"{what} spans several planes; draw it on one plane")
    idx = tuple(int(v) for v in lead[0])
    if any(v < 0 or v >= n for v, n in zip(idx, lead_shape)):
        return (-1,)  # on no plane of the image
    return idx


AREA_SHAPES = ("rectangle", "ellipse", "polygon")


def shapes_to_boxes(shapes: Any, image: Any) -> dict[tuple[int, ...] | None, list[list[float]]]:
    """Exemplar boxes (x0, y0, x1, y1 in image pixels) from every shape of a Shapes layer: the bounding box
    of each rectangle, ellipse or polygon, after the layers' transforms. Keys are planes; None = every
    plane (a 2-D Shapes layer over a stack). Raises InputError for an empty layer or a line/path."""
    if len(shapes.data) == 0:
        raise InputError(f"Shapes layer '{shapes.name}' is empty: draw rectangles around a few cells of the "
                         "kind to count")
    spec = image_spec(image)
    n_lead = len(spec.lead_shape)
    out: dict[tuple[int, ...] | None, list[list[float]]] = {}
    for i, kind in enumerate(shapes.shape_type):
        what = f"shape {i + 1} ({kind}) of '{shapes.name}'"
        if kind not in AREA_SHAPES:
            raise InputError(f"{what} has no area; exemplars are rectangles (or ellipses/polygons)")
        v = _shape_in_image(shapes, i, image)
        plane = _plane_of(v, n_lead, spec.lead_shape, shapes.ndim, what)
        if plane == (-1,):
            continue
        rows, cols = v[:, -2], v[:, -1]
        out.setdefault(plane, []).append([float(cols.min()), float(rows.min()), float(cols.max()), float(rows.max())])
    if not out:
        raise InputError(f"no shape of '{shapes.name}' lies on a plane of '{image.name}'")
    return out


def boxes_for(boxes: dict[tuple[int, ...] | None, list[list[float]]] | None, idx: tuple[int, ...]) -> list | None:
    if boxes is None:
        return None
    return boxes.get(None, []) + boxes.get(idx, [])


# ------------------------------------------------------------------ regions


def _simple(t: dict) -> bool:
    n = len(t["scale"])
    return (np.allclose(t["rotate"], np.eye(n)) and np.allclose(t["shear"], 0)
            and np.allclose(t["affine"], np.eye(n + 1)))


def _index_map(n_img: int, s_img: float, t_img: float, s_lab: float, t_lab: float) -> np.ndarray:
    """For each pixel index of the image along one axis, the nearest pixel index of the other layer."""
    world = np.arange(n_img) * s_img + t_img
    return np.round((world - t_lab) / s_lab).astype(np.int64)


def labels_region(labels: Any, image: Any, planes: list[tuple[int, ...]]) -> dict[tuple[int, ...], np.ndarray]:
    """Masks (non-zero label = count here) sampled onto the image's pixel grid, per plane. A 2-D Labels
    layer applies to every plane of a stack; one with the image's dimensions is taken plane by plane."""
    spec = image_spec(image)
    lt, it = layer_transform(labels), spec.transform
    if not (_simple(lt) and _simple(it)):
        raise InputError(f"region layer '{labels.name}' or image '{image.name}' is rotated, sheared or has an "
                         "affine; only scale and translate are supported for a Labels region")
    data = labels.data[0] if getattr(labels, "multiscale", False) else labels.data
    if labels.ndim not in (2, spec.ndim):
        raise InputError(f"Labels layer '{labels.name}' is {labels.ndim}-D; expected 2-D or {spec.ndim}-D like "
                         f"'{image.name}'")
    if not np.asarray(data).any():
        raise InputError(f"Labels layer '{labels.name}' is empty: paint the region to count in, or choose "
                         "'(whole image)'")
    H, W = spec.plane_shape
    ry = _index_map(H, it["scale"][-2], it["translate"][-2], lt["scale"][-2], lt["translate"][-2])
    rx = _index_map(W, it["scale"][-1], it["translate"][-1], lt["scale"][-1], lt["translate"][-1])
    lab_shape = data.shape
    vy = (ry >= 0) & (ry < lab_shape[-2])
    vx = (rx >= 0) & (rx < lab_shape[-1])
    out = {}
    for idx in planes:
        if labels.ndim == 2:
            src = np.asarray(data)
        else:
            lead = [int(np.round((i * it["scale"][a] + it["translate"][a] - lt["translate"][a]) / lt["scale"][a]))
                    for a, i in enumerate(idx)]
            if any(v < 0 or v >= n for v, n in zip(lead, lab_shape[:-2])):
                out[idx] = np.zeros((H, W), np.uint8)
                continue
            src = np.asarray(data[tuple(lead)])
        m = np.zeros((H, W), np.uint8)
        sub = src[np.clip(ry, 0, lab_shape[-2] - 1)][:, np.clip(rx, 0, lab_shape[-1] - 1)] != 0
        m[:] = sub & vy[:, None] & vx[None, :]
        out[idx] = m
    return out


def shapes_region(shapes: Any, image: Any, planes: list[tuple[int, ...]]) -> dict[tuple[int, ...], np.ndarray]:
    """Masks from the rectangles, ellipses and polygons of a Shapes layer, rasterised on the image's grid
    (shapes of a 2-D Shapes layer apply to every plane)."""
    from napari.layers import Shapes

    if len(shapes.data) == 0:
        raise InputError(f"Shapes layer '{shapes.name}' is empty: draw the region to count in, or choose "
                         "'(whole image)'")
    spec = image_spec(image)
    n_lead = len(spec.lead_shape)
    per_plane: dict[tuple[int, ...] | None, list[tuple[np.ndarray, str]]] = {}
    for i, kind in enumerate(shapes.shape_type):
        what = f"shape {i + 1} ({kind}) of '{shapes.name}'"
        if kind not in AREA_SHAPES:
            raise InputError(f"{what} has no area; a region is made of rectangles, ellipses or polygons")
        v = _shape_in_image(shapes, i, image)
        plane = _plane_of(v, n_lead, spec.lead_shape, shapes.ndim, what)
        per_plane.setdefault(plane, []).append((v[:, -2:], kind))
    out = {}
    for idx in planes:
        items = per_plane.get(None, []) + per_plane.get(idx, [])
        if not items:
            out[idx] = np.zeros(spec.plane_shape, np.uint8)
            continue
        tmp = Shapes([v for v, _ in items], shape_type=[k for _, k in items])
        out[idx] = tmp.to_masks(mask_shape=spec.plane_shape).any(axis=0).astype(np.uint8)
    return out


# ------------------------------------------------------------------ results -> layer data


def point_size(info: dict) -> float:
    """Marker diameter in image pixels from the model's description: the cell size the model was evaluated
    at (eval_radius), else its peak spacing; napari's default otherwise."""
    if "point_size" in info:
        return float(info["point_size"])
    if "eval_radius" in info:
        return 2.0 * float(info["eval_radius"])
    d = info.get("thresholds", {}).get("peak_min_distance")
    return 2.0 * float(d) if d else 10.0


PALETTE = ["#ff3b30", "#34c759", "#0a84ff", "#ffcc00", "#af52de", "#ff9500", "#5ac8fa", "#ff2d55"]


def class_colours(classes: list[str]) -> dict[str, str]:
    return {c: PALETTE[k % len(PALETTE)] for k, c in enumerate(classes)}


def points_data(results: list[tuple[tuple[int, ...], Any]], classes: list[str]) -> tuple[np.ndarray, dict]:
    """(N, n_lead + 2) coordinates (plane..., row, col) and features (class, score, class_id, plane, and the
    library's intensity (mean of the image in a small disc) and label (component of the label image, 0 = none))."""
    n_lead = len(results[0][0]) if results else 0
    coords, cls, score, cid, plane, inten, label = [], [], [], [], [], [], []
    for idx, r in results:
        n = r.n_points
        # the library's per-point measurements (cellcount_result_measure), in the points' order
        pm = r.measurements.get("points", []) if getattr(r, "measurements", None) else []
        inten += [float("nan") if k >= len(pm) or pm[k]["intensity"] is None else float(pm[k]["intensity"])
                  for k in range(n)]
        label += [int(pm[k]["label"]) if k < len(pm) else 0 for k in range(n)]
        if n:
            coords.append(np.hstack([np.tile(np.array(idx, float), (n, 1)), r.yx.astype(float)]))
        ids = r.class_ids.astype(int)
        cid += ids.tolist()
        cls += [classes[k] if 0 <= k < len(classes) else str(k) for k in ids]
        score += r.scores.astype(float).tolist()
        plane += [plane_label(idx)] * n
    data = np.vstack(coords) if coords else np.zeros((0, n_lead + 2))
    import pandas as pd

    cats = list(dict.fromkeys(list(classes) + cls))
    features = pd.DataFrame({"class": pd.Categorical(cls, categories=cats), "score": np.array(score, np.float32),
                             "class_id": np.array(cid, np.int32), "plane": plane,
                             "intensity": np.array(inten, np.float64), "label": np.array(label, np.int32)})
    return data, features
