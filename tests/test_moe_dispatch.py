"""MoE token dispatchers (Megatron-Core moe_token_dispatcher_type): alltoall, allgather and
flex (DeepEP / HybridEP, deduplicated per NVLink domain), [C6] and [C14] of the reference."""

from __future__ import annotations

import math

import pytest

import pyengine
from pyengine import presets
from pyengine import reference as R
from pyengine import validate as V
from pyengine.errors import SpecError
from pyengine.specs import Plan

DSV3 = presets.model("deepseek-v3")
B200 = presets.hardware("b200")


def exact_remote_domains(domains: int, k: int, experts: int) -> float:
    """(D - 1) (1 - C(E - E/D, k) / C(E, k)): the hypergeometric expectation."""
    return (domains - 1) * (1 - math.comb(experts - experts // domains, k)
                            / math.comb(experts, k))


@pytest.mark.parametrize("domains,k,experts", [(4, 8, 256), (8, 8, 256), (2, 2, 8),
                                               (16, 6, 160), (4, 1, 64), (2, 8, 16)])
def test_remote_domains_is_the_hypergeometric_expectation(domains, k, experts):
    got = R.remote_domains(float(domains), float(k), float(experts), 0.0, 0.0)
    assert got == pytest.approx(exact_remote_domains(domains, k, experts), rel=1e-12)


def test_deepseek_v3_over_four_nodes_crosses_fewer_times_than_its_slots():
    """DeepSeek-V3 (256 experts, top-8) over EP 32 = 4 nodes of 8: a token reaches 2.71 of
    the 3 remote nodes on average where the all-to-all sends 8 x 24/32 = 6 token-slots off
    the node: DeepEP's node-deduplicated dispatch moves 2.2x less over InfiniBand."""
    assert R.remote_domains(4.0, 8.0, 256.0, 0.0, 0.0) == pytest.approx(2.7107, abs=1e-4)
    h = R.hardware_vector(B200)
    nbytes = 8 * 4096 * 7168 * 2.0  # k token-slots of 4096 tokens, BF16
    flex = R.deduplicated_alltoall_s(nbytes, 32.0, 1.0, 8.0, 256.0, 0.0, 0.0, h)
    a2a = R.alltoall_s(nbytes, 32.0, 1.0, h)
    nic = B200.inter_node_bandwidth_bytes_per_s * B200.inter_eff
    lat = 2.0 * B200.inter_node_latency_s
    remote = R.remote_domains(4.0, 8.0, 256.0, 0.0, 0.0)
    assert flex == pytest.approx(nbytes / 8 * remote / nic + lat, rel=1e-12)
    assert a2a / flex == pytest.approx(6.0 / 2.7107, rel=5e-3)  # latencies aside


def test_flex_is_the_all_to_all_inside_a_domain_and_with_top_1():
    h = R.hardware_vector(B200)
    nbytes = 1e8
    assert R.deduplicated_alltoall_s(nbytes, 8.0, 1.0, 8.0, 256.0, 0.0, 0.0, h) == \
        R.alltoall_s(nbytes, 8.0, 1.0, h)
    # one expert per token: nothing to deduplicate, the same bytes leave the node
    assert R.deduplicated_alltoall_s(nbytes, 32.0, 1.0, 1.0, 64.0, 0.0, 0.0, h) == \
        pytest.approx(R.alltoall_s(nbytes, 32.0, 1.0, h), rel=1e-12)


def moe_ep_s(dispatcher: float, tp=1.0, etp=1.0, ep=8.0, n_tok=4096.0):
    m, h = R.model_vector(DSV3), R.hardware_vector(B200)
    capacity = DSV3.top_k * n_tok / DSV3.n_experts
    return R.moe_costs(m, h, n_tok, tp, etp, ep, tp, capacity, 1.0, 1e15, 1e15, 148.0, 2.0, 2.0,
                       2.0, dispatcher).ep_s, h


def test_allgather_dispatcher_gathers_the_expert_groups_tokens():
    """Megatron-Core's allgather dispatcher: all-gather the hidden states of the ETP x EP
    group's tokens (n_tok/tp per rank), reduce-scatter the outputs."""
    for tp, etp, ep in ((1.0, 1.0, 8.0), (2.0, 2.0, 4.0), (4.0, 1.0, 64.0)):
        got, h = moe_ep_s(1.0, tp, etp, ep)
        gathered = 4096.0 / tp * ep * etp * DSV3.hidden * 2.0
        want = 2.0 * R.allgather_s(gathered, ep * etp, 1.0, h)
        assert got == pytest.approx(want, rel=1e-12)
    # top-8 of 256 in one node: gathering every token costs about as much as sending 8
    # slots each; across nodes the gather's rings use every NIC of the node
    a2a, _ = moe_ep_s(0.0)
    gather, _ = moe_ep_s(1.0)
    assert 0.5 < gather / a2a < 2.0


def test_dispatcher_is_a_validated_plan_field_and_a_flag():
    with pytest.raises(SpecError, match="moe_token_dispatcher"):
        Plan(moe_token_dispatcher="deepep")
    from pyengine.cli import build_parser

    explain = build_parser().commands["explain"]
    args = explain.parse_args(["-m", "x", "-H", "y", "--moe-token-dispatcher", "flex"])
    assert args.moe_token_dispatcher == "flex"


def test_flex_speeds_up_a_cross_node_expert_group_and_explain_says_why():
    plan = Plan(dtype="fp8", global_batch=4096, seq_len=4096, pp=8, dp=32, ep=32, vpp=2,
                recompute="selective", recompute_mlp=True, recompute_mla_up_proj=True)
    a2a = pyengine.evaluate(DSV3, B200, plan)
    flex = pyengine.evaluate(DSV3, B200, plan.with_(moe_token_dispatcher="flex"))
    assert flex.time["ep"] < 0.5 * a2a.time["ep"]
    assert flex.time["compute"] == a2a.time["compute"]
    from pyengine.explain import explain, render_text

    text = render_text(explain(DSV3, B200, plan.with_(moe_token_dispatcher="flex")))
    # the preset routes group-limited (4 of 8 groups): 2.36 of the 3 remote nodes, 2.71
    # were it routed over all
    assert "flex dispatcher" in text and "2.36 of 3 remote NVLink domains" in text


def test_trtllm_moves_tokens_by_allgather_unless_over_mnnvl():
    """TensorRT-LLM 1.0 under attention DP: all-to-all only over MNNVL (GB200 NVL72) with
    EP > top-k, else AllGather + ReduceScatter."""
    qwen, scout = presets.model("qwen3-235b-a22b"), V.validation_model("llama4-scout")
    gb200, h200 = presets.hardware("gb200-nvl72"), presets.hardware("h200")
    assert V.trtllm_moe_dispatcher(qwen, h200, 8) == "allgather"
    assert V.trtllm_moe_dispatcher(qwen, gb200, 8) == "allgather"  # EP 8 = top-8
    assert V.trtllm_moe_dispatcher(scout, gb200, 4) == "alltoall"
    assert V.trtllm_moe_dispatcher(scout, B200, 4) == "allgather"


def test_bridge_deepseek_rows_take_their_recipes_flags():
    row = {"model": "DeepSeekV3", "system": "DGX-B200", "micro_batch_size": 1, "pp": 8,
           "vp": 2, "ep": 32}
    recipe = V.bridge_recipe(row)
    assert recipe["moe_token_dispatcher"] == "flex" and recipe["ep_overlap"]
    assert recipe["recompute_mla_up_proj"] and recipe["recompute_mlp"]
    assert not recipe["recompute_core_attn"]
    assert V.bridge_recipe({**row, "model": "LLAMA3_70B"}) == {}


def routed_remote_domains(domains: int, n: int = 4000, seed: int = 0) -> float:
    """DeepSeek-V3's own routing rule on random scores (Sec. 2.1.2 / its config: 256 experts
    in 8 groups of 32, group score = sum of its top-2 expert scores, the best 4 groups,
    the top 8 experts inside them), the experts' domains counted against a random home
    domain of the token: the expectation remote_domains approximates."""
    import numpy as np

    rng = np.random.default_rng(seed)
    scores = rng.random((n, 256))
    groups = np.sort(scores.reshape(n, 8, 32), axis=2)[:, :, -2:].sum(axis=2)
    chosen = np.zeros((n, 8), dtype=bool)
    np.put_along_axis(chosen, np.argsort(-groups, axis=1)[:, :4], True, axis=1)
    masked = np.where(np.repeat(chosen, 32, axis=1), scores, -1.0)
    experts = np.argsort(-masked, axis=1)[:, :8]
    home = rng.integers(0, domains, n)
    return float(np.mean([len(set(row // (256 // domains)) - {h})
                          for row, h in zip(experts, home)]))


@pytest.mark.parametrize("domains,tol", [(2, 0.03), (4, 0.03), (8, 0.03), (16, 0.08),
                                         (32, 0.08)])
def test_group_limited_routing_follows_deepseek_v3s_rule(domains, tol):
    """[C14] group-limited routing (router_groups 8, router_group_topk 4): against
    DeepSeek-V3's routing rule simulated on random scores, within 3% while whole groups sit
    in each domain (EP 16-64 over 8-GPU nodes: at most 4 nodes a token, 3.5 remote of 7 at
    EP 64 against 4.63 uniform), within 8% when groups span domains."""
    got = R.remote_domains(float(domains), 8.0, 256.0, 8.0, 4.0)
    assert got == pytest.approx(routed_remote_domains(domains), rel=tol)
    assert got <= R.remote_domains(float(domains), 8.0, 256.0, 0.0, 0.0)
    if domains == 8:
        assert got == pytest.approx(3.5, rel=1e-12)  # 8 (1 - C(7,4)/C(8,4)) x 7/8


def test_deepseek_v3_preset_routes_group_limited():
    """The preset carries the released config's n_group 8 / topk_group 4 (the Hugging Face
    import reads them: tests/test_hf_import.py); explain names the limit; EP 64 over 8 B200
    nodes with the flex dispatcher spends less on dispatch than routing over all nodes
    would."""
    from pyengine.explain import explain, render_text

    assert (DSV3.router_groups, DSV3.router_group_topk) == (8, 4)
    plan = Plan(global_batch=512, micro_batch=1, seq_len=4096, pp=8, ep=64, dp=64, tp=1,
                dtype="fp8", moe_token_dispatcher="flex", recompute="full")
    limited = pyengine.evaluate(DSV3, B200, plan)
    uniform = pyengine.evaluate(DSV3.with_(router_groups=0, router_group_topk=0), B200, plan)
    assert 0 < limited.time["ep"] < 0.9 * uniform.time["ep"]
    assert "its experts from 4 of 8 groups" in render_text(explain(DSV3, B200, plan))
    with pytest.raises(SpecError, match="router_group_topk"):
        DSV3.with_(router_group_topk=9)
    with pytest.raises(SpecError, match="router_groups"):
        DSV3.with_(router_groups=7)
