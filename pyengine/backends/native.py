"""Native CPU backend: csrc/cost_model.hpp compiled into pyengine._native (pybind11, OpenMP).

The C++ kernel is the line-by-line twin of :mod:`pyengine.reference` (same function and
variable names, same tags; tests/test_tags.py checks them). Arrays go in and come out
without copies; the GIL is released while OpenMP threads run large blocks of plans.
``OMP_WAIT_POLICY`` defaults to ``passive`` so idle threads sleep instead of spinning
(threads collapse when another process holds a core otherwise; see STYLE.md);
``OMP_NUM_THREADS`` sets the thread count as usual.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

from .. import schema as S

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # read when libgomp loads

try:
    from .. import _native
    _IMPORT_ERROR: Exception | None = None
except ImportError as exc:
    _native = None
    _IMPORT_ERROR = exc

NAME = "native"


def unavailable() -> str | None:
    if _native is None:
        return f"pyengine._native is not built: run pip install . ({_IMPORT_ERROR})"
    keys = ("N_PLAN", "N_OUTPUTS", "N_MODEL", "N_HARDWARE", "N_LIMITS", "N_VIOLATIONS",
            "CACHE_FROM")
    built = tuple(getattr(_native, key, None) for key in keys)
    want = tuple(getattr(S, key) for key in keys)
    if built != want:
        return ("pyengine._native was built from another schema (columns "
                f"{built} != {want}): rebuild it with pip install .")
    checkout = Path(__file__).resolve().parents[2] / "csrc"
    if (checkout / "module.cpp").is_file() and getattr(_native, "SOURCE_HASH", ""):
        if _native.SOURCE_HASH != _checkout_hash(checkout):
            return ("pyengine._native is stale (csrc/ changed since it was built): rebuild it "
                    "with pip install . or python setup.py build_ext --inplace")
    return None


def _checkout_hash(directory: Path) -> str:
    """source_hash, recomputed only when a source file's size or mtime changed (this check
    runs on every backend lookup, e.g. once per sweep chunk)."""
    paths = sorted(p for pattern in ("*.cpp", "*.hpp", "*.h") for p in directory.glob(pattern))
    stamp = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
    return _hash_for(str(directory), stamp)


@functools.lru_cache(maxsize=8)
def _hash_for(directory: str, stamp: tuple) -> str:
    return source_hash(Path(directory))


def source_hash(directory: Path) -> str:
    """Digest of the native sources in `directory`, as setup.py computes it at build time."""
    digest = hashlib.sha256()
    paths = [p for pattern in ("*.cpp", "*.hpp", "*.h") for p in directory.glob(pattern)]
    for path in sorted(paths, key=lambda p: p.name):
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def max_threads() -> int:
    """OpenMP threads one call uses (OMP_NUM_THREADS)."""
    return _native.max_threads()


def evaluate_rows(m, h, k, plans, out, codes) -> int:
    """Rows of plans into out/codes, grouped by their leading columns for stage reuse; the
    first row holding a value no plan may hold, or -1."""
    return int(_native.evaluate_rows(m, h, k, plans, out, codes))


def evaluate_space(m, h, k, values, offsets, lengths, start, stop, out, codes) -> None:
    _native.evaluate_space(m, h, k, values, offsets, lengths, int(start), int(stop), out, codes)


def sweep_space(m, h, k, values, offsets, lengths, start, stop, cols, out, index):
    """The feasible plans of [start, stop) compacted, in index order, into out[:, :found]
    (output columns ``cols``) and index[:found]; returns (found, by_bit)."""
    found, by_bit = _native.sweep_space(m, h, k, values, offsets, lengths, int(start),
                                        int(stop), cols, out, index)
    return int(found), by_bit


def count_space(m, h, k, values, offsets, lengths, start, stop):
    feasible, by_bit = _native.count_space(m, h, k, values, offsets, lengths, int(start),
                                           int(stop))
    return int(feasible), by_bit
