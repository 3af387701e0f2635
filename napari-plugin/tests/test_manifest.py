"""The npe2 manifest: installed, valid, one widget per method of the library with the library's names,
sample data that opens."""
import importlib

import numpy as np
import pytest
from npe2 import PluginManifest

import cellcount
from napari_cellcount import CountWidget, TrainWidget
from napari_cellcount._table import table_for


@pytest.fixture(scope="module")
def manifest():
    return PluginManifest.from_distribution("napari-cellcount")


def test_every_command_resolves(manifest):
    for cmd in manifest.contributions.commands:
        module, name = cmd.python_name.split(":")
        assert callable(getattr(importlib.import_module(module), name)), cmd.python_name


def test_one_widget_per_library_method_with_its_name(manifest):
    commands = {c.id: c for c in manifest.contributions.commands}
    widgets = {w.command: w.display_name for w in manifest.contributions.widgets}
    for m in cellcount.methods():  # every counting method of the loaded library has its widget...
        cid = f"napari-cellcount.count_{m['id']}"
        assert cid in widgets, f"method {m['id']} has no widget in napari.yaml"
        assert widgets[cid] == m["display_name"] == commands[cid].title  # ...named as the library names it


def test_napari_opens_the_widgets_and_samples(make_napari_viewer, run_widget):
    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget("napari-cellcount", "Count cells (density)")
    assert isinstance(w, CountWidget) and w.method == "dcl" and w.model_combo.count() >= 1
    assert w.model_combo.itemText(0).startswith("dcl-")  # shipped models of the method, from models/
    _, t = viewer.window.add_plugin_dock_widget("napari-cellcount", "Train a model")
    assert isinstance(t, TrainWidget)
    viewer.open_sample("napari-cellcount", "cells")
    assert viewer.layers["cells_00000"].data.shape == (256, 256)
    assert len(viewer.layers["cells_00000 true cells"].data) == 133  # samples/dcl-vgg/counts.csv
    assert w.image_combo.currentText() == "cells_00000"  # the widget follows the layer list
    viewer.open_sample("napari-cellcount", "cells_stack")
    stack = viewer.layers["cells stack"].data
    assert stack.shape == (6, 256, 256)
    pts = viewer.layers["cells stack true cells"].data
    assert set(np.unique(pts[:, 0])) == set(range(6))
    # the widget napari made (it holds napari's public proxy of the viewer) counts into the viewer's table
    w.image_combo.setCurrentText("cells_00000")
    w.set_model(w.model_combo.itemData(w.model_combo.findText("dcl-vgg")))
    out = run_widget(w)
    assert isinstance(out, dict), out
    assert table_for(viewer).rows[-1]["count"] == out["results"][0][1].count
