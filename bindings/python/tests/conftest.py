from pathlib import Path

import numpy as np
import pytest

import cellcount
from cellcount.testing import make_fixture_model, make_strict_grey_copy

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def repo() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def fixture_model(tmp_path_factory) -> Path:
    """The selftest model, trained through the binding (synthesize + train) once per session."""
    return make_fixture_model(tmp_path_factory.mktemp("fixture"))


@pytest.fixture(scope="session")
def strict_grey_model(fixture_model, tmp_path_factory) -> Path:
    return make_strict_grey_copy(fixture_model, tmp_path_factory.mktemp("strict") / "model")


@pytest.fixture(scope="session")
def sample_image(repo) -> np.ndarray:
    import imageio.v3 as iio
    return iio.imread(repo / "samples" / "dcl-vgg" / "cells_00000.png")


@pytest.fixture()
def model(fixture_model):
    with cellcount.Model(fixture_model) as m:
        yield m
