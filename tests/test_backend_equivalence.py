"""Every backend equals the scalar reference, on every output, for any input Hypothesis finds.

The backends are data: every name in ``pyengine.backends.REGISTRY`` is tested the same
way, and one that cannot run here is skipped with its own reason. Expected values come
from the reference kernel evaluated row by row on plans decoded by ``Space.decode``
(never typed by hand), so a backend's index decoding is checked too.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import hardware, limits, mixtral_like, models, plan_rows, spaces

from pyengine import backends
from pyengine import reference as R
from pyengine import schema as S
from pyengine.space import Space
from pyengine.specs import Limits, Plan

RTOL = 1e-9
ATOL = 1e-300
SETTINGS = settings(max_examples=40, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module", params=sorted(backends.REGISTRY))
def backend(request):
    reason = backends.why_unavailable(request.param)
    if reason is not None:
        pytest.skip(f"backend {request.param!r} unavailable: {reason}")
    return backends.get(request.param)


# ------------------------------------------------------------------ device helpers


def _dev(be, arr):
    """The array where backend `be` wants it (CuPy for the GPU backend)."""
    if be.NAME == "cupy":
        import cupy

        return cupy.asarray(arr)
    return arr


def _host(arr):
    return arr.get() if type(arr).__module__.startswith("cupy") else np.asarray(arr)


def _vectors(model, hw, lim):
    return R.model_vector(model), R.hardware_vector(hw), R.limits_vector(lim)


# ------------------------------------------------------------------ expectations


def expected_rows(m, h, k, plans):
    """The reference kernel, one plan at a time."""
    out = np.empty((S.N_OUTPUTS, plans.shape[0]))
    codes = np.empty(plans.shape[0], dtype=np.int64)
    stages = R.no_stages()
    col = np.empty(S.N_OUTPUTS)
    for i in range(plans.shape[0]):
        codes[i], stages = R.evaluate_plan(m, h, k, plans[i], col, stages, 0)
        out[:, i] = col
    return out, codes


def assert_same(out, codes, ref_out, ref_codes, plans=None):
    out, codes = _host(out), _host(codes)
    bad = np.flatnonzero(codes != ref_codes)
    assert bad.size == 0, (
        f"codes differ at rows {bad[:5].tolist()}: {codes[bad[:5]].tolist()} != "
        f"{ref_codes[bad[:5]].tolist()}" + (f"; first plan {plans[bad[0]].tolist()}"
                                             if plans is not None else ""))
    # non-finite exactly where the reference is non-finite (see test_reference_is_finite)
    np.testing.assert_array_equal(np.isfinite(out), np.isfinite(ref_out))
    finite = np.isfinite(ref_out)
    diff = np.abs(out - ref_out) > ATOL + RTOL * np.abs(ref_out)
    diff &= finite
    if diff.any():
        j, i = np.argwhere(diff)[0]
        raise AssertionError(
            f"output {S.OUTPUT_NAMES[j]!r} of row {i}: {out[j, i]!r} != reference "
            f"{ref_out[j, i]!r} ({int(diff.sum())} values differ)"
            + (f"; plan {plans[i].tolist()}" if plans is not None else ""))


def count_codes(codes):
    codes = np.asarray(codes, dtype=np.int64)
    by_bit = np.array([int(((codes >> b) & 1).sum()) for b in range(len(S.VIOLATIONS))])
    return int((codes == 0).sum()), by_bit


def run_space(backend, m, h, k, space, start, stop):
    """A backend's evaluate_space and count_space over plans [start, stop) of `space`:
    (out, codes, feasible, by_bit). Buffers start poisoned (NaN, -1) so unwritten
    slots show; everything comes back on the host."""
    P = space.packed
    dev = [_dev(backend, a) for a in (m, h, k, P.values, P.offsets, P.lengths)]
    out = _dev(backend, np.full((S.N_OUTPUTS, stop - start), np.nan))
    codes = _dev(backend, np.full(stop - start, -1, dtype=np.int64))
    backend.evaluate_space(*dev, start, stop, out, codes)
    feasible, by_bit = backend.count_space(*dev, start, stop)
    return _host(out), _host(codes), int(feasible), _host(by_bit)


# ------------------------------------------------------------------ tests


@SETTINGS
@given(model=models(), hw=hardware(), lim=limits(), plans=plan_rows(1, 48))
def test_evaluate_rows_matches_reference(backend, model, hw, lim, plans):
    m, h, k = _vectors(model, hw, lim)
    ref_out, ref_codes = expected_rows(m, h, k, plans)
    out = _dev(backend, np.full((S.N_OUTPUTS, plans.shape[0]), np.nan))
    codes = _dev(backend, np.full(plans.shape[0], -1, dtype=np.int64))
    backend.evaluate_rows(_dev(backend, m), _dev(backend, h), _dev(backend, k),
                          _dev(backend, plans), out, codes)
    assert_same(out, codes, ref_out, ref_codes, plans)


@SETTINGS
@given(model=models(), hw=hardware(), space=spaces(), data=st.data())
def test_evaluate_and_count_space_match_reference(backend, model, hw, space, data):
    n = len(space)
    start = data.draw(st.integers(0, n - 1), label="start")
    stop = data.draw(st.integers(start + 1, n), label="stop")
    m, h, k = _vectors(model, hw, space.limits)
    plans = space.decode(np.arange(start, stop))
    ref_out, ref_codes = expected_rows(m, h, k, plans)
    out, codes, feasible, by_bit = run_space(backend, m, h, k, space, start, stop)
    assert_same(out, codes, ref_out, ref_codes, plans)
    ref_feasible, ref_by_bit = count_codes(ref_codes)
    assert feasible == ref_feasible
    np.testing.assert_array_equal(_host(by_bit), ref_by_bit)


def _big_space() -> Space:
    """More than 2**40 plans: decoding needs 64-bit indices all the way."""
    return Space(
        base=Plan(global_batch=1024, seq_len=4096),
        mode=["train", "prefill", "decode"], dtype=["bf16", "fp8"],
        micro_batch=[1, 2, 3, 4], seq_len=[1024, 4096, 6000], gen_tokens=[1, 128],
        tp=[1, 2, 4, 8, 3], cp=[1, 2, 4], ep=[1, 2, 8, 5], etp=[0, 1, 2],
        sequence_parallel=[False, True], flash_attention=[True, False],
        capacity_factor=[0.0, 1.0, 1.25], global_batch=list(range(1, 1025, 7)),
        pp=list(range(1, 65)), dp=[1, 2, 4, 8, 16, 32, 64, 3], vpp=[1, 2, 3],
        zero=[0, 1, 2, 3], recompute=["none", "selective", "full"],
        grad_dtype=["fp32", "bf16"], limits=Limits(gpus_max=4096, mem_fraction=0.9))


@pytest.mark.parametrize("where", [0.0, 0.37, 0.999999])
def test_space_beyond_32_bit_indices(backend, where):
    """A window of a huge space (crossing odometer carries) equals the reference."""
    space = _big_space()
    assert len(space) > 1 << 40
    n = 700
    start = min(int(len(space) * where), len(space) - n)
    model, hw = mixtral_like()
    m, h, k = _vectors(model, hw, space.limits)
    plans = space.decode(np.arange(start, start + n))
    ref_out, ref_codes = expected_rows(m, h, k, plans)
    out, codes, feasible, by_bit = run_space(backend, m, h, k, space, start, start + n)
    assert_same(out, codes, ref_out, ref_codes, plans)
    ref_feasible, ref_by_bit = count_codes(ref_codes)
    assert feasible == ref_feasible
    np.testing.assert_array_equal(_host(by_bit), ref_by_bit)


def test_blocks_and_threads_cover_every_plan(backend):
    """Many blocks (odometer restarts, per-thread counts) agree with one-by-one results."""
    if backend.NAME == "reference":
        pytest.skip("the reference loop is the oracle itself; too slow for 30k plans")
    space = _big_space()
    n = 30_011
    start = 123_456_789
    model, hw = mixtral_like()
    m, h, k = _vectors(model, hw, space.limits)
    out, codes, feasible, by_bit = run_space(backend, m, h, k, space, start, start + n)
    ref_feasible, ref_by_bit = count_codes(codes)
    assert feasible == ref_feasible
    np.testing.assert_array_equal(_host(by_bit), ref_by_bit)
    # rows evaluated independently give the same outputs (cache reuse is invisible)
    rows = np.ascontiguousarray(space.decode(np.arange(start, start + n)))
    out2 = _dev(backend, np.empty((S.N_OUTPUTS, n)))
    codes2 = _dev(backend, np.empty(n, dtype=np.int64))
    backend.evaluate_rows(_dev(backend, m), _dev(backend, h), _dev(backend, k),
                          _dev(backend, rows), out2, codes2)
    np.testing.assert_array_equal(_host(codes2), codes)
    np.testing.assert_allclose(_host(out2), _host(out), rtol=RTOL, atol=ATOL)
    sample = np.random.default_rng(0).choice(n, 200, replace=False)
    ref_out, ref_codes = expected_rows(m, h, k, rows[sample])
    assert_same(_host(out)[:, sample], codes[sample], ref_out, ref_codes, rows[sample])


# ------------------------------------------------------------------ the sweep kernel


def _sweep_kernel(backend):
    if not hasattr(backend, "sweep_space"):
        pytest.skip(f"backend {backend.NAME!r} has no sweep kernel: sweeps evaluate its "
                    "chunks in full and compact them (sweep.compact_chunk)")
    return backend.sweep_space


def assert_sweep_same(backend, m, h, k, space, start, stop, cols, spare, ref_out, ref_codes):
    """sweep_space keeps exactly the reference's feasible plans, in index order, with
    their `cols` outputs, and counts every violation bit; `spare` extra buffer slots."""
    kernel = _sweep_kernel(backend)
    n = stop - start
    P = space.packed
    out = np.full((len(cols), n + spare), np.nan)
    index = np.full(n + spare, -1, dtype=np.int64)
    found, by_bit = kernel(m, h, k, P.values, P.offsets, P.lengths, start, stop,
                           np.asarray(cols, dtype=np.int64), out, index)
    pos = np.flatnonzero(ref_codes == 0)
    assert found == pos.size
    np.testing.assert_array_equal(index[:found], start + pos)
    got = out[:, :found]
    want = ref_out[np.asarray(cols, dtype=np.int64)][:, pos]
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(_host(by_bit), count_codes(ref_codes)[1])


@SETTINGS
@given(model=models(), hw=hardware(), space=spaces(), data=st.data())
def test_sweep_kernel_matches_reference(backend, model, hw, space, data):
    """The sweep kernel (codes first, outputs only for feasible plans, compacted across
    blocks) returns the reference's feasible plans and their chosen columns."""
    _sweep_kernel(backend)
    n = len(space)
    start = data.draw(st.integers(0, n - 1), label="start")
    stop = data.draw(st.integers(start + 1, n), label="stop")
    cols = data.draw(st.lists(st.integers(0, S.N_OUTPUTS - 1), max_size=6), label="cols")
    spare = data.draw(st.sampled_from([0, 3]), label="spare")
    m, h, k = _vectors(model, hw, space.limits)
    ref_out, ref_codes = expected_rows(m, h, k, space.decode(np.arange(start, stop)))
    assert_sweep_same(backend, m, h, k, space, start, stop, cols, spare, ref_out, ref_codes)


def test_sweep_kernel_over_many_blocks(backend):
    """30k plans of a huge space: every block's feasible plans land in order."""
    _sweep_kernel(backend)
    if backend.NAME == "reference":
        pytest.skip("the reference loop is the oracle itself; too slow for 30k plans")
    space = _big_space()
    start, n = 987_654_321, 30_011
    model, hw = mixtral_like()
    m, h, k = _vectors(model, hw, space.limits)
    out = np.empty((S.N_OUTPUTS, n))
    codes = np.empty(n, dtype=np.int64)
    backends.get("reference" if backend.NAME == "numba" else "numba").evaluate_space(
        m, h, k, space.packed.values, space.packed.offsets, space.packed.lengths, start,
        start + n, out, codes)
    assert 0 < np.count_nonzero(codes == 0) < n
    assert_sweep_same(backend, m, h, k, space, start, start + n,
                      list(range(S.N_OUTPUTS)), 5, out, codes)


def test_code_only_evaluation_stops_early_with_the_same_code():
    """evaluate_plan with an empty `out` returns the same code, and the same stages as
    a full evaluation does (a later call may reuse them)."""
    space = _big_space()
    model, hw = mixtral_like()
    m, h, k = _vectors(model, hw, space.limits)
    plans = space.decode(np.arange(5_000_000, 5_000_400))
    full, codes = expected_rows(m, h, k, plans)
    col = np.empty(S.N_OUTPUTS)
    for i, p in enumerate(plans):
        code, stages = R.evaluate_plan(m, h, k, p, np.empty(0), R.no_stages(), 0)
        assert code == codes[i]
        assert stages == R.evaluate_plan(m, h, k, p, col, R.no_stages(), 0)[1]
        assert R.evaluate_plan(m, h, k, p, col, stages, 3)[0] == codes[i]
        np.testing.assert_array_equal(col, full[:, i])


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(model=models(), hw=hardware(), lim=limits(), plans=plan_rows(1, 16))
def test_reference_is_finite(model, hw, lim, plans):
    """No NaN or inf in any output of any valid input: infeasible plans are reported by
    their code, never by a poisoned number."""
    m, h, k = _vectors(model, hw, lim)
    out, codes = expected_rows(m, h, k, plans)
    bad = ~np.isfinite(out)
    if bad.any():
        j, i = np.argwhere(bad)[0]
        raise AssertionError(f"{S.OUTPUT_NAMES[j]} = {out[j, i]} for plan {plans[i].tolist()} "
                             f"(code {S.decode_violations(codes[i])})")


# ------------------------------------------------------------------ rows in any order


def _grouped_rows(n: int, seed: int) -> tuple[np.ndarray, Space]:
    """n plans drawn at random from a space whose leading columns repeat (a few layer
    shapes, many batch/pipeline variants): the row walkers' grouping has work to do."""
    space = Space(base=Plan(gen_tokens=32), mode=["train", "prefill", "decode"],
                  micro_batch=[1, 2], tp=[1, 2, 4], ep=[1, 2], capacity_factor=[1.0, 1.25],
                  global_batch=[64, 128, 256], pp=[1, 2, 4], dp=[1, 2, 4, 8], vpp=[1, 2],
                  zero=[0, 1, 3], recompute=["none", "selective", "full"],
                  limits=Limits(gpus_max=256))
    index = np.random.default_rng(seed).integers(0, len(space), n)
    return np.ascontiguousarray(space.decode(index)), space


@pytest.mark.parametrize("order", ["shuffled", "sorted"])
def test_rows_in_any_order_equal_reference_bit_for_bit(backend, order):
    """Rows arriving in any order (several row blocks of them) give the reference's bits
    (CuPy's to RTOL: the same codes, its exp and log are CUDA's): the walkers' grouping
    and stage reuse change the work, never a result."""
    n = 9_000 if backend.NAME != "reference" else 600
    plans, space = _grouped_rows(n, 3)
    if order == "sorted":
        plans = np.ascontiguousarray(plans[np.lexsort(plans.T[::-1])])
    model, hw = mixtral_like()
    m, h, k = _vectors(model, hw, space.limits)
    ref_out, ref_codes = expected_rows(m, h, k, plans)
    out = _dev(backend, np.full((S.N_OUTPUTS, n), np.nan))
    codes = _dev(backend, np.full(n, -1, dtype=np.int64))
    bad = backend.evaluate_rows(*(_dev(backend, a) for a in (m, h, k, plans)), out, codes)
    assert bad == -1
    np.testing.assert_array_equal(_host(codes), ref_codes)
    if backend.NAME == "cupy":  # CUDA's exp and log are not libm's: its results to RTOL
        np.testing.assert_allclose(_host(out), ref_out, rtol=RTOL, atol=ATOL)
    else:
        np.testing.assert_array_equal(_host(out), ref_out)


def test_continuous_batching_rows_equal_reference_bit_for_bit(backend):
    """Serving decode with a token budget and attention data parallel (continuous batching,
    the busiest replica's Poisson chunks, expert occupancy): the reference's bits too,
    so its transcendentals must be libm's (math), as the C++ twin's and Numba's are."""
    space = Space(base=Plan(mode="decode", dtype="fp8", seq_len=1000, gen_tokens=1000,
                            max_num_tokens=2048, kv_cache_fraction=0.9, etp=1),
                  gen_tokens=[100, 1000, 20000], seq_len=[128, 1000, 5000],
                  global_batch=[8, 64, 512, 4096], dp=[1, 2, 4, 8], ep=[1, 2, 4, 8],
                  max_num_tokens=[512, 2048, 8192], tp=[1, 2])
    n = 2_000 if backend.NAME != "reference" else 300
    plans = np.ascontiguousarray(space.decode(np.random.default_rng(5).integers(0, len(space),
                                                                                n)))
    model, hw = mixtral_like()
    m, h, k = _vectors(model, hw, space.limits)
    ref_out, ref_codes = expected_rows(m, h, k, plans)
    out = _dev(backend, np.full((S.N_OUTPUTS, n), np.nan))
    codes = _dev(backend, np.full(n, -1, dtype=np.int64))
    backend.evaluate_rows(*(_dev(backend, a) for a in (m, h, k, plans)), out, codes)
    np.testing.assert_array_equal(_host(codes), ref_codes)
    if backend.NAME != "cupy":  # CUDA's exp and log are not libm's (tolerance tests cover it)
        np.testing.assert_array_equal(_host(out), ref_out)


# values no plan may hold, per kind of column (schema.plan_bounds)
def _bad_values(col: S.Column):
    lo, hi, integral = S.plan_bounds(col)
    values = [np.nan, np.inf, -np.inf, lo - 1.0, hi + 1.0, -0.5]
    if integral:
        values += [lo + 0.5, hi - 0.25]
    return st.sampled_from(values)


@SETTINGS
@given(plans=plan_rows(1, 48), data=st.data())
def test_rows_with_invalid_values_are_refused_at_the_first(backend, plans, data):
    """A row holding a value no plan may hold (NaN, inf, out of range, a fraction where a
    count is needed) is never evaluated: every backend reports the first such row."""
    model, hw = mixtral_like()
    m, h, k = _vectors(model, hw, Limits())
    n = plans.shape[0]
    bad_rows = data.draw(st.lists(st.integers(0, n - 1), max_size=3, unique=True), label="rows")
    for r in bad_rows:
        c = data.draw(st.integers(0, S.N_PLAN - 1), label="column")
        plans[r, c] = data.draw(_bad_values(S.PLAN[c]), label="value")
    out = _dev(backend, np.full((S.N_OUTPUTS, n), np.nan))
    codes = _dev(backend, np.full(n, -1, dtype=np.int64))
    got = backend.evaluate_rows(*(_dev(backend, a) for a in (m, h, k, plans)), out, codes)
    assert got == (min(bad_rows) if bad_rows else -1)


def test_rows_invalid_value_in_a_later_block_is_found(backend):
    """The first invalid row is found wherever it is, also past the first row blocks."""
    n = 20_000 if backend.NAME != "reference" else 3_000
    plans, space = _grouped_rows(n, 5)
    plans[n - 7, S.P_DP] = 2.5
    plans[n - 3, S.P_SEQ_LEN] = np.nan
    model, hw = mixtral_like()
    m, h, k = _vectors(model, hw, space.limits)
    out = _dev(backend, np.empty((S.N_OUTPUTS, n)))
    codes = _dev(backend, np.empty(n, dtype=np.int64))
    assert backend.evaluate_rows(*(_dev(backend, a) for a in (m, h, k, plans)), out,
                                 codes) == n - 7
