"""Helpers for the binding's and the napari plugin's tests: a fixture model trained through the binding
itself (method "selftest", a tiny density network, synthetic 64x64 cells), so the tests need no shipped
model and exercise synthesize + train for real. Not part of the public API."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from . import api


def make_fixture_model(folder: str | Path, *, epochs: int = 12) -> Path:
    """Synthesises 12 small images and trains the selftest method on them (a few seconds on 2 cores).
    Returns the model folder. Deterministic (fixed seeds); quality is irrelevant to the front-end tests,
    which compare the front ends with the library's own answer."""
    folder = Path(folder)
    api.synthesize(folder / "data", n=12, width=64, height=64, min_cells=3, max_cells=12, seed=7)
    api.train("selftest", folder / "data", folder / "model", epochs=epochs, seed=1)
    return folder / "model"


def make_strict_grey_copy(model: str | Path, folder: str | Path) -> Path:
    """A copy of a 1-channel model that takes ONLY 1-channel images (no "rgb_rule" that would reduce RGB):
    the case where the library refuses a 3-channel image. Only model.json changes; the weights and their
    checksum stay as they are."""
    src, dst = Path(model), Path(folder)
    shutil.copytree(src, dst)
    meta = json.loads((dst / "model.json").read_text())
    assert meta["input"]["channels"] == 1, "make_strict_grey_copy expects a 1-channel model"
    meta["input"]["rgb_rule"] = ""
    (dst / "model.json").write_text(json.dumps(meta, indent=2))
    return dst
