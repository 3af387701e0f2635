"""Where models and samples are: the checkout's models/ and samples/, $CELLCOUNT_MODELS, and models the
user opened or trained in this session. Loaded models are cached (one handle per folder; the binding
serialises calls on a handle)."""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import cellcount

MODELS_ENV = "CELLCOUNT_MODELS"  # extra folders holding model folders, os.pathsep-separated

_session_models: list[Path] = []  # opened with "Browse..." or trained in the training widget
_cache: dict[Path, cellcount.Model] = {}
_cache_lock = threading.Lock()


def checkout_root() -> Path | None:
    """The cellcount checkout, from the binding's location or, failing that, the library's (build/lib)."""
    root = cellcount.repo_root()
    if root is not None:
        return root
    try:
        lib = Path(cellcount.library_path()).resolve()
    except OSError:
        return None
    for parent in lib.parents:
        if (parent / "models").is_dir() and (parent / "libcellcount").is_dir():
            return parent
    return None


def model_folders() -> list[Path]:
    out = [Path(p) for p in os.environ.get(MODELS_ENV, "").split(os.pathsep) if p]
    root = checkout_root()
    if root is not None:
        out.append(root / "models")
    return out


def samples_folder() -> Path | None:
    root = checkout_root()
    return root / "samples" if root is not None and (root / "samples").is_dir() else None


def _method_of(model_dir: Path) -> str | None:
    """The "method" field of a model.json (only to list models per widget; loading checks everything)."""
    try:
        return json.loads((model_dir / "model.json").read_text()).get("method")
    except (OSError, ValueError, AttributeError):
        return None


def tuned_values(model_dir: str | Path) -> dict:
    """The "thresholds" of a model.json (the values tuned at training, e.g. peak_threshold), {} when there are
    none or it cannot be read: only to show them beside the fields; loading checks everything."""
    try:
        t = json.loads((Path(model_dir) / "model.json").read_text()).get("thresholds")
    except (OSError, ValueError, AttributeError):
        return {}
    out = {k: v for k, v in t.items() if isinstance(v, (int, float)) and not isinstance(v, bool)} \
        if isinstance(t, dict) else {}
    if "peak_threshold" in out:  # the same on the library's 0-1 scale (cellcount.h, measurements), as the form takes it
        try:
            out["peak_threshold_relative"] = cellcount.peak_threshold_relative(out["peak_threshold"])
        except cellcount.CellCountError:
            pass
    return out


def remember(model_dir: str | Path) -> Path:
    p = Path(model_dir).resolve()
    if p not in _session_models:
        _session_models.append(p)
    return p


def _is_default(model_dir: Path) -> bool:
    """model.json's "default" flag: the model a widget offers first (the generalist dcl-general, issue 24)."""
    try:
        return json.loads((model_dir / "model.json").read_text()).get("default") is True
    except (OSError, ValueError, AttributeError):
        return False


def find_models(method: str) -> list[Path]:
    """Model folders whose model.json says `method`: session models first, then the model folders (in each,
    a model flagged "default" first, then by name)."""
    seen: list[Path] = []
    for p in _session_models:
        if p not in seen and _method_of(p) == method:
            seen.append(p)
    for folder in model_folders():
        if not folder.is_dir():
            continue
        for d in sorted(folder.iterdir(), key=lambda d: (not _is_default(d), d.name)):
            if d.is_dir() and (d / "model.json").exists() and _method_of(d) == method and d.resolve() not in seen:
                seen.append(d.resolve())
    return seen


def load(model_dir: str | Path) -> cellcount.Model:
    """The cached Model of a folder (loaded on first use; any thread)."""
    p = Path(model_dir).resolve()
    with _cache_lock:
        m = _cache.get(p)
        if m is None:
            m = cellcount.Model(p)
            _cache[p] = m
        return m


def forget(model_dir: str | Path) -> None:
    """Drops a cached model (e.g. after it was retrained into the same folder)."""
    with _cache_lock:
        m = _cache.pop(Path(model_dir).resolve(), None)
    if m is not None:
        m.close()
