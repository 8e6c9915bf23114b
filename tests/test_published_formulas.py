"""The reference reproduces published formulas with the papers' own numbers.

Numbers are copied from the papers (see each block's citation); the tests never read
../shared at run time.
"""

from __future__ import annotations

import numpy as np
import pytest

import pyengine
from pyengine import presets
from pyengine import reference as R
from pyengine import schema as S
from pyengine.specs import Model, Plan

# --------------------------------------------------------------------------- ZeRO
# Rajbhandari et al., "ZeRO", SC'20, arXiv:1910.02054: Sec. 5 worked example (7.5B
# parameters, Nd = 64, K = 12, fp16 params and grads) and Table 1 (GB = 1e9 B).

ZERO_WORKED = [(0, 120.0), (1, 31.4), (2, 16.6), (3, 1.88)]  # 1.9 in the text = 1.88 in Table 1
ZERO_TABLE1 = {  # Nd: {(model, stage): GB}
    1: {"7.5B": (120, 120, 120), "128B": (2048, 2048, 2048), "1T": (16000, 16000, 16000)},
    4: {"7.5B": (52.5, 41.3, 30), "128B": (896, 704, 512), "1T": (7000, 5500, 4000)},
    16: {"7.5B": (35.6, 21.6, 7.5), "128B": (608, 368, 128), "1T": (4750, 2875, 1000)},
    64: {"7.5B": (31.4, 16.6, 1.88), "128B": (536, 284, 32), "1T": (4187, 2218, 250)},
    256: {"7.5B": (30.4, 15.4, 0.47), "128B": (518, 263, 8), "1T": (4046, 2054, 62.5)},
    1024: {"7.5B": (30.1, 15.1, 0.12), "128B": (513, 257, 2), "1T": (4011, 2013, 15.6)},
}
PSI = {"7.5B": 7.5e9, "128B": 128e9, "1T": 1e12}


def model_states_bytes(psi: float, nd: int, zero: int) -> float:
    """Weights + grads + optimizer of one GPU holding psi parameters: the kernel's bytes
    per parameter (evaluate() on a real model, DP nd, fp16 grads) times psi."""
    from pyengine.validate import model_state_bytes_per_param

    return model_state_bytes_per_param(nd, zero) * psi


@pytest.mark.parametrize("zero,gb", ZERO_WORKED)
def test_zero_worked_example(zero, gb):
    assert model_states_bytes(7.5e9, 64, zero) / 1e9 == pytest.approx(gb, rel=0.01)


@pytest.mark.parametrize("nd", sorted(ZERO_TABLE1))
@pytest.mark.parametrize("name", ["7.5B", "128B", "1T"])
def test_zero_table1(nd, name):
    for stage, published in zip((1, 2, 3), ZERO_TABLE1[nd][name]):
        ours = model_states_bytes(PSI[name], nd, stage) / 1e9
        # the table prints 3 significant figures
        assert ours == pytest.approx(published, rel=0.01, abs=0.006), (name, nd, stage)


def test_zero_end_to_end_model_states():
    """The same identity through evaluate(): a real model, DP 64, fp16 grads, no TP/PP."""
    model = presets.model("megatron-gpt-7.5b")
    hw = presets.hardware("a100-80gb").with_(memory_overhead_bytes=0.0)
    psi = R.model_vector(model)[S.M_PARAMS_TOTAL]
    for zero, factor in ((0, 16.0), (1, 4.0 + 12.0 / 64), (2, 2.0 + 14.0 / 64), (3, 16.0 / 64)):
        plan = Plan(global_batch=64, dp=64, zero=zero, grad_dtype="bf16", seq_len=2048,
                    recompute="full")
        r = pyengine.evaluate(model, hw, plan)
        states = r.memory["weights"] + r.memory["grads"] + r.memory["optimizer"]
        assert states == pytest.approx(factor * psi, rel=1e-12)


# --------------------------------------------------------------------------- Korthikanti
# Korthikanti et al., "Reducing Activation Recomputation in Large Transformer Models",
# MLSys 2023, arXiv:2205.05198, Table 2 (bytes per layer, 16-bit activations, 1-byte
# dropout masks) for the four models of its Table 3 (t = 8, s = 2048).

KORTHIKANTI_MODELS = [("gpt-22b", 1), ("gpt3-175b", 1), ("megatron-gpt-530b", 1),
                      ("megatron-gpt-1t", 1)]


def table2(s, b, h, a, t):
    return {
        ("none", 1, False, "none"): s * b * h * (34 + 5 * a * s / h),
        ("tp", t, False, "none"): s * b * h * (10 + 24 / t + 5 * a * s / (h * t)),
        ("tp+sp", t, True, "none"): s * b * h * (34 / t + 5 * a * s / (h * t)),
        ("tp+sel", t, False, "selective"): s * b * h * (10 + 24 / t),
        ("tp+sp+sel", t, True, "selective"): s * b * h * (34 / t),
        ("full", 1, False, "full"): s * b * h * 2,
    }


@pytest.mark.parametrize("name,b", KORTHIKANTI_MODELS)
def test_korthikanti_table2_exact(name, b):
    model = presets.model(name)
    m = R.model_vector(model)
    s, h, a, t = 2048, model.hidden, model.n_heads, 8
    rec_code = {"none": 0.0, "selective": 1.0, "full": 2.0}
    for (label, tp, sp, rec), expected in table2(s, b, h, a, t).items():
        ours = R.layer_activation_bytes(m, float(s * b), float(s), float(tp), sp, False,
                                        rec_code[rec], False, 0.0, float(tp),
                                        R.savers_of(rec_code[rec]))
        assert ours == pytest.approx(expected, rel=1e-12), (name, label)


def test_korthikanti_first_stage_total_eq5():
    """Eq. 5: the first stage keeps (s b h L / t)(34 + 5as/h) under TP+SP for m >= p."""
    model = presets.model("gpt3-175b")
    hw = presets.hardware("a100-80gb")
    s, h, a, L, t, p = 2048, 12288, 96, 96, 8, 8
    plan = Plan(global_batch=64, micro_batch=1, seq_len=s, tp=t, pp=p, dp=1,
                flash_attention=False, sequence_parallel=True, recompute="none")
    r = pyengine.evaluate(model, hw, plan)
    eq5 = s * h * L / t * (34 + 5 * a * s / h)
    # ours adds the embedding output each in-flight micro-batch keeps (2sbh/t x p),
    # the (p/L) term of Korthikanti's Sec. 4.3 up to its 1-byte-mask accounting
    assert r.memory["activations"] == pytest.approx(eq5 + 2 * s * h / t * p, rel=1e-12)
    assert r.memory["activations"] == pytest.approx(eq5, rel=0.002)


def test_activation_generalisations():
    """GQA shrinks K/V terms; SwiGLU keeps 6f; flash drops s^2; MoE follows k x cf."""
    base = dict(name="x", n_layers=4, hidden=4096, n_heads=32, ffn_hidden=16384, vocab=32000)
    s = 4096.0

    def act(model, flash=False, moe=False, cap=0.0):
        return R.layer_activation_bytes(R.model_vector(model), s, s, 1.0, False, flash, 0.0,
                                        moe, cap, 1.0, R.savers_of(0.0))

    mha = Model(**base)
    gqa = Model(**base, n_kv_heads=8)
    # Q,K,V,O: 2(q + k + v + o) bytes per token; GQA cuts k and v from h to h/4
    assert act(mha) - act(gqa) == pytest.approx(s * (4 * 4096 - 4 * 1024))
    swiglu = Model(**base, gated_mlp=True)
    assert act(swiglu) - act(mha) == pytest.approx(s * 2 * 16384)  # 6f vs 4f
    # flash: no 2as^2b softmax output (no dropout), only fp32 stats 4 a s b
    assert act(mha) - act(mha, flash=True) == pytest.approx(2 * 32 * s * s - 4 * 32 * s)
    moe = Model(**{**base, "ffn_hidden": 4096}, gated_mlp=True, n_experts=8, top_k=2,
                expert_ffn_hidden=4096)
    m = R.model_vector(moe)
    cap1 = np.ceil(2 * s * 1.0 / 8)
    cap2 = np.ceil(2 * s * 2.0 / 8)
    a1 = act(moe, moe=True, cap=cap1)
    a2 = act(moe, moe=True, cap=cap2)
    # doubling the capacity factor doubles the expert slots kept: 8*cap*(2h + 6f) bytes
    assert a2 - a1 == pytest.approx(8 * (cap2 - cap1) * (2 * 4096 + 6 * 4096))
    assert m[S.M_EXPERTS] == 8


# --------------------------------------------------------------------------- Megatron FLOPs
# Narayanan et al., SC'21, arXiv:2104.04473, eq. (3): F = 96 B s l h^2 (1 + s/6h + V/16lh)
# with full recomputation; Table 1 rows (l, h, a, B) with s = 2048, V = 51200.

MEGATRON_TABLE1 = [
    ("megatron-gpt-1.7b", 24, 2304, 512, 1.5466830067924994e16),
    ("megatron-gpt-3.6b", 30, 3072, 512, 3.2655495344947204e16),
    ("megatron-gpt-7.5b", 36, 4096, 512, 6.7184558503624696e16),
    ("megatron-gpt-18b", 40, 6144, 1024, 3.2483971531014144e17),
    ("megatron-gpt-39b", 48, 8192, 1536, 1.0212263998783488e18),
    ("megatron-gpt-76b", 60, 10240, 1792, 2.3020474950746112e18),
    ("megatron-gpt-145b", 80, 12288, 2304, 5.641682123048877e18),
    ("megatron-gpt-310b", 96, 16384, 2160, 1.1194006936108399e19),
    ("megatron-gpt-530b", 105, 20480, 2520, 2.221594167685939e19),
    ("megatron-gpt-1t", 128, 25600, 3072, 5.139051377527358e19),
]


@pytest.mark.parametrize("name,l,h,B,eq3", MEGATRON_TABLE1)
def test_megatron_flops_eq3(name, l, h, B, eq3):
    model = presets.model(name)
    assert (model.n_layers, model.hidden) == (l, h)
    s, V = 2048, 51200
    formula = 96 * B * s * l * h**2 * (1 + s / (6 * h) + V / (16 * l * h))
    assert formula == pytest.approx(eq3, rel=1e-12)
    hw = presets.hardware("a100-80gb")
    plan = Plan(global_batch=B, seq_len=s, dp=B, recompute="full")
    r = pyengine.evaluate(model, hw, plan)
    step = r.outputs["time_step_s"]
    hw_flops = r.outputs["hw_tflops_per_gpu"] * 1e12 * step * r.n_gpus
    assert hw_flops == pytest.approx(formula, rel=1e-9)
    # model FLOPs (no recomputation): 72 B s l h^2 (1 + s/6h + V/12lh)
    model_flops = 72 * B * s * l * h**2 * (1 + s / (6 * h) + V / (12 * l * h))
    assert r.outputs["model_flops_per_step"] == pytest.approx(model_flops, rel=1e-9)


# --------------------------------------------------------------------------- KV cache

def test_kv_cache_llama3_70b_gqa():
    """80 layers x 2 (K,V) x 8 KV heads x 128 x 2 B = 320 KiB per token."""
    model = presets.model("llama3-70b")
    hw = presets.hardware("h200")
    batch, ctx = 8, 8192
    r = pyengine.evaluate(model, hw, Plan(mode="prefill", global_batch=batch, seq_len=ctx))
    per_token = 80 * 2 * 8 * 128 * 2
    assert per_token == 327_680
    assert r.memory["kv_cache"] == batch * ctx * per_token  # 20 GiB, exact
    # TP 8: one KV head per GPU
    r8 = pyengine.evaluate(model, hw, Plan(mode="prefill", global_batch=batch, seq_len=ctx,
                                           tp=8))
    assert r8.memory["kv_cache"] == batch * ctx * per_token / 8
    # TP 16 > 8 KV heads: each head is replicated, still one per GPU
    r16 = pyengine.evaluate(model, hw, Plan(mode="prefill", global_batch=batch, seq_len=ctx,
                                            tp=16, sequence_parallel=False))
    assert r16.memory["kv_cache"] == batch * ctx * per_token / 8
    # decode holds prompt + generated tokens; FP8 halves it
    rd = pyengine.evaluate(model, hw, Plan(mode="decode", global_batch=batch, seq_len=ctx,
                                           gen_tokens=1024, dtype="fp8", tp=8))
    assert rd.memory["kv_cache"] == batch * (ctx + 1024) * per_token / 8 / 2


def test_kv_cache_mla_compressed():
    """DeepSeek-V3 MLA caches kv_lora_rank + rope dims (512 + 64) per token and layer."""
    model = presets.model("deepseek-v3")
    r = pyengine.evaluate(model, presets.hardware("h800"),
                          Plan(mode="prefill", global_batch=1, seq_len=4096, tp=8, ep=8,
                               pp=8))
    # 61 layers on 8 stages: first 7, middle 8 8 8 8 8 7, last 7; the fullest holds 8
    fullest = max(r.outputs["layers_first_stage"], r.outputs["layers_middle_stage"],
                  r.outputs["layers_last_stage"])
    assert fullest == 8
    assert r.memory["kv_cache"] == 4096 * fullest * 576 * 2


# --------------------------------------------------------------------------- seed

def test_seed_arithmetic_done_right():
    # 270 KB per token x 128 sequences x 10240 tokens is ~354 GB, not 35 GB
    assert 270e3 * 128 * 10240 == pytest.approx(354e9, rel=0.001)
    # activations scale with the sequence actually used (10240, not 1024)
    model = presets.model("moe-10b")
    hw = presets.hardware("h100-sxm")

    def act(seq):
        plan = Plan(global_batch=8, micro_batch=1, seq_len=seq, dp=8, ep=1, recompute="none")
        return pyengine.evaluate(model, hw, plan).memory["activations"]

    assert act(10240) / act(1024) == pytest.approx(10.0, rel=0.01)


def test_ten_billion_dense_is_20_gflop_per_token():
    """2 FLOPs per parameter per token forward: ~20 GFLOP for 10B, not 20 TFLOP."""
    model = Model(name="dense-10b", n_layers=40, hidden=4608, n_heads=36, ffn_hidden=18432,
                  vocab=50000)
    m = R.model_vector(model)
    params = m[S.M_PARAMS_TOTAL]
    assert 9.5e9 < params < 11e9
    flops = R.model_forward_flops_per_token(m, 2048.0, 0.0)
    assert 2 * params * 0.95 < flops < 2 * params * 1.15
    assert flops == pytest.approx(20e9, rel=0.15)
    assert flops < 1e12


def test_seed_gpu_count_follows_convention():
    """DP 6 / PP 4 / TP 2 / EP 2: world = TP x CP x PP x DP = 48; EP folds inside."""
    plan = Plan(global_batch=120, micro_batch=1, seq_len=10240, tp=2, pp=4, dp=6, ep=2)
    assert plan.n_gpus == 48
    r = pyengine.evaluate(presets.model("moe-10b"), presets.hardware("h100-sxm"), plan)
    assert r.n_gpus == 48
    assert "EP_FOLD" not in r.violations
