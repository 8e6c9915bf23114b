"""Serving memory as engines allocate it (issue "Serving as engines run it", part 2).

Weights at their stored precision part by part (the embedding, LM head, norms and routers
stay in 16 bits under FP8), an activation workspace sized by the token budget
(max_num_tokens), the KV cache as a fraction of the memory left in paged blocks, which
bounds the concurrency (max_concurrency), and the engine's runtime buffers.
"""

from __future__ import annotations

import math

import pytest

import pyengine
from pyengine import presets
from pyengine import reference as R
from pyengine import schema as S
from pyengine.specs import Hardware, Limits, Plan

GiB = 2.0**30
H100 = presets.hardware("h100-sxm")
LLAMA8B = presets.model("llama3-8b")
LLAMA70B = presets.model("llama3-70b")


def serve(model=LLAMA8B, hw=H100, limits=None, **kw):
    base = dict(mode="decode", dtype="fp8", global_batch=8, seq_len=1000, gen_tokens=200)
    base.update(kw)
    return pyengine.evaluate(model, hw, Plan(**base), limits)


def linear_params(model) -> float:
    """The GEMM weights of the transformer layers (what FP8 checkpoints quantize)."""
    m = R.model_vector(model)
    return m[S.M_LAYERS] * (m[S.M_ATTN_GEMM_PARAMS] + m[S.M_MLP_GEMM_PARAMS])


# --------------------------------------------------------------------------- weights


def test_fp8_weights_keep_embedding_and_lm_head_in_bf16():
    """[M10] NVIDIA's FP8 checkpoints quantize "only the weights and activations of the
    linear operators within transformers blocks" (nvidia/Llama-3.1-405B-Instruct-FP8 model
    card, ModelOpt): Llama 3 8B holds 6.98B linear weights at 1 B and its 2 x 525M
    embedding and LM head (plus norms) at 2 B."""
    m = R.model_vector(LLAMA8B)
    total = m[S.M_PARAMS_TOTAL]
    linear = linear_params(LLAMA8B)
    r = serve()
    assert r.memory["weights"] == pytest.approx(linear * 1 + (total - linear) * 2, rel=1e-12)
    # an llm-compressor FP8 Llama-3.1-8B (lm_head ignored) is "~8.5GB": 9.08e9 B = 8.46 GiB
    assert r.memory["weights"] / GiB == pytest.approx(8.5, rel=0.01)
    bf16 = serve(dtype="bf16")
    assert bf16.memory["weights"] == total * 2


def test_fp8_weights_sharded_by_tp_and_pp_part_by_part():
    """Each GPU keeps its shard of both parts: the 16-bit embedding on the first stage,
    the LM head on the last, the norms replicated over TP."""
    for tp, pp in ((2, 1), (1, 2), (2, 2)):
        r = serve(LLAMA70B, tp=tp, pp=pp, sequence_parallel=False)
        f = R.plan_fields(R.plan_vector(r.plan))
        pr = R.precisions(R.hardware_vector(H100), f)
        split = R.split_stage(R.model_vector(LLAMA70B), f)
        for shape, name in ((split.first, "first"), (split.last, "last")):
            want = shape.dense_params * 1 + shape.kept_params * 1  # + 1 B more for the kept
            got = (shape.dense_params * pr.wb + shape.kept_params * (pr.hb - pr.wb))
            assert got == want, name
        assert r.memory["weights"] == pytest.approx(
            max(split.first.dense_params + split.first.kept_params,
                split.last.dense_params + split.last.kept_params), rel=1e-12)


def test_training_weights_unchanged_by_the_split():
    """Training keeps bf16 weights whatever the GEMM dtype: the kept part adds nothing."""
    r = pyengine.evaluate(LLAMA8B, H100, Plan(dtype="fp8", global_batch=8, seq_len=2048))
    assert r.memory["weights"] == R.model_vector(LLAMA8B)[S.M_PARAMS_TOTAL] * 2
    assert r.memory["buffers"] == 0.0 and r.outputs["max_concurrency"] == 0.0


# --------------------------------------------------------------------------- workspace


def test_workspace_sized_by_the_token_budget():
    """[M8] with max_num_tokens the workspace is the budget's (TensorRT-LLM sizes
    activations at build time from max_num_tokens, docs reference/memory.md), not the
    micro-batch's prompts: it does not grow with the prompt length or the concurrency."""
    a = serve(max_num_tokens=8192, seq_len=1000, global_batch=64, micro_batch=64)
    b = serve(max_num_tokens=8192, seq_len=4000, global_batch=64, micro_batch=64)
    assert a.memory["activations"] == b.memory["activations"]
    h, f, vocab = 4096, 14336, 128256
    want = 2 * 8192 * (4 * h + 3 * f) + 64 * vocab * 4  # logits for the 64 sequences
    assert a.memory["activations"] == want
    # today's sizing without a budget: the micro-batch's prompt tokens
    c = serve(seq_len=1000, global_batch=64, micro_batch=64)
    assert c.memory["activations"] == 2 * 64 * 1000 * (4 * h + 3 * f) + 64 * vocab * 4
    # within 1.6x of aiconfigurator's TensorRT-LLM fit, 2 x tokens x h x 11 at TP 1
    # (ai-dynamo/aiconfigurator sdk/backends/trtllm_backend.py _get_memory_usage, LLAMA)
    assert 1.0 < a.memory["activations"] / (2 * 8192 * h * 11) < 1.6


# --------------------------------------------------------------------------- KV cache


def test_kv_cache_in_whole_blocks():
    """[M7] a sequence of 1200 tokens holds 38 blocks of 32 (1216 tokens), or 75 of 16."""
    per_token_layer = 8 * 128 * 2  # KV heads x (K + V) head dims, FP8 one byte each
    for block, tokens in ((32, 1216), (16, 1200), (1, 1200), (256, 1280)):
        r = serve(kv_block_tokens=block)
        assert r.memory["kv_cache"] == 8 * tokens * 32 * per_token_layer


def test_kv_pool_is_a_fraction_of_the_memory_left():
    """[M11] kv_cache_fraction of what weights, workspace, overhead and buffers leave of
    the usable HBM, as TensorRT-LLM's kv_cache_free_gpu_mem_fraction sizes it; the pool
    holds floor(pool / bytes per sequence) sequences."""
    limits = Limits(mem_fraction=0.95)
    r = serve(kv_cache_fraction=0.9, max_num_tokens=8192, limits=limits)
    usable = H100.hbm_capacity_bytes * 0.95
    fixed = (r.memory["weights"] + r.memory["activations"] + r.memory["overhead"]
             + r.memory["buffers"])
    assert r.memory["buffers"] == H100.runtime_buffer_bytes
    assert r.memory["kv_cache"] == pytest.approx(0.9 * (usable - fixed), rel=1e-12)
    seq = math.ceil(1200 / 32) * 32 * 32 * 8 * 128 * 2
    assert r.outputs["max_concurrency"] == math.floor(r.memory["kv_cache"] / seq)
    assert r.memory["total"] <= usable
    assert r.feasible


def test_concurrency_beyond_the_pool_is_infeasible():
    """More concurrent sequences than the pool holds: KV_CACHE, with the bound reported."""
    fit = serve(LLAMA70B, tp=2, kv_cache_fraction=0.9, seq_len=5000, gen_tokens=500)
    n = int(fit.outputs["max_concurrency"])
    assert 50 < n < 150
    ok = serve(LLAMA70B, tp=2, kv_cache_fraction=0.9, seq_len=5000, gen_tokens=500,
               global_batch=n)
    over = serve(LLAMA70B, tp=2, kv_cache_fraction=0.9, seq_len=5000, gen_tokens=500,
                 global_batch=n + 1)
    assert ok.feasible and over.violations == ["KV_CACHE"]
    assert over.memory == ok.memory  # the pool does not grow with the requests


def test_max_concurrency_without_a_pool_is_what_the_memory_left_holds():
    """kv_cache_fraction 0: the requests' own KV cache, and max_concurrency the sequences
    the memory left would hold; one more than that no longer fits (MEMORY)."""
    r = serve(LLAMA70B, tp=2, seq_len=5000, gen_tokens=500, global_batch=1)
    n = int(r.outputs["max_concurrency"])
    assert serve(LLAMA70B, tp=2, seq_len=5000, gen_tokens=500, global_batch=n).feasible
    big = serve(LLAMA70B, tp=2, seq_len=5000, gen_tokens=500, global_batch=n + 1)
    assert "MEMORY" in big.violations


def test_max_concurrency_counts_every_replica_and_the_fullest_stage():
    """dp replicas each hold their own pool; with pipeline stages the stage with the
    least room per sequence bounds it."""
    one = serve(LLAMA70B, tp=2, kv_cache_fraction=0.9, global_batch=2)
    two = serve(LLAMA70B, tp=2, dp=2, kv_cache_fraction=0.9, global_batch=2)
    assert two.outputs["max_concurrency"] == 2 * one.outputs["max_concurrency"]
    staged = serve(LLAMA70B, tp=2, pp=2, kv_cache_fraction=0.9, global_batch=2)
    m, h = R.model_vector(LLAMA70B), R.hardware_vector(H100)
    p = R.plan_vector(staged.plan)
    f = R.plan_fields(p)
    pr = R.precisions(h, f)
    _, st = R.evaluate_plan(m, h, R.limits_vector(), p, R.np.zeros(S.N_OUTPUTS),
                            R.no_stages(), 0)
    act = R.activations(m, f, pr, st.layer, st.batch.seqs_per_replica)
    mems = R.stage_memories(m, h, f, pr, act, st.layer, st.split, st.batch,
                            R.bytes_per_param(f, pr), H100.hbm_capacity_bytes)
    assert staged.outputs["max_concurrency"] == min(mems.first.kv_seqs, mems.last.kv_seqs)


def test_runtime_buffers_are_serving_only_and_documented():
    """The default runtime buffers: aiconfigurator's TensorRT-LLM budget (3.5 GiB other +
    392 MB NCCL) less pyengine's 3 GiB memory_overhead."""
    assert Hardware.runtime_buffer_bytes == 3758096384 + 411041792 - 3 * GiB
    r = serve(mode="prefill", gen_tokens=0)
    assert r.memory["buffers"] == H100.runtime_buffer_bytes
    terms = sum(v for k, v in r.memory.items() if k != "total")
    assert terms == pytest.approx(r.memory["total"], rel=1e-12)


def test_fp8_lm_head_reads_16_bit_weights_in_decode():
    """The BF16 LM head costs a decode step its 2-byte weights at the BF16 rate: FP8
    decode of a model with a large vocabulary is slower than 1 byte per weight."""
    m = R.model_vector(LLAMA8B)
    h = R.hardware_vector(H100)
    f = R.plan_fields(R.plan_vector(Plan(mode="decode", dtype="fp8", gen_tokens=1)))
    pr = R.precisions(h, f)
    assert pr.head_rate == H100.peak_bf16_flops_per_s * H100.gemm_eff_max
    c = R.layer_costs(m, h, 1.0, 1000.0, 1000.0, True, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, False,
                      True, 0.0, True, 0.0, 0.0, pr.rate, pr.expert_rate, pr.token_half, pr.ab,
                      pr.wb, pr.kvb, pr.db, pr.head_rate, 0.0)
    head_bytes = 4096 * 128256 * 2
    assert c.output_s >= head_bytes / (H100.hbm_bandwidth_bytes_per_s * H100.hbm_eff)
