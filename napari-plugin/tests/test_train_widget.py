"""The training widget: layers -> dataset folder -> cellcount_train, with the library's defaults."""
import csv
import json

import numpy as np
import pytest

import cellcount
from napari_cellcount import CountWidget, TrainWidget
from napari_cellcount._train_widget import write_dataset
from napari_cellcount._sample_data import cells


def add_sample(viewer):
    for data, meta, kind in cells():
        getattr(viewer, f"add_{kind}")(data, **meta)
    return viewer.layers["cells_00000"], viewer.layers["cells_00000 true cells"]


def trainer(viewer, out):
    w = TrainWidget(viewer, include_fixtures=True)
    viewer.window.add_dock_widget(w, name="train")
    w.set_method("selftest")
    w.image_combo.setCurrentText("cells_00000")
    w.out_edit.setText(str(out))
    return w


def errors(notes):
    return [m for s, m in notes if "error" in s]


def test_form_is_the_library_defaults(make_napari_viewer):
    viewer = make_napari_viewer()
    w = TrainWidget(viewer, include_fixtures=True)
    w.set_method("selftest")
    d = cellcount.request_defaults("selftest", "train")
    assert set(w.fields) == set(d) - {"method", "dataset", "out", "overwrite", "command"}
    assert {k: v for k, (v, _) in w.fields.items()} == {k: d[k] for k in w.fields}
    assert w.changed_fields() == {}
    w.set_field("epochs", 3)
    w.set_field("lr", 0.005)
    assert w.changed_fields() == {"epochs": 3, "lr": 0.005}
    assert "dcl" in [w.method_combo.itemData(i) for i in range(w.method_combo.count())]


def test_train_from_points_then_count_with_the_new_model(make_napari_viewer, run_widget, tmp_path, notes):
    viewer = make_napari_viewer()
    image, truth = add_sample(viewer)
    counter = CountWidget(viewer, "selftest")
    viewer.window.add_dock_widget(counter, name="count")
    w = trainer(viewer, tmp_path / "model")
    w.points_combo.setCurrentText(truth.name)
    w.set_field("epochs", 3)
    rep = run_widget(w)
    assert isinstance(rep, dict), rep
    assert not errors(notes)
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    req = meta["provenance"]["request"]
    assert req["epochs"] == 3 and req["lr"] == cellcount.request_defaults("selftest", "train")["lr"]
    assert meta["provenance"]["train_images"] == 1
    # the new model is offered by the counting widget and counts
    assert str((tmp_path / "model").resolve()) in [counter.model_combo.itemData(i)
                                                   for i in range(counter.model_combo.count())]
    counter.set_model(tmp_path / "model")
    assert isinstance(run_widget(counter), dict)


def test_cancel_training(make_napari_viewer, run_widget, tmp_path, qtbot):
    viewer = make_napari_viewer()
    _, truth = add_sample(viewer)
    w = trainer(viewer, tmp_path / "model")
    w.points_combo.setCurrentText(truth.name)
    w.set_field("epochs", 500)

    def start_then_cancel():
        w.run()
        w.run()  # the button reads "Cancel"

    assert isinstance(run_widget(w, start_then_cancel), cellcount.Cancelled)
    assert not (tmp_path / "model" / "model.json").exists()


@pytest.mark.parametrize("setup,needle", [
    (lambda w: None, "give the ground truth"),
    (lambda w: w.out_edit.setText(""), "choose a folder"),
    (lambda w: w.counts_edit.setText("1, 2"), "'cells_00000' has 1 plane"),
    (lambda w: w.counts_edit.setText("many"), "not a list of numbers"),
    (lambda w: (w.counts_edit.setText("5"), w.fields["lr"][1].setText("fast")), "setting 'lr'"),
])
def test_bad_training_input(make_napari_viewer, run_widget, tmp_path, notes, setup, needle):
    viewer = make_napari_viewer()
    add_sample(viewer)
    w = trainer(viewer, tmp_path / "model")
    setup(w)
    assert not isinstance(run_widget(w), dict)
    assert needle in errors(notes)[-1]


def test_existing_model_folder_is_not_overwritten(make_napari_viewer, run_widget, tmp_path, notes):
    viewer = make_napari_viewer()
    _, truth = add_sample(viewer)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "keep.txt").write_text("mine")
    w = trainer(viewer, tmp_path / "model")
    w.points_combo.setCurrentText(truth.name)
    w.set_field("epochs", 1)
    out = run_widget(w)
    assert isinstance(out, cellcount.CellCountError) and out.status == cellcount.Status.ERR_IO
    assert "exists" in errors(notes)[-1]
    assert (tmp_path / "model" / "keep.txt").read_text() == "mine"


def test_stack_dataset_from_points_on_planes(make_napari_viewer, tmp_path, notes):
    viewer = make_napari_viewer()
    stack = np.random.default_rng(0).random((3, 32, 40)).astype(np.float32)
    viewer.add_image(stack, name="stack", scale=(1, 2, 2))
    # points in world coordinates (the image has scale 2): plane 0 and plane 2 annotated, plane 1 not
    viewer.add_points(np.array([[0, 10, 20], [0, 30, 40], [2, 4, 6]], float), name="pts")
    w = TrainWidget(viewer, include_fixtures=True)
    w.set_method("selftest")
    w.image_combo.setCurrentText("stack")
    w.points_combo.setCurrentText("pts")
    w.out_edit.setText(str(tmp_path / "m"))
    request, dataset = w.plan()
    assert dataset["planes"] == [(0,), (2,)]
    assert any("1 plane(s)" in m for _, m in notes)
    write_dataset(tmp_path / "ds", dataset)
    rows = list(csv.DictReader((tmp_path / "ds" / "points.csv").open()))
    assert [(r["image"], float(r["x"]), float(r["y"])) for r in rows] == [
        ("images/plane_0.tif", 10.0, 5.0), ("images/plane_0.tif", 20.0, 15.0), ("images/plane_2.tif", 3.0, 2.0)]
    # the library reads the dataset as written (an evaluation of the fixture-free kind: counts only)
    rep = cellcount.evaluate(cellcount.repo_root() / "models" / "dcl-vgg", tmp_path / "ds", split="all")
    assert rep["n"] == 2
