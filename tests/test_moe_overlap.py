"""Expert load imbalance and the overlaps frameworks run: EP all-to-all behind other
compute, DP traffic bucketed behind backward or fully exposed."""

from __future__ import annotations

import pyengine
from pyengine import presets
from pyengine.specs import Plan

MIXTRAL = presets.model("mixtral-8x7b")
H100 = presets.hardware("h100-sxm")
BASE = dict(global_batch=256, seq_len=4096, tp=2, pp=1, dp=32, ep=8, etp=1)


def run(**kw):
    return pyengine.evaluate(MIXTRAL, H100, Plan(**BASE, **kw))


def test_imbalance_slows_and_fills_the_busiest_rank():
    """The busiest expert rank paces an MoE layer: 1.5x its tokens is 1.5x the expert
    slots' compute, all-to-all volume and activations; 1.0 (forced balance) is the
    balanced model, and capacity and dropped tokens are what the routing sets."""
    even, skew = run(), run(moe_load_imbalance=1.5)
    assert 1.3 < skew.time["ep"] / even.time["ep"] <= 1.5  # volume 1.5x, latency the same
    assert skew.time["compute"] > even.time["compute"]
    assert skew.memory["activations"] > even.memory["activations"]
    assert skew.outputs["capacity_per_expert"] == even.outputs["capacity_per_expert"]
    assert skew.outputs["dropped_fraction"] == even.outputs["dropped_fraction"]


def test_ep_overlap_hides_the_all_to_all_behind_compute():
    plain, hidden = run(), run(ep_overlap=True)
    assert hidden.time["ep"] < plain.time["ep"]
    assert hidden.time["compute"] == plain.time["compute"]
    assert hidden.time["step"] < plain.time["step"]


def test_dp_overlap_off_exposes_all_gradient_traffic():
    on, off = run(zero=1), run(zero=1, dp_overlap=False)
    assert off.time["dp"] > on.time["dp"] >= 0.0
