"""feasible_space: only the feasible plans of a window, equal to evaluating everything."""

from __future__ import annotations

import numpy as np
import pytest
from strategies import mixtral_like

import pyengine
from pyengine import backends
from pyengine.errors import SpecError
from pyengine.space import Space
from pyengine.specs import Limits, Plan

COLUMNS = ("tokens_per_s_per_gpu", "n_gpus", "mem_total_bytes", "dropped_fraction")


def space():
    return Space(base=Plan(global_batch=256, seq_len=4096), tp=[1, 2, 4, 8], pp=[1, 2, 4],
                 dp=[1, 2, 4, 8, 16], ep=[1, 2, 8], micro_batch=[1, 2], zero=[0, 1, 3],
                 recompute=["none", "selective", "full"], capacity_factor=[0.0, 1.0, 1.25],
                 limits=Limits(gpus_max=256))


@pytest.mark.parametrize("backend", ["numba", "native", "reference"])
def test_equals_evaluating_every_plan(backend):
    if backends.why_unavailable(backend):
        pytest.skip(backends.why_unavailable(backend))
    model, hw = mixtral_like()
    sp = space()
    start, stop = 1000, len(sp) - 777
    full = pyengine.evaluate_space(model, hw, sp, start, stop, backend="numba")
    pos = np.flatnonzero(full.codes == 0)
    res = pyengine.feasible_space(model, hw, sp, start, stop, COLUMNS, backend=backend)
    assert 0 < len(res) < stop - start and res.evaluated == stop - start
    np.testing.assert_array_equal(res.index, start + pos)
    for name in COLUMNS:
        np.testing.assert_allclose(res[name], full[name][pos], rtol=1e-12)
    bits = {name: int(np.count_nonzero(full.codes & (1 << i)))
            for i, name in enumerate(pyengine.schema.VIOLATION_NAMES)}
    assert res.counts == bits


def test_buffers_are_reused_and_checked():
    model, hw = mixtral_like()
    sp = space()
    out = np.empty((2, 5000))
    index = np.empty(5000, dtype=np.int64)
    a = pyengine.feasible_space(model, hw, sp, 0, 4000, ("mfu", "n_gpus"), out=out, index=index)
    assert np.shares_memory(a.values, out) and np.shares_memory(a.index, index)
    b = pyengine.feasible_space(model, hw, sp, 0, 4000, ("mfu", "n_gpus"))
    np.testing.assert_array_equal(a.index, b.index)
    with pytest.raises(SpecError, match="out"):
        pyengine.feasible_space(model, hw, sp, 0, 4000, ("mfu",), out=np.empty((1, 10)))
    with pytest.raises(SpecError, match="index"):
        pyengine.feasible_space(model, hw, sp, 0, 4000, ("mfu",),
                                index=np.empty(4000, dtype=np.int32))
    with pytest.raises(SpecError, match="columns"):
        pyengine.feasible_space(model, hw, sp, 0, 10, ("speed",))
    empty = pyengine.feasible_space(model, hw, sp, 7, 7, ("mfu",))
    assert len(empty) == 0 and empty.evaluated == 0 and sum(empty.counts.values()) == 0
