"""cellcount.dask on a LocalCluster: rows identical to `cellcount count --csv`, one model load per worker
process (the WorkerPlugin), reruns that skip what the table holds, a torn last row dropped, a worker killed
mid-run (no row lost or doubled), Parquet tables, bad files reported without a row, and count_array's
block ownership (halo from the model's info, one block = one library call)."""
import csv
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import pyarrow.parquet as pq  # scripts/setup-python.sh installs dask[distributed], pyarrow and tifffile
import tifffile
from distributed import Client, LocalCluster

import cellcount
import cellcount.dask as ccd

COMPARED = [c for c in ccd.CLI_COLUMNS if c != "seconds"]  # seconds is a measurement of each run


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A dataset folder (images + counts.csv, so the truth columns are filled) and a 3-plane TIFF stack."""
    root = tmp_path_factory.mktemp("dask-images")
    cellcount.synthesize(root / "ds", n=10, width=64, height=64, min_cells=3, max_cells=12, seed=11)
    planes = [cellcount.read_image(p)[0] for p in sorted((root / "ds").rglob("*.png"))[:3]]
    (root / "stacks").mkdir()
    tifffile.imwrite(root / "stacks" / "stack.tif", np.stack(planes).astype(np.uint8), photometric="minisblack")
    assert len(cellcount.read_image(root / "stacks" / "stack.tif")) == 3
    return root


@pytest.fixture(scope="module")
def thread_client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        yield client


def cli_rows(fixture_model, inputs, out):
    cli = Path(cellcount.library_path()).resolve().parents[1] / "bin" / "cellcount"
    assert cli.exists(), f"the CLI is built beside the library: {cli}"
    r = subprocess.run([str(cli), "count", "--model", str(fixture_model), "--csv", str(out), "--threads", "1",
                        *map(str, inputs)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return read_rows(out)


def test_rows_match_the_cli_and_a_rerun_skips_them(thread_client, fixture_model, images, tmp_path):
    inputs = [images / "ds", images / "stacks" / "stack.tif"]
    out = tmp_path / "counts.csv"
    rep = ccd.count_files(thread_client, inputs, fixture_model, out=out)
    assert rep.ok and rep.written == 13 and rep.skipped == 0, rep
    rows = read_rows(out)
    assert list(rows[0]) == ccd.COLUMNS
    cli = cli_rows(fixture_model, inputs, tmp_path / "cli.csv")
    assert len(cli) == 13
    key = lambda r: (r["image"], int(r["slice"]))  # noqa: E731 - rows come in completion order
    assert sorted(([r[c] for c in COMPARED] for r in rows), key=lambda v: (v[0], int(v[1]))) == \
        sorted(([r[c] for c in COMPARED] for r in cli), key=lambda v: (v[0], int(v[1])))
    assert all(r["truth"] != "" for r in rows if "ds" in Path(r["image"]).parts)  # from the folder's counts.csv
    assert {int(r["slice"]) for r in rows if r["image"].endswith("stack.tif")} == {1, 2, 3}
    assert {r["model_sha256"] for r in rows} == {ccd._model_sha(str(fixture_model))}
    assert {r["library_version"] for r in rows} == {cellcount.version()}
    assert len({r["key"] for r in rows}) == 13 and len({key(r) for r in rows}) == 13
    # the plugin loaded the model once in the (one, shared) worker process
    assert set(thread_client.run(ccd._loads).values()) == {1}

    again = ccd.count_files(thread_client, inputs, fixture_model, out=out)
    assert again.written == 0 and again.skipped == 13 and again.ok
    assert read_rows(out) == rows

    # other settings are other rows; the same settings again skip them
    other = ccd.count_files(thread_client, [images / "ds"], fixture_model, out=out, peak_threshold=0.5)
    assert other.written == 10
    assert ccd.count_files(thread_client, [images / "ds"], fixture_model, out=out, peak_threshold=0.5).written == 0


def test_a_partial_table_is_completed_and_a_torn_row_dropped(thread_client, fixture_model, images, tmp_path):
    full = tmp_path / "full.csv"
    ccd.count_files(thread_client, [images / "ds"], fixture_model, out=full)
    text = full.read_text().splitlines(keepends=True)
    part = tmp_path / "part.csv"
    part.write_text("".join(text[:5]) + text[5][:17])  # header + 4 rows + a row cut mid-write
    rep = ccd.count_files(thread_client, [images / "ds"], fixture_model, out=part)
    assert rep.written == 6 and rep.skipped == 4
    strip = lambda rows: sorted(tuple(r[c] for c in ccd.COLUMNS if c != "seconds") for r in rows)  # noqa: E731
    assert strip(read_rows(part)) == strip(read_rows(full))


def test_a_foreign_file_is_refused_and_kept(thread_client, fixture_model, images, tmp_path):
    out = tmp_path / "mine.csv"
    out.write_text("a,b\n1,2\n")
    with pytest.raises(cellcount.CellCountError, match="not a table of cellcount.dask"):
        ccd.count_files(thread_client, [images / "ds"], fixture_model, out=out)
    assert out.read_text() == "a,b\n1,2\n"
    with pytest.raises(TypeError, match="unknown prediction parameter"):
        ccd.count_files(thread_client, [images / "ds"], fixture_model, out=tmp_path / "x.csv", tile=64)


def test_a_bad_file_gets_no_row_and_a_repeated_one_counts_once(thread_client, fixture_model, images, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    good = sorted((images / "ds").rglob("*.png"))[:2]
    out = tmp_path / "t.csv"
    rep = ccd.count_files(thread_client, [*good, bad, good[0]], fixture_model, out=out)
    assert rep.written == 2 and rep.skipped == 1 and not rep.ok  # a file given twice is counted once
    assert [f[0] for f in rep.failed] == [str(bad)] and rep.failed[0][1].startswith("CELLCOUNT_ERR")
    assert {r["image"] for r in read_rows(out)} == {str(g) for g in good}


def test_parquet_table(thread_client, fixture_model, images, tmp_path):
    out = tmp_path / "counts.parquet"
    assert ccd.count_files(thread_client, [images / "ds"], fixture_model, out=out).written == 10
    assert not Path(str(out) + ".journal.csv").exists()
    t = pq.read_table(out)
    assert t.column_names == ccd.COLUMNS and t.num_rows == 10
    assert str(t.schema.field("count").type) == "double"
    assert ccd.count_files(thread_client, [images / "ds"], fixture_model, out=out).skipped == 10
    assert pq.read_table(out).num_rows == 10


def test_a_killed_worker_loses_and_doubles_no_row(fixture_model, images, tmp_path):
    """Nanny-managed worker processes; the one busy with a task is killed (SIGKILL) after the first row.
    The scheduler reruns its tasks elsewhere (or on the nanny's new process); the table has every row once."""
    many = tmp_path / "many"
    cellcount.synthesize(many, n=30, width=64, height=64, min_cells=3, max_cells=12, seed=5)
    out = tmp_path / "counts.csv"
    killed = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        pids = client.run(os.getpid)

        def kill_a_busy_worker(_row):
            if killed:
                return
            busy = [w for w, keys in client.processing().items() if keys and w in pids]
            if busy:
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(busy[0])

        rep = ccd.count_files(client, [many], fixture_model, out=out, on_row=kill_a_busy_worker)
        client.wait_for_workers(2, timeout=120)
        loads = client.run(ccd._loads)  # the survivor and the nanny's new process: one load each
    assert len(loads) == 2 and set(loads.values()) == {1}, loads
    assert killed, "no worker was busy after the first row"
    rows = read_rows(out)
    names = sorted(r["image"] for r in rows)
    expected = sorted(str(p) for p in many.rglob("*.png"))
    assert names == expected, (rep, names)  # none lost, none twice
    assert rep.written == 30 and rep.ok
    # the numbers are those of a quiet run
    ref = tmp_path / "ref.csv"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as c2, \
            Client(c2) as client2:
        ccd.count_files(client2, [many], fixture_model, out=ref)
    by = lambda rows: {r["image"]: r["count"] for r in rows}  # noqa: E731
    assert by(rows) == by(read_rows(ref))


def test_command_line(fixture_model, images, tmp_path):
    out = tmp_path / "cli.csv"
    r = subprocess.run([sys.executable, "-m", "cellcount.dask", "--workers", "1", "--model", str(fixture_model),
                        "--csv", str(out), str(images / "stacks" / "stack.tif")], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "3 row(s) written" in r.stdout
    assert [int(r["slice"]) for r in sorted(read_rows(out), key=lambda r: int(r["slice"]))] == [1, 2, 3]
    r = subprocess.run([sys.executable, "-m", "cellcount.dask", "--workers", "1", "--model", str(fixture_model),
                        "--csv", str(out), "--options", "{nope", str(images / "ds")], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and "--options expects a JSON object" in r.stderr


# ------------------------------------------------------------------ count_array


def mosaic(images, rows=2, cols=5):
    tiles = [cellcount.read_image(p)[0] for p in sorted((images / "ds").rglob("*.png"))[: rows * cols]]
    return np.block([[tiles[r * cols + c] for c in range(cols)] for r in range(rows)]).astype(np.float32)


def test_count_array_one_block_is_one_library_call(thread_client, fixture_model, images):
    img = mosaic(images)  # 128 x 320
    with cellcount.Model(fixture_model) as m:
        whole = m.predict(img)
    got = ccd.count_array(thread_client, img, fixture_model, block=512)
    assert got.n_blocks == 1 and got.halo == m.info["tiling"]["overlap"]
    assert got.count == pytest.approx(float(whole.density.astype(np.float64).sum()), rel=1e-6)
    assert np.array_equal(got.xy, whole.xy)


def test_count_array_blocks_own_their_points(thread_client, fixture_model, images):
    import dask.array as da
    img = mosaic(images)
    arr = da.from_array(img, chunks=(50, 70))  # chunks unrelated to the blocks
    got = ccd.count_array(thread_client, arr, fixture_model, block=64)
    assert got.n_blocks == 2 * 5
    assert got.count == pytest.approx(sum(b["count"] for b in got.blocks))
    # each point lies in the core of the block that reported it; no point twice
    assert len({(float(x), float(y)) for x, y in got.xy}) == len(got.xy)
    assert ((got.xy >= 0) & (got.xy < [img.shape[1], img.shape[0]])).all()
    with cellcount.Model(fixture_model) as m:
        whole = m.predict(img)
    # every block normalised by the whole image's percentiles (the default): as one call, up to tiling
    assert got.normalization_range == pytest.approx(cellcount.normalization_range(m.info, img))
    assert got.count == pytest.approx(whole.count, rel=0.02)
    need = ccd.model_halo(fixture_model)
    with pytest.raises(cellcount.CellCountError, match="smaller than the model's tile overlap"):
        ccd.count_array(thread_client, img, fixture_model, block=64, halo=need - 1)
    with pytest.raises(cellcount.CellCountError, match="expected one 2-D image"):
        ccd.count_array(thread_client, np.zeros((2, 64, 64, 3, 1), np.float32), fixture_model)


def test_count_array_normalises_blocks_as_the_whole(thread_client, fixture_model, images, tmp_path):
    """Issue 26: blocks normalised each by their own percentiles counted -15 % / +11 % against one call on an image
    whose brightness varies across it. A zarr array, read in blocks: with the whole image's range the blocks
    agree with one call; each by its own, they do not."""
    import dask.array as da
    import zarr
    img = mosaic(images) * np.linspace(0.3, 1.7, 320, dtype=np.float32)  # brightness ramp left to right
    z = zarr.create_array(store=str(tmp_path / "img.zarr"), shape=img.shape, chunks=(64, 64), dtype="float32")
    z[:] = img
    arr = da.from_zarr(str(tmp_path / "img.zarr"))
    with cellcount.Model(fixture_model) as m:
        whole = m.predict(img)
    alike = ccd.count_array(thread_client, arr, fixture_model, block=64)
    own = ccd.count_array(thread_client, arr, fixture_model, block=64, normalization="block")
    assert own.normalization_range is None
    assert alike.count == pytest.approx(whole.count, rel=0.02)
    assert abs(own.count / whole.count - 1) > 2 * abs(alike.count / whole.count - 1)
    given = ccd.count_array(thread_client, arr, fixture_model, block=64, options={"normalization_range": [0, 500]})
    assert given.normalization_range == [0, 500]  # the caller's range wins
    with pytest.raises(cellcount.CellCountError, match="normalization must be"):
        ccd.count_array(thread_client, arr, fixture_model, normalization="tile")


def test_library_errors_cross_process_boundaries():
    """Workers send exceptions to the client pickled; a CellCountError keeps its status and message."""
    import pickle
    e = pickle.loads(pickle.dumps(cellcount.CellCountError(20, "cannot read 'x.png'")))
    assert isinstance(e, cellcount.CellCountError) and e.status == cellcount.Status.ERR_IO
    assert e.message == "cannot read 'x.png'" and str(e) == "CELLCOUNT_ERR_IO: cannot read 'x.png'"


def test_count_array_carries_the_blocks_warnings(thread_client, repo):
    """Out-of-domain warnings (issue 24) of each block in ArrayCount.warnings, with the block's index; workers
    issue no OutOfDomainWarning. One block: the library's warnings of one call on the whole image."""
    import imageio.v3 as iio
    adi = repo / "models" / "dcl-adi"
    rgb = np.repeat(iio.imread(repo / "samples" / "dcl-vgg" / "cells_00000.png")[:, :, None], 3, axis=2)
    with cellcount.Model(adi) as m:
        whole = m.predict(rgb, warn=False)
    got = ccd.count_array(thread_client, rgb, adi, block=512)
    assert got.n_blocks == 1 and whole.warnings
    assert [w["code"] for w in got.warnings] == [w["code"] for w in whole.warnings]
    assert {w["block"] for w in got.warnings} == {0}
