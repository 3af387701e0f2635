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
import warnings
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
    # default precision "auto": fp32, or bf16 on a CPU with AMX / AVX512-BF16 when its count held
    assert r.device == "cpu" and r.precision in ("fp32", "bf16") and r.seconds > 0
    assert model.predict(img, precision="fp32").precision == "fp32"
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
                      "want_density", "peak_threshold_relative", "normalization_range"}
    assert {o["name"] for o in cellcount.request_options("", "predict")} == set(d)  # one list, the library's
    a, b = model.predict(img), model.predict(img, **d)
    assert a.count == b.count and np.array_equal(a.xy, b.xy)


def test_normalization_range_is_the_librarys_percentiles(model):
    """Issue 26: normalization_range computes the range the library takes from an image (grey, RGB through the
    model's rule, and above 2^20 values on its subsample), so giving it back changes nothing; a range taken from a
    whole image makes a piece count as inside the whole."""
    import dask.array as da
    rng = np.random.default_rng(3)
    big = np.tile(synthetic(), (17, 17)) * np.linspace(0.5, 1.5, 64 * 17, dtype=np.float32)  # 1088 x 1088 > 2^20
    rgb = np.stack([synthetic(1), synthetic(2), synthetic(3)], -1)
    for img in (synthetic(), big, rgb, (rng.random((40, 50)) * 4000).astype(np.uint16)):
        nr = cellcount.normalization_range(model.info, img)
        assert nr[0] < nr[1]
        assert cellcount.normalization_range(model.info, da.from_array(img, chunks=300)) == pytest.approx(nr)
        a, b = model.predict(img), model.predict(img, normalization_range=nr)
        assert b.count == pytest.approx(a.count, rel=1e-5, abs=1e-6) and len(a.xy) == len(b.xy)
    piece = big[:256, :256]  # the dim corner: its own percentiles differ from the whole's
    whole_range = cellcount.normalization_range(model.info, big)
    own = model.predict(piece).count
    as_in_whole = model.predict(piece, normalization_range=whole_range).count
    assert as_in_whole != pytest.approx(own, rel=1e-3)
    assert model.predict(img, normalization_range=[]).count == model.predict(img).count
    with pytest.raises(cellcount.CellCountError, match="normalization_range"):
        model.predict(img, normalization_range=[5, 1])
    with pytest.raises(cellcount.CellCountError, match="normalization_range"):
        model.predict(img, options={"normalization_range": [1, "x"]})


def test_class_fractions_are_the_class_counts_shares(repo, fixture_model):
    """Issue 22: the library's measurements give each class's share of the classified cells, in the model's
    class order (what the CLI, Fiji and napari tables show); null for each class when no cell was counted."""
    import imageio.v3 as iio
    image = iio.imread(repo / "samples" / "llp-wbc" / "images" / "donor0001_00.png")
    with cellcount.Model(repo / "models" / "llp-wbc") as m:
        r = m.predict(image)
        fr = r.measurements["class_fractions"]
        assert len(fr) == len(m.classes) == 3 and r.count > 0
        assert fr == pytest.approx(list(r.class_counts / r.class_counts.sum()))
        assert sum(fr) == pytest.approx(1.0)
        flat = np.full_like(image, int(np.median(image)))  # a uniform hologram: no detection
        empty = m.predict(flat)
        assert empty.count == 0 and empty.measurements["class_fractions"] == [None, None, None]
    with cellcount.Model(fixture_model) as m:  # one class: its share is 1 (or null without cells)
        r = m.predict(synthetic(1))
        assert r.measurements["class_fractions"] == ([1.0] if r.count > 0 else [None])


def test_methods_computing_fp32_report_fp32(repo):
    """Issue 25: llp and twinvae compute in fp32 whatever precision is asked; the result says what ran."""
    img = (synthetic(h=160, w=160) * 2).astype(np.float32)
    for name in ("llp-fluo", "twinvae-bf"):
        with cellcount.Model(repo / "models" / name) as m:
            assert m.predict(img, precision="bf16").precision == "fp32", name
    with cellcount.Model(repo / "models" / "twinvae-bf") as m:  # a fixed normalisation: nothing to give
        assert cellcount.normalization_range(m.info, img) is None
        with pytest.raises(cellcount.CellCountError, match="normalization_range applies to models"):
            m.predict(img, normalization_range=[0, 255])


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


# ------------------------------------------------------------------ method options as data (ABI 2)


def _c_json(fn, *args):
    """The C ABI's own JSON answer, through ctypes directly (not through api.py)."""
    from ctypes import byref, c_void_p
    from cellcount import _lib
    out = c_void_p()
    assert getattr(_lib.lib(), fn)(*[a.encode() for a in args], byref(out)) == 0, _lib.lib().cellcount_last_error()
    try:
        return json.loads(ctypes_string(out))
    finally:
        _lib.lib().cellcount_string_free(out)


def ctypes_string(p):
    import ctypes
    return ctypes.string_at(p.value).decode()


TYPES = {"int", "number", "bool", "string", "choice", "path", "int_list", "number_list", "string_list", "object", "json"}


@pytest.mark.parametrize("method,kind", [("dcl", "train"), ("exemplar", "train"), ("exemplar", "predict"),
                                         ("", "predict")])
def test_option_metadata_round_trips(method, kind):
    meta = cellcount.request_options(method, kind)
    assert meta == _c_json("cellcount_request_options", method, kind)  # names, types, defaults, ranges, docs
    defaults = cellcount.request_defaults(method, kind)
    assert [m["name"] for m in meta] and {m["name"] for m in meta} == set(defaults)
    for m in meta:
        assert m["type"] in TYPES, m
        assert m["default"] == defaults[m["name"]], m
        if m["type"] == "choice":
            assert m["default"] in m["choices"], m
        if m["type"] in ("int", "number") and m["default"] is not None:
            assert m.get("min", -np.inf) <= m["default"] <= m.get("max", np.inf), m


def test_exemplar_declares_its_predict_options():
    mt, loc = cellcount.request_options("exemplar", "predict")
    assert (mt["name"], mt["type"], mt["min"], mt["max"]) == ("mask_threshold", "number", -1.0, 1.0)
    assert (loc["name"], loc["type"], loc["default"]) == ("localize", "bool", True)
    assert mt["doc"] and cellcount.request_defaults("exemplar", "predict") == {"mask_threshold": mt["default"],
                                                                               "localize": True}
    assert cellcount.request_options("selftest", "predict") == []
    with pytest.raises(CellCountError) as e:
        cellcount.request_options("exemplar", "nonsense")
    assert e.value.status == Status.ERR_INVALID_ARGUMENT and "predict" in e.value.message


@pytest.fixture(scope="module")
def exemplar_model(repo):
    if not (repo / "models" / "exemplar-cells" / "model.json").exists():
        pytest.fail("models/exemplar-cells is missing from the checkout")
    with cellcount.Model(repo / "models" / "exemplar-cells") as m:
        yield m


def test_predict_options_are_checked_by_the_library(exemplar_model, model):
    img = synthetic(0, 64, 64)
    box = [[10, 10, 20, 20]]
    assert [o["name"] for o in exemplar_model.predict_options()] == ["mask_threshold", "localize"]
    with pytest.raises(CellCountError) as e:
        exemplar_model.predict(img, box, options={"mask_threshold": 2})
    assert e.value.status == Status.ERR_INVALID_ARGUMENT and "mask_threshold" in e.value.message
    with pytest.raises(CellCountError) as e:
        exemplar_model.predict(img, box, options={"mask_treshold": 0.5})
    assert "unknown option" in e.value.message and "mask_treshold" in e.value.message
    with pytest.raises(CellCountError) as e:  # selftest has no options of its own
        model.predict(img, options={"mask_threshold": 0.5})
    assert "unknown option" in e.value.message
    with pytest.raises(TypeError):  # the old params field is gone: it is an option now
        model.predict(img, mask_threshold=0.5)


def test_mask_threshold_option_changes_the_exemplar_count(exemplar_model, repo):
    ds = cellcount.read_dataset(repo / "samples" / "exemplar-cells")
    sample = ds["samples"][0]
    img = cellcount.read_image(repo / "samples" / "exemplar-cells" / sample["image"])[0]
    boxes = sample["boxes"][:3]
    default = exemplar_model.predict(img, boxes)
    model_value = exemplar_model.info["thresholds"]["mask_threshold"]
    same = exemplar_model.predict(img, boxes, options={"mask_threshold": model_value})
    assert same.count == default.count  # left out = the model's value
    loose = exemplar_model.predict(img, boxes, options={"mask_threshold": 0.0})
    strict = exemplar_model.predict(img, boxes, options={"mask_threshold": 0.9})
    assert loose.count > strict.count  # the option reaches the method


# ------------------------------------------------------------------ image files, datasets, split, metrics


def test_read_image_matches_imageio(repo, sample_image):
    planes = cellcount.read_image(repo / "samples" / "dcl-vgg" / "cells_00000.png")
    assert len(planes) == 1 and planes[0].dtype == np.float32
    ref = sample_image.astype(np.float32)
    assert planes[0].shape == ref.shape[:2] + ((3,) if ref.ndim == 3 and ref.shape[2] >= 3 else ())
    assert np.array_equal(planes[0], ref[..., :3] if ref.ndim == 3 else ref)
    assert cellcount.is_image_file("a.TIF") and not cellcount.is_image_file("a.csv")
    with pytest.raises(CellCountError) as e:
        cellcount.read_image(repo / "nope.png")
    assert e.value.status == Status.ERR_IO and "nope.png" in e.value.message


def test_write_image_and_overlay(tmp_path):
    img = synthetic()
    cellcount.write_image(tmp_path / "d.tif", img, bit_depth=32)
    assert np.array_equal(cellcount.read_image(tmp_path / "d.tif")[0], img)
    with pytest.raises(CellCountError) as e:
        cellcount.write_image(tmp_path / "d.tif", img, bit_depth=32)
    assert e.value.status == Status.ERR_IO
    cellcount.write_overlay(tmp_path / "o.png", img, [[5, 5], [20, 30]], [0, 1])
    ov = cellcount.read_image(tmp_path / "o.png")[0]
    assert ov.shape == (64, 64, 3)


def test_metrics_by_the_library():
    pred, truth = [10.0, 4.0, 7.5], [12.0, 4.0, 5.0]
    m = cellcount.metrics(pred, truth)
    e = np.abs(np.subtract(pred, truth))
    assert m["n"] == 3 and m["mae"] == pytest.approx(e.mean()) and m["rmse"] == pytest.approx(np.sqrt((e ** 2).mean()))
    assert m["nae"] == pytest.approx((e / truth).mean())
    m = cellcount.metrics([2], [2], points=[([[0, 0], [10, 10]], [[1, 0], [50, 50]])], radius=3)
    assert (m["tp"], m["fp"], m["fn"]) == (1, 1, 1) and m["f1"] == pytest.approx(0.5)
    with pytest.raises(CellCountError) as e:
        cellcount.metrics([1, 2], [1])
    assert e.value.status == Status.ERR_INVALID_ARGUMENT


def test_dataset_read_and_split(fixture_model, tmp_path):
    data = fixture_model.parent / "data"
    ds = cellcount.read_dataset(data)
    assert len(ds["samples"]) == 12 and all(s["count"] == len(s["points"]) for s in ds["samples"])
    r = cellcount.split(data, tmp_path / "split.csv", ratios=(2, 1, 1), seed=3)
    assert r["train"] + r["test"] + r["val"] == 12
    again = cellcount.read_dataset(data, tmp_path / "split.csv")
    assert sum(s["split"] == "train" for s in again["samples"]) == r["train"]
    with pytest.raises(CellCountError) as e:
        cellcount.split(data, tmp_path / "split.csv")
    assert e.value.status == Status.ERR_IO


# ------------------------------------------------------------------ cellcount.h, measurements (issue 21)


def test_peak_threshold_scale_is_the_librarys(model):
    """The 0-1 peak threshold: the library's scale (ends, round trip), the model's value on it in its info, and
    a relative threshold given to predict acts as that absolute threshold."""
    assert cellcount.peak_threshold_relative(0.0002) == 0 and cellcount.peak_threshold_relative(0.5) == 1
    assert cellcount.peak_threshold_absolute(cellcount.peak_threshold_relative(0.004)) == pytest.approx(0.004)
    with pytest.raises(cellcount.CellCountError, match="relative threshold must be in"):
        cellcount.peak_threshold_absolute(1.5)
    pt = model.info["peak_threshold"]
    assert pt["relative"] == pytest.approx(cellcount.peak_threshold_relative(pt["value"]))
    img = synthetic()
    a = model.predict(img)
    b = model.predict(img, peak_threshold_relative=pt["relative"])
    assert np.array_equal(a.xy, b.xy)
    c = model.predict(img, peak_threshold_relative=0.3)
    d = model.predict(img, peak_threshold=cellcount.peak_threshold_absolute(0.3))
    assert np.array_equal(c.xy, d.xy)
    with pytest.raises(cellcount.CellCountError, match="peak_threshold_relative"):
        model.predict(img, peak_threshold_relative=2)


def test_measurements_are_the_librarys(model):
    """Counted area, cells per unit², per-point intensity and labels come from the library."""
    img = synthetic()
    r = model.predict(img, calibration={"pixel_width": 0.5, "pixel_height": 2.0, "unit": "um"})
    m = r.measurements
    h, w = img.shape[:2]
    assert m["counted_pixels"] == h * w and m["area"] == h * w * 1.0 and m["calibrated"]
    assert m["cells_per_unit2"] == pytest.approx(r.count / (h * w))
    assert len(m["points"]) == r.n_points and len(r.intensities) == r.n_points
    x, y = np.round(r.xy[0]).astype(int)
    rad = m["intensity_radius"]
    yy, xx = np.mgrid[0:h, 0:w]
    disc = (yy - y) ** 2 + (xx - x) ** 2 <= rad * rad
    assert r.intensities[0] == pytest.approx(float(np.asarray(img, np.float64)[disc].mean()), rel=1e-5)
    assert r.labels is None and not m["labels"]["available"] and "gives no mask" in m["labels"]["reason"]
    region = np.zeros(img.shape[:2], np.uint8)
    region[:, : w // 2] = 1
    half = model.predict(img, region=region)
    assert half.measurements["counted_pixels"] == h * (w // 2) and half.measurements["cells_per_unit2"] is None
    with pytest.raises(cellcount.CellCountError, match="pixel_width"):
        model.predict(img, calibration={"pixel_width": -1})


def test_export_bioimageio_package(repo, tmp_path):
    """cellcount.export wraps cellcount_export: a zip with rdf.yaml and the files the report lists; never over
    an existing file; an unknown format named in the error."""
    import zipfile
    out = tmp_path / "dcl-vgg.zip"
    rep = cellcount.export(repo / "models" / "dcl-vgg", out, size=64)
    assert rep["format"] == "bioimageio" and rep["method"] == "dcl" and out.is_file()
    names = set(zipfile.ZipFile(out).namelist())
    assert "rdf.yaml" in names and {f["name"] for f in rep["files"]} <= names
    with pytest.raises(cellcount.CellCountError) as e:
        cellcount.export(repo / "models" / "dcl-vgg", out, size=64)
    assert e.value.status == cellcount.Status.ERR_IO and out.stat().st_size > 0
    with pytest.raises(cellcount.CellCountError, match="format"):
        cellcount.export(repo / "models" / "dcl-vgg", tmp_path / "x.zip", format="onnx")


# ------------------------------------------------------------------ out-of-domain warnings (issue 24)

DOMAIN_CODES = {"intensity_out_of_domain", "cell_density_out_of_domain", "density_saturated", "count_points_disagree",
                "cell_size_out_of_range", "cell_size_unknown"}


def test_the_cell_size_is_estimated_when_not_given(repo, model):
    """dcl-general (model.json cell_diameter) with diameter 0 estimates the cells' size from the image (the middle of
    the range of diameters where the count holds); its synthetic samples of large (renderer: 20 px) and small
    (7.5 px) cells get sizes apart, and no warning. A given diameter is used as given; a model without a cell size
    reports none."""
    general = repo / "models" / "dcl-general"
    assert json.loads((general / "model.json").read_text())["cell_diameter"] > 0
    samples = repo / "samples" / "dcl-general"
    with cellcount.Model(general) as m:
        large = m.predict(cellcount.read_image(samples / "large_2.png")[0], options={"localize": False})
        small = m.predict(cellcount.read_image(samples / "small_0.png")[0], options={"localize": False})
        for r in (large, small):
            assert r.measurements["diameter"]["source"] == "estimated"
            assert r.warnings == []
        assert large.measurements["diameter"]["value"] > 1.4 * small.measurements["diameter"]["value"]
        given = m.predict(cellcount.read_image(samples / "small_0.png")[0], options={"diameter": 7.5, "localize": False})
        assert given.measurements["diameter"] == {"value": 7.5, "source": "given"}
        assert given.count != small.count
    assert model.predict(np.zeros((64, 64), np.float32)).measurements["diameter"] is None


def test_no_warning_for_a_model_on_its_own_kind_of_image(repo, sample_image):
    with cellcount.Model(repo / "models" / "dcl-vgg") as m, warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        r = m.predict(sample_image)
    assert r.warnings == [] and r.measurements["warnings"] == []
    assert not [w for w in got if issubclass(w.category, cellcount.OutOfDomainWarning)]


def test_an_image_unlike_the_training_images_warns(repo, sample_image, caplog):
    """dcl-adi (RGB adipocyte tissue, model.json "domain" fitted on its train split) on a grey fluorescence
    sample: the library's warnings in Result.warnings, one OutOfDomainWarning each, attributed to the caller."""
    adi = repo / "models" / "dcl-adi"
    assert "domain" in json.loads((adi / "model.json").read_text())
    rgb = np.repeat(sample_image[:, :, None], 3, axis=2)
    caplog.set_level(logging.DEBUG, logger="cellcount")
    with cellcount.Model(adi) as m:
        with pytest.warns(cellcount.OutOfDomainWarning) as got:
            r = m.predict(rgb)
        assert {w["code"] for w in r.warnings} & {"intensity_out_of_domain", "count_points_disagree"}
        assert {w["code"] for w in r.warnings} <= DOMAIN_CODES
        assert all(set(w) == {"code", "message", "value", "limit"} for w in r.warnings)
        assert r.warnings == r.measurements["warnings"]  # one array, two ways to read it
        mine = [w for w in got if issubclass(w.category, cellcount.OutOfDomainWarning)]
        assert [str(w.message) for w in mine] == [w["message"] for w in r.warnings]
        assert {w.filename for w in mine} == {__file__}  # the caller's line, not the binding's
        # not logged by the library: Python says each once (the OutOfDomainWarning)
        assert not [rec for rec in caplog.records if rec.name == "cellcount" and
                    any(rec.getMessage().endswith(w["message"]) for w in r.warnings)]
        with warnings.catch_warnings():
            warnings.simplefilter("error", cellcount.OutOfDomainWarning)
            quiet = m.predict(rgb, warn=False)  # front ends that show Result.warnings themselves
            with pytest.raises(cellcount.OutOfDomainWarning):  # a filter turns them into errors, as any warning
                m.predict(rgb)
    assert quiet.warnings == r.warnings
    with pytest.warns(cellcount.OutOfDomainWarning) as got:
        cellcount.count(adi, rgb)
    assert {w.filename for w in got if issubclass(w.category, cellcount.OutOfDomainWarning)} == {__file__}
