"""Fused attention at its own measured rate: the FlashAttention-3 (H100) forward and
backward kernel benchmarks (pyengine/data/kernels.json, from the FlashAttention-3 paper)
are the test vectors of the curve tools/calibrate.py fits and the presets ship."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from pyengine import presets
from pyengine import reference as R
from pyengine.specs import Model

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("calibrate", ROOT / "tools" / "calibrate.py")
calibrate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(calibrate)
H100 = presets.hardware("h100-sxm")


def test_shipped_curve_is_the_fit_and_follows_the_benchmarks():
    values, errors = calibrate.fit_attention(H100.peak_bf16_flops_per_s / 1e12)
    assert values == {n: pytest.approx(getattr(H100, n), rel=1e-3) for n in values}
    h = R.hardware_vector(H100)
    rows = calibrate.attention_rows(calibrate.kernels())
    for pass_, eff in (("fwd", H100.attn_eff_fwd), ("bwd", H100.attn_eff_bwd)):
        rel = [R.flash_attention_rate(h, k, d, eff, H100.attn_seq_half) / 1e12 / v - 1
               for k, d, v in rows[pass_]]
        assert np.mean(np.abs(rel)) <= (0.055 if pass_ == "fwd" else 0.03), pass_
        assert np.max(np.abs(rel)) <= 0.15, pass_
        # at 4k+ keys per query (8k-token causal sequences), head dim 128: within 5%
        long = [e for (k, d, _), e in zip(rows[pass_], rel) if k >= 4096 and d == 128]
        assert long and max(abs(e) for e in long) <= 0.05, pass_


def test_attention_core_runs_at_the_fused_rate():
    m = R.model_vector(Model(name="x", n_layers=2, hidden=4096, n_heads=32, ffn_hidden=16384,
                             vocab=32000))
    h = R.hardware_vector(H100)
    n = keys = 8192.0
    a = R.attention_costs(m, h, n, keys, 0.0, False, 1.0, 1.0, 1.0, 1.0, True, False, 1e15, 2.0,
                          2.0, 2.0)
    flops = 2.0 * n * keys * 32 * (128 + 128)
    rate = R.flash_attention_rate(h, keys, 128.0, H100.attn_eff_fwd, H100.attn_seq_half)
    assert a.attn_core_s == pytest.approx(flops / rate + H100.op_overhead_s, rel=1e-12)
    # the backward: 2.5x the FLOPs at the backward rate, beyond the 2x forward assumed
    bwd = 2.5 * flops / R.flash_attention_rate(h, keys, 128.0, H100.attn_eff_bwd,
                                             H100.attn_seq_half)
    ov = H100.op_overhead_s
    assert a.attn_bwd_extra_s == pytest.approx(bwd + ov - 2.0 * (flops / rate + ov), rel=1e-9)
    # no fused-attention parameters (or no flash): the GEMM rate, as before
    plain = R.hardware_vector(H100.with_(attn_eff_fwd=0.0, attn_eff_bwd=0.0))
    b = R.attention_costs(m, plain, n, keys, 0.0, False, 1.0, 1.0, 1.0, 1.0, True, False,
                          1e15, 2.0, 2.0, 2.0)
    assert b.attn_bwd_extra_s == 0.0 and b.attn_core_s != a.attn_core_s


@pytest.mark.parametrize("slug,gpu", [("h100-sxm", "H100"), ("b200", "B200")])
def test_flashattention2_rates_follow_its_own_benchmarks(slug, gpu):
    """FlashAttention-2 (attention_kernel fa2), the Ampere-generation kernels on newer GPUs:
    the FA2 columns of the FlashAttention-3 paper's H100 figures (forward causal,
    backward) and of cudnn-frontend's B200 SDPA benchmark (PyTorch FLASH_ATTENTION and
    flash-attn 2.7.4, causal). The presets hold the fit; long sequences within 15%."""
    hw = presets.hardware(slug)
    rows = (calibrate.attention_rows(calibrate.kernels(), "flashattention_2") if gpu == "H100"
            else calibrate.OPS.fa2_attention_rows_b200())
    values, _ = calibrate.fit_attention(hw.peak_bf16_flops_per_s / 1e12, rows,
                                        hw.attn_dim_half, calibrate.FA2_EFF_BOUNDS)
    assert calibrate.fa2_values(values) == {n: pytest.approx(getattr(hw, n), rel=1e-3)
                                            for n in calibrate.FA2_NAMES}
    h = R.hardware_vector(hw)
    for pass_, eff, tol in (("fwd", hw.fa2_eff_fwd, 0.12), ("bwd", hw.fa2_eff_bwd, 0.07)):
        rel = [R.flash_attention_rate(h, k, d, eff, hw.fa2_seq_half) / 1e12 / v - 1
               for k, d, v in rows[pass_]]
        assert np.mean(np.abs(rel)) <= tol, (pass_, rel)
        long = [e for (k, d, _), e in zip(rows[pass_], rel) if k >= 4096 and d == 128]
        assert long and max(abs(e) for e in long) <= 0.15, (pass_, long)
    # FA2 reaches a fraction of the GPU's fastest kernels: about half on H100, a third on
    # B200 forward
    assert hw.fa2_eff_fwd < 0.6 * hw.attn_eff_fwd


def test_attention_kernel_fa2_slows_the_attention_core_where_the_gpu_has_figures():
    import pyengine
    from pyengine.errors import SpecError
    from pyengine.specs import Plan

    llama = presets.model("llama3-8b")
    plan = Plan(global_batch=8, micro_batch=1, seq_len=16384, zero=1)
    for slug, slower in (("h100-sxm", True), ("b200", True), ("a100-80gb", False)):
        hw = presets.hardware(slug)
        auto = pyengine.evaluate(llama, hw, plan)
        fa2 = pyengine.evaluate(llama, hw, plan.with_(attention_kernel="fa2"))
        if slower:
            assert fa2.time["compute"] > 1.1 * auto.time["compute"], slug
        else:  # no FA2 figures (A100 runs FA2 as its own fused kernel): unchanged
            assert fa2.time["compute"] == auto.time["compute"]
    with pytest.raises(SpecError, match="attention_kernel"):
        Plan(attention_kernel="fa3")


def test_explain_names_the_attention_kernel_and_its_rates():
    from pyengine.explain import explain, render_text
    from pyengine.specs import Plan

    llama = presets.model("llama3-8b")
    b200 = presets.hardware("b200")
    text = render_text(explain(llama, b200, Plan(attention_kernel="fa2")))
    assert "attention: fused, FlashAttention-2 at 27% / 21% of the 16-bit peak" in text
    text = render_text(explain(llama, presets.hardware("a100-80gb"), Plan()))
    assert "attention: fused, at the GEMM rate" in text
    text = render_text(explain(llama, b200, Plan(flash_attention=False)))
    assert "attention: unfused" in text
