"""Issue 21 items 8 and 9 and the counted area in napari: the peak threshold on the library's 0-1 scale with the
model's tuned value shown, the counted area and cells per unit² from the library, per-point measurements
(intensity, class, score, label) as points features and in the saved points CSV, and a Labels layer where the
method gives a mask (exemplar) but none, with the reason, where it does not (dcl)."""
import csv
import shutil

import numpy as np
import pytest
from napari.layers import Labels

import cellcount
from napari_cellcount import CountWidget
from napari_cellcount._table import table_for

from conftest import EXEMPLAR_MODEL, needs_exemplar_model


def dock(viewer, widget):
    viewer.window.add_dock_widget(widget, name=widget.title)
    return widget


def test_relative_threshold_shown_and_sent(make_napari_viewer, run_widget, repo, sample):
    """Item 8: the relative field shows the model's tuned value on the library's scale, and a value typed there
    reaches the prediction as the library's relative threshold (same points as the binding given it)."""
    viewer = make_napari_viewer()
    viewer.add_image(sample, name="cells")
    w = dock(viewer, CountWidget(viewer, "dcl"))
    w.set_model(repo / "models" / "dcl-vgg")
    w.image_combo.setCurrentText("cells")
    with cellcount.Model(repo / "models" / "dcl-vgg") as m:
        tuned = m.info["peak_threshold"]["relative"]
        assert 0 < tuned < 1
        rel = w.options.fields["peak_threshold_relative"]
        assert f"{tuned:.6g}" in rel.editor.placeholderText()
        # the absolute field is folded away (advanced); the relative one is the one shown
        assert not rel.meta.get("advanced") and w.options.fields["peak_threshold"].meta.get("advanced")
        rel.set(0.6)
        assert w.plan().params["peak_threshold_relative"] == 0.6
        out = run_widget(w)
        assert isinstance(out, dict), out
        want = m.predict(sample, peak_threshold_relative=0.6)
        default = m.predict(sample)
    pts = viewer.layers["cells dcl points"]
    assert np.allclose(pts.data, want.yx) and 0 < want.n_points < default.n_points


def test_area_points_features_and_no_labels_for_dcl(make_napari_viewer, run_widget, repo, tmp_path):
    """The counted area and density are the library's (cellcount_result_measure); each point carries the
    library's local intensity and label; dcl gives no mask, so no Labels layer, and the outcome says why."""
    img = tmp_path / "cells.png"
    shutil.copy(repo / "samples" / "dcl-vgg" / "cells_00000.png", img)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(img))
    layer.scale = (0.5, 0.25)
    layer.units = ("micrometer", "micrometer")
    w = dock(viewer, CountWidget(viewer, "dcl"))
    w.set_model(repo / "models" / "dcl-vgg")
    w.image_combo.setCurrentText(layer.name)
    w.save_check.setChecked(True)
    out = run_widget(w)
    assert isinstance(out, dict), out
    with cellcount.Model(repo / "models" / "dcl-vgg") as m:
        want = m.predict(layer.data, calibration={"pixel_width": 0.25, "pixel_height": 0.5, "unit": "micrometer"})
    row = table_for(viewer).rows[-1]
    assert row["area"] == want.measurements["area"] == layer.data.shape[0] * layer.data.shape[1] * 0.125
    assert row["cells per unit2"] == pytest.approx(want.measurements["cells_per_unit2"])
    pts = viewer.layers[f"{layer.name} dcl points"]
    assert np.allclose(pts.features["intensity"], want.intensities) and want.n_points > 20
    # the local mean of the original pixels: inside the image's own range
    grey = layer.data if layer.data.ndim == 2 else layer.data.mean(axis=-1)
    assert grey.min() <= pts.features["intensity"].min() and pts.features["intensity"].max() <= layer.data.max()
    assert (pts.features["label"] == 0).all()
    assert out["labels_layer"] is None and "dcl gives no mask" in out["labels_note"]
    assert not any(isinstance(x, Labels) for x in viewer.layers)
    saved = list(csv.DictReader((tmp_path / "cells_cellcount_points.csv").open()))
    assert len(saved) == want.n_points
    assert np.allclose([float(p["intensity"]) for p in saved], want.intensities)
    assert {p["label"] for p in saved} == {"0"}


@needs_exemplar_model()
def test_exemplar_labels_layer(make_napari_viewer, run_widget, repo):
    """Item 9: the exemplar method's mask becomes a Labels layer of its connected components (the library's),
    and each point's label feature is the component under it."""
    viewer = make_napari_viewer()
    viewer.open_sample("napari-cellcount", "exemplar_cells")
    w = dock(viewer, CountWidget(viewer, "exemplar"))
    w.set_model(EXEMPLAR_MODEL)
    w.image_combo.setCurrentText("two kinds")
    w.exemplar_combo.setCurrentText("exemplars")
    out = run_widget(w)
    assert isinstance(out, dict), out
    (_, r), = out["results"]
    assert r.labels is not None and r.measurements["labels"]["available"]
    lab = viewer.layers[out["labels_layer"]]
    assert isinstance(lab, Labels) and np.array_equal(lab.data, r.labels)
    n = r.measurements["labels"]["n"]
    assert n >= 1 and lab.data.max() == n and set(np.unique(lab.data)) == set(range(n + 1))
    assert ((r.mask > 0.5) == (lab.data > 0)).all()  # components partition the mask
    pts = viewer.layers["two kinds exemplar points"]
    yx = np.round(pts.data).astype(int)
    assert np.array_equal(pts.features["label"].to_numpy(), lab.data[yx[:, 0], yx[:, 1]])
    # the table and the labels layer are not offered as inputs
    assert out["labels_layer"] not in [w.region_combo.itemText(i) for i in range(w.region_combo.count())]
