"""The pythonic layer over the C ABI: numpy arrays in and out, a Model context manager, statuses raised as
CellCountError (Cancelled a subclass) with the library's own message, Python callbacks kept alive (and
their exceptions carried through) for the length of each call.

Defaults are never restated here: prediction defaults come from cellcount_predict_default_params() and
request defaults from cellcount_request_defaults(); fields a caller leaves out are filled by the library.
"""
from __future__ import annotations

import atexit
import ctypes
import enum
import json
import logging
import math
import os
import sys
import threading
import warnings
from ctypes import POINTER, byref, c_double, c_float, c_int32, c_int64, c_void_p
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from . import _lib
from ._lib import Box, ImageView, PredictParams

__all__ = [
    "Status", "CellCountError", "Cancelled", "OutOfDomainWarning", "Model", "Result", "count", "train", "evaluate",
    "synthesize",
    "request_defaults", "request_options", "predict_defaults", "peak_threshold_absolute", "peak_threshold_relative",
    "normalization_range", "export",
    "library_info", "methods", "version", "abi_version",
    "set_num_threads", "set_log_handler", "ProgressFn", "metrics", "read_dataset", "split", "is_image_file",
    "read_image", "write_image", "write_overlay",
]

Status = enum.IntEnum("Status", {k.removeprefix("CELLCOUNT_"): v for k, v in _lib.STATUS.items()})

# progress(fraction in [0, 1], stage text) -> truthy to cancel
ProgressFn = Callable[[float, str], Any]

log = logging.getLogger("cellcount")


# --------------------------------------------------------------------------- errors


class CellCountError(Exception):
    """A call into libcellcount returned a status other than OK.

    ``status`` is a Status, ``status_name`` the library's name for it (e.g. "CELLCOUNT_ERR_IO") and
    ``message`` the library's per-thread last error (what was expected and what came)."""

    def __init__(self, status: int, message: str):
        self.status = Status(status) if status in Status._value2member_map_ else status
        self.status_name = _lib.lib().cellcount_status_name(int(status)).decode()
        self.message = message
        super().__init__(f"{self.status_name}: {message}")

    def __reduce__(self):  # pickles as (status, message), e.g. from a Dask worker to its client
        return (self.__class__, (int(self.status), self.message))


class Cancelled(CellCountError):
    """A progress callback asked to stop (CELLCOUNT_CANCELLED). The model handle stays usable."""


class OutOfDomainWarning(UserWarning):
    """An image unlike the model's training images (cellcount.h, "Out-of-domain warnings"): Model.predict (and so
    predict_stack and count) issues one per entry of Result.warnings, the library's message as its text, unless
    called with warn=False. Filter it as any warning: warnings.simplefilter("ignore", cellcount.OutOfDomainWarning)."""


def _warn_out_of_domain(found: list[dict]) -> None:
    level, f = 1, sys._getframe()
    while f is not None and f.f_code.co_filename == __file__:  # attributed to the first caller outside this file
        level, f = level + 1, f.f_back
    for w in found:
        warnings.warn(w["message"], OutOfDomainWarning, stacklevel=level)


def _raise(status: int) -> None:
    if status == 0:
        return
    msg = (_lib.lib().cellcount_last_error() or b"").decode("utf-8", "replace")  # read at once: per-thread
    raise (Cancelled if status == Status.CANCELLED else CellCountError)(status, msg)


def _take_string(p: c_void_p) -> str:
    """Copies a library-owned char * and frees it."""
    if not p.value:
        return ""
    try:
        return ctypes.string_at(p.value).decode("utf-8")
    finally:
        _lib.lib().cellcount_string_free(p)


class _Progress:
    """Keeps a Python progress callback and its C trampoline alive for one call. An exception raised by
    the callback cancels the call and is re-raised in place of the Cancelled status."""

    def __init__(self, fn: ProgressFn | None):
        self.fn = fn
        self.error: BaseException | None = None
        self.c = _lib.PROGRESS_FN(self._call) if fn is not None else _lib.PROGRESS_FN()

    def _call(self, fraction: float, stage: bytes | None, _user: Any) -> int:
        try:
            return 1 if self.fn(float(fraction), (stage or b"").decode("utf-8", "replace")) else 0
        except BaseException as e:  # noqa: BLE001 - nothing may unwind through C
            self.error = e
            return 1

    def check(self, status: int) -> None:
        if self.error is not None:
            raise self.error
        _raise(status)


# --------------------------------------------------------------------------- library-wide calls


def version() -> str:
    return _lib.lib().cellcount_version_string().decode()


def abi_version() -> int:
    return int(_lib.lib().cellcount_abi_version())


def library_path() -> str:
    return _lib.library_path()


def library_info() -> dict:
    """Version, ABI, LibTorch, CUDA devices, threads, I/O back ends and the registered methods."""
    out = c_void_p()
    _raise(_lib.lib().cellcount_library_info(byref(out)))
    return json.loads(_take_string(out))


def methods(include_fixtures: bool = False) -> list[dict]:
    """The methods of this build (id, display_name, description, needs_exemplars, can_train, fixture)."""
    return [m for m in library_info()["methods"] if include_fixtures or not m.get("fixture", False)]


def set_num_threads(n: int) -> None:
    """CPU threads LibTorch uses (0 = one per core). Process-wide."""
    _raise(_lib.lib().cellcount_set_num_threads(int(n)))


_LEVELS = {0: logging.DEBUG, 1: logging.INFO, 2: logging.WARNING, 3: logging.ERROR}
_log_state: dict[str, Any] = {}


def _emit(level: int, text: str) -> None:
    try:
        _log_state["target"](level, text)
    except Exception:  # noqa: BLE001 - nothing may unwind through C
        pass


def set_log_handler(fn: Callable[[int, str], None] | None = None, min_level: int = logging.INFO) -> None:
    """Routes the library's log to ``fn(python_logging_level, message)``; fn=None sends it to the
    ``logging`` logger "cellcount" (the binding's default). Messages below min_level (a logging level)
    are dropped inside the library. The sink may be called from any thread that runs a cellcount call.
    A result's out-of-domain warnings are not logged: they are in Result.warnings (and an OutOfDomainWarning each)."""
    _log_state["target"] = fn or (lambda level, msg: log.log(level, msg))

    def sink(level: int, msg: bytes | None, _user: Any) -> None:
        _emit(_LEVELS.get(int(level), logging.INFO), (msg or b"").decode("utf-8", "replace"))

    c_min = max(k for k, v in _LEVELS.items() if v <= max(min_level, logging.DEBUG))
    cb = _lib.LOG_FN(sink)
    _log_state["cb"] = cb  # kept alive for as long as the library may call it
    _lib.lib().cellcount_log_set(cb, None, c_min)
    if not _log_state.get("atexit"):
        # back to the library's own stderr sink before Python goes away, so no late message calls into it
        atexit.register(lambda: _lib.lib().cellcount_log_set(_lib.LOG_FN(), None, c_min))
        _log_state["atexit"] = True


_lib.on_load.append(lambda: set_log_handler())  # by default the library logs through `logging`


def request_defaults(method: str, kind: str) -> dict:
    """The library's default request of ``kind`` ("train", "evaluate", "synthesize", "predict") for
    ``method``: the one source of defaults (front ends show these; fields left out of a request take them).
    "predict" gives the method's own prediction options (Model.predict(options=...)); method "" the
    generic ones (the params of Model.predict, the core's evaluate and synthesize requests)."""
    out = c_void_p()
    _raise(_lib.lib().cellcount_request_defaults(method.encode(), kind.encode(), byref(out)))
    return json.loads(_take_string(out))


def request_options(method: str, kind: str) -> list[dict]:
    """Metadata of every field of the same request (cellcount_request_options), in declaration order:
    dicts with name, type, default, doc, advanced, nullable and, where they apply, min, max (inclusive) and
    choices. Front ends build labelled, validated forms from it; the library checks the same ranges."""
    out = c_void_p()
    _raise(_lib.lib().cellcount_request_options(method.encode(), kind.encode(), byref(out)))
    return json.loads(_take_string(out))


def _json_call(fn_name: str, *args: Any) -> Any:
    out = c_void_p()
    _raise(getattr(_lib.lib(), fn_name)(*args, byref(out)))
    return json.loads(_take_string(out))


def metrics(predicted: Sequence[float], truth: Sequence[float], *, points: Sequence[tuple[Any, Any]] | None = None,
            radius: float | None = None) -> dict:
    """Count metrics (n, mae, rmse, nae, sre, mre, accuracy) of predicted against true counts, by the
    library's definitions; with ``points`` (one (predicted_xy, true_xy) pair of (N, 2) arrays per image) and
    ``radius`` also tp, fp, fn, precision, recall and f1 of one-to-one matching within the radius."""
    req: dict[str, Any] = {"predicted": [float(x) for x in predicted], "truth": [float(x) for x in truth]}
    if points is not None:
        req["points"] = [{"predicted": np.asarray(p, dtype=float).reshape(-1, 2).tolist(),
                          "truth": np.asarray(t, dtype=float).reshape(-1, 2).tolist()} for p, t in points]
        req["radius"] = radius
    return _json_call("cellcount_metrics", json.dumps(req).encode())


def read_dataset(folder: str | os.PathLike, split_file: str | os.PathLike | None = None) -> dict:
    """A dataset folder's annotations as the library reads them (cellcount_dataset_read): root, classes,
    split_source and samples (image, count, points, boxes, split)."""
    sf = os.fspath(split_file).encode() if split_file is not None else None
    return _json_call("cellcount_dataset_read", os.fspath(folder).encode(), sf)


def split(dataset: str | os.PathLike, out: str | os.PathLike, *, ratios: Sequence[float] = (10, 9, 1), seed: int = 0,
          overwrite: bool = False) -> dict:
    """Writes a fixed-seed train/test/val split CSV of a dataset (never over a file unless overwrite)."""
    req = {"dataset": os.fspath(dataset), "out": os.fspath(out), "ratios": [float(r) for r in ratios],
           "seed": int(seed), "overwrite": bool(overwrite)}
    return _json_call("cellcount_split", json.dumps(req).encode())


def is_image_file(path: str | os.PathLike) -> bool:
    """True if read_image reads files of this extension."""
    return bool(_lib.lib().cellcount_is_image_file(os.fspath(path).encode()))


def read_image(path: str | os.PathLike) -> list[np.ndarray]:
    """Every 2-D plane of an image file (one for PNG, one per slice of a TIFF stack) as float32 arrays
    (H, W) or (H, W, C), values in the file's own range, read by the library's I/O back ends."""
    L = _lib.lib()
    h = c_void_p()
    _raise(L.cellcount_image_read(os.fspath(path).encode(), byref(h)))
    try:
        planes = []
        for z in range(L.cellcount_image_n_planes(h)):
            v = ImageView()
            _raise(L.cellcount_image_plane(h, z, byref(v)))
            n = v.width * v.height * v.channels
            a = np.ctypeslib.as_array(ctypes.cast(v.data, POINTER(c_float)), shape=(n,)).copy()
            a = a.reshape(v.height, v.width, v.channels)
            planes.append(a[:, :, 0] if v.channels == 1 else a)
        return planes
    finally:
        L.cellcount_image_free(h)


def write_image(path: str | os.PathLike, image: Any, *, bit_depth: int = 8, overwrite: bool = False) -> None:
    """Writes an (H, W) or (H, W, C) array as PNG, or TIFF by extension (bit_depth 8, 16, or 32 for float
    TIFF). Never over an existing file unless overwrite."""
    pixels = _as_pixels(image, "image")
    _raise(_lib.lib().cellcount_image_write(os.fspath(path).encode(), byref(_view(pixels)), int(bit_depth),
                                            1 if overwrite else 0))


def write_overlay(path: str | os.PathLike, image: Any, xy: Any, class_ids: Any = None, *, radius: int = 3,
                  overwrite: bool = False) -> None:
    """Writes an RGB PNG of the image (contrast-stretched) with a cross at each point (x, y)."""
    pixels = _as_pixels(image, "image")
    pts = np.ascontiguousarray(np.asarray(xy, dtype=np.float32).reshape(-1, 2))
    cls = None if class_ids is None else np.ascontiguousarray(np.asarray(class_ids, dtype=np.int32).reshape(-1))
    if cls is not None and len(cls) != len(pts):
        raise ValueError(f"class_ids: expected {len(pts)} entries (one per point), got {len(cls)}")
    _raise(_lib.lib().cellcount_overlay_write(
        os.fspath(path).encode(), byref(_view(pixels)), pts.ctypes.data_as(POINTER(c_float)),
        cls.ctypes.data_as(POINTER(c_int32)) if cls is not None else None, len(pts), int(radius),
        1 if overwrite else 0))


def predict_defaults() -> dict:
    """The library's prediction defaults (cellcount_predict_default_params) as a dict of the fields a
    caller may set in Model.predict. NaN floats mean "the model's tuned value", 0 / -1 tile fields "the
    model's default"."""
    p = _lib.lib().cellcount_predict_default_params()
    out = {}
    for name in _PARAM_FIELDS:
        v = getattr(p, name)
        out[name] = v.decode() if isinstance(v, bytes) else v
    out["peak_threshold_relative"] = float("nan")  # the 0-1 threshold (cellcount.h, measurements), sent in options_json
    out["normalization_range"] = []  # raw intensities for 0 and 1 ([] = the image's percentiles), in options_json
    return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _request(fn_name: str, request: dict, progress: ProgressFn | None) -> dict:
    req = json.dumps(_jsonable(request)).encode()
    pr = _Progress(progress)
    out = c_void_p()
    status = getattr(_lib.lib(), fn_name)(req, pr.c, None, byref(out))
    pr.check(status)
    return json.loads(_take_string(out))


def train(method: str, dataset: str | os.PathLike, out: str | os.PathLike, *, progress: ProgressFn | None = None,
          **fields: Any) -> dict:
    """Trains a model of ``method`` on a dataset folder (images + points.csv / counts.csv / boxes.csv)
    into the new folder ``out``. Other request fields (see request_defaults(method, "train")) go as
    keywords; unknown ones are refused by the library. Returns the library's report."""
    return _request("cellcount_train", {"method": method, "dataset": dataset, "out": out, **fields}, progress)


def evaluate(model: str | os.PathLike, dataset: str | os.PathLike, *, progress: ProgressFn | None = None,
             **fields: Any) -> dict:
    """Evaluates a model folder on a dataset with the papers' metrics (MAE, RMSE, ..., point F1)."""
    return _request("cellcount_evaluate", {"model": model, "dataset": dataset, **fields}, progress)


def synthesize(out: str | os.PathLike, *, method: str | None = None, progress: ProgressFn | None = None,
               **fields: Any) -> dict:
    """Renders a synthetic dataset into the new folder ``out`` (the method's generator when it has one)."""
    req = {"out": out, **fields}
    if method is not None:
        req["method"] = method
    return _request("cellcount_synthesize", req, progress)


def export(model: str | os.PathLike, out: str | os.PathLike, *, format: str = "bioimageio", overwrite: bool = False,
           **fields: Any) -> dict:
    """Writes a model folder as a package for another tool (cellcount_export): ``format="bioimageio"`` a BioImage
    Model Zoo package (spec 0.5 zip: rdf.yaml, TorchScript weights, test tensors, cover). Other request fields as
    keywords (test_image, exemplars, size, license). ``out`` is never overwritten unless ``overwrite``. Returns the
    library's report (files with sizes and sha256, the test count)."""
    req = json.dumps(_jsonable({"model": model, "out": out, "format": format, "overwrite": bool(overwrite),
                                **fields})).encode()
    rep = c_void_p()
    _raise(_lib.lib().cellcount_export(req, byref(rep)))
    return json.loads(_take_string(rep))


# --------------------------------------------------------------------------- images

_DTYPES = {np.dtype(np.uint8): 1, np.dtype(np.uint16): 2, np.dtype(np.float32): 3}


def _as_pixels(a: Any, what: str) -> np.ndarray:
    """An (H, W) or (H, W, C) array the C ABI can borrow: uint8/uint16/float32 kept as they are (no copy
    when each row is contiguous), bool as uint8, any other number type converted to float32."""
    arr = np.asarray(a)
    if arr.ndim not in (2, 3):
        raise ValueError(f"{what}: expected a 2-D array (H, W) or (H, W, C) with channels last, got shape "
                         f"{arr.shape}; pass a stack plane by plane (Model.predict_stack)")
    if arr.dtype == np.bool_:
        arr = arr.view(np.uint8)
    elif arr.dtype not in _DTYPES or not arr.dtype.isnative:
        if not (np.issubdtype(arr.dtype, np.number)):
            raise TypeError(f"{what}: expected a numeric array, got dtype {arr.dtype}")
        arr = arr.astype(np.float32)
    item = arr.itemsize
    ch = arr.shape[2] if arr.ndim == 3 else 1
    rows_ok = arr.strides[-1] == item and (arr.ndim == 2 or arr.strides[1] == ch * item)
    if not rows_ok or arr.strides[0] < arr.shape[1] * ch * item:
        arr = np.ascontiguousarray(arr)
    return arr


def _view(arr: np.ndarray) -> ImageView:
    return ImageView(data=arr.ctypes.data if arr.size else None, width=arr.shape[1], height=arr.shape[0],
                     channels=arr.shape[2] if arr.ndim == 3 else 1, row_stride_bytes=arr.strides[0],
                     dtype=_DTYPES[arr.dtype], reserved=0)


def _boxes(exemplars: Any) -> ctypes.Array | None:
    if exemplars is None:
        return None
    b = np.asarray(exemplars, dtype=np.float64).reshape(-1, 4) if len(exemplars) else np.zeros((0, 4))
    if len(b) == 0:
        return None
    arr = (Box * len(b))()
    for i, (x0, y0, x1, y1) in enumerate(b):
        arr[i] = Box(x0, y0, x1, y1)
    return arr


# --------------------------------------------------------------------------- results


@dataclass
class Result:
    """One image's answer, copied out of the library's result (which is freed at once).

    Points are in pixel coordinates of the image: ``xy[:, 0]`` = x (column), ``xy[:, 1]`` = y (row)."""

    count: float
    class_counts: np.ndarray                 # float64, one per class of the model
    xy: np.ndarray                           # float32 (N, 2), x then y
    class_ids: np.ndarray                    # int32 (N,)
    scores: np.ndarray                       # float32 (N,)
    density: np.ndarray | None = None        # float32 (H, W), sums to the count
    mask: np.ndarray | None = None           # float32 (H, W) in [0, 1]: where the method counted
    reconstruction: np.ndarray | None = None  # float32 (H, W, C), method-specific
    device: str = ""
    precision: str = ""
    seconds: float = 0.0
    classes: list[str] = field(default_factory=list)
    # the library's measurements (cellcount_result_measure): counted_pixels, area, unit, calibrated,
    # cells_per_unit2, intensity_radius, points [{x, y, class, score, intensity, label}], labels {available, ...}
    measurements: dict = field(default_factory=dict)
    labels: np.ndarray | None = None         # int32 (H, W): components of the method's mask, 0 = none
    # out-of-domain warnings of the prediction (cellcount_result_warnings; measurements["warnings"] is the same
    # array): [{code, message, value, limit}], [] when none. Model.predict also issues them as OutOfDomainWarning.
    warnings: list[dict] = field(default_factory=list)

    @property
    def intensities(self) -> np.ndarray:
        """Per point, the mean of the original image in a small disc (the library's intensity_radius)."""
        return np.array([np.nan if p["intensity"] is None else p["intensity"]
                         for p in self.measurements.get("points", [])], dtype=np.float64)

    @property
    def n_points(self) -> int:
        return len(self.xy)

    @property
    def yx(self) -> np.ndarray:
        """Points as (row, column), as napari and numpy index images."""
        return self.xy[:, ::-1].copy()


def _image_of(r: c_void_p, kind: int) -> np.ndarray | None:
    L = _lib.lib()
    w, h, c = c_int64(), c_int64(), c_int64()
    _raise(L.cellcount_result_image_size(r, kind, byref(w), byref(h), byref(c)))
    if w.value == 0:
        return None
    out = np.empty((h.value, w.value, c.value), dtype=np.float32)
    _raise(L.cellcount_result_image(r, kind, out.ctypes.data_as(POINTER(c_float)), out.size))
    return out[:, :, 0] if c.value == 1 and kind != 3 else out


def _measure(r: c_void_p, calibration: dict | None) -> tuple[dict, np.ndarray | None]:
    """The library's measurements of a result (and its label image when the method gives a mask)."""
    L = _lib.lib()
    req = json.dumps(_jsonable(calibration or {})).encode()
    out = c_void_p()
    _raise(L.cellcount_result_measure(r, req, byref(out)))
    m = json.loads(_take_string(out))
    labels = None
    if m["labels"]["available"]:
        w, h, c = c_int64(), c_int64(), c_int64()
        _raise(L.cellcount_result_image_size(r, _lib.IMAGE_KIND["CELLCOUNT_IMAGE_MASK"], byref(w), byref(h), byref(c)))
        labels = np.zeros((h.value, w.value), dtype=np.int32)
        _raise(L.cellcount_result_labels(r, labels.ctypes.data_as(POINTER(c_int32)), labels.size))
    return m, labels


_PERCENTILE_SAMPLES = 1 << 20  # the library's subsample above this many values (core/image_tensor percentiles)


def normalization_range(model_info: dict, image: Any) -> list[float] | None:
    """The [low, high] intensities the library's percentile normalisation takes for ``image`` (numpy or dask,
    (H, W) or (H, W, C)) under a model (its ``Model.info``): the model's p_low and p_high percentiles of every
    value the network sees, sampled and interpolated as the library does (cellcount.h, "normalization_range").
    Give it as ``normalization_range=`` to count pieces of one image (blocks, planes of a stack) as the whole.
    None for a model whose normalisation is not by percentiles (nothing to give). A dask array is read only at
    the sampled pixels (at most 2^20)."""
    inp = model_info.get("input", {})
    norm = {"mode": "percentile", "p_low": 1.0, "p_high": 99.8, **inp.get("normalization", {})}
    if norm["mode"] != "percentile":
        return None
    arr = image if hasattr(image, "vindex") else np.asarray(image)
    if arr.ndim not in (2, 3):
        raise ValueError(f"normalization_range: expected (H, W) or (H, W, C), got shape {arr.shape}")
    h, w = int(arr.shape[0]), int(arr.shape[1])
    c = 1 if arr.ndim == 2 else int(arr.shape[2])
    want, rule = int(inp.get("channels", 1)), inp.get("rgb_rule", "")
    # the channels the network sees, as the library converts them (core InputSpec::convert)
    if c == 1 and want == 3:  # a grey image to an RGB model (exemplar) is repeated to 3 channels
        planes = [arr if arr.ndim == 2 else arr[:, :, 0]] * 3
    elif arr.ndim == 2:
        planes = [arr]
    elif c == want:
        planes = [arr[:, :, k] for k in range(c)]
    elif want == 3 and rule == "replicate" and c == 4:  # RGBA to a "replicate" RGB model: alpha dropped
        planes = [arr[:, :, k] for k in range(3)]
    elif want == 1 and rule and c in (3, 4):
        planes = ([arr[:, :, k] for k in range(3)] if rule == "grey" else
                  [arr[:, :, {"red": 0, "green": 1, "blue": 2}[rule]]])
    else:
        raise ValueError(f"normalization_range: the model takes {want} channel(s), the image has {c}")
    grey = arr.ndim == 3 and want == 1 and rule == "grey" and c in (3, 4)
    n = (1 if grey else len(planes)) * h * w
    step = -(-n // _PERCENTILE_SAMPLES) if n > _PERCENTILE_SAMPLES else 1
    idx = np.arange(0, n, step, dtype=np.int64)
    plane, rest = np.divmod(idx, h * w)
    ys, xs = np.divmod(rest, w)

    def at(a: Any, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        v = a.vindex[y, x].compute() if hasattr(a, "vindex") else np.asarray(a)[y, x]
        return np.asarray(v).astype(np.float32)

    if grey:  # the library's grey: the mean of the three channels, in float32
        vals = np.stack([at(p, ys, xs) for p in planes]).mean(0, dtype=np.float32)
    else:
        vals = np.concatenate([at(planes[k], ys[plane == k], xs[plane == k]) for k in range(len(planes))])
    s = np.sort(vals)
    last = len(s) - 1

    def pct(p: float) -> float:
        pos = p / 100.0 * last
        i0 = int(math.floor(pos))
        i1 = min(i0 + 1, last)
        f = pos - i0
        return float(s[i0]) * (1 - f) + float(s[i1]) * f

    return [pct(float(norm["p_low"])), pct(float(norm["p_high"]))]


def peak_threshold_relative(absolute: float) -> float:
    """The library's 0-1 scale of the peak threshold for an absolute peak height (cellcount.h, measurements)."""
    out = c_double()
    _raise(_lib.lib().cellcount_peak_threshold_convert(float(absolute), 1, byref(out)))
    return out.value


def peak_threshold_absolute(relative: float) -> float:
    """The absolute peak height the library uses for a relative threshold in [0, 1]."""
    out = c_double()
    _raise(_lib.lib().cellcount_peak_threshold_convert(float(relative), 0, byref(out)))
    return out.value


def _collect(r: c_void_p, classes: list[str], calibration: dict | None = None) -> Result:
    L = _lib.lib()
    n = L.cellcount_result_n_points(r)
    xy = np.zeros((n, 2), dtype=np.float32)
    cls = np.zeros(n, dtype=np.int32)
    scores = np.zeros(n, dtype=np.float32)
    if n:
        _raise(L.cellcount_result_points(r, xy.ctypes.data_as(POINTER(c_float)), cls.ctypes.data_as(POINTER(c_int32)),
                                         scores.ctypes.data_as(POINTER(c_float)), n))
    k = L.cellcount_result_n_classes(r)
    measurements, labels = _measure(r, calibration)
    return Result(
        measurements=measurements, labels=labels,
        count=float(L.cellcount_result_count(r)),
        class_counts=np.array([L.cellcount_result_class_count(r, i) for i in range(k)], dtype=np.float64),
        xy=xy, class_ids=cls, scores=scores,
        density=_image_of(r, _lib.IMAGE_KIND["CELLCOUNT_IMAGE_DENSITY"]),
        mask=_image_of(r, _lib.IMAGE_KIND["CELLCOUNT_IMAGE_MASK"]),
        reconstruction=_image_of(r, _lib.IMAGE_KIND["CELLCOUNT_IMAGE_RECONSTRUCTION"]),
        device=(L.cellcount_result_device(r) or b"").decode(),
        precision=(L.cellcount_result_precision(r) or b"").decode(),
        seconds=float(L.cellcount_result_seconds(r)),
        classes=list(classes),
        warnings=json.loads(L.cellcount_result_warnings(r).decode()),
    )


# the PredictParams fields a caller may set (the rest are the struct's own bookkeeping)
_PARAM_FIELDS = [f for f, _ in PredictParams._fields_
                 if f not in ("struct_size", "reserved", "progress", "progress_user", "options_json")]


# --------------------------------------------------------------------------- models


class Model:
    """A loaded model folder (model.json + weights.pt). Use as a context manager, or call close().

    ``info`` is the library's description (method, display_name, needs_exemplars, classes, input
    channels, tiling, thresholds, provenance, metrics, device). One Model may be shared between threads;
    its calls are serialised (the C ABI forbids two threads on one handle)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._h = c_void_p()
        self._lock = threading.RLock()
        _raise(_lib.lib().cellcount_model_load(self.path.encode(), byref(self._h)))
        self.info: dict = json.loads(_lib.lib().cellcount_model_info(self._h).decode())

    # -- lifetime
    def close(self) -> None:
        with self._lock:
            if self._h:
                _lib.lib().cellcount_model_free(self._h)
                self._h = c_void_p()

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __repr__(self) -> str:
        return f"Model({self.path!r}, method={self.method!r}{', closed' if not self._h else ''})"

    # -- description
    @property
    def method(self) -> str:
        return self.info.get("method", "")

    @property
    def display_name(self) -> str:
        return self.info.get("display_name", self.method)

    @property
    def needs_exemplars(self) -> bool:
        return bool(self.info.get("needs_exemplars", False))

    @property
    def channels(self) -> int:
        return int(self.info.get("input", {}).get("channels", 1))

    @property
    def classes(self) -> list[str]:
        return list(self.info.get("classes", [])) or ["cell"]

    def refresh_info(self) -> dict:
        with self._lock:
            self._check_open()
            self.info = json.loads(_lib.lib().cellcount_model_info(self._h).decode())
            return self.info

    def _check_open(self) -> None:
        if not self._h:
            raise ValueError(f"model {self.path!r} is closed")

    # -- prediction
    def predict_options(self) -> list[dict]:
        """Metadata of this model's method's own prediction options (name, type, default, min, max, doc),
        the keys Model.predict(options=...) takes. Their values when left out: the model's, else the
        declared default."""
        return request_options(self.method, "predict")

    def _params(self, progress: _Progress, params: dict, options: dict | None) -> tuple[PredictParams, list]:
        params = dict(params)
        rel = params.pop("peak_threshold_relative", None)
        if rel is not None and rel == rel:  # (NaN = the model's) the 0-1 threshold travels in options_json
            options = {**(options or {}), "peak_threshold_relative": float(rel)}
        nr = params.pop("normalization_range", None)
        if nr is not None and len(nr) > 0:  # ([] = the image's own percentiles) travels in options_json too
            options = {**(options or {}), "normalization_range": [float(v) for v in nr]}
        unknown = set(params) - set(_PARAM_FIELDS)
        if unknown:
            raise TypeError(f"unknown prediction parameter(s) {sorted(unknown)}; known: {_PARAM_FIELDS} "
                            f"(the method's own options go in options={{...}}; see Model.predict_options())")
        p = _lib.lib().cellcount_predict_default_params()
        keep = []  # encoded strings must outlive the call
        if options is not None:
            if not isinstance(options, dict):
                raise TypeError(f"options: expected a dict of the method's prediction options, got "
                                f"{type(options).__name__}")
            b = json.dumps(_jsonable(options)).encode()
            keep.append(b)
            p.options_json = b
        for k, v in params.items():
            if v is None:
                continue  # the library's default
            if k in ("device", "precision"):
                b = str(v).encode()
                keep.append(b)
                setattr(p, k, b)
            elif k == "want_density":
                p.want_density = 1 if v else 0
            elif isinstance(getattr(p, k), float):
                p.__setattr__(k, float(v))
            else:
                p.__setattr__(k, int(v))
        p.progress = progress.c
        return p, keep

    def predict(self, image: Any, exemplars: Any = None, region: Any = None, *,
                progress: ProgressFn | None = None, options: dict | None = None, calibration: dict | None = None,
                warn: bool = True, **params: Any) -> Result:
        """Counts (and locates) cells in one 2-D image.

        image      (H, W) or (H, W, C), uint8/uint16/float32 borrowed as is (other types become float32)
        exemplars  (N, 4) boxes x0, y0, x1, y1 in pixels, for models that need_exemplars; else None
        region     optional (H, W) mask, non-zero = count here
        progress   fn(fraction, stage) -> truthy cancels (raises Cancelled; the model stays usable)
        options    the method's own prediction options as a dict, e.g. {"mask_threshold": 0.5} for exemplar
                   (Model.predict_options() lists them); each left out takes the model's value. Unknown
                   options and values out of range are refused by the library, naming the option.
        calibration  {"pixel_width", "pixel_height", "unit"} for the library's measurements (Result.measurements:
                   area, cells_per_unit2); None = pixels
        warn       issue each of Result.warnings (an image unlike the model's training images) as an
                   OutOfDomainWarning; False for front ends that report Result.warnings themselves
        params     device, precision, tile_size, tile_overlap, peak_threshold, peak_threshold_relative (the
                   library's 0-1 scale), peak_min_distance, want_density, normalization_range ([low, high] raw
                   intensities for 0 and 1 instead of the image's own percentiles, e.g. every plane of a stack
                   alike; see normalization_range()); None or absent = the library's default."""
        pixels = _as_pixels(image, "image")
        view = _view(pixels)
        reg_arr = None
        if region is not None:
            reg_arr = np.ascontiguousarray(np.asarray(region) != 0, dtype=np.uint8)
            if reg_arr.ndim != 2:
                raise ValueError(f"region: expected a 2-D mask (H, W), got shape {reg_arr.shape}")
        reg_view = _view(reg_arr) if reg_arr is not None else None
        boxes = _boxes(exemplars)
        pr = _Progress(progress)
        p, _keep = self._params(pr, params, options)
        out = c_void_p()
        res = None
        with self._lock:
            self._check_open()
            status = _lib.lib().cellcount_predict(
                self._h, byref(view), boxes, len(boxes) if boxes is not None else 0,
                byref(reg_view) if reg_view is not None else None, byref(p), byref(out))
            try:
                pr.check(status)
                res = _collect(out, self.classes, calibration)
            finally:
                _lib.lib().cellcount_result_free(out)
        if warn:
            _warn_out_of_domain(res.warnings)
        return res

    def predict_stack(self, stack: Any, exemplars: Any = None, region: Any = None, *,
                      plane_exemplars: Sequence[Any] | None = None, progress: ProgressFn | None = None,
                      **params: Any) -> list[Result]:
        """Predicts every plane of a (Z, H, W) or (Z, H, W, C) stack, slice by slice. ``exemplars`` are
        boxes for every plane, or ``plane_exemplars`` one box list per plane; ``region`` an (H, W) mask
        or a (Z, H, W) stack of masks. Progress runs over the whole stack."""
        arr = np.asarray(stack)
        if arr.ndim not in (3, 4):
            raise ValueError(f"stack: expected (Z, H, W) or (Z, H, W, C), got shape {arr.shape}")
        z = arr.shape[0]
        if plane_exemplars is not None and len(plane_exemplars) != z:
            raise ValueError(f"plane_exemplars: expected {z} box lists (one per plane), got {len(plane_exemplars)}")
        results = []
        for i in range(z):
            def plane_progress(f: float, stage: str, i: int = i) -> Any:
                return progress((i + f) / z, f"plane {i + 1}/{z}: {stage}") if progress else 0
            reg = None if region is None else (region[i] if np.ndim(region) == 3 else region)
            ex = plane_exemplars[i] if plane_exemplars is not None else exemplars
            results.append(self.predict(arr[i], ex, reg, progress=plane_progress if progress else None, **params))
        return results


def count(model: "Model | str | os.PathLike", image: Any, exemplars: Any = None, region: Any = None, *,
          progress: ProgressFn | None = None, **params: Any) -> Result:
    """One-shot Model(model).predict(image, ...): loads the model folder unless a Model is given."""
    if isinstance(model, Model):
        return model.predict(image, exemplars, region, progress=progress, **params)
    with Model(model) as m:
        return m.predict(image, exemplars, region, progress=progress, **params)


