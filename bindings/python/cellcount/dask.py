"""Counting on a Dask cluster: many files (``count_files``) or one large 2-D image (``count_array``).

    from distributed import Client
    import cellcount.dask as ccd
    client = Client("tcp://scheduler:8786")            # or Client(LocalCluster(n_workers=2, threads_per_worker=1))
    report = ccd.count_files(client, ["images/"], "models/dcl-vgg", out="counts.csv")
    total = ccd.count_array(client, dask_array, "models/dcl-vgg", block=1024)

or from a shell: ``python -m cellcount.dask --scheduler tcp://host:8786 --model DIR --csv OUT INPUT...``.

Every worker process loads the model once, through a WorkerPlugin (``ModelPlugin``) registered with
``Client.register_plugin``, and keeps it for every task of the run. The numerics are the library's: a
task is one ``cellcount_predict`` call on one plane of one file (``count_files``) or on one block of the
image with a halo (``count_array``). Workers need the library and this package, and see the same paths
(and the same model folder) as the client.

count_files writes one row per file plane with columns of ``cellcount count --csv`` (same values,
``seconds`` aside; ``warnings``: the codes of the plane's out-of-domain warnings, space-separated, as the CLI
writes them) followed by provenance columns. Workers issue no OutOfDomainWarning: the rows (and count_array's
``ArrayCount.warnings``) carry them. Rows are appended by the client only, each as one
write of a whole line, as the tasks complete; a row's key (file, plane, model weights, prediction
settings) is also its task's key, so a task retried after a worker died, or run twice, gives one row. A
rerun with the same settings skips the rows the table already holds. A file that cannot be read or
counted is reported and skipped (no row), as in the CLI, and is tried again by the next run.

count_array cuts the image into blocks of ``block`` pixels (the block's core), reads each with a halo of
``halo`` pixels on every side (at least the model's tile overlap, which the library reports as the
margin its own tiling discards), lets the library count the padded block (it tiles inside), and keeps
the density over the core and the points inside the core: every point belongs to the one block whose
core holds it, and the cores partition the image. Each block is normalised on its own by the library
(percentiles of the padded block), which is where the sum can differ from one call on the whole image.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from . import api

try:
    import dask
    from distributed import Client, WorkerPlugin, as_completed
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("cellcount.dask needs dask[distributed]: pip install 'libcellcount[dask]' "
                      f"(or 'dask[distributed]'); import failed: {e}") from e

__all__ = ["COLUMNS", "CLI_COLUMNS", "ModelPlugin", "register_model", "count_files", "count_array", "CountReport",
           "ArrayCount", "expand_inputs", "main"]

# Columns of `cellcount count --csv`, in its order (not its measurement columns), then the provenance of each row.
CLI_COLUMNS = ["image", "slice", "count", "truth", "abs_error", "points", "model", "method", "device", "precision",
               "seconds", "warnings"]
PROVENANCE_COLUMNS = ["planes", "model_name", "model_sha256", "library_version", "options", "key"]
COLUMNS = CLI_COLUMNS + PROVENANCE_COLUMNS

# The generic prediction settings a caller may give (cellcount_predict_params); the method's own go in options.
PARAM_NAMES = ("device", "precision", "tile_size", "tile_overlap", "peak_threshold", "peak_min_distance")

# Statuses after which the next file may still succeed: the file itself was bad (as in the CLI). Any other
# status (device, memory, internal) fails the task.
_FILE_LEVEL = {api.Status.ERR_IO, api.Status.ERR_INVALID_ARGUMENT, api.Status.ERR_UNSUPPORTED,
               api.Status.ERR_DATASET}


# --------------------------------------------------------------------------- the model on the workers

_MODELS: dict[tuple[str, str], api.Model] = {}
_MODELS_LOCK = threading.Lock()
_LOADS = 0  # models loaded by this process (the tests check that a worker loads each model once)


def _model_sha(path: str) -> str:
    """The weights' sha256 recorded in model.json (the library checks the weights against it on load)."""
    try:
        with open(os.path.join(path, "model.json"), encoding="utf-8") as f:
            return str(json.load(f).get("weights_sha256", ""))
    except (OSError, ValueError) as e:
        raise api.CellCountError(api.Status.ERR_IO, f"cannot read '{path}/model.json': {e}") from None


def _cached_model(path: str, sha: str) -> api.Model:
    """This process's loaded copy of the model at `path` whose weights have `sha` (loaded on first use)."""
    global _LOADS
    key = (os.path.realpath(path), sha)
    with _MODELS_LOCK:
        m = _MODELS.get(key)
        if m is None:
            found = _model_sha(path)
            if found != sha:
                raise RuntimeError(f"the model at '{path}' on this worker has weights sha256 {found[:12]}..., "
                                   f"the client's has {sha[:12]}...: workers must see the same model folder")
            m = api.Model(path)
            _MODELS[key] = m
            _LOADS += 1
        return m


def _loads() -> int:
    return _LOADS


class ModelPlugin(WorkerPlugin):
    """Loads one model folder in each worker process when the worker starts (or when the plugin is
    registered) and keeps it for the tasks; sets the library's threads per process. Register it with
    ``client.register_plugin(ModelPlugin(path))`` (``register_model`` does) - workers that join later get
    it too. Workers that share a process (``LocalCluster(processes=False)``) share one loaded model."""

    idempotent = True

    def __init__(self, model: str | os.PathLike, sha256: str | None = None, threads: int = 1):
        self.model = os.fspath(model)
        self.sha256 = sha256 or _model_sha(self.model)
        self.threads = int(threads)
        self.name = f"cellcount-model-{self.sha256[:16]}-t{self.threads}"

    def setup(self, worker: Any = None) -> None:
        if self.threads > 0:
            api.set_num_threads(self.threads)
        _cached_model(self.model, self.sha256)


def register_model(client: Client, model: str | os.PathLike, threads: int = 1) -> ModelPlugin:
    """Registers a ModelPlugin for `model` on every worker (now and later) and returns it."""
    plugin = ModelPlugin(model, threads=threads)
    client.register_plugin(plugin, name=plugin.name)
    return plugin


# --------------------------------------------------------------------------- inputs, truth, exemplars


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> tuple[list[str], list[str]]:
    """Files to count, as `cellcount count` lists them: a folder gives its image files (recursively,
    sorted), a file is taken as given. Returns (files, dataset folders among the inputs)."""
    files: list[str] = []
    datasets: list[str] = []
    for raw in inputs:
        p = os.fspath(raw)
        if os.path.isdir(p):
            if _is_dataset_dir(p):
                datasets.append(p)
            found = []
            for root, _dirs, names in os.walk(p):
                for n in names:
                    f = os.path.join(root, n)
                    if os.path.isfile(f) and api.is_image_file(f):
                        found.append(f)
            if not found:
                raise api.CellCountError(api.Status.ERR_IO, f"folder '{p}' holds no image files")
            files.extend(sorted(found, key=lambda s: s.encode("utf-8", "surrogateescape")))
        else:
            if not os.path.exists(p):
                raise api.CellCountError(api.Status.ERR_IO, f"input '{p}' does not exist")
            files.append(p)
    return files, datasets


def _is_dataset_dir(p: str) -> bool:
    return any(os.path.exists(os.path.join(p, f)) for f in ("counts.csv", "points.csv", "boxes.csv"))


class _Truth:
    """Ground truth and exemplar boxes by image path (canonical) and by file name, from the library's
    reading of dataset folders (cellcount_dataset_read), as in `cellcount count`."""

    def __init__(self) -> None:
        self.entries: list[dict] = []
        self.by_path: dict[str, int] = {}
        self.by_name: dict[str, int] = {}

    def add(self, folder: str) -> None:
        ds = api.read_dataset(folder)
        for s in ds["samples"]:
            self.entries.append({"count": s.get("count"), "boxes": [list(b) for b in s.get("boxes", [])]})
            i = len(self.entries) - 1
            self.by_path[os.path.realpath(os.path.join(folder, s["image"]))] = i
            self.by_name[os.path.basename(s["image"])] = i

    def find(self, path: str) -> dict | None:
        i = self.by_path.get(os.path.realpath(path))
        if i is None:
            i = self.by_name.get(os.path.basename(path))
        return None if i is None else self.entries[i]


def _read_boxes_csv(path: str) -> dict[str, list[list[float]]]:
    """Exemplar boxes by image file name from a CSV with columns image,x0,y0,x1,y1 (as the CLI's --exemplars)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out: dict[str, list[list[float]]] = {}
    for i, r in enumerate(rows, start=2):
        try:
            out.setdefault(os.path.basename(r["image"]), []).append([float(r[k]) for k in ("x0", "y0", "x1", "y1")])
        except (KeyError, TypeError, ValueError) as e:
            raise api.CellCountError(api.Status.ERR_DATASET,
                                     f"{path} line {i}: expected columns image,x0,y0,x1,y1 with numbers ({e})") from None
    return out


# --------------------------------------------------------------------------- the table


def _fmt(v: float, digits: int) -> str:
    return f"{v:.{digits}f}"


def _csv_field(s: str) -> str:
    """Quoted as the CLI quotes (RFC 4180, only when needed)."""
    if not any(c in s for c in ',"\r\n'):
        return s
    return '"' + s.replace('"', '""') + '"'


def _line(row: dict) -> str:
    return ",".join(_csv_field(str(row[c])) for c in COLUMNS) + "\n"


_PARQUET_TYPES = {"slice": "int64", "count": "float64", "truth": "float64", "abs_error": "float64",
                  "points": "int64", "seconds": "float64", "planes": "int64"}


class _Table:
    """The output table. CSV: rows appended to the file itself. Parquet (`.parquet`, needs pyarrow):
    rows appended to a journal `OUT.journal.csv` beside it as they come, merged into the Parquet file
    (written to a temporary name, then renamed over it) at the end of the run, and the journal removed.
    Either way a row is one write of one whole line, by this process only; a torn last line (the client
    killed mid-write) is dropped on the next open."""

    def __init__(self, out: str | os.PathLike):
        self.out = os.fspath(out)
        self.parquet = self.out.lower().endswith((".parquet", ".pq"))
        if self.parquet:
            try:
                import pyarrow  # noqa: F401
            except ImportError as e:
                raise ImportError(f"writing '{self.out}' needs pyarrow (pip install pyarrow), or give a .csv") from e
        self.journal = self.out + ".journal.csv" if self.parquet else self.out
        self.rows_before: list[dict] = []
        if self.parquet and os.path.exists(self.out):
            import pyarrow.parquet as pq
            t = pq.read_table(self.out)
            if t.column_names != COLUMNS:
                raise api.CellCountError(api.Status.ERR_INVALID_ARGUMENT,
                                         f"'{self.out}' has columns {t.column_names}, not those of cellcount.dask "
                                         f"{COLUMNS}; give another file")
            self.rows_before = [{k: ("" if v is None else v) for k, v in r.items()} for r in t.to_pylist()]
        self.rows_before += self._open_journal()
        self.keys = {str(r["key"]) for r in self.rows_before}

    def _open_journal(self) -> list[dict]:
        p = self.journal
        header = ",".join(COLUMNS) + "\n"
        if not os.path.exists(p) or os.path.getsize(p) == 0:
            with open(p, "a", encoding="utf-8", newline="") as f:
                f.write(header)
            self.fd = os.open(p, os.O_WRONLY | os.O_APPEND)
            return []
        with open(p, "rb") as f:
            data = f.read()
        if not data.startswith(header.encode()):
            raise api.CellCountError(api.Status.ERR_INVALID_ARGUMENT,
                                     f"'{p}' is not a table of cellcount.dask (first line is not "
                                     f"'{header.strip()}'); give another file")
        if not data.endswith(b"\n"):  # a row torn by a crash of this writer: drop it
            keep = data.rfind(b"\n") + 1
            with open(p, "r+b") as f:
                f.truncate(keep)
            data = data[:keep]
        self.fd = os.open(p, os.O_WRONLY | os.O_APPEND)
        return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))

    def append(self, row: dict) -> bool:
        """Writes the row unless its key is already in the table; True if written."""
        if row["key"] in self.keys:
            return False
        b = _line(row).encode("utf-8")
        n = os.write(self.fd, b)
        if n != len(b):  # pragma: no cover - a full disk
            raise OSError(f"short write to '{self.journal}' ({n} of {len(b)} bytes)")
        self.keys.add(row["key"])
        return True

    def close(self) -> None:
        if getattr(self, "fd", None) is None:
            return
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = None
        if self.parquet:
            self._merge_parquet()

    def _merge_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq
        with open(self.journal, encoding="utf-8", newline="") as f:
            new = list(csv.DictReader(f))
        seen: set[str] = set()
        rows = []
        for r in self.rows_before + new:
            if r["key"] in seen:
                continue
            seen.add(r["key"])
            rows.append(r)
        cols = {}
        for c in COLUMNS:
            t = _PARQUET_TYPES.get(c)
            vals = [r[c] for r in rows]
            if t == "int64":
                cols[c] = pa.array([None if v in ("", None) else int(v) for v in vals], pa.int64())
            elif t == "float64":
                cols[c] = pa.array([None if v in ("", None) else float(v) for v in vals], pa.float64())
            else:
                cols[c] = pa.array([str(v) for v in vals], pa.string())
        tmp = f"{self.out}.tmp-{os.getpid()}"
        pq.write_table(pa.table(cols), tmp)
        os.replace(tmp, self.out)
        os.remove(self.journal)


# --------------------------------------------------------------------------- count_files


@dataclass
class CountReport:
    """What count_files did: rows written now, rows already in the table, the files or planes that could
    not be counted (path or 'path slice N', status name and message), and the wall time."""
    out: str
    written: int = 0
    skipped: int = 0
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def _settings(params: dict, options: dict | None) -> str:
    unknown = set(params) - set(PARAM_NAMES)
    if unknown:
        raise TypeError(f"unknown prediction parameter(s) {sorted(unknown)}; known: {list(PARAM_NAMES)} (the "
                        "method's own options go in options={...})")
    return json.dumps({"params": {k: v for k, v in sorted(params.items()) if v is not None},
                       "options": options or {}}, sort_keys=True, separators=(",", ":"))


def _row_key(image: str, plane: int, sha: str, settings: str) -> str:
    return hashlib.sha256("\x1f".join([image, str(plane), sha, settings]).encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _count_plane(path: str, z: int, model: str, sha: str, params: dict, options: dict | None,
                 boxes: list | None) -> dict:
    """The task: one plane of one file. Returns the measured values, or {"error": ...} for a file the
    library cannot read or count (a retry would give the same answer)."""
    m = _cached_model(model, sha)
    try:
        planes = api.read_image(path)
        if z >= len(planes):
            return {"error": ("CELLCOUNT_ERR_INVALID_ARGUMENT", f"has {len(planes)} plane(s), not {z + 1}"),
                    "planes": len(planes)}
        r = m.predict(planes[z], boxes if boxes else None, options=options, warn=False, **params)
    except api.CellCountError as e:
        if e.status in _FILE_LEVEL:
            return {"error": (e.status_name, e.message)}
        raise RuntimeError(f"'{path}' plane {z + 1}: {e}") from None  # plain type: crosses to the client
    return {"planes": len(planes), "count": r.count, "points": r.n_points, "device": r.device,
            "precision": r.precision, "seconds": r.seconds, "warnings": " ".join(w["code"] for w in r.warnings)}


def count_files(client: Client, inputs: Sequence[str | os.PathLike] | str | os.PathLike,
                model: str | os.PathLike, *, out: str | os.PathLike, options: dict | None = None,
                truth: str | os.PathLike | None = None, exemplars: str | os.PathLike | dict | None = None,
                threads: int = 1, retries: int = 2, on_row: Callable[[dict], Any] | None = None,
                **params: Any) -> CountReport:
    """Counts every plane of every image file in `inputs` (files, TIFF stacks, folders) on the cluster and
    appends one row per plane to `out` (.csv, or .parquet with pyarrow) as the tasks complete.

    model      model folder, the same path on the client and the workers (the row's `model` column is it
               as given, as the CLI writes it)
    options    the method's own prediction options (cellcount_request_options(method, "predict"))
    truth      a dataset folder with counts.csv/points.csv (folders among the inputs that hold them count
               too): fills `truth` and `abs_error`, as `cellcount count --truth`
    exemplars  boxes for models that need them: a CSV image,x0,y0,x1,y1 or {file name: [[x0,y0,x1,y1]...]};
               else the truth's boxes
    threads    the library's threads in each worker process (ModelPlugin)
    retries    extra tries of a task that failed for a reason other than the file (a killed worker is
               rescheduled by the scheduler anyway)
    on_row     called with each row written (progress)
    params     device, precision, tile_size, tile_overlap, peak_threshold, peak_min_distance
    Returns a CountReport; files that cannot be counted are listed there and get no row."""
    t0 = time.perf_counter()
    model = os.fspath(model)
    settings = _settings(params, options)
    params = {k: v for k, v in params.items() if v is not None}
    with api.Model(model) as local:  # refuses a bad model folder before anything is submitted
        info = local.info
    sha = _model_sha(model)
    needs_exemplars = bool(info.get("needs_exemplars", False))
    lib_version = api.version()
    files, datasets = expand_inputs([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)
    gt = _Truth()
    if truth is not None:
        gt.add(os.fspath(truth))
    for d in datasets:
        gt.add(d)
    boxes_by_name: dict[str, list] = {}
    if isinstance(exemplars, dict):
        boxes_by_name = {os.path.basename(k): [list(map(float, b)) for b in v] for k, v in exemplars.items()}
    elif exemplars is not None:
        boxes_by_name = _read_boxes_csv(os.fspath(exemplars))

    table = _Table(out)
    report = CountReport(out=os.fspath(out))
    plugin = register_model(client, model, threads=threads)
    done: dict[tuple[str, int], dict] = {}
    for r in table.rows_before:
        if r["model_sha256"] == sha and r["options"] == settings:
            done[(r["image"], int(r["slice"]))] = r

    def boxes_of(f: str) -> list | None:
        if not needs_exemplars:
            return None
        b = boxes_by_name.get(os.path.basename(f))
        if b is None:
            e = gt.find(f)
            b = e["boxes"] if e else None
        return b

    def submit(f: str, z: int):
        key = _row_key(f, z + 1, sha, settings)
        if f"cellcount-plane-{key}" in meta:  # a file given twice: one task, one row
            report.skipped += 1
            return None
        fut = client.submit(_count_plane, f, z, plugin.model, sha, params, options, boxes_of(f),
                            key=f"cellcount-plane-{key}", retries=retries)
        meta[fut.key] = (f, z, key)
        return fut

    meta: dict[str, tuple[str, int, str]] = {}
    futures = []
    for f in files:
        first = done.get((f, 1))
        if first is None:
            futures.append(submit(f, 0))
            continue
        n = int(first["planes"])
        for z in range(n):
            if (f, z + 1) in done:
                report.skipped += 1
            else:
                futures.append(submit(f, z))
    futures = [f for f in futures if f is not None]
    try:
        ac = as_completed(futures)
        for fut in ac:
            f, z, key = meta.pop(fut.key)
            try:
                res = fut.result()
            except Exception as e:  # noqa: BLE001 - a task that failed for good (e.g. KilledWorker)
                fut.release()
                report.failed.append((f if z == 0 else f"{f} slice {z + 1}", type(e).__name__, str(e)))
                continue
            fut.release()
            if "error" in res:  # as the CLI names it: the file, or the file and slice of a stack
                where = f"{f} slice {z + 1}" if res.get("planes", 1) > 1 else f
                report.failed.append((where, *res["error"]))
                continue
            planes = int(res["planes"])
            if z == 0 and planes > 1:  # a stack: its other planes, one task each
                for zz in range(1, planes):
                    if (f, zz + 1) in done:
                        report.skipped += 1
                    elif (fz := submit(f, zz)) is not None:
                        ac.add(fz)
            e = gt.find(f)
            has_truth = e is not None and isinstance(e.get("count"), (int, float)) and planes == 1
            t = float(e["count"]) if has_truth else math.nan
            row = {"image": f, "slice": z + 1, "count": _fmt(res["count"], 3),
                   "truth": _fmt(t, 0) if has_truth else "",
                   "abs_error": _fmt(abs(res["count"] - t), 3) if has_truth else "",
                   "points": res["points"], "model": model, "method": info.get("method", ""),
                   "device": res["device"], "precision": res["precision"], "seconds": _fmt(res["seconds"], 3),
                   "warnings": res["warnings"],
                   "planes": planes, "model_name": os.path.basename(os.path.normpath(model)),
                   "model_sha256": sha, "library_version": lib_version, "options": settings, "key": key}
            if table.append(row):
                report.written += 1
                if on_row is not None:
                    on_row(row)
            else:
                report.skipped += 1
    finally:
        for fut in futures:
            fut.release()
        table.close()
    report.seconds = time.perf_counter() - t0
    return report


# --------------------------------------------------------------------------- count_array


@dataclass
class ArrayCount:
    """count_array's answer: the count (density summed over the owned cores; points owned when the method
    has no density), the owned points in image coordinates (x, y), per-class counts of the points, the
    block grid and halo used, and the wall time."""
    count: float
    xy: np.ndarray
    class_ids: np.ndarray
    scores: np.ndarray
    block: int
    halo: int
    n_blocks: int
    seconds: float
    blocks: list[dict] = field(default_factory=list)  # per block: y0, x0, y1, x1 (core) and its count
    normalization_range: list[float] | None = None  # the intensities every block was normalised by (None: its own)
    warnings: list[dict] = field(default_factory=list)  # each block's out-of-domain warnings, + "block": its index


def model_halo(model: str | os.PathLike) -> int:
    """The smallest halo count_array accepts for `model`: the overlap its tiles get inside the library
    (model info "tiling"."overlap", the margin the library's own stitching discards)."""
    with api.Model(model) as m:
        return _halo_of(m.info)


def _halo_of(info: dict) -> int:
    t = info.get("tiling") or {}
    if "overlap" not in t:
        raise api.CellCountError(api.Status.ERR_UNSUPPORTED,
                                 "the model's info has no tiling.overlap; give count_array a halo explicitly")
    return int(t["overlap"])


def _count_block(block: np.ndarray, core: tuple[int, int, int, int], origin: tuple[int, int], model: str, sha: str,
                 params: dict, options: dict | None) -> dict:
    """The task: one padded block. `core` = (y0, x0, y1, x1) in block coordinates, `origin` = the block's
    top-left (y, x) in the image."""
    m = _cached_model(model, sha)
    try:
        r = m.predict(np.ascontiguousarray(block), options=options, warn=False, **params)
    except api.CellCountError as e:
        raise RuntimeError(f"block at {origin}: {e}") from None
    y0, x0, y1, x1 = core
    inside = (r.xy[:, 0] >= x0) & (r.xy[:, 0] < x1) & (r.xy[:, 1] >= y0) & (r.xy[:, 1] < y1)
    xy = r.xy[inside] + np.array([origin[1], origin[0]], dtype=np.float32)
    if r.density is not None:
        count = float(r.density[y0:y1, x0:x1].astype(np.float64).sum())
    else:
        count = float(inside.sum())
    return {"count": count, "xy": xy, "class_ids": r.class_ids[inside], "scores": r.scores[inside],
            "warnings": r.warnings}


def count_array(client: Client, image: Any, model: str | os.PathLike, *, block: int = 1024, halo: int | None = None,
                normalization: str = "image", options: dict | None = None, threads: int = 1, retries: int = 2,
                **params: Any) -> ArrayCount:
    """Counts one large 2-D image (H, W) or (H, W, C) - a dask array (zarr, TIFF through tifffile's
    zarr store, ...) or anything numpy takes - in blocks on the cluster.

    block   side of each block's core in pixels; the cores partition the image
    halo    context on every side of a core, at least the model's tile overlap (default: exactly that,
            from the library's model info)
    normalization  "image" (default): every block is normalised by the whole image's percentiles, computed
            here as the library would on the whole (cellcount.normalization_range, reading at most 2^20
            sampled pixels) and passed as the generic option normalization_range, so the blocks count as one
            call on the whole image would, up to tiling; "block": each block by its own percentiles (cheaper
            to start, off where brightness varies across the image). Models normalised otherwise than by
            percentiles take neither.
    params  device, precision, tile_size, tile_overlap, peak_threshold, peak_min_distance (per block)"""
    t0 = time.perf_counter()
    import dask.array as da
    model = os.fspath(model)
    _settings(params, options)  # checks the parameter names
    params = {k: v for k, v in params.items() if v is not None}
    with api.Model(model) as m:
        info = m.info
    if info.get("needs_exemplars"):
        raise api.CellCountError(api.Status.ERR_UNSUPPORTED, f"'{model}' counts like exemplars: count_array "
                                 "takes models that need no exemplar boxes")
    need = _halo_of(info)
    halo = need if halo is None else int(halo)
    if halo < need:
        raise api.CellCountError(api.Status.ERR_INVALID_ARGUMENT,
                                 f"halo {halo} is smaller than the model's tile overlap {need} (its receptive "
                                 f"margin as the library tiles); give halo >= {need}")
    block = int(block)
    if block < 16:
        raise api.CellCountError(api.Status.ERR_INVALID_ARGUMENT, f"block must be >= 16 pixels, got {block}")
    arr = image if isinstance(image, da.Array) else da.from_array(np.asarray(image), chunks=(block, block) +
                                                                       tuple(np.shape(image)[2:]))
    if arr.ndim not in (2, 3):
        raise api.CellCountError(api.Status.ERR_INVALID_ARGUMENT,
                                 f"count_array: expected one 2-D image (H, W) or (H, W, C), got shape {arr.shape}")
    H, W = int(arr.shape[0]), int(arr.shape[1])
    if normalization not in ("image", "block"):
        raise api.CellCountError(api.Status.ERR_INVALID_ARGUMENT,
                                 f'normalization must be "image" or "block", got {normalization!r}')
    given = (options or {}).get("normalization_range")
    nrange = given if given else None
    if nrange is None and normalization == "image":
        try:
            nrange = api.normalization_range(info, arr)
        except ValueError as e:
            raise api.CellCountError(api.Status.ERR_INVALID_ARGUMENT, f"count_array: {e}") from None
        if nrange is not None:
            options = {**(options or {}), "normalization_range": nrange}
    sha = _model_sha(model)
    plugin = register_model(client, model, threads=threads)
    tasks = []
    cores = []
    for y in range(0, H, block):
        for x in range(0, W, block):
            cy1, cx1 = min(y + block, H), min(x + block, W)
            ey0, ex0, ey1, ex1 = max(y - halo, 0), max(x - halo, 0), min(cy1 + halo, H), min(cx1 + halo, W)
            piece = arr[ey0:ey1, ex0:ex1]
            core = (y - ey0, x - ex0, cy1 - ey0, cx1 - ex0)
            tasks.append(dask.delayed(_count_block, pure=True)(piece, core, (ey0, ex0), plugin.model, sha, params,
                                                               options))
            cores.append((y, x, cy1, cx1))
    futures = client.compute(tasks, retries=retries)
    results = client.gather(futures)
    for f in futures:
        f.release()
    total = math.fsum(r["count"] for r in results)
    xy = np.concatenate([r["xy"] for r in results]) if results else np.zeros((0, 2), np.float32)
    cls = np.concatenate([r["class_ids"] for r in results]) if results else np.zeros(0, np.int32)
    sc = np.concatenate([r["scores"] for r in results]) if results else np.zeros(0, np.float32)
    blocks = [{"y0": c[0], "x0": c[1], "y1": c[2], "x1": c[3], "count": r["count"]} for c, r in zip(cores, results)]
    return ArrayCount(count=total, xy=xy, class_ids=cls, scores=sc, block=block, halo=halo, n_blocks=len(tasks),
                      seconds=time.perf_counter() - t0, blocks=blocks, normalization_range=nrange,
                      warnings=[{**w, "block": i} for i, r in enumerate(results) for w in r["warnings"]])


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m cellcount.dask",
        description="Count image files on a Dask cluster: one row per file plane, as `cellcount count --csv` "
                    "with provenance columns; a rerun skips the rows the table holds.")
    ap.add_argument("inputs", nargs="+", metavar="INPUT", help="images, TIFF stacks, folders")
    ap.add_argument("--scheduler", help="scheduler address (tcp://host:8786); default: a LocalCluster here")
    ap.add_argument("--workers", type=int, default=2, help="workers of the LocalCluster (without --scheduler)")
    ap.add_argument("--model", required=True, help="model folder (the same path on every worker)")
    ap.add_argument("--csv", required=True, dest="out", help="output table (.csv, or .parquet with pyarrow)")
    ap.add_argument("--threads", type=int, default=1, help="library threads per worker process (default 1)")
    ap.add_argument("--truth", help="dataset folder with counts.csv/points.csv")
    ap.add_argument("--exemplars", help="boxes CSV image,x0,y0,x1,y1 (models that count like exemplars)")
    ap.add_argument("--options", help="the method's own prediction options as a JSON object")
    ap.add_argument("--device")
    ap.add_argument("--precision")
    ap.add_argument("--tile", type=int, dest="tile_size")
    ap.add_argument("--overlap", type=int, dest="tile_overlap")
    ap.add_argument("--threshold", type=float, dest="peak_threshold")
    ap.add_argument("--min-distance", type=float, dest="peak_min_distance")
    a = ap.parse_args(argv)
    try:
        options = json.loads(a.options) if a.options else None
    except ValueError:
        ap.error(f"--options expects a JSON object, got {a.options!r}")
    params = {k: getattr(a, k) for k in PARAM_NAMES}
    cluster = None
    if a.scheduler:
        client = Client(a.scheduler)
    else:
        from distributed import LocalCluster
        cluster = LocalCluster(n_workers=a.workers, threads_per_worker=1, processes=True, dashboard_address=":0")
        client = Client(cluster)
    try:
        rep = count_files(client, a.inputs, a.model, out=a.out, options=options, truth=a.truth,
                          exemplars=a.exemplars, threads=a.threads, **params)
    except (api.CellCountError, OSError, ImportError) as e:
        print(f"cellcount.dask: {e}", file=sys.stderr)
        return 2
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    print(f"{rep.out}: {rep.written} row(s) written, {rep.skipped} already there, {len(rep.failed)} failed, "
          f"{rep.seconds:.1f} s")
    for where, status, msg in rep.failed:
        print(f"  skipped '{where}': {status}: {msg}", file=sys.stderr)
    return 1 if rep.failed else 0


if __name__ == "__main__":
    # `python -m cellcount.dask`: run the imported module's main, so that the plugin and the tasks pickle as
    # cellcount.dask.* (by reference) and not as __main__.* (by value)
    from cellcount.dask import main as _main
    sys.exit(_main())
