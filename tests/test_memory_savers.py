"""The memory savers recipes use: Megatron-Core's recompute modules, full recomputation of
n layers per virtual stage, FP8 storage of the GEMM inputs kept for backward, BF16 Adam
moments; term by term against the per-op accounting, and DeepSeek-V3's plan."""

from __future__ import annotations

import pytest

import pyengine
from pyengine import presets
from pyengine import reference as R
from pyengine.specs import Model, Plan

N = 4096.0  # tokens of the micro-batch on the GPU
GATED = Model(name="g", n_layers=8, hidden=4096, n_heads=32, ffn_hidden=11008, vocab=32000,
              gated_mlp=True)


def act(model, sv, moe=False, cap=0.0):
    return R.layer_activation_bytes(R.model_vector(model), N, N, 1.0, False, True, 0.0, moe,
                                    cap, 1.0, sv)


def test_each_module_drops_its_own_tensors():
    h, f = GATED.hidden, GATED.ffn_hidden
    none = act(GATED, R.savers_of(0.0))
    # 2 norm inputs + 2 norm outputs (QKV, fc1 inputs), Q K V O, flash stats, gated MLP
    assert none == N * h * 8 + N * 8 * h + 4 * N * 32 + N * 6 * f
    assert none - act(GATED, R.savers_of(1.0, layernorm=True)) == 4 * N * h
    assert none - act(GATED, R.savers_of(1.0, mlp=True)) == 6 * N * f
    # FP8: the QKV and fc1 inputs, the projection input and the fc2 input at one byte
    assert none - act(GATED, R.savers_of(0.0, fp8_activations=True)) == 2 * N * h + N * h + N * f


def test_moe_modules():
    moe = Model(name="m", n_layers=8, hidden=2048, n_heads=16, ffn_hidden=8192, vocab=32000,
                gated_mlp=True, n_experts=8, top_k=2, expert_ffn_hidden=1024, n_shared_experts=1)
    cap = N * 2 / 8  # capacity per expert at cf 1
    slots = 8 * cap
    none = act(moe, R.savers_of(0.0), True, cap)
    assert none - act(moe, R.savers_of(1.0, moe=True), True, cap) == slots * (2 * 2048 + 6 * 1024)
    assert none - act(moe, R.savers_of(1.0, moe_act=True), True, cap) == slots * 2 * 1024
    assert none - act(moe, R.savers_of(1.0, shared_experts=True), True, cap) == N * 6 * 1024


def test_mla_up_projection_keeps_the_latents_instead():
    ds = presets.model("deepseek-v3")
    q = 128 * 192
    k = 128 * 192
    v = 128 * 128
    saved = act(ds, R.savers_of(0.0)) - act(ds, R.savers_of(1.0, mla_up_proj=True))
    assert saved == N * 2 * (q + k + v) - 2 * N * (1536 + 512 + 64)


DSV3_PLAN = dict(global_batch=15360, seq_len=4096, tp=1, pp=16, dp=128, ep=64, dtype="fp8",
                 sequence_parallel=False, pp_embedding=True, pp_loss=True)


def test_deepseek_v3_plan_fits_80gb_with_its_savers():
    """DeepSeek-V3 Technical Report Sec. 3.2-3.3: PP 16, EP 64, no TP, FP8 training,
    RMSNorm and MLA up-projections recomputed, activations cached in FP8, AdamW moments
    in BF16. On 80 GB H800s."""
    ds, h800 = presets.model("deepseek-v3"), presets.hardware("h800")
    plain = pyengine.evaluate(ds, h800, Plan(recompute="selective", **DSV3_PLAN))
    assert "MEMORY" in plain.violations
    r = pyengine.evaluate(ds, h800, Plan(recompute="selective", recompute_layernorm=True,
                                         recompute_mla_up_proj=True, fp8_activations=True,
                                         optimizer_dtype="bf16", **DSV3_PLAN))
    assert r.feasible, r.violations
    assert r.memory["total"] < 80e9
    assert r.time["recompute"] > plain.time["recompute"]  # norms and up-projections again
    assert r.memory["optimizer"] == pytest.approx(plain.memory["optimizer"] * 8 / 12)


def test_full_recompute_of_some_layers_sits_between():
    ds, h800 = presets.model("deepseek-v3"), presets.hardware("h800")
    mem = {}
    for label, kw in {"none": dict(recompute="none"), "full": dict(recompute="full"),
                      "one": dict(recompute="full", recompute_layers=1),
                      "all": dict(recompute="full", recompute_layers=99)}.items():
        r = pyengine.evaluate(ds, h800, Plan(**kw, **DSV3_PLAN))
        mem[label] = (r.memory["activations"], r.time["recompute"])
    assert mem["full"][0] < mem["one"][0] < mem["none"][0]
    assert 0 < mem["one"][1] < mem["full"][1]
    assert mem["all"] == mem["full"]


def test_savers_only_in_training():
    r = pyengine.evaluate(GATED, presets.hardware("h100-sxm"),
                          Plan(mode="prefill", recompute="selective", recompute_mlp=True,
                               fp8_activations=True, global_batch=8))
    base = pyengine.evaluate(GATED, presets.hardware("h100-sxm"),
                             Plan(mode="prefill", global_batch=8))
    assert r.outputs == base.outputs


def test_megatron_deepseek_v3_recipe_fits():
    """Megatron-Core's DeepSeek-V3 recipe on H100: TP 2, PP 8 (vpp 4), EP 64 with expert
    TP 1, FP8, 1,024 GPUs, the MLA up-projections, norms and the experts' activation
    recomputed."""
    ds, h100 = presets.model("deepseek-v3"), presets.hardware("h100-sxm")
    r = pyengine.evaluate(ds, h100, Plan(global_batch=8192, seq_len=4096, tp=2, pp=8, vpp=4,
                                         dp=64, ep=64, etp=1, dtype="fp8", pp_embedding=True,
                                         pp_loss=True, recompute="selective",
                                         recompute_mla_up_proj=True, recompute_moe_act=True,
                                         recompute_layernorm=True))
    assert r.feasible, r.violations
    assert r.n_gpus == 1024 and r.memory["total"] < 80e9


def test_recomputation_replays_the_forward_collectives():
    """A fully recomputed layer reruns its forward, collectives included (Megatron's
    checkpointed forward): TP and CP communication grow from 2 passes (fwd, bwd) to 3;
    recomputing only part of the layer replays none of them, recomputing the MoE module
    (dispatch, experts, combine) its all-to-alls."""
    h100 = presets.hardware("h100-sxm")
    # (backward TP collectives fully exposed, so forward and backward weigh the same)
    base = dict(global_batch=8, seq_len=8192, tp=8, cp=2, dp=1, flash_attention=True,
                cp_overlap=False, tp_dgrad_overlap=False)
    none = pyengine.evaluate(GATED, h100, Plan(recompute="none", **base)).time
    full = pyengine.evaluate(GATED, h100, Plan(recompute="full", **base)).time
    sel = pyengine.evaluate(GATED, h100, Plan(recompute="selective", **base)).time
    for part in ("tp", "cp"):
        assert none[part] > 0
        assert full[part] == pytest.approx(1.5 * none[part], rel=1e-12)
        assert sel[part] == pytest.approx(none[part], rel=1e-12)
    moe = Model(name="m", n_layers=8, hidden=2048, n_heads=16, ffn_hidden=8192, vocab=32000,
                gated_mlp=True, n_experts=8, top_k=2, expert_ffn_hidden=1024)
    ep = dict(global_batch=8, seq_len=4096, ep=8, dp=8, etp=1)
    ep_none = pyengine.evaluate(moe, h100, Plan(recompute="none", **ep)).time["ep"]
    ep_full = pyengine.evaluate(moe, h100, Plan(recompute="full", **ep)).time["ep"]
    ep_act = pyengine.evaluate(moe, h100, Plan(recompute="selective", recompute_moe_act=True,
                                               **ep)).time["ep"]
    ep_mod = pyengine.evaluate(moe, h100, Plan(recompute="selective", recompute_moe=True,
                                               **ep)).time["ep"]
    assert ep_none > 0
    assert ep_full == pytest.approx(1.5 * ep_none, rel=1e-12)
    assert ep_mod == pytest.approx(1.5 * ep_none, rel=1e-12)
    assert ep_act == pytest.approx(ep_none, rel=1e-12)
