"""What the commands print: progress frames, mixed workloads, absurd magnitudes, validate."""

from __future__ import annotations

import io
import json
import re
import time

import pytest
from cli_helpers import run_cli, tiny_specs
from test_sweep import GPU

from pyengine import validate as V
from pyengine.cli_sweep import ProgressBar, cell
from pyengine.explain import fmt_bytes, fmt_count, fmt_num, fmt_s
from pyengine.loaders import spec_to_toml


@pytest.fixture
def specs(tmp_path):
    return tiny_specs(tmp_path)


def test_progress_frames_leave_no_residue():
    stream = io.StringIO()
    bar = ProgressBar(stream)
    bar.t0 = time.perf_counter() - 10.0  # 1 plan in 10 s: "ETA 9990 s"
    bar(1, 1000)
    bar.last = 0.0
    bar.t0 = time.perf_counter() - 1.0  # then fast: "ETA 0 s", a shorter frame
    bar(900, 1000)
    bar.last = 0.0
    bar(1000, 1000)
    frames = stream.getvalue().split("\r")[1:]
    assert "ETA 9990 s" in frames[0] and "ETA 0 s" in frames[1]
    for before, after in zip(frames, frames[1:]):
        assert len(after.rstrip("\n")) >= len(before.rstrip("\n")), (before, after)
    assert stream.getvalue().endswith("\n")


def test_front_over_several_workloads_shows_and_warns(specs):
    m, h = specs
    argv = ["sweep", "-m", m, "-H", h, "--max-gpus", "8", "--global-batch", "16",
            "--seq-len", "1024,2048", "--micro-batch", "1"]
    rc, out, err = run_cli(argv)
    assert rc == 0
    header = next(line for line in out.splitlines() if line.strip().startswith("#"))
    assert header.split()[1] == "seq"  # the workload column comes first
    assert "note: the front mixes 2 workloads (seq 1024, 2048)" in out
    assert err.startswith("pyengine sweep: warning: the front mixes") and len(
        err.splitlines()) == 1
    rc, out, err = run_cli(argv + ["--json"])
    assert "mixes" in json.loads(out)["warning"]
    argv[argv.index("1024,2048")] = "2048"
    rc, out, err = run_cli(argv)  # one workload: no warning
    assert rc == 0 and "mixes" not in out and err == ""


def absurd_hardware(folder):
    """Peak FLOP/s and bandwidths of 1e-290 per second: steps take ~1e300 s."""
    hw = GPU.with_(name="absurd", peak_bf16_flops_per_s=1e-290, hbm_bandwidth_bytes_per_s=1e-290,
                   intra_node_bandwidth_bytes_per_s=1e-290,
                   inter_node_bandwidth_bytes_per_s=1e-290)
    path = folder / "absurd.toml"
    path.write_text(spec_to_toml(hw))
    return str(path)


LONG_NUMBER = re.compile(r"\d[\d,]{19,}")  # 20 digits or more, as fixed-point prints 1e300


def test_absurd_magnitudes_print_in_scientific_notation(specs, tmp_path):
    m, _ = specs
    hw = absurd_hardware(tmp_path)
    rc, out, _ = run_cli(["explain", "-m", m, "-H", hw, "--global-batch", "8"])
    assert rc == 0 and not LONG_NUMBER.search(out), LONG_NUMBER.search(out)
    step = next(line for line in out.splitlines() if line.split()[:1] == ["step"])
    assert "e+" in step
    tokens = next(line for line in out.splitlines() if "tokens/s" in line)
    assert "e-" in tokens  # no silent 0 tokens/s either
    rc, out, _ = run_cli(["sweep", "-m", m, "-H", hw, "--max-gpus", "8", "--global-batch",
                          "16", "--seq-len", "2048"])
    assert rc == 0 and not LONG_NUMBER.search(out), LONG_NUMBER.search(out)
    assert "e+" in out


def test_number_formats():
    assert fmt_s(3.4e300) == "3.4e+300 s" and fmt_s(2.5) == "2.500 s" and fmt_s(0.0) == "0.000 s"
    assert fmt_s(2e-9) == "2e-09 s"
    assert fmt_bytes(1e300) == "1e+300 B" and fmt_bytes(2**31) == "2.00 GiB"
    assert fmt_count(1e300) == "1e+300" and fmt_count(7.1e10) == "71.00B"
    assert fmt_num(1e-290) == "1e-290" and fmt_num(12345.6) == "12,346"
    assert fmt_num(float("inf")) == "inf"
    assert cell(1e300, "{:,.0f}") == "1e+300" and cell(1234.5, "{:,.0f}") == "1,234"
    assert cell(1e-9, "{:,.0f}") == "1e-09" and cell(0.0, "{:,.0f}") == "0"


def test_validate_leaves_infeasible_rows_out_of_the_mean():
    ds = V.Dataset("demo", "a source", "tok/s", 0.2, 0.5, rows=[
        V.Row("fits", 100.0, 110.0, "tok/s"),
        V.Row("too big", 100.0, 300.0, "tok/s", "infeasible: MEMORY", feasible=False)])
    assert ds.mape == pytest.approx(0.10) and ds.worst == pytest.approx(0.10)
    assert [r.label for r in ds.infeasible] == ["too big"]
    assert not ds.ok  # a published run the model cannot fit is a failure of its own
    text = V.render([ds])
    assert "INFEASIBLE" in text and "1 published run predicted infeasible" in text
    assert "+200.0%" not in text
    row = V.to_json([ds])["demo"]["rows"][1]
    assert row["feasible"] is False and row["error"] is None and row["predicted"] is None
    ds.known_infeasible = ("too big",)  # a documented limit keeps the dataset ok
    assert ds.ok


def test_validate_nemo_mean_is_over_feasible_rows_only():
    ds = V.nemo_24_07(V.published())
    assert len(ds.infeasible) <= len(ds.known_infeasible)
    errors = [abs(r.predicted / r.published - 1) for r in ds.rows if r.feasible]
    assert ds.mape == pytest.approx(sum(errors) / len(errors))
