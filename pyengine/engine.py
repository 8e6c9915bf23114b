"""Arrays in, arrays out: evaluate many plans at once on any backend."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from . import backends
from . import schema as S
from .errors import SpecError
from .inputs import as_hardware, as_limits, as_model
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


PLANS_ALLOWED = ("a float64 [n, N_PLAN] array (columns in pyengine.schema.PLAN order), a dict "
                 "or DataFrame of plan columns, a Plan, or a list of Plan or of dicts")


def _columns_of(plans):
    """A mapping of plan columns from a dict, a DataFrame or a list of row dicts; None if
    `plans` is none of them."""
    if isinstance(plans, Mapping):
        return dict(plans)
    if hasattr(plans, "columns") and hasattr(plans, "to_numpy"):  # a pandas DataFrame
        return {str(c): plans[c].to_numpy() for c in plans.columns}
    if isinstance(plans, (list, tuple)) and plans and all(isinstance(r, Mapping) for r in plans):
        keys = list(plans[0])
        for i, row in enumerate(plans):
            if set(row) != set(keys):
                odd = sorted(set(row) ^ set(keys))[0]
                raise SpecError(f"plans[{i}]", odd, row.get(odd, "<missing>"),
                                "the same keys in every row: " + ", ".join(map(str, keys)))
        return {key: [row[key] for row in plans] for key in keys}
    return None


def _pack_columns(cols: dict, base: Plan) -> np.ndarray:
    """[n, N_PLAN] rows from plan columns; a column of length 1 (or a scalar) is
    broadcast, every other column must have the same length n."""
    unknown = sorted(str(k) for k in cols if k not in S.PLAN_NAMES)
    if unknown:
        raise SpecError("plans", unknown[0], "...", "a plan column: " + ", ".join(S.PLAN_NAMES))
    values = {}
    for name, col in cols.items():
        if type(col).__module__.startswith("cupy"):
            col = col.get()
        arr = np.asarray(col, dtype=object if isinstance(col, (list, tuple)) else None)
        if arr.ndim > 1:
            raise SpecError("plans", name, f"shape {arr.shape}", "a scalar or a 1-d column")
        values[name] = np.atleast_1d(arr)
    lengths = {name: v.shape[0] for name, v in values.items()}
    n = max([ln for ln in lengths.values() if ln != 1], default=1 if values else 0)
    for name, ln in lengths.items():
        if ln not in (1, n):
            raise SpecError("plans", name, f"length {ln}",
                            f"length {n} (as the other columns) or 1 (broadcast)")
    block = np.empty((n, S.N_PLAN))
    for i, col in enumerate(S.PLAN):
        if col.name in values:
            block[:, i] = encode_column(col.name, values[col.name], owner="plans")
        else:
            block[:, i] = encode_plan_value(col, getattr(base, col.name))
    return block


def pack_plans(plans, defaults: Plan | None = None):
    """Plans as a [n, N_PLAN] float64 C-contiguous block.

    ``plans`` is an already packed [n, N_PLAN] float64 array (NumPy or CuPy: used as is,
    zero-copy; its values are checked by the kernel that reads them), a dict or DataFrame
    of columns (missing columns take ``defaults``' value; length-1 columns broadcast),
    a :class:`Plan`, or a list of Plans or of row dicts.
    """
    base = defaults if defaults is not None else Plan()
    if not isinstance(base, Plan):
        raise SpecError("evaluate_batch", "defaults", type(base).__name__, "a Plan")
    if isinstance(plans, np.ndarray) or type(plans).__module__.startswith("cupy"):
        xp = _xp(plans)
        if plans.ndim != 2 or plans.shape[1] != S.N_PLAN:
            raise SpecError("plans", "shape", tuple(plans.shape), f"[n, {S.N_PLAN}] "
                            "(columns in pyengine.schema.PLAN order)")
        if plans.dtype.kind not in "biuf":
            raise SpecError("plans", "dtype", str(plans.dtype), "numbers (float64)")
        return xp.ascontiguousarray(plans, dtype=xp.float64)
    if isinstance(plans, Plan):
        return plan_vector(plans).reshape(1, S.N_PLAN)
    cols = _columns_of(plans)
    if cols is not None:
        return _pack_columns(cols, base)
    if isinstance(plans, (list, tuple)) and all(isinstance(p, Plan) for p in plans):
        rows = [plan_vector(p) for p in plans]
        return np.array(rows, dtype=np.float64).reshape(len(rows), S.N_PLAN)
    raise SpecError("evaluate_batch", "plans", type(plans).__name__, PLANS_ALLOWED)


def invalid_row_error(block, row: int) -> SpecError:
    """The error for row `row` of a packed block that a kernel refused: the first column
    whose value no plan may hold, with what is allowed."""
    values = block[row]
    values = values.get() if hasattr(values, "get") else values
    for name, v in zip(S.PLAN_NAMES, np.asarray(values).tolist()):
        try:
            validate_plan_values(name, np.array([v]), owner=f"plans[{row}]")
        except SpecError as exc:
            return exc
    return SpecError(f"plans[{row}]", "row", np.asarray(values).tolist(), "valid plan values")


def evaluate_batch(model: Model, hardware: Hardware, plans, backend: str = "auto",
                   out: np.ndarray | None = None, limits: Limits | None = None,
                   defaults: Plan | None = None) -> BatchResult:
    """Evaluate many plans, in any order. Returns one array per output column plus
    feasibility codes, in the order of ``plans``.

    The kernels group the rows by their leading plan columns (a stable sort within
    blocks) so that rows sharing a layer shape share its costs, however they arrive, and
    check every value: a row holding a value no plan may hold raises SpecError naming
    the row, the column and the allowed range.
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
        bad = be.evaluate_rows(m, h, k, block, out, codes)
        if bad >= 0:
            raise invalid_row_error(block, bad)
    return BatchResult({name: out[i] for i, name in enumerate(S.OUTPUT_NAMES)}, codes, out)


def window(caller: str, space: Space, start, stop) -> tuple[int, int]:
    """[start, stop) of a Space as checked integers: 0 <= start <= stop, stop clipped to
    the space's size (None: the whole space)."""
    if not isinstance(space, Space):
        raise SpecError(caller, "space", type(space).__name__, "a pyengine.Space")
    size = len(space)
    stop = size if stop is None else _index(caller, "stop", stop, 0, None)
    start = _index(caller, "start", start, 0, None)
    stop = min(stop, size)
    if start > stop:
        raise SpecError(caller, "start", start, f"an index in [0, {stop}] (the stop)")
    return start, stop


def _index(caller: str, name: str, value, lo: int, hi: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise SpecError(caller, name, value, "an integer plan index")
    if value < lo or (hi is not None and value > hi):
        raise SpecError(caller, name, int(value), f"an integer plan index >= {lo}")
    return int(value)


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


def _vectors(model, hardware, limits, xp=np, caller: str = "evaluate_batch"):
    m = model_vector(as_model(model, caller))
    h = hardware_vector(as_hardware(hardware, caller))
    k = limits_vector(as_limits(limits, caller))
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
    start, stop = window("evaluate_space", space, start, stop)
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
    start, stop = window("count_space", space, start, stop)
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
    start, stop = window("feasible_space", space, start, stop)
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
