"""The ctypes table (cellcount/_lib.py) against the public header, parsed here: every function, its return
and parameter types, every struct's fields in order, every enum value and the ABI number. A header change
that is not mirrored in the binding fails here instead of corrupting memory at run time."""
import ctypes
import re
from ctypes import POINTER, c_char_p, c_double, c_float, c_int32, c_int64, c_size_t, c_uint32, c_void_p
from pathlib import Path

import pytest

from cellcount import _lib

HEADER = Path(__file__).resolve().parents[3] / "libcellcount" / "include" / "cellcount" / "cellcount.h"
HEADERS = [HEADER]


def header_text() -> str:
    for h in HEADERS:
        if not h.exists():
            pytest.fail(f"header not found at {h}")
    text = "\n".join(h.read_text() for h in HEADERS)
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


# C type (normalised spelling) -> ctypes type. Written independently of _lib's table on purpose, from the
# header's ownership rules: `const char *` returns are borrowed strings (c_char_p); `char **` outputs are
# library-owned strings that must reach cellcount_string_free, so they stay raw pointers (c_void_p).
C_TO_CTYPES = {
    "void": None,
    "uint32_t": c_uint32,
    "int32_t": c_int32,
    "int64_t": c_int64,
    "size_t": c_size_t,
    "float": c_float,
    "double": c_double,
    "cellcount_status": _lib.status_t,
    "const char *": c_char_p,
    "char *": c_void_p,
    "char **": POINTER(c_void_p),
    "void *": c_void_p,
    "cellcount_model *": c_void_p,
    "cellcount_model **": POINTER(c_void_p),
    "const cellcount_result *": c_void_p,
    "cellcount_result *": c_void_p,
    "const void *": c_void_p,
    "cellcount_result **": POINTER(c_void_p),
    "cellcount_image *": c_void_p,
    "const cellcount_image *": c_void_p,
    "cellcount_image **": POINTER(c_void_p),
    "cellcount_image_view *": POINTER(_lib.ImageView),
    "const float *": POINTER(c_float),
    "const int32_t *": POINTER(c_int32),
    "const cellcount_image_view *": POINTER(_lib.ImageView),
    "const cellcount_box *": POINTER(_lib.Box),
    "const cellcount_predict_params *": POINTER(_lib.PredictParams),
    "cellcount_predict_params": _lib.PredictParams,
    "float *": POINTER(c_float),
    "int32_t *": POINTER(c_int32),
    "int64_t *": POINTER(c_int64),
    "double *": POINTER(c_double),
    "cellcount_progress_fn": _lib.PROGRESS_FN,
    "cellcount_log_fn": _lib.LOG_FN,
}


def norm(t: str) -> str:
    t = re.sub(r"\s+", " ", t.strip())
    t = re.sub(r"\s*\*\s*", " *", t).replace("* *", "**")
    return t.replace(" **", " **").strip()


def split_decl(decl: str) -> tuple[str, str]:
    """'const char * name' -> ('const char *', 'name')."""
    m = re.match(r"^(.*?)([A-Za-z_]\w*)\s*$", decl.strip(), flags=re.S)
    assert m, decl
    return norm(m.group(1)), m.group(2)


def header_functions() -> dict[str, tuple[str, list[str]]]:
    out = {}
    for m in re.finditer(r"CELLCOUNT_API\s+([^;(]*?)\b(cellcount_\w+)\s*\(([^)]*)\)\s*;", header_text(), flags=re.S):
        ret, name, params = norm(m.group(1)), m.group(2), m.group(3).strip()
        args = [] if params in ("", "void") else [split_decl(p)[0] for p in params.split(",")]
        out[name] = (ret, args)
    return out


def header_structs() -> dict[str, list[tuple[str, str]]]:
    out = {}
    for m in re.finditer(r"typedef struct (\w+) \{(.*?)\}\s*(\w+)\s*;", header_text(), flags=re.S):
        fields = []
        for stmt in m.group(2).split(";"):
            stmt = stmt.strip()
            if not stmt:
                continue
            first, *more = [s.strip() for s in stmt.split(",")]
            ctype, name = split_decl(first)
            fields.append((ctype, name))
            base = ctype.rstrip(" *")
            fields += [(ctype if not s.startswith("*") else norm(base + " " + "*" * s.count("*")), s.lstrip("* "))
                       for s in more]
        out[m.group(1)] = fields
    return out


def header_enum_values() -> dict[str, int]:
    vals = {}
    for body in re.findall(r"enum\s*\w*\s*\{(.*?)\}", header_text(), flags=re.S):
        for name, val in re.findall(r"(CELLCOUNT_\w+)\s*=\s*(\d+)", body):
            vals[name] = int(val)
    return vals


def test_header_was_parsed():
    fns = header_functions()
    assert len(fns) >= 25, sorted(fns)
    assert "cellcount_predict" in fns and len(fns["cellcount_predict"][1]) == 7


def test_every_header_function_is_in_the_table_and_no_other():
    fns = header_functions()
    assert sorted(set(fns) - set(_lib.FUNCTIONS)) == [], "in the header, missing from _lib.FUNCTIONS"
    assert sorted(set(_lib.FUNCTIONS) - set(fns)) == [], "in _lib.FUNCTIONS, not in the header"


@pytest.mark.parametrize("name", sorted(header_functions()))
def test_signature_matches_header(name):
    ret, args = header_functions()[name]
    for t in [ret, *args]:
        assert t in C_TO_CTYPES, f"{name}: C type {t!r} has no mapping in this test; add one"
    restype, argtypes = _lib.FUNCTIONS[name]
    assert restype is C_TO_CTYPES[ret], f"{name}: returns {ret}, table says {restype}"
    assert len(argtypes) == len(args), f"{name}: header has {len(args)} parameters, table {len(argtypes)}"
    for i, (c, py) in enumerate(zip(args, argtypes)):
        assert py is C_TO_CTYPES[c], f"{name}: parameter {i} is {c}, table says {py}"


@pytest.mark.parametrize("cname,pyclass", [("cellcount_image_view", _lib.ImageView), ("cellcount_box", _lib.Box),
                                           ("cellcount_predict_params", _lib.PredictParams)])
def test_struct_layout_matches_header(cname, pyclass):
    fields = header_structs()[cname]
    assert [n for _, n in fields] == [n for n, _ in pyclass._fields_]
    for (ctype, name), (_, pytype) in zip(fields, pyclass._fields_):
        want = C_TO_CTYPES[ctype]
        assert pytype is want, f"{cname}.{name}: {ctype} -> expected {want}, binding has {pytype}"


def test_every_header_struct_is_mirrored():
    assert set(header_structs()) == {"cellcount_image_view", "cellcount_box", "cellcount_predict_params"}


def test_enum_values_match_header():
    vals = header_enum_values()
    mine = {**_lib.STATUS, **_lib.DTYPE, **_lib.IMAGE_KIND, **_lib.LOG_LEVEL}
    assert mine == vals


def test_abi_version_matches_header_and_library():
    m = re.search(r"#define CELLCOUNT_ABI_VERSION (\d+)", HEADER.read_text())
    assert m and int(m.group(1)) == _lib.ABI_VERSION
    assert _lib.lib().cellcount_abi_version() == _lib.ABI_VERSION


def test_struct_size_agrees_with_the_library():
    assert _lib.lib().cellcount_predict_default_params().struct_size == ctypes.sizeof(_lib.PredictParams)


def test_every_table_entry_is_exported_by_the_library():
    dll = _lib.lib()
    for name in _lib.FUNCTIONS:
        assert hasattr(dll, name), name
