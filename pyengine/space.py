"""Space: named axes whose Cartesian product is addressed by a 64-bit linear index.

The product is never materialised. A kernel receives every plan column as an axis (a
fixed field is an axis of length 1) packed into one float64 ``values`` array with
``offsets``/``lengths``, and decodes a linear index itself, last column fastest
(C order)::

    rem = index
    for c in reversed(range(N_PLAN)):
        p[c] = values[offsets[c] + rem % lengths[c]]
        rem //= lengths[c]

so evaluating ``space[start:stop]`` moves only outputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from . import schema as S
from .errors import SpecError
from .reference import encode_plan_value
from .specs import Limits, Plan

MAX_PLANS = (1 << 62)


def allowed_text(col: S.Column) -> str:
    """What plan column `col` allows, in words (for error messages)."""
    if col.kind == "choice":
        return "one of " + ", ".join(col.choices) + f" (codes 0-{len(col.choices) - 1})"
    if col.kind == "bool":
        return "true or false (0 or 1)"
    if col.kind == "int":
        return f"an integer in [{col.lo:.0f}, {col.hi:.0f}]"
    return f"a finite number in [{col.lo:g}, {col.hi:g}]"


def validate_plan_values(name: str, values: np.ndarray, owner: str = "Plan") -> None:
    """Raise SpecError unless every value is allowed for plan column `name`
    (schema.plan_bounds, the same test the row kernels make)."""
    col = S.PLAN[S.PLAN_NAMES.index(name)]
    lo, hi, integral = S.plan_bounds(col)
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~((v >= lo) & (v <= hi))
        if integral:
            bad |= v != np.floor(v)
    if bad.any():
        at = int(np.argmax(bad))
        where = owner if v.ndim == 0 or v.size == 1 else f"{owner}[{at}]"
        raise SpecError(where, name, float(v.reshape(-1)[at]), allowed_text(col))


# Spellings of booleans in CSV/JSON/CLI input (pandas writes True/False): anything else
# is refused, never read as False.
TRUE_WORDS = ("true", "yes", "on", "1", "1.0")
FALSE_WORDS = ("false", "no", "off", "0", "0.0")


def _bool_code(value) -> float:
    if isinstance(value, (bool, np.bool_)):
        return 1.0 if value else 0.0
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return 1.0
        if word in FALSE_WORDS:
            return 0.0
        raise ValueError(value)
    return float(value)  # numbers: validated as 0 or 1 afterwards


def _item_code(col: S.Column, value) -> float:
    """One input value of plan column `col` as its kernel number (ValueError if none)."""
    if col.kind == "choice" and value in col.choices:
        return float(col.choices.index(value))
    if col.kind == "bool":
        return _bool_code(value)
    return float(value)


def encode_column(name: str, values: Iterable, owner: str = "Plan") -> np.ndarray:
    """Values of one plan column (strings, bools or numbers) as validated float64 codes."""
    col = S.PLAN[S.PLAN_NAMES.index(name)]
    if isinstance(values, np.ndarray):
        arr = values
    else:
        items = list(values)
        try:
            arr = np.asarray(items)
        except (ValueError, TypeError):  # ragged: lists inside the column
            arr = np.empty(len(items), dtype=object)
            arr[:] = items
    if arr.dtype.kind not in ("b", "i", "u", "f") or arr.ndim > 1:
        items = arr.reshape(-1).tolist()
        codes = []
        for i, v in enumerate(items):
            try:
                codes.append(_item_code(col, v))
            except (ValueError, TypeError):
                where = owner if len(items) == 1 else f"{owner}[{i}]"
                raise SpecError(where, name, v, allowed_text(col)) from None
        arr = np.array(codes, dtype=np.float64)
    out = np.ascontiguousarray(arr, dtype=np.float64).reshape(-1)
    validate_plan_values(name, out, owner)
    return out


def _axis_values(values) -> list | np.ndarray:
    """An axis's values: a scalar (or a string) is an axis of one value."""
    if isinstance(values, np.ndarray):
        return values.reshape(-1)
    if isinstance(values, (str, bytes, int, float, bool, np.generic)) or values is None:
        return [values]
    try:
        return list(values)
    except TypeError:
        return [values]


def _preview(values) -> object:
    vals = _axis_values(values)
    return list(vals)[:3]


@dataclass(frozen=True)
class PackedSpace:
    """What a kernel needs to decode a linear index: every plan column as an axis."""

    values: np.ndarray  # float64, all axes concatenated in schema order
    offsets: np.ndarray  # int64 [N_PLAN]
    lengths: np.ndarray  # int64 [N_PLAN]


class Space:
    """A design space: axes (lists of values) for plan columns, the rest fixed.

    >>> sp = Space(tp=[1, 2, 4, 8], pp=[1, 2, 4], dp=[1, 2], base=Plan(global_batch=64))
    >>> len(sp)
    24
    >>> sp.plan(5).tp, sp.plan(5).pp, sp.plan(5).dp
    (1, 4, 2)
    """

    def __init__(self, base: Plan | None = None, limits: Limits | None = None,
                 **axes: Iterable) -> None:
        self.base = base if base is not None else Plan()
        self.limits = limits if limits is not None else Limits()
        if not isinstance(self.base, Plan):
            raise SpecError("Space", "base", type(self.base).__name__, "a Plan")
        if not isinstance(self.limits, Limits):
            raise SpecError("Space", "limits", type(self.limits).__name__, "a Limits")
        for name in axes:
            if name not in S.PLAN_NAMES:
                raise SpecError("Space", name, _preview(axes[name]),
                                "an axis named after a plan column: " + ", ".join(S.PLAN_NAMES))
        self.axes: dict[str, np.ndarray] = {}
        for col in S.PLAN:
            if col.name in axes:
                vals = encode_column(col.name, _axis_values(axes[col.name]),
                                     owner="Space")
                if vals.size == 0:
                    raise SpecError("Space", col.name, [], "at least one value")
            else:
                vals = np.array([encode_plan_value(col, getattr(self.base, col.name))])
            self.axes[col.name] = vals
        self.lengths = np.array([self.axes[c.name].size for c in S.PLAN], dtype=np.int64)
        size = 1
        for n in self.lengths.tolist():
            size *= int(n)
        if size > MAX_PLANS:
            raise SpecError("Space", "size", size, "at most 2**62 plans (a 64-bit index)")
        self.size = size
        offsets = np.zeros(S.N_PLAN, dtype=np.int64)
        offsets[1:] = np.cumsum(self.lengths)[:-1]
        self.packed = PackedSpace(
            values=np.ascontiguousarray(np.concatenate([self.axes[c.name] for c in S.PLAN])),
            offsets=offsets, lengths=self.lengths.copy())

    @classmethod
    def from_axes(cls, axes: Mapping[str, Iterable], base: Plan | None = None,
                  limits: Limits | None = None) -> Space:
        return cls(base=base, limits=limits, **dict(axes))

    def __len__(self) -> int:
        return self.size

    @property
    def varying(self) -> list[str]:
        return [c.name for c in S.PLAN if self.axes[c.name].size > 1]

    def decode(self, index: np.ndarray) -> np.ndarray:
        """Plan columns for linear indices: float64 array [len(index), N_PLAN]."""
        idx = np.asarray(index, dtype=np.int64).copy()
        if idx.size and (idx.min() < 0 or idx.max() >= self.size):
            raise IndexError(f"plan index out of range [0, {self.size})")
        out = np.empty((idx.size, S.N_PLAN))
        for c in range(S.N_PLAN - 1, -1, -1):
            n = int(self.lengths[c])
            out[:, c] = self.axes[S.PLAN[c].name][idx % n]
            idx //= n
        return out

    def columns(self, index: np.ndarray) -> dict[str, np.ndarray]:
        rows = self.decode(index)
        return {name: rows[:, i] for i, name in enumerate(S.PLAN_NAMES)}

    def plan(self, index: int) -> Plan:
        """The Plan at a linear index (validated like any Plan)."""
        return plan_from_row(self.decode(np.array([index]))[0])

    def chunks(self, chunk_size: int, start: int = 0, stop: int | None = None):
        """(start, stop) index ranges of at most chunk_size plans."""
        stop = self.size if stop is None else min(stop, self.size)
        for s in range(start, stop, chunk_size):
            yield s, min(s + chunk_size, stop)

    def __repr__(self) -> str:
        parts = [f"{n}={self.axes[n].tolist()}" for n in self.varying]
        return f"Space({len(self)} plans: " + ", ".join(parts) + ")"


def plan_from_row(row: np.ndarray) -> Plan:
    """A kernel plan row back as a Plan."""
    kw = {}
    for i, col in enumerate(S.PLAN):
        v = float(row[i])
        if col.kind == "choice":
            kw[col.name] = col.choices[int(v)]
        elif col.kind == "bool":
            kw[col.name] = bool(v)
        elif col.kind == "int":
            kw[col.name] = int(v)
        else:
            kw[col.name] = v
    return Plan(**kw)
