"""Training from the current layers: an image layer (each plane of a stack is one training image) with
ground truth from a Points layer, a Shapes layer of boxes, or typed counts, written as a dataset folder
(images + points.csv / boxes.csv / counts.csv) and handed to cellcount_train. The form is generated from
cellcount_request_options(method, "train") (see _form.py): every field, type, range, default and help text
is the library's; only the fields the user changed are sent. The widget writes no split: a dataset without
one is split by the library (by the request's seed), and a failure shows the library's own message."""
from __future__ import annotations

import csv
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image, Points, Shapes
from napari.utils.notifications import show_info
from qtpy.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                            QLineEdit, QPushButton, QScrollArea, QVBoxLayout, QWidget)

import cellcount

from . import _models
from ._form import Field, OptionsForm
from ._jobs import JobWidget, Report
from ._layers import ImageSpec, InputError, image_spec, shapes_to_boxes
from ._widget import NONE_ITEM, fill_layer_combo, find_layer, library_methods, open_count_widgets

# request fields the widget fills itself rather than showing in the form
OWN_FIELDS = ("method", "dataset", "out", "overwrite", "command")


class TrainWidget(JobWidget):
    """`finished` carries the library's report (a dict) on success, or the exception (already notified)."""

    idle_text = "Train"
    busy_text = "training…"

    def __init__(self, napari_viewer: Any, include_fixtures: bool = False, parent: QWidget | None = None):
        super().__init__(napari_viewer, "Train", parent)
        self.form: OptionsForm | None = None
        self.fields: dict[str, Field] = {}  # name -> the field's metadata and editor (the form's)
        methods, lib_error = library_methods()
        self.methods = [m for m in methods if m.get("can_train") and (include_fixtures or not m.get("fixture"))]

        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("<b>Train a model</b>"))
        if lib_error:
            note = QLabel(lib_error)
            note.setWordWrap(True)
            lay.addWidget(note)
            return
        form = QFormLayout()
        self.method_combo = QComboBox()
        for m in self.methods:
            self.method_combo.addItem(m["display_name"], m["id"])
        self.method_combo.currentIndexChanged.connect(self._build_fields)
        form.addRow("Method", self.method_combo)
        self.image_combo = QComboBox()
        form.addRow("Images", self.image_combo)
        self.points_combo = QComboBox()
        self.points_combo.setToolTip("A Points layer marking every cell (per plane for a stack)")
        form.addRow("Points", self.points_combo)
        self.boxes_combo = QComboBox()
        self.boxes_combo.setToolTip("A Shapes layer of exemplar boxes (for methods that count like exemplars)")
        form.addRow("Boxes", self.boxes_combo)
        self.counts_edit = QLineEdit()
        self.counts_edit.setPlaceholderText("e.g. 133 or 133, 222, 198 (one per plane)")
        self.counts_edit.setToolTip("Cell counts per image plane, for methods that learn from counts")
        form.addRow("Counts", self.counts_edit)
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("new folder for the model")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_out)
        row = QHBoxLayout()
        row.addWidget(self.out_edit, 1)
        row.addWidget(browse)
        form.addRow("Save to", row)
        self.overwrite_check = QCheckBox("replace an existing model folder")
        form.addRow("", self.overwrite_check)
        lay.addLayout(form)

        self.fields_box = QGroupBox("Training settings (library defaults; hover a name for its help)")
        self.fields_layout = QVBoxLayout(self.fields_box)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.fields_box)
        scroll.setMinimumHeight(160)
        lay.addWidget(scroll, 1)

        self.run_button = QPushButton(self.idle_text)
        self.run_button.clicked.connect(self.run)
        lay.addWidget(self.run_button)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)

        self._build_fields()
        self._refresh_layers()
        ev = self.viewer.layers.events
        ev.inserted.connect(self._on_inserted)
        ev.removed.connect(self._refresh_layers)
        for layer in self.viewer.layers:
            layer.events.name.connect(self._refresh_layers)

    # ---------------------------------------------------------------- form
    @property
    def method(self) -> str:
        return self.method_combo.currentData() or ""

    def set_method(self, method: str) -> None:
        i = self.method_combo.findData(method)
        if i < 0:
            raise ValueError(f"method '{method}' cannot be trained here; have "
                             f"{[self.method_combo.itemData(k) for k in range(self.method_combo.count())]}")
        self.method_combo.setCurrentIndex(i)

    def _build_fields(self) -> None:
        if self.form is not None:
            self.fields_layout.removeWidget(self.form)
            self.form.deleteLater()
        self.form, self.fields = None, {}
        if not self.method:
            return
        self.form = OptionsForm(cellcount.request_options(self.method, "train"), skip=OWN_FIELDS)
        self.fields_layout.addWidget(self.form)
        self.fields = self.form.fields

    def set_field(self, name: str, value: Any) -> None:
        """Sets a training field as the user would (tests, scripts); a spin box clamps to its range."""
        self.fields[name].set(value)

    def changed_fields(self) -> dict:
        """The fields whose value differs from the library's default (the rest are left to the library)."""
        return self.form.changed() if self.form is not None else {}

    def _browse_out(self) -> None:
        d = QFileDialog.getSaveFileName(self, "New model folder", "my-model", "Model folder (*)")[0]
        if d:
            self.out_edit.setText(d)

    # ---------------------------------------------------------------- layers
    def _on_inserted(self, event: Any) -> None:
        event.value.events.name.connect(self._refresh_layers)
        self._refresh_layers()

    def _refresh_layers(self, event: Any = None) -> None:
        fill_layer_combo(self.image_combo, self.viewer, (Image,), [])
        fill_layer_combo(self.points_combo, self.viewer, (Points,), [NONE_ITEM])
        fill_layer_combo(self.boxes_combo, self.viewer, (Shapes,), [NONE_ITEM])

    def _layer(self, name: str, types: tuple) -> Any:
        return find_layer(self.viewer, name, types)

    # ---------------------------------------------------------------- running
    def _job(self) -> tuple:
        request, dataset = self.plan()
        return f"Train {self.method}", lambda report: self._work(request, dataset, report), self._done

    def plan(self) -> tuple[dict, dict]:
        if not self.method:
            raise InputError("this build of libcellcount has no trainable method")
        image = self._layer(self.image_combo.currentText(), (Image,))
        if image is None:
            raise InputError("no image layer: open the training images first")
        out = self.out_edit.text().strip()
        if not out:
            raise InputError("choose a folder to save the model in ('Save to')")
        spec = image_spec(image)
        planes = spec.all_planes()
        points = self._layer(self.points_combo.currentText(), (Points,))
        shapes = self._layer(self.boxes_combo.currentText(), (Shapes,))
        counts_text = self.counts_edit.text().strip()
        if points is None and shapes is None and not counts_text:
            raise InputError("give the ground truth: a Points layer, a Shapes layer of boxes, or counts")
        dataset: dict = {"image": spec, "planes": planes, "points": None, "classes": None, "boxes": None,
                         "counts": None}
        if points is not None:
            dataset["points"], dataset["classes"] = _points_per_plane(points, image, spec, planes)
        if shapes is not None:
            boxes = shapes_to_boxes(shapes, image)
            dataset["boxes"] = {p: boxes.get(None, []) + boxes.get(p, []) for p in planes}
        if counts_text:
            try:
                counts = [float(c) for c in counts_text.replace(";", ",").split(",") if c.strip()]
            except ValueError:
                raise InputError(f"counts: '{counts_text}' is not a list of numbers") from None
            if len(counts) != len(planes):
                raise InputError(f"counts: {len(counts)} given, but '{image.name}' has {len(planes)} plane(s)")
            dataset["counts"] = dict(zip(planes, counts))
        else:
            # without typed counts, the annotated planes are the training images (a stack is often annotated
            # only in part); a plane with neither points nor boxes is not an image with zero cells
            annotated = [p for p in planes if (dataset["points"] and dataset["points"][p]) or
                         (dataset["boxes"] and dataset["boxes"][p])]
            if not annotated:
                raise InputError("no point or box lies on a plane of the image")
            if len(annotated) < len(planes):
                show_info(f"Train: {len(planes) - len(annotated)} plane(s) of '{image.name}' have no points or "
                          "boxes and are left out")
            dataset["planes"] = annotated
        request = {"method": self.method, "out": str(Path(out).resolve()), **self.changed_fields()}
        if self.overwrite_check.isChecked():
            request["overwrite"] = True
        if "command" in (o["name"] for o in cellcount.request_options(self.method, "train")):
            request["command"] = f"napari-cellcount training widget on layer '{image.name}'"
        return request, dataset

    def _work(self, request: dict, dataset: dict, report: Report) -> dict:
        folder = Path(tempfile.mkdtemp(prefix="cellcount-train-"))
        try:
            report(0.0, "writing the dataset")
            write_dataset(folder, dataset)
            request = {**request, "dataset": str(folder)}
            rep = cellcount.train(request.pop("method"), request.pop("dataset"), request.pop("out"),
                                  progress=report, **request)
            return rep
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _done(self, rep: dict) -> None:
        out = rep.get("out", self.out_edit.text())
        _models.forget(out)  # a replaced model is reloaded on next use
        _models.remember(out)
        for w in open_count_widgets():
            try:
                w.refresh_models()
            except RuntimeError:  # its Qt widget was closed
                pass
        msg = f"model saved to {out}"
        if "final_loss" in rep:
            msg += f" (final loss {rep['final_loss']:.4g}"
            msg += f", {rep.get('epochs_run', '?')} epochs, {rep.get('seconds', 0):.0f} s)"
        show_info(f"Train {self.method}: {msg}")
        self.status.setText(msg)
        self.last_outcome = rep


def _points_per_plane(points: Any, image: Any, spec: ImageSpec, planes: list[tuple[int, ...]]
                      ) -> tuple[dict[tuple[int, ...], list[tuple[float, float]]], dict | None]:
    """Point coordinates (x, y) in image pixels per plane, through world space; and their class names per
    plane when the Points layer has a "class" feature (e.g. corrected predictions)."""
    n_lead = len(spec.lead_shape)
    if n_lead and points.ndim < 2 + n_lead:
        raise InputError(f"Points layer '{points.name}' is 2-D but '{image.name}' is a stack: add the points "
                         "with the stack shown so that each lies on its plane")
    out: dict[tuple[int, ...], list[tuple[float, float]]] = {p: [] for p in planes}
    has_class = "class" in points.features and len(points.features) == len(points.data)
    classes: dict[tuple[int, ...], list[str]] | None = {p: [] for p in planes} if has_class else None
    H, W = spec.plane_shape
    dropped = 0
    for i, v in enumerate(np.asarray(points.data, dtype=float)):
        c = np.asarray(image.world_to_data(points.data_to_world(v)), dtype=float)
        y, x = c[-2], c[-1]
        plane = tuple(int(round(k)) for k in c[:n_lead]) if n_lead else ()
        if plane not in out or not (-0.5 <= x < W - 0.5 and -0.5 <= y < H - 0.5):
            dropped += 1
            continue
        out[plane].append((float(x), float(y)))
        if classes is not None:
            classes[plane].append(str(points.features["class"].iloc[i]))
    if dropped:
        show_info(f"Train: {dropped} point(s) of '{points.name}' lie outside '{image.name}' and are left out")
    return out, classes


def write_dataset(folder: Path, dataset: dict) -> None:
    """images/plane_*.tif per plane (pixels as the layer holds them), and the CSV files the library reads."""
    import tifffile

    spec: ImageSpec = dataset["image"]
    planes = dataset["planes"]
    (folder / "images").mkdir(parents=True)
    names = {}
    for p in planes:
        name = f"images/plane_{'_'.join(str(i) for i in p) or '0'}.tif"
        a = np.asarray(spec.plane(p))
        if a.dtype not in (np.uint8, np.uint16, np.float32):
            a = a.astype(np.float32)
        tifffile.imwrite(folder / name, a, photometric="rgb" if spec.channels in (3, 4) else "minisblack")
        names[p] = name

    def write(file: str, header: list[str], rows: list[list[Any]]) -> None:
        with (folder / file).open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)

    if dataset["points"] is not None:
        cls = dataset.get("classes")
        rows = []
        for p in planes:
            for k, (x, y) in enumerate(dataset["points"][p]):
                rows.append([names[p], f"{x:.3f}", f"{y:.3f}"] + ([cls[p][k]] if cls else []))
        write("points.csv", ["image", "x", "y"] + (["class"] if cls else []), rows)
    if dataset["boxes"] is not None:
        write("boxes.csv", ["image", "x0", "y0", "x1", "y1"],
              [[names[p], *[f"{v:.3f}" for v in b]] for p in planes for b in dataset["boxes"][p]])
    if dataset["counts"] is not None:
        write("counts.csv", ["image", "count"], [[names[p], repr(dataset["counts"][p])] for p in planes])
