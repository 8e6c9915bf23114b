"""`pyengine bench` runs from the installed package and reports plans/s per backend."""

from __future__ import annotations

import json

from pyengine.bench import standard_spaces
from pyengine.cli import main


def test_standard_space_is_at_least_ten_million_plans():
    sizes = [len(w.space) for w in standard_spaces()]
    assert sum(sizes) >= 10_000_000
    for w in standard_spaces():
        assert w.space.limits.gpus_max == 16384


def test_bench_json(capsys, tmp_path):
    out = tmp_path / "bench.json"
    rc = main(["bench", "--backend", "numba", "--backend", "reference", "--plans", "20000",
               "--reference-plans", "400", "--repeat", "1", "--batch-plans", "30000", "--json",
               "--out", str(out)])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == d
    assert d["machine"]["cpu_count"] >= 1
    for name in ("numba", "reference"):
        for mode in ("evaluate", "count"):
            r = d["backends"][name][mode]
            assert r["plans_per_s"] > 0 and r["plans"] > 0
    assert d["backends"]["numba"]["evaluate"]["speedup_vs_reference"] > 1
    batch = d["backends"]["numba"]["batch"]
    assert batch["plans"] == 30000 and batch["batch_shuffled_plans_per_s"] > 0
    assert "batch" not in d["backends"]["reference"]
    # both workloads report the same feasible count on every backend they share
    ev = d["backends"]["numba"]["evaluate"]["workloads"]
    co = d["backends"]["numba"]["count"]["workloads"]
    for w in ev:
        assert ev[w]["feasible"] == co[w]["feasible"]
