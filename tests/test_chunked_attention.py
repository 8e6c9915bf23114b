"""Chunked local attention ([T24]; Llama 4: chunks of 8192 tokens, every 4th layer a global
NoPE layer): a query at position p attends to the p mod C keys before it in its chunk, a
global layer's query to all p."""

from __future__ import annotations

import numpy as np
import pytest

import pyengine
from pyengine import reference as R
from pyengine import validate as V
from pyengine.errors import SpecError
from pyengine.specs import Plan

SCOUT = V.validation_model("llama4-scout")


@pytest.mark.parametrize("lo,hi,chunk", [(0, 20000, 8192), (20000, 22000, 8192),
                                         (0, 5000, 8192), (3, 17, 5), (8192, 8192, 8192),
                                         (100, 40000, 1000)])
def test_chunk_position_is_the_mean_of_p_mod_c(lo, hi, chunk):
    """The closed form against the mean over the positions themselves (a fine grid)."""
    got = R.chunk_position(float(lo), float(hi), float(chunk))
    if hi == lo:
        assert got == lo % chunk
        return
    p = np.linspace(lo, hi, 2_000_001)
    assert got == pytest.approx(np.mean(np.mod(p, chunk)), rel=1e-4, abs=1e-3)


def test_attended_keys_of_llama4():
    """Scout: 12 of 48 layers global. A 20000-token prompt's queries attend 10,000 keys
    (flash, causal) under full attention; in a chunked layer (20000 = 2 x 8192 + 3616)
    (2 x 8192^2/2 + 3616^2/2) / 20000 = 3,682: the layer mean is 1/4 x 10,000 + 3/4 x 3,682.
    Decode at contexts 20000..22000: 21,000 under full attention, 4,616 chunked. Below one
    chunk nothing changes; a model without chunks is unchanged."""
    m = R.model_vector(SCOUT)
    chunked = (2 * 8192**2 / 2 + 3616**2 / 2) / 20000
    assert R.attended(m, 0.0, 20000.0, 10000.0) == pytest.approx(
        0.25 * 10000 + 0.75 * chunked, rel=1e-12)
    assert R.attended(m, 20000.0, 22000.0, 21000.0) == pytest.approx(
        0.25 * 21000 + 0.75 * 4616.0, rel=1e-12)
    assert R.attended(m, 0.0, 5000.0, 2500.0) == 2500.0
    dense = R.model_vector(SCOUT.with_(attention_chunk=0, global_every=0))
    assert R.attended(dense, 0.0, 20000.0, 10000.0) == 10000.0


def test_chunked_attention_speeds_long_context_serving_only():
    """Long prompts decode faster with chunked layers (fewer keys, fewer K/V read); short
    ones (within one chunk) are unchanged; the KV cache still holds the whole context
    (engines here keep every layer's cache)."""
    hw = pyengine.presets.hardware("h200")
    kw = dict(mode="decode", dtype="fp8", global_batch=32, micro_batch=32, tp=4,
              max_num_tokens=8192)
    full = SCOUT.with_(attention_chunk=0, global_every=0)
    long_c = pyengine.evaluate(SCOUT, hw, Plan(seq_len=20000, gen_tokens=2000, **kw))
    long_f = pyengine.evaluate(full, hw, Plan(seq_len=20000, gen_tokens=2000, **kw))
    assert long_c.tpot_s < 0.95 * long_f.tpot_s
    assert long_c.memory["kv_cache"] == long_f.memory["kv_cache"]
    short_c = pyengine.evaluate(SCOUT, hw, Plan(seq_len=2000, gen_tokens=500, **kw))
    short_f = pyengine.evaluate(full, hw, Plan(seq_len=2000, gen_tokens=500, **kw))
    assert short_c.tpot_s == short_f.tpot_s


def test_chunked_attention_fields_are_checked():
    with pytest.raises(SpecError, match="attention_chunk"):
        SCOUT.with_(attention_chunk=0)  # global_every 4 left without chunks
    with pytest.raises(SpecError, match="global_every"):
        SCOUT.with_(global_every=49)


def test_explain_says_what_chunked_attention_attends():
    from pyengine.explain import explain, render_text

    hw = pyengine.presets.hardware("h200")
    plan = Plan(mode="decode", dtype="fp8", global_batch=32, micro_batch=32, tp=4,
                seq_len=20000, gen_tokens=2000, max_num_tokens=8192)
    text = render_text(explain(SCOUT, hw, plan))
    assert ("chunked attention (8,192 tokens, every 4th layer global): a prompt's query "
            "attends 5,262 keys on average over the layers (10,000 with full attention); "
            "a decode token 8,712 (21,000)") in text
    dense = pyengine.presets.model("llama3-8b")
    assert "chunked attention" not in render_text(explain(dense, hw, plan.with_(tp=1)))
