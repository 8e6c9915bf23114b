"""Disaggregated prefill and decode (pyengine.disagg) and `pyengine sweep --layout`: the
pool-ratio arithmetic by hand, KV-transfer bytes, the front against brute force, the
backends alike, constraints, the command line and its plot."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from pareto_oracle import brute_front
from test_sweep import DENSE, GPU, MOE

from pyengine import Space, cli, cli_sweep, presets
from pyengine import schema as S
from pyengine.disagg import (
    MAX_INSTANCES,
    best_ratio,
    compare_fronts,
    disaggregated_front,
    kv_bytes_per_token,
    kv_transfer,
    kv_value_bytes,
    kv_values_per_token,
    pool_spaces,
)
from pyengine.engine import evaluate_batch
from pyengine.errors import SpecError
from pyengine.loaders import spec_to_toml
from pyengine.specs import Plan

# Qwen/Qwen3-30B-A3B config.json (the keys the Hugging Face loader reads; 30.5B total,
# 3.3B active): no Qwen3 MoE preset ships, a config.json is what users hand pyengine.
QWEN3_30B_A3B = {
    "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
    "num_hidden_layers": 48, "hidden_size": 2048, "num_attention_heads": 32,
    "num_key_value_heads": 4, "intermediate_size": 6144, "vocab_size": 151936,
    "head_dim": 128, "num_experts": 128, "num_experts_per_tok": 8,
    "moe_intermediate_size": 768, "decoder_sparse_step": 1, "mlp_only_layers": [],
    "tie_word_embeddings": False,
}


def main(argv, capsys):
    rc = cli.main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def tiny_space(**axes):
    axes = {"tp": [1, 2, 4], "pp": [1, 2], "dp": [1, 2], "micro_batch": [1, 2],
            "global_batch": [1, 2, 4, 8, 16], **axes}
    return Space(mode=["decode"], base=Plan(seq_len=1024, gen_tokens=64), **axes)


# --------------------------------------------------------------------------- pool ratio


def test_ratio_by_hand():
    # a prefill instance: 10 requests/s on 8 GPUs; a decode instance: 2 requests/s on 8
    # GPUs; 100 tokens a request. Balance: b = 5a; a = 1, b = 5 serve 10 requests/s,
    # 1,000 tokens/s on 48 GPUs = 20.83 tokens/s per GPU (a = 2, b = 10 ties on 96: the
    # fewer GPUs win).
    a, b, f = best_ratio(10, 8, 2, 8, 100)
    assert (int(a), int(b)) == (1, 5) and f == pytest.approx(1000 / 48)
    # at most 40 GPUs: a = 1 leaves room for 4 decode instances, 8 requests/s: 800 / 40
    a, b, f = best_ratio(10, 8, 2, 8, 100, gpus_max=40)
    assert (int(a), int(b)) == (1, 4) and f == pytest.approx(20.0)
    # exactly 64 GPUs: (1, 7) 1000/64, (2, 6) min(20, 12) = 12 -> 1200/64, (3, 5) 1000/64
    a, b, f = best_ratio(10, 8, 2, 8, 100, gpus_exact=64)
    assert (int(a), int(b)) == (2, 6) and f == pytest.approx(18.75)
    # at least 1,500 tokens/s = 15 requests/s: a >= 2, b >= 8 -> (2, 10), 2000 / 96
    a, b, f = best_ratio(10, 8, 2, 8, 100, min_tokens_per_s=1500)
    assert (int(a), int(b)) == (2, 10) and f == pytest.approx(2000 / 96)
    # 4 instances at most: a = 1, b = 4 (8 requests/s on 40 GPUs)
    a, b, f = best_ratio(10, 8, 2, 8, 100, max_instances=4)
    assert (int(a), int(b)) == (1, 4) and f == pytest.approx(20.0)
    # nothing fits: 8 + 8 GPUs > 12
    a, b, f = best_ratio(10, 8, 2, 8, 100, gpus_max=12)
    assert (int(a), int(b), float(f)) == (0, 0, 0.0)
    # vectorised: the same answers in one call
    a, b, f = best_ratio([10, 10], [8, 8], [2, 2], [8, 8], 100, gpus_max=40)
    assert a.tolist() == [1, 1] and b.tolist() == [4, 4]


def exhaustive_ratio(r_p, n_p, r_d, n_d, gen, cap, gmax=None, exact=None):
    """(tokens/s per GPU, a, b) of every (a, b) tried: the best, the fewest GPUs on a tie."""
    a, b = (g.reshape(-1).astype(float) for g in np.meshgrid(np.arange(1, cap + 1),
                                                             np.arange(1, cap + 1)))
    g = a * n_p + b * n_d
    f = gen * np.minimum(a * r_p, b * r_d) / g
    ok = np.ones_like(f, dtype=bool)
    if exact:
        ok &= g == exact
    if gmax is not None:
        ok &= g <= gmax
    if not ok.any():
        return (0.0, 0, 0)
    f = np.where(ok, f, -1.0)
    tie = np.flatnonzero(f >= f.max() * (1 - 1e-12))
    k = tie[np.argmin(g[tie])]
    return (float(f[k]), int(a[k]), int(b[k]))


def test_ratio_equals_exhaustive_search():
    rng = np.random.default_rng(7)
    n = 60
    r_p, r_d = rng.uniform(0.1, 20, n), rng.uniform(0.1, 20, n)
    n_p, n_d = rng.choice([1, 2, 4, 8, 16], n), rng.choice([1, 2, 4, 8, 16], n)
    for kw in ({}, {"gmax": 48}, {"exact": 32}):
        a, b, f = best_ratio(r_p, n_p, r_d, n_d, 50.0, gpus_max=kw.get("gmax"),
                             gpus_exact=kw.get("exact"), max_instances=12)
        for i in range(n):
            want = exhaustive_ratio(r_p[i], n_p[i], r_d[i], n_d[i], 50.0, 12, **kw)
            assert f[i] == pytest.approx(want[0], rel=1e-12, abs=0.0)
            if want[0] > 0:  # ties: the fewest GPUs
                g = a[i] * n_p[i] + b[i] * n_d[i]
                assert g <= want[1] * n_p[i] + want[2] * n_d[i]


# --------------------------------------------------------------------------- KV transfer


def test_kv_bytes_per_token():
    llama = presets.model("llama3-70b")
    # 80 layers x 8 KV heads x 128 head dim x (K and V) x 2 B (bf16)
    assert kv_values_per_token(llama) == 8 * 128 * 2
    assert kv_bytes_per_token(llama) == 80 * 8 * 128 * 2 * 2 == 327_680
    assert kv_bytes_per_token(llama, "fp8") == 163_840  # auto: FP8 KV under FP8 weights
    assert kv_bytes_per_token(llama, "fp8", "bf16") == 327_680
    assert kv_value_bytes("nvfp4") == 1.0 and kv_value_bytes("bf16", "fp8") == 1.0
    # DeepSeek-V3 (MLA): the compressed latent 512 + the decoupled RoPE key 64, 61 layers
    ds = presets.model("deepseek-v3")
    assert (ds.kv_lora_rank, ds.rope_head_dim, ds.n_layers) == (512, 64, 61)
    assert kv_bytes_per_token(ds) == 61 * (512 + 64) * 2 == 70_272


def test_kv_transfer_shares_and_time():
    llama, h100 = presets.model("llama3-70b"), presets.hardware("h100-sxm")
    nic = h100.inter_node_bandwidth_bytes_per_s * h100.inter_eff
    t = kv_transfer(llama, h100, 2048, 2.0, {"tp": 8, "cp": 1, "stage_layers": 80},
                    {"tp": 8, "cp": 1, "stage_layers": 80})
    assert t["bytes"] == 2048 * 327_680
    assert t["send_s"] == pytest.approx(2048 * 327_680 / 8 / nic)  # 1/8 per GPU
    assert t["recv_s"] == pytest.approx(t["send_s"])
    assert t["transfer_s"] == pytest.approx(t["send_s"] + h100.inter_node_latency_s)
    # pp 4 and cp 2 split it further; tp 16 > 8 KV heads replicates on the decode side:
    # each decode GPU still receives a whole head (twice its unique share)
    t = kv_transfer(llama, h100, 2048, 2.0, {"tp": 8, "cp": 2, "stage_layers": 20},
                    {"tp": 16, "cp": 1, "stage_layers": 80})
    assert t["send_s"] == pytest.approx(2048 * 327_680 / 8 / 2 / 4 / nic)
    assert t["recv_s"] == pytest.approx(2048 * 327_680 / 8 / nic)
    # MLA: every TP rank keeps the whole latent; the senders split it
    ds = presets.model("deepseek-v3")
    t = kv_transfer(ds, h100, 1000, 2.0, {"tp": 8, "cp": 1, "stage_layers": 61},
                    {"tp": 8, "cp": 1, "stage_layers": 61})
    assert t["send_s"] * 8 == pytest.approx(t["recv_s"]) == pytest.approx(1000 * 70_272 / nic)


# --------------------------------------------------------------------------- library


def front_2d(points: np.ndarray) -> np.ndarray:
    """The distinct non-dominated (max, max) points, by a sort and one sweep (the O(n^2)
    oracle is checked on these in test_front_2d_is_the_oracle)."""
    pts = np.unique(points, axis=0)[::-1]  # by x descending, then y descending
    keep, best = [], -np.inf
    for x, y in pts:
        if y > best:
            keep.append((x, y))
            best = y
    return np.array(keep).reshape(-1, 2)


def test_front_2d_is_the_oracle():
    rng = np.random.default_rng(3)
    pts = rng.integers(0, 20, (300, 2)).astype(float)
    want = np.unique(pts[brute_front(pts, ["max", "max"])], axis=0)
    np.testing.assert_array_equal(np.unique(front_2d(pts), axis=0), want)


def brute_deployments(model, hw, space, cap, gmax=None, exact=None, max_ttft=None):
    """Every feasible prefill x decode pair, every (a, b), by loops: (tokens/s per GPU,
    tokens/s per user, ttft) of each pair's best deployment."""
    pre_space, dec_space = pool_spaces(space)
    out = []
    pools = []
    for sp in (pre_space, dec_space):
        rows = sp.decode(np.arange(len(sp)))
        res = evaluate_batch(model, hw, rows, backend="numba",
                             limits={"gpus_max": exact or gmax or 0})
        ok = np.flatnonzero((res.codes == 0) & (res["dropped_fraction"] == 0))
        pools.append((rows[ok], {c: res[c][ok] for c in S.OUTPUT_NAMES}))
    (pr, po), (dr, do) = pools
    col = S.PLAN_NAMES.index
    nic = hw.inter_node_bandwidth_bytes_per_s * hw.inter_eff
    per_tok = kv_values_per_token(model) * 2.0  # bf16 KV
    for i, j in itertools.product(range(len(pr)), range(len(dr))):
        seq, gen = pr[i, col("seq_len")], dr[j, col("gen_tokens")]
        stage_p = max(po["layers_first_stage"][i], po["layers_middle_stage"][i],
                      po["layers_last_stage"][i])
        stage_d = max(do["layers_first_stage"][j], do["layers_middle_stage"][j],
                      do["layers_last_stage"][j])
        send = seq / pr[i, col("cp")] * stage_p * per_tok / pr[i, col("tp")] / nic
        held = (math.ceil(model.n_kv_heads / dr[j, col("tp")])
                * (model.head_dim + model.v_head_dim) * 2.0)
        recv = seq / dr[j, col("cp")] * stage_d * held / nic
        ttft = po["ttft_s"][i] + pr[i, col("micro_batch")] * max(send, recv) \
            + hw.inter_node_latency_s
        if max_ttft is not None and ttft > max_ttft:
            continue
        r_p = min(pr[i, col("global_batch")] / po["time_step_s"][i], pr[i, col("dp")] / send)
        r_d = min(dr[j, col("global_batch")] / (gen * do["tpot_s"][j]),
                  dr[j, col("dp")] / recv)
        f, _, _ = exhaustive_ratio(r_p, po["n_gpus"][i], r_d, do["n_gpus"][j], gen, cap,
                                   gmax=gmax, exact=exact)
        if f > 0:
            out.append((f, 1.0 / do["tpot_s"][j], ttft))
    return np.array(out).reshape(-1, 3)


# a 2 GB/s NIC: the KV transfer is a large part of TTFT and caps the pools' rates
SLOW_NIC = dataclasses.replace(GPU, name="slow-nic", inter_node_bandwidth_bytes_per_s=2e9)


@pytest.mark.parametrize("kw", [{"gmax": 16}, {"exact": 12}, {"gmax": 16, "max_ttft": 0.05},
                                {"gmax": 16, "max_ttft": 0.3, "hw": SLOW_NIC}])
def test_front_equals_brute_force(kw):
    hw = kw.get("hw", GPU)
    space = tiny_space(micro_batch=[1, 2, 4], global_batch=[1, 4, 8, 16])
    cons = {"gpus_max": kw.get("gmax"), "gpus_exact": kw.get("exact"),
            "max_ttft_s": kw.get("max_ttft")}
    r = disaggregated_front(DENSE, hw, space, constraints=cons, backend="numba",
                            max_instances=6)
    every = brute_deployments(DENSE, hw, space, 6, kw.get("gmax"), kw.get("exact"),
                              kw.get("max_ttft"))
    want = sorted({(round(f, 6), round(u, 6)) for f, u in front_2d(every[:, :2])})
    got = sorted({(round(f, 6), round(u, 6)) for f, u in
                  zip(r.front["tokens_per_s_per_gpu"], r.front["tokens_per_s_per_user"])})
    assert len(want) > 2 and got == want
    # pairing every feasible plan (no pool fronts first) gives the same front, and the
    # same shortest TTFT among deployments that tie (duplicates "first" keeps that one)
    cols = ["tokens_per_s_per_gpu", "tokens_per_s_per_user", "ttft_s", "n_gpus"]
    full = disaggregated_front(DENSE, hw, space, constraints=cons, backend="numba",
                               max_instances=6, prune=False, duplicates="first")
    one = disaggregated_front(DENSE, hw, space, constraints=cons, backend="numba",
                              max_instances=6, duplicates="first")
    assert full.counts["pairs"] > r.counts["pairs"] == one.counts["pairs"]
    assert len(one.front) == len(want) < len(r.front)
    pd.testing.assert_frame_equal(full.front[cols], one.front[cols])


def test_deployment_columns_add_up():
    r = disaggregated_front(DENSE, GPU, tiny_space(), constraints={"gpus_max": 32},
                            backend="numba")
    f = r.front
    assert len(f) > 3 and (f["layout"] == "disagg").all()
    assert (f["n_gpus"] == f["prefill_instances"] * f["prefill_gpus"]
            + f["decode_instances"] * f["decode_gpus"]).all()
    assert (f["n_gpus"] <= 32).all()
    assert (f["prefill_gpus"] == f["prefill_tp"] * f["prefill_cp"] * f["prefill_pp"]
            * f["prefill_dp"]).all()
    np.testing.assert_allclose(f["tokens_per_s_per_user"], 1.0 / f["tpot_s"], rtol=1e-12)
    np.testing.assert_allclose(f["ttft_s"], f["prefill_ttft_s"] + f["kv_transfer_s"],
                               rtol=1e-12)
    np.testing.assert_allclose(f["tokens_per_s_per_gpu"], f["tokens_per_s"] / f["n_gpus"],
                               rtol=1e-12)
    np.testing.assert_allclose(f["tokens_per_s"], f["requests_per_s"] * f["gen_tokens"])
    np.testing.assert_allclose(f["kv_bytes_per_request"],
                               1024 * kv_bytes_per_token(DENSE))
    # one pool is the bottleneck (fully used), the other at most fully used
    both = np.stack([f["prefill_utilization"], f["decode_utilization"]], axis=1)
    assert (both <= 1 + 1e-12).all() and np.allclose(both.max(axis=1), 1.0)
    # best-first; along the front tokens/s per user rises as tokens/s per GPU falls
    assert (np.diff(f["tokens_per_s_per_gpu"]) <= 0).all()
    assert (np.diff(f["tokens_per_s_per_user"]) >= -1e-9).all()
    assert f["kv_transfer_s"].min() > GPU.inter_node_latency_s


def test_numba_and_reference_agree():
    space = tiny_space(tp=[1, 2], global_batch=[1, 4, 16])
    cons = {"gpus_max": 16, "max_ttft_s": 0.2}
    a = disaggregated_front(DENSE, GPU, space, constraints=cons, backend="numba")
    b = disaggregated_front(DENSE, GPU, space, constraints=cons, backend="reference")
    assert a.backend == "numba" and b.backend == "reference"
    assert a.counts == b.counts and len(a.front) > 1
    pd.testing.assert_frame_equal(a.front, b.front, rtol=1e-9)


def test_plan_tables_give_the_same_front_as_the_space():
    space = tiny_space(global_batch=[2, 8])
    pre, dec = pool_spaces(space)
    tables = tuple(pd.DataFrame(sp.columns(np.arange(len(sp)))) for sp in (pre, dec))
    a = disaggregated_front(DENSE, GPU, space, constraints={"gpus_max": 16}, backend="numba")
    b = disaggregated_front(DENSE, GPU, tables, constraints={"gpus_max": 16}, backend="numba")
    pd.testing.assert_frame_equal(a.front, b.front)


def test_constraints_apply_to_the_deployment():
    space = tiny_space()
    free = disaggregated_front(DENSE, GPU, space, constraints={"gpus_max": 32},
                               backend="numba")
    # the limits of one deployment of the free front (the median by tokens/s per GPU): it
    # meets them all, so the constrained front is not empty
    mid = free.front.sort_values("tokens_per_s_per_gpu").iloc[len(free.front) // 2]
    ttft, itl = float(mid["ttft_s"]), float(mid["tpot_s"])
    per_gpu, total = float(mid["tokens_per_s_per_gpu"]), float(mid["tokens_per_s"])
    r = disaggregated_front(DENSE, GPU, space, backend="numba", constraints={
        "gpus_max": 32, "max_ttft_s": ttft, "max_itl_s": itl,
        "min_tokens_per_s_per_gpu": per_gpu, "min_tokens_per_s": total})
    f = r.front
    assert len(f) and (f["ttft_s"] <= ttft).all() and (f["tpot_s"] <= itl).all()
    assert (f["tokens_per_s_per_gpu"] >= per_gpu).all() and (f["tokens_per_s"] >= total).all()
    assert r.counts["deployments"] < free.counts["deployments"]
    assert r.constraints["max_tpot_s"] == itl  # max_itl_s is max_tpot_s
    exact = disaggregated_front(DENSE, GPU, space, constraints={"gpus_exact": 24},
                                backend="numba")
    assert len(exact.front) and (exact.front["n_gpus"] == 24).all()
    # a MoE model: capacity-dropping plans are out by default
    moe = disaggregated_front(MOE, GPU, tiny_space(ep=[1, 2], capacity_factor=[0.5, 1.0]),
                              constraints={"gpus_max": 16}, backend="numba")
    assert len(moe.front)


@pytest.mark.parametrize("kw,word", [
    ({"constraints": {"max_bogus": 1}}, "constraint"),
    ({"constraints": {"max_ttft_s": -1}}, "max_ttft_s"),
    ({"constraints": {"min_tokens_per_s": math.inf}}, "min_tokens_per_s"),
    ({"max_instances": 0}, "max_instances"),
    ({"duplicates": "some"}, "duplicates"),
])
def test_bad_arguments(kw, word):
    with pytest.raises(SpecError, match=word):
        disaggregated_front(DENSE, GPU, tiny_space(), backend="numba", **kw)


def test_space_must_be_a_serving_space():
    with pytest.raises(SpecError, match="decode"):
        disaggregated_front(DENSE, GPU, Space(tp=[1, 2]), backend="numba")
    with pytest.raises(SpecError, match="pair"):
        disaggregated_front(DENSE, GPU, 3, backend="numba")


def test_compare_fronts_reads_the_staircases():
    agg = pd.DataFrame({"tokens_per_s_per_gpu": [300.0, 200.0, 50.0],
                        "tokens_per_s_per_user": [10.0, 40.0, 90.0]})
    dis = pd.DataFrame({"tokens_per_s_per_gpu": [400.0, 100.0],
                        "tokens_per_s_per_user": [30.0, 60.0]})
    rows = {r["tokens_per_s_per_user"]: r for r in compare_fronts({"agg": agg, "disagg": dis})}
    assert rows[5.0]["agg"] == 300 and rows[5.0]["disagg"] == 400
    assert rows[50.0]["agg"] == 50 and rows[50.0]["disagg"] == 100
    assert rows[75.0]["disagg"] == 0.0 and 100.0 not in rows


# --------------------------------------------------------------------------- command line


LLAMA_AXES = ["--max-gpus", "32", "--mode", "serve", "--seq-len", "2048", "--gen-tokens",
              "256", "--tp", "2,4,8", "--cp", "1", "--pp", "1,2", "--dp", "1,2",
              "--micro-batch", "1", "--global-batch", "1,8,32,128"]


@pytest.fixture(scope="module")
def qwen3(tmp_path_factory):
    path = tmp_path_factory.mktemp("qwen3") / "config.json"
    path.write_text(json.dumps(QWEN3_30B_A3B))
    return str(path)


@pytest.mark.parametrize("target", ["llama3-70b/h100-sxm", "qwen3/h200"])
def test_layout_both_on_presets(capsys, tmp_path, qwen3, target):
    pytest.importorskip("matplotlib")
    name, hw = target.split("/")
    model = qwen3 if name == "qwen3" else name
    extra = ["--ep", "1,2,8"] if name == "qwen3" else []
    plot, out = tmp_path / "layouts.png", tmp_path / "front.csv"
    rc, stdout, err = main(["sweep", "-m", model, "-H", hw, *LLAMA_AXES, *extra,
                            "--backend", "numba", "--layout", "both", "--json",
                            "--plot", str(plot), "--out", str(out)], capsys)
    assert rc == 0, err
    d = json.loads(stdout)
    assert d["layout"] == "both" and plot.stat().st_size > 10_000
    front = pd.DataFrame(d["front"])
    assert set(front["layout"]) == {"agg", "disagg"}
    assert (front["n_gpus"] <= 32).all() and (front["tokens_per_s_per_user"] > 0).all()
    dis = front[front["layout"] == "disagg"]
    assert (dis["prefill_instances"] >= 1).all() and (dis["decode_instances"] >= 1).all()
    assert d["disagg"]["counts"]["front"] == len(dis)
    assert d["side_by_side"] and {"agg", "disagg"} <= set(d["side_by_side"][0])
    saved = pd.read_csv(out)
    assert list(saved["layout"].unique()) == ["agg", "disagg"] and len(saved) == len(front)
    if name == "qwen3":
        assert d["model"] == "qwen3_moe" and (dis["decode_ep"] >= 1).all()


def test_layout_printed_and_limited(capsys):
    argv = ["sweep", "-m", "llama3-70b", "-H", "h100-sxm", *LLAMA_AXES, "--backend", "numba",
            "--layout", "both", "--max-ttft-ms", "1500", "--max-itl-ms", "40",
            "--max-instances", "8", "--front-rows", "5"]
    rc, out, err = main(argv, capsys)
    assert rc == 0, err
    assert "aggregated (prefill and decode on the same GPUs):" in out
    assert "disaggregated front:" in out and "KV ms" in out and "ITL ms" in out
    assert "at most 8 instances of each pool" in out and "side by side" in out
    rc, js, _ = main([*argv, "--json"], capsys)
    d = json.loads(js)
    front = pd.DataFrame(d["front"])
    assert (front["ttft_s"] <= 1.5).all() and (front["tpot_s"] <= 0.04).all()
    dis = front[front["layout"] == "disagg"]
    assert len(dis) and (dis[["prefill_instances", "decode_instances"]] <= 8).all().all()
    assert d["disagg"]["constraints"]["max_ttft_s"] == 1.5
    # disagg alone: only its front, no aggregated sweep
    rc, js, _ = main([a if a != "both" else "disagg" for a in argv] + ["--json"], capsys)
    d = json.loads(js)
    assert d["layout"] == "disagg" and {r["layout"] for r in d["front"]} == {"disagg"}
    assert "top" not in d


def test_layout_agg_is_the_default_and_unchanged(capsys):
    base = ["sweep", "-m", "llama3-70b", "-H", "h100-sxm", *LLAMA_AXES, "--backend", "numba",
            "--json"]
    rc, a, _ = main(base, capsys)
    rc2, b, _ = main([*base, "--layout", "agg"], capsys)
    a, b = json.loads(a), json.loads(b)
    for d in (a, b):
        del d["elapsed_s"], d["plans_per_s"]
    assert rc == rc2 == 0 and a == b
    assert "layout" not in a and "layout" not in a["front"][0]


@pytest.mark.parametrize("argv,flag,words", [
    (["--layout", "disagg"], "--layout", ["--mode serve", "train"]),
    (["--mode", "prefill", "--layout", "both"], "--layout", ["--mode serve", "prefill"]),
    (["--mode", "serve", "--max-instances", "4"], "--max-instances", ["--layout"]),
    (["--mode", "serve", "--layout", "both", "--scheduler", "tcp://x:1"], "--scheduler",
     ["--layout agg"]),
    (["--mode", "serve", "--layout", "disagg", "--objective", "ttft_s:min"], "--objective",
     ["--layout agg"]),
    (["--mode", "serve", "--layout", "disagg", "--sort-by", "ttft_s"], "--sort-by",
     ["--layout agg"]),
    (["--mode", "serve", "--layout", "split"], "--layout", ["agg", "disagg", "both"]),
    (["--mode", "serve", "--layout", "both", "--max-instances", "0"], "--max-instances", []),
])
def test_bad_layout_options_are_one_line(capsys, argv, flag, words):
    rc, out, err = main(["sweep", "-m", "llama3-8b", "-H", "h100-sxm", "--gpus", "8",
                         "--tp", "1,2", "--backend", "numba", *argv], capsys)
    assert rc == 2 and out == "" and err.count("\n") == 1, err
    assert flag in err
    for w in words:
        assert w in err


def test_help_names_the_layouts(capsys):
    rc, out, _ = main(["sweep", "--help"], capsys)
    text = " ".join(out.split())
    assert rc == 0 and "--layout {agg,disagg,both}" in text and "--max-instances" in text
    assert "KV cache sent" in text and "--layout both" in text  # the group text, an example
    assert cli_sweep.MAX_INSTANCES == MAX_INSTANCES


def test_plot_layouts_colours_and_legend():
    pytest.importorskip("matplotlib")
    from pyengine.plot import plot_layouts

    agg = pd.DataFrame({"tokens_per_s_per_gpu": [300.0, 200.0],
                        "tokens_per_s_per_user": [10.0, 40.0]})
    dis = pd.DataFrame({"tokens_per_s_per_gpu": [400.0, 100.0],
                        "tokens_per_s_per_user": [30.0, 60.0]})
    fig = plot_layouts({"agg": agg, "disagg": dis}, title="t")
    ax = fig.axes[0]
    assert "per user" in ax.get_xlabel() and "per GPU" in ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(lb.startswith("aggregated") for lb in labels)
    assert any(lb.startswith("disaggregated") for lb in labels)
    colours = {tuple(c.get_facecolor()[0]) for c in ax.collections}
    assert len(colours) == 2
    assert len(ax.get_lines()) == 2  # a staircase each
    # an empty front still gets its legend entry
    fig = plot_layouts({"agg": agg, "disagg": dis.iloc[:0]})
    assert any("none feasible" in t.get_text() for t in fig.axes[0].get_legend().get_texts())


def test_spec_files_work_too(tmp_path, capsys):
    m, h = tmp_path / "m.toml", tmp_path / "h.toml"
    m.write_text(spec_to_toml(DENSE))
    h.write_text(spec_to_toml(GPU))
    rc, out, err = main(["sweep", "-m", str(m), "-H", str(h), "--max-gpus", "8", "--mode",
                         "serve", "--seq-len", "1024", "--gen-tokens", "64", "--cp", "1",
                         "--pp", "1,2", "--backend", "numba", "--layout", "disagg", "--json"],
                        capsys)
    assert rc == 0, err
    assert len(json.loads(out)["front"]) > 1
