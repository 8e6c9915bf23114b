"""Bad input gives a clear error naming the field; infeasible plans name each constraint."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

import pyengine
from pyengine import presets
from pyengine.cli import main
from pyengine.specs import Limits, Model, Plan

LLAMA = presets.model("llama3-70b")
MIXTRAL = presets.model("mixtral-8x7b")
H100 = presets.hardware("h100-sxm")


@pytest.mark.parametrize("field,value", [
    ("tp", 0), ("tp", -2), ("tp", 2.5), ("pp", math.nan), ("dp", "4"), ("global_batch", 0),
    ("zero", 4), ("capacity_factor", math.nan), ("capacity_factor", -1.0),
    ("capacity_factor", math.inf), ("mode", "training"), ("recompute", "partial"),
    ("dtype", "fp16"), ("sequence_parallel", 1), ("tp", True),
])
def test_bad_plan_values_name_the_field(field, value):
    with pytest.raises(pyengine.SpecError) as err:
        Plan(**{field: value})
    msg = str(err.value)
    assert f"Plan.{field}" in msg and "not allowed" in msg


def test_decode_needs_generated_tokens():
    with pytest.raises(pyengine.SpecError, match="gen_tokens"):
        Plan(mode="decode", gen_tokens=0)


@pytest.mark.parametrize("field,value", [("n_layers", 0), ("hidden", -1), ("n_heads", 1.5),
                                          ("n_kv_heads", 3), ("norm", "batchnorm")])
def test_bad_model_values(field, value):
    base = dict(name="m", n_layers=4, hidden=256, n_heads=8, ffn_hidden=1024, vocab=1000)
    base[field] = value
    with pytest.raises(pyengine.SpecError, match=f"Model.{field}"):
        Model(**base)


def test_bad_hardware_values():
    with pytest.raises(pyengine.SpecError, match="peak_bf16_flops_per_s"):
        H100.with_(peak_bf16_flops_per_s=0.0)
    with pytest.raises(pyengine.SpecError, match="hbm_eff"):
        H100.with_(hbm_eff=1.5)
    with pytest.raises(pyengine.SpecError, match="Limits.mem_fraction"):
        Limits(mem_fraction=0.0)


def test_unknown_preset():
    with pytest.raises(pyengine.SpecError, match="llama3-70b"):
        presets.model("llama3-70")  # suggests the close match
    with pytest.raises(pyengine.SpecError):
        presets.hardware("tpu-v9")


def violations(model, plan, limits=None, hw=H100):
    return pyengine.evaluate(model, hw, plan, limits).violations


CUSTOM = Model(name="odd", n_layers=8, hidden=3072, n_heads=48, n_kv_heads=8, ffn_hidden=8190,
               vocab=32000, gated_mlp=True)


@pytest.mark.parametrize("model,plan,limits,name", [
    (LLAMA, Plan(global_batch=8, tp=3), None, "TP_HEADS"),
    (CUSTOM, Plan(global_batch=8, tp=12, sequence_parallel=False), None, "TP_KV_HEADS"),
    (CUSTOM, Plan(global_batch=8, tp=4), None, "TP_FFN"),
    (MIXTRAL, Plan(global_batch=8, tp=1, dp=8, ep=8, etp=3), None, "ETP_FFN"),
    (MIXTRAL, Plan(global_batch=8, dp=6, ep=3), None, "EP_EXPERTS"),
    (LLAMA, Plan(global_batch=8, dp=2, ep=2), None, "EP_EXPERTS"),
    (MIXTRAL, Plan(global_batch=8, dp=2, ep=4), None, "EP_FOLD"),
    (LLAMA, Plan(global_batch=8, pp=100), None, "PP_LAYERS"),
    (LLAMA, Plan(global_batch=8, pp=1, vpp=2), None, "VPP_SCHEDULE"),
    (LLAMA, Plan(global_batch=6, pp=4, vpp=2), None, "VPP_SCHEDULE"),
    (LLAMA, Plan(global_batch=8, seq_len=4098, cp=2), None, "CP_SEQ"),
    (LLAMA, Plan(global_batch=8, seq_len=4100, tp=8), None, "SP_SEQ"),
    (LLAMA, Plan(global_batch=10, dp=4), None, "BATCH"),
    (MIXTRAL, Plan(global_batch=8, capacity_factor=0.0), None, "MOE_NO_CAPACITY"),
    (LLAMA, Plan(global_batch=8), None, "MEMORY"),
    (LLAMA, Plan(global_batch=64, tp=8, dp=8), Limits(gpus_exact=32), "GPUS_EXACT"),
    (LLAMA, Plan(global_batch=64, tp=8, dp=8), Limits(gpus_max=32), "GPUS_MAX"),
])
def test_each_constraint_is_named(model, plan, limits, name):
    assert name in violations(model, plan, limits)


def test_feasible_plan_has_no_violations():
    r = pyengine.evaluate(LLAMA, H100, Plan(global_batch=512, micro_batch=1, seq_len=8192,
                                            tp=8, pp=4, dp=16, vpp=5, recompute="selective"))
    assert r.feasible, r.violations
    assert r.violations == []
    for v in r.outputs.values():
        assert math.isfinite(v)


def test_infeasible_plans_still_have_finite_outputs():
    r = pyengine.evaluate(MIXTRAL, H100, Plan(global_batch=7, dp=3, ep=5, pp=1000,
                                              capacity_factor=0.0, seq_len=3, cp=4))
    assert not r.feasible and len(r.violations) >= 4
    assert all(np.isfinite(v) for v in r.outputs.values())


def test_dropped_fraction_reported():
    r = pyengine.evaluate(MIXTRAL, H100, Plan(global_batch=8, dp=8, ep=8, capacity_factor=0.5))
    assert r.outputs["dropped_fraction"] == pytest.approx(0.5)
    r2 = pyengine.evaluate(MIXTRAL, H100, Plan(global_batch=8, dp=8, ep=8, capacity_factor=1.25))
    assert r2.outputs["dropped_fraction"] == 0.0
    # padding shows in time: cf 1.25 computes more expert slots than cf 1.0
    r1 = pyengine.evaluate(MIXTRAL, H100, Plan(global_batch=8, dp=8, ep=8))
    assert r2.time["compute"] > r1.time["compute"]
    assert r2.time["ep"] > r1.time["ep"]
    assert r2.memory["activations"] > r1.memory["activations"]


# --------------------------------------------------------------------------- CLI

def test_cli_bad_value_is_a_message_not_a_traceback(capsys):
    rc = main(["explain", "--model", "llama3-70b", "--hardware", "h100-sxm", "--tp", "0"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "Plan.tp = 0" in err and "Traceback" not in err


def test_cli_unknown_preset(capsys):
    rc = main(["explain", "--model", "gpt5", "--hardware", "h100-sxm"])
    assert rc == 2
    assert "preset" in capsys.readouterr().err


def test_cli_explain_json_seed_gpu_count(capsys):
    import json

    rc = main(["explain", "--model", "moe-10b", "--hardware", "h100-sxm", "--tp", "2", "--pp",
               "4", "--dp", "6", "--ep", "2", "--global-batch", "120", "--seq-len", "10240",
               "--json"])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    for key in ("feasible", "violations", "n_gpus", "memory", "time", "tokens_per_s",
                "tokens_per_s_per_gpu", "mfu", "model_tflops_per_gpu"):
        assert key in d
    assert d["n_gpus"] == 48
    assert set(d["memory"]) >= {"weights", "grads", "optimizer", "activations", "kv_cache",
                                "overhead", "total"}
    assert d["memory"]["total"] == pytest.approx(sum(
        d["memory"][k] for k in ("weights", "grads", "optimizer", "activations", "kv_cache",
                                 "overhead")))
    assert d["time"]["step"] == pytest.approx(sum(v for k, v in d["time"].items()
                                                  if k != "step"))


def test_cli_explain_text_and_presets(capsys):
    assert main(["explain", "--model", "llama3-8b", "--hardware", "h100-sxm", "--mode",
                 "decode", "--gen-tokens", "128", "--global-batch", "16"]) == 0
    out = capsys.readouterr().out
    assert "TPOT" in out and "GiB" in out and "kv_cache" in out
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "llama3-70b" in out and "h100-sxm" in out


def test_console_script_help():
    r = subprocess.run([sys.executable, "-m", "pyengine.cli", "explain", "--help"],
                       capture_output=True, text=True)
    assert r.returncode == 0
    for flag in ("--tp", "--etp", "--capacity-factor", "--no-flash-attention",
                 "--sequence-parallel", "--recompute", "--zero", "--json"):
        assert flag in r.stdout
