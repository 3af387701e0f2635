import os
from pathlib import Path

import pytest

import cellcount
from cellcount.testing import make_fixture_model, make_strict_grey_copy

ROOT = Path(__file__).resolve().parents[2]
EXEMPLAR_MODEL = ROOT / "models" / "exemplar-cells"

# Widgets keep the viewer responsive by running in threads; a job that never ends fails the test here.
JOB_TIMEOUT_MS = int(os.environ.get("CELLCOUNT_TEST_JOB_TIMEOUT_MS", "120000"))


@pytest.fixture(scope="session")
def repo() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def fixture_model(tmp_path_factory) -> Path:
    """The selftest model, trained through the binding once per session."""
    return make_fixture_model(tmp_path_factory.mktemp("fixture"))


@pytest.fixture(scope="session")
def strict_grey_model(fixture_model, tmp_path_factory) -> Path:
    return make_strict_grey_copy(fixture_model, tmp_path_factory.mktemp("strict") / "model")


@pytest.fixture(scope="session")
def sample(repo):
    import imageio.v3 as iio
    return iio.imread(repo / "samples" / "dcl-vgg" / "cells_00000.png")


@pytest.fixture()
def notes():
    """Every napari notification shown during the test: list of (severity name, message)."""
    from napari.utils.notifications import notification_manager

    got = []

    def on(event):
        n = event if not hasattr(event, "value") else event.value
        got.append((str(n.severity).lower(), n.message))

    notification_manager.notification_ready.connect(on)
    yield got
    notification_manager.notification_ready.disconnect(on)


@pytest.fixture()
def run_widget(qtbot):
    """run_widget(widget) -> the outcome its `finished` signal carried (dict on success, else the error)."""
    def run(widget, action=None):
        with qtbot.waitSignal(widget.finished, timeout=JOB_TIMEOUT_MS) as blocker:
            (action or widget.run)()
        return blocker.args[0]
    return run


def needs_exemplar_model():
    """Exemplar tests run on models/exemplar-cells (shipped with the exemplar method, issue 4)."""
    ids = {m["id"] for m in cellcount.methods()}
    return pytest.mark.skipif(
        not (EXEMPLAR_MODEL / "model.json").exists() or "exemplar" not in ids,
        reason="issue 4: needs the exemplar method and models/exemplar-cells (expires when issue 4 lands)")
