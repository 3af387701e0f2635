"""Where the binding looks for libcellcount (cellcount/_lib.py, _candidates): $CELLCOUNT_LIBRARY alone when set,
else the checkout's build tree, else an installed copy (beside the package, pkg-config's prefix, the standard
library folders, the dynamic loader). The order is checked on the candidate list (nothing loaded); two
subprocess tests load the real library from a package copied out of the checkout: once from a prefix that
pkg-config names, once through the checkout that setup.py records at a non-editable install."""
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

import cellcount
from cellcount import _lib

ROOT = Path(__file__).resolve().parents[3]
SONAME = f"libcellcount.so.{_lib.ABI_VERSION}"


def wheres(candidates):
    """The distinct places in order (each place lists the ABI's file, then the development link)."""
    out = []
    for where, _ in candidates:
        if where not in out:
            out.append(where)
    return out


@pytest.fixture()
def places(monkeypatch, tmp_path):
    """A fake checkout, pkg-config prefix and standard folder; no $CELLCOUNT_LIBRARY / $CELLCOUNT_BUILD_DIR."""
    monkeypatch.delenv(_lib.LIBRARY_ENV, raising=False)
    monkeypatch.delenv(_lib.BUILD_DIR_ENV, raising=False)
    checkout, pc, std = tmp_path / "checkout", tmp_path / "prefix" / "lib", tmp_path / "usr" / "lib"
    monkeypatch.setattr(_lib, "repo_root", lambda: checkout)
    monkeypatch.setattr(_lib, "_pkg_config_libdir", lambda: pc)
    monkeypatch.setattr(_lib, "standard_lib_dirs", lambda: [std])
    return types.SimpleNamespace(checkout=checkout, pc=pc, std=std)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux library names")
def test_names_put_the_abi_file_first():
    assert _lib.LIBRARY_NAMES == [SONAME, "libcellcount.so"]


def test_order_checkout_build_then_installed(places):
    c = list(_lib._candidates())
    assert wheres(c) == ["the checkout's build", "next to the package", "pkg-config cellcount",
                         "a standard library folder", "the dynamic loader's search (LD_LIBRARY_PATH, ldconfig cache)"]
    paths = [p for _, p in c]
    assert paths[0] == places.checkout / "build" / "lib" / _lib.LIBRARY_NAMES[0]
    assert places.pc / _lib.LIBRARY_NAMES[0] in paths and places.std / _lib.LIBRARY_NAMES[0] in paths
    assert paths.index(places.pc / _lib.LIBRARY_NAMES[0]) < paths.index(places.std / _lib.LIBRARY_NAMES[0])
    assert paths[-1] == _lib.LIBRARY_NAMES[0]  # a bare name: the loader's own search


def test_build_dir_variable_moves_the_checkout_build(places, monkeypatch, tmp_path):
    monkeypatch.setenv(_lib.BUILD_DIR_ENV, "build-asan")
    assert next(_lib._candidates())[1] == places.checkout / "build-asan" / "lib" / _lib.LIBRARY_NAMES[0]
    monkeypatch.setenv(_lib.BUILD_DIR_ENV, str(tmp_path / "elsewhere"))
    assert next(_lib._candidates())[1] == tmp_path / "elsewhere" / "lib" / _lib.LIBRARY_NAMES[0]


def test_outside_a_checkout_only_installed_places(places, monkeypatch):
    monkeypatch.setattr(_lib, "repo_root", lambda: None)
    assert wheres(_lib._candidates())[0] == "next to the package"
    assert "the checkout's build" not in wheres(_lib._candidates())


def test_environment_variable_is_the_only_candidate(places, monkeypatch, tmp_path):
    lib = tmp_path / "mine.so"
    monkeypatch.setenv(_lib.LIBRARY_ENV, str(lib))
    assert list(_lib._candidates()) == [(f"${_lib.LIBRARY_ENV}", lib)]  # even a missing file: reported, not skipped
    monkeypatch.setenv(_lib.LIBRARY_ENV, str(tmp_path))
    assert [p for _, p in _lib._candidates()] == [tmp_path / n for n in _lib.LIBRARY_NAMES]


def test_pkg_config_runs_only_when_the_earlier_places_failed(places, monkeypatch):
    def boom():
        raise AssertionError("pkg-config asked although an earlier place was still untried")
    monkeypatch.setattr(_lib, "_pkg_config_libdir", boom)
    it = _lib._candidates()
    for _ in range(2 * len(_lib.LIBRARY_NAMES)):  # the checkout's build and the package folder
        next(it)
    with pytest.raises(AssertionError):
        next(it)


def test_pkg_config_libdir_asks_pkg_config(monkeypatch, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "pkg-config"
    fake.write_text('#!/bin/sh\n[ "$1 $2" = "--variable=libdir cellcount" ] && echo /opt/cc/lib && exit 0\nexit 1\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    assert _lib._pkg_config_libdir() == Path("/opt/cc/lib")
    fake.write_text("#!/bin/sh\necho 'Package cellcount was not found' >&2\nexit 1\n")
    assert _lib._pkg_config_libdir() is None
    monkeypatch.setenv("PATH", str(tmp_path / "none"))
    assert _lib._pkg_config_libdir() is None


def test_repo_root_falls_back_to_the_recorded_checkout(monkeypatch, tmp_path):
    monkeypatch.setattr(_lib, "package_dir", lambda: tmp_path / "site-packages" / "cellcount")
    monkeypatch.setitem(sys.modules, "cellcount._checkout", types.SimpleNamespace(CHECKOUT=str(ROOT)))
    assert _lib.repo_root() == ROOT
    monkeypatch.setitem(sys.modules, "cellcount._checkout", types.SimpleNamespace(CHECKOUT=str(tmp_path)))
    assert _lib.repo_root() is None  # recorded, but no longer a checkout
    monkeypatch.setitem(sys.modules, "cellcount._checkout", None)  # not recorded (import fails)
    assert _lib.repo_root() is None


# ----------------------------------------------------------------------------- the real library, in a subprocess

def _copy_package(dest: Path) -> Path:
    site = dest / "site"
    shutil.copytree(_lib.package_dir(), site / "cellcount", ignore=shutil.ignore_patterns("__pycache__", "_checkout.py"))
    return site


def _library_path_in(site: Path, **env) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k not in (_lib.LIBRARY_ENV, "PYTHONPATH", "LD_LIBRARY_PATH")}
    e.update(PYTHONPATH=str(site), **env)
    return subprocess.run([sys.executable, "-c", "import cellcount; print(cellcount.library_path())"],
                          capture_output=True, text=True, env=e, cwd=site, timeout=120)


@pytest.fixture(scope="module")
def real_library() -> Path:
    return Path(cellcount.library_path()).resolve()


@pytest.mark.skipif(shutil.which("pkg-config") is None, reason="pkg-config not installed")
def test_installed_prefix_found_through_pkg_config(real_library, tmp_path):
    lib = tmp_path / "prefix" / "lib"
    (lib / "pkgconfig").mkdir(parents=True)
    (lib / SONAME).symlink_to(real_library)
    (lib / "pkgconfig" / "cellcount.pc").write_text(
        f"prefix={tmp_path / 'prefix'}\nlibdir=${{prefix}}/lib\nName: cellcount\nDescription: test\nVersion: "
        f"{cellcount.version()}\nLibs: -L${{libdir}} -lcellcount\n")
    r = _library_path_in(_copy_package(tmp_path), PKG_CONFIG_PATH=str(lib / "pkgconfig"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(lib / SONAME)


def test_non_editable_install_finds_the_checkouts_build(real_library, tmp_path):
    """setup.py's build_py writes cellcount/_checkout.py into what pip installs; that copy finds the
    checkout's build tree (what `pip install ./bindings/python` gives, without pip's cost)."""
    pytest.importorskip("setuptools")
    if os.environ.get(_lib.LIBRARY_ENV):
        pytest.skip("$CELLCOUNT_LIBRARY chose the library of this session")
    # egg_info first, into tmp_path: nothing is written into the checkout
    r = subprocess.run([sys.executable, "-W", "ignore", "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path),
                        "build_py", "--build-lib", str(tmp_path / "site")],
                       cwd=ROOT / "bindings" / "python", capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    recorded = (tmp_path / "site" / "cellcount" / "_checkout.py").read_text()
    assert repr(str(ROOT)) in recorded
    r = _library_path_in(tmp_path / "site", PKG_CONFIG_PATH=str(tmp_path / "no-pc"))
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).resolve() == real_library
    assert Path(r.stdout.strip()).is_relative_to(ROOT)
