"""Continuous batching with chunked prefill (issue "Serving as engines run it", part 3).

With a token budget (max_num_tokens > 0) a decode step holds the running sequences' decode
tokens plus prefill chunks up to the budget, instead of a separate prefill of every
prompt; the outputs are the steady state of a closed loop of `global_batch` clients:
output tokens/s, TTFT (the prompt's chunks after the wait for the prefill work of the
prompts ahead of it, plus queueing for chunk slots once the budget's prefill capacity is
used up) and inter-token latency. Without a budget the model
is what it was.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import pyengine
from pyengine import presets
from pyengine import reference as R
from pyengine import schema as S
from pyengine.specs import Plan

H100 = presets.hardware("h100-sxm")
LLAMA8B = presets.model("llama3-8b")
LLAMA70B = presets.model("llama3-70b")


def serve(model=LLAMA8B, **kw):
    base = dict(mode="decode", dtype="fp8", global_batch=64, micro_batch=64, seq_len=1000,
                gen_tokens=1000, max_num_tokens=8192)
    base.update(kw)
    return pyengine.evaluate(model, H100, Plan(**base))


M8B = R.model_vector(LLAMA8B)


def fields(**kw):
    return R.plan_fields(R.plan_vector(Plan(mode="decode", **kw)))


def test_steady_state_tokens_by_hand():
    """[T22] B = 8192, ISL = OSL = 1000, 64 sequences: the budget sustains 4096 decode
    tokens a step; 64 decode, 64 prefill tokens an average step; a prompt fits one chunk,
    so 64/1000 of the steps carry one."""
    cb = R.continuous_batch(M8B, fields(seq_len=1000, gen_tokens=1000, max_num_tokens=8192),
                            64.0, 1.0)
    assert cb.budget_decode == 4096.0
    assert (cb.decode, cb.prefill, cb.chunks, cb.chunk) == (64.0, 64.0, 1.0, 1000.0)
    assert cb.mixed == pytest.approx(0.064)
    assert cb.keys == (64 * 500 + 64 * 1500) / 128  # flash: a prompt token sees seq/2 keys
    assert cb.chunk_keys == pytest.approx((1000 * 500 + 64 * 1500) / 1064)


def test_long_prompts_come_in_chunks():
    """A 20,000-token prompt through an 8192-token budget with 32 decode tokens a step:
    ceil(20000 / 8160) = 3 chunks of 6,667 tokens."""
    cb = R.continuous_batch(M8B, fields(seq_len=20000, gen_tokens=2000, max_num_tokens=8192),
                            32.0, 1.0)
    assert cb.chunks == 3 and cb.chunk == pytest.approx(20000 / 3)


def test_budget_caps_the_decode_tokens():
    """Prompts of 5000 for 500 outputs: B*gen/(seq+gen) = 8192/11 = 744.7 decode tokens a
    step at most, however many sequences are in flight."""
    cb = R.continuous_batch(M8B, fields(seq_len=5000, gen_tokens=500, max_num_tokens=8192),
                            4096.0, 1.0)
    assert cb.budget_decode == pytest.approx(8192 / 11)
    assert cb.decode == cb.budget_decode
    assert cb.decode + cb.prefill == pytest.approx(8192)


@pytest.mark.parametrize("kw", [
    dict(global_batch=1, micro_batch=1),
    dict(global_batch=64, micro_batch=64),
    dict(global_batch=512, micro_batch=512, seq_len=4000, gen_tokens=100),
    dict(global_batch=256, micro_batch=256, seq_len=2048, gen_tokens=128, max_num_tokens=2048),
    dict(model=LLAMA70B, tp=2, global_batch=32, micro_batch=32, seq_len=5000, gen_tokens=500),
    dict(model=LLAMA70B, tp=2, pp=2, global_batch=32, micro_batch=16, seq_len=5000,
         gen_tokens=500),
])
def test_littles_law_of_the_closed_loop(kw):
    """Every client is in its prompt's TTFT or decoding: concurrency = throughput x
    (TTFT + gen x ITL) / gen, below the budget's capacity and beyond it (queueing)."""
    r = serve(**kw)
    gen = r.plan.gen_tokens
    assert r.tokens_per_s == pytest.approx(
        r.plan.global_batch * gen / (r.ttft_s + gen * r.tpot_s), rel=1e-9)
    terms = sum(v for k, v in r.time.items() if k != "step")
    assert terms == pytest.approx(r.time["step"], rel=1e-9)


def test_ttft_is_the_prompts_chunk_at_low_load_and_queues_beyond_the_budget():
    """One client: TTFT is the step that carries its whole prompt (about a prefill of it);
    past the budget's capacity requests wait for chunk slots, TTFT grows with the
    concurrency while throughput saturates."""
    one = serve(global_batch=1, micro_batch=1, seq_len=4000, gen_tokens=100)
    prefill = pyengine.evaluate(LLAMA8B, H100, one.plan.with_(mode="prefill", gen_tokens=0,
                                                              max_num_tokens=0))
    assert one.ttft_s == pytest.approx(prefill.ttft_s, rel=0.1)
    cap = 8192 * 100 / 4100  # decode tokens a step the budget sustains
    a = serve(global_batch=1024, micro_batch=1024, seq_len=4000, gen_tokens=100)
    b = serve(global_batch=2048, micro_batch=2048, seq_len=4000, gen_tokens=100)
    assert a.tokens_per_s == pytest.approx(cap / a.tpot_s, rel=1e-9)
    assert b.ttft_s > 1.9 * a.ttft_s
    assert b.tokens_per_s == pytest.approx(a.tokens_per_s, rel=0.05)


def test_prefill_heavy_short_outputs_gain_from_mixing():
    """ISL 2048 / OSL 128 at 128 clients: mixing chunks into decode steps instead of
    prefilling every prompt apart (the all-prompts pass, then the decode) is faster (3%
    here: both compute the logits of each prompt's last position only)."""
    kw = dict(global_batch=128, micro_batch=128, seq_len=2048, gen_tokens=128)
    mixed = serve(**kw)
    apart = serve(**kw, max_num_tokens=0)
    assert mixed.tokens_per_s > 1.02 * apart.tokens_per_s


def test_no_budget_keeps_the_separate_prefill():
    """max_num_tokens = 0: TTFT is the all-prompts prefill of the plan as before (the same
    as the prefill mode's) and TPOT one decode step."""
    plan = dict(global_batch=16, micro_batch=4, seq_len=1000, gen_tokens=100,
                max_num_tokens=0)
    r = serve(**plan)
    p = pyengine.evaluate(LLAMA8B, H100, r.plan.with_(mode="prefill"))
    assert r.ttft_s == p.ttft_s
    assert r.time["step"] == pytest.approx(p.time["step"] + 100 * r.tpot_s, rel=1e-12)


def test_chunk_steps_launch_eagerly_under_cuda_graphs():
    """TensorRT-LLM graphs generation-only steps: with a tiny model whose steps are
    launch-bound, graphs help only the steps without a chunk."""
    tiny = pyengine.Model(name="tiny", n_layers=4, hidden=512, n_heads=8, ffn_hidden=2048,
                          vocab=32000, gated_mlp=True)
    kw = dict(mode="decode", global_batch=8, micro_batch=8, seq_len=256, gen_tokens=256,
              max_num_tokens=4096)
    graphed = pyengine.evaluate(tiny, H100, Plan(**kw))
    eager = pyengine.evaluate(tiny, H100, Plan(**kw, cuda_graphs=False))
    assert 0 < graphed.time["launch"] < eager.time["launch"]
    cb = R.continuous_batch(M8B, R.plan_fields(R.plan_vector(Plan(**kw))), 8.0, 1.0)
    per_slot_graphed = graphed.time["launch"] / graphed.time["step"]
    per_slot_eager = eager.time["launch"] / eager.time["step"]
    assert per_slot_graphed < per_slot_eager and math.isclose(cb.mixed, 8 / 256)


def test_attention_replicas_of_an_expert_group():
    """[T23] The attention replicas whose tokens meet at an EP group's experts: ep x etp
    GPUs over tp x cp attention groups; a dense model's replicas never wait for each
    other."""
    qwen = presets.model("qwen3-30b-a3b")
    m = R.model_vector(qwen)
    assert R.attention_ranks(m, fields(gen_tokens=100, dp=8, ep=8, etp=1)) == 8.0
    assert R.attention_ranks(m, fields(gen_tokens=100, tp=8, ep=8, etp=1)) == 1.0
    assert R.attention_ranks(m, fields(gen_tokens=100, tp=2, dp=4, ep=8, etp=1)) == 4.0
    assert R.attention_ranks(R.model_vector(LLAMA8B), fields(gen_tokens=100, dp=8)) == 1.0


def poisson_max_mean(lam: float, ranks: int, room: int) -> float:
    """E[min(max of `ranks` iid Poisson(lam), room)], summed term by term from the pmf."""
    total, cdf, pmf = 0.0, 0.0, math.exp(-lam)
    for k in range(1, room + 1):
        cdf += pmf
        total += 1.0 - cdf ** ranks
        pmf *= lam / k
    return total


@pytest.mark.parametrize("lam, ranks, room", [(0.064, 8, 7), (2.0, 8, 15), (3.76, 8, 3),
                                              (0.5, 1, 10), (10.0, 4, 100), (50.0, 8, 200)])
def test_busiest_chunks_is_the_expected_maximum_of_poisson_arrivals(lam, ranks, room):
    """[T23] the busiest replica's chunks: E[min(max, room)] of `ranks` Poisson(lam)."""
    assert R.busiest_chunks(lam, float(ranks), float(room)) == pytest.approx(
        poisson_max_mean(lam, ranks, room), rel=1e-9)


@pytest.mark.parametrize("lam, ranks, room, exact", [
    (2.568963537146294e-09, 6636041.684210527, 772.0, 0.016903258509765658),
    (1e-06, 1e9, 50.0, 1.0004998748543308),
    (1000.0, 1e6, 5000.0, 1157.5101910066305),
    (1e-15, 3.0, 1.0, 2.999999999999996e-15)])
def test_busiest_chunks_keeps_its_digits_when_ranks_multiply_the_tail(lam, ranks, room, exact):
    """Far above the median a term 1 - F^ranks is ranks x the tail 1 - F: taken from F, a
    rounding of F is multiplied by ranks (at lam = 2.6e-9 and 6.6 M replicas, the case
    Hypothesis found where native and the reference parted at the 8th digit). The tail is
    summed from its far end instead. `exact`: the same sum at 60 digits (mpmath)."""
    assert R.busiest_chunks(lam, ranks, room) == pytest.approx(exact, rel=1e-13)


def test_busiest_chunks_at_large_rates_follows_the_normal_maximum():
    """Far above a chunk a step, the Poisson maximum of 8 is the mean plus the expected
    maximum of 8 standard normals (1.4236) standard deviations; it takes a few thousand
    terms at most, and none for no prefill."""
    lam = 1e6
    assert (R.busiest_chunks(lam, 8.0, 1e12) - lam) / math.sqrt(lam) == pytest.approx(
        1.4236, abs=2e-3)
    assert R.busiest_chunks(0.0, 8.0, 10.0) == 0.0
    assert R.busiest_chunks(3.0, 1.0, 1e9) == pytest.approx(3.0, rel=1e-9)


def test_busiest_replica_carries_a_chunk_when_any_does():
    """[T23] 64 sequences of 1000/1000 per replica: a replica carries 0.064 chunks a step
    (Poisson); of 8 replicas meeting at the experts, the busiest carries E[max] = 0.417
    of a chunk a step (1 - e^-0.512 of the steps carry at least one), and the step waits
    for it. One replica: the mean prefill. Prompts of 2048 for 128 outputs: 3.76 chunks a
    replica and step on average, the busiest of 8 nearly 6, but the budget holds 3
    beside the decode tokens, fewer than the mean: the mean."""
    f = fields(seq_len=1000, gen_tokens=1000, max_num_tokens=8192)
    one = R.continuous_batch(M8B, f, 64.0, 1.0)
    eight = R.continuous_batch(M8B, f, 64.0, 8.0)
    assert one.busiest == pytest.approx(one.prefill) and one.prefill == 64.0
    assert eight.busiest == pytest.approx(poisson_max_mean(0.064, 8, 7) * 1000.0, rel=1e-9)
    assert 0.41 < eight.busiest / 1000.0 < 0.42
    assert eight.busiest_keys == pytest.approx((eight.busiest * 500 + 64 * 1500)
                                               / (eight.busiest + 64))
    full = R.continuous_batch(M8B, fields(seq_len=2048, gen_tokens=128, max_num_tokens=8192),
                              4096.0, 8.0)
    assert full.mixed == 1.0 and full.busiest == full.prefill
    # a budget that holds them: the busiest of 8 replicas carries E[max] of Poisson(2)
    two = R.continuous_batch(M8B, fields(seq_len=2048, gen_tokens=128, max_num_tokens=32768),
                             256.0, 8.0)
    assert two.prefill == 2.0 * 2048
    assert two.busiest == pytest.approx(poisson_max_mean(2.0, 8, 15) * 2048, rel=1e-9)
    assert two.busiest / two.prefill == pytest.approx(2.09, abs=0.01)


def test_attention_dp_waits_for_the_busiest_replica():
    """[T23] Qwen3-30B-A3B with attention data parallel over 8 GPUs and EP 8, prompts
    of 5000 for 500 outputs: the step lasts longer than the mean replica's by the busiest
    replica's extra attention and dense work, nothing else changes; attention TP 8 over
    the same GPUs has one replica and no such wait."""
    qwen = presets.model("qwen3-30b-a3b")
    kw = dict(mode="decode", dtype="fp8", global_batch=512, seq_len=5000, gen_tokens=500,
              max_num_tokens=8192)
    adp = Plan(micro_batch=64, dp=8, ep=8, etp=1, **kw)
    f = R.plan_fields(R.plan_vector(adp))
    m, h = R.model_vector(qwen), R.hardware_vector(H100)
    pr = R.precisions(h, f)
    out = np.zeros(S.N_OUTPUTS)
    code, stages = R.evaluate_plan(m, h, R.limits_vector(), R.plan_vector(adp), out,
                                   R.no_stages(), 0)
    assert code == 0
    act = R.activations(m, f, pr, stages.layer, stages.batch.seqs_per_replica)
    mb = R.micro_batch_time(m, h, stages.layer.costs, f, act, stages.split)
    cb = R.continuous_batch(M8B, f, 64.0, 8.0)
    d = R.decode_step(m, h, f, pr, mb, cb.decode + cb.prefill, cb.keys, cb.decode, cb.mixed)
    b = R.decode_step(m, h, f, pr, mb, cb.decode + cb.busiest, cb.busiest_keys, cb.decode, 0.0)
    wait = (b.compute - b.experts) - (d.compute - d.experts)
    assert wait > 0
    t = R.continuous_step(m, h, f, pr, stages.layer, stages.batch, mb)
    assert t.tpot == pytest.approx(d.compute + wait + d.tp + d.cp + d.ep + d.launch + d.p2p
                                   + H100.step_overhead_s, rel=1e-12)
    tp8 = pyengine.evaluate(qwen, H100, Plan(micro_batch=512, tp=8, ep=8, etp=1, **kw))
    assert tp8.feasible


def test_prefill_queue_is_distserve_m_d_1_closed_by_littles_law():
    """[T25] DistServe (OSDI'24, Sec. 3.1) models prefill as an M/D/1 queue: mean TTFT =
    D + R D^2 / (2 (1 - R D)). With many clients (the arrival theorem's (group-1)/group
    -> 1) the wait is that formula's at the rate the group sustains, and the rate closes
    Little's law: group = R (TTFT + gen x ITL)."""
    D, own, decode_s = 0.4, 0.45, 20.0
    for group in (2.0, 10.0, 50.0, 1e6):
        q = R.prefill_queue(group, own, D, decode_s)
        share = (group - 1.0) / group
        rho = q.rate * D * share
        assert 0.0 <= rho < 1.0
        assert q.wait == pytest.approx(rho * D / (2.0 * (1.0 - rho)), rel=1e-12)
        assert q.rate * (own + q.wait + decode_s) == pytest.approx(group, rel=1e-9)
    # the open M/D/1 limit: at R D = 0.5 the wait is D / 2
    q = R.prefill_queue(1e9, own, D, decode_s)
    assert q.rate * D == pytest.approx(1.0, abs=1e-6)  # a saturated server
    # the open M/D/1 at R D = 0.5 waits D / 2: a group that sustains that rate (Little's law
    # at rho = 0.5) comes within its finite population's (group - 1) / group of it
    big = 0.5 / D * (own + decode_s + D / 2.0)
    q = R.prefill_queue(big, own, D, decode_s)
    assert q.rate * D == pytest.approx(0.5, rel=0.01)
    assert q.wait == pytest.approx(D / 2.0, rel=0.1)


def test_one_client_never_queues_and_no_work_no_wait():
    q = R.prefill_queue(1.0, 0.45, 0.4, 20.0)
    assert q.wait == 0.0 and q.rate == pytest.approx(1.0 / 20.45, rel=1e-12)
    q = R.prefill_queue(64.0, 0.05, 0.0, 5.0)
    assert q.wait == 0.0 and q.rate == pytest.approx(64.0 / 5.05, rel=1e-12)


def test_ttft_grows_with_concurrency_below_the_kv_capacity():
    """NVIDIA NIM's Llama 3.3 70B on 2 H100 (ISL 5000, OSL 500): its published TTFT grows
    from 0.41 s at 1 client to 0.55 / 0.69 / 0.83 s at 5 / 25 / 50 while every client
    fits in the KV cache; the prompts' wait for each other's prefill is that growth."""
    kw = dict(seq_len=5000, gen_tokens=500, tp=2, sequence_parallel=False)
    ttft = [serve(LLAMA70B, global_batch=c, micro_batch=c, **kw).ttft_s for c in (1, 5, 25, 50)]
    assert ttft == sorted(ttft)
    assert ttft[3] > 1.6 * ttft[0]
    assert ttft[2] / ttft[0] == pytest.approx(0.69 / 0.41, rel=0.15)
