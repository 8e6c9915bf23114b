"""CPU activation offloading (Megatron-Core cpu_offloading_num_layers, Transformer Engine's
default scheduling): what Megatron-Core allows, the memory TE's docs state, and the copies
that show when the host link is slower than a layer's compute."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pyengine import presets
from pyengine import reference as R
from pyengine import schema as S
from pyengine.errors import SpecError
from pyengine.loaders import hardware_from_dict
from pyengine.specs import Plan

LLAMA70B = presets.model("llama3-70b")
GB200 = presets.hardware("gb200-nvl72")
H100 = presets.hardware("h100-sxm")
# Megatron-Bridge's Llama 3 70B GB200 FP8-CS recipe: Megatron-FSDP over 64 GPUs,
# micro-batch 2, 40 of 80 layers offloaded
FSDP = Plan(dtype="fp8", global_batch=256, micro_batch=2, seq_len=8192, dp=64, zero=3,
            fp8_activations=True, grad_dtype="bf16")


def layer_bytes(model, hw, plan) -> float:
    """Activations one layer keeps for backward, one micro-batch (dense model)."""
    m, h, p = R.model_vector(model), R.hardware_vector(hw), R.plan_vector(plan)
    f = R.plan_fields(p)
    pr = R.precisions(h, f)
    _, st = R.evaluate_plan(m, h, R.limits_vector(), p, np.zeros(0), R.no_stages(), 0)
    return R.activations(m, f, pr, st.layer, st.batch.seqs_per_replica).dense_layer


def test_a_gpu_holds_the_activations_of_the_layers_not_offloaded():
    """TE docs: with n of L layers offloaded, activation memory is (L - n) x a layer's."""
    per_layer = layer_bytes(LLAMA70B, GB200, FSDP)
    base = R.evaluate(LLAMA70B, GB200, FSDP)
    for n in (1, 20, 40, 78):
        r = R.evaluate(LLAMA70B, GB200, dataclasses.replace(FSDP, cpu_offload_layers=n))
        assert "CPU_OFFLOAD" not in r.violations
        # two micro-batches run one after the other with pp 1: one in flight
        assert base.memory["activations"] - r.memory["activations"] == pytest.approx(
            n * per_layer, rel=1e-12)


def test_the_recipe_fits_where_the_same_plan_without_offloading_does_not():
    assert "MEMORY" in R.evaluate(LLAMA70B, GB200, FSDP).violations
    assert R.evaluate(LLAMA70B, GB200, dataclasses.replace(FSDP, cpu_offload_layers=40)).feasible


def layer_passes(hw, plan) -> tuple[float, float]:
    """A dense layer's forward and backward time, one micro-batch."""
    m, h, p = R.model_vector(LLAMA70B), R.hardware_vector(hw), R.plan_vector(plan)
    _, st = R.evaluate_plan(m, h, R.limits_vector(), p, np.zeros(0), R.no_stages(), 0)
    lt = R.layer_times(st.layer.costs, R.plan_fields(p), h)
    return lt.dense_fwd, 2.0 * lt.dense_fwd + lt.bwd_extra


def test_copies_at_nvlink_c2c_nominal_rate_hide_behind_the_layers_compute():
    """3.4 GiB a layer at NVLink-C2C's nominal 450 GB/s a direction (8 ms) is shorter
    than a layer's forward (16 ms)."""
    fast = dataclasses.replace(GB200, host_link_bandwidth_bytes_per_s=450e9)
    r = R.evaluate(LLAMA70B, fast, dataclasses.replace(FSDP, cpu_offload_layers=40))
    base = R.evaluate(LLAMA70B, fast, FSDP)
    assert r.time["offload"] == 0.0
    assert r.time["step"] == pytest.approx(base.time["step"], rel=1e-12)


@pytest.mark.parametrize("bw, out, back", [(193e9, True, False), (52e9, True, True)])
def test_copies_show_what_exceeds_a_layers_pass(bw, out, back):
    """At GB200's measured 193 GB/s (19 ms a layer) the copy out exceeds a layer's
    forward, not its backward; at PCIe's 52 GB/s both: each offloaded layer shows copy -
    forward out and copy - backward back, per micro-batch."""
    plan = dataclasses.replace(FSDP, cpu_offload_layers=40)
    hw = dataclasses.replace(GB200, host_link_bandwidth_bytes_per_s=bw)
    r = R.evaluate(LLAMA70B, hw, plan)
    copy = layer_bytes(LLAMA70B, hw, plan) / bw
    fwd, bwd = layer_passes(hw, plan)
    assert (copy > fwd) == out and (copy > bwd) == back
    assert r.time["offload"] == pytest.approx(
        r.outputs["n_micro_batches"] * 40 * (max(0.0, copy - fwd) + max(0.0, copy - bwd)),
        rel=1e-12)


def test_offloading_all_but_one_layer_overlaps_nothing():
    """TE docs: num_layers = model_layers - 1 leaves one activation set on the GPU, so
    compute and transfers cannot overlap: every copy shows, out and back."""
    plan = dataclasses.replace(FSDP, cpu_offload_layers=79)
    r = R.evaluate(LLAMA70B, GB200, plan)
    copy = layer_bytes(LLAMA70B, GB200, plan) / GB200.host_link_bandwidth_bytes_per_s
    assert r.time["offload"] == pytest.approx(
        r.outputs["n_micro_batches"] * 2 * 79 * copy, rel=1e-12)


@pytest.mark.parametrize("change", [
    dict(pp=2, dp=32), dict(recompute="selective"), dict(recompute="full"),
    dict(cpu_offload_layers=80), dict(mode="prefill", dtype="bf16")])
def test_megatron_core_refuses_offloading_with_these(change):
    """TransformerConfig: no pipeline parallelism, no recomputation, fewer layers than the
    model's; and it is a training feature."""
    plan = dataclasses.replace(FSDP, **{"cpu_offload_layers": 20, **change})
    r = R.evaluate(LLAMA70B, GB200, plan)
    assert "CPU_OFFLOAD" in r.violations
    assert r.time["offload"] == 0.0


def test_presets_carry_their_host_link():
    """NVBandwidth's device-to-host copies on Azure's pages (operators.json)."""
    assert GB200.host_link_bandwidth_bytes_per_s == 193e9  # NVLink-C2C
    assert H100.host_link_bandwidth_bytes_per_s == 52e9  # PCIe Gen5 x16
    assert presets.hardware("a100-80gb").host_link_bandwidth_bytes_per_s == 26e9
    assert R.hardware_vector(GB200)[S.H_HOST_BW] == 193e9


def test_bad_offload_inputs_name_the_field():
    with pytest.raises(SpecError, match="cpu_offload_layers"):
        Plan(cpu_offload_layers=-1)
    with pytest.raises(SpecError, match="host_link_bandwidth_bytes_per_s"):
        dataclasses.replace(H100, host_link_bandwidth_bytes_per_s=0.0)
    spec = {"name": "x", "bf16_tflops": 100, "hbm_gb": 80, "hbm_tbps": 2, "gpus_per_node": 8,
            "nvlink_gbps": 100, "network_gbps": 50, "host_link_gbps": 32}
    assert hardware_from_dict(spec).host_link_bandwidth_bytes_per_s == 32e9
