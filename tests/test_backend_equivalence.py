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
    cache = np.empty(S.N_CACHE)
    col = np.empty(S.N_OUTPUTS)
    for i in range(plans.shape[0]):
        codes[i] = R.evaluate_plan(m, h, k, plans[i], col, cache, False)
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
    P = space.packed
    values, offsets, lengths = (_dev(backend, P.values), _dev(backend, P.offsets),
                                _dev(backend, P.lengths))
    out = _dev(backend, np.full((S.N_OUTPUTS, stop - start), np.nan))
    codes = _dev(backend, np.full(stop - start, -1, dtype=np.int64))
    backend.evaluate_space(_dev(backend, m), _dev(backend, h), _dev(backend, k), values,
                           offsets, lengths, start, stop, out, codes)
    assert_same(out, codes, ref_out, ref_codes, plans)

    feasible, by_bit = backend.count_space(_dev(backend, m), _dev(backend, h),
                                           _dev(backend, k), values, offsets, lengths,
                                           start, stop)
    ref_feasible, ref_by_bit = count_codes(ref_codes)
    assert int(feasible) == ref_feasible
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
    P = space.packed
    values, offsets, lengths = (_dev(backend, P.values), _dev(backend, P.offsets),
                                _dev(backend, P.lengths))
    out = _dev(backend, np.empty((S.N_OUTPUTS, n)))
    codes = _dev(backend, np.empty(n, dtype=np.int64))
    backend.evaluate_space(_dev(backend, m), _dev(backend, h), _dev(backend, k), values,
                           offsets, lengths, start, start + n, out, codes)
    assert_same(out, codes, ref_out, ref_codes, plans)
    feasible, by_bit = backend.count_space(_dev(backend, m), _dev(backend, h),
                                           _dev(backend, k), values, offsets, lengths,
                                           start, start + n)
    ref_feasible, ref_by_bit = count_codes(ref_codes)
    assert int(feasible) == ref_feasible
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
    P = space.packed
    values, offsets, lengths = (_dev(backend, P.values), _dev(backend, P.offsets),
                                _dev(backend, P.lengths))
    out = _dev(backend, np.empty((S.N_OUTPUTS, n)))
    codes = _dev(backend, np.empty(n, dtype=np.int64))
    backend.evaluate_space(_dev(backend, m), _dev(backend, h), _dev(backend, k), values,
                           offsets, lengths, start, start + n, out, codes)
    codes = _host(codes)
    feasible, by_bit = backend.count_space(_dev(backend, m), _dev(backend, h),
                                           _dev(backend, k), values, offsets, lengths,
                                           start, start + n)
    ref_feasible, ref_by_bit = count_codes(codes)
    assert int(feasible) == ref_feasible
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
