"""The ctypes view of libcellcount: finding the library, its structs, and ONE table of every function's
signature (``FUNCTIONS``). ``tests/test_header.py`` parses ``cellcount.h`` and checks this file against it,
so a change of the C ABI that is not mirrored here fails a test instead of corrupting memory.

Nothing here is numeric; the pythonic layer is ``api.py``.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_double, c_float, c_int32, c_int64, c_size_t,
                    c_uint32, c_void_p)
from pathlib import Path
from typing import Iterator

# --------------------------------------------------------------------------- constants of the header
# (each is compared with its #define / enum value by tests/test_header.py)

ABI_VERSION = 2  # CELLCOUNT_ABI_VERSION this binding was written for; a library with another refuses to load

STATUS = {
    "CELLCOUNT_OK": 0,
    "CELLCOUNT_CANCELLED": 1,
    "CELLCOUNT_ERR_INVALID_ARGUMENT": 10,
    "CELLCOUNT_ERR_BUFFER_TOO_SMALL": 11,
    "CELLCOUNT_ERR_UNSUPPORTED": 12,
    "CELLCOUNT_ERR_IO": 20,
    "CELLCOUNT_ERR_MODEL_FORMAT": 21,
    "CELLCOUNT_ERR_WRONG_METHOD": 22,
    "CELLCOUNT_ERR_DATASET": 23,
    "CELLCOUNT_ERR_OUT_OF_MEMORY": 30,
    "CELLCOUNT_ERR_DEVICE": 31,
    "CELLCOUNT_ERR_INTERNAL": 99,
}
DTYPE = {"CELLCOUNT_DTYPE_U8": 1, "CELLCOUNT_DTYPE_U16": 2, "CELLCOUNT_DTYPE_F32": 3}
IMAGE_KIND = {"CELLCOUNT_IMAGE_DENSITY": 1, "CELLCOUNT_IMAGE_MASK": 2, "CELLCOUNT_IMAGE_RECONSTRUCTION": 3}
LOG_LEVEL = {"CELLCOUNT_LOG_DEBUG": 0, "CELLCOUNT_LOG_INFO": 1, "CELLCOUNT_LOG_WARN": 2, "CELLCOUNT_LOG_ERROR": 3}

# --------------------------------------------------------------------------- callback types and structs

status_t = ctypes.c_int  # enum cellcount_status
# typedef int32_t (*cellcount_progress_fn)(float fraction, const char * stage, void * user);
PROGRESS_FN = CFUNCTYPE(c_int32, c_float, c_char_p, c_void_p)
# typedef void (*cellcount_log_fn)(int32_t level, const char * msg, void * user);
LOG_FN = CFUNCTYPE(None, c_int32, c_char_p, c_void_p)


class ImageView(Structure):
    """cellcount_image_view: BORROWED by the library for the duration of one call."""
    _fields_ = [
        ("data", c_void_p),
        ("width", c_int64),
        ("height", c_int64),
        ("channels", c_int64),
        ("row_stride_bytes", c_int64),
        ("dtype", c_int32),
        ("reserved", c_int32),
    ]


class Box(Structure):
    """cellcount_box: x0 < x1, y0 < y1, half-open, pixel coordinates of the image."""
    _fields_ = [("x0", c_float), ("y0", c_float), ("x1", c_float), ("y1", c_float)]


class PredictParams(Structure):
    """cellcount_predict_params: always start from cellcount_predict_default_params()."""
    _fields_ = [
        ("struct_size", c_uint32),
        ("device", c_char_p),
        ("precision", c_char_p),
        ("tile_size", c_int32),
        ("tile_overlap", c_int32),
        ("peak_threshold", c_float),
        ("peak_min_distance", c_float),
        ("want_density", c_int32),
        ("reserved", c_int32),
        ("progress", PROGRESS_FN),
        ("progress_user", c_void_p),
        ("options_json", c_char_p),
    ]


# Handles are opaque pointers (cellcount_model *, cellcount_result *): c_void_p.
# Strings the caller must free (char * from a char ** out argument) are c_void_p too, so that the pointer
# survives for cellcount_string_free; `const char *` returns (static or tied to a handle) are c_char_p.

# --------------------------------------------------------------------------- THE table

FUNCTIONS: dict[str, tuple[object, list[object]]] = {
    # version
    "cellcount_version_number": (c_uint32, []),
    "cellcount_version_string": (c_char_p, []),
    "cellcount_abi_version": (c_uint32, []),
    # status and errors
    "cellcount_status_name": (c_char_p, [status_t]),
    "cellcount_last_error": (c_char_p, []),
    # logging, threads, strings
    "cellcount_log_set": (None, [LOG_FN, c_void_p, c_int32]),
    "cellcount_set_num_threads": (status_t, [c_int32]),
    "cellcount_string_free": (None, [c_void_p]),
    "cellcount_library_info": (status_t, [POINTER(c_void_p)]),
    # models
    "cellcount_model_load": (status_t, [c_char_p, POINTER(c_void_p)]),
    "cellcount_model_free": (None, [c_void_p]),
    "cellcount_model_info": (c_char_p, [c_void_p]),
    # prediction
    "cellcount_predict_default_params": (PredictParams, []),
    "cellcount_predict": (status_t, [c_void_p, POINTER(ImageView), POINTER(Box), c_size_t, POINTER(ImageView),
                                     POINTER(PredictParams), POINTER(c_void_p)]),
    "cellcount_result_free": (None, [c_void_p]),
    "cellcount_result_count": (c_double, [c_void_p]),
    "cellcount_result_n_classes": (c_size_t, [c_void_p]),
    "cellcount_result_class_count": (c_double, [c_void_p, c_size_t]),
    "cellcount_result_n_points": (c_size_t, [c_void_p]),
    "cellcount_result_device": (c_char_p, [c_void_p]),
    "cellcount_result_precision": (c_char_p, [c_void_p]),
    "cellcount_result_seconds": (c_double, [c_void_p]),
    "cellcount_result_warnings": (c_char_p, [c_void_p]),
    "cellcount_result_points": (status_t, [c_void_p, POINTER(c_float), POINTER(c_int32), POINTER(c_float), c_size_t]),
    "cellcount_result_image_size": (status_t, [c_void_p, c_int32, POINTER(c_int64), POINTER(c_int64),
                                               POINTER(c_int64)]),
    "cellcount_result_image": (status_t, [c_void_p, c_int32, POINTER(c_float), c_size_t]),
    # cellcount.h, measurements: measurements of a result, label image, the 0-1 peak threshold scale
    "cellcount_peak_threshold_convert": (status_t, [c_double, c_int32, POINTER(c_double)]),
    "cellcount_result_measure": (status_t, [c_void_p, c_char_p, POINTER(c_void_p)]),
    "cellcount_result_labels": (status_t, [c_void_p, POINTER(c_int32), c_size_t]),
    # export of a model folder as a package for another tool (the CLI's export; not wrapped in api.py yet)
    "cellcount_export": (status_t, [c_char_p, POINTER(c_void_p)]),
    # train, evaluate, synthesize
    "cellcount_train": (status_t, [c_char_p, PROGRESS_FN, c_void_p, POINTER(c_void_p)]),
    "cellcount_evaluate": (status_t, [c_char_p, PROGRESS_FN, c_void_p, POINTER(c_void_p)]),
    "cellcount_synthesize": (status_t, [c_char_p, PROGRESS_FN, c_void_p, POINTER(c_void_p)]),
    "cellcount_request_defaults": (status_t, [c_char_p, c_char_p, POINTER(c_void_p)]),
    "cellcount_request_options": (status_t, [c_char_p, c_char_p, POINTER(c_void_p)]),
    "cellcount_metrics": (status_t, [c_char_p, POINTER(c_void_p)]),
    # datasets
    "cellcount_dataset_read": (status_t, [c_char_p, c_char_p, POINTER(c_void_p)]),
    "cellcount_split": (status_t, [c_char_p, POINTER(c_void_p)]),
    # image files (cellcount_image * is an opaque handle: c_void_p)
    "cellcount_is_image_file": (c_int32, [c_char_p]),
    "cellcount_image_read": (status_t, [c_char_p, POINTER(c_void_p)]),
    "cellcount_image_free": (None, [c_void_p]),
    "cellcount_image_n_planes": (c_size_t, [c_void_p]),
    "cellcount_image_source_dtype": (c_int32, [c_void_p]),
    "cellcount_image_plane": (status_t, [c_void_p, c_size_t, POINTER(ImageView)]),
    "cellcount_image_write": (status_t, [c_char_p, POINTER(ImageView), c_int32, c_int32]),
    "cellcount_overlay_write": (status_t, [c_char_p, POINTER(ImageView), POINTER(c_float), POINTER(c_int32),
                                           c_size_t, c_int32, c_int32]),
}

# --------------------------------------------------------------------------- finding the library

LIBRARY_ENV = "CELLCOUNT_LIBRARY"
BUILD_DIR_ENV = "CELLCOUNT_BUILD_DIR"
# The file of the ABI this binding speaks first (the SONAME, libcellcount.so.<ABI>: a library of another ABI is
# another file), then the development link, which may be any ABI (the ABI check after loading tells).
_NAMES = {"linux": [f"libcellcount.so.{ABI_VERSION}", "libcellcount.so"],
          "darwin": [f"libcellcount.{ABI_VERSION}.dylib", "libcellcount.dylib"], "win32": ["cellcount.dll"]}
LIBRARY_NAMES = _NAMES.get(sys.platform, _NAMES["linux"])


class LibraryNotFoundError(OSError):
    """libcellcount could not be found or loaded; the message lists every place that was tried."""


class AbiMismatchError(OSError):
    """The library found speaks another ABI version than this binding."""


def package_dir() -> Path:
    return Path(__file__).resolve().parent


def _is_checkout(root: Path) -> bool:
    return (root / "libcellcount" / "include" / "cellcount" / "cellcount.h").is_file()


def _installed_from() -> Path | None:
    """The checkout a regular (non-editable) `pip install ./bindings/python` was made from: setup.py records it
    in _checkout.py of the installed package. None when not recorded or no longer a checkout."""
    try:
        from ._checkout import CHECKOUT  # type: ignore[import-not-found]  # written by setup.py, not in git
    except ImportError:
        return None
    root = Path(CHECKOUT)
    return root if _is_checkout(root) else None


def repo_root() -> Path | None:
    """The cellcount checkout this package sits in (bindings/python/cellcount -> root: an editable install or
    PYTHONPATH), else the checkout it was pip-installed from, if either is one."""
    parents = package_dir().parents
    if len(parents) > 2 and _is_checkout(parents[2]):
        return parents[2]
    return _installed_from()


def _pkg_config_libdir() -> Path | None:
    """`pkg-config --variable=libdir cellcount` (the cellcount.pc that cmake --install writes), or None."""
    exe = shutil.which("pkg-config") or shutil.which("pkgconf")
    if exe is None:
        return None
    try:
        r = subprocess.run([exe, "--variable=libdir", "cellcount"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    out = r.stdout.strip()
    return Path(out) if r.returncode == 0 and out else None


def standard_lib_dirs() -> list[Path]:
    """Library folders of usual install prefixes that exist: this Python's prefix (a venv or conda env given
    to cmake --install --prefix), /usr/local and /usr (with Debian's multiarch folder)."""
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    dirs = [Path(sys.prefix) / "lib"]
    for prefix in ("/usr/local", "/usr"):
        dirs += [Path(prefix) / "lib" / multiarch] if multiarch else []
        dirs += [Path(prefix) / "lib64", Path(prefix) / "lib"]
    out: list[Path] = []
    for d in dirs:
        if d.is_dir() and d not in out:
            out.append(d)
    return out


def _candidates() -> Iterator[tuple[str, Path | str]]:
    """(where, path) in search order; a str path is a bare file name for the dynamic loader's own search.
    1. $CELLCOUNT_LIBRARY (file or folder) -- then the only candidate: a wrong setting is reported, never
       silently replaced by another copy of the library;
    2. the build tree of the checkout (repo_root(): build/, or $CELLCOUNT_BUILD_DIR, then lib/);
    3. an installed copy: beside this package (a wheel that bundles it), the prefix pkg-config names for
       cellcount, the standard library folders, then the dynamic loader (LD_LIBRARY_PATH, the ldconfig cache).
    Lazy: pkg-config runs only when the earlier places had no loadable library."""
    env = os.environ.get(LIBRARY_ENV)
    if env:
        p = Path(env)
        if p.is_dir():
            yield from ((f"${LIBRARY_ENV} folder", p / n) for n in LIBRARY_NAMES)
        else:
            yield (f"${LIBRARY_ENV}", p)
        return
    root = repo_root()
    if root is not None:
        build = Path(os.environ.get(BUILD_DIR_ENV, "build"))
        build = build if build.is_absolute() else root / build
        yield from (("the checkout's build", build / "lib" / n) for n in LIBRARY_NAMES)
    yield from (("next to the package", package_dir() / n) for n in LIBRARY_NAMES)
    libdir = _pkg_config_libdir()
    if libdir is not None:
        yield from (("pkg-config cellcount", libdir / n) for n in LIBRARY_NAMES)
    for d in standard_lib_dirs():
        yield from (("a standard library folder", d / n) for n in LIBRARY_NAMES)
    yield ("the dynamic loader's search (LD_LIBRARY_PATH, ldconfig cache)", LIBRARY_NAMES[0])


def _bind(dll: ctypes.CDLL) -> ctypes.CDLL:
    for name, (restype, argtypes) in FUNCTIONS.items():
        try:
            fn = getattr(dll, name)
        except AttributeError as e:
            raise LibraryNotFoundError(f"{dll._name} has no symbol {name}: it is not a libcellcount of ABI "
                                       f"{ABI_VERSION}") from e
        fn.restype = restype
        fn.argtypes = argtypes
    return dll


_QT5_CLASH = ("libcellcount's LibTorch (Debian's) links OpenCV's highgui and through it the system's Qt 5, "
              "which cannot share a process with the Qt 5 of the PyQt5/PySide2 wheels. Use a Qt 6 binding "
              "(pip install PyQt6; QT_API=pyqt6) or Debian's python3-pyqt5.")


# OpenMP threads that spin while waiting (libgomp's default) stall badly when the cores are shared: with the
# host's own threads (napari's GUI) or other processes on a 2-core machine, a 256x256 dcl count took 3-23 s
# spinning against 0.8 s passive. The binding lives in interactive hosts, so it asks for passive waiting
# unless the user chose otherwise. libgomp reads this when it is loaded, i.e. with the library below.
OMP_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}


def _mapped_file(path: Path | str) -> str:
    """The file behind a library loaded by bare name (the loader's search): from /proc/self/maps on Linux."""
    if isinstance(path, Path):
        return str(path)
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                file = line[line.find("/"):].strip() if "/" in line else ""
                if Path(file).name == path:
                    return file
    except OSError:
        pass
    return path


def _open() -> tuple[ctypes.CDLL, str]:
    for k, v in OMP_DEFAULTS.items():
        os.environ.setdefault(k, v)
    tried: list[str] = []
    for where, path in _candidates():
        if isinstance(path, Path) and not path.exists():
            tried.append(f"  {where}: {path} (no such file)")
            continue
        try:
            dll = ctypes.CDLL(str(path))
        except OSError as e:
            hint = f"\n    {_QT5_CLASH}" if "Qt_5" in str(e) else ""
            tried.append(f"  {where}: {path} (cannot load: {e}){hint}")
            continue
        return _bind(dll), _mapped_file(path)
    raise LibraryNotFoundError(
        "libcellcount not found or not loadable. Looked in:\n" + "\n".join(tried) +
        f"\nBuild it (bash scripts/setup.sh, or cmake --build build, in the cellcount checkout), install it "
        f"(cmake --install build --prefix P; pkg-config then finds P/lib/pkgconfig/cellcount.pc when P is on "
        f"PKG_CONFIG_PATH), or set {LIBRARY_ENV} to the library file or its folder.")


_lock = threading.RLock()
_dll: ctypes.CDLL | None = None
_path: str | None = None
on_load: list = []  # callables run once, right after the library is loaded (api.py installs the log bridge)


def lib() -> ctypes.CDLL:
    """The loaded library with every signature of FUNCTIONS set (loaded on first use, then cached).
    Raises LibraryNotFoundError, or AbiMismatchError when its ABI version differs from ABI_VERSION."""
    global _dll, _path
    if _dll is not None:
        return _dll
    with _lock:
        if _dll is None:
            dll, path = _open()
            abi = dll.cellcount_abi_version()
            if abi != ABI_VERSION:
                raise AbiMismatchError(f"{path} has C ABI version {abi}; this binding was written for "
                                       f"{ABI_VERSION}. Rebuild the library and the binding from one checkout.")
            size = dll.cellcount_predict_default_params().struct_size
            if size != ctypes.sizeof(PredictParams):
                raise AbiMismatchError(f"{path}: cellcount_predict_params is {size} bytes, the binding's "
                                       f"{ctypes.sizeof(PredictParams)}; the binding's struct is out of date.")
            _path = path
            _dll = dll
            for hook in on_load:
                hook()
    return _dll


def library_path() -> str:
    lib()
    assert _path is not None
    return _path
