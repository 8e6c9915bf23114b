"""DeepSeek-V3's multi-token prediction (arXiv:2412.19437 Sec. 2.2): MTP modules in
parameters, FLOPs, memory and time, training only, on the last pipeline stage."""

from __future__ import annotations

import dataclasses

import pytest

import pyengine
from pyengine import presets
from pyengine import reference as R
from pyengine import schema as S
from pyengine.specs import Plan

DS = presets.model("deepseek-v3")
NO_MTP = dataclasses.replace(DS, mtp_layers=0)
H800 = presets.hardware("h800")
# DeepSeek-V3 Sec. 3.2-3.3: PP 16, EP 64, no TP, FP8, norms and MLA up-projections
# recomputed, FP8 activations, BF16 moments; 2048 H800s
PLAN = Plan(dtype="fp8", global_batch=15360, micro_batch=1, seq_len=4096, tp=1, pp=16,
            dp=128, ep=64, zero=1, recompute="selective", recompute_layernorm=True,
            recompute_mla_up_proj=True, fp8_activations=True, optimizer_dtype="bf16",
            sequence_parallel=False)


def test_mtp_module_parameters():
    """One module: an MoE block like layer 61, a 2h x h projection, two RMSNorms."""
    h = 7168
    v, v0 = R.model_vector(DS), R.model_vector(NO_MTP)
    assert v[S.M_MTP_PARAMS] == 2 * h * h + 2 * h
    block = (v0[S.M_ATTN_PARAMS] + v0[S.M_NORM_PARAMS] + v0[S.M_SHARED_PARAMS]
             + v0[S.M_ROUTER_PARAMS] + 256 * v0[S.M_EXPERT_PARAMS])
    assert v[S.M_PARAMS_TOTAL] - v0[S.M_PARAMS_TOTAL] == block + v[S.M_MTP_PARAMS]


def test_mtp_flops_per_token():
    """Per token forward: one more MoE block (attention at the same context), the
    projection and another pass of the output head."""
    m, m0 = R.model_vector(DS), R.model_vector(NO_MTP)
    ctx = 4096.0
    extra = R.model_forward_flops_per_token(m, ctx, 1.0) - R.model_forward_flops_per_token(
        m0, ctx, 0.0)
    n_mat = 3.0
    h = 7168.0
    attn = m[S.M_ATTN_GEMM_PARAMS] + ctx * 128 * (192 + 128)
    moe = 8 * h * 2048 * n_mat + h * 2048 * n_mat + h * 256
    assert extra == pytest.approx(2 * (attn + moe + 2 * h * h + h * 129280), rel=1e-12)


def test_mtp_sits_on_the_last_stage_in_training():
    r = pyengine.evaluate(DS, H800, PLAN)
    r0 = pyengine.evaluate(NO_MTP, H800, PLAN)
    assert r.feasible, r.violations
    assert r.outputs["mem_first_stage_bytes"] == r0.outputs["mem_first_stage_bytes"]
    assert r.outputs["mem_last_stage_bytes"] > r0.outputs["mem_last_stage_bytes"]
    # the layer counts reported are transformer layers; the MTP block is extra
    assert r.outputs["layers_last_stage"] == r0.outputs["layers_last_stage"]
    assert r.time["step"] > r0.time["step"]
    assert r.outputs["model_flops_per_step"] > r0.outputs["model_flops_per_step"]
    assert r.memory["total"] < 80e9  # still fits the 80 GB H800


def test_mtp_not_in_inference():
    for mode in ("prefill", "decode"):
        plan = Plan(mode=mode, global_batch=8, seq_len=1024, gen_tokens=16, tp=8, pp=2, ep=8,
                    dtype="fp8")
        a = pyengine.evaluate(DS, H800, plan)
        b = pyengine.evaluate(NO_MTP, H800, plan)
        assert a.time["step"] == b.time["step"]
        assert a.memory["total"] == b.memory["total"]


def test_mtp_on_a_single_stage():
    plan = dataclasses.replace(PLAN, pp=1, dp=2048, global_batch=2048)
    r = pyengine.evaluate(DS, H800, plan)
    r0 = pyengine.evaluate(NO_MTP, H800, plan)
    assert r.outputs["mem_weights_bytes"] > r0.outputs["mem_weights_bytes"]
    assert r.outputs["layers_first_stage"] == 61
