"""Pareto filtering: exact against a brute-force oracle, on CPU and (when present) GPU."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pareto_oracle import brute_front, first_of_duplicates

from pyengine import pareto
from pyengine.pareto import Front, dominates, merge_fronts, pareto_front

SENSES = st.sampled_from(["min", "max"])


@st.composite
def point_sets(draw, max_n=60, allow_nan=False):
    """[n, k] points, k in 2..5: few distinct values (ties, duplicates) or any floats."""
    k = draw(st.integers(2, 5))
    n = draw(st.integers(0, max_n))
    if draw(st.booleans()):
        elements = st.integers(-2, 2).map(float)
    else:
        elements = st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False)
        if draw(st.booleans()):
            elements = st.one_of(elements, st.sampled_from([np.inf, -np.inf, 0.0, -0.0]))
    if allow_nan:
        elements = st.one_of(elements, st.just(np.nan))
    x = draw(hnp.arrays(np.float64, (n, k), elements=elements))
    senses = draw(st.lists(SENSES, min_size=k, max_size=k))
    return x, senses


def small_pivot_sample():
    """Make the sample-pivot rounds run on tiny inputs."""
    return mock.patch.multiple(pareto, SAMPLE=2, MAX_PIVOTS=3)


@settings(max_examples=300, deadline=None)
@given(point_sets())
def test_front_equals_bruteforce(data):
    x, senses = data
    expected = brute_front(x, senses)
    np.testing.assert_array_equal(pareto_front(x, senses), expected)
    with small_pivot_sample():
        np.testing.assert_array_equal(pareto_front(x, senses), expected)


@settings(max_examples=150, deadline=None)
@given(point_sets(allow_nan=True))
def test_nan_rows_are_never_on_the_front(data):
    x, senses = data
    np.testing.assert_array_equal(pareto_front(x, senses), brute_front(x, senses))


@settings(max_examples=150, deadline=None)
@given(point_sets())
def test_gpu_algorithm_on_numpy_equals_bruteforce(data):
    """The GPU orchestration (_front_xp) run with NumPy and the kernel's CPU twin."""
    x, senses = data
    sg = pareto.signs(senses, x.shape[1])
    expected = brute_front(x, senses)
    np.testing.assert_array_equal(pareto._front_xp(x, sg, np, pareto._cpu_dominated_by),
                                  expected)
    with small_pivot_sample():
        np.testing.assert_array_equal(pareto._front_xp(x, sg, np, pareto._cpu_dominated_by),
                                      expected)


@settings(max_examples=150, deadline=None)
@given(point_sets())
def test_duplicates_first_keeps_lowest_position(data):
    x, senses = data
    expected = first_of_duplicates(x, brute_front(x, senses))
    np.testing.assert_array_equal(pareto_front(x, senses, duplicates="first"), expected)


@settings(max_examples=150, deadline=None)
@given(point_sets(max_n=80), st.lists(st.integers(0, 80), max_size=5),
       st.sampled_from(["all", "first"]))
def test_merging_chunk_fronts_equals_front_of_union(data, cuts, duplicates):
    x, senses = data
    n = x.shape[0]
    bounds = sorted({0, n, *[c for c in cuts if c <= n]})
    merged = Front.empty(senses)
    for a, b in zip(bounds[:-1], bounds[1:]):
        part = Front.of(x[a:b], senses, index=np.arange(a, b, dtype=np.int64),
                        rows=x[a:b], duplicates=duplicates)
        merged = merge_fronts(merged, part, duplicates=duplicates)
    expected = brute_front(x, senses)
    if duplicates == "first":
        expected = first_of_duplicates(x, expected)
    np.testing.assert_array_equal(merged.index, expected)
    np.testing.assert_array_equal(merged.rows, x[expected])
    np.testing.assert_array_equal(merged.values, x[expected])


def test_merge_order_does_not_matter():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 6, size=(500, 3)).astype(float)
    senses = ("max", "min", "min")
    parts = [Front.of(x[i:i + 100], senses, np.arange(i, i + 100)) for i in range(0, 500, 100)]
    a = Front.empty(senses)
    for p in parts:
        a = merge_fronts(a, p)
    b = Front.empty(senses)
    for p in reversed(parts):
        b = merge_fronts(p, b)
    np.testing.assert_array_equal(a.index, b.index)
    np.testing.assert_array_equal(a.index, brute_front(x, senses))


@pytest.mark.parametrize("k", [2, 3, 4])
def test_large_random_sets_match_a_blocked_check(k):
    """Tens of thousands of points (the pruning rounds engage): every front point is
    undominated and every other point is dominated by a front point."""
    rng = np.random.default_rng(k)
    n = 12_000
    x = rng.random((n, k))
    x[:, -1] = 1.2 - x[:, :-1].mean(axis=1) + 0.3 * rng.random(n)  # a thick front
    senses = ["min"] * k
    with mock.patch.multiple(pareto, SAMPLE=256):
        front = pareto_front(x, senses)
    assert front.size > 100
    on = np.zeros(n, dtype=bool)
    on[front] = True
    fx = x[front]
    for s in range(0, n, 1024):
        blk = x[s:s + 1024]
        dom = ((fx[None, :, :] <= blk[:, None, :]).all(2)
               & (fx[None, :, :] < blk[:, None, :]).any(2)).any(1)
        np.testing.assert_array_equal(dom, ~on[s:s + 1024])


def test_two_objective_sweep_with_ties():
    x = np.array([[1, 5], [1, 5], [1, 6], [2, 4], [2, 4], [3, 4], [0, 9], [0, 9], [4, 1]],
                 dtype=float)
    np.testing.assert_array_equal(pareto_front(x), [0, 1, 3, 4, 6, 7, 8])
    np.testing.assert_array_equal(pareto_front(x, duplicates="first"), [0, 3, 6, 8])
    np.testing.assert_array_equal(pareto_front(x, ["max", "max"]), [2, 5, 6, 7, 8])


def test_inputs_and_errors():
    assert pareto_front(np.empty((0, 3))).size == 0
    np.testing.assert_array_equal(pareto_front(np.array([3.0, 1.0, 1.0, 2.0])), [1, 2])
    np.testing.assert_array_equal(pareto_front(np.full((4, 2), np.nan)), [])
    assert dominates([1, 2], [1, 3]) and not dominates([1, 3], [1, 3])
    assert dominates([5, 2], [4, 2], ["max", "min"])
    with pytest.raises(ValueError, match="sense"):
        pareto_front(np.zeros((3, 2)), ["min", "up"])
    with pytest.raises(ValueError, match="2 objectives"):
        pareto_front(np.zeros((3, 2)), ["min"])
    with pytest.raises(ValueError, match="duplicates"):
        pareto_front(np.zeros((3, 2)), duplicates="some")
    with pytest.raises(TypeError):
        pareto_front([[1.0, 2.0]])
    with pytest.raises(ValueError, match="senses"):
        merge_fronts(Front.empty(["min", "max"]), Front.empty(["max", "max"]))
    ints = np.array([[1, 2], [2, 1], [2, 2]], dtype=np.int32)
    np.testing.assert_array_equal(pareto_front(ints), [0, 1])


def _gpu():
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
        return cupy
    except Exception:  # no CuPy, no driver, no device
        return None


@pytest.mark.gpu
@pytest.mark.skipif(_gpu() is None, reason="needs CuPy and a CUDA device")
@pytest.mark.parametrize("k", [2, 3, 5])
def test_gpu_front_equals_cpu(k):
    cupy = _gpu()
    rng = np.random.default_rng(10 + k)
    for x in (rng.random((200_000, k)), rng.integers(0, 4, size=(5000, k)).astype(float)):
        senses = ["max"] + ["min"] * (k - 1)
        got = pareto_front(cupy.asarray(x), senses)
        assert isinstance(got, cupy.ndarray)
        np.testing.assert_array_equal(got.get(), pareto_front(x, senses))
        first = pareto_front(cupy.asarray(x), senses, duplicates="first").get()
        np.testing.assert_array_equal(first, pareto_front(x, senses, duplicates="first"))
    small = rng.integers(0, 3, size=(300, k)).astype(float)
    np.testing.assert_array_equal(pareto_front(cupy.asarray(small)).get(),
                                  brute_front(small, ["min"] * k))
