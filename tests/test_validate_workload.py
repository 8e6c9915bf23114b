"""`pyengine validate --moe-load-imbalance / --fill-kv`: the serving tables' unprinted
workload (routing skew, the concurrency trtllm-bench reaches) as sensitivity knobs, the
defaults unchanged."""

from __future__ import annotations

import math

import pytest

from pyengine import presets
from pyengine import reference as R
from pyengine import validate as V
from pyengine.cli import main
from pyengine.specs import Limits


@pytest.fixture(scope="module")
def overview():
    """The perf overview under the defaults, 1.5x routing skew and KV-filling concurrency."""
    return {w: V.run(["trtllm_perf_overview"], w)[0]
            for w in (V.ServingWorkload(), V.ServingWorkload(1.5),
                      V.ServingWorkload(fill_kv=True))}


def test_defaults_are_the_reports():
    """An explicit default workload reproduces the plain run bit for bit, and the run
    leaves the module's assumptions as it found them."""
    (plain,) = V.run(["trtllm_perf_overview"])
    (explicit,) = V.run(["trtllm_perf_overview"], V.ServingWorkload())
    assert [r.predicted for r in plain.rows] == [r.predicted for r in explicit.rows]
    V.run(["trtllm_perf_overview"], V.ServingWorkload(2.0, True))
    assert V.WORKLOAD == V.ServingWorkload()
    assert "MoE routing balanced; concurrency: powers of two" in plain.notes


def test_skew_slows_moe_rows_only(overview):
    """The busiest expert rank's extra tokens slow the MoE runs (attention data parallel
    plans; not one whose step the host or the expert weights' reads pace) and leave the
    dense runs' predictions bit for bit."""
    base, skew = overview[V.ServingWorkload()], overview[V.ServingWorkload(1.5)]
    moe = dense = slower = 0
    for a, b in zip(base.rows, skew.rows, strict=True):
        if a.plan.ep > 1:
            moe += 1
            assert b.plan.moe_load_imbalance == 1.5
            # a host-bound step takes the host's time whatever its GPU work: equal to
            # rounding (one ulp), never faster
            assert b.predicted <= a.predicted * (1.0 + 1e-12), a.label
            slower += b.predicted < a.predicted * (1.0 - 1e-12)
        else:
            dense += 1
            assert b.predicted == a.predicted, a.label
    assert moe > 50 and dense > 50 and slower > 0.8 * moe
    assert "busiest expert rank x1.5" in skew.notes


def test_fill_kv_runs_at_what_the_cache_holds(overview):
    """Filling the KV cache never predicts less than the best power of two (it is one
    more candidate), reaches beyond it somewhere, and every batch it picks fits: no more
    than the cache's max_concurrency, whole attention replicas under attention DP."""
    base, fill = overview[V.ServingWorkload()], overview[V.ServingWorkload(fill_kv=True)]
    beyond = 0
    for a, b in zip(base.rows, fill.rows, strict=True):
        assert b.predicted >= a.predicted, a.label
        if b.plan.global_batch not in V.BATCHES:
            beyond += 1
            r = R.evaluate(V.PERF_OVERVIEW_MODELS[" ".join(a.group.split()[:-1])](),
                           presets.hardware(V.PERF_OVERVIEW_GPUS[a.group.split()[-1]]),
                           b.plan, Limits(mem_fraction=1.0))
            assert r.feasible and b.plan.global_batch <= r.outputs["max_concurrency"]
            assert b.plan.global_batch % b.plan.dp == 0
    assert beyond > 20
    assert "the largest the KV cache fits" in fill.notes


@pytest.mark.parametrize("value", ["0.5", "nan", "inf", "65"])
def test_bad_imbalance_names_the_flag(value, capsys):
    assert main(["validate", "--quiet", "--moe-load-imbalance", value]) == 2
    err = capsys.readouterr().err
    assert "--moe-load-imbalance" in err and "[1, 64]" in err


def test_workload_checks_its_fields():
    with pytest.raises(ValueError, match="--moe-load-imbalance"):
        V.ServingWorkload(math.nan)
    assert V.ServingWorkload(64.0).moe_load_imbalance == 64.0


def test_cli_sensitivity_flags(capsys):
    assert main(["validate", "--dataset", "trtllm_perf_overview", "--moe-load-imbalance",
                 "1.3", "--fill-kv"]) == 0
    out = capsys.readouterr().out
    assert "busiest expert rank x1.3; concurrency: powers of two and the largest" in out
