"""reference.py and csrc/cost_model.hpp read side by side: same functions, tags, names.

The Python reference is the specification; the C++ header is its line-by-line twin.
Nothing here is a hand-kept list: the kernel's functions are ``reference.KERNEL_FUNCTIONS``
plus ``evaluate_plan``, found in the source in definition order.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from pyengine import reference as R

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = Path(R.__file__)
HEADER = ROOT / "csrc" / "cost_model.hpp"
TAG = re.compile(r"\[([A-Z]\d+)\]")
# a C++ function definition (or declaration, ending in ';'): PYENGINE_HD inline TYPE NAME(
CPP_FUNCTION = re.compile(
    r"PYENGINE_HD\s+inline\s+(?:const\s+)?(?:[\w:]+\s+)+?(\w+)\s*\(([^()]*)\)\s*([{;])")
# helpers standing for Python builtins (min, max), with Python's semantics
CPP_BUILTINS = re.compile(r"py_\w+")

pytestmark = pytest.mark.skipif(not HEADER.exists(), reason="csrc/cost_model.hpp is absent")


def _kernel_names() -> set[str]:
    return {f.__name__ for f in R.KERNEL_FUNCTIONS} | {"evaluate_plan"}


def _python_kernel_defs() -> list[ast.FunctionDef]:
    tree = ast.parse(REFERENCE.read_text())
    names = _kernel_names()
    return [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]


def _python_kernel_text() -> str:
    """reference.py from the first kernel function to the end of the last one."""
    defs = _python_kernel_defs()
    lines = REFERENCE.read_text().splitlines()
    return "\n".join(lines[defs[0].lineno - 1:max(d.end_lineno for d in defs)])


def _cpp_definitions() -> list[tuple[str, str]]:
    """(name, body text) of every function defined in cost_model.hpp, in order."""
    text = HEADER.read_text()
    found = []
    for match in CPP_FUNCTION.finditer(text):
        if match.group(3) != "{":
            continue  # a forward declaration
        depth, i = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        found.append((match.group(1), match.group(2) + text[match.end():i]))
    return found


def test_kernel_functions_all_found_in_reference():
    assert {d.name for d in _python_kernel_defs()} == _kernel_names()


def test_same_functions_in_same_order():
    python = [d.name for d in _python_kernel_defs()]
    cpp = [name for name, _ in _cpp_definitions() if not CPP_BUILTINS.fullmatch(name)]
    assert cpp == python


def test_same_tags_in_same_order():
    python = TAG.findall(_python_kernel_text())
    cpp = TAG.findall(HEADER.read_text())
    assert python, "reference.py carries no [tag] comments"
    assert cpp == python


def test_same_variable_names():
    """Every argument and local a reference function names appears in its C++ twin."""
    cpp = dict(_cpp_definitions())
    missing = {}
    for fn in _python_kernel_defs():
        names = {a.arg for a in fn.args.args}
        for node in ast.walk(fn):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
        words = set(re.findall(r"\w+", cpp[fn.name]))
        lost = sorted(names - words)
        if lost:
            missing[fn.name] = lost
    assert not missing, f"names of reference.py missing from cost_model.hpp: {missing}"


def test_header_needs_no_standard_library_under_nvrtc():
    """Under NVRTC (__CUDACC_RTC__) the header includes nothing but schema.h."""
    text = HEADER.read_text()
    includes = re.findall(r"#include\s*[<\"]([^>\"]+)[>\"]", text)
    assert set(includes) <= {"cmath", "schema.h"}
    guarded = re.search(r"#if !defined\(__CUDACC_RTC__\)\s*#include <cmath>", text)
    assert guarded, "<cmath> must only be included outside NVRTC"


# a C++ struct: `struct Name { type field; ... };`
CPP_STRUCT = re.compile(r"struct\s+(\w+)\s*\{([^}]*)\};")
CPP_FIELD = re.compile(r"^\s*(?:[\w:]+\s+)+(\w+);", re.M)


def _python_results() -> list[tuple[str, tuple[str, ...]]]:
    """(name, fields) of every stage-result namedtuple of reference.py, in source order."""
    found = []
    for node in ast.parse(REFERENCE.read_text()).body:
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and getattr(node.value.func, "id", None) == "namedtuple"):
            name = node.targets[0].id
            found.append((name, tuple(getattr(R, name)._fields)))
    return found


def test_same_stage_results_with_same_fields():
    """Every namedtuple a reference stage returns is a C++ struct of the same name with
    the same fields in the same order, and the C++ header has no other struct."""
    cpp = [(name, tuple(CPP_FIELD.findall(body)))
           for name, body in CPP_STRUCT.findall(HEADER.read_text())]
    assert cpp == _python_results()


def test_reference_functions_stay_short():
    """The specification reads in stages: no function of reference.py is longer than
    about 100 lines (the issue that split evaluate_plan set the bound)."""
    long = {node.name: node.end_lineno - node.lineno + 1
            for node in ast.walk(ast.parse(REFERENCE.read_text()))
            if isinstance(node, ast.FunctionDef) and node.end_lineno - node.lineno + 1 > 100}
    assert not long, f"functions over 100 lines: {long}"


def test_no_numbered_cache_slots():
    """Stage results are named fields in both sources: no cache vector indexed by a
    number (the walkers keep the Stages structs)."""
    for text in (REFERENCE.read_text(), HEADER.read_text()):
        assert not re.search(r"\bcache\s*\[", text)
