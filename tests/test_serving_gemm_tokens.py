"""A serving engine's GEMMs saturate in the token dimension at their own half-point
(gemm_token_half_serve, [T2]/[P2]), fitted on TensorRT-LLM's FP8 Linear layers timed on
H100 and H200 (NVIDIA aiconfigurator's database, operators.json); training GEMMs keep
gemm_dim_half, as the training libraries' shape tables (cuBLASLt, DeepGEMM) show."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from pyengine import presets
from pyengine import reference as R
from pyengine.errors import SpecError
from pyengine.specs import Plan

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import fit_operators as OPS  # noqa: E402

H100 = presets.hardware("h100-sxm")


def fields(mode: str):
    return R.plan_fields(R.plan_vector(Plan(mode=mode, dtype="fp8", gen_tokens=1)))


def test_the_mode_picks_the_token_half_point():
    h = R.hardware_vector(H100)
    assert R.precisions(h, fields("train")).token_half == H100.gemm_dim_half
    for mode in ("prefill", "decode"):
        assert R.precisions(h, fields(mode)).token_half == H100.gemm_token_half_serve
    # a preset's 0 is gemm_dim_half (the Blackwell presets: not identified there)
    b200 = presets.hardware("b200")
    assert b200.gemm_token_half_serve == 0.0
    hb = R.hardware_vector(b200)
    assert R.precisions(hb, fields("decode")).token_half == b200.gemm_dim_half


def test_hopper_presets_hold_the_fit():
    gemm, _ = OPS.fit_gemm()
    fit = OPS.fit_gemm_token_half_serve(gemm["gemm_dim_half"], gemm["op_overhead_s"])
    for slug in ("h100-sxm", "h200", "h800"):
        assert presets.hardware(slug).gemm_token_half_serve == fit["gemm_token_half_serve"]
    assert presets.hardware("a100-80gb").gemm_token_half_serve == 0.0
    # the decode-sized rows: 7.2% mean |log error| at the fit, 13.6% at gemm_dim_half
    assert fit["error"] < 0.08 < 0.12 < fit["error_at_dim_half"]
    # the tool's fixed time (its FP8 flow quantizes the input first) and the tables' own
    # large-GEMM levels stay physical
    assert 5e-6 < fit["extra_s"] < 20e-6
    assert all(0.5 < v < 0.65 for v in fit["levels"].values())


@pytest.mark.parametrize("table, m, measured_us, at_fit, at_dim_half", [
    # TensorRT-LLM 1.2.0rc5 FP8 Linear, weights 8192 x 16384, the model over the measured
    # time (the table's own level and fixed time): the fitted half-point against 148
    ("TensorRT-LLM Linear H100 FP8", 128, 68.3, 0.93, 1.24),
    ("TensorRT-LLM Linear H100 FP8", 256, 80.7, 1.04, 1.44),
    ("TensorRT-LLM Linear H200 FP8", 128, 53.3, 0.95, 1.54),
    ("TensorRT-LLM Linear H200 FP8", 256, 66.8, 1.21, 1.68),
])
def test_decode_sized_linear_layers(table, m, measured_us, at_fit, at_dim_half):
    gemm, _ = OPS.fit_gemm()
    fit = OPS.fit_gemm_token_half_serve(gemm["gemm_dim_half"], gemm["op_overhead_s"])
    slug, nb, _, _ = OPS.TOKEN_TABLES[table]
    hv, hw = OPS._gemm_hw(slug, gemm["gemm_dim_half"], gemm["op_overhead_s"])
    ms, ns, ks, ts = OPS.token_rows(table)
    (x,) = np.flatnonzero((ms == m) & (ns == 16384) & (ks == 8192))
    assert ts[x] * 1e6 == pytest.approx(measured_us, abs=0.05)
    flops = 2.0 * m * 16384 * 8192

    def ratio(half):
        tflops = OPS.gemm_tflops(hv, hw.peak_fp8_flops_per_s, fit["levels"][table], m,
                                 16384.0, 8192.0, nb, half)
        return (flops / (tflops * 1e12) + fit["extra_s"]) / ts[x]

    assert ratio(fit["gemm_token_half_serve"]) == pytest.approx(at_fit, abs=0.01)
    assert ratio(gemm["gemm_dim_half"]) == pytest.approx(at_dim_half, abs=0.01)


def test_training_libraries_saturate_at_dim_half():
    """The shape tables of the training libraries (cuBLASLt, DeepGEMM dense and grouped)
    at fewer than 4096 tokens: gemm_dim_half fits them better than the serving engine's
    half-point, so training GEMMs keep it."""
    gemm, levels = OPS.fit_gemm()
    serve = H100.gemm_token_half_serve

    def error(table, half):
        slug, nb, _, _ = OPS.GEMM_TABLES[table]
        hv, hw = OPS._gemm_hw(slug, gemm["gemm_dim_half"], gemm["op_overhead_s"])
        return np.mean([abs(math.log(OPS.gemm_tflops(hv, OPS._peak(hw, nb), levels[table],
                                                      m, n, k, nb, half) / t))
                        for m, n, k, t in OPS.gemm_rows(table) if m < OPS.LARGE_DIM])

    for table in OPS.GEMM_TABLES:
        assert error(table, gemm["gemm_dim_half"]) < error(table, serve), table


def test_blackwell_tables_do_not_identify_it():
    gemm, _ = OPS.fit_gemm()
    for table in OPS.TOKEN_REPORTED:
        profile = OPS.token_half_profile([table], gemm["gemm_dim_half"], gemm["op_overhead_s"])
        within = [v for h, v in profile.items() if h <= 300.0]
        assert max(within) - min(within) < 0.04, table


def test_bad_value_names_the_field():
    with pytest.raises(SpecError, match="gemm_token_half_serve"):
        H100.with_(gemm_token_half_serve=-1.0)
    with pytest.raises(SpecError, match="gemm_token_half_serve"):
        H100.with_(gemm_token_half_serve=float("nan"))


def test_explain_names_the_gemm_shape():
    from pyengine.explain import explain, render_text

    model = presets.model("llama3-8b")
    serve = explain(model, H100, Plan(mode="decode", dtype="fp8", global_batch=64,
                                      micro_batch=64, seq_len=128, gen_tokens=128,
                                      max_num_tokens=2048))
    train = explain(model, H100, Plan(mode="train", dtype="fp8", global_batch=8, micro_batch=1,
                                      seq_len=4096, dp=8))
    assert serve["derivation"]["gemm_shape"]["token_half"] == H100.gemm_token_half_serve
    assert train["derivation"]["gemm_shape"]["token_half"] == H100.gemm_dim_half
    assert "16 tokens in M (the serving engine's kernels)" in render_text(serve)
    assert "148 tokens in M (the training libraries' kernels)" in render_text(train)
