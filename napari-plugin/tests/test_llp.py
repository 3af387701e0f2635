"""llp models in napari with no method-specific front-end code: points coloured and labelled by class, per-class
counts and proportions in the table, all equal to the library's answer (models/llp-wbc on its simulator sample)."""
import numpy as np
import pytest

import cellcount
from napari_cellcount import CountWidget
from napari_cellcount._table import table_for

MODEL = "llp-wbc"


def test_llp_classes_in_points_and_table(make_napari_viewer, run_widget, repo, notes):
    if "llp" not in {m["id"] for m in cellcount.library_info()["methods"]} or not (repo / "models" / MODEL).is_dir():
        pytest.skip("this build has no llp method or no models/llp-wbc")
    import imageio.v3 as iio
    image = iio.imread(repo / "samples" / MODEL / "images" / "donor0001_00.png")
    viewer = make_napari_viewer()
    viewer.add_image(image, name="holo")
    w = CountWidget(viewer, "llp")
    viewer.window.add_dock_widget(w, name=w.title)
    w.set_model(repo / "models" / MODEL)
    w.image_combo.setCurrentText("holo")
    out = run_widget(w)
    assert isinstance(out, dict), out
    assert not [m for s, m in notes if "error" in s]
    with cellcount.Model(repo / "models" / MODEL) as m:
        want = m.predict(image)
        classes = m.info["classes"]
    assert sorted(classes) == ["granulocyte", "lymphocyte", "monocyte"]  # (in order of first appearance in the CSVs)
    pts = viewer.layers["holo llp points"]
    assert len(pts.data) == want.n_points > 5
    assert list(pts.features["class"].astype(str)) == [classes[k] for k in want.class_ids]
    assert len(set(map(tuple, np.asarray(pts.border_color)[:, :3].round(3)))) == len(set(want.class_ids))  # rings by class
    (row,) = table_for(viewer).rows
    for k, c in enumerate(classes):
        assert row[f"count {c}"] == pytest.approx(want.class_counts[k])
    assert sum(row[f"count {c}"] for c in classes) == pytest.approx(want.count)
    # the proportions are the library's (class_fractions): each class's count over the count
    for k, c in enumerate(classes):
        assert row[f"fraction {c}"] == pytest.approx(want.measurements["class_fractions"][k])
        assert row[f"fraction {c}"] == pytest.approx(want.class_counts[k] / want.count)
