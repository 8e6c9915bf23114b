"""Tools and packaging: benchmark scripts, calibration, version, entry points, help texts."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pyengine
from pyengine import cli_sweep, presets
from pyengine.cli import build_parser
from pyengine.cli_common import GLOBAL_BATCH, SEQ_LEN, HelpFormatter

ROOT = Path(__file__).resolve().parent.parent

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def load_tool(relative: str):
    spec = importlib.util.spec_from_file_location(Path(relative).stem, ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def python(*args, cwd=None, timeout=120):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


# --------------------------------------------------------------------------- benchmarks


@pytest.mark.parametrize("script", ["bench_engine.py", "bench_sweep.py"])
def test_bench_scripts_time_the_installed_package(tmp_path, script):
    """A copy of the script next to a source tree whose pyengine must not be imported."""
    (tmp_path / "bench").mkdir()
    shutil.copy(ROOT / "bench" / script, tmp_path / "bench" / script)
    (tmp_path / "pyengine").mkdir()
    (tmp_path / "pyengine" / "__init__.py").write_text(
        "raise SystemExit('the source tree was imported, not the installed package')\n")
    r = python(tmp_path / "bench" / script, "--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "--force" in r.stdout


def test_bench_engine_keeps_results_of_a_backend_it_would_not_measure(tmp_path):
    results = tmp_path / "engine.json"
    old = {"backends": {"native": {"evaluate": {"plans_per_s": 1.0}},
                        "numba": {"evaluate": {"plans_per_s": 2.0}},
                        "cupy": {"unavailable": "no GPU"}}}
    results.write_text(json.dumps(old))
    argv = [ROOT / "bench" / "bench_engine.py", "--backend", "numba", "--plans", "200",
            "--repeat", "1", "--out", results]
    r = python(*argv)
    assert r.returncode == 2 and "native" in r.stderr and "--force" in r.stderr
    assert json.loads(results.read_text()) == old
    r = python(*argv, "--force")
    assert r.returncode == 0, r.stderr
    assert set(json.loads(results.read_text())["backends"]) == {"numba"}


def test_bench_sweep_refuses_before_running(tmp_path):
    results = tmp_path / "sweep.json"
    results.write_text(json.dumps({"sweep": {"backends": {"native": {"plans_per_s": 1.0}}}}))
    r = python(ROOT / "bench" / "bench_sweep.py", "--backend", "numba", "--out", results)
    assert r.returncode == 2 and "native" in r.stderr
    assert "plans/s" not in r.stdout  # refused before any sweep


# --------------------------------------------------------------------------- calibration


@pytest.fixture(scope="module")
def calibrate():
    return load_tool("tools/calibrate.py")


@pytest.fixture(scope="module")
def fitted(calibrate):
    a100 = calibrate.fit_a100()
    return a100, calibrate.fit_h100()


def test_calibrate_output_is_what_the_presets_hold(calibrate, fitted):
    a100, h100 = fitted
    assert calibrate.stale_presets(a100, h100) == []
    for slug, (hw, names, _) in calibrate.outputs(a100, h100).items():
        preset = presets.hardware(slug)
        for n in names:
            assert getattr(preset, n) == pytest.approx(float(f"{getattr(hw, n):.4g}"),
                                                       rel=1e-12, abs=1e-15), (slug, n)


def test_calibrated_values_within_physical_bounds(calibrate, fitted):
    a100, h100 = fitted
    for hw, names in ((a100, calibrate.A100_NAMES), (h100, calibrate.H100_NAMES)):
        for n in names:
            lo, hi = calibrate.PARAMS[n]
            assert lo <= getattr(hw, n) <= hi, n


def test_calibrate_does_not_start_from_the_presets(calibrate, fitted, monkeypatch):
    """The fit is a function of the published data: presets holding other values (an
    earlier fit, a hand edit) do not change what it finds."""
    real = presets.hardware

    def perturbed(name):
        return real(name).with_(gemm_eff_max=0.5, gemm_dim_half=300.0, net_eff=0.65,
                                hbm_eff=0.7)

    monkeypatch.setattr(calibrate.presets, "hardware", perturbed)
    calibrate.operator_values.cache_clear()  # the operator fits too, from the perturbed presets
    try:
        a100 = calibrate.fit_a100()
    finally:
        calibrate.operator_values.cache_clear()
    for n in calibrate.A100_NAMES:
        assert getattr(a100, n) == getattr(fitted[0], n), n


# --------------------------------------------------------------------------- packaging


def test_version_everywhere():
    assert importlib.metadata.version("pyengine") == pyengine.__version__
    r = python("-m", "pyengine", "--version")
    assert r.returncode == 0 and r.stdout.strip() == f"pyengine {pyengine.__version__}"
    r = python("-m", "pyengine", "presets")
    assert r.returncode == 0 and "llama3-70b" in r.stdout


def test_dependencies_and_extras():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(meta["dependencies"])
    assert "pandas" in core  # sweep results are DataFrames: a plain install must sweep
    extras = meta["optional-dependencies"]
    for extra, package in (("dask", "distributed"), ("plot", "matplotlib"),
                           ("parquet", "pyarrow")):
        assert any(package in req for req in extras[extra]), extra
        assert package not in core
    from pyengine.optional import EXTRAS
    assert {EXTRAS[m] for m in ("distributed", "matplotlib", "pyarrow")} <= set(extras)


# --------------------------------------------------------------------------- help texts


def _subcommands():
    return build_parser().commands


def _option_help(parser, action) -> str:
    return HelpFormatter(parser.prog)._expand_help(action) if action.help else ""


def test_every_option_has_help_and_shows_its_default_once():
    for name, sub in _subcommands().items():
        for action in sub._actions:
            if action.help is argparse.SUPPRESS:  # hidden aliases (--mem-headroom)
                continue
            text = _option_help(sub, action)
            assert text.strip(), f"{name} {action.option_strings or action.dest}: no help"
            assert text.count("default") <= 1, (name, action.option_strings, text)
            assert not re.search(r"\[(\S+)\] \(default: \1\)", text), (name, text)
        rendered = sub.format_help()
        assert "%(" not in rendered


def test_explain_and_sweep_share_names_and_defaults(tmp_path):
    subs = _subcommands()
    explain, sweep = subs["explain"], subs["sweep"]
    opts = {n: {s for a in p._actions for s in a.option_strings} for n, p in subs.items()}
    for flag in ("--mem-fraction", "--mem-headroom", "--model", "--hardware", "--tp",
                 "--global-batch", "--seq-len", "--gen-tokens", "--json"):
        assert flag in opts["explain"] and flag in opts["sweep"], flag
    args = explain.parse_args(["-m", "x", "-H", "y"])
    assert (args.global_batch, args.seq_len, args.mem_fraction) == (GLOBAL_BATCH, SEQ_LEN, 1.0)
    assert args.global_batch == cli_sweep.DEFAULT_GLOBAL_BATCH
    assert args.seq_len == cli_sweep.DEFAULT_SEQ_LEN
    a = sweep.parse_args(["-m", "x", "-H", "y", "--mem-headroom", "0.8"])
    b = sweep.parse_args(["-m", "x", "-H", "y", "--mem-fraction", "0.8"])
    assert a.mem_fraction == b.mem_fraction == 0.8
    assert "--mem-headroom" not in sweep.format_help()
