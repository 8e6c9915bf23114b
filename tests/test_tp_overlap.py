"""[C15] Megatron's backward TP overlap (tp_dgrad_overlap): a column-parallel linear's
input-gradient all-reduce (with SP: reduce-scatter, and the re-gather of its input) runs
behind its weight-gradient GEMM; the row-parallel side stays exposed."""

from __future__ import annotations

import pytest

import pyengine
from pyengine import presets
from pyengine.specs import Plan

GPT22B = presets.model("gpt-22b")
A100 = presets.hardware("a100-80gb")
# Korthikanti et al. 2022 Table 3's 22B layer: TP 8, micro-batch 4, sequence 2048; its QKV
# and FC1 weight-gradient GEMMs (~0.9 and ~1.2 ms) outlast a 100 MB all-reduce (~0.5 ms)
BASE = dict(global_batch=4, micro_batch=4, seq_len=2048, tp=8, zero=0, recompute="none",
            flash_attention=False)


def tp_time(**kw):
    return pyengine.evaluate(GPT22B, A100, Plan(**{**BASE, **kw})).time["tp"]


def test_without_sp_the_backward_all_reduces_hide_behind_the_weight_gradients():
    off = tp_time(sequence_parallel=False, tp_dgrad_overlap=False)
    on = tp_time(sequence_parallel=False, tp_dgrad_overlap=True)
    # forward: two all-reduces exposed; backward: both behind QKV's and FC1's wgrad GEMMs
    assert on == pytest.approx(off / 2, rel=1e-12)


def test_with_sp_the_output_gradient_all_gathers_stay_exposed():
    off = tp_time(sequence_parallel=True, tp_dgrad_overlap=False)
    on = tp_time(sequence_parallel=True, tp_dgrad_overlap=True)
    # four units a pass (2 AG + 2 RS); backward keeps the row-parallel side's two AGs,
    # the reduce-scatters and input re-gathers hide behind wgrad and dgrad GEMMs
    assert on == pytest.approx(off * 6 / 8, rel=1e-12)


def test_recomputed_forward_keeps_its_collectives():
    off = tp_time(sequence_parallel=False, recompute="full", tp_dgrad_overlap=False)
    on = tp_time(sequence_parallel=False, recompute="full", tp_dgrad_overlap=True)
    assert on == pytest.approx(off * 2 / 3, rel=1e-12)  # fwd + recomputed fwd exposed


def test_no_effect_without_tp_with_userbuffers_or_in_inference():
    for kw in (dict(tp=1, global_batch=4), dict(tp_overlap=True)):
        assert tp_time(tp_dgrad_overlap=False, **kw) == tp_time(tp_dgrad_overlap=True, **kw)
    for mode in ("prefill", "decode"):
        runs = [pyengine.evaluate(GPT22B, A100, Plan(**{**BASE, "mode": mode, "gen_tokens": 16,
                                                        "tp_dgrad_overlap": on}))
                for on in (False, True)]
        assert runs[0].time == runs[1].time


def test_small_gemms_leave_the_excess_exposed():
    # one sequence of 128 tokens: the weight gradients are shorter than the latency-bound
    # all-reduces, so part of the backward's stays exposed
    kw = dict(global_batch=1, micro_batch=1, seq_len=128, sequence_parallel=False)
    off, on = tp_time(tp_dgrad_overlap=False, **kw), tp_time(tp_dgrad_overlap=True, **kw)
    assert off / 2 < on < off
