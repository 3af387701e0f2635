"""The training widget: layers -> dataset folder -> cellcount_train, with the library's defaults."""
import csv
import json

import numpy as np
import pytest

import cellcount
from napari_cellcount import CountWidget, TrainWidget
from napari_cellcount._layers import InputError
from napari_cellcount._train_widget import OWN_FIELDS, write_dataset
from qtpy.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox
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
    assert {k: f.value() for k, f in w.fields.items()} == {k: d[k] for k in w.fields}
    assert w.changed_fields() == {}
    w.set_field("epochs", 3)
    w.set_field("lr", 0.005)
    assert w.changed_fields() == {"epochs": 3, "lr": 0.005}
    assert "dcl" in [w.method_combo.itemData(i) for i in range(w.method_combo.count())]


EDITOR = {"int": QSpinBox, "number": QDoubleSpinBox, "bool": QCheckBox, "choice": QComboBox, "path": QLineEdit,
          "string": QLineEdit, "int_list": QLineEdit, "number_list": QLineEdit, "string_list": QLineEdit,
          "object": QLineEdit, "json": QLineEdit}


@pytest.mark.parametrize("method", ["dcl", "exemplar"])
def test_form_is_the_library_metadata(make_napari_viewer, method):
    """Issue 19/21 item 8: one labelled editor per field of cellcount_request_options, by type, with the
    declared range, default, choices and help; advanced fields folded away."""
    if method not in {m["id"] for m in cellcount.methods()}:
        pytest.skip(f"this build has no {method}")
    viewer = make_napari_viewer()
    w = TrainWidget(viewer)
    w.set_method(method)
    meta = [o for o in cellcount.request_options(method, "train") if o["name"] not in OWN_FIELDS]
    assert list(w.fields) == [o["name"] for o in meta]
    form = w.form
    for o in meta:
        f = w.fields[o["name"]]
        ed = f.editor
        if o["type"] == "int" and o.get("max", 0) > 2 ** 31 - 1:  # e.g. the 64-bit seed: a validated line edit
            assert isinstance(ed, QLineEdit) and ed.validator() is not None
        else:
            assert isinstance(ed, EDITOR[o["type"]]), o
        if isinstance(ed, (QSpinBox, QDoubleSpinBox)):
            assert (ed.minimum(), ed.maximum()) == (o["min"], o["max"]), o
        if isinstance(ed, QComboBox):
            assert [ed.itemData(i) for i in range(ed.count())] == o["choices"]
        assert f.value() == o["default"], o
        assert o["doc"] in f.widget.toolTip()
        layout = form.advanced_form if o["advanced"] else form.basic_form
        assert layout.indexOf(f.widget) >= 0, o
    assert not form.advanced_box.isVisibleTo(form) and form.advanced_button.isVisibleTo(form)
    form.advanced_button.click()
    assert form.advanced_box.isVisibleTo(form)
    assert w.changed_fields() == {}


def test_out_of_range_is_refused_and_changes_reach_the_request(make_napari_viewer, tmp_path, qtbot):
    if "dcl" not in {m["id"] for m in cellcount.methods()}:
        pytest.skip("this build has no dcl")
    viewer = make_napari_viewer()
    _, truth = add_sample(viewer)
    w = trainer(viewer, tmp_path / "model")
    w.set_method("dcl")
    w.points_combo.setCurrentText(truth.name)
    meta = {o["name"]: o for o in cellcount.request_options("dcl", "train")}
    crop, lr = w.fields["crop"].editor, w.fields["lr"].editor
    # a spin box clamps a value set past its declared range ...
    w.set_field("crop", meta["crop"]["max"] * 10)
    assert crop.value() == meta["crop"]["max"]
    # ... and refuses the keys that would type one
    too_big = meta["lr"]["max"] * 5
    lr.lineEdit().selectAll()
    qtbot.keyClicks(lr.lineEdit(), str(too_big))
    lr.interpretText()
    assert lr.value() <= meta["lr"]["max"] and float(lr.lineEdit().text()) != too_big
    crop.lineEdit().selectAll()
    qtbot.keyClicks(crop.lineEdit(), str(meta["crop"]["max"] * 10))
    crop.interpretText()
    assert crop.value() <= meta["crop"]["max"]
    # a changed value reaches the request; the rest (split_file among them) are left to the library
    w.set_field("crop", 64)
    lr.lineEdit().selectAll()
    qtbot.keyClicks(lr.lineEdit(), "0.005")
    lr.interpretText()
    w.set_field("rgb_rule", meta["rgb_rule"]["choices"][-1])
    request, _ = w.plan()
    assert {k: request[k] for k in ("crop", "lr", "rgb_rule")} == {"crop": 64, "lr": 0.005,
                                                                    "rgb_rule": meta["rgb_rule"]["choices"][-1]}
    assert "split_file" not in request and "seed" not in request
    # list fields: typed as "1, 2" or JSON; entries outside the declared range are named
    w.fields["count_levels"].editor.setText("1, 2")
    assert w.changed_fields()["count_levels"] == [1, 2]
    w.fields["count_levels"].editor.setText(f"{meta['count_levels']['max'] + 1}")
    with pytest.raises(InputError, match="count_levels"):
        w.changed_fields()


def test_a_failed_training_shows_the_library_message(make_napari_viewer, run_widget, tmp_path, notes):
    """Issue 21 item 1: the widget writes no split and forces no split_file; what the library refuses is shown
    in the widget and as a notification with the library's own words."""
    if "dcl" not in {m["id"] for m in cellcount.methods()}:
        pytest.skip("this build has no dcl")
    viewer = make_napari_viewer()
    _, truth = add_sample(viewer)
    w = trainer(viewer, tmp_path / "model")
    w.set_method("dcl")
    w.points_combo.setCurrentText(truth.name)
    w.fields["init_from"].editor.setText(str(tmp_path / "no-such-model"))
    out = run_widget(w)
    assert isinstance(out, cellcount.CellCountError), out
    assert out.message in errors(notes)[-1] and out.message in w.status.text()
    assert not (tmp_path / "model" / "model.json").exists()


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
