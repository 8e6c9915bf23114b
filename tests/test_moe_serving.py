"""MoE serving layouts (issue "Serving as engines run it", part 4): dropless unpadded
routing in inference [S4], the busiest expert rank's load and the share of experts a step
activates [S5], FP8 dispatch [C6], and attention data parallel + EP as a plan.
"""

from __future__ import annotations

import numpy as np
import pytest

import pyengine
from pyengine import presets
from pyengine import reference as R
from pyengine.explain import explain, render_text
from pyengine.specs import Limits, Plan

QWEN3 = presets.model("qwen3-235b-a22b")  # 128 experts, top-8
H200 = presets.hardware("h200")


def fields(**kw):
    kw.setdefault("gen_tokens", 1)
    return R.plan_fields(R.plan_vector(Plan(**kw)))


def test_inference_routes_dropless_and_unpadded():
    """Inference: k*T/E slots per expert, none dropped, whatever the capacity factor;
    training keeps ceil(k*T*cf/E) and its drops (DESIGN.md)."""
    m = R.model_vector(QWEN3)
    cap = R.expert_capacity(m, 3.0, 0.5, False)
    assert cap.capacity == pytest.approx(8 * 3 / 128) and cap.dropped == 0.0
    cap = R.expert_capacity(m, 3.0, 1.0, True)
    assert cap.capacity == 1.0  # ceil(24/128)
    cap = R.expert_capacity(m, 4096.0, 0.5, True)
    assert cap.capacity == 128.0 and cap.dropped == pytest.approx(0.5)


def test_busiest_rank_spread_matches_random_routing():
    """The Gaussian extreme value mu + sigma sqrt(2 ln ep) against the simulated maximum
    load of ep ranks when T tokens each pick k distinct experts of E uniformly (EP ranks
    hold E/ep experts each): within 25% at one token per rank, 5% at 64."""
    m = R.model_vector(QWEN3)
    rng = np.random.default_rng(0)
    ep, k, n_exp = 8, 8, 128
    for tokens_per_rank, tol in ((1.0, 0.25), (64.0, 0.05)):
        f = fields(mode="decode", tp=1, dp=ep, ep=ep, global_batch=ep)
        mean_cap = k * tokens_per_rank / n_exp
        load = R.expert_load(m, f, mean_cap)
        t_group = int(tokens_per_rank * ep)
        maxima = []
        for _ in range(400):
            picks = np.argsort(rng.random((t_group, n_exp)), axis=1)[:, :k]
            per_rank = np.bincount((picks // (n_exp // ep)).ravel(), minlength=ep)
            maxima.append(per_rank.max())
        simulated = np.mean(maxima) / (n_exp // ep)  # slots per expert on the busiest rank
        # slots per expert per router rank x the ep router ranks feeding the expert
        assert load.load * ep == pytest.approx(simulated, rel=tol)


def test_active_expert_share_is_occupancy():
    """A decode step of one token per rank over EP 8: T_g = 8 tokens; a local expert stays
    idle with probability (1 - 8/128)^8, matching simulation."""
    m = R.model_vector(QWEN3)
    f = fields(mode="decode", tp=1, dp=8, ep=8, global_batch=8)
    load = R.expert_load(m, f, 8 / 128)
    assert load.active == pytest.approx(1 - (1 - 1 / 16) ** 8)
    rng = np.random.default_rng(1)
    hit = []
    for _ in range(2000):
        picks = np.argsort(rng.random((8, 128)), axis=1)[:, :8]
        hit.append(np.unique(picks[picks < 16]).size / 16)
    assert load.active == pytest.approx(np.mean(hit), rel=0.03)
    # training pads to the capacity: every expert runs, no spread
    t = R.expert_load(m, fields(mode="train", tp=1, dp=8, ep=8, global_batch=8), 1.0)
    assert t == (1.0, 1.0)


def test_idle_experts_read_no_weights():
    """At one token per GPU the routed experts' time falls with the active share: only
    the experts with tokens have their weights read."""
    m = R.model_vector(QWEN3)
    h = R.hardware_vector(H200)
    # a compute rate high enough that the experts are bound by their weight reads
    args = (m, h, 1.0, 1.0, 1.0, 8.0, 1.0, 0.5, 1e18, 1e18, 148.0, 2.0, 1.0, 1.0, 0.0)
    full = R.moe_costs(*args[:8], 1.0, *args[8:])
    part = R.moe_costs(*args[:8], 0.25, *args[8:])
    weights = 16 * 3 * 4096 * 1536 * 1.0  # 16 local experts, gated, FP8
    saved = 0.75 * weights / (H200.hbm_bandwidth_bytes_per_s * H200.hbm_eff)
    assert full.experts_s - part.experts_s == pytest.approx(saved, rel=0.02)


def test_fp8_dispatch_in_quantized_inference():
    """DeepEP's low-latency dispatch sends FP8 with an fp32 scale per 128 values; the
    combine returns BF16. Training dispatches at the activation precision."""
    h = R.hardware_vector(H200)
    assert R.precisions(h, fields(mode="decode", dtype="fp8")).db == 1.0 + 4.0 / 128.0
    assert R.precisions(h, fields(mode="decode", dtype="bf16")).db == 2.0
    assert R.precisions(h, fields(mode="train", dtype="fp8")).db == 2.0
    m = R.model_vector(QWEN3)
    a = R.moe_costs(m, h, 64.0, 1.0, 1.0, 8.0, 1.0, 4.0, 1.0, 1e15, 1e15, 148.0, 2.0, 1.0, 2.0,
                    0.0)
    b = R.moe_costs(m, h, 64.0, 1.0, 1.0, 8.0, 1.0, 4.0, 1.0, 1e15, 1e15, 148.0, 2.0, 1.0,
                    1.03125, 0.0)
    assert b.ep_s < a.ep_s


def plan(layout: str, batch: int) -> Plan:
    kw = (dict(tp=8, ep=8, etp=1, micro_batch=batch) if layout == "tp" else
          dict(tp=1, dp=8, ep=8, micro_batch=batch // 8))
    return Plan(mode="decode", dtype="fp8", seq_len=1000, gen_tokens=1000, global_batch=batch,
                sequence_parallel=False, max_num_tokens=8192, kv_cache_fraction=0.9, **kw)


def test_attention_dp_layout_trades_as_engines_describe():
    """TensorRT-LLM's and SGLang's guidance: attention DP + EP for throughput at high
    concurrency (no attention all-reduce, KV cache per rank), attention TP when the step
    is small (each GPU reads 1/tp of the attention weights). Both layouts fit 8 H200s;
    attention DP replicates the attention weights."""
    lim = Limits(mem_fraction=1.0)
    tp = {b: pyengine.evaluate(QWEN3, H200, plan("tp", b), lim) for b in (8, 2048)}
    dp = {b: pyengine.evaluate(QWEN3, H200, plan("dp", b), lim) for b in (8, 2048)}
    assert all(r.feasible for r in (*tp.values(), *dp.values()))
    assert dp[2048].outputs["tokens_per_s_per_gpu"] > 1.3 * tp[2048].outputs[
        "tokens_per_s_per_gpu"]
    assert dp[8].memory["weights"] > tp[8].memory["weights"]
    assert tp[8].outputs["time_tp_s"] > 0 and dp[8].outputs["time_tp_s"] == 0


def test_explain_names_the_moe_decode_step():
    d = explain(QWEN3, H200, plan("dp", 64))
    moe = d["derivation"]["serving"]["moe"]
    assert moe["attention"].startswith("data parallel")
    assert 0 < moe["active_share"] <= 1
    assert moe["slots_per_expert_busiest"] > moe["slots_per_expert_mean"]
    text = render_text(d)
    assert "MoE decode step: attention data parallel" in text
    assert "experts route dropless" in text


@pytest.mark.parametrize("backend", ["numba", "native"])
def test_backends_agree_on_moe_serving(backend):
    """The fast backends against the reference on both layouts, small and large steps."""
    plans = [plan(lay, b) for lay in ("tp", "dp") for b in (8, 64, 2048)]
    got = pyengine.evaluate_batch(QWEN3, H200, plans, backend=backend)
    for i, p in enumerate(plans):
        r = R.evaluate(QWEN3, H200, p)
        for name in ("tokens_per_s", "tpot_s", "ttft_s", "mem_total_bytes"):
            assert float(got[name][i]) == pytest.approx(r.outputs[name], rel=1e-12), name
