"""The scalar reference in a Python loop: the oracle, for tests and tiny inputs."""

from __future__ import annotations

import numpy as np

from .. import schema as S
from ..reference import evaluate_plan, no_stages

NAME = "reference"


def unavailable() -> str | None:
    return None


def evaluate_rows(m, h, k, plans, out, codes) -> int:
    """Rows of plans into out/codes, one at a time; the first row holding a value no plan
    may hold, or -1 (then nothing is evaluated)."""
    bad = invalid_rows(plans)
    if bad.size:
        return int(bad[0])
    col = np.empty(S.N_OUTPUTS)
    stages = no_stages()
    for i in range(plans.shape[0]):
        codes[i], stages = evaluate_plan(m, h, k, plans[i], col, stages, 0)
        out[:, i] = col
    return -1


def invalid_rows(plans) -> np.ndarray:
    """Indices of the rows of [n, N_PLAN] plans holding a value no plan may hold
    (schema.plan_bounds: NaN, out of range, a fraction where a count is needed)."""
    lo = np.array(S.PLAN_LO)
    hi = np.array(S.PLAN_HI)
    integral = np.array(S.PLAN_INTEGRAL)
    with np.errstate(invalid="ignore"):
        bad = ~((plans >= lo) & (plans <= hi)) | (integral & (plans != np.floor(plans)))
    return np.flatnonzero(bad.any(axis=1))


def _decode(values, offsets, lengths, index, p) -> None:
    rem = index
    for c in range(S.N_PLAN - 1, -1, -1):
        n = int(lengths[c])
        p[c] = values[offsets[c] + rem % n]
        rem //= n


def evaluate_space(m, h, k, values, offsets, lengths, start, stop, out, codes) -> None:
    p = np.empty(S.N_PLAN)
    col = np.empty(S.N_OUTPUTS)
    stages = no_stages()
    for i in range(stop - start):
        _decode(values, offsets, lengths, start + i, p)
        codes[i], stages = evaluate_plan(m, h, k, p, col, stages, 0)
        out[:, i] = col


def sweep_space(m, h, k, values, offsets, lengths, start, stop, cols, out, index):
    """The feasible plans of [start, stop), compacted in index order into out[:, :found]
    (output columns ``cols``) and index[:found]; returns (found, by_bit)."""
    p = np.empty(S.N_PLAN)
    col = np.empty(S.N_OUTPUTS)
    none = np.empty(0)
    stages = no_stages()
    found = 0
    by_bit = np.zeros(S.N_VIOLATIONS, dtype=np.int64)
    for i in range(start, stop):
        _decode(values, offsets, lengths, i, p)
        code, stages = evaluate_plan(m, h, k, p, none, stages, 0)
        if code == 0:
            evaluate_plan(m, h, k, p, col, stages, 0)
            out[:, found] = col[cols]
            index[found] = i
            found += 1
        for b in range(S.N_VIOLATIONS):
            if code >> b & 1:
                by_bit[b] += 1
    return found, by_bit


def count_space(m, h, k, values, offsets, lengths, start, stop):
    p = np.empty(S.N_PLAN)
    col = np.empty(0)  # no outputs: the code only
    stages = no_stages()
    feasible = 0
    by_bit = np.zeros(len(S.VIOLATIONS), dtype=np.int64)
    for i in range(start, stop):
        _decode(values, offsets, lengths, i, p)
        code, stages = evaluate_plan(m, h, k, p, col, stages, 0)
        if code == 0:
            feasible += 1
        for b in range(len(S.VIOLATIONS)):
            if code >> b & 1:
                by_bit[b] += 1
    return feasible, by_bit
