"""Arrays in, arrays out: evaluate many plans at once on any backend."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from . import backends
from . import schema as S
from .errors import SpecError
from .reference import encode_plan_value, hardware_vector, limits_vector, model_vector, plan_vector
from .space import Space, encode_column, validate_plan_values
from .specs import Hardware, Limits, Model, Plan


@dataclass
class BatchResult:
    """Output columns (views into one [N_OUTPUTS, n] block) and feasibility codes."""

    columns: dict[str, np.ndarray]
    codes: np.ndarray
    block: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        if name == "code":
            return self.codes
        return self.columns[name]

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    @property
    def feasible(self) -> np.ndarray:
        return self.codes == 0

    def violations(self, i: int) -> list[str]:
        return S.decode_violations(int(self.codes[i]))

    def keys(self):
        return [*self.columns.keys(), "code"]


def _xp(arr):
    """numpy or cupy, whichever `arr` belongs to."""
    mod = type(arr).__module__.split(".")[0]
    if mod == "cupy":
        import cupy

        return cupy
    return np


def pack_plans(plans, defaults: Plan | None = None) -> np.ndarray:
    """Plans as a [n, N_PLAN] float64 C-contiguous block.

    ``plans`` is a dict of columns (missing columns take ``defaults``' value), a sequence
    of :class:`Plan`, or an already packed [n, N_PLAN] array (used as is: zero-copy).
    """
    base = defaults or Plan()
    if isinstance(plans, np.ndarray) or type(plans).__module__.startswith("cupy"):
        xp = _xp(plans)
        if plans.ndim != 2 or plans.shape[1] != S.N_PLAN:
            raise SpecError("plans", "shape", tuple(plans.shape), f"[n, {S.N_PLAN}] "
                            "(columns in pyengine.schema.PLAN order)")
        block = xp.ascontiguousarray(plans, dtype=xp.float64)
        host = block if xp is np else block.get()
        for i, name in enumerate(S.PLAN_NAMES):
            validate_plan_values(name, host[:, i])
        return block
    if isinstance(plans, Mapping):
        unknown = sorted(set(plans) - set(S.PLAN_NAMES))
        if unknown:
            raise SpecError("plans", unknown[0], "...", "a plan column: " + ", ".join(S.PLAN_NAMES))
        n = None
        for name, col in plans.items():
            size = int(np.size(col))
            if n is None:
                n = size
            elif size != n and size != 1:
                raise SpecError("plans", name, f"length {size}", f"length {n} (or 1)")
        n = n or 0
        block = np.empty((n, S.N_PLAN))
        for i, col in enumerate(S.PLAN):
            if col.name in plans:
                values = plans[col.name]
                if type(values).__module__.startswith("cupy"):
                    values = values.get()
                block[:, i] = encode_column(col.name, np.atleast_1d(values))
            else:
                block[:, i] = encode_plan_value(col, getattr(base, col.name))
        return block
    rows = [plan_vector(p) for p in plans]
    return np.array(rows, dtype=np.float64).reshape(len(rows), S.N_PLAN)


def evaluate_batch(model: Model, hardware: Hardware, plans, backend: str = "auto",
                   out: np.ndarray | None = None, limits: Limits | None = None,
                   defaults: Plan | None = None) -> BatchResult:
    """Evaluate many plans. Returns one array per output column plus feasibility codes.

    ``out``: optional preallocated float64 [N_OUTPUTS, n] block to write into.
    With the cupy backend, CuPy inputs stay on the GPU and outputs come back as CuPy.
    """
    be = backends.get(backend)
    block = pack_plans(plans, defaults)
    n = block.shape[0]
    xp = np
    if be.NAME == "cupy":
        import cupy

        xp = cupy
        block = cupy.asarray(block)
    elif _xp(block) is not np:
        block = block.get()
    out, codes = _result_buffers("evaluate_batch", xp, n, out, None)
    m, h, k = _vectors(model, hardware, limits, xp)
    if n:
        be.evaluate_rows(m, h, k, block, out, codes)
    return BatchResult({name: out[i] for i, name in enumerate(S.OUTPUT_NAMES)}, codes, out)


def _result_buffers(caller: str, xp, n: int, out, codes):
    """The [N_OUTPUTS, n] output block and [n] codes: the caller's, checked, or new."""
    if out is None:
        out = xp.empty((S.N_OUTPUTS, n))
    elif out.shape != (S.N_OUTPUTS, n) or out.dtype != np.float64:
        raise SpecError(caller, "out", f"{out.shape} {out.dtype}",
                        f"a float64 array of shape ({S.N_OUTPUTS}, {n})")
    if codes is None:
        codes = xp.empty(n, dtype=xp.int64)
    elif codes.shape != (n,) or codes.dtype != np.int64:
        raise SpecError(caller, "codes", f"{codes.shape} {codes.dtype}",
                        f"an int64 array of shape ({n},)")
    return out, codes


def _space_arrays(be, space: Space):
    """The array module of backend `be` and the packed space's axes on its device."""
    packed = space.packed
    if be.NAME == "cupy":
        import cupy

        return (cupy, cupy.asarray(packed.values), cupy.asarray(packed.offsets),
                cupy.asarray(packed.lengths))
    return np, packed.values, packed.offsets, packed.lengths


def _vectors(model, hardware, limits, xp=np):
    m = model_vector(model)
    h = hardware_vector(hardware)
    k = limits_vector(limits)
    if xp is not np:
        return xp.asarray(m), xp.asarray(h), xp.asarray(k)
    return m, h, k


def evaluate_space(model: Model, hardware: Hardware, space: Space, start: int = 0,
                   stop: int | None = None, backend: str = "auto",
                   out: np.ndarray | None = None,
                   codes: np.ndarray | None = None) -> BatchResult:
    """Evaluate plans [start, stop) of a Space; the kernel decodes the indices.

    ``out`` ([N_OUTPUTS, n] float64, C-contiguous) and ``codes`` ([n] int64) may be
    preallocated: a chunked sweep that reuses them allocates nothing per chunk.
    """
    be = backends.get(backend)
    stop = len(space) if stop is None else min(stop, len(space))
    if not 0 <= start <= stop:
        raise SpecError("evaluate_space", "start", start, f"an index in [0, {stop}]")
    n = stop - start
    xp, values, offsets, lengths = _space_arrays(be, space)
    out, codes = _result_buffers("evaluate_space", xp, n, out, codes)
    m, h, k = _vectors(model, hardware, space.limits, xp)
    if n:
        be.evaluate_space(m, h, k, values, offsets, lengths, start, stop, out, codes)
    return BatchResult({name: out[i] for i, name in enumerate(S.OUTPUT_NAMES)}, codes, out)


def count_space(model: Model, hardware: Hardware, space: Space, start: int = 0,
                stop: int | None = None, backend: str = "auto") -> tuple[int, dict[str, int]]:
    """Feasible plans in [start, stop) and how many violate each constraint."""
    be = backends.get(backend)
    stop = len(space) if stop is None else min(stop, len(space))
    xp, values, offsets, lengths = _space_arrays(be, space)
    m, h, k = _vectors(model, hardware, space.limits, xp)
    if stop <= start:
        return 0, {name: 0 for name in S.VIOLATION_NAMES}
    feasible, by_bit = be.count_space(m, h, k, values, offsets, lengths, start, stop)
    return int(feasible), {name: int(by_bit[i]) for i, name in enumerate(S.VIOLATION_NAMES)}


@dataclass
class FeasibleResult:
    """The feasible plans of a window of a Space: their indices (ascending), the chosen
    output columns (views into one [len(names), found] block) and, for every plan of the
    window, how many violate each constraint."""

    index: np.ndarray
    values: np.ndarray
    names: tuple[str, ...]
    by_bit: np.ndarray
    evaluated: int

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[self.names.index(name)]

    def __len__(self) -> int:
        return int(self.index.shape[0])

    @property
    def counts(self) -> dict[str, int]:
        """Plans of the window violating each constraint (a plan may violate several)."""
        return {name: int(self.by_bit[i]) for i, name in enumerate(S.VIOLATION_NAMES)}


def feasible_space(model: Model, hardware: Hardware, space: Space, start: int = 0,
                   stop: int | None = None, columns=("tokens_per_s_per_gpu",),
                   backend: str = "auto", out: np.ndarray | None = None,
                   index: np.ndarray | None = None) -> FeasibleResult:
    """Only the feasible plans of [start, stop): indices and the output ``columns``.

    On a backend with a sweep kernel (native, numba, reference) the kernel decides
    feasibility first and computes the timings of feasible plans only, so this is
    several times faster than :func:`evaluate_space` where most plans are infeasible;
    others (CuPy) evaluate the window in full (N_OUTPUTS x 8 bytes per plan of device
    memory: call it on windows of millions, not billions) and compact it where it lies.
    ``out``
    ([len(columns), >= n] float64, C-contiguous) and ``index`` ([>= n] int64) may be
    preallocated for the kernel path: a chunked sweep reuses them.
    """
    be = backends.get(backend)
    names = tuple(columns)
    for name in names:
        if name not in S.OUTPUT_NAMES:
            raise SpecError("feasible_space", "columns", name,
                            "output columns: " + ", ".join(S.OUTPUT_NAMES))
    stop = len(space) if stop is None else min(stop, len(space))
    if not 0 <= start <= stop:
        raise SpecError("feasible_space", "start", start, f"an index in [0, {stop}]")
    n = stop - start
    rows = np.array([S.OUTPUT_NAMES.index(c) for c in names], dtype=np.int64)
    kernel = getattr(be, "sweep_space", None)
    if kernel is None:
        res = evaluate_space(model, hardware, space, start, stop, backend=be.NAME)
        xp = _xp(res.codes)
        pos = xp.flatnonzero(res.codes == 0)
        by_bit = xp.stack([xp.count_nonzero(res.codes & (1 << b))
                           for b in range(S.N_VIOLATIONS)]).astype(xp.int64)
        return FeasibleResult(pos.astype(xp.int64) + start,
                              res.block[xp.asarray(rows)][:, pos], names, by_bit, n)
    if out is None:
        out = np.empty((rows.shape[0], max(n, 1)))
    elif (out.ndim != 2 or out.shape[0] != rows.shape[0] or out.shape[1] < n
          or out.dtype != np.float64 or not out.flags.c_contiguous):
        raise SpecError("feasible_space", "out", f"{out.shape} {out.dtype}",
                        f"a C-contiguous float64 array of shape ({rows.shape[0]}, >= {n})")
    if index is None:
        index = np.empty(max(n, 1), dtype=np.int64)
    elif index.ndim != 1 or index.shape[0] < n or index.dtype != np.int64:
        raise SpecError("feasible_space", "index", f"{index.shape} {index.dtype}",
                        f"an int64 array of length >= {n}")
    if n == 0:
        return FeasibleResult(index[:0], out[:, :0], names,
                              np.zeros(S.N_VIOLATIONS, dtype=np.int64), 0)
    _, values, offsets, lengths = _space_arrays(be, space)
    m, h, k = _vectors(model, hardware, space.limits)
    found, by_bit = kernel(m, h, k, values, offsets, lengths, start, stop, rows, out, index)
    return FeasibleResult(index[:found], out[:, :found], names,
                          np.asarray(by_bit, dtype=np.int64), n)
