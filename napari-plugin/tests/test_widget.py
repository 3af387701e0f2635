"""The counting widget in a headless napari viewer, checked against the library's own answer (the binding
calling the same model on the same pixels)."""
import csv
import json

import numpy as np
import pytest
from napari.layers import Points

import cellcount
from napari_cellcount import CountWidget
from napari_cellcount._layers import boxes_for
from napari_cellcount._table import table_for

from conftest import EXEMPLAR_MODEL, needs_exemplar_model


def dock(viewer, widget):
    viewer.window.add_dock_widget(widget, name=widget.title)
    return widget


def errors(notes):
    return [m for s, m in notes if "error" in s]


def test_count_matches_the_library(make_napari_viewer, run_widget, repo, sample, tmp_path, notes):
    viewer = make_napari_viewer()
    viewer.add_image(sample, name="cells_00000")
    # a region drawn on a Shapes layer with its own scale/translate: world rows/cols 40..200 -> same pixels
    roi = viewer.add_shapes([np.array([[10, 10], [10, 50], [50, 50], [50, 10]], float)], shape_type="rectangle",
                            scale=(4, 4), translate=(-0.5, -0.5), name="roi")
    w = dock(viewer, CountWidget(viewer, "dcl"))
    w.set_model(repo / "models" / "dcl-vgg")
    w.image_combo.setCurrentText("cells_00000")
    w.region_combo.setCurrentText("roi")
    out = run_widget(w)
    assert isinstance(out, dict), out
    assert not errors(notes)

    region = np.zeros(sample.shape, np.uint8)
    region[40:200, 40:200] = 1
    with cellcount.Model(repo / "models" / "dcl-vgg") as m:
        want = m.predict(sample, region=region)
    pts = viewer.layers["cells_00000 dcl points"]
    assert isinstance(pts, Points) and len(pts.data) == want.n_points > 20
    assert np.allclose(pts.data, want.yx)
    assert np.allclose(pts.features["score"], want.scores)
    assert set(pts.features["class"]) == {"cell"}
    assert pts.size[0] == pytest.approx(2 * m.info["eval_radius"])  # marker size from the model
    dens = viewer.layers["cells_00000 dcl density"]
    assert np.allclose(dens.data, want.density)
    assert roi.name == "roi" and len(viewer.layers["roi"].data) == 1  # the user's layers are untouched

    table = table_for(viewer)
    (row,) = table.rows
    assert row["count"] == want.count and row["points"] == want.n_points
    assert row["diameter"] == ""  # dcl-vgg states no cell size (dcl-general's column: the diameter counted with)
    assert row["image"] == "cells_00000" and row["model"] == "dcl-vgg" and row["region"] == "roi"
    assert row["warnings"] == "" and pts.metadata["cellcount"]["warnings"] == {"": []}  # its own kind of image
    assert table.view.rowCount() == 1 and table.view.item(0, 2).text() == f"{want.count:.2f}"

    path = table.export_csv(tmp_path / "counts.csv")
    (written,) = list(csv.DictReader(path.open()))
    assert float(written["count"]) == want.count and int(written["points"]) == want.n_points
    with pytest.raises(FileExistsError):
        table.export_csv(path)

    # counting again replaces the plugin's own layers and its table row instead of piling them up (issue 21)
    run_widget(w)
    assert len([l for l in viewer.layers if l.name.startswith("cells_00000 dcl")]) == 2
    assert len(table.rows) == 1


def test_every_plane_of_a_stack(make_napari_viewer, run_widget, repo):
    from napari_cellcount._sample_data import cells_stack

    viewer = make_napari_viewer()
    for data, meta, kind in cells_stack():
        getattr(viewer, f"add_{kind}")(data, **meta)
    stack = viewer.layers["cells stack"].data[:3]  # three planes keep it quick
    viewer.layers["cells stack"].data = stack
    w = dock(viewer, CountWidget(viewer, "dcl"))
    w.set_model(repo / "models" / "dcl-vgg")
    w.image_combo.setCurrentText("cells stack")

    viewer.dims.set_current_step(0, 1)
    w.planes_combo.setCurrentText("current plane")
    out = run_widget(w)
    assert [idx for idx, _ in out["results"]] == [(1,)]
    pts = viewer.layers["cells stack dcl points"]
    assert pts.ndim == 3 and set(pts.data[:, 0]) == {1.0}

    w.planes_combo.setCurrentText("every plane")
    out = run_widget(w)
    with cellcount.Model(repo / "models" / "dcl-vgg") as m:
        want = [m.predict(p) for p in stack]
    got = out["results"]
    assert [idx for idx, _ in got] == [(0,), (1,), (2,)]
    assert [r.count for _, r in got] == [r.count for r in want]
    pts = viewer.layers["cells stack dcl points"]
    for z in range(3):
        assert np.allclose(pts.data[pts.data[:, 0] == z][:, 1:], want[z].yx)
    assert viewer.layers["cells stack dcl density"].data.shape == stack.shape
    rows = table_for(viewer).rows  # the recount of plane 1 replaced its row where it was (issue 21)
    assert [r["plane"] for r in rows] == ["1", "0", "2"]
    assert [r["count"] for r in (rows[1], rows[0], rows[2])] == [r.count for r in want]


def test_cancel_stops_the_job_and_keeps_the_viewer(make_napari_viewer, run_widget, fixture_model, notes, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).random((512, 512), np.float32), name="big")
    w = dock(viewer, CountWidget(viewer, "selftest"))
    w.set_model(fixture_model)
    w.tile_spin.setValue(64)  # many tiles: the cancel lands between two of them

    def start_then_cancel():
        w.run()
        assert w.running and w.run_button.text() == "Cancel"
        w.job._pbar.cancel()  # the Cancel button of napari's progress bar

    out = run_widget(w, start_then_cancel)
    assert isinstance(out, cellcount.Cancelled)
    qtbot.waitUntil(lambda: not w.running)
    assert "big selftest points" not in viewer.layers and table_for(viewer).rows == []
    assert any("cancelled" in m for _, m in notes) and not errors(notes)
    assert w.run_button.text() == "Count"

    def start_then_press_again():
        w.run()
        w.run()  # the button reads "Cancel" while running

    assert isinstance(run_widget(w, start_then_press_again), cellcount.Cancelled)
    qtbot.waitUntil(lambda: not w.running)
    out = run_widget(w)  # and the model still works
    assert isinstance(out, dict) and "big selftest points" in viewer.layers


def test_labels_region_on_a_scaled_layer(make_napari_viewer, run_widget, fixture_model):
    viewer = make_napari_viewer()
    img = np.random.default_rng(4).random((64, 64), np.float32)
    viewer.add_image(img, name="img")
    lab = np.zeros((32, 32), np.int32)
    lab[4:12, 8:20] = 3  # at scale 2: image rows 8..23, cols 16..39
    viewer.add_labels(lab, scale=(2, 2), translate=(0.5, 0.5), name="cells here")
    w = dock(viewer, CountWidget(viewer, "selftest"))
    w.set_model(fixture_model)
    w.region_combo.setCurrentText("cells here")
    out = run_widget(w)
    region = np.zeros((64, 64), np.uint8)
    region[8:24, 16:40] = 1
    with cellcount.Model(fixture_model) as m:
        want = m.predict(img, region=region)
    (idx, got), = out["results"]
    assert got.count == want.count and np.array_equal(got.xy, want.xy)
    assert table_for(viewer).rows[-1]["region"] == "cells here"


def test_viewer_stays_responsive_while_counting(make_napari_viewer, run_widget, fixture_model, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(1).random((1024, 1024), np.float32), name="big")
    w = dock(viewer, CountWidget(viewer, "selftest"))
    w.set_model(fixture_model)
    w.tile_spin.setValue(64)
    from qtpy.QtCore import QTimer

    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(w.running))
    timer.start(10)
    out = run_widget(w)
    timer.stop()
    assert isinstance(out, dict)
    assert sum(ticks) >= 3, "the main thread's event loop ran while the job worked"


# ------------------------------------------------------------------ bad input: a notification, the viewer lives


def assert_alive(viewer):
    viewer.add_points(np.zeros((1, 2)), name="alive")
    assert "alive" in viewer.layers
    viewer.layers.remove("alive")


def test_three_channel_image_for_a_one_channel_model(make_napari_viewer, run_widget, strict_grey_model, notes):
    viewer = make_napari_viewer()
    rgb = (np.random.default_rng(2).random((64, 64, 3)) * 255).astype(np.uint8)
    viewer.add_image(rgb, name="rgb", rgb=True)
    w = dock(viewer, CountWidget(viewer, "selftest"))
    w.set_model(strict_grey_model)
    out = run_widget(w)
    assert isinstance(out, cellcount.CellCountError) and out.status == cellcount.Status.ERR_INVALID_ARGUMENT
    (msg,) = errors(notes)
    assert "takes 1 channel(s), got 3" in msg and "CELLCOUNT_ERR_INVALID_ARGUMENT" in msg
    assert [l.name for l in viewer.layers] == ["rgb"]
    assert_alive(viewer)
    viewer.add_image(rgb[:, :, 0], name="grey")
    w.image_combo.setCurrentText("grey")
    assert isinstance(run_widget(w), dict)  # the same widget and model go on working


def test_empty_shapes_region(make_napari_viewer, run_widget, fixture_model, notes):
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(3).random((64, 64), np.float32), name="img")
    viewer.add_shapes(name="empty roi")
    w = dock(viewer, CountWidget(viewer, "selftest"))
    w.set_model(fixture_model)
    w.region_combo.setCurrentText("empty roi")
    out = run_widget(w)
    assert "empty" in str(out)
    (msg,) = errors(notes)
    assert "'empty roi' is empty" in msg
    assert_alive(viewer)


def test_missing_model_image_and_wrong_method(make_napari_viewer, run_widget, fixture_model, repo, notes):
    viewer = make_napari_viewer()
    w = dock(viewer, CountWidget(viewer, "selftest"))
    w.model_combo.clear()
    run_widget(w)
    assert "no model chosen" in errors(notes)[-1]
    w.set_model(fixture_model)
    run_widget(w)
    assert "no image layer" in errors(notes)[-1]
    viewer.add_image(np.zeros((64, 64), np.float32), name="img")
    w.set_model(repo / "models" / "dcl-vgg")
    run_widget(w)
    assert "is a model of method 'dcl'" in errors(notes)[-1]
    w.threshold_edit.setText("abc")
    run_widget(w)
    assert "not a number" in errors(notes)[-1]
    assert_alive(viewer)


def test_a_method_missing_from_the_build_shows_a_note(make_napari_viewer):
    viewer = make_napari_viewer()
    w = CountWidget(viewer, "nosuchmethod")
    assert w.method_info is None and not hasattr(w, "run_button")


# ------------------------------------------------------------------ exemplars (models/exemplar-cells, issue 4)


def exemplar_boxes_csv(repo, image="images/test_0000.png"):
    with (repo / "samples" / "exemplar-cells" / "boxes.csv").open() as f:
        return [[float(r[k]) for k in ("x0", "y0", "x1", "y1")] for r in csv.DictReader(f) if r["image"] == image]


@needs_exemplar_model()
def test_exemplar_boxes_from_a_shapes_layer_match_the_library(make_napari_viewer, run_widget, repo, notes):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-cellcount", "exemplar_cells")  # image + Shapes "exemplars" (samples/exemplar-cells)
    sample = viewer.layers["exemplars"]
    # the same rectangles on a layer with scale 2 and translate (1, 1): same place in the world, same boxes
    s, t = np.array([2.0, 2.0]), np.array([1.0, 1.0])
    viewer.add_shapes([(np.asarray(d) - t) / s for d in sample.data], shape_type="rectangle", scale=s,
                      translate=t, name="scaled exemplars")
    w = dock(viewer, CountWidget(viewer, "exemplar"))
    w.set_model(EXEMPLAR_MODEL)
    w.image_combo.setCurrentText("two kinds")
    w.exemplar_combo.setCurrentText("scaled exemplars")
    out = run_widget(w)
    assert isinstance(out, dict), out
    assert not errors(notes)
    boxes = exemplar_boxes_csv(repo)
    with cellcount.Model(EXEMPLAR_MODEL) as m:
        want = m.predict(viewer.layers["two kinds"].data, exemplars=boxes)
    pts = viewer.layers["two kinds exemplar points"]
    assert np.allclose(pts.data, want.yx) and len(pts.data) == want.n_points
    row = table_for(viewer).rows[-1]
    assert row["count"] == want.count and row["exemplars"] == len(boxes) == 3
    if want.mask is not None:
        assert np.allclose(viewer.layers["two kinds exemplar mask"].data, want.mask)


def test_exemplar_list_follows_shapes_layers(make_napari_viewer, sample):
    """Issue 21 item 5: Shapes layers added after the widget opened were not offered as exemplars (three boxes
    on screen, "draw at least one box"). The list follows insertions, removals and renames and takes the
    newest Shapes layer; a renamed layer stays chosen."""
    viewer = make_napari_viewer()
    viewer.add_image(sample, name="cells")
    w = dock(viewer, CountWidget(viewer, "exemplar"))
    w.set_model(EXEMPLAR_MODEL)  # plan() only needs the path
    assert w.exemplar_combo.currentText() == "(none)"
    first = viewer.add_shapes(name="Shapes")  # as napari's "new shapes layer" button, boxes drawn afterwards
    assert w.exemplar_combo.currentText() == "Shapes"
    for y, x in [(20, 20), (60, 100), (150, 40)]:
        first.add_rectangles(np.array([[y, x], [y + 12, x + 12]], float))
    assert len(boxes_for(w.plan().boxes, ())) == 3
    newer = viewer.add_shapes([np.array([[5, 5], [20, 20]], float)], shape_type="rectangle", name="more boxes")
    assert w.exemplar_combo.currentText() == "more boxes"  # the newest
    viewer.add_points([[10, 10]], name="not shapes")
    assert w.exemplar_combo.currentText() == "more boxes"
    newer.name = "renamed boxes"
    assert w.exemplar_combo.currentText() == "renamed boxes"
    first.name = "first boxes"  # renaming another layer keeps the choice
    assert w.exemplar_combo.currentText() == "renamed boxes"
    assert [w.exemplar_combo.itemText(i) for i in range(w.exemplar_combo.count())] == [
        "(none)", "first boxes", "renamed boxes"]
    w.exemplar_combo.setCurrentText("first boxes")  # a person's choice stays over later refreshes
    viewer.add_image(sample, name="another image")
    assert w.exemplar_combo.currentText() == "first boxes"
    viewer.layers.remove("first boxes")
    assert w.exemplar_combo.currentText() == "renamed boxes"  # the newest left
    assert len(boxes_for(w.plan().boxes, ())) == 1
    viewer.layers.remove("renamed boxes")
    assert w.exemplar_combo.currentText() == "(none)"


@needs_exemplar_model()
def test_exemplar_method_bad_input(make_napari_viewer, run_widget, repo, notes):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-cellcount", "exemplar_cells")
    w = dock(viewer, CountWidget(viewer, "exemplar"))
    w.set_model(EXEMPLAR_MODEL)
    w.image_combo.setCurrentText("two kinds")
    w.exemplar_combo.setCurrentText("(none)")
    out = run_widget(w)  # no exemplars: the library says what it needs
    assert isinstance(out, cellcount.CellCountError) and "exemplar" in errors(notes)[-1]
    viewer.add_shapes(name="no boxes")
    w.exemplar_combo.setCurrentText("no boxes")
    run_widget(w)
    assert "'no boxes' is empty" in errors(notes)[-1]
    line = viewer.add_shapes([np.array([[10, 10], [40, 40]], float)], shape_type="line", name="a line")
    w.exemplar_combo.setCurrentText(line.name)
    run_widget(w)
    assert "has no area" in errors(notes)[-1]
    assert not any(l.name.startswith("two kinds exemplar") for l in viewer.layers)
    assert_alive(viewer)
    w.exemplar_combo.setCurrentText("exemplars")
    assert isinstance(run_widget(w), dict)  # fixed input: the same widget counts


def test_method_prediction_options_come_from_the_library(make_napari_viewer, fixture_model):
    """Issue 19: a method's own prediction options (exemplar's mask_threshold) are a form made from
    cellcount_request_options(method, "predict"); a method without any shows none."""
    viewer = make_napari_viewer()
    for method in [m["id"] for m in cellcount.methods(include_fixtures=True)]:
        w = CountWidget(viewer, method)
        meta = cellcount.request_options(method, "predict")
        assert list(w.method_options.fields) == [o["name"] for o in meta]
        for o in meta:
            f = w.method_options.fields[o["name"]]
            assert f.value() == o["default"] and o["doc"] in f.widget.toolTip()
            if o["type"] == "number":
                assert (f.editor.minimum(), f.editor.maximum()) == (o["min"], o["max"])
        # untouched options are not sent: the model's tuned values apply
        assert w.method_options.changed() == {}
    # the generic params too (the device is a list of the library's devices)
    generic = cellcount.request_options("", "predict")
    assert list(w.options.fields) == [o["name"] for o in generic if o["name"] != "device"]
    for o in generic:
        if o["name"] != "device":
            assert w.options.fields[o["name"]].value() == o["default"], o
    assert w.options.changed() == {}


@needs_exemplar_model()
def test_exemplar_mask_threshold_reaches_the_prediction(make_napari_viewer, run_widget, repo, notes):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-cellcount", "exemplar_cells")
    w = dock(viewer, CountWidget(viewer, "exemplar"))
    w.set_model(EXEMPLAR_MODEL)
    w.image_combo.setCurrentText("two kinds")
    w.exemplar_combo.setCurrentText("exemplars")
    meta = {o["name"]: o for o in cellcount.request_options("exemplar", "predict")}
    f = w.method_options.fields["mask_threshold"]
    f.set(meta["mask_threshold"]["max"] + 1)  # clamped to the declared range
    assert f.value() == meta["mask_threshold"]["max"]
    f.set(meta["mask_threshold"]["min"])      # -1: every pixel counts
    assert w.plan().options == {"mask_threshold": meta["mask_threshold"]["min"]}
    out = run_widget(w)
    assert isinstance(out, dict), out
    boxes = exemplar_boxes_csv(repo)
    with cellcount.Model(EXEMPLAR_MODEL) as m:
        want = m.predict(viewer.layers["two kinds"].data, exemplars=boxes,
                         options={"mask_threshold": meta["mask_threshold"]["min"]})
    assert table_for(viewer).rows[-1]["count"] == want.count


def test_results_stay_with_the_image(make_napari_viewer, run_widget, fixture_model, repo, tmp_path, notes):
    """Issue 21 item 7: a row carries the source file, the plane, the pixel size and unit (the layer's scale
    and units), the counted area and the cells per unit²; a recount replaces its row; an option saves the
    image's rows and points beside the image, replacing only what it wrote before."""
    import shutil

    img = tmp_path / "cells.png"
    shutil.copy(repo / "samples" / "dcl-vgg" / "cells_00000.png", img)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(img))
    layer.scale = (0.5, 0.25)
    layer.units = ("micrometer", "micrometer")
    w = dock(viewer, CountWidget(viewer, "selftest"))
    w.set_model(fixture_model)
    w.image_combo.setCurrentText(layer.name)
    w.save_check.setChecked(True)
    out = run_widget(w)
    assert isinstance(out, dict), out
    table = table_for(viewer)
    (row,) = table.rows
    with cellcount.Model(fixture_model) as m:
        want = m.predict(layer.data)
    area = layer.data.shape[0] * layer.data.shape[1] * 0.5 * 0.25
    assert row["path"] == str(img) and row["plane"] == "" and row["unit"] == "micrometer"
    assert (row["pixel width"], row["pixel height"]) == (0.25, 0.5)
    assert row["area"] == area and row["count"] == want.count
    assert row["cells per unit2"] == pytest.approx(want.count / area)
    counts, points = tmp_path / "cells_cellcount.csv", tmp_path / "cells_cellcount_points.csv"
    assert out["saved"] == [counts, points]
    (saved,) = list(csv.DictReader(counts.open()))
    assert saved["path"] == str(img) and float(saved["count"]) == want.count
    pts = list(csv.DictReader(points.open()))
    assert len(pts) == want.n_points and np.allclose([[float(p["y"]), float(p["x"])] for p in pts], want.yx)

    # a recount replaces the row (and the saved files), it does not add one
    run_widget(w)
    assert len(table.rows) == 1 and len(list(csv.DictReader(counts.open()))) == 1
    # an uncalibrated layer: area in pixels, no density
    layer.scale, layer.units = (1, 1), ("pixel", "pixel")
    run_widget(w)
    assert table.rows[-1]["area"] == layer.data.shape[0] * layer.data.shape[1]
    assert table.rows[-1]["cells per unit2"] == "" and table.rows[-1]["unit"] == "pixel"
    # a file of that name that cellcount did not write is never replaced
    counts.write_text("my own notes\n")
    out = run_widget(w)
    assert out["saved"] == [] and counts.read_text() == "my own notes\n"
    assert any("not written by cellcount" in m for s, m in notes)


def test_the_models_tuned_values_are_shown(make_napari_viewer, repo, fixture_model):
    """Issue 21 item 8 (part): an empty peak threshold means the model's tuned value; the field now shows it
    (it said only "(not set: the model's value)")."""
    import json

    viewer = make_napari_viewer()
    w = CountWidget(viewer, "dcl")
    w.set_model(repo / "models" / "dcl-vgg")
    tuned = json.loads((repo / "models" / "dcl-vgg" / "model.json").read_text())["thresholds"]
    assert f"{tuned['peak_threshold']:.6g}" in w.threshold_edit.placeholderText()
    assert f"{tuned['peak_min_distance']:.6g}" in w.distance_edit.placeholderText()
    w.set_model(fixture_model)  # another model: its own values (or the plain text when it has none)
    own = json.loads((fixture_model / "model.json").read_text()).get("thresholds", {})
    want = f"{own['peak_threshold']:.6g}" if "peak_threshold" in own else "the model's value"
    assert want in w.threshold_edit.placeholderText()


def test_out_of_domain_warnings_are_notified_and_tabled(make_napari_viewer, run_widget, repo, sample, monkeypatch):
    """Issue 24: dcl-adi (RGB tissue) on a grey fluorescence sample. Each of the library's warnings is one
    notification named by the layer, and the table row and the points layer carry them; the binding's
    OutOfDomainWarning (napari's thread worker notifies the warnings raised in it) and the library's log line
    are not shown a second time."""
    from napari_cellcount import _jobs, _widget

    shown, relayed = [], []
    monkeypatch.setattr(_widget, "show_warning", shown.append)
    monkeypatch.setattr(_jobs, "show_warning", shown.append)  # the job's captured library log lines
    make_worker = _jobs.create_worker

    def recording_worker(*args, **kwargs):  # what the thread worker caught, to notify as napari versions may
        worker = make_worker(*args, **kwargs)
        worker.warned.connect(relayed.append)
        return worker

    monkeypatch.setattr(_jobs, "create_worker", recording_worker)
    viewer = make_napari_viewer()
    rgb = np.repeat(sample[:, :, None], 3, axis=2)
    viewer.add_image(rgb, name="grey as rgb", rgb=True)
    w = dock(viewer, CountWidget(viewer, "dcl"))
    w.set_model(repo / "models" / "dcl-adi")
    w.image_combo.setCurrentText("grey as rgb")
    out = run_widget(w)
    assert isinstance(out, dict), out
    ((_, r),) = out["results"]
    with cellcount.Model(repo / "models" / "dcl-adi") as m:
        want = m.predict(rgb, warn=False).warnings
    assert r.warnings == want and {x["code"] for x in want} & {"intensity_out_of_domain", "count_points_disagree"}
    assert shown == [f"grey as rgb: {x['message']}" for x in want]
    assert not [a for a in relayed if issubclass(a[1], cellcount.OutOfDomainWarning)]
    (row,) = table_for(viewer).rows
    assert row["warnings"] == "; ".join(x["message"] for x in want)
    assert viewer.layers["grey as rgb dcl points"].metadata["cellcount"]["warnings"] == {"": want}


def test_the_default_flagged_model_is_offered_first(tmp_path, monkeypatch):
    """Issue 24: the generalist is the default of Count cells; model.json's "default" flag puts it first (before
    models that sort earlier by name), the rest follow by name."""
    from napari_cellcount import _models

    for name, flagged in (("dcl-adi", False), ("dcl-general", True), ("dcl-mbm", False)):
        (tmp_path / name).mkdir()
        meta = {"method": "dcl", **({"default": True} if flagged else {})}
        (tmp_path / name / "model.json").write_text(json.dumps(meta))
    monkeypatch.setenv(_models.MODELS_ENV, str(tmp_path))
    monkeypatch.setattr(_models, "_session_models", [])
    found = [p.name for p in _models.find_models("dcl") if p.parent == tmp_path]
    assert found == ["dcl-general", "dcl-adi", "dcl-mbm"]
