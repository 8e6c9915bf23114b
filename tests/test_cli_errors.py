"""Bad input to every command: one line naming the flag or file and what is allowed, exit 2.

Each test here failed before its fix (issue 12): silently wrong answers, tracebacks after
the work was done, and hangs."""

from __future__ import annotations

import csv
import importlib
import json
import socket
import sys
import time

import pandas as pd
import pytest
from cli_helpers import assert_one_line_error, run_cli, time_limit, tiny_specs
from test_sweep import GPU, MOE, moe_space

import pyengine
from pyengine import cli_sweep
from pyengine.errors import SpecError
from pyengine.sweep import sweep

sweep_module = importlib.import_module("pyengine.sweep")  # pyengine.sweep is the function

@pytest.fixture
def specs(tmp_path):
    return tiny_specs(tmp_path)


def sweep_argv(specs, *extra):
    m, h = specs
    return ["sweep", "-m", m, "-H", h, "--global-batch", "16", "--seq-len", "2048",
            "--micro-batch", "1", *extra]


def forbid_sweeping(monkeypatch):
    """Fail the test if a sweep starts: these errors must come before the work."""
    def no(*a, **k):
        raise AssertionError("the sweep ran before the bad option was refused")

    monkeypatch.setattr(sweep_module, "sweep", no)


# --------------------------------------------------------------------------- silently wrong


@pytest.mark.parametrize("flag", ["--gpus", "--max-gpus"])
def test_zero_gpus_is_refused_not_unlimited(specs, flag):
    rc, out, err = run_cli(sweep_argv(specs, flag, "0"))
    assert_one_line_error(rc, err, flag, "[1, ")
    assert out == ""


@pytest.mark.parametrize("argv, flag", [
    (["--max-tpot-ms", "-1"], "--max-tpot-ms"),
    (["--max-ttft-ms", "0"], "--max-ttft-ms"),
    (["--max-dropped", "-1"], "--max-dropped"),
    (["--max-dropped", "nan"], "--max-dropped"),
    (["--min-tokens-per-s", "inf"], "--min-tokens-per-s"),
    (["--min-tokens-per-s-per-gpu", "nan"], "--min-tokens-per-s-per-gpu"),
    (["--front-rows", "-1"], "--front-rows"),
    (["--top", "-3"], "--top"),
    (["--mem-fraction", "0"], "--mem-fraction"),
    (["--mem-headroom", "1.5"], "--mem-headroom"),
    (["--chunk-size", "0"], "--chunk-size"),
])
def test_constraints_no_plan_can_meet_are_refused(specs, argv, flag, monkeypatch):
    forbid_sweeping(monkeypatch)
    rc, _, err = run_cli(sweep_argv(specs, *argv))
    assert_one_line_error(rc, err, flag, "is not allowed: a")


def test_library_constraints_no_plan_can_meet(monkeypatch):
    for key, value in (("max_tpot_s", -1.0), ("max_dropped_fraction", -0.5),
                       ("min_tokens_per_s", float("inf")), ("max_ttft_s", float("nan")),
                       ("min_mfu", "abc")):
        with pytest.raises(SpecError, match=key):
            sweep(MOE, GPU, moe_space(), constraints={key: value})
    # a maximum of inf is no limit, a minimum below zero always met: both allowed
    r = sweep(MOE, GPU, moe_space(), constraints={"max_tpot_s": float("inf"),
                                                  "min_tokens_per_s": -1.0})
    assert r.counts["feasible"] > 0


def test_evaluate_out_writes_the_format_its_suffix_names(specs, tmp_path):
    m, h = specs
    plans = tmp_path / "plans.csv"
    plans.write_text("tp,pp,dp,global_batch\n1,1,1,8\n2,1,2,8\n")
    rc, out, _ = run_cli(["evaluate", "-m", m, "-H", h, plans, "--out", tmp_path / "r.json"])
    assert rc == 0 and "wrote 2 rows" in out
    rows = json.loads((tmp_path / "r.json").read_text())
    assert [r["tp"] for r in rows] == [1, 2] and rows[0]["n_gpus"] == 1.0
    rc, _, _ = run_cli(["evaluate", "-m", m, "-H", h, plans, "--out", tmp_path / "r.csv"])
    with open(tmp_path / "r.csv", newline="") as fh:
        assert [r["dp"] for r in csv.DictReader(fh)] == ["1", "2"]
    pytest.importorskip("pyarrow")
    rc, _, _ = run_cli(["evaluate", "-m", m, "-H", h, plans, "--out", tmp_path / "r.parquet"])
    assert rc == 0
    assert pd.read_parquet(tmp_path / "r.parquet")["tp"].tolist() == [1, 2]


def test_evaluate_refuses_an_unknown_out_suffix_before_evaluating(specs, tmp_path):
    m, h = specs
    plans = tmp_path / "plans.csv"
    plans.write_text("tp\n1\n")
    rc, _, err = run_cli(["evaluate", "-m", m, "-H", h, plans, "--out", tmp_path / "r.xlsx"])
    assert_one_line_error(rc, err, "--out", ".json, .csv, .parquet")
    assert not (tmp_path / "r.xlsx").exists()


def test_unknown_csv_column_is_refused_naming_it(specs, tmp_path):
    m, h = specs
    plans = tmp_path / "plans.csv"
    plans.write_text("tp,pipeline,dp\n1,2,1\n")
    rc, _, err = run_cli(["evaluate", "-m", m, "-H", h, plans])
    line = assert_one_line_error(rc, err, "plans.csv", "'pipeline'", "global_batch")
    assert "allowed columns" in line


def test_json_rows_with_other_keys_are_refused_naming_the_row(specs, tmp_path):
    m, h = specs
    plans = tmp_path / "plans.json"
    plans.write_text(json.dumps([{"tp": 1}, {"tp": 2, "pp": 2}, {"tp": 4}]))
    rc, _, err = run_cli(["evaluate", "-m", m, "-H", h, plans])
    assert_one_line_error(rc, err, "plans.json row 2", "extra pp")
    plans.write_text(json.dumps([{"tp": 1, "dp": 2}, {"tp": 2}]))
    rc, _, err = run_cli(["evaluate", "-m", m, "-H", h, plans])
    assert_one_line_error(rc, err, "plans.json row 2", "missing dp")


# --------------------------------------------------------------------------- tracebacks


@pytest.mark.parametrize("command", ["explain", "sweep"])
@pytest.mark.parametrize("value", ["inf", "nan", "2.5", "abc", "1e400"])
def test_non_integer_for_an_integer_flag(specs, command, value):
    m, h = specs
    rc, _, err = run_cli([command, "-m", m, "-H", h, "--tp", value])
    assert_one_line_error(rc, err, "--tp", "integer")


def test_plan_range_errors_name_the_flag(specs):
    m, h = specs
    rc, _, err = run_cli(["explain", "-m", m, "-H", h, "--zero", "7"])
    assert_one_line_error(rc, err, "Plan.zero = 7", "--zero")


@pytest.mark.parametrize("where", ["missing", "directory"])
@pytest.mark.parametrize("flag, name", [("--out", "front.json"), ("--plot", "front.png")])
def test_output_path_is_checked_before_sweeping(specs, tmp_path, monkeypatch, where, flag,
                                                name):
    forbid_sweeping(monkeypatch)
    path = tmp_path / "no-such-dir" / name if where == "missing" else tmp_path
    rc, _, err = run_cli(sweep_argv(specs, flag, path))
    assert_one_line_error(rc, err, flag, str(path))


def test_library_chunk_size_must_be_an_integer():
    for bad in (1.5, 0, -4, "8", float("nan"), True):
        with pytest.raises(SpecError, match="chunk_size"):
            sweep(MOE, GPU, moe_space(), chunk_size=bad)
    with pytest.raises(SpecError, match="top_k"):
        sweep(MOE, GPU, moe_space(), top_k=2.5)
    with pytest.raises(SpecError, match="duplicates"):
        sweep(MOE, GPU, moe_space(), duplicates="some")
    assert len(sweep(MOE, GPU, moe_space(), chunk_size=4096.0).front)  # 4096.0 is an integer


@pytest.mark.parametrize("text, names", [
    ("tp,pp,dp\n1,1,1\n2,1\n", ["plans.csv line 3", "2 cells", "3"]),
    ("tp,pp\n1,1,9\n", ["plans.csv line 2", "3 cells"]),
    ("tp,pp\nabc,1\n", ["plans.csv line 2, column tp", "'abc'", "an integer"]),
    ("tp,recompute\n1,some\n", ["column recompute", "'some'", "selective"]),
    ("tp,sequence_parallel\n1,maybe\n", ["column sequence_parallel", "'maybe'", "true"]),
    ("tp,capacity_factor\n1,nan\n", ["column capacity_factor", "'nan'", "finite"]),
    ("tp,zero\n1,\n", ["line 2, column zero", "''"]),
    ("tp,tp\n1,2\n", ["column 'tp'", "twice"]),
    ("tp\n", ["plans.csv", "no plans"]),
    ("", ["plans.csv", "empty"]),
])
def test_bad_csv_names_line_and_column(specs, tmp_path, text, names):
    m, h = specs
    plans = tmp_path / "plans.csv"
    plans.write_text(text)
    rc, _, err = run_cli(["evaluate", "-m", m, "-H", h, plans])
    assert_one_line_error(rc, err, *names)


@pytest.mark.parametrize("text, names", [
    ('[{"tp": 1}, {"tp": "abc"}]', ["plans.json row 2, column tp", "'abc'"]),
    ('[{"tp": 1}, 7]', ["plans.json row 2", "an object"]),
    ('[{"tp": true}]', ["row 1, column tp", "True"]),
    ('[{"tp": 1e400}]', ["row 1, column tp", "inf"]),
    ('[{"tp": 1}, {"tp": 2', ["plans.json line 1", "not valid JSON"]),
    ('"tp"', ["plans.json", "a list of objects"]),
    ('[{"mode": "decode", "gen_tokens": 0}]', ["row 1, column gen_tokens", "decode"]),
])
def test_bad_json_names_row_and_column(specs, tmp_path, text, names):
    m, h = specs
    plans = tmp_path / "plans.json"
    plans.write_text(text)
    rc, _, err = run_cli(["evaluate", "-m", m, "-H", h, plans])
    assert_one_line_error(rc, err, *names)


def test_evaluate_not_utf8(specs, tmp_path):
    m, h = specs
    plans = tmp_path / "plans.csv"
    plans.write_bytes(b"tp\n\xff\xfe\n")
    rc, _, err = run_cli(["evaluate", "-m", m, "-H", h, plans])
    assert_one_line_error(rc, err, "plans.csv", "UTF-8")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_one_line_within_the_timeout(specs):
    pytest.importorskip("distributed")
    address = f"tcp://127.0.0.1:{_free_port()}"
    t0 = time.perf_counter()
    rc, _, err = run_cli(sweep_argv(specs, "--scheduler", address, "--scheduler-timeout", "1"),
                         seconds=20)
    assert_one_line_error(rc, err, address, "--scheduler-timeout")
    assert time.perf_counter() - t0 < 10


# --------------------------------------------------------------------------- hangs


@pytest.mark.parametrize("value", ["1000000000", "1e12", "16777217"])
def test_huge_gpu_budget_is_refused_at_once(specs, value):
    t0 = time.perf_counter()
    rc, _, err = run_cli(sweep_argv(specs, "--max-gpus", value), seconds=5)
    assert_one_line_error(rc, err, "--max-gpus", "16777216")
    assert time.perf_counter() - t0 < 2


def _default_axes_by_walking(model, hardware, budget, exact, gb):
    """The definition the arithmetic must match: every count up to the budget tried."""
    def fits(v):
        return v <= budget and (not exact or budget % v == 0)

    pp = [v for v in range(1, min(budget, model.n_layers) + 1) if fits(v)]
    dp = [v for v in range(1, budget + 1) if fits(v) and any(g % v == 0 for g in gb)]
    return pp, dp or [1]


@pytest.mark.parametrize("exact", [False, True])
def test_default_axes_equal_walking_every_count(exact):
    for budget in list(range(1, 70)) + [96, 120, 128, 360, 1000]:
        for gb in ([128], [48, 60], [7]):
            axes = cli_sweep.default_axes(MOE, GPU, budget, exact, {"global_batch": gb})
            pp, dp = _default_axes_by_walking(MOE, GPU, budget, exact, gb)
            assert (axes["pp"], axes["dp"]) == (pp, dp), (budget, gb)


def test_default_axes_of_the_largest_budget_are_quick():
    t0 = time.perf_counter()
    for exact in (False, True):
        axes = cli_sweep.default_axes(MOE, GPU.with_(gpus_per_node=1 << 16), 1 << 24, exact,
                                      {"global_batch": [2**31 - 1, 2**30]})
        assert axes["cp"][-1] == 1 << 24 and axes["tp"][-1] == 1 << 16
    assert time.perf_counter() - t0 < 1.0


def test_sweep_with_no_dask_worker_fails_naming_the_scheduler():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=0, processes=False, host="127.0.0.1",
                                  protocol="tcp", dashboard_address=None,
                                  silence_logs=40) as lc, distributed.Client(lc) as client:
        t0 = time.perf_counter()
        with time_limit(30), pytest.raises(pyengine.ClusterError, match=lc.scheduler_address):
            sweep(MOE, GPU, moe_space(), client=client, chunk_size=4096, worker_timeout=1.0)
        assert time.perf_counter() - t0 < 10


# --------------------------------------------------------------------------- plain install


def hide_module(monkeypatch, module: str) -> None:
    """As on a plain install: `import module` (and its submodules) raises ImportError."""
    for name in list(sys.modules):
        if name == module or name.startswith(module + "."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)


@pytest.mark.parametrize("module, argv, extra", [
    ("pyarrow", ["--out", "front.parquet"], "pyengine[parquet]"),
    ("matplotlib", ["--plot", "front.png"], "pyengine[plot]"),
    ("distributed", ["--scheduler", "tcp://127.0.0.1:1"], "pyengine[dask]"),
])
def test_missing_extra_is_named_before_the_sweep(specs, tmp_path, monkeypatch, module, argv,
                                                 extra):
    forbid_sweeping(monkeypatch)
    hide_module(monkeypatch, module)
    monkeypatch.chdir(tmp_path)
    rc, _, err = run_cli(sweep_argv(specs, *argv))
    assert_one_line_error(rc, err, argv[0], extra)


def test_library_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    result = sweep(MOE, GPU, moe_space(), top_k=2)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(pyengine.MissingExtra, match=r"pyengine\[parquet\]"):
        result.save(tmp_path / "front.parquet")
    result.save(tmp_path / "front.csv")  # pandas alone is enough for the rest


def test_validate_plot_without_matplotlib_names_the_extra(tmp_path, monkeypatch):
    """`validate --plot` on a plain install: one line naming the extra, no traceback."""
    hide_module(monkeypatch, "matplotlib")
    rc, _, err = run_cli(["validate", "--dataset", "zero_2019", "--plot",
                          str(tmp_path / "v.png")])
    assert_one_line_error(rc, err, "--plot", "pyengine[plot]")
    assert not (tmp_path / "v.png").exists()
