"""Precisions (issue "Serving as engines run it", part 5): the KV cache's own dtype, FP4
weights (NVFP4, MXFP4) on GPUs with an FP4 peak, and that peak for the Blackwell presets.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import pyengine
from pyengine import presets
from pyengine import reference as R
from pyengine import schema as S
from pyengine.specs import Plan

DATA = Path(pyengine.__file__).resolve().parent / "data" / "operators.json"
LLAMA8B = presets.model("llama3-8b")
LLAMA70B = presets.model("llama3-70b")


def serve(hw="b200", model=LLAMA70B, **kw):
    base = dict(mode="decode", global_batch=8, seq_len=1000, gen_tokens=200)
    base.update(kw)
    return pyengine.evaluate(model, presets.hardware(hw), Plan(**base))


@pytest.mark.parametrize("preset, gpu", [("b200", "B200"), ("gb200-nvl72", "GB200"),
                                         ("gb300-nvl72", "GB300")])
def test_fp4_peaks_from_nvidia_dgxc(preset, gpu):
    """Dense NVFP4 peaks of NVIDIA's dgxc-benchmarking README (hw_peak_dense_tflops_nvidia_dgxc):
    B200 9000, GB200 9800, GB300 14700 TFLOP/s; H100 has none."""
    rows = json.loads(DATA.read_text())["datasets"]["hw_peak_dense_tflops_nvidia_dgxc"][
        "values"]["peak_dense_tflops"]
    row = next(r for r in rows if r["gpu"] == gpu)
    assert presets.hardware(preset).peak_fp4_flops_per_s == row["nvfp4_tflops"] * 1e12
    h100 = next(r for r in rows if r["gpu"] == "H100")
    assert h100["nvfp4_tflops"] is None
    assert presets.hardware("h100-sxm").peak_fp4_flops_per_s == 0.0


@pytest.mark.parametrize("dtype", ["nvfp4", "mxfp4"])
def test_fp4_needs_an_fp4_peak(dtype):
    """[F1] FP4 on a GPU without FP4 tensor cores is infeasible (FP4), never silently run
    at another rate; a sweep counts it like any other violation."""
    r = serve("h100-sxm", dtype=dtype, tp=2)
    assert r.violations == ["FP4"]
    assert serve("b200", dtype=dtype).feasible
    counts = pyengine.count_space(LLAMA70B, presets.hardware("h100-sxm"),
                                  pyengine.Space(base=Plan(mode="decode", gen_tokens=8, tp=4),
                                                 dtype=["fp8", "nvfp4", "mxfp4"]))
    assert counts[0] == 1 and counts[1]["FP4"] == 2


@pytest.mark.parametrize("dtype, bits", [("nvfp4", 4.5), ("mxfp4", 4.25), ("fp8", 8.0)])
def test_weights_at_their_stored_precision(dtype, bits):
    """NVFP4: 16 E2M1 values share an E4M3 scale, 4 + 8/16 = 4.5 bits a weight; MXFP4: 32
    share an E8M0 scale, 4 + 8/32 = 4.25 bits (OCP MX v1.0); the embedding, LM head and
    norms stay in 16 bits."""
    m = R.model_vector(LLAMA70B)
    linear = m[S.M_LAYERS] * (m[S.M_ATTN_GEMM_PARAMS] + m[S.M_MLP_GEMM_PARAMS])
    r = serve(dtype=dtype)
    assert r.memory["weights"] == pytest.approx(
        linear * bits / 8 + (m[S.M_PARAMS_TOTAL] - linear) * 2, rel=1e-12)


def test_kv_dtype_is_independent_of_the_weights():
    """The KV cache in its own dtype: FP8 KV under BF16 weights halves it, BF16 KV under
    FP8 weights doubles it; auto keeps FP8 KV under FP8 and FP4 weights (TensorRT-LLM's
    quantized checkpoints) and BF16 otherwise."""
    per_seq = 1216 * 80 * 8 * 128 * 2  # 38 blocks of 32 tokens x layers x KV heads x K+V dims
    cases = [("bf16", "auto", 2), ("bf16", "fp8", 1), ("fp8", "auto", 1), ("fp8", "bf16", 2),
             ("nvfp4", "auto", 1), ("mxfp4", "bf16", 2)]
    for dtype, kv, nbytes in cases:
        r = serve(dtype=dtype, kv_dtype=kv)
        assert r.memory["kv_cache"] == 8 * per_seq * nbytes, (dtype, kv)
    # the KV bytes read by every decode step follow it too
    fast = serve(dtype="bf16", kv_dtype="fp8", global_batch=64, seq_len=8000)
    slow = serve(dtype="bf16", global_batch=64, seq_len=8000)
    assert fast.tpot_s < slow.tpot_s


def test_fp4_gemms_at_the_fp4_peak():
    """Prefill is compute-bound: NVFP4 GEMMs at the FP4 peak (with the FP4 large-GEMM
    share; without one, FP8's) beat FP8; MFU is counted against the FP4 peak; the LM head
    stays BF16."""
    hw = presets.hardware("b200")
    f = R.plan_fields(R.plan_vector(Plan(mode="prefill", dtype="nvfp4")))
    pr = R.precisions(R.hardware_vector(hw), f)
    assert pr.peak == hw.peak_fp4_flops_per_s
    assert pr.rate == hw.peak_fp4_flops_per_s * hw.gemm_eff_max_fp4
    unset = R.precisions(R.hardware_vector(hw.with_(gemm_eff_max_fp4=0.0)), f)
    assert unset.rate == hw.peak_fp4_flops_per_s * hw.gemm_eff_max_fp8
    assert pr.head_rate == hw.peak_bf16_flops_per_s * hw.gemm_eff_max
    kw = dict(mode="prefill", global_batch=8, micro_batch=8, seq_len=4096, gen_tokens=0)
    fp4, fp8 = serve(dtype="nvfp4", **kw), serve(dtype="fp8", **kw)
    assert fp4.ttft_s < 0.8 * fp8.ttft_s
    assert fp4.mfu == pytest.approx(
        fp4.model_flops_per_step / (fp4.time["step"] * hw.peak_fp4_flops_per_s), rel=1e-12)


def test_fp4_training_keeps_bf16_weights():
    """FP4 training (NVFP4 recipes) runs its GEMMs at the FP4 rate and keeps BF16 weights,
    FP32 master copies and Adam states, as FP8 training does."""
    plan = Plan(global_batch=8, seq_len=4096)
    bf16 = pyengine.evaluate(LLAMA8B, presets.hardware("b200"), plan)
    fp4 = pyengine.evaluate(LLAMA8B, presets.hardware("b200"), plan.with_(dtype="nvfp4"))
    assert fp4.memory == bf16.memory
    assert fp4.time["step"] < bf16.time["step"]


def test_fp4_level_from_one_b200_run():
    """The Blackwell FP4 large-GEMM level is the GPU's BF16 level times NVFP4's share of
    the FP4 peak over BF16's share of the BF16 peak in one B200 run (torchao bench_matmul,
    pytorch/ao#2427): at 6144^3 0.611 against 0.646, at 8192^3 0.597 against 0.631
    (the pct_peak the run prints): 0.947."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("fit_operators",
                                                  root / "tools" / "fit_operators.py")
    ops = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ops)
    ratio = ops.fp4_share_ratio()
    assert ratio == pytest.approx(np.mean([0.611 / 0.646, 0.597 / 0.631]), abs=2e-3)
    for slug in ("b200", "gb200-nvl72", "gb300-nvl72"):
        hw = presets.hardware(slug)
        assert hw.gemm_eff_max_fp4 == pytest.approx(hw.gemm_eff_max * ratio, abs=1e-4), slug
    assert presets.hardware("h100-sxm").gemm_eff_max_fp4 == 0.0
