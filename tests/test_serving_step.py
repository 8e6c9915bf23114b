"""Per-step fixed costs of serving (issue "Serving as engines run it", part 1).

A step not replayed from a CUDA graph takes at least its kernels x the host's launch cost
(the host runs ahead of the GPU, so small-batch decode becomes launch-bound), and every
engine step pays a fixed cost outside the layers. The kernel count is the count of the
op_overhead terms the model adds, which the first tests check by differentiating the
timings with respect to op_overhead.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

import pyengine
from pyengine import presets
from pyengine.specs import Hardware, Model, Plan

DATA = Path(pyengine.__file__).resolve().parent / "data" / "operators.json"


def operators(key: str) -> dict:
    return json.loads(DATA.read_text())["datasets"][key]


def with_hw(hw: Hardware, **kw) -> Hardware:
    return hw.with_(**kw)


def gpu_seconds(r) -> float:
    """Every time term that op_overhead enters (no communication overlap in these plans)."""
    return r.time["compute"] + r.time["recompute"]


MODELS = {
    "dense": presets.model("llama3-8b"),
    "moe_shared": Model(name="moe", n_layers=6, hidden=1024, n_heads=16, n_kv_heads=4,
                        ffn_hidden=2816, vocab=32000, gated_mlp=True, n_experts=8, top_k=2,
                        expert_ffn_hidden=704, n_shared_experts=1, first_k_dense=1),
    "mla": Model(name="mla", n_layers=4, hidden=1024, n_heads=8, ffn_hidden=2048, vocab=32000,
                 gated_mlp=True, kv_lora_rank=256, q_lora_rank=384, rope_head_dim=32,
                 head_dim=64, v_head_dim=64, n_experts=4, top_k=1, expert_ffn_hidden=512),
}
PLANS = [
    Plan(mode="decode", global_batch=4, seq_len=512, gen_tokens=16),
    Plan(mode="prefill", global_batch=2, micro_batch=1, seq_len=512),
    Plan(global_batch=4, seq_len=512, recompute="selective", recompute_layernorm=True,
         recompute_mla_up_proj=True, recompute_mlp=True, recompute_moe_act=True,
         recompute_shared_experts=True, pp=2),
    Plan(global_batch=4, seq_len=512, recompute="full", recompute_layers=1, pp=2),
    Plan(global_batch=4, seq_len=512, recompute="selective", recompute_moe=True),
]


@pytest.mark.parametrize("fused_attention", [False, True])
@pytest.mark.parametrize("plan", PLANS, ids=lambda p: f"{p.mode}-{p.recompute}")
@pytest.mark.parametrize("name", list(MODELS))
def test_kernel_count_is_the_count_of_op_overhead_terms(name, plan, fused_attention):
    """[T19] kernels_per_step x op_overhead is exactly what op_overhead adds to one
    micro-batch (training, prefill) or one decode step of the slowest stage."""
    model = MODELS[name]
    base = presets.hardware("h100-sxm").with_(launch_overhead_s=0.0, step_overhead_s=0.0,
                                              request_overhead_s=0.0)
    if not fused_attention:
        base = base.with_(attn_eff_fwd=0.0, attn_eff_bwd=0.0)
    x = 7e-6
    r0 = pyengine.evaluate(model, base.with_(op_overhead_s=0.0), plan)
    r1 = pyengine.evaluate(model, base.with_(op_overhead_s=x), plan)
    kernels = r1.outputs["kernels_per_step"]
    assert kernels == r0.outputs["kernels_per_step"] > 0
    if plan.mode == "decode":
        per_step = r1.tpot_s - r0.tpot_s
    else:
        n = r1.outputs["n_micro_batches"]
        per_step = (gpu_seconds(r1) - gpu_seconds(r0)) / n
    assert per_step == pytest.approx(kernels * x, rel=1e-9)


def test_dense_decode_step_kernels():
    """A dense decode step: 11 kernels per layer (attention 6, MLP 5), embedding 1,
    output layer 3."""
    r = pyengine.evaluate(presets.model("llama3-8b"), presets.hardware("h100-sxm"),
                          Plan(mode="decode", global_batch=1, seq_len=128, gen_tokens=8))
    assert r.outputs["kernels_per_step"] == 32 * 11 + 1 + 3


def test_launch_default_from_pytorch_eager_measurement():
    """The default host launch cost is the median of NVIDIA's PyTorch eager per-op
    measurement (dgxc-benchmarking cpu_overhead), inside HTA's 5-20 us and above a raw
    cuLaunchKernel (3 us, tritonbench on GB200)."""
    rows = operators("pytorch_small_gemm_launch_time_nvidia_dgxc")["values"]["rows"]
    median = statistics.median(r["avg_time_per_op_us"] for r in rows)
    assert Hardware.launch_overhead_s == pytest.approx(median * 1e-6, abs=0.05e-6)
    lo, hi = operators("hta_cpu_launch_time_statement")["values"][
        "cpu_launch_time_us_typical_range"]
    assert lo * 1e-6 <= Hardware.launch_overhead_s <= hi * 1e-6
    raw = operators("kernel_launch_overhead_breakdown_gb200_tritonbench")["values"]["rows"][0]
    assert raw["benchmark"] == "nop_triton_direct_culaunch"
    assert raw["time_us_0_args"] * 1e-6 < Hardware.launch_overhead_s


def small_decode(**kw):
    model = presets.model("llama3-8b")
    plan = Plan(mode="decode", dtype="fp8", global_batch=1, seq_len=128, gen_tokens=64, **kw)
    return model, plan


@pytest.mark.parametrize("launch_us", [3.0, 13.0, 40.0])
def test_eager_decode_step_is_max_of_gpu_and_launches(launch_us):
    """[T20] without CUDA graphs a decode step takes max(GPU time, kernels x launch cost)
    plus the per-step cost; with graphs the launch term drops."""
    hw = presets.hardware("h100-sxm").with_(launch_overhead_s=launch_us * 1e-6)
    model, plan = small_decode()
    graphed = pyengine.evaluate(model, hw, plan)
    eager = pyengine.evaluate(model, hw, plan.with_(cuda_graphs=False))
    step_cost = hw.step_overhead_s
    gpu = graphed.tpot_s - step_cost  # one request's host work hides behind the GPU
    host = eager.outputs["kernels_per_step"] * hw.launch_overhead_s + hw.request_overhead_s
    assert eager.tpot_s == pytest.approx(max(gpu, host) + step_cost, rel=1e-12)
    # the prompt's prefill pass is eager either way; only the decode steps differ
    assert eager.time["launch"] - graphed.time["launch"] == pytest.approx(
        plan.gen_tokens * max(0.0, host - gpu), rel=1e-9, abs=1e-15)
    terms = sum(v for k, v in eager.time.items() if k != "step")
    assert terms == pytest.approx(eager.time["step"], rel=1e-12)


def test_small_batch_fp8_decode_on_h100_is_launch_bound_when_eager():
    """Llama 3 8B FP8 at batch 1: ~9 GB of weights (the LM head in BF16) read in ~3.8 ms,
    356 kernels x 13 us = 4.6 ms of launches: eager steps wait on the host, graphed ones
    do not."""
    model, plan = small_decode()
    hw = presets.hardware("h100-sxm")
    eager = pyengine.evaluate(model, hw, plan.with_(cuda_graphs=False))
    graphed = pyengine.evaluate(model, hw, plan)
    assert eager.tpot_s == pytest.approx(356 * 13e-6 + hw.request_overhead_s
                                         + hw.step_overhead_s, rel=1e-12)
    assert graphed.tpot_s < 0.85 * eager.tpot_s


def test_step_cost_in_ttft_tpot_and_not_in_training():
    """[T21] every engine step pays step_overhead (each decode step, each prefill
    micro-batch slot); training steps do not, and ignore cuda_graphs."""
    model = presets.model("llama3-8b")
    hw = presets.hardware("h100-sxm")
    extra = 2e-3
    hw2 = hw.with_(step_overhead_s=hw.step_overhead_s + extra)
    plan = Plan(mode="decode", global_batch=8, micro_batch=4, seq_len=256, gen_tokens=32)
    a, b = pyengine.evaluate(model, hw, plan), pyengine.evaluate(model, hw2, plan)
    assert b.tpot_s - a.tpot_s == pytest.approx(extra, rel=1e-9)
    assert b.ttft_s - a.ttft_s == pytest.approx(2 * extra, rel=1e-9)  # two micro-batches
    assert b.time["step_overhead"] - a.time["step_overhead"] == pytest.approx(
        (2 + 32) * extra, rel=1e-9)
    train = Plan(global_batch=8, seq_len=2048)
    t1, t2 = pyengine.evaluate(model, hw, train), pyengine.evaluate(model, hw2, train)
    t3 = pyengine.evaluate(model, hw, train.with_(cuda_graphs=False))
    assert t1.outputs == t2.outputs == t3.outputs
    assert t1.time["step_overhead"] == 0.0


def test_large_training_is_not_launch_bound():
    """Training is launched eagerly, but a Llama 3 8B micro-batch of 8192 tokens keeps the
    GPU busy far longer than its launches take."""
    r = pyengine.evaluate(presets.model("llama3-8b"), presets.hardware("h100-sxm"),
                          Plan(global_batch=8, seq_len=8192, recompute="selective"))
    assert r.time["launch"] == 0.0
    assert r.outputs["kernels_per_step"] * 13e-6 < 0.05 * r.time["compute"]


def test_tiny_training_is_launch_bound():
    """A 2-layer toy model at 64 tokens a micro-batch: the host's launches pace it."""
    tiny = Model(name="tiny", n_layers=2, hidden=256, n_heads=4, ffn_hidden=1024, vocab=1000)
    hw = presets.hardware("h100-sxm")
    r = pyengine.evaluate(tiny, hw, Plan(global_batch=4, seq_len=64))
    kernels = r.outputs["kernels_per_step"]
    assert r.time["launch"] > 0
    per_mb = (r.time["compute"] + r.time["launch"]) / r.outputs["n_micro_batches"]
    assert per_mb == pytest.approx(kernels * hw.launch_overhead_s, rel=1e-12)


def test_prefill_computes_the_logits_of_the_last_position_only():
    """Engines sample the last position of each prompt (TensorRT-LLM
    gather_last_token_logits, vLLM's sampled positions): prefill's output layer is one row
    per sequence, training's one per token."""
    from pyengine import reference as R

    llama, h100 = presets.model("llama3-8b"), presets.hardware("h100-sxm")
    m, h = R.model_vector(llama), R.hardware_vector(h100)

    def output_s(mode: str) -> float:
        f = R.plan_fields(R.plan_vector(Plan(mode=mode, global_batch=2, micro_batch=2,
                                             seq_len=4096, gen_tokens=0)))
        return R.layer_stage(m, h, f, R.precisions(h, f)).costs.output_s

    prefill, training = output_s("prefill"), output_s("train")
    head_read = 2.0 * llama.vocab * llama.hidden / (h100.hbm_bandwidth_bytes_per_s
                                                     * h100.hbm_eff)
    # two rows: reading the 16-bit head weights dominates; training's 8192 rows are GEMM-bound
    assert head_read < prefill < 1.2 * head_read
    assert training > 10 * prefill


def test_explain_describes_serving_terms_as_serving():
    """An inference plan's time and memory terms say what they are for serving (forward
    only, per engine step; gradients, optimizer, bubble and recomputation training-only),
    not the training descriptions."""
    from pyengine import presets
    from pyengine.explain import explain, render_text
    from pyengine.specs import Plan

    text = render_text(explain(presets.model("llama3-8b"), presets.hardware("h100-sxm"),
                               Plan(mode="decode", dtype="fp8", global_batch=8, micro_batch=8,
                                    seq_len=1000, gen_tokens=100, max_num_tokens=8192)))
    assert "fwd + 2x bwd" not in text and "recomputed fwd" not in text
    assert "forward only" in text
    for term in ("grads", "optimizer", "recompute", "dp"):
        line = next(x for x in text.splitlines() if x.split()[:1] == [term])
        assert line.rstrip().endswith("training only"), line
    assert "activations per layer per micro-batch" not in text


# ---- [T26] the engine's host work per request


def request_plan(batch: int, **kw) -> Plan:
    """Max-throughput decode as trtllm-bench runs it: in-flight batching in a token
    budget, CUDA graphs; 1k/1k as the measurement (PR #10273)."""
    return Plan(mode="decode", dtype="nvfp4", global_batch=batch, micro_batch=batch,
                seq_len=1024, gen_tokens=1024, max_num_tokens=8192, **kw)


def test_request_overhead_default_is_the_published_host_step():
    """TensorRT-LLM PR #10273: GB200, 1536 requests per attention-DP rank, 45.11 ms of
    host work an iteration; the default reproduces it (with the fixed step cost) within
    0.5%."""
    raw = operators("trtllm_pyexecutor_host_step_time_gb200")
    assert "pull/10273" in raw["source"]
    v = raw["values"]
    hw = presets.hardware("gb200-nvl72")
    assert (v["requests_per_rank"] * hw.request_overhead_s + hw.step_overhead_s
            == pytest.approx(v["host_step_time_ms_cpp_scheduler"] * 1e-3, rel=5e-3))


def test_host_bound_decode_step_takes_the_requests_host_time():
    """[T26] a small model at a large batch: the GPU step is shorter than 1536 requests x
    29.3 us, so each decode step lasts the host's time (plus the fixed step cost)."""
    model = Model(name="llama3.2-1b", n_layers=16, hidden=2048, n_heads=32, n_kv_heads=8,
                  ffn_hidden=8192, vocab=128256, gated_mlp=True, tied_embeddings=True)
    hw = presets.hardware("gb200-nvl72")
    r = pyengine.evaluate(model, hw, request_plan(1536))
    free = pyengine.evaluate(model, hw.with_(request_overhead_s=0.0), request_plan(1536))
    assert free.tpot_s < 0.6 * r.tpot_s  # the GPU alone would be much faster
    # no step is shorter than its 1536 requests' host work (the 8192-token budget sustains
    # 4096 decode tokens at 1k/1k); with a prefill chunk a step may be longer (the GPU's)
    assert r.tpot_s >= 1536 * hw.request_overhead_s + hw.step_overhead_s - 1e-12
    assert r.time["launch"] > 0.0
    terms = sum(v for k, v in r.time.items() if k != "step")
    assert terms == pytest.approx(r.time["step"], rel=1e-12)


def test_request_overhead_hides_behind_a_gpu_bound_step():
    """[T26] Llama 3 70B at batch 64 on one H100: its decode step (~20 ms of weights)
    dwarfs 64 x 29.3 us, so the overlap scheduler hides the host work entirely."""
    model, hw = presets.model("llama3-70b"), presets.hardware("h200")
    plan = Plan(mode="decode", dtype="fp8", global_batch=64, seq_len=1024, gen_tokens=256,
                max_num_tokens=8192)
    a = pyengine.evaluate(model, hw, plan)
    b = pyengine.evaluate(model, hw.with_(request_overhead_s=0.0), plan)
    assert a.outputs == b.outputs


@pytest.mark.parametrize("extra_us", [10.0, 100.0])
def test_request_overhead_is_not_in_training(extra_us):
    model, hw = presets.model("llama3-8b"), presets.hardware("h100-sxm")
    train = Plan(global_batch=8, seq_len=2048)
    a = pyengine.evaluate(model, hw, train)
    b = pyengine.evaluate(model, hw.with_(request_overhead_s=extra_us * 1e-6), train)
    assert a.outputs == b.outputs
