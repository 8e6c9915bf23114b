"""Sweeps: equal to brute force over every plan; counts, constraints, top-k, files, memory."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from pareto_oracle import brute_front, first_of_duplicates

from pyengine import schema as S
from pyengine.engine import evaluate_space
from pyengine.errors import SpecError
from pyengine.space import Space
from pyengine.specs import Hardware, Limits, Model, Plan
from pyengine.sweep import (
    DEFAULT_OBJECTIVES,
    parse_constraints,
    parse_objectives,
    sweep,
    sweep_range,
)

BACKEND = "numba"

MOE = Model(name="tiny-moe", n_layers=8, hidden=1024, n_heads=16, n_kv_heads=4,
            ffn_hidden=2816, vocab=32000, gated_mlp=True, n_experts=8, top_k=2,
            expert_ffn_hidden=1408)
DENSE = Model(name="tiny-dense", n_layers=12, hidden=2048, n_heads=16, n_kv_heads=4,
              ffn_hidden=5632, vocab=32000, gated_mlp=True)
GPU = Hardware(name="test-gpu", peak_bf16_flops_per_s=989e12, hbm_capacity_bytes=16e9,
               hbm_bandwidth_bytes_per_s=3.35e12, gpus_per_node=8,
               intra_node_bandwidth_bytes_per_s=450e9, inter_node_bandwidth_bytes_per_s=50e9)


def moe_space(limits=None):
    return Space(tp=[1, 2, 4], pp=[1, 2, 4], dp=[1, 2, 3, 4], cp=[1, 2], ep=[1, 2, 4],
                 micro_batch=[1, 2], recompute=["none", "full"],
                 capacity_factor=[0.5, 1.0, 1.25], base=Plan(global_batch=16, seq_len=2048),
                 limits=limits)


def oracle(model, space, objectives=DEFAULT_OBJECTIVES, constraints=None, top_k=20,
           sort_by=None, duplicates="all"):
    """Every plan evaluated at once, then the definitions applied directly."""
    limits, bounds = parse_constraints(constraints, space.limits)
    full = Space(limits=limits, base=space.base, **{n: space.axes[n] for n in space.varying})
    res = evaluate_space(model, GPU, full, backend=BACKEND)
    codes = res.codes
    ok = codes == 0
    feasible = ok.copy()
    reasons = {name: int(np.count_nonzero(codes & (1 << i)))
               for i, name in enumerate(S.VIOLATION_NAMES)}
    for b in bounds:
        v = res[b.column]
        bad = ok & ~((v >= b.value) if b.kind == "min" else (v <= b.value))
        reasons[b.reason] = int(bad.sum())
        feasible &= ~bad
    pos = np.flatnonzero(feasible)
    values = np.stack([res[c][pos] for c, _ in objectives], axis=1)
    front = brute_front(values, [s for _, s in objectives])
    if duplicates == "first":
        front = first_of_duplicates(values, front)
    col, sense = sort_by or objectives[0]
    key = res[col][pos] * (1.0 if sense == "min" else -1.0)
    top = pos[np.lexsort((pos, key))][:top_k]
    return {"front": pos[front], "top": top, "feasible": int(feasible.sum()),
            "reasons": reasons, "block": res.block}


def test_sweep_equals_brute_force_over_every_plan():
    space = moe_space()
    r = sweep(MOE, GPU, space, backend=BACKEND, chunk_size=333, top_k=15)
    o = oracle(MOE, space, top_k=15)
    assert r.counts["evaluated"] == len(space) == 2592
    assert r.counts["feasible"] == o["feasible"] > 20
    assert r.counts["by_reason"] == o["reasons"]
    np.testing.assert_array_equal(r.front_index, o["front"])
    np.testing.assert_array_equal(r.top["index"], o["top"])
    # every output column of the front rows is the evaluated value, bit for bit
    idx = r.front["index"].to_numpy()
    for j, name in enumerate(S.OUTPUT_NAMES):
        np.testing.assert_array_equal(r.front[name].to_numpy(), o["block"][j, idx])
    assert (r.front["violations"] == 0).all()
    # plan columns decoded to human values
    plan = space.plan(int(idx[0]))
    row = r.front.iloc[0]
    for name in S.PLAN_NAMES:
        assert row[name] == getattr(plan, name)
    assert set(r.front["recompute"]) <= {"none", "full"}
    # front ordered best-first by the sort objective
    assert (np.diff(r.front["tokens_per_s_per_gpu"].to_numpy()) <= 0).all()


@pytest.mark.parametrize("objectives,sort_by", [
    (["time_step_s:min", "mfu:max"], "mfu"),
    ({"tokens_per_s": "max", "mem_total_bytes": "min", "n_gpus": "min",
      "time_ep_s": "min", "dropped_fraction": "min"}, "mem_total_bytes:min"),
])
def test_other_objectives_and_sort_keys(objectives, sort_by):
    space = moe_space()
    constraints = {"max_dropped_fraction": None, "min_mfu": 0.01}
    r = sweep(MOE, GPU, space, objectives=objectives, constraints=constraints,
              backend=BACKEND, chunk_size=1000, top_k=7, sort_by=sort_by)
    objs = parse_objectives(objectives)
    col, _, sense = sort_by.partition(":")
    o = oracle(MOE, space, objs, constraints, top_k=7, sort_by=(col, sense or dict(objs)[col]))
    np.testing.assert_array_equal(r.front_index, o["front"])
    np.testing.assert_array_equal(r.top["index"], o["top"])
    assert r.counts["by_reason"]["MIN_MFU"] == o["reasons"]["MIN_MFU"]


def test_results_do_not_depend_on_chunking_or_duplicates_mode():
    space = moe_space()
    runs = [sweep(MOE, GPU, space, backend=BACKEND, chunk_size=c, top_k=10, sample_size=50)
            for c in (1, 97, 4096)]
    for r in runs[1:]:
        assert r.counts == runs[0].counts
        pd.testing.assert_frame_equal(r.front, runs[0].front)
        pd.testing.assert_frame_equal(r.top, runs[0].top)
        pd.testing.assert_frame_equal(r.sample, runs[0].sample)
    first = sweep(MOE, GPU, space, backend=BACKEND, chunk_size=97, duplicates="first")
    o = oracle(MOE, space, duplicates="first")
    np.testing.assert_array_equal(first.front_index, o["front"])
    assert len(first.front) <= len(runs[0].front)


@pytest.mark.parametrize("backend", ["native", "reference", "evaluate-and-compact"])
def test_every_sweep_path_gives_the_same_result(backend, monkeypatch):
    """native and the reference loop (their own sweep kernels), and the path a backend
    without one takes (CuPy: evaluate the chunk in full, compact it), equal numba's."""
    from pyengine import backends

    space = moe_space()
    kwargs = dict(chunk_size=500, top_k=10, sample_size=50,
                  constraints={"max_dropped_fraction": 0.1, "min_mfu": 0.02})
    want = sweep(MOE, GPU, space, backend=BACKEND, **kwargs)
    if backend == "evaluate-and-compact":
        numba = backends.get("numba")
        monkeypatch.delattr(numba, "sweep_space")
        backend = "numba"
    elif backends.why_unavailable(backend):
        pytest.skip(backends.why_unavailable(backend))
    got = sweep(MOE, GPU, space, backend=backend, **kwargs)
    assert got.counts == want.counts and got.counts["feasible"] > 0
    for table in ("front", "top", "sample"):
        pd.testing.assert_frame_equal(getattr(got, table), getattr(want, table),
                                      check_exact=False, rtol=1e-9)


def test_auto_backend_sweeps_and_fills_the_kept_rows():
    """backend="auto" (what the CLI passes) resolves for the final rows too."""
    space = moe_space()
    r = sweep(MOE, GPU, space, backend="auto", top_k=5)
    want = sweep(MOE, GPU, space, backend=BACKEND, top_k=5)
    assert r.counts == want.counts and len(r.front) > 0
    np.testing.assert_array_equal(r.front_index, want.front_index)
    np.testing.assert_allclose(r.top["tokens_per_s_per_gpu"], want.top["tokens_per_s_per_gpu"],
                               rtol=1e-9)


def test_a_slice_of_the_space():
    space = moe_space()
    r = sweep(MOE, GPU, space, backend=BACKEND, chunk_size=100, start=500, stop=1700)
    res = evaluate_space(MOE, GPU, space, 500, 1700, backend=BACKEND)
    ok = (res.codes == 0) & (res["dropped_fraction"] <= 0)
    pos = np.flatnonzero(ok)
    values = np.stack([res[c][pos] for c, _ in DEFAULT_OBJECTIVES], axis=1)
    expected = 500 + pos[brute_front(values, [s for _, s in DEFAULT_OBJECTIVES])]
    assert r.counts["evaluated"] == 1200 and r.counts["feasible"] == ok.sum()
    np.testing.assert_array_equal(r.front_index, expected)
    assert r.to_dict()["start"] == 500 and r.to_dict()["stop"] == 1700
    with pytest.raises(SpecError, match="start"):
        sweep(MOE, GPU, space, start=10, stop=5)


def median_feasible(model, space, column, mode=None):
    """A threshold that binds whatever the cost model's current numbers are."""
    res = evaluate_space(model, GPU, space, backend=BACKEND)
    ok = res.codes == 0
    if mode is not None:
        ok &= space.decode(np.arange(len(space)))[:, S.PLAN_NAMES.index("mode")] == mode
    return float(np.median(res[column][ok]))


def test_counts_add_up_and_every_infeasible_plan_has_a_reason():
    space = moe_space()
    floor = median_feasible(MOE, space, "tokens_per_s")
    r = sweep(MOE, GPU, space, backend=BACKEND, constraints={"min_tokens_per_s": floor})
    c = r.counts
    assert c["feasible"] + c["infeasible"] == c["evaluated"]
    assert sum(c["by_reason"].values()) >= c["infeasible"]
    assert set(c["by_reason"]) == set(S.VIOLATION_NAMES) | {"MAX_DROPPED_FRACTION",
                                                            "MIN_TOKENS_PER_S"}
    assert c["by_reason"]["MAX_DROPPED_FRACTION"] > 0  # cf 0.5 drops tokens
    assert c["by_reason"]["MIN_TOKENS_PER_S"] > 0
    assert (r.front["tokens_per_s"] >= floor).all()
    assert (r.top["dropped_fraction"] == 0).all()


def test_constraints_reach_the_kernel_and_the_outputs():
    space = moe_space()
    exact = sweep(MOE, GPU, space, backend=BACKEND, constraints={"gpus": 8})
    assert (exact.front["n_gpus"] == 8).all() and (exact.top["n_gpus"] == 8).all()
    assert exact.counts["by_reason"]["GPUS_EXACT"] > 0
    cap = sweep(MOE, GPU, space, backend=BACKEND, constraints={"max_gpus": 4})
    assert cap.front["n_gpus"].max() <= 4 and cap.counts["by_reason"]["GPUS_MAX"] > 0
    loose = sweep(MOE, GPU, space, backend=BACKEND)
    tight = sweep(MOE, GPU, space, backend=BACKEND, constraints={"mem_headroom": 0.5})
    assert tight.counts["by_reason"]["MEMORY"] > loose.counts["by_reason"]["MEMORY"]
    assert (tight.front["mem_total_bytes"] <= 0.5 * GPU.hbm_capacity_bytes).all()
    assert tight.limits.mem_fraction == 0.5
    drops = sweep(MOE, GPU, space, backend=BACKEND, constraints={"max_dropped_fraction": None})
    assert drops.counts["feasible"] > loose.counts["feasible"]
    assert "MAX_DROPPED_FRACTION" not in drops.counts["by_reason"]
    # the space's own limits are the starting point; the caller's space is not changed
    own = moe_space(Limits(gpus_max=2))
    r = sweep(MOE, GPU, own, backend=BACKEND)
    assert r.front["n_gpus"].max() <= 2 and own.limits == Limits(gpus_max=2)


def test_inference_constraints():
    space = Space(mode=["prefill", "decode"], tp=[1, 2, 4], dp=[1, 2, 4], micro_batch=[1, 4],
                  base=Plan(global_batch=16, seq_len=1024, gen_tokens=64))
    constraints = {"max_tpot_s": median_feasible(DENSE, space, "tpot_s", mode=2),
                   "max_ttft_s": median_feasible(DENSE, space, "ttft_s")}
    r = sweep(DENSE, GPU, space, backend=BACKEND, constraints=constraints,
              objectives=["tokens_per_s:max", "ttft_s:min"], top_k=5)
    o = oracle(DENSE, space, parse_objectives(["tokens_per_s:max", "ttft_s:min"]),
               constraints, top_k=5)
    np.testing.assert_array_equal(r.front_index, o["front"])
    assert r.counts["by_reason"]["MAX_TPOT_S"] == o["reasons"]["MAX_TPOT_S"] > 0
    assert r.counts["by_reason"]["MAX_TTFT_S"] == o["reasons"]["MAX_TTFT_S"] > 0
    assert (r.front["tpot_s"] <= constraints["max_tpot_s"]).all()
    assert (r.front["ttft_s"] <= constraints["max_ttft_s"]).all()


def test_bad_options_are_named():
    space = moe_space()
    with pytest.raises(SpecError, match="objective"):
        sweep(MOE, GPU, space, objectives=["speed:max"])
    with pytest.raises(SpecError, match="min' or 'max"):
        sweep(MOE, GPU, space, objectives=[("mfu", "up")])
    with pytest.raises(SpecError, match="constraint"):
        sweep(MOE, GPU, space, constraints={"fastest": 1})
    with pytest.raises(SpecError, match="mem_fraction"):
        sweep(MOE, GPU, space, constraints={"mem_fraction": 1.5})
    with pytest.raises(SpecError, match="top_k"):
        sweep(MOE, GPU, space, top_k=-1)
    with pytest.raises(SpecError, match="chunk_size"):
        sweep(MOE, GPU, space, chunk_size=0)


def test_no_feasible_plan_gives_empty_tables():
    space = Space(tp=[3, 5], base=Plan(global_batch=8))  # tp must divide 16 heads
    r = sweep(MOE, GPU, space, backend=BACKEND)
    assert r.counts["feasible"] == 0 and r.counts["by_reason"]["TP_HEADS"] == 2
    assert len(r.front) == len(r.top) == len(r.sample) == 0
    assert list(r.front.columns) == list(r.top.columns)
    json.loads(r.to_json())


def test_save_parquet_csv_json(tmp_path):
    r = sweep(MOE, GPU, moe_space(), backend=BACKEND, top_k=5)
    pq = pd.read_parquet(r.save(tmp_path / "front.parquet"))
    pd.testing.assert_frame_equal(pq, r.front)
    table = r.to_arrow()
    assert table.schema.field("mem_total_bytes").metadata[b"unit"] == b"B"
    summary = json.loads(table.schema.metadata[b"pyengine"])
    assert summary["counts"] == r.counts
    csv = pd.read_csv(r.save(tmp_path / "front.csv"))
    np.testing.assert_array_equal(csv["index"], r.front["index"])
    np.testing.assert_array_equal(csv["tokens_per_s_per_gpu"], r.front["tokens_per_s_per_gpu"])
    assert list(csv["recompute"]) == list(r.front["recompute"])
    d = json.loads(r.save(tmp_path / "sweep.json").read_text())
    assert d["counts"] == r.counts
    assert [row["index"] for row in d["front"]] == r.front["index"].tolist()
    assert [row["index"] for row in d["top"]] == r.top["index"].tolist()
    assert d["objectives"][0] == {"column": "tokens_per_s_per_gpu", "sense": "max"}
    assert d["front"][0]["recompute"] in ("none", "full")
    r.save(tmp_path / "top.csv", which="top")
    with pytest.raises(SpecError, match="parquet"):
        r.save(tmp_path / "front.xlsx")


def test_plot_writes_a_png(tmp_path):
    from pyengine.plot import plot_front

    r = sweep(MOE, GPU, moe_space(), backend=BACKEND, sample_size=300)
    fig = plot_front(r, tmp_path / "front.png")
    assert (tmp_path / "front.png").stat().st_size > 10_000
    labels = [ax.get_xlabel() for ax in fig.axes]
    assert any("GPUs" in s for s in labels) and any("GiB" in s for s in labels)
    assert "tokens/s per GPU" in fig.axes[0].get_ylabel()


def big_space(n_dp):
    return Space(tp=[1, 2, 4, 8], pp=[1, 2, 4, 8], dp=list(range(1, n_dp + 1)), cp=[1, 2],
                 micro_batch=[1, 2, 4, 8], recompute=["none", "selective", "full"],
                 zero=[0, 1, 2, 3], seq_len=[2048, 4096], base=Plan(global_batch=512))


def _peak(space, chunk):
    tracemalloc.start()
    try:
        r = sweep(DENSE, GPU, space, backend=BACKEND, chunk_size=chunk, top_k=20,
                  sample_size=100)
        return tracemalloc.get_traced_memory()[1], r
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_space():
    chunk = 8192
    sweep(DENSE, GPU, big_space(2), backend=BACKEND, chunk_size=chunk)  # warm caches
    small_peak, small = _peak(big_space(32), chunk)  # 98k plans
    large_peak, large = _peak(big_space(256), chunk)  # 786k plans
    assert large.counts["evaluated"] == 8 * small.counts["evaluated"] == 786_432
    proportional = large.counts["evaluated"] * S.N_OUTPUTS * 8
    assert large_peak < proportional / 10
    assert large_peak < 2 * small_peak + (4 << 20)


def test_ten_billion_plan_space_is_addressed_without_materialising():
    axes = {"dp": list(range(1, 101)), "micro_batch": list(range(1, 101)),
            "seq_len": [1024 * i for i in range(1, 101)], "global_batch": list(range(1, 101)),
            "tp": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512], "pp": list(range(1, 11))}
    space = Space(**axes)
    assert len(space) == 10**9 * 10
    from pyengine.sweep import _Config

    cfg = _Config(DEFAULT_OBJECTIVES, (), DEFAULT_OBJECTIVES[0], 5, 10, "all", BACKEND, 4096)
    tracemalloc.start()
    part = sweep_range(DENSE, GPU, space, len(space) - 20_000, len(space), cfg)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert part.evaluated == 20_000 and peak < 64 << 20
    assert (part.top_index >= len(space) - 20_000).all()


def _cupy():
    try:
        import cupy

        from pyengine import backends

        if backends.why_unavailable("cupy") is None and cupy.cuda.runtime.getDeviceCount():
            return cupy
    except Exception:
        pass
    return None


@pytest.mark.gpu
@pytest.mark.skipif(_cupy() is None, reason="needs CuPy, a CUDA device and the cupy backend")
def test_cupy_sweep_matches_cpu():
    space = moe_space()
    cpu = sweep(MOE, GPU, space, backend=BACKEND, chunk_size=500, sample_size=50)
    gpu = sweep(MOE, GPU, space, backend="cupy", chunk_size=500, sample_size=50)
    assert gpu.backend == "cupy" and gpu.counts == cpu.counts
    np.testing.assert_array_equal(gpu.front_index, cpu.front_index)
    np.testing.assert_array_equal(gpu.top["index"], cpu.top["index"])
    np.testing.assert_array_equal(gpu.sample["index"], cpu.sample["index"])
    np.testing.assert_allclose(gpu.front["tokens_per_s_per_gpu"],
                               cpu.front["tokens_per_s_per_gpu"], rtol=1e-9)
