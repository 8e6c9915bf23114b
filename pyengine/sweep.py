"""Chunked design-space sweeps: evaluate -> constrain -> Pareto front / top-k / counts.

``sweep(model, hardware, space)`` streams a :class:`~pyengine.space.Space` in chunks of
linear indices through the backend's sweep kernel (``sweep_space``: the backend decodes
the indices, decides feasibility first and evaluates the timings of feasible plans only,
returning their indices and the few output columns the reduction reads; a backend
without one, CuPy, evaluates the chunk in full and compacts it where it lies). It keeps
only what was asked for: the exact Pareto front of the objectives, the top-k plans by one
objective, a fixed-size uniform sample of feasible plans (for plots), and counts of
feasible and infeasible plans by reason; the kept plans' full output rows are evaluated
once at the end. The working set is one chunk of kernel output plus those small tables,
whatever the size of the space.

Constraints come in two kinds:

- decided inside the kernel (:class:`~pyengine.specs.Limits`): ``gpus_exact`` (alias
  ``gpus``), ``gpus_max`` (``max_gpus``), ``mem_fraction`` (``mem_headroom``: usable
  fraction of HBM). Their violations are kernel bits (``GPUS_EXACT``, ``GPUS_MAX``,
  ``MEMORY``).
- applied to the outputs of kernel-feasible plans, chunk by chunk: ``min_<output>`` and
  ``max_<output>`` for any output column, e.g. ``min_tokens_per_s``, ``max_tpot_s``,
  ``max_ttft_s``, ``max_dropped_fraction``. Each is its own reason (``MIN_TOKENS_PER_S``).
  By default ``max_dropped_fraction = 0``: plans whose expert capacity drops tokens are
  infeasible unless allowed (pass a larger bound, or None to remove it).

Counts: ``evaluated = feasible + infeasible``; ``by_reason[name]`` counts the plans with
that reason (a plan may have several). Output-constraint reasons are counted among plans
the kernel found feasible only (an infeasible plan's outputs are not meaningful).

Results are exact and independent of chunking and of how work is split over a Dask
cluster: the front is a set (ordered by index), the top-k is ordered by (objective,
index), the sample is the feasible plans with the smallest hash of their index.
With ``backend="cupy"`` outputs, filtering and the running front/top-k stay on the GPU;
only the small tables and the counts come back.

Serving: a derived column, ``tokens_per_s_per_user`` = 1 / ``tpot_s`` (the speed each
user sees; 0 where tpot_s is 0), is computed in the reduction from the kernel's tpot_s
(no kernel change, so every backend and a Dask worker give it alike) and may be an
objective, a sort key or a bound. A space of decode plans only gets the serving front by
default: max tokens_per_s_per_gpu, max tokens_per_s_per_user (:data:`SERVE_OBJECTIVES`).
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import backends
from . import schema as S
from .engine import _xp as _xp_of
from .engine import evaluate_batch, feasible_space
from .errors import BackendUnavailable, SpecError
from .optional import require
from .pareto import Front, argsort_stable, merge_fronts, pareto_front
from .space import Space
from .specs import Hardware, Limits, Model, check_choice, check_int

DEFAULT_OBJECTIVES = (("tokens_per_s_per_gpu", "max"), ("n_gpus", "min"),
                      ("mem_total_bytes", "min"))
# The serving front (a space of decode plans only): throughput per GPU against the speed
# each user sees. The two pull apart: batching more users on a GPU raises the first and
# lowers the second.
SERVE_OBJECTIVES = (("tokens_per_s_per_gpu", "max"), ("tokens_per_s_per_user", "max"))
# Columns derived from kernel outputs in the sweep's reduction (no kernel change): each
# is computed from its source column wherever the reduction runs (NumPy, CuPy, a Dask
# worker) and added to the front, top and sample tables of a space that has decode plans.
DERIVED = {
    "tokens_per_s_per_user": S.Column(
        "tokens_per_s_per_user", "tok/s",
        "tokens per second each user (sequence) sees in decode: 1 / tpot_s, the inverse "
        "inter-token latency; 0 where tpot_s is 0 (train, prefill)"),
}
DERIVED_SOURCE = {"tokens_per_s_per_user": "tpot_s"}
DERIVED_NEEDS = {"tokens_per_s_per_user": "decode"}  # the mode whose plans give it meaning
DEFAULT_CONSTRAINTS = {"max_dropped_fraction": 0.0}
# A kernel-feasible plan whose outputs overflow float64 (specs far outside any real GPU or
# model: 1e-300 FLOP/s) has no answer to rank: its own reason, not a NaN in the front.
NOT_FINITE = "NOT_FINITE"
NOT_FINITE_DOC = ("an output the sweep reads overflowed float64, or the step takes no "
                  "time: a spec value is outside any real GPU or model")
KERNEL_CONSTRAINTS = {"gpus_exact": "gpus_exact", "gpus": "gpus_exact",
                      "gpus_max": "gpus_max", "max_gpus": "gpus_max",
                      "mem_fraction": "mem_fraction", "mem_headroom": "mem_fraction"}
CPU_CHUNK = 1 << 19
GPU_CHUNK = 1 << 23
MAX_CHUNK = 1 << 26  # a chunk's kernel output must fit in memory (~2.7 GB at five columns)
MAX_KEEP = 1 << 24  # top-k and sample sizes: tables kept in memory and evaluated in full
HEARTBEAT_S = 1.0  # how often a Dask sweep checks that its cluster still has workers
WORKER_TIMEOUT_S = 60.0
SAMPLE_SIZE = 2000
_OUT = {name: i for i, name in enumerate(S.OUTPUT_NAMES)}
_MAX_BY_DEFAULT = ("tokens_per_s", "tokens_per_s_per_gpu", "mfu", "model_tflops_per_gpu",
                   "hw_tflops_per_gpu", "tokens_per_s_per_user")

Progress = Callable[[int, int], None]


class ClusterError(RuntimeError):
    """A Dask sweep cannot go on: the scheduler is unreachable or has had no worker for
    too long. The message names the scheduler."""


# --------------------------------------------------------------------------- derived


def columns_allowed() -> str:
    """The columns an objective, a sort key or a bound may name, as an error shows them."""
    derived = ", ".join(f"{n} ({DERIVED_NEEDS[n]})" for n in DERIVED)
    return "an output column: " + ", ".join(S.OUTPUT_NAMES) + ", or " + derived


def _known(col: str) -> bool:
    return col in _OUT or col in DERIVED


def kernel_column(col: str) -> str:
    """The kernel output a (possibly derived) column is computed from."""
    return DERIVED_SOURCE.get(col, col)


def derive(name: str, source, xp=np):
    """A derived column from its source column's values (NumPy or CuPy)."""
    if name == "tokens_per_s_per_user":
        pos = source > 0
        return xp.where(pos, 1.0 / xp.where(pos, source, 1.0), 0.0)
    raise KeyError(name)


def space_modes(space: Space) -> set[str]:
    """The modes (train, prefill, decode) the plans of a space have."""
    col = S.PLAN[S.PLAN_NAMES.index("mode")]
    return {col.choices[int(v)] for v in np.asarray(space.axes["mode"]).tolist()}


def default_objectives(space: Space | None = None) -> tuple[tuple[str, str], ...]:
    """The serving front (:data:`SERVE_OBJECTIVES`) for a space of decode plans only, the
    training front (:data:`DEFAULT_OBJECTIVES`) otherwise."""
    if space is not None and space_modes(space) == {"decode"}:
        return SERVE_OBJECTIVES
    return DEFAULT_OBJECTIVES


def check_derived(names, space: Space, what: str = "objective") -> None:
    """A derived column needs plans of the mode that gives it a meaning in the space."""
    modes = space_modes(space)
    for col in dict.fromkeys(names):
        need = DERIVED_NEEDS.get(col)
        if need is not None and need not in modes:
            raise SpecError("sweep", what, col,
                            f"a column of {need} plans (serving: mode decode), and this "
                            f"space has mode {', '.join(sorted(modes))} only")


# --------------------------------------------------------------------------- options


def parse_objectives(objectives, space: Space | None = None) -> tuple[tuple[str, str], ...]:
    """Objectives as ((output column, "min"|"max"), ...).

    Accepts None (the defaults: :func:`default_objectives` of ``space``), a mapping
    {column: sense}, or a sequence of "column:sense" strings or (column, sense) pairs.
    A column is a kernel output or a derived one (:data:`DERIVED`).
    """
    if objectives is None:
        return default_objectives(space)
    items = objectives.items() if isinstance(objectives, Mapping) else objectives
    out = []
    for item in items:
        if isinstance(item, str):
            col, _, sense = item.partition(":")
            sense = sense or _default_sense(col)
        else:
            col, sense = item
        if not _known(col):
            raise SpecError("sweep", "objective", col, columns_allowed())
        if sense not in ("min", "max"):
            raise SpecError("sweep", f"objective {col}", sense, "'min' or 'max'")
        out.append((col, sense))
    if not out:
        raise SpecError("sweep", "objectives", [], "at least one objective")
    if len({c for c, _ in out}) != len(out):
        raise SpecError("sweep", "objectives", out, "each column at most once")
    return tuple(out)


def _default_sense(col: str) -> str:
    return "max" if col in _MAX_BY_DEFAULT else "min"


@dataclass(frozen=True)
class Bound:
    """An output constraint: ``column >= value`` ("min") or ``column <= value`` ("max")."""

    column: str
    kind: str  # "min" | "max"
    value: float

    @property
    def reason(self) -> str:
        return f"{self.kind}_{self.column}".upper()

    def describe(self) -> str:
        op = ">=" if self.kind == "min" else "<="
        return f"{self.column} {op} {self.value:g}"


def parse_constraints(constraints, limits: Limits | None = None):
    """(Limits for the kernel, output Bounds) from a constraints mapping.

    Defaults (``max_dropped_fraction = 0``) apply unless overridden; a value of None
    removes a constraint. Kernel limits start from ``limits`` (the space's own).
    """
    merged = dict(DEFAULT_CONSTRAINTS)
    merged.update(constraints or {})
    lim = (limits or Limits()).to_dict()
    bounds = []
    for key, value in merged.items():
        if value is None:
            continue
        if key in KERNEL_CONSTRAINTS:
            lim[KERNEL_CONSTRAINTS[key]] = value
            continue
        kind, _, col = key.partition("_")
        if kind not in ("min", "max") or not _known(col):
            raise SpecError("sweep", "constraint", key,
                            "one of " + ", ".join(sorted(KERNEL_CONSTRAINTS))
                            + ", or min_<output> / max_<output> for an output column "
                            "(or a derived one: " + ", ".join(DERIVED) + ")")
        v = _bound_value(key, kind, value)
        if v != math.inf:  # a maximum of infinity is no bound at all
            bounds.append(Bound(col, kind, v))
    return Limits(**lim), tuple(bounds)


def _bound_value(key: str, kind: str, value) -> float:
    """A bound some plan can meet. Every output is finite and >= 0, so a maximum below 0
    or a minimum of +inf (or NaN) would make every plan infeasible without saying why."""
    allowed = ("a number >= 0 (inf: no limit); outputs are never negative" if kind == "max"
               else "a finite number; no plan reaches infinity")
    try:
        v = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        v = math.nan
    if not (v >= 0 if kind == "max" else v < math.inf):  # NaN fails both
        raise SpecError("sweep", key, value, allowed)
    return v


@dataclass(frozen=True)
class _Config:
    """What every chunk needs to reduce its outputs (picklable, sent to Dask workers)."""

    objectives: tuple[tuple[str, str], ...]
    bounds: tuple[Bound, ...]
    sort_by: tuple[str, str]
    top_k: int
    sample_size: int
    duplicates: str
    backend: str
    chunk_size: int | None

    @property
    def senses(self) -> tuple[str, ...]:
        return tuple(s for _, s in self.objectives)

    @property
    def reasons(self) -> tuple[str, ...]:
        return S.VIOLATION_NAMES + tuple(b.reason for b in self.bounds) + (NOT_FINITE,)

    @property
    def named(self) -> tuple[str, ...]:
        """The columns the reduction uses, derived ones included."""
        names = [c for c, _ in self.objectives] + [b.column for b in self.bounds]
        names += [self.sort_by[0], "time_step_s"]
        return tuple(dict.fromkeys(names))

    @property
    def columns(self) -> tuple[str, ...]:
        """The kernel output columns a chunk's reduction reads: objectives, bounds, sort
        key (a derived one's source), and the step time (which must be a positive, finite
        number)."""
        return tuple(dict.fromkeys(kernel_column(c) for c in self.named))


# --------------------------------------------------------------------------- partials


@dataclass
class Partial:
    """A reduction of some plans: counts, and the plan indices (with the values they were
    chosen by) of the front, the top-k and the sample (NumPy or CuPy arrays). Full output
    rows are computed once at the end, for the few plans kept."""

    evaluated: int
    feasible: object  # int64 scalar array (device-resident on the GPU)
    by_reason: object  # int64 [n_reasons]
    front: Front
    top_key: object
    top_index: object
    sample_key: object
    sample_index: object

    @classmethod
    def empty(cls, cfg: _Config, xp=np) -> Partial:
        z = xp.empty(0, dtype=xp.int64)
        return cls(0, xp.zeros((), dtype=xp.int64), xp.zeros(len(cfg.reasons), dtype=xp.int64),
                   Front.empty(cfg.senses, None, xp), xp.empty(0), z,
                   xp.empty(0, dtype=xp.uint64), z)

    def to_host(self) -> Partial:
        def h(a):
            return a if _xp_of(a) is np else a.get()

        f = self.front
        return Partial(self.evaluated, np.asarray(h(self.feasible)), h(self.by_reason),
                       Front(h(f.values), h(f.index), f.senses), h(self.top_key),
                       h(self.top_index), h(self.sample_key), h(self.sample_index))


def smallest(key, index, k: int):
    """Positions of the k smallest entries under (key, index) order, in that order.

    ``index`` values are unique, so the order is total and the answer independent of the
    input order: that makes top-k and samples mergeable across chunks and workers.
    """
    xp = _xp_of(key)
    n = int(key.shape[0])
    if k <= 0 or n == 0:
        return xp.empty(0, dtype=xp.int64)
    if n > k:
        kth = xp.partition(key, k - 1)[k - 1]
        cand = xp.flatnonzero(key <= kth)
    else:
        cand = xp.arange(n, dtype=xp.int64)
    o = argsort_stable(index[cand])
    o = o[argsort_stable(key[cand][o])]
    return cand[o[:k]]


def _hash(index, xp):
    """splitmix64 of the plan index: a fixed pseudo-random order for the sample."""
    z = index.astype(xp.uint64) + xp.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> xp.uint64(30))) * xp.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> xp.uint64(27))) * xp.uint64(0x94D049BB133111EB)
    return z ^ (z >> xp.uint64(31))


def merge_partials(a: Partial, b: Partial, cfg: _Config) -> Partial:
    """Combine two reductions (associative and commutative)."""
    xp = _xp_of(a.by_reason)
    front = merge_fronts(a.front, b.front, cfg.duplicates)
    tk = xp.concatenate([a.top_key, b.top_key])
    ti = xp.concatenate([a.top_index, b.top_index])
    sel = smallest(tk, ti, cfg.top_k)
    sk = xp.concatenate([a.sample_key, b.sample_key])
    si = xp.concatenate([a.sample_index, b.sample_index])
    ssel = smallest(sk, si, cfg.sample_size)
    return Partial(a.evaluated + b.evaluated, a.feasible + b.feasible,
                   a.by_reason + b.by_reason, front, tk[sel], ti[sel], sk[ssel], si[ssel])


def reduce_chunk(values, index, by_bit, evaluated: int, cfg: _Config) -> Partial:
    """Reduce the kernel-feasible plans of one chunk of ``evaluated`` plans: ``values``
    [len(cfg.columns), n] (NumPy, or CuPy on the GPU where it stays), their plan
    ``index`` [n] and the chunk's per-bit violation counts ``by_bit``."""
    xp = _xp_of(index)
    at = {c: i for i, c in enumerate(cfg.columns)}
    derived = {c: derive(c, values[at[kernel_column(c)]], xp)
               for c in cfg.named if c in DERIVED}

    def column(name):
        return derived[name] if name in derived else values[at[name]]

    feasible = None
    post = []
    for bound in cfg.bounds:
        v = column(bound.column)
        ok = (v >= bound.value) if bound.kind == "min" else (v <= bound.value)  # NaN fails
        post.append(int(ok.shape[0]) - xp.count_nonzero(ok))
        feasible = ok if feasible is None else feasible & ok
    ok = xp.isfinite(values).all(axis=0) & (values[at["time_step_s"]] > 0)
    for v in derived.values():  # 1 / a subnormal tpot_s overflows
        ok &= xp.isfinite(v)
    post.append(int(ok.shape[0]) - xp.count_nonzero(ok))
    feasible = ok if feasible is None else feasible & ok
    by_reason = xp.concatenate([by_bit.astype(xp.int64), xp.stack(
        [xp.asarray(c, dtype=xp.int64) for c in post])])
    keep = xp.flatnonzero(feasible)
    values, index = values[:, keep], index[keep]
    derived = {c: v[keep] for c, v in derived.items()}
    part = Partial.empty(cfg, xp)
    part.evaluated = evaluated
    part.feasible = xp.asarray(index.shape[0], dtype=xp.int64)
    part.by_reason = by_reason
    if index.shape[0] == 0:
        return part
    objs = xp.stack([column(c) for c, _ in cfg.objectives], axis=1)
    keep = pareto_front(objs, cfg.senses, duplicates=cfg.duplicates, order=index)
    part.front = Front(objs[keep], index[keep], cfg.senses)
    if cfg.top_k > 0:
        col, sense = cfg.sort_by
        key = column(col) * (1.0 if sense == "min" else -1.0)
        good = xp.flatnonzero(~xp.isnan(key))
        sel = good[smallest(key[good], index[good], cfg.top_k)]
        part.top_key, part.top_index = key[sel], index[sel]
    if cfg.sample_size > 0:
        h = _hash(index, xp)
        sel = smallest(h, index, cfg.sample_size)
        part.sample_key, part.sample_index = h[sel], index[sel]
    return part


def _resolve_backend(name: str):
    be = backends.get(name)
    return be.NAME


def sweep_range(model: Model, hardware: Hardware, space: Space, start: int, stop: int,
                cfg: _Config, progress: Progress | None = None) -> Partial:
    """Sweep plans [start, stop) chunk by chunk; the result on the host.

    Each chunk goes through :func:`pyengine.engine.feasible_space` (the backend's sweep
    kernel: only the feasible plans' indices and the columns the reduction reads); its
    buffers are allocated once: the working set is one chunk, whatever the space's size."""
    be = backends.get(cfg.backend)
    xp = np
    if be.NAME == "cupy":
        import cupy as xp  # noqa: N813
    chunk = cfg.chunk_size or (GPU_CHUNK if be.NAME == "cupy" else CPU_CHUNK)
    chunk = max(1, min(chunk, stop - start))
    out = index = None
    if hasattr(be, "sweep_space"):  # the kernel path's buffers, reused for every chunk
        out = np.empty((len(cfg.columns), chunk))
        index = np.empty(chunk, dtype=np.int64)
    acc = Partial.empty(cfg, xp)
    for s, e in space.chunks(chunk, start, stop):
        res = feasible_space(model, hardware, space, s, e, cfg.columns, backend=be.NAME,
                             out=out, index=index)
        part = reduce_chunk(res.values, res.index, res.by_bit, e - s, cfg)
        acc = merge_partials(acc, part, cfg)
        if progress is not None:
            progress(e - start, stop - start)
    return acc.to_host()


# --------------------------------------------------------------------------- result


def plan_frame_columns(space: Space, index: np.ndarray) -> dict:
    """Plan columns of the plans at ``index`` with human values (names, bools, ints)."""
    rows = space.decode(index)
    data = {}
    for i, col in enumerate(S.PLAN):
        v = rows[:, i]
        if col.kind == "choice":
            data[col.name] = np.array(col.choices, dtype=object)[v.astype(np.int64)]
        elif col.kind == "bool":
            data[col.name] = v > 0
        elif col.kind == "int":
            data[col.name] = v.astype(np.int64)
        else:
            data[col.name] = v
    return data


def frame_derived(space: Space) -> list[str]:
    """The derived columns a space's tables carry: those its modes give a meaning."""
    modes = space_modes(space)
    return [n for n in DERIVED if DERIVED_NEEDS[n] in modes]


def _frame(space: Space, index: np.ndarray, rows: np.ndarray):
    import pandas as pd

    index = np.asarray(index, dtype=np.int64)
    data = {"index": index}
    data.update(plan_frame_columns(space, index))
    rows = np.asarray(rows).reshape(-1, S.N_OUTPUTS)
    for j, name in enumerate(S.OUTPUT_NAMES):
        data[name] = rows[:, j]
    for name in frame_derived(space):
        data[name] = derive(name, data[kernel_column(name)])
    data["violations"] = np.zeros(index.size, dtype=np.int64)
    return pd.DataFrame(data)


def _py(v):
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    return v


def _records(df) -> list[dict]:
    cols = list(df.columns)
    return [{c: _py(v) for c, v in zip(cols, row)} for row in df.itertuples(index=False)]


@dataclass
class SweepResult:
    """What a sweep keeps: counts, the Pareto front, the top-k plans, a feasible sample.

    ``front``, ``top`` and ``sample`` are DataFrames with ``index`` (the plan's linear
    index in the space), every plan column (human values), every output column and
    ``violations`` (0: they are feasible). ``front`` is ordered best-first by
    ``sort_by``, then by index; ``top`` likewise.
    """

    model: Model
    hardware: Hardware
    space: Space
    objectives: tuple[tuple[str, str], ...]
    bounds: tuple[Bound, ...]
    limits: Limits
    sort_by: tuple[str, str]
    counts: dict
    front: object
    top: object
    sample: object
    backend: str
    elapsed_s: float
    meta: dict = field(default_factory=dict)

    @property
    def plans_per_s(self) -> float:
        return self.counts["evaluated"] / self.elapsed_s if self.elapsed_s > 0 else float("inf")

    @property
    def front_index(self) -> np.ndarray:
        return np.sort(self.front["index"].to_numpy())

    def table(self, which: str = "front"):
        if which not in ("front", "top", "sample"):
            raise ValueError(f"which={which!r}: use 'front', 'top' or 'sample'")
        return getattr(self, which)

    def to_arrow(self, which: str = "front"):
        """The table as a pyarrow Table; column units and the sweep's summary as metadata."""
        pa = require("pyarrow", "SweepResult.to_arrow")

        df = self.table(which)
        table = pa.Table.from_pandas(df, preserve_index=False)
        units = {c.name: c.unit for c in S.PLAN + S.OUTPUTS + tuple(DERIVED.values())}
        fields = []
        for f in table.schema:
            meta = {"unit": units[f.name]} if units.get(f.name) else None
            fields.append(f.with_metadata(meta) if meta else f)
        summary = {k: v for k, v in self.to_dict(tables=False).items()}
        schema = pa.schema(fields, metadata={b"pyengine": json.dumps(summary).encode()})
        return table.cast(schema)

    def to_dict(self, tables: bool = True) -> dict:
        d = {
            "model": self.model.name,
            "hardware": self.hardware.name,
            "plans": len(self.space),
            "axes": {name: _axis_values(self.space, name) for name in self.space.varying},
            "objectives": [{"column": c, "sense": s} for c, s in self.objectives],
            "constraints": [{"column": b.column, "kind": b.kind, "value": b.value}
                            for b in self.bounds],
            "limits": self.limits.to_dict(),
            "sort_by": {"column": self.sort_by[0], "sense": self.sort_by[1]},
            "counts": self.counts,
            "backend": self.backend,
            "elapsed_s": self.elapsed_s,
            "plans_per_s": _py(self.plans_per_s),
        }
        d.update(self.meta)
        if tables:
            d["front"] = _records(self.front)
            d["top"] = _records(self.top)
        return d

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def save(self, path, which: str = "front") -> Path:
        """Write the front (or ``which`` table): .parquet, .csv, or .json (everything)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            require("pyarrow", "saving a table as .parquet")
            import pyarrow.parquet as pq

            pq.write_table(self.to_arrow(which), path)
        elif suffix == ".csv":
            self.table(which).to_csv(path, index=False)
        elif suffix == ".json":
            path.write_text(self.to_json(indent=1))
        else:
            raise SpecError("SweepResult.save", "path", str(path),
                            "a file name ending in .parquet, .csv or .json")
        return path


def _axis_values(space: Space, name: str) -> list:
    col = S.PLAN[S.PLAN_NAMES.index(name)]
    vals = space.axes[name]
    if col.kind == "choice":
        return [col.choices[int(v)] for v in vals]
    if col.kind == "bool":
        return [bool(v) for v in vals]
    if col.kind == "int":
        return [int(v) for v in vals]
    return [float(v) for v in vals]


# --------------------------------------------------------------------------- sweep


def sweep(model: Model, hardware: Hardware, space: Space | Mapping, objectives=None,
          constraints: Mapping | None = None, backend: str = "auto",
          chunk_size: int | None = None, top_k: int = 20, sort_by: str | None = None,
          client=None, progress: Progress | None = None, sample_size: int = SAMPLE_SIZE,
          duplicates: str = "all", start: int = 0, stop: int | None = None,
          worker_timeout: float = WORKER_TIMEOUT_S) -> SweepResult:
    """Sweep a design space; keep the Pareto front, the top-k plans and the counts.

    ``objectives``: output columns with "min"/"max" (default: max tokens_per_s_per_gpu,
    min n_gpus, min mem_total_bytes; for a space of decode plans only, the serving front:
    max tokens_per_s_per_gpu, max tokens_per_s_per_user). Derived columns
    (:data:`DERIVED`: ``tokens_per_s_per_user`` = 1 / tpot_s) may be objectives, sort
    keys and bounds (``min_tokens_per_s_per_user``) where the space has decode plans.
    ``constraints``: see the module docstring.
    ``sort_by``: "column" or "column:sense" for the top-k (default: the first
    objective). ``chunk_size``: plans per evaluated chunk (default 2**17 on CPU,
    2**23 on the GPU). ``client``: a ``distributed.Client`` to spread chunk ranges over
    its workers. ``progress(done, total)`` is called as plans complete.
    ``duplicates``: "all" keeps every plan whose objective vector is on the front,
    "first" only the lowest-index plan of each vector. ``start``/``stop``: sweep only
    the plans with linear indices in [start, stop). ``worker_timeout``: with a
    ``client``, raise :class:`ClusterError` once the cluster has had no worker for this
    many seconds (Dask itself would wait for one forever).
    """
    from .inputs import as_hardware, as_model

    model, hardware = as_model(model, "sweep"), as_hardware(hardware, "sweep")
    if isinstance(space, Mapping):
        space = Space(**space)
    if not isinstance(space, Space):
        raise SpecError("sweep", "space", type(space).__name__,
                        "a pyengine.Space or a dict of axes")
    top_k = check_int("sweep", "top_k", top_k, 0, MAX_KEEP)
    sample_size = check_int("sweep", "sample_size", sample_size, 0, MAX_KEEP)
    if chunk_size is not None:
        chunk_size = check_int("sweep", "chunk_size", chunk_size, 1, MAX_CHUNK)
    check_choice("sweep", "duplicates", duplicates, ("all", "first"))
    worker_timeout = _positive("worker_timeout", worker_timeout)
    objs = parse_objectives(objectives, space)
    limits, bounds = parse_constraints(constraints, space.limits)
    key = sort_key(sort_by, objs)
    check_derived([c for c, _ in objs], space)
    check_derived([key[0]], space, "sort_by")
    check_derived([b.column for b in bounds], space, "constraint")
    cfg = _Config(objs, bounds, key, int(top_k), int(sample_size), duplicates, backend,
                  chunk_size)
    if client is None:
        backends.get(backend)  # fail early and loudly if a named backend cannot run here
    work = copy.copy(space)
    work.limits = limits
    stop = len(work) if stop is None else min(check_int("sweep", "stop", stop, 0, 1 << 62),
                                              len(work))
    start = check_int("sweep", "start", start, 0, stop)
    t0 = time.perf_counter()
    if client is None:
        part = sweep_range(model, hardware, work, start, stop, cfg, progress)
        used = _resolve_backend(backend)
    else:
        part, used = _sweep_dask(client, model, hardware, work, start, stop, cfg, progress,
                                 worker_timeout)
    kept = kept_rows(model, hardware, work, part, cfg.backend)
    elapsed = time.perf_counter() - t0
    result = _result(model, hardware, work, cfg, limits, part, kept, used, elapsed)
    if (start, stop) != (0, len(work)):
        result.meta.update(start=start, stop=stop)
    return result


def sort_key(sort_by: str | None, objs) -> tuple[str, str]:
    """The top-k key: "column" or "column:sense" (default: the first objective; a column
    that is an objective keeps its sense)."""
    if sort_by is None:
        return objs[0]
    col, _, sense = sort_by.partition(":")
    if not sense:
        sense = dict(objs).get(col, _default_sense(col))
    return parse_objectives([(col, sense)])[0]


def _positive(name: str, value) -> float:
    try:
        v = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        v = math.nan
    if not v > 0:  # NaN too
        raise SpecError("sweep", name, value, "a number of seconds > 0 (inf: wait forever)")
    return v


def kept_rows(model: Model, hardware: Hardware, space: Space, part: Partial,
              backend: str) -> tuple[np.ndarray, np.ndarray]:
    """(index, rows [n, N_OUTPUTS]): every output of the plans the sweep kept (front,
    top-k, sample), sorted by index. Chunks carry only indices and the columns they are
    chosen by; the few plans kept are evaluated once more here, by the same kernel."""
    index = np.unique(np.concatenate([np.asarray(part.front.index, dtype=np.int64),
                                      np.asarray(part.top_index, dtype=np.int64),
                                      np.asarray(part.sample_index, dtype=np.int64)]))
    if index.size == 0:
        return index, np.empty((0, S.N_OUTPUTS))
    try:
        name = _resolve_backend(backend)
    except BackendUnavailable:  # a Dask worker's backend this machine lacks
        name = "auto"
    res = evaluate_batch(model, hardware, space.decode(index), backend=name,
                         limits=space.limits)
    block = res.block if _xp_of(res.block) is np else res.block.get()
    return index, np.ascontiguousarray(block.T)


def _result(model, hardware, space, cfg, limits, part: Partial, kept, used,
            elapsed) -> SweepResult:
    feasible = int(part.feasible)
    counts = {
        "evaluated": int(part.evaluated),
        "feasible": feasible,
        "infeasible": int(part.evaluated) - feasible,
        "by_reason": {name: int(c) for name, c in zip(cfg.reasons, part.by_reason.tolist())
                      if c or name != NOT_FINITE},  # listed only when it happened
    }
    index, rows = kept

    def table(which):
        which = np.asarray(which, dtype=np.int64)
        return _frame(space, which, rows[np.searchsorted(index, which)])

    col, sense = cfg.sort_by
    sg = 1.0 if sense == "min" else -1.0
    front = table(part.front.index)
    if len(front):
        key = front[col].to_numpy() * sg
        order = np.lexsort((front["index"].to_numpy(), np.where(np.isnan(key), np.inf, key)))
        front = front.iloc[order].reset_index(drop=True)
    return SweepResult(model, hardware, space, cfg.objectives, cfg.bounds, limits, cfg.sort_by,
                       counts, front, table(part.top_index), table(part.sample_index), used,
                       elapsed)


def task_ranges(start: int, stop: int, chunk: int, n_tasks: int):
    """Split [start, stop) into about n_tasks ranges, each a whole number of chunks."""
    per = max(1, math.ceil((stop - start) / max(1, n_tasks) / chunk)) * chunk
    for s in range(start, stop, per):
        yield s, min(s + per, stop)


def _worker_range(model, hardware, space, start, stop, cfg):
    part = sweep_range(model, hardware, space, start, stop, cfg)
    return part, _resolve_backend(cfg.backend)


def _sweep_dask(client, model, hardware, space, start, stop, cfg: _Config, progress,
                worker_timeout: float = WORKER_TIMEOUT_S):
    """Chunk ranges as Dask tasks; each worker reduces its range; merged here.

    Dask waits for a worker forever when none is left; here every ``HEARTBEAT_S`` without
    a finished task checks that the cluster has workers, and a cluster without any for
    ``worker_timeout`` seconds (or a scheduler that stops answering) ends the sweep with
    a ClusterError naming the scheduler."""
    total = stop - start
    address = _scheduler_address(client)
    threads = sum(_cluster_call(client.nthreads, address).values()) or 1
    chunk = cfg.chunk_size or CPU_CHUNK
    # a few tasks per worker thread, more for big spaces (tasks of ~64 chunks: progress)
    n_tasks = max(8 * threads, min(100_000, math.ceil(total / (64 * chunk))))
    ranges = list(task_ranges(start, stop, chunk, n_tasks))
    futures = [client.submit(_worker_range, model, hardware, space, s, e, cfg, pure=False)
               for s, e in ranges]
    sizes = {f.key: e - s for f, (s, e) in zip(futures, ranges)}
    acc = Partial.empty(cfg)
    done = 0
    used = set()
    for fut in _completed(client, futures, address, worker_timeout):
        part, name = _task_result(fut, address)
        used.add(name)
        acc = merge_partials(acc, part, cfg)
        done += sizes[fut.key]
        fut.release()
        if progress is not None:
            progress(done, total)
    return acc, "dask:" + "+".join(sorted(used)) if used else "dask"


def _scheduler_address(client) -> str:
    try:
        return str(client.scheduler.address)
    except AttributeError:
        return "?"


def _task_result(fut, address: str):
    from distributed import KilledWorker

    try:
        return fut.result()
    except KilledWorker as exc:  # workers died running it, again and again
        raise ClusterError(f"Dask workers of the scheduler at {address} died running a "
                           f"sweep task: {exc}") from None
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"lost the Dask scheduler at {address}: {exc}") from None


def _cluster_call(fn, address: str):
    """A call to the scheduler; a scheduler that is gone becomes a ClusterError."""
    try:
        return fn()
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"lost the Dask scheduler at {address}: {exc}") from None


def _completed(client, futures, address: str, worker_timeout: float):
    """Futures as they finish, raising ClusterError once the cluster has had no worker for
    ``worker_timeout`` seconds: while nothing finishes, the workers are counted every
    HEARTBEAT_S (as_completed alone would block, blind, until a worker came back)."""
    from distributed import as_completed

    ready = as_completed(futures)
    alone_since = None
    checked = time.monotonic()
    while not ready.is_empty():
        batch = ready.next_batch(block=False)
        if batch:
            alone_since = None
            yield from batch
            continue
        time.sleep(0.01)
        now = time.monotonic()
        if now - checked < HEARTBEAT_S:
            continue
        checked = now
        if _cluster_call(client.nthreads, address):
            alone_since = None
        elif alone_since is None:
            alone_since = now
        elif now - alone_since >= worker_timeout:
            client.cancel(futures)  # queued for a worker that is not coming
            raise ClusterError(
                f"the Dask scheduler at {address} has had no worker for {worker_timeout:g} s "
                f"with {ready.count()} of {len(futures)} tasks unfinished: start workers, or "
                "wait longer (worker_timeout, --worker-timeout)")


__all__ = ["sweep", "SweepResult", "ClusterError", "Bound", "Partial", "parse_objectives",
           "parse_constraints", "reduce_chunk", "kept_rows", "merge_partials",
           "smallest", "sweep_range", "task_ranges", "DEFAULT_OBJECTIVES",
           "DEFAULT_CONSTRAINTS", "SERVE_OBJECTIVES", "DERIVED", "default_objectives",
           "derive", "space_modes", "sort_key", "columns_allowed", "check_derived"]
