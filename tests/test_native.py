"""The native extension's own contract: zero-copy in place, loud errors, threads.

(Its numbers are checked against the reference with every other backend in
test_backend_equivalence.py.)
"""

from __future__ import annotations

import numpy as np
import pytest

from pyengine import backends
from pyengine import reference as R
from pyengine import schema as S
from pyengine.space import Space
from pyengine.specs import Hardware, Model, Plan

REASON = backends.why_unavailable("native")
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"native backend: {REASON}")


@pytest.fixture(scope="module")
def native():
    return backends.get("native")


@pytest.fixture(scope="module")
def vectors():
    model = Model(name="t", n_layers=8, hidden=512, n_heads=8, ffn_hidden=2048, vocab=1000,
                  n_experts=4, top_k=2, expert_ffn_hidden=1024)
    hw = Hardware(name="g", peak_bf16_flops_per_s=1e15, hbm_capacity_bytes=8e10,
                  hbm_bandwidth_bytes_per_s=3e12, gpus_per_node=8,
                  intra_node_bandwidth_bytes_per_s=4e11,
                  inter_node_bandwidth_bytes_per_s=5e10)
    return R.model_vector(model), R.hardware_vector(hw), R.limits_vector()


def _space():
    return Space(base=Plan(global_batch=64), tp=[1, 2, 4], pp=[1, 2], dp=[1, 2, 4],
                 ep=[1, 2, 4], zero=[0, 1, 3])


def test_writes_in_place_without_copies(native, vectors):
    m, h, k = vectors
    plans = Space(tp=[1, 2], pp=[1, 2]).decode(np.arange(4))
    out = np.full((S.N_OUTPUTS, 4), np.nan)
    codes = np.full(4, -1, dtype=np.int64)
    before = out.__array_interface__["data"][0]
    native.evaluate_rows(m, h, k, plans, out, codes)
    assert out.__array_interface__["data"][0] == before
    assert np.isfinite(out).all() and (codes >= 0).all()


@pytest.mark.parametrize("argument, bad", [
    ("plans", lambda a: a.astype(np.float32)),
    ("plans", lambda a: np.asfortranarray(a)),
    ("plans", lambda a: a[:, :-1].copy()),
    ("plans", lambda a: a.tolist()),
    ("out", lambda a: a.astype(np.float32)),
    ("out", lambda a: a[:, :-1]),
    ("out", lambda a: np.asfortranarray(a)),
    ("codes", lambda a: a.astype(np.int32)),
    ("m", lambda a: a[:-1].copy()),
    ("h", lambda a: a.astype(np.int64)),
])
def test_bad_arrays_raise_naming_the_argument(native, vectors, argument, bad):
    m, h, k = vectors
    args = dict(m=m, h=h, k=k, plans=Space(tp=[1, 2], pp=[1, 2]).decode(np.arange(4)),
                out=np.empty((S.N_OUTPUTS, 4)), codes=np.empty(4, dtype=np.int64))
    args[argument] = bad(args[argument] if argument != "plans" else
                         np.ascontiguousarray(args["plans"]))
    with pytest.raises(ValueError, match=f"'{argument}'"):
        native.evaluate_rows(**args)


def test_read_only_output_raises(native, vectors):
    m, h, k = vectors
    out = np.empty((S.N_OUTPUTS, 4))
    out.flags.writeable = False
    with pytest.raises(ValueError, match="'out'.*writable"):
        native.evaluate_rows(m, h, k, Space(tp=[1, 2], pp=[1, 2]).decode(np.arange(4)), out,
                             np.empty(4, dtype=np.int64))


def test_space_range_is_checked(native, vectors):
    m, h, k = vectors
    P = _space().packed
    n = len(_space())
    with pytest.raises(ValueError, match="start"):
        native.count_space(m, h, k, P.values, P.offsets, P.lengths, 0, n + 1)
    with pytest.raises(ValueError, match="start"):
        native.count_space(m, h, k, P.values, P.offsets, P.lengths, 5, 4)
    bad = P.lengths.copy()
    bad[3] = len(P.values) + 1
    with pytest.raises(ValueError, match="outside 'values'"):
        native.count_space(m, h, k, P.values, P.offsets, bad, 0, 1)
    assert native.count_space(m, h, k, P.values, P.offsets, P.lengths, 3, 3)[0] == 0


def test_count_matches_codes_at_every_thread_count(native, vectors, monkeypatch):
    m, h, k = vectors
    sp = _space()
    P = sp.packed
    n = len(sp)
    out = np.empty((S.N_OUTPUTS, n))
    codes = np.empty(n, dtype=np.int64)
    native.evaluate_space(m, h, k, P.values, P.offsets, P.lengths, 0, n, out, codes)
    feasible, by_bit = native.count_space(m, h, k, P.values, P.offsets, P.lengths, 0, n)
    assert feasible == int((codes == 0).sum())
    assert by_bit.dtype == np.int64 and by_bit.shape == (len(S.VIOLATIONS),)
    for b in range(len(S.VIOLATIONS)):
        assert by_bit[b] == int(((codes >> b) & 1).sum())
    assert native.max_threads() >= 1
