"""Brute-force O(n^2) Pareto oracle shared by the pareto and sweep tests."""

from __future__ import annotations

import numpy as np


def brute_front(values, senses) -> np.ndarray:
    """Positions of rows no other row dominates (NaN rows excluded), ascending."""
    x = np.asarray(values, dtype=np.float64)
    x = x if x.ndim == 2 else x.reshape(-1, 1)
    sg = np.array([1.0 if s == "min" else -1.0 for s in senses])
    xs = x * sg
    ok = ~np.isnan(xs).any(axis=1)
    keep = []
    for i in np.flatnonzero(ok):
        le = (xs[ok] <= xs[i]).all(axis=1) & (xs[ok] < xs[i]).any(axis=1)
        if not le.any():
            keep.append(i)
    return np.array(keep, dtype=np.int64)


def first_of_duplicates(values, front) -> np.ndarray:
    """Of the front rows with equal vectors, the lowest position."""
    seen = {}
    for i in front:
        seen.setdefault(tuple(np.asarray(values[i]).tolist()), i)
    return np.array(sorted(seen.values()), dtype=np.int64)
