"""`pyengine sweep` through its own argparse: flags, default axes, output, files."""

from __future__ import annotations

import argparse
import io
import json

import pandas as pd
import pytest
from test_sweep import GPU, MOE

from pyengine import cli_sweep
from pyengine import schema as S
from pyengine.errors import SpecError
from pyengine.loaders import spec_to_toml
from pyengine.sweep import _axis_values as axis_values
from pyengine.sweep import sweep


@pytest.fixture
def files(tmp_path):
    model = tmp_path / "tiny-moe.toml"
    model.write_text(spec_to_toml(MOE))
    hw = tmp_path / "gpu.toml"
    hw.write_text(spec_to_toml(GPU))
    return str(model), str(hw)


def parse(argv):
    parser = argparse.ArgumentParser(prog="pyengine")
    sub = parser.add_subparsers(dest="command")
    cli_sweep.add_parser(sub)
    return parser.parse_args(argv)


def run(argv, capsys):
    args = parse(argv)
    rc = args.func(args)
    return rc, capsys.readouterr()


BASE = ["--backend", "numba", "--global-batch", "16", "--seq-len", "2048"]


def test_table_output_with_units(files, capsys):
    m, h = files
    rc, out = run(["sweep", "-m", m, "-H", h, "--max-gpus", "8", *BASE, "--top", "5"], capsys)
    assert rc == 0
    text = out.out
    for word in ("tok/s/GPU", "GPUs", "mem GiB", "step s", "MFU %", "Pareto front",
                 "infeasible by reason", "GPUS_MAX", "best 5 plans"):
        assert word in text
    assert out.err == ""  # no progress bar when stderr is not a terminal


def test_default_backend(files, capsys):
    """No --backend: the best one here (what a user types first)."""
    m, h = files
    rc, out = run(["sweep", "-m", m, "-H", h, "--max-gpus", "8", "--global-batch", "16",
                   "--seq-len", "2048", "--top", "3", "--json"], capsys)
    assert rc == 0
    body = json.loads(out.out)
    assert body["counts"]["feasible"] > 0 and len(body["top"]) == 3
    assert body["backend"] in ("cupy", "native", "numba")


def test_json_output_and_files(files, capsys, tmp_path):
    m, h = files
    out_file = tmp_path / "front.parquet"
    plot = tmp_path / "front.png"
    argv = ["sweep", "-m", m, "-H", h, "--gpus", "8", *BASE, "--json", "--out", str(out_file),
            "--plot", str(plot), "--objective", "tokens_per_s_per_gpu:max",
            "--objective", "mem_total_bytes:min", "--mem-headroom", "0.9", "--max-dropped",
            "0.05", "--tp", "1,2,4,8", "--recompute", "none,full", "--capacity-factor",
            "0.5,1,1.25", "--sequence-parallel", "on,off", "--top", "3"]
    rc, out = run(argv, capsys)
    assert rc == 0
    d = json.loads(out.out)
    assert d["limits"]["gpus_exact"] == 8 and d["limits"]["mem_fraction"] == 0.9
    assert {"column": "dropped_fraction", "kind": "max", "value": 0.05} in d["constraints"]
    assert [o["column"] for o in d["objectives"]] == ["tokens_per_s_per_gpu", "mem_total_bytes"]
    assert all(row["n_gpus"] == 8 for row in d["front"]) and len(d["top"]) <= 3
    assert d["axes"]["recompute"] == ["none", "full"]
    assert d["axes"]["sequence_parallel"] == [True, False]
    front = pd.read_parquet(out_file)
    assert front["index"].tolist() == [row["index"] for row in d["front"]]
    assert plot.stat().st_size > 10_000
    # the same sweep through the API gives the same front
    args = parse(argv)
    space, budget = cli_sweep.build_space(args, MOE, GPU)
    api = sweep(MOE, GPU, space, objectives=args.objective, backend="numba",
                constraints=cli_sweep.constraints_of(args, budget))
    assert sorted(api.front["index"]) == sorted(front["index"])


def test_default_axes_fit_the_budget():
    exact = cli_sweep.default_axes(MOE, GPU, 24, True, {"global_batch": [48]})
    assert exact["tp"] == [1, 2, 4, 8] and exact["pp"] == [1, 2, 3, 4, 6, 8]
    assert exact["dp"] == [1, 2, 3, 4, 6, 8, 12, 24] and exact["cp"] == [1, 2, 4, 8]
    assert exact["ep"] == [1, 2, 4, 8] and exact["recompute"] == ["none", "selective", "full"]
    assert exact["micro_batch"] == [1, 2, 4] and exact["zero"] == [1]
    most = cli_sweep.default_axes(MOE, GPU, 40, False, {"global_batch": [128]})
    assert most["pp"] == list(range(1, 9))  # at most the 8 layers
    assert most["dp"] == [1, 2, 4, 8, 16, 32] and most["cp"] == [1, 2, 4, 8, 16, 32]
    infer = cli_sweep.default_axes(MOE, GPU, 8, False, {"mode": ["decode"]})
    assert infer["gen_tokens"] == [cli_sweep.DEFAULT_GEN_TOKENS] and "recompute" not in infer
    given = cli_sweep.default_axes(MOE, GPU, 8, False, {"tp": [2]})
    assert given["tp"] == [2]


def test_every_plan_column_has_an_axis_flag(files):
    m, h = files
    argv = ["sweep", "-m", m, "-H", h]
    for col in S.PLAN:
        value = {"choice": col.choices[:1], "bool": ("on,off",)}.get(col.kind, ("1",))
        argv += ["--" + col.name.replace("_", "-"), value[0]]
    args = parse(argv)
    space, _ = cli_sweep.build_space(args, MOE, GPU)
    assert space.varying == [c.name for c in S.PLAN if c.kind == "bool"]


def test_bad_values_are_named(files, capsys):
    m, h = files
    with pytest.raises(SpecError, match="recompute"):
        run(["sweep", "-m", m, "-H", h, "--recompute", "some"], capsys)
    with pytest.raises(SpecError, match="tp"):
        run(["sweep", "-m", m, "-H", h, "--tp", "1,2.5"], capsys)
    with pytest.raises(SpecError, match="gen_tokens"):
        run(["sweep", "-m", m, "-H", h, "--mode", "decode", "--gen-tokens", "0"], capsys)
    with pytest.raises(SpecError):
        run(["sweep", "-m", "no-such-model", "-H", h], capsys)
    with pytest.raises(SystemExit):
        parse(["sweep", "-m", m, "-H", h, "--gpus", "8", "--max-gpus", "16"])


def test_presets_by_name(capsys):
    pytest.importorskip("pyengine.presets")
    rc, out = run(["sweep", "-m", "moe-10b", "-H", "h100-sxm", "--gpus", "8", "--tp", "1,2",
                   "--pp", "1,2", "--micro-batch", "1", "--recompute", "full", "--backend",
                   "numba", "--json"], capsys)
    assert rc == 0 and json.loads(out.out)["model"] == "moe-10b"


def test_progress_bar():
    stream = io.StringIO()
    bar = cli_sweep.ProgressBar(stream)
    bar(500, 1000)
    bar(1000, 1000)
    text = stream.getvalue()
    assert "100.0%" in text and "plans/s" in text and text.endswith("\n")


def test_scheduler_address(files, capsys):
    distributed = pytest.importorskip("distributed")
    m, h = files
    argv = ["sweep", "-m", m, "-H", h, "--max-gpus", "8", *BASE, "--json",
            "--micro-batch", "1", "--chunk-size", "256"]
    rc, local = run(argv, capsys)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  host="127.0.0.1", protocol="tcp", dashboard_address=None,
                                  silence_logs=40) as lc:
        rc, remote = run(argv + ["--scheduler", lc.scheduler_address], capsys)
    a, b = json.loads(local.out), json.loads(remote.out)
    assert rc == 0 and b["backend"] == "dask:numba"
    assert a["counts"] == b["counts"] and a["front"] == b["front"] and a["top"] == b["top"]


def test_serve_axes_sweep_the_concurrency(files):
    """--mode serve is decode; a serving sweep (decode only) sweeps the batch, the
    sequences served at once, unless --global-batch is given."""
    m, h = files
    space, _ = cli_sweep.build_space(parse(["sweep", "-m", m, "-H", h, "--max-gpus", "8",
                                            "--mode", "serve"]), MOE, GPU)
    assert axis_values(space, "global_batch") == cli_sweep.SERVE_BATCHES
    assert "mode" not in space.varying
    assert axis_values(space, "mode") == ["decode"]
    fixed, _ = cli_sweep.build_space(parse(["sweep", "-m", m, "-H", h, "--mode", "decode",
                                            "--global-batch", "32"]), MOE, GPU)
    assert axis_values(fixed, "global_batch") == [32]
    mixed = cli_sweep.default_axes(MOE, GPU, 8, False, {"mode": ["train", "decode"]})
    assert mixed["global_batch"] == [cli_sweep.DEFAULT_GLOBAL_BATCH]


def test_serving_front_over_batches_is_one_workload():
    serve = pd.DataFrame({"mode": ["decode"] * 2, "global_batch": [8, 64],
                          "seq_len": [1024] * 2, "gen_tokens": [64] * 2})
    assert cli_sweep.mixed_workloads(serve) is None
    train = serve.assign(mode="train")
    assert "gbs 8, 64" in cli_sweep.mixed_workloads(train)
    assert "seq" in cli_sweep.mixed_workloads(serve.assign(seq_len=[1024, 2048]))
