"""Backend registry: every backend is a module with the same five names.

Contract (arrays in, arrays out; all float64 except codes, int64):

- ``NAME``: the registry key.
- ``unavailable() -> str | None``: None when the backend can run here, else why not.
- ``evaluate_rows(m, h, k, plans, out, codes)``: ``plans`` is [n, N_PLAN] C-contiguous,
  ``out`` [N_OUTPUTS, n], ``codes`` [n]; filled in place.
- ``evaluate_space(m, h, k, values, offsets, lengths, start, stop, out, codes)``: plans
  are the linear indices [start, stop) of a packed :class:`~pyengine.space.Space`,
  decoded inside the kernel; ``out`` [N_OUTPUTS, stop - start].
- ``count_space(m, h, k, values, offsets, lengths, start, stop) -> (feasible, by_bit)``:
  evaluates without storing outputs; ``by_bit[i]`` counts plans violating constraint i.

``PYENGINE_BACKEND`` forces the choice of ``auto``. A backend asked for by name that
cannot run raises :class:`BackendUnavailable` with its reason; ``auto`` quietly takes
the fastest that can.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from ..errors import BackendUnavailable, SpecError

# name -> module path; "auto" tries them in this order (fastest first).
REGISTRY: dict[str, str] = {
    "cupy": "pyengine.backends.cupy_gpu",
    "native": "pyengine.backends.native",
    "numba": "pyengine.backends.numba_cpu",
    "reference": "pyengine.backends.reference_loop",
}
AUTO_ORDER = ("cupy", "native", "numba", "reference")


def _load(name: str) -> ModuleType:
    try:
        return importlib.import_module(REGISTRY[name])
    except ImportError as exc:  # a backend's optional dependency is missing
        raise BackendUnavailable(f"backend {name!r} cannot be imported: {exc}") from exc


def why_unavailable(name: str) -> str | None:
    """None if backend `name` can run here, else the reason it cannot."""
    if name not in REGISTRY:
        raise SpecError("backend", "name", name, "one of " + ", ".join(["auto", *REGISTRY]))
    try:
        mod = _load(name)
    except BackendUnavailable as exc:
        return str(exc)
    return mod.unavailable()


def available() -> list[str]:
    return [n for n in AUTO_ORDER if why_unavailable(n) is None]


def get(name: str = "auto") -> ModuleType:
    """The backend module for `name`; "auto" picks the fastest available."""
    if name == "auto":
        forced = os.environ.get("PYENGINE_BACKEND")
        if forced:
            return get(forced)
        for candidate in AUTO_ORDER:
            if why_unavailable(candidate) is None:
                return _load(candidate)
        raise BackendUnavailable("no backend is available")  # reference always is
    reason = why_unavailable(name)
    if reason is not None:
        raise BackendUnavailable(f"backend {name!r} is unavailable: {reason}")
    return _load(name)
