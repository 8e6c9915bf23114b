"""GPU runtime checks of the cupy backend (skipped where CuPy or a CUDA device is missing).

Its numbers are compared with the reference in test_backend_equivalence.py like every
backend's; these add what only the GPU path has: NVRTC compilation from the shipped
sources, CuPy arrays through the public API, and long grid-stride launches.
"""

from __future__ import annotations

import numpy as np
import pytest
from strategies import mixtral_like

from pyengine import backends, evaluate_batch
from pyengine import reference as R
from pyengine import schema as S
from pyengine.backends import cupy_gpu
from pyengine.space import Space
from pyengine.specs import Limits, Plan

REASON = cupy_gpu.unavailable()
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(REASON is not None, reason=f"cupy backend: {REASON}")]


def _space():
    return Space(base=Plan(global_batch=1024, seq_len=4096), mode=["train", "prefill", "decode"],
                 gen_tokens=[128], tp=[1, 2, 4, 8], pp=[1, 2, 4, 8], dp=[1, 2, 4, 8, 16, 32],
                 ep=[1, 2, 4, 8], cp=[1, 2], micro_batch=[1, 2],
                 recompute=["none", "selective", "full"], zero=[0, 1, 2, 3],
                 capacity_factor=[0.5, 1.0, 1.25], limits=Limits(gpus_max=1024))


def test_kernels_compile_with_nvrtc():
    kernels = cupy_gpu._module()
    assert set(kernels) == set(cupy_gpu.KERNELS)


def test_public_api_keeps_arrays_on_the_device():
    import cupy

    model, hw = mixtral_like()
    sp = _space()
    rows = sp.decode(np.arange(0, len(sp), 97))
    res = evaluate_batch(model, hw, cupy.asarray(rows), backend="cupy", limits=sp.limits)
    assert isinstance(res.block, cupy.ndarray) and isinstance(res.codes, cupy.ndarray)
    ref = evaluate_batch(model, hw, rows, backend="reference", limits=sp.limits)
    np.testing.assert_array_equal(res.codes.get(), ref.codes)
    np.testing.assert_allclose(res.block.get(), ref.block, rtol=1e-9, atol=1e-300)


def test_whole_space_count_equals_native_or_numba():
    other = next((n for n in ("native", "numba") if backends.why_unavailable(n) is None), None)
    if other is None:
        pytest.skip("no CPU backend to compare with")
    model, hw = mixtral_like()
    sp = _space()
    m, h, k = R.model_vector(model), R.hardware_vector(hw), R.limits_vector(sp.limits)
    P = sp.packed
    got = cupy_gpu.count_space(m, h, k, P.values, P.offsets, P.lengths, 0, len(sp))
    want = backends.get(other).count_space(m, h, k, P.values, P.offsets, P.lengths, 0,
                                           len(sp))
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
    assert got[1].shape == (len(S.VIOLATIONS),)


def test_feasible_space_on_the_device_equals_the_cpu_kernel():
    """CuPy has no sweep kernel: feasible_space evaluates and compacts on the device."""
    import cupy

    from pyengine import feasible_space

    other = next((n for n in ("native", "numba") if backends.why_unavailable(n) is None), None)
    if other is None:
        pytest.skip("no CPU backend to compare with")
    model, hw = mixtral_like()
    sp = _space()
    cols = ("tokens_per_s_per_gpu", "n_gpus", "mem_total_bytes")
    got = feasible_space(model, hw, sp, 0, len(sp), cols, backend="cupy")
    want = feasible_space(model, hw, sp, 0, len(sp), cols, backend=other)
    assert isinstance(got.index, cupy.ndarray)
    np.testing.assert_array_equal(got.index.get(), want.index)
    np.testing.assert_allclose(got.values.get(), want.values, rtol=1e-9)
    np.testing.assert_array_equal(got.by_bit.get(), want.by_bit)
