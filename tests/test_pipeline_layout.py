"""Pipeline layouts as Megatron-Core makes them: the embedding and the loss counted as
layers in the split, fixed first/last stage layer counts, memory per stage kind."""

from __future__ import annotations

import pytest

import pyengine
from pyengine import presets
from pyengine.specs import Plan

H100 = presets.hardware("h100-sxm")
LLAMA405 = presets.model("llama3-405b")  # 126 layers
DSV3 = presets.model("deepseek-v3")  # 61 layers


def layers(model, **plan):
    o = pyengine.evaluate(model, H100, Plan(global_batch=2048, **plan)).outputs
    return o["layers_first_stage"], o["layers_middle_stage"], o["layers_last_stage"]


def test_llama3_405b_production_split_is_accepted():
    """Llama 3 (Dubey et al. 2024, Sec. 3.3.2): 126 layers on PP 16 with interleaving, one
    layer per virtual stage; the first and last stage hold one layer fewer because they
    carry the embedding and the output layer: 16 x 8 = 128 = 126 + 2 virtual stages."""
    plan = dict(tp=8, pp=16, vpp=8, dp=8, seq_len=8192)
    r = pyengine.evaluate(LLAMA405, H100, Plan(global_batch=2048, **plan))
    assert "PP_LAYERS" in r.violations  # 128 virtual stages, 126 layers
    r = pyengine.evaluate(LLAMA405, H100, Plan(global_batch=2048, pp_embedding=True,
                                              pp_loss=True, **plan))
    assert "PP_LAYERS" not in r.violations
    assert layers(LLAMA405, pp_embedding=True, pp_loss=True, **plan) == (7, 8, 7)
    assert pyengine.evaluate(LLAMA405, H100, Plan(global_batch=2048, pp=16, vpp=9,
                                                 pp_embedding=True, pp_loss=True)
                             ).violations.count("PP_LAYERS") == 1  # 144 > 128


def test_counted_embedding_and_loss_take_a_slot_each():
    # 61 + 2 slots on 16 stages: 3 each, the 15 left over to the 14 middle stages first
    assert layers(DSV3, pp=16, pp_embedding=True, pp_loss=True) == (3, 4, 2)
    assert layers(DSV3, pp=16) == (3, 4, 3)  # 61 = 16 x 3 + 13: 13 middle stages take one
    assert layers(DSV3, pp=16, pp_embedding=True) == (2, 4, 3)  # 62 = 16 x 3 + 14


def test_fixed_first_and_last_stage_layers():
    assert layers(LLAMA405, pp=16, pp_first_layers=6, pp_last_layers=5) == (6, 9, 5)  # 115/14
    assert layers(LLAMA405, pp=8, pp_first_layers=12) == (12, 17, 16)  # 114 on 7 stages
    assert layers(LLAMA405, pp=2, pp_first_layers=60, pp_last_layers=66) == (60, 0, 66)
    bad = pyengine.evaluate(LLAMA405, H100, Plan(global_batch=2048, pp=2, pp_first_layers=60,
                                                pp_last_layers=60))
    assert "PP_LAYERS" in bad.violations  # 6 layers would belong to no stage
    over = pyengine.evaluate(LLAMA405, H100, Plan(global_batch=2048, pp=4, pp_first_layers=200))
    assert "PP_LAYERS" in over.violations


@pytest.mark.parametrize("pp", [1, 2, 3, 7, 16])
def test_every_layer_sits_on_one_stage(pp):
    """first + (pp-2) middles + last = layers when the middles are even."""
    f, m, la = layers(DSV3, pp=pp, pp_embedding=True, pp_loss=True)
    if pp == 1:
        assert f == la == 61
    else:
        assert f + la + (pp - 2) * m >= 61 >= f + la + (pp - 2) * (m - 1)


def test_memory_is_itemised_per_stage_kind():
    r = pyengine.evaluate(LLAMA405, H100, Plan(global_batch=2048, tp=8, pp=16, vpp=8, dp=8,
                                              seq_len=8192, pp_embedding=True, pp_loss=True))
    o = r.outputs
    stages = [o["mem_first_stage_bytes"], o["mem_middle_stage_bytes"], o["mem_last_stage_bytes"]]
    assert o["mem_total_bytes"] == max(stages)
    assert o["mem_last_stage_bytes"] < o["mem_first_stage_bytes"]  # 1 in-flight micro-batch
    one = pyengine.evaluate(LLAMA405, H100, Plan(global_batch=8, tp=8, pp=2)).outputs
    assert one["mem_middle_stage_bytes"] == 0.0


def test_llama3_405b_production_plan_fits():
    """The 16K-GPU plan of Llama 3 (Dubey et al. 2024, Table 4: TP 8, CP 1, PP 16, DP 128,
    sequence 8192, 16M-token batches), with parameters kept whole and gradients and
    optimizer states sharded (their FSDP setting, ZeRO-2 here): feasible on 80 GB, memory
    itemised per stage kind."""
    r = pyengine.evaluate(LLAMA405, H100, Plan(global_batch=2048, seq_len=8192, tp=8, pp=16,
                                              vpp=8, dp=128, zero=2, pp_embedding=True,
                                              pp_loss=True))
    assert r.feasible, r.violations
    assert r.n_gpus == 16384 and r.memory["total"] < 80e9
    o = r.outputs
    assert o["mem_total_bytes"] == max(o["mem_first_stage_bytes"], o["mem_middle_stage_bytes"],
                                       o["mem_last_stage_bytes"])
