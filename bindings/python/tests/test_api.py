"""The binding over the real library: status -> exception mapping with the library's message, cancel and
callback lifetime, numpy views (dtypes, strides), results, the JSON-request calls, defaults from the
library, parity with the CLI on a shipped model and sample, and finding the library."""
import csv
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import cellcount
from cellcount import Cancelled, CellCountError, Status


def synthetic(seed=0, h=64, w=64):
    rng = np.random.default_rng(seed)
    img = rng.normal(10, 2, (h, w)).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(8):
        cy, cx = rng.uniform(6, h - 6), rng.uniform(6, w - 6)
        img += 120 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 2.5 ** 2))
    return img


# ------------------------------------------------------------------ versions and library


def test_versions_agree_with_header(repo):
    header = (repo / "libcellcount/include/cellcount/cellcount.h").read_text()
    assert cellcount.version() == re.search(r'#define CELLCOUNT_VERSION_STRING "([^"]+)"', header).group(1)
    assert cellcount.abi_version() == cellcount.ABI_VERSION


def test_library_info_lists_methods():
    info = cellcount.library_info()
    ids = {m["id"] for m in info["methods"]}
    assert {"dcl", "selftest"} <= ids
    assert "selftest" not in {m["id"] for m in cellcount.methods()}  # fixtures hidden from front ends
    assert "selftest" in {m["id"] for m in cellcount.methods(include_fixtures=True)}


def _python(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_missing_library_lists_where_it_looked(tmp_path):
    r = _python("import cellcount; cellcount.version()", CELLCOUNT_LIBRARY=str(tmp_path / "nope.so"))
    assert r.returncode != 0
    assert "LibraryNotFoundError" in r.stderr and str(tmp_path / "nope.so") in r.stderr
    assert "CELLCOUNT_LIBRARY" in r.stderr
    r = _python("import cellcount; cellcount.version()", CELLCOUNT_LIBRARY=str(tmp_path))  # a folder without it
    assert "no such file" in r.stderr and str(tmp_path) in r.stderr


def test_library_found_through_env_folder():
    folder = str(Path(cellcount.library_path()).parent)
    r = _python("import cellcount; print(cellcount.library_path())", CELLCOUNT_LIBRARY=folder)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith(folder)


def test_openmp_waits_passively_unless_the_user_chose():
    code = "import os, cellcount; cellcount.version(); print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.stdout.strip() == "PASSIVE", r.stderr
    assert _python(code, OMP_WAIT_POLICY="ACTIVE").stdout.strip() == "ACTIVE"


# ------------------------------------------------------------------ errors


def test_missing_model_raises_io_with_library_message(tmp_path):
    with pytest.raises(CellCountError) as e:
        cellcount.Model(tmp_path / "absent")
    assert e.value.status == Status.ERR_IO
    assert e.value.status_name == "CELLCOUNT_ERR_IO"
    assert str(tmp_path / "absent") in e.value.message
    assert not isinstance(e.value, Cancelled)


def test_corrupt_weights_raise_model_format(fixture_model, tmp_path):
    bad = tmp_path / "model"
    shutil.copytree(fixture_model, bad)
    data = bytearray((bad / "weights.pt").read_bytes())
    data[-10] ^= 0xFF
    (bad / "weights.pt").write_bytes(bytes(data))
    with pytest.raises(CellCountError) as e:
        cellcount.Model(bad)
    assert e.value.status == Status.ERR_MODEL_FORMAT and "sha256" in e.value.message


@pytest.mark.parametrize("image,needle", [
    (np.full((64, 64), np.nan, np.float32), "NaN"),
    (np.zeros((64, 64, 2), np.uint8), "channel"),
    (np.zeros((4, 4), np.uint8), "at least"),
])
def test_bad_images_are_refused_with_what_was_expected(model, image, needle):
    with pytest.raises(CellCountError) as e:
        model.predict(image)
    assert e.value.status == Status.ERR_INVALID_ARGUMENT
    assert needle.lower() in e.value.message.lower(), e.value.message


def test_rgb_for_a_strict_one_channel_model_is_refused(strict_grey_model, fixture_model):
    rgb = np.repeat(synthetic()[:, :, None], 3, axis=2)
    with cellcount.Model(strict_grey_model) as m, pytest.raises(CellCountError) as e:
        m.predict(rgb)
    assert "takes 1 channel" in e.value.message and "got 3" in e.value.message
    with cellcount.Model(fixture_model) as m:  # the same weights with rgb_rule "grey" reduce RGB
        assert m.predict(rgb).count == pytest.approx(m.predict(synthetic()).count, rel=1e-4)


def test_exemplars_for_a_model_that_takes_none_are_refused(model):
    with pytest.raises(CellCountError) as e:
        model.predict(synthetic(), exemplars=[[1, 1, 10, 10]])
    assert "exemplar" in e.value.message


def test_binding_level_shape_checks(model):
    with pytest.raises(ValueError, match="2-D"):
        model.predict(np.zeros(64, np.float32))
    with pytest.raises(ValueError, match="region"):
        model.predict(synthetic(), region=np.ones((2, 64, 64)))
    with pytest.raises(TypeError, match="unknown prediction parameter"):
        model.predict(synthetic(), treshold=0.1)


def test_region_of_wrong_size_is_refused(model):
    with pytest.raises(CellCountError, match="region"):
        model.predict(synthetic(), region=np.ones((32, 32), np.uint8))


def test_closed_model(fixture_model):
    m = cellcount.Model(fixture_model)
    m.close()
    m.close()  # twice is fine
    with pytest.raises(ValueError, match="closed"):
        m.predict(synthetic())


# ------------------------------------------------------------------ cancel and callbacks


def test_cancel_raises_cancelled_and_model_stays_usable(model):
    img = synthetic(h=300, w=300)
    before = model.predict(img, tile_size=64, tile_overlap=8)
    seen = []

    def cancel_at_second(f, stage):
        seen.append(stage)
        return len(seen) >= 2

    with pytest.raises(Cancelled) as e:
        model.predict(img, tile_size=64, tile_overlap=8, progress=cancel_at_second)
    assert isinstance(e.value, CellCountError) and e.value.status == Status.CANCELLED
    assert len(seen) == 2
    after = model.predict(img, tile_size=64, tile_overlap=8)
    assert after.count == before.count


def test_progress_runs_to_one(model):
    fr = []
    model.predict(synthetic(h=200, w=200), tile_size=64, tile_overlap=8, progress=lambda f, s: fr.append(f))
    assert len(fr) > 1 and fr == sorted(fr) and fr[-1] == pytest.approx(1.0)


def test_exception_in_callback_propagates(model):
    def boom(f, stage):
        raise ZeroDivisionError("from the callback")

    with pytest.raises(ZeroDivisionError, match="from the callback"):
        model.predict(synthetic(), progress=boom)
    assert model.predict(synthetic()).count > 0


def test_callback_kept_alive_without_caller_reference(model):
    import gc

    class Counter:
        n = 0

        def __call__(self, f, s):
            gc.collect()  # would free an unreferenced trampoline mid-call
            Counter.n += 1

    model.predict(synthetic(h=200, w=200), tile_size=64, tile_overlap=8, progress=Counter())
    assert Counter.n > 1


# ------------------------------------------------------------------ images in, results out


def test_dtypes_and_strides_give_the_same_answer(model):
    u8 = np.clip(synthetic(), 0, 255).astype(np.uint8)
    ref = model.predict(u8)
    assert model.predict(u8.astype(np.float32)).count == pytest.approx(ref.count, rel=1e-5)
    assert model.predict(u8.astype(np.uint16) * 257).count == pytest.approx(ref.count, rel=1e-4)
    assert model.predict(u8.astype(np.float64)).count == pytest.approx(ref.count, rel=1e-5)
    big = np.zeros((80, 100), np.uint8)
    big[5:69, 20:84] = u8
    view = big[5:69, 20:84]  # borrowed with its row stride, no copy
    assert not view.flags.c_contiguous
    assert model.predict(view).count == ref.count
    assert model.predict(np.asfortranarray(u8)).count == ref.count
    assert model.predict(u8.T.copy().T).count == ref.count


def test_result_fields(model):
    img = synthetic()
    r = model.predict(img)
    assert r.device == "cpu" and r.precision == "fp32" and r.seconds > 0
    assert r.density.shape == img.shape and r.density.dtype == np.float32
    assert float(r.density.sum()) == pytest.approx(r.count, rel=1e-3, abs=1e-3)
    assert r.class_counts.sum() == pytest.approx(r.count)
    assert r.xy.shape == (r.n_points, 2) and r.scores.shape == (r.n_points,)
    assert ((r.xy >= 0) & (r.xy < 64)).all()
    assert np.array_equal(r.yx, r.xy[:, ::-1])
    assert r.classes == model.classes
    assert model.predict(img, want_density=False).density is None


def test_region_counts_only_inside(model):
    img = synthetic()
    full = model.predict(img)
    region = np.zeros(img.shape, bool)
    region[:, :32] = True
    half = model.predict(img, region=region)
    assert half.count == pytest.approx(float(full.density[:, :32].sum()), rel=1e-4, abs=1e-4)
    assert (half.xy[:, 0] < 32).all()


def test_no_params_means_library_defaults(model):
    img = synthetic()
    d = cellcount.predict_defaults()
    assert set(d) == {"device", "precision", "tile_size", "tile_overlap", "peak_threshold", "peak_min_distance",
                      "mask_threshold", "want_density"}
    a, b = model.predict(img), model.predict(img, **d)
    assert a.count == b.count and np.array_equal(a.xy, b.xy)


def test_stack_plane_by_plane(model):
    stack = np.stack([synthetic(s) for s in range(3)])
    fr = []
    rs = model.predict_stack(stack, progress=lambda f, s: fr.append((f, s)))
    assert [r.count for r in rs] == [model.predict(p).count for p in stack]
    assert fr[-1][0] == pytest.approx(1.0) and "plane 3/3" in fr[-1][1]


def test_distinct_handles_run_concurrently(fixture_model):
    imgs = [synthetic(s, 128, 128) for s in range(4)]
    with cellcount.Model(fixture_model) as m:
        want = [m.predict(i).count for i in imgs]
    got = [None] * 4

    def work(k):
        with cellcount.Model(fixture_model) as m:
            got[k] = m.predict(imgs[k]).count

    ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert got == want


def test_log_reaches_python_logging(tmp_path):
    records = []
    cellcount.set_log_handler(lambda level, msg: records.append((level, msg)), logging.DEBUG)
    try:
        with pytest.raises(CellCountError):
            cellcount.Model(tmp_path / "absent")
    finally:
        cellcount.set_log_handler()
    assert any(str(tmp_path / "absent") in m for _, m in records)


# ------------------------------------------------------------------ parity with the CLI


def test_count_matches_the_cli_on_a_sample(repo, fixture_model, sample_image, tmp_path):
    """The CLI reads the PNG itself; the binding gets the pixels from numpy: same pixels, same answer."""
    cli = Path(cellcount.library_path()).resolve().parents[1] / "bin" / "cellcount"
    assert cli.exists(), f"the CLI is built beside the library: {cli}"
    out = tmp_path / "counts.csv"
    subprocess.run([str(cli), "count", "--model", str(fixture_model), str(repo / "samples/dcl-vgg/cells_00000.png"),
                    "--csv", str(out)], check=True, capture_output=True, timeout=300)
    row = next(csv.DictReader(out.open()))
    r = cellcount.count(fixture_model, sample_image)
    assert r.count == pytest.approx(float(row["count"]), abs=2e-3)
    assert r.n_points == int(row["points"]) > 0


# ------------------------------------------------------------------ train, evaluate, synthesize


def test_request_defaults_come_from_the_library():
    d = cellcount.request_defaults("selftest", "train")
    assert d["method"] == "selftest" and "epochs" in d and "lr" in d
    with pytest.raises(CellCountError) as e:
        cellcount.request_defaults("nosuchmethod", "train")
    assert e.value.status == Status.ERR_WRONG_METHOD and "dcl" in e.value.message
    with pytest.raises(CellCountError, match="kind"):
        cellcount.request_defaults("selftest", "bake")


def test_train_sends_only_given_fields_and_the_library_fills_the_rest(fixture_model):
    meta = json.loads((fixture_model / "model.json").read_text())
    req = meta["provenance"]["request"]
    d = cellcount.request_defaults("selftest", "train")
    assert req["epochs"] == 12 and req["seed"] == 1  # what make_fixture_model gave
    for k in ("lr", "batch_size", "width", "sigma", "optimizer"):
        assert req[k] == d[k], k  # everything else is the library's default


def test_unknown_request_field_is_refused(tmp_path, fixture_model):
    with pytest.raises(CellCountError) as e:
        cellcount.train("selftest", fixture_model.parent / "data", tmp_path / "m", epoks=3)
    assert e.value.status == Status.ERR_INVALID_ARGUMENT and "epoks" in e.value.message
    assert not (tmp_path / "m").exists()


def test_cancelled_training_writes_no_model(tmp_path, fixture_model):
    with pytest.raises(Cancelled):
        cellcount.train("selftest", fixture_model.parent / "data", tmp_path / "m", epochs=50,
                        progress=lambda f, s: f > 0.05)
    assert not (tmp_path / "m" / "model.json").exists()


def test_evaluate_and_synthesize(tmp_path, fixture_model):
    rep = cellcount.evaluate(fixture_model, fixture_model.parent / "data", split="all")
    assert rep["n"] == 12 and rep["mae"] >= 0
    out = tmp_path / "syn"
    rep = cellcount.synthesize(out, n=2, width=32, height=32)
    assert rep["n"] == 2 and (out / "counts.csv").exists()
    with pytest.raises(CellCountError) as e:  # never overwritten unless asked
        cellcount.synthesize(out, n=2, width=32, height=32)
    assert e.value.status == Status.ERR_IO
    cellcount.synthesize(out, n=2, width=32, height=32, overwrite=True)
