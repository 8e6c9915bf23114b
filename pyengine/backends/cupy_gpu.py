"""CuPy GPU backend: csrc/kernels.cu + csrc/cost_model.hpp compiled by NVRTC at first use.

The device code is the same C++ kernel the native backend compiles on the host
(``cost_model.hpp``, the twin of :mod:`pyengine.reference`); the three CUDA kernels only
decode or read plans and call ``evaluate_plan``. The sources are found in the installed
package (``pyengine/_csrc``, copied there by setup.py) or, in a source checkout, in
``csrc/``. They are inlined into one translation unit before compilation, so CuPy's
on-disk kernel cache is keyed on every line of them (an edited header recompiles).

Arrays are CuPy arrays (``pyengine.engine`` moves them for ``NAME == "cupy"``); NumPy
inputs are copied to the device, outputs must already be CuPy arrays.
``count_space`` returns host integers.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import numpy as np

from .. import schema as S

NAME = "cupy"
THREADS = 256  # threads per block (the kernels use ~250 registers per thread)
BLOCKS_PER_SM = 8  # grid-stride loops: a few waves of blocks cover any number of plans
RUN = 16  # consecutive plans per thread in count_space (odometer steps, cost cache reuse)
OPTIONS = ("--std=c++17", "--fmad=false")
KERNELS = ("row_keys_kernel", "evaluate_rows_kernel", "evaluate_space_kernel",
           "count_space_kernel")
ROW_RUN = 8  # consecutive sorted rows per thread in evaluate_rows (stage reuse)
MAX_BITS = 64

try:
    import cupy

    _IMPORT_ERROR: Exception | None = None
except Exception as exc:  # ImportError, or a CuPy that cannot load its CUDA libraries
    cupy = None
    _IMPORT_ERROR = exc


def unavailable() -> str | None:
    if cupy is None:
        if isinstance(_IMPORT_ERROR, ModuleNotFoundError):
            return "CuPy is not installed: pip install pyengine[gpu]"
        return f"CuPy cannot be imported ({_IMPORT_ERROR}): pip install pyengine[gpu]"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, no device, driver too old
        return f"CuPy is installed but no CUDA device is visible ({exc})"
    if n < 1:
        return "CuPy is installed but no CUDA device is visible"
    try:
        source_dir()
    except FileNotFoundError as exc:
        return str(exc)
    return None


# ------------------------------------------------------------------ sources


def source_dir() -> Path:
    """Where kernels.cu, cost_model.hpp and schema.h are: the package, then the checkout."""
    package = Path(__file__).resolve().parent.parent
    candidates = (package / "_csrc", package.parent / "csrc")
    for d in candidates:
        if all((d / f).is_file() for f in ("kernels.cu", "cost_model.hpp", "schema.h")):
            return d
    raise FileNotFoundError("the CUDA sources (kernels.cu, cost_model.hpp, schema.h) are in "
                            "neither " + " nor ".join(str(d) for d in candidates))


_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$')


def kernel_source(directory: Path | None = None) -> str:
    """kernels.cu with its quoted includes inlined (each once): one self-contained text."""
    directory = directory or source_dir()
    seen: set[str] = set()

    def expand(name: str) -> list[str]:
        if name in seen:
            return []
        seen.add(name)
        lines = [f"// ---- {name}"]
        for line in (directory / name).read_text().splitlines():
            match = _INCLUDE.match(line)
            if match:
                lines += expand(match.group(1))
            elif line.strip() != "#pragma once":
                lines.append(line)
        return lines

    return "\n".join(expand("kernels.cu")) + "\n"


@cache
def _module():
    """The compiled kernels (NVRTC; once per process, and cached on disk by CuPy)."""
    mod = cupy.RawModule(code=kernel_source(), options=OPTIONS)
    return {name: mod.get_function(name) for name in KERNELS}


@cache
def _grid_limit() -> int:
    sms = cupy.cuda.Device().attributes["MultiProcessorCount"]
    return max(1, sms * BLOCKS_PER_SM)


def _grid(n: int) -> tuple[int]:
    return (max(1, min((n + THREADS - 1) // THREADS, _grid_limit())),)


# ------------------------------------------------------------------ arrays


def _input(arr, name: str, dtype, shape: tuple) -> object:
    """arr on the device, C-contiguous, of dtype and shape (-1: any); copies only if needed."""
    out = cupy.ascontiguousarray(cupy.asarray(arr, dtype=dtype))
    if out.ndim != len(shape) or any(s >= 0 and out.shape[i] != s for i, s in enumerate(shape)):
        raise ValueError(f"argument {name!r} must have shape {shape}, got {out.shape}")
    return out


def _output(arr, name: str, dtype, shape: tuple) -> object:
    """arr must be a C-contiguous CuPy array of dtype and shape: it is written in place."""
    if not isinstance(arr, cupy.ndarray):
        raise ValueError(f"argument {name!r} must be a cupy array, got {type(arr).__name__}")
    if arr.dtype != dtype or tuple(arr.shape) != shape or not arr.flags.c_contiguous:
        raise ValueError(f"argument {name!r} must be a C-contiguous {np.dtype(dtype).name} "
                         f"array of shape {shape}, got {arr.dtype} {arr.shape}")
    return arr


def _vectors(m, h, k):
    return (_input(m, "m", cupy.float64, (S.N_MODEL,)),
            _input(h, "h", cupy.float64, (S.N_HARDWARE,)),
            _input(k, "k", cupy.float64, (S.N_LIMITS,)))


def _axes(values, offsets, lengths, start: int, stop: int):
    values = _input(values, "values", cupy.float64, (-1,))
    offsets = _input(offsets, "offsets", cupy.int64, (S.N_PLAN,))
    lengths = _input(lengths, "lengths", cupy.int64, (S.N_PLAN,))
    if not 0 <= start <= stop:
        raise ValueError(f"start, stop = {start}, {stop} must satisfy 0 <= start <= stop")
    return values, offsets, lengths


# ------------------------------------------------------------------ contract


def evaluate_rows(m, h, k, plans, out, codes) -> int:
    """Rows of plans into out/codes, grouped on the device: each row is checked and keyed
    by its leading columns (row_keys_kernel), the rows are sorted by key (cupy.argsort)
    and evaluated in runs of that order, each result written at its row's place. Returns
    the first row holding a value no plan may hold, or -1 (then nothing is evaluated)."""
    m, h, k = _vectors(m, h, k)
    plans = _input(plans, "plans", cupy.float64, (-1, S.N_PLAN))
    n = plans.shape[0]
    _output(out, "out", cupy.float64, (S.N_OUTPUTS, n))
    _output(codes, "codes", cupy.int64, (n,))
    if not n:
        return -1
    keys = cupy.empty(n, dtype=cupy.uint64)
    invalid = cupy.empty(n, dtype=cupy.int32)
    _module()["row_keys_kernel"](_grid(n), (THREADS,), (plans, np.int64(n), keys, invalid))
    bad = cupy.flatnonzero(invalid >= 0)
    if bad.size:
        return int(bad[0].get())
    order = cupy.argsort(keys).astype(cupy.int64)
    _module()["evaluate_rows_kernel"](_grid(-(-n // ROW_RUN)), (THREADS,),
                                      (m, h, k, plans, order, np.int64(ROW_RUN), out, codes,
                                       np.int64(n)))
    return -1


def evaluate_space(m, h, k, values, offsets, lengths, start, stop, out, codes) -> None:
    start, stop = int(start), int(stop)
    m, h, k = _vectors(m, h, k)
    values, offsets, lengths = _axes(values, offsets, lengths, start, stop)
    n = stop - start
    _output(out, "out", cupy.float64, (S.N_OUTPUTS, n))
    _output(codes, "codes", cupy.int64, (n,))
    if n:
        _module()["evaluate_space_kernel"](
            _grid(n), (THREADS,),
            (m, h, k, values, offsets, lengths, np.int64(start), np.int64(stop), out, codes))


def count_space(m, h, k, values, offsets, lengths, start, stop):
    start, stop = int(start), int(stop)
    m, h, k = _vectors(m, h, k)
    values, offsets, lengths = _axes(values, offsets, lengths, start, stop)
    n_bits = len(S.VIOLATIONS)
    if n_bits > MAX_BITS:
        raise ValueError("pyengine.schema.VIOLATIONS has more than 64 entries")
    feasible = cupy.zeros(1, dtype=cupy.uint64)
    by_bit = cupy.zeros(n_bits, dtype=cupy.uint64)
    n = stop - start
    if n:
        _module()["count_space_kernel"](
            _grid(-(-n // RUN)), (THREADS,),
            (m, h, k, values, offsets, lengths, np.int64(start), np.int64(stop),
             np.int64(RUN), np.int32(n_bits), feasible, by_bit))
    return int(feasible.get()[0]), by_bit.get().astype(np.int64)
