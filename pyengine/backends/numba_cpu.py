"""Numba CPU backend: the reference's own functions, compiled, in a prange loop.

There is no second copy of the formulas: every function of the reference kernel's call
graph (``reference.KERNEL_FUNCTIONS``) is registered as jitable, so ``evaluate_plan``
compiles from the same source the scalar reference runs. Plans are split into blocks
of ``BLOCK`` so each parallel task is large (threads collapse on tiny regions when the
other core is busy; see STYLE.md).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from .. import reference as R
from .. import schema as S

NAME = "numba"
BLOCK = 256  # plans per parallel task: its output block (BLOCK x N_OUT x 8 B = 64 KiB) stays
# in L2 and under glibc's mmap threshold (128 KiB), so each task allocates from the heap

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

try:
    import numba
    from numba import njit, prange
    from numba.extending import register_jitable

    _IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - numba is a dependency
    numba = None
    _IMPORT_ERROR = exc


def _cache_dir() -> str:
    """Numba's on-disk cache keys on the kernel file alone, not on reference.py and
    schema.py, which the kernels inline: a stale cache would silently return the old
    model. So the cache lives in a folder named after a hash of every source the kernels
    compile from, and of the Numba version."""
    here = Path(__file__).resolve()
    digest = hashlib.sha256(numba.__version__.encode())
    for path in (here, here.parent.parent / "reference.py", here.parent.parent / "schema.py"):
        digest.update(path.read_bytes())
    base = os.environ.get("PYENGINE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "pyengine")
    folder = os.path.join(base, "numba-" + digest.hexdigest()[:16])
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, ".write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError:
        folder = os.path.join(tempfile.gettempdir(), "pyengine-numba-" + digest.hexdigest()[:16])
        os.makedirs(folder, exist_ok=True)
    return folder


def unavailable() -> str | None:
    if numba is None:
        return f"numba is not installed ({_IMPORT_ERROR})"
    return None


if numba is not None:
    # the cache locator is fixed when a kernel is defined: point it at our folder for
    # the definitions below only, and leave Numba's setting as it was for everyone else
    _previous_cache_dir = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = _cache_dir()
    for _fn in R.KERNEL_FUNCTIONS + (R.evaluate_plan,):
        register_jitable(_fn)
    _evaluate_plan = R.evaluate_plan
    N_OUT = S.N_OUTPUTS
    N_PLAN = S.N_PLAN
    N_BITS = len(S.VIOLATIONS)
    N_CACHE = S.N_CACHE
    CACHE_FROM = S.CACHE_FROM
    CACHE2_FROM = S.CACHE2_FROM

    @njit(inline="always")
    def _decode(values, offsets, lengths, index, digits, p):
        # mixed radix, last column fastest: once per block (int64 division is slow)
        rem = index
        for c in range(N_PLAN - 1, -1, -1):
            n = lengths[c]
            digits[c] = rem % n
            rem //= n
            p[c] = values[offsets[c] + digits[c]]

    @njit(inline="always")
    def _advance(values, offsets, lengths, digits, p):
        # odometer step to the next linear index; returns the lowest column that changed
        # (>= CACHE_FROM means the per-layer costs of the previous plan still hold)
        for c in range(N_PLAN - 1, -1, -1):
            digits[c] += 1
            if digits[c] < lengths[c]:
                p[c] = values[offsets[c] + digits[c]]
                return c
            digits[c] = 0
            p[c] = values[offsets[c]]
        return 0

    @njit(inline="always")
    def _reuse_level(changed):
        # which cached values the previous plan's still-equal leading columns allow
        if changed >= CACHE2_FROM:
            return 2
        if changed >= CACHE_FROM:
            return 1
        return 0

    @njit(inline="always")
    def _flush(tmp, out, lo, count):
        # block outputs leave as contiguous runs, one per column (no strided stores)
        for j in range(N_OUT):
            for i in range(count):
                out[j, lo + i] = tmp[i, j]

    @njit(parallel=True, error_model="numpy", cache=True)
    def _rows_kernel(m, h, k, plans, out, codes):
        n = plans.shape[0]
        n_blocks = (n + BLOCK - 1) // BLOCK
        for b in prange(n_blocks):
            tmp = np.empty((BLOCK, N_OUT))
            cache = np.empty(N_CACHE)
            lo = b * BLOCK
            count = min(n, lo + BLOCK) - lo
            for i in range(count):
                codes[lo + i] = _evaluate_plan(m, h, k, plans[lo + i], tmp[i], cache, 0)
            _flush(tmp, out, lo, count)

    @njit(parallel=True, error_model="numpy", cache=True)
    def _space_kernel(m, h, k, values, offsets, lengths, start, stop, out, codes):
        n = stop - start
        n_blocks = (n + BLOCK - 1) // BLOCK
        for b in prange(n_blocks):
            tmp = np.empty((BLOCK, N_OUT))
            p = np.empty(N_PLAN)
            digits = np.empty(N_PLAN, dtype=np.int64)
            lo = b * BLOCK
            count = min(n, lo + BLOCK) - lo
            cache = np.empty(N_CACHE)
            _decode(values, offsets, lengths, start + lo, digits, p)
            reuse = 0
            for i in range(count):
                if i > 0:
                    reuse = _reuse_level(_advance(values, offsets, lengths, digits, p))
                codes[lo + i] = _evaluate_plan(m, h, k, p, tmp[i], cache, reuse)
            _flush(tmp, out, lo, count)

    @njit(parallel=True, error_model="numpy", cache=True)
    def _count_kernel(m, h, k, values, offsets, lengths, start, stop):
        n = stop - start
        n_blocks = (n + BLOCK - 1) // BLOCK
        feasible = np.zeros(n_blocks, dtype=np.int64)
        by_bit = np.zeros((n_blocks, N_BITS), dtype=np.int64)
        for b in prange(n_blocks):
            col = np.empty(N_OUT)
            p = np.empty(N_PLAN)
            digits = np.empty(N_PLAN, dtype=np.int64)
            lo = b * BLOCK
            count = min(n, lo + BLOCK) - lo
            cache = np.empty(N_CACHE)
            _decode(values, offsets, lengths, start + lo, digits, p)
            reuse = 0
            for i in range(count):
                if i > 0:
                    reuse = _reuse_level(_advance(values, offsets, lengths, digits, p))
                code = _evaluate_plan(m, h, k, p, col, cache, reuse)
                if code == 0:
                    feasible[b] += 1
                else:
                    for bit in range(N_BITS):
                        if (code >> bit) & 1:
                            by_bit[b, bit] += 1
        return feasible.sum(), by_bit.sum(axis=0)

    numba.config.CACHE_DIR = _previous_cache_dir


def evaluate_rows(m, h, k, plans, out, codes) -> None:
    _rows_kernel(m, h, k, plans, out, codes)


def evaluate_space(m, h, k, values, offsets, lengths, start, stop, out, codes) -> None:
    _space_kernel(m, h, k, values, offsets, lengths, np.int64(start), np.int64(stop), out, codes)


def count_space(m, h, k, values, offsets, lengths, start, stop):
    feasible, by_bit = _count_kernel(m, h, k, values, offsets, lengths, np.int64(start),
                                     np.int64(stop))
    return int(feasible), by_bit
