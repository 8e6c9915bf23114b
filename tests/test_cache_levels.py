"""Space kernels reuse cached values between consecutive plans (evaluate_plan's `reuse`
levels); the reference never does. On a space where every plan column varies, so that
every cache level is entered and left, every fast backend must still equal the reference."""

from __future__ import annotations

import numpy as np
import pytest

from pyengine import backends, presets
from pyengine import schema as S
from pyengine.engine import count_space, evaluate_space
from pyengine.space import Space
from pyengine.specs import Plan

AXES = dict(
    mode=["train", "decode"], dtype=["nvfp4", "fp8"], kv_dtype=["auto", "bf16"],
    micro_batch=[1, 2], seq_len=[2048, 4096],
    gen_tokens=[64, 128], tp=[1, 2], cp=[1, 2], ep=[1, 2], etp=[0, 1],
    sequence_parallel=[True, False], flash_attention=[True, False],
    attention_kernel=["fa2", "auto"],
    capacity_factor=[1.0, 0.5], moe_load_imbalance=[1.0, 1.3], cp_overlap=[False, True],
    moe_token_dispatcher=["flex", "allgather"],
    global_batch=[8, 16], pp=[1, 3],
    pp_embedding=[False, True],
    pp_loss=[True, False], pp_first_layers=[0, 5], pp_last_layers=[3, 0], dp=[1, 2], vpp=[1, 2],
    zero=[1, 3], recompute=["selective", "full", "none"], recompute_core_attn=[True, False],
    recompute_layernorm=[False, True], recompute_mla_up_proj=[True, False],
    recompute_mlp=[False, True], recompute_moe=[True, False], recompute_moe_act=[False, True],
    recompute_shared_experts=[True, False], recompute_layers=[0, 1], cpu_offload_layers=[2, 0],
    fp8_activations=[False, True], grad_dtype=["fp32", "bf16"], optimizer_dtype=["bf16", "fp32"],
    tp_overlap=[False, True], ep_overlap=[True, False], dp_overlap=[False, True],
    tp_dgrad_overlap=[True, False],
    pp_scatter_gather=[False, True], cuda_graphs=[False, True], max_num_tokens=[0, 4096],
    kv_cache_fraction=[0.9, 0.0], kv_block_tokens=[32, 1],
)
assert set(AXES) == set(S.PLAN_NAMES)


@pytest.fixture(scope="module")
def case():
    model = presets.model("mixtral-8x7b")
    hw = presets.hardware("h100-sxm")
    space = Space(base=Plan(), **AXES)
    rng = np.random.default_rng(0)
    start = int(rng.integers(0, len(space) - 6000))
    ref = evaluate_space(model, hw, space, start, start + 3000, backend="reference")
    return model, hw, space, start, ref


@pytest.mark.parametrize("name", [n for n in backends.REGISTRY if n != "reference"])
def test_cached_space_evaluation_equals_reference(name, case):
    reason = backends.why_unavailable(name)
    if reason is not None:
        pytest.skip(reason)
    model, hw, space, start, ref = case
    res = evaluate_space(model, hw, space, start, start + 3000, backend=name)
    block = res.block if name != "cupy" else res.block.get()
    codes = res.codes if name != "cupy" else res.codes.get()
    np.testing.assert_array_equal(codes, ref.codes)
    np.testing.assert_allclose(block, ref.block, rtol=1e-9, atol=1e-300)
    feasible, by_reason = count_space(model, hw, space, start, start + 3000, backend=name)
    assert feasible == int((ref.codes == 0).sum())
    for i, v in enumerate(S.VIOLATION_NAMES):
        assert by_reason[v] == int(((ref.codes >> i) & 1).sum())
