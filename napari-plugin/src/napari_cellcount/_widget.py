"""One counting widget, generic over the library's methods: what a method needs (exemplars or not), its
name and description come from cellcount_library_info, and a model's classes, marker size and device
from cellcount_model_info. The same class serves every method; the napari.yaml entries only bind a method
id. The prediction options are forms built from the library's field metadata: the generic params from
cellcount_request_options("", "predict") (sent when changed from the default), the method's own options
(e.g. exemplar's mask_threshold) from cellcount_request_options(method, "predict") (sent once touched)."""
from __future__ import annotations

import csv
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image, Labels, Points, Shapes
from napari.utils.notifications import show_info, show_warning
from qtpy.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                            QPushButton, QVBoxLayout, QWidget)

import cellcount

from . import _models
from ._form import OptionsForm
from ._jobs import JobWidget, Report
from ._layers import (ImageSpec, InputError, boxes_for, class_colours, current_plane, image_spec,
                      labels_region, plane_label, point_size, points_data, shapes_region, shapes_to_boxes)
from ._table import table_for

NONE_ITEM = "(none)"
WHOLE_IMAGE = "(whole image)"
CURRENT_PLANE, EVERY_PLANE = "current plane", "every plane"
MAX_RESULT_IMAGE_BYTES = 1 << 30       # density/mask layers of bigger stacks are not made


_open_widgets: "weakref.WeakSet[CountWidget]" = weakref.WeakSet()


def open_count_widgets() -> list["CountWidget"]:
    return list(_open_widgets)


def library_methods() -> tuple[list[dict], str | None]:
    """(methods with fixtures, error text) — the error when the library cannot be loaded."""
    try:
        return cellcount.methods(include_fixtures=True), None
    except OSError as e:  # LibraryNotFoundError, AbiMismatchError
        return [], str(e)


def fill_layer_combo(combo: QComboBox, viewer: Any, types: tuple, first: list[str], *, prefer_last: bool = False,
                     include: Any = None, select: Any = None) -> None:
    """Refills a layer chooser with `first` then the viewer's layers of `types` (and `include(layer)`). Each
    item holds its layer's id, so a renamed layer stays chosen under its new name. The choice is `select` when
    it is one of the listed layers (a layer just added), else the layer chosen before, else the text chosen
    before; when that is gone (or was one of `first` and prefer_last), prefer_last takes the newest layer.
    No change signals."""
    keep_text, keep_id = combo.currentText(), combo.currentData()
    layers = [l for l in viewer.layers if isinstance(l, types) and (include is None or include(l))]
    combo.blockSignals(True)
    combo.clear()
    for name in first:
        combo.addItem(name, None)
    for layer in layers:
        combo.addItem(layer.name, id(layer))
    ids = [id(l) for l in layers]
    if select is not None and id(select) in ids:
        combo.setCurrentIndex(len(first) + ids.index(id(select)))
    elif keep_id is not None and keep_id in ids:
        combo.setCurrentIndex(len(first) + ids.index(keep_id))
    elif keep_text and combo.findText(keep_text) >= 0 and not (prefer_last and keep_text in first and layers):
        combo.setCurrentIndex(combo.findText(keep_text))
    elif prefer_last and layers:
        combo.setCurrentIndex(combo.count() - 1)
    combo.blockSignals(False)


def find_layer(viewer: Any, name: str, types: tuple) -> Any:
    """The viewer's layer of that name if it is one of `types`, else None."""
    if name in viewer.layers and isinstance(viewer.layers[name], types):
        return viewer.layers[name]
    return None


@dataclass
class Plan:
    """Everything a counting job needs, captured on the main thread."""
    model_path: Path
    image: ImageSpec
    planes: list[tuple[int, ...]]
    boxes: dict | None
    needs_exemplars: bool
    regions: dict | None
    region_name: str
    params: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)  # the method's own prediction options that differ from default


class CountWidget(JobWidget):
    """Count cells with one method. `finished` carries the job's outcome: a dict (model info, results per
    plane, layer names) on success, or the exception after a failure or cancel (already notified)."""

    idle_text = "Count"
    busy_text = "counting…"

    def __init__(self, napari_viewer: Any, method: str, parent: QWidget | None = None):
        methods, lib_error = library_methods()
        info = next((m for m in methods if m["id"] == method), None)
        super().__init__(napari_viewer, info["display_name"] if info else method, parent)
        self.method = method
        self.method_info = info
        self.needs_exemplars = bool(self.method_info and self.method_info.get("needs_exemplars"))

        lay = QVBoxLayout(self)
        head = QLabel(f"<b>{self.title}</b>")
        head.setWordWrap(True)
        lay.addWidget(head)
        if self.method_info is None:
            have = ", ".join(m["id"] for m in methods if not m.get("fixture")) or "none"
            msg = lib_error or f"Method '{method}' is not in this build of libcellcount (it has: {have})."
            note = QLabel(msg)
            note.setWordWrap(True)
            lay.addWidget(note)
            lay.addStretch(1)
            return
        desc = QLabel(self.method_info.get("description", ""))
        desc.setWordWrap(True)
        desc.setStyleSheet("color: gray")
        lay.addWidget(desc)

        form = QFormLayout()
        self.model_combo = QComboBox()
        self.model_combo.setToolTip("Model folders for this method: the checkout's models/, $CELLCOUNT_MODELS, "
                                    "and models opened or trained in this session")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_model)
        row = QHBoxLayout()
        row.addWidget(self.model_combo, 1)
        row.addWidget(browse)
        form.addRow("Model", row)
        self.image_combo = QComboBox()
        form.addRow("Image", self.image_combo)
        self.exemplar_combo = QComboBox()
        self.exemplar_combo.setToolTip("A Shapes layer with rectangles around a few cells of the kind to count")
        if self.needs_exemplars:
            form.addRow("Exemplars", self.exemplar_combo)
        self.region_combo = QComboBox()
        self.region_combo.setToolTip("Count only inside this Labels (non-zero) or Shapes layer")
        form.addRow("Region", self.region_combo)
        self.planes_combo = QComboBox()
        self.planes_combo.addItems([CURRENT_PLANE, EVERY_PLANE])
        form.addRow("Planes", self.planes_combo)
        lay.addLayout(form)

        # the generic prediction params, as the library declares them (cellcount_request_options("", "predict"):
        # precision's choices, tile ranges, thresholds where empty = the model's tuned value); the device is a
        # list of the devices this library sees instead of free text
        opts = QGroupBox("Options")
        ol = QVBoxLayout(opts)
        of = QFormLayout()
        ol.addLayout(of)
        self.device_combo = QComboBox()
        devices = ["auto", "cpu"] + [f"cuda:{i}" for i in
                                     range(int(cellcount.library_info()["devices"].get("cuda_devices", 0)))]
        self.device_combo.addItems(devices)
        self.device_combo.setCurrentText(cellcount.predict_defaults()["device"])
        of.addRow("device", self.device_combo)
        self.options = OptionsForm(cellcount.request_options("", "predict"), skip=("device",))
        ol.addWidget(self.options)
        f = self.options.fields
        # the editors by their old names (tests, scripts)
        self.precision_combo = f["precision"].editor
        self.tile_spin = f["tile_size"].editor
        self.threshold_edit = f["peak_threshold"].editor
        self.distance_edit = f["peak_min_distance"].editor
        self.density_check = f["want_density"].editor
        lay.addWidget(opts)

        # the method's own prediction options, as the library declares them (none: no group)
        self.method_options = OptionsForm(cellcount.request_options(method, "predict"), send="touched")
        if self.method_options.fields:
            box = QGroupBox(f"{self.method_info['display_name']} options")
            QVBoxLayout(box).addWidget(self.method_options)
            box.setToolTip("Until you change one, each option takes the model's own (tuned) value")
            lay.addWidget(box)

        self.save_check = QCheckBox("Save CSV and points next to the image")
        self.save_check.setToolTip("After each count, <image>_cellcount.csv (this image's rows of the table) and "
                                   "<image>_cellcount_points.csv (plane, y, x, class, score) beside the image file")
        lay.addWidget(self.save_check)

        self.run_button = QPushButton(self.idle_text)
        self.run_button.clicked.connect(self.run)
        lay.addWidget(self.run_button)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        lay.addStretch(1)

        _open_widgets.add(self)
        self.model_combo.currentIndexChanged.connect(self._show_tuned)
        self.refresh_models()
        self._show_tuned()
        self._refresh_layers()
        ev = self.viewer.layers.events
        ev.inserted.connect(self._on_inserted)
        ev.removed.connect(self._refresh_layers)
        ev.moved.connect(self._refresh_layers)
        for layer in self.viewer.layers:
            layer.events.name.connect(self._refresh_layers)
        self.viewer.layers.selection.events.active.connect(self._on_active)

    # ---------------------------------------------------------------- models and layers
    def refresh_models(self) -> None:
        current = self.model_combo.currentData()
        self.model_combo.clear()
        for p in _models.find_models(self.method):
            self.model_combo.addItem(p.name, str(p))
            self.model_combo.setItemData(self.model_combo.count() - 1, str(p), 3)  # tooltip: full path
        if current is not None:
            self.set_model(current, remember=False)

    def set_model(self, path: str | Path, remember: bool = True) -> None:
        """Selects a model folder (added to the list if it is not there)."""
        p = str(Path(path).resolve())
        if remember:
            _models.remember(p)
        i = self.model_combo.findData(p)
        if i < 0:
            self.model_combo.addItem(Path(p).name, p)
            i = self.model_combo.count() - 1
        self.model_combo.setCurrentIndex(i)

    def _show_tuned(self, *_: Any) -> None:
        """Shows the chosen model's tuned value in each empty field that takes it when left empty (issue 21:
        "(not set: the model's value)" did not say which value)."""
        model = self.model_combo.currentData()
        tuned = _models.tuned_values(model) if model else {}
        for name, f in self.options.fields.items():
            if f.nullable and hasattr(f.editor, "setPlaceholderText"):
                v = tuned.get(name)
                f.editor.setPlaceholderText("(not set: the model's value)" if v is None else
                                            f"(not set: the model's tuned value, {v:.6g})")

    def _browse_model(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Model folder (model.json + weights.pt)")
        if d:
            self.set_model(d)

    def _on_inserted(self, event: Any) -> None:
        event.value.events.name.connect(self._refresh_layers)
        self._refresh_layers(added=event.value)

    def _on_active(self, event: Any = None) -> None:
        layer = self.viewer.layers.selection.active
        if isinstance(layer, Image) and not _is_result(layer):
            self.image_combo.setCurrentText(layer.name)

    def _refresh_layers(self, event: Any = None, added: Any = None) -> None:
        def fill(combo: QComboBox, types: tuple, first: list[str], prefer_last: bool = False,
                 select: Any = None) -> None:
            fill_layer_combo(combo, self.viewer, types, first, prefer_last=prefer_last, include=_not_result,
                             select=select)

        fill(self.image_combo, (Image,), [])
        # Exemplars follow the layers (issue 21): a Shapes layer added after the widget opened is taken at once
        # (the newest is where the boxes are being drawn), a renamed one stays chosen, a removed one gives way
        # to the newest left; "(none)" only while there is no Shapes layer.
        fill(self.exemplar_combo, (Shapes,), [NONE_ITEM], prefer_last=True, select=added)
        fill(self.region_combo, (Labels, Shapes), [WHOLE_IMAGE])

    def _layer(self, name: str, types: tuple) -> Any:
        return find_layer(self.viewer, name, types)

    # ---------------------------------------------------------------- running
    def _job(self) -> tuple:
        plan = self.plan()
        return (f"{self.title} on '{plan.image.name}'", lambda report: self._work(plan, report),
                lambda value: self._show(plan, value))

    def plan(self) -> Plan:
        model = self.model_combo.currentData()
        if not model:
            raise InputError(f"no model chosen: none for method '{self.method}' was found in "
                             f"{', '.join(str(p) for p in _models.model_folders()) or 'models/'}; use Browse…")
        image = self._layer(self.image_combo.currentText(), (Image,))
        if image is None:
            raise InputError("no image layer: open an image first")
        spec = image_spec(image)
        if spec.lead_shape and self.planes_combo.currentText() == EVERY_PLANE:
            planes = spec.all_planes()
        else:
            planes = [current_plane(image, self.viewer)]
        boxes = None
        if self.needs_exemplars:
            shapes = self._layer(self.exemplar_combo.currentText(), (Shapes,))
            boxes = shapes_to_boxes(shapes, image) if shapes is not None else {}
        regions, region_name = None, ""
        region = self._layer(self.region_combo.currentText(), (Labels, Shapes))
        if region is not None:
            region_name = region.name
            regions = (labels_region if isinstance(region, Labels) else shapes_region)(region, image, planes)
        # fields left at the library's default are not sent (None and absent = the library's default)
        params = {"device": self.device_combo.currentText(), **self.options.changed()}
        return Plan(Path(model), spec, planes, boxes, self.needs_exemplars, regions, region_name, params,
                    self.method_options.changed())

    def _work(self, plan: Plan, report: Report) -> dict:
        """On the worker thread: load the model (cached) and count plane by plane."""
        model = _models.load(plan.model_path)
        if model.method != self.method:
            raise InputError(f"'{plan.model_path.name}' is a model of method '{model.method}' "
                             f"({model.display_name}); this widget counts with '{self.method}'")
        results = []
        n = len(plan.planes)
        for k, idx in enumerate(plan.planes):
            where = f"plane {plane_label(idx)}: " if idx else ""

            def progress(f: float, stage: str, k: int = k, where: str = where) -> bool:
                return report((k + f) / n, f"{where}{stage}")

            try:
                r = model.predict(plan.image.plane(idx),
                                  exemplars=(boxes_for(plan.boxes, idx) or []) if plan.needs_exemplars else None,
                                  region=plan.regions[idx] if plan.regions is not None else None,
                                  progress=progress, options=plan.options or None,
                                  calibration={"pixel_width": float(plan.image.pixel[1]),
                                               "pixel_height": float(plan.image.pixel[0]), "unit": plan.image.unit},
                                  warn=False, **plan.params)  # r.warnings are notified by _show
            except cellcount.CellCountError as e:
                if where and not isinstance(e, cellcount.Cancelled):
                    raise type(e)(e.status, f"{where}{e.message}") from e
                raise
            results.append((idx, r))
        return {"info": model.info, "results": results}

    # ---------------------------------------------------------------- results into layers
    def _show(self, plan: Plan, value: dict) -> None:
        info, results = value["info"], value["results"]
        classes = list(info.get("classes") or ["cell"])
        spec = plan.image
        base = f"{spec.name} {self.method}"
        tf = {k: spec.transform[k] for k in ("scale", "translate", "rotate", "shear")}
        tf["affine"] = spec.transform["affine"]

        # points: replace the planes just counted, keep the others
        data, features = points_data(results, classes)
        name = f"{base} points"
        old = self._own_layer(name, Points, spec.ndim)
        if old is not None and spec.lead_shape:
            keep = ~old.features["plane"].isin([plane_label(i) for i in plan.planes]).to_numpy()
            import pandas as pd

            data = np.vstack([np.asarray(old.data)[keep], data])
            features = pd.concat([old.features[keep].reset_index(drop=True), features], ignore_index=True)
            features["class"] = pd.Categorical(features["class"].astype(str),
                                               categories=list(dict.fromkeys(classes + list(features["class"].astype(str)))))
        colours = class_colours(list(features["class"].cat.categories))
        size = point_size(info)
        # out-of-domain warnings (issue 24) by plane label ("" for a 2-D image), those of planes not counted now kept
        warned = {**(old.metadata["cellcount"].get("warnings", {}) if old is not None and spec.lead_shape else {}),
                  **{plane_label(idx): r.warnings for idx, r in results}}
        if old is not None:
            self.viewer.layers.remove(old)
        # rings coloured by class, so the cells under them stay visible
        pts = Points(data, ndim=spec.ndim, features=features, border_color="class", border_color_cycle=colours,
                     face_color="transparent", size=size, border_width=0.18, name=name,
                     metadata={"cellcount": {"model": info.get("path", str(plan.model_path)), "method": self.method,
                                             "warnings": warned}},
                     **tf)
        self.viewer.add_layer(pts)

        # density (and mask / reconstruction when the method gives them), same grid and transform as the image
        self._result_image(plan, results, "density", f"{base} density", tf,
                           dict(colormap="inferno", blending="additive", opacity=0.7))
        self._result_image(plan, results, "mask", f"{base} mask", tf,
                           dict(colormap="gray", blending="additive", opacity=0.3, visible=False))

        # labels where the method gives a mask (exemplar: its mask's connected components; the library's)
        self._labels_layer(plan, results, f"{base} labels", tf)

        # table: the source file, its calibration (the layer's scale and unit), the counted area and density,
        # the last two measured by the library (cellcount_result_measure)
        rows = []
        ph, pw = spec.pixel
        for idx, r in results:
            m = r.measurements
            area = float(m["area"])
            per = m.get("cells_per_unit2")
            row = {"image": spec.name, "plane": plane_label(idx), "count": float(r.count), "points": r.n_points,
                   "model": Path(info.get("path", str(plan.model_path))).name, "method": info.get("method", ""),
                   "region": plan.region_name,
                   "exemplars": len(boxes_for(plan.boxes, idx) or []) if plan.needs_exemplars else "",
                   "area": area, "cells per unit2": float(per) if per is not None else "",
                   # the cell size counted with (models with one: given, or estimated when diameter is 0)
                   "diameter": float(m["diameter"]["value"]) if m.get("diameter") else "",
                   "pixel width": pw, "pixel height": ph, "unit": spec.unit, "path": spec.path,
                   "device": r.device, "precision": r.precision, "seconds": float(r.seconds),
                   "warnings": "; ".join(w["message"] for w in r.warnings)}
            if len(classes) > 1:
                for k, c in enumerate(classes):
                    row[f"count {c}"] = float(r.class_counts[k]) if k < len(r.class_counts) else 0.0
                fractions = m.get("class_fractions") or []  # the library's proportions; None when no cell
                for k, c in enumerate(classes):
                    f = fractions[k] if k < len(fractions) else None
                    row[f"fraction {c}"] = float(f) if f is not None else ""
            rows.append(row)
        table = table_for(self.viewer)
        table.add_rows(rows)
        saved = self.save_beside(spec, table, self.viewer.layers[name]) if self.save_check.isChecked() else []

        # the library's out-of-domain warnings (issue 24), one notification each, named by layer and plane
        for idx, r in results:
            for w in r.warnings:
                show_warning(f"{spec.name}{f' plane {plane_label(idx)}' if idx else ''}: {w['message']}")

        total = sum(r.count for _, r in results)
        where = f"{len(results)} planes of " if len(results) > 1 else ""
        self.status.setText(f"{total:.1f} cells ({sum(r.n_points for _, r in results)} points) in {where}"
                            f"'{spec.name}', {sum(r.seconds for _, r in results):.2f} s on {results[-1][1].device}")
        labels_note = next((r.measurements["labels"].get("reason", "") for _, r in results
                            if not r.measurements.get("labels", {}).get("available", True)), "")
        self.last_outcome = {"info": info, "results": results, "points_layer": name, "rows": rows, "saved": saved,
                             "labels_layer": f"{base} labels" if f"{base} labels" in self.viewer.layers else None,
                             "labels_note": labels_note}

    def save_beside(self, spec: ImageSpec, table: Any, points: Any) -> list[Path]:
        """Writes <image>_cellcount.csv (the table's rows of this image file) and <image>_cellcount_points.csv
        beside the image file, replacing earlier ones this widget wrote (a recount) but never another file of
        that name. Returns the files written ([] with a warning when the layer has no file, or on refusal)."""
        if not spec.path:
            show_warning(f"{self.title}: '{spec.name}' was not read from a file; nothing saved beside it")
            return []
        src = Path(spec.path)
        counts = src.parent / f"{src.stem}_cellcount.csv"
        pts = src.parent / f"{src.stem}_cellcount_points.csv"
        for f, head in ((counts, "image,"), (pts, "plane,y,x,")):
            if f.exists():
                with f.open(errors="replace") as fh:
                    if not fh.readline().startswith(head):
                        show_warning(f"{self.title}: '{f}' exists and was not written by cellcount; not replaced")
                        return []
        try:
            table.export_csv(counts, overwrite=True, rows=table.rows_of(spec.path))
            feats = points.features
            data = np.asarray(points.data)
            with pts.open("w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["plane", "y", "x", "class", "score", "intensity", "label"])
                for k in range(len(data)):
                    w.writerow([feats["plane"].iloc[k], repr(float(data[k, -2])), repr(float(data[k, -1])),
                                feats["class"].iloc[k], repr(float(feats["score"].iloc[k])),
                                repr(float(feats["intensity"].iloc[k])), int(feats["label"].iloc[k])])
        except OSError as e:
            show_warning(f"{self.title}: could not save beside '{src}': {e}")
            return []
        return [counts, pts]

    def _own_layer(self, name: str, kind: type, ndim: int) -> Any:
        """A layer this plugin made earlier under `name` (never a user's layer), if its shape still fits."""
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            if isinstance(layer, kind) and "cellcount" in layer.metadata and layer.ndim == ndim:
                return layer
        return None

    def _fill_planes(self, plan: Plan, maps: list, name: str, kind: type, dtype: Any, what: str) -> tuple | None:
        """The (lead..., H, W) array of a result layer with each counted plane's map written in, and the layer
        this plugin made earlier under `name` (or None): its data is refilled in place when shape and dtype still
        fit, else a new array. None (nothing shown) when the stack would pass MAX_RESULT_IMAGE_BYTES or a map is
        not the size of its plane (a method-specific size, e.g. a resized reconstruction)."""
        spec = plan.image
        shape = tuple(spec.lead_shape) + tuple(spec.plane_shape)
        if int(np.prod(shape)) * np.dtype(dtype).itemsize > MAX_RESULT_IMAGE_BYTES:
            show_info(f"{self.title}: the {what} stack would take over 1 GiB; not shown")
            return None
        old = self._own_layer(name, kind, spec.ndim)
        reuse = old is not None and old.data.shape == shape and old.data.dtype == dtype
        arr = old.data if reuse else np.zeros(shape, dtype)
        for idx, m in maps:
            if m.shape != tuple(spec.plane_shape):
                return None
            arr[idx] = m
        return arr, old

    def _labels_layer(self, plan: Plan, results: list, name: str, tf: dict) -> None:
        """A Labels layer of the library's label image (Result.labels) of the planes counted, when the method
        gives one; a method without a mask (dcl) makes none (the outcome's labels_note says why)."""
        maps = [(idx, r.labels) for idx, r in results if r.labels is not None]
        filled = self._fill_planes(plan, maps, name, Labels, np.int32, "label") if maps else None
        if filled is None:
            return
        arr, old = filled
        if old is not None and old.data is arr:
            old.refresh()
            return
        if old is not None:
            self.viewer.layers.remove(old)
        self.viewer.add_labels(arr, name=name, metadata={"cellcount": {"kind": "labels"}}, opacity=0.4, **tf)

    def _result_image(self, plan: Plan, results: list, attr: str, name: str, tf: dict, style: dict) -> None:
        maps = [(idx, getattr(r, attr)) for idx, r in results if getattr(r, attr) is not None]
        filled = self._fill_planes(plan, maps, name, Image, np.float32, attr) if maps else None
        if filled is None:
            return
        arr, old = filled
        if old is not None and old.data is arr:
            old.refresh()
            old.contrast_limits = (0.0, float(arr.max()) or 1.0)
            return
        if old is not None:
            self.viewer.layers.remove(old)
        self.viewer.add_image(arr, name=name, contrast_limits=(0.0, float(arr.max()) or 1.0),
                              metadata={"cellcount": {"kind": attr}}, **tf, **style)


def _is_result(layer: Any) -> bool:
    """A layer this plugin made (points, density, mask): not offered as input."""
    return "cellcount" in getattr(layer, "metadata", {})


def _not_result(layer: Any) -> bool:
    return not _is_result(layer)


# -------------------------------------------------------------------- npe2 widgets (napari.yaml)
# napari finds the viewer argument by inspecting __init__, so each method gets a one-line subclass.


class DclWidget(CountWidget):
    def __init__(self, napari_viewer: Any, parent: QWidget | None = None):
        super().__init__(napari_viewer, "dcl", parent)


class ExemplarWidget(CountWidget):
    def __init__(self, napari_viewer: Any, parent: QWidget | None = None):
        super().__init__(napari_viewer, "exemplar", parent)


class LlpWidget(CountWidget):
    def __init__(self, napari_viewer: Any, parent: QWidget | None = None):
        super().__init__(napari_viewer, "llp", parent)


class TwinvaeWidget(CountWidget):
    def __init__(self, napari_viewer: Any, parent: QWidget | None = None):
        super().__init__(napari_viewer, "twinvae", parent)
