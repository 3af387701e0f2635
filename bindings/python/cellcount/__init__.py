"""cellcount: deep-learning cell counting through libcellcount's C ABI (ctypes; numpy in, numpy out).

    import cellcount
    with cellcount.Model("models/dcl-vgg") as m:
        r = m.predict(image)                  # (H, W) or (H, W, C) numpy array
        print(r.count, r.xy.shape, r.density.sum())
    cellcount.train("dcl", "my_dataset", "models/mine", counter_epochs=50, progress=print)

Errors are raised as CellCountError (status name + the library's message); a cancelling progress callback
raises Cancelled. An image unlike the model's training images gives Result.warnings and, from Model.predict,
one OutOfDomainWarning per warning (a UserWarning; filter it as any). The library is found through
$CELLCOUNT_LIBRARY (file or folder), else the build/lib of the cellcount checkout this package sits in or was
installed from, else an installed prefix (pkg-config, the standard library folders, the dynamic loader): see
_lib._candidates.
"""
from ._lib import ABI_VERSION, AbiMismatchError, LibraryNotFoundError, repo_root
from .api import (Cancelled, CellCountError, Model, OutOfDomainWarning, ProgressFn, Result, Status, abi_version,
                  count, evaluate, export, is_image_file, library_info, library_path, methods, metrics,
                  normalization_range, peak_threshold_absolute,
                  peak_threshold_relative, predict_defaults, read_dataset,
                  read_image, request_defaults, request_options, set_log_handler, set_num_threads, split,
                  synthesize, train, version, write_image, write_overlay)

__all__ = [
    "ABI_VERSION", "AbiMismatchError", "LibraryNotFoundError", "Cancelled", "CellCountError", "Model",
    "OutOfDomainWarning", "ProgressFn", "Result", "Status", "abi_version", "count", "evaluate", "library_info",
    "library_path", "methods", "predict_defaults", "request_defaults", "request_options", "repo_root",
    "set_log_handler", "set_num_threads", "synthesize", "train", "version", "metrics", "read_dataset", "split",
    "is_image_file", "read_image", "write_image", "write_overlay", "peak_threshold_absolute",
    "peak_threshold_relative", "normalization_range", "export",
]
__version__ = "0.1.0"
