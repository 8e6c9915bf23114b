"""[P4] serving engines' grouped (MoE expert) GEMMs at their own share of the dense rate,
fitted on TensorRT-LLM's MoE operator benchmarks (aiconfigurator; tools/fit_operators.py)."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from pyengine import presets
from pyengine import reference as R
from pyengine.errors import SpecError
from pyengine.loaders import hardware_from_dict
from pyengine.specs import Plan

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import extract_aiconfigurator as EXTRACT  # noqa: E402
import fit_operators as OPS  # noqa: E402

H100 = presets.hardware("h100-sxm")
B200 = presets.hardware("b200")
QWEN3 = presets.model("qwen3-235b-a22b")
LLAMA70 = presets.model("llama3-70b")


def fields(**kw):
    return R.plan_fields(R.plan_vector(Plan(**kw)))


@pytest.mark.parametrize("dtype", ["fp8", "bf16", "nvfp4"])
def test_expert_rate_is_the_share_of_the_dense_rate_in_inference_only(dtype):
    hw = B200.with_(grouped_gemm_eff_serve=0.6)
    h = R.hardware_vector(hw)
    serve = R.precisions(h, fields(mode="decode", dtype=dtype, gen_tokens=8))
    assert serve.expert_rate == serve.rate * 0.6
    train = R.precisions(h, fields(mode="train", dtype=dtype))
    assert train.expert_rate == train.rate


def test_compute_bound_experts_take_the_inverse_of_the_share():
    """Experts with thousands of slots each are compute-bound: their time, less the two
    fixed kernel costs, scales as 1 / share; the router, permutes, shared expert and
    dispatch do not move."""
    m, h = R.model_vector(QWEN3), R.hardware_vector(H100)
    args = (m, h, 8192.0, 1.0, 1.0, 8.0, 1.0, 8 * 8192.0 / 128, 1.0)
    rate = 1e15
    full = R.moe_costs(*args, rate, rate, 148.0, 2.0, 1.0, 1.03125, 1.0)
    half = R.moe_costs(*args, rate, 0.5 * rate, 148.0, 2.0, 1.0, 1.03125, 1.0)
    fixed = 3.0 * H100.op_overhead_s  # the GEMM's own and the experts' two
    assert half.experts_s - fixed == pytest.approx(2.0 * (full.experts_s - fixed), rel=1e-12)
    assert half.moe_s - half.experts_s == pytest.approx(full.moe_s - full.experts_s, rel=1e-12)
    assert (half.ep_s, half.shared_s) == (full.ep_s, full.shared_s)


def test_training_and_dense_serving_do_not_see_the_share():
    """The share moves MoE inference only: a training plan of an MoE model and a decode
    plan of a dense model give the same bits at any share."""
    slow = H100.with_(grouped_gemm_eff_serve=0.4)
    train = Plan(mode="train", dtype="fp8", global_batch=64, micro_batch=1, seq_len=4096,
                 tp=8, ep=8, pp=8, dp=8)
    dense = Plan(mode="decode", dtype="fp8", global_batch=64, micro_batch=64, seq_len=1024,
                 gen_tokens=256)
    for model, plan in ((QWEN3, train), (LLAMA70, dense)):
        a, b = R.evaluate(model, H100, plan), R.evaluate(model, slow, plan)
        assert a.outputs == b.outputs


def test_moe_decode_slows_with_a_smaller_share():
    plan = Plan(mode="decode", dtype="fp8", global_batch=2048, micro_batch=256, seq_len=1000,
                gen_tokens=1000, dp=8, ep=8, etp=1, max_num_tokens=8192)
    fast = R.evaluate(QWEN3, H100.with_(grouped_gemm_eff_serve=1.5), plan)
    slow = R.evaluate(QWEN3, H100.with_(grouped_gemm_eff_serve=0.5), plan)
    assert slow.outputs["tokens_per_s"] < fast.outputs["tokens_per_s"]
    assert slow.outputs["mem_total_bytes"] == fast.outputs["mem_total_bytes"]


@pytest.mark.parametrize("bad", [0.0, -0.5, 2.5, math.nan, math.inf])
def test_share_out_of_range_names_the_field(bad):
    with pytest.raises(SpecError, match=r"grouped_gemm_eff_serve.*\(0, 2\]"):
        dataclasses.replace(H100, grouped_gemm_eff_serve=bad)


def test_share_reads_from_a_spec_file():
    spec = {"name": "x", "bf16_tflops": 989, "hbm_gb": 80, "hbm_tbps": 3.35, "gpus_per_node": 8,
            "nvlink_gbps": 450, "network_gbps": 50, "grouped_gemm_eff_serve": 0.75}
    assert hardware_from_dict(spec).grouped_gemm_eff_serve == 0.75


def test_presets_carry_the_fitted_shares():
    """Every preset with a TensorRT-LLM MoE table holds the share fit_grouped_gemm_serve
    finds on it (the whole calibration is checked by test_tooling; one GPU recomputed here:
    B200, whose NVFP4 grouped kernels run below its dense NVFP4 level)."""
    assert B200.grouped_gemm_eff_serve == OPS.fit_grouped_gemm_serve("b200", B200) < 1.0
    assert H100.grouped_gemm_eff_serve > 1.0  # per-tensor FP8 CUTLASS MoE above the e2e level
    assert presets.hardware("a100-80gb").grouped_gemm_eff_serve == 1.0  # no table: dense rate


def test_moe_module_matches_a_hand_count():
    """moe_module_s prices one rank of the EP group: k x tokens / E slots per local expert,
    E / ep of them, against the experts' GEMM at the rate of the share."""
    m, f = OPS.moe_module_rows("h100-sxm")[0][:2]
    h = R.hardware_vector(H100)
    model_tokens, ep = 16384.0, 8.0
    s = OPS.moe_module_s(m, h, f, ep, model_tokens)
    pr = R.precisions(h, f)
    n_tok = model_tokens / ep
    cap = m[R.S.M_TOP_K] * n_tok / m[R.S.M_EXPERTS]
    want = R.moe_costs(m, h, n_tok, 1.0, 1.0, ep, 1.0, cap, 1.0, pr.rate, pr.expert_rate,
                       pr.token_half, pr.ab, pr.wb, pr.db, 0.0).moe_s
    assert s == pytest.approx(want, rel=1e-12)


def test_tables_hold_what_the_extraction_says():
    """Each copied MoE table: its citation, its columns, and only the selected rows
    (balanced routing, EP only, >= 128 slots per expert, the serving dtypes)."""
    data = OPS.load("operators")
    for slug, key in OPS.SERVE_MOE_TABLES.items():
        d = data[key]
        assert "aiconfigurator" in d["source"] and "commit" in d["source"], slug
        cols = d["values"]["columns"]
        assert cols == ["moe_dtype", "hidden_size", "inter_size", "topk", "num_experts",
                        "moe_ep_size", "num_tokens", "latency_ms"]
        rows = d["values"]["rows"]
        assert len(rows) > 300, slug
        for dtype, _, _, k, e, _, tokens, ms in rows:
            assert k * tokens / e >= EXTRACT.MIN_SLOTS and ms > 0.0
            assert dtype in ("fp8", "fp8_block", "nvfp4")
        assert len(OPS.moe_module_rows(slug)) == sum(r[0] in OPS.PLAN_DTYPES for r in rows)


def test_extraction_layout_round_trips():
    """The writer's one-row-a-line layout is the same JSON as the document."""
    doc = {"_about": "x", "datasets": {
        "a": {"values": {"rows": [[1, 2]]}},
        "trtllm_moe_latency_aiconfigurator_t": {"values": {"columns": ["a", "b"],
                                                           "rows": [["fp8", 1.5], ["x", 2]]}}}}
    text = EXTRACT.dump(json.loads(json.dumps(doc)))
    assert json.loads(text) == doc
    assert '\n    ["fp8", 1.5],\n    ["x", 2]\n' in text


def test_fit_is_the_first_minimum_of_the_grid():
    costs = [np.mean(np.abs(OPS.grouped_gemm_errors("b200", B200, float(s))))
             for s in OPS.GROUPED_SHARES]
    best = OPS.fit_grouped_gemm_serve("b200", B200)
    assert best == float(OPS.GROUPED_SHARES[int(np.argmin(costs))])
    assert min(costs) < costs[list(OPS.GROUPED_SHARES).index(1.0)]
