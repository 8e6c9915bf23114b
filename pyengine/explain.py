"""One plan, itemised: every memory and time term with its unit and how it was derived.

The derivations call the reference's own helper functions (stage_params,
layer_activation_bytes, layer_costs) for the intermediate numbers, so what is shown is
what the kernel used.
"""

from __future__ import annotations

import math

import numpy as np

from . import reference as R
from . import schema as S
from .reference import Result, evaluate
from .specs import Hardware, Limits, Model, Plan

GiB = 2.0**30


# Numbers outside a human range print in scientific notation: absurd hardware gives steps
# of 1e300 s (a fixed-point format would print 300 digits) or rates of 1e-9 tokens/s
# (which would print as a silent 0).
HUGE = 1e15


def fmt_num(x: float, fmt: str = ",.0f", small: float = 0.5) -> str:
    """``x`` in ``fmt``, or with 4 significant digits when fmt would mislead: not finite,
    at least 1e15, or non-zero below ``small`` (where fmt would round it to 0)."""
    if not math.isfinite(x):
        return str(x)
    if abs(x) >= HUGE or (x != 0 and abs(x) < small):
        return f"{x:.4g}"
    return format(x, fmt)


def fmt_bytes(x: float) -> str:
    if not math.isfinite(x) or x >= HUGE * GiB:
        return f"{x:.4g} B"
    if x >= GiB:
        return f"{x / GiB:,.2f} GiB"
    if x >= 2**20:
        return f"{x / 2**20:,.1f} MiB"
    return f"{x:,.0f} B"


def fmt_s(x: float) -> str:
    if not math.isfinite(x) or x >= 1e6:  # past 11 days: seconds with an exponent
        return f"{x:.4g} s"
    if x >= 1.0 or x == 0.0:
        return f"{x:,.3f} s"
    if x >= 1e-3:
        return f"{x * 1e3:,.2f} ms"
    if x >= 1e-7:
        return f"{x * 1e6:,.1f} us"
    return f"{x:.4g} s"


def fmt_count(x: float) -> str:
    if not math.isfinite(x) or abs(x) >= HUGE:
        return f"{x:.4g}"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:,.2f}{unit}"
    return f"{x:,.0f}"


def derivations(model: Model, hardware: Hardware, plan: Plan, result: Result,
                limits: Limits | None = None) -> dict:
    """Intermediate quantities behind the terms: the kernel's own stage results (the
    pipeline split, MoE layers and holdings per stage kind, activation bytes per layer,
    ZeRO shards, serving memory by part), so nothing here re-derives them."""
    m = R.model_vector(model)
    h = R.hardware_vector(hardware)
    p = R.plan_vector(plan)
    f = R.plan_fields(p)
    pr = R.precisions(h, f)
    _, stages = R.evaluate_plan(m, h, R.limits_vector(), p, np.zeros(S.N_OUTPUTS),
                                R.no_stages(), 0)
    tp, pp, dp, cp, ep = plan.tp, plan.pp, plan.dp, plan.cp, plan.ep
    etp = plan.expert_tp
    params = {}
    for name, shape in (("first", stages.split.first), ("middle", stages.split.mid),
                        ("last", stages.split.last)):
        if name == "middle" and pp <= 2:
            continue
        params[name] = {"layers": shape.layers, "moe_layers": shape.moe_layers,
                        "dense_params": shape.dense_params, "expert_params": shape.expert_params}
    act = R.activations(m, f._replace(training=True), pr, stages.layer,
                        stages.batch.seqs_per_replica)
    pb = R.bytes_per_param(f, pr)
    edp = pb.expert_shard
    k = R.limits_vector(limits)
    mems = R.stage_memories(m, h, f, pr, R.activations(m, f, pr, stages.layer,
                                                        stages.batch.seqs_per_replica),
                            stages.layer, stages.split, stages.batch, pb,
                            h[S.H_HBM_CAPACITY] * k[S.K_MEM_FRACTION])
    full = mems.fullest
    kept = full.kept_params * pb.w_kept
    ctx = plan.seq_len + (plan.gen_tokens if plan.mode == "decode" else 0)
    blocks = math.ceil(ctx / (plan.cp * plan.kv_block_tokens))
    serving = {
        "weights_kept_16bit_bytes": kept,
        "weights_stored_bytes": result.memory["weights"] - kept,
        "weight_bytes": pr.wb,
        "workspace_tokens": (plan.max_num_tokens / plan.cp if plan.max_num_tokens
                             else stages.layer.n_tok),
        "kv_blocks_per_sequence": blocks,
        "kv_bytes_per_sequence_layer": (stages.layer.kv_elems * pr.kvb * blocks
                                        * plan.kv_block_tokens),
    }
    if plan.mode == "decode" and plan.max_num_tokens > 0:
        group = max(1.0, math.floor(stages.batch.seqs_per_replica / plan.pp))
        ranks = R.attention_ranks(m, f)
        cb = R.continuous_batch(m, f, group, ranks)
        serving["continuous"] = {"group": group, "decode_tokens": cb.decode,
                                 "prefill_tokens": cb.prefill, "chunk_tokens": cb.chunk,
                                 "chunks": cb.chunks, "mixed_share": cb.mixed,
                                 "budget_decode": cb.budget_decode,
                                 "attention_replicas": ranks,
                                 "busiest_prefill_tokens": cb.busiest}
    if plan.mode == "decode" and model.is_moe:
        serving["moe"] = moe_decode_step(m, f, pr, plan, serving, stages)
    return {
        "tokens_per_microbatch_per_gpu": stages.layer.n_tok,
        "serving": serving,
        "host": {"launch_overhead_s": hardware.launch_overhead_s,
                 "step_overhead_s": hardware.step_overhead_s,
                 "request_overhead_s": hardware.request_overhead_s,
                 "host_link_bandwidth_bytes_per_s": hardware.host_link_bandwidth_bytes_per_s},
        "micro_batches": stages.batch.n_micro,
        "gemm_shape": {"large_gemm_share": pr.rate / pr.peak, "token_half": pr.token_half,
                       "dim_half": h[S.H_GEMM_DIM_HALF], "serving_kernels": not f.training},
        "attention_rates": attention_rates(h, f, 0.5 * (m[S.M_QK_HEAD_DIM]
                                                       + m[S.M_V_HEAD_DIM])),
        "attention_span": attention_span(m, f, model, plan),
        "stages": params,
        "activation_bytes_per_layer": {"dense": act.dense_layer,
                                       "moe": act.moe_layer if model.is_moe else 0},
        "zero_shard_dense": dp * cp, "zero_shard_expert": edp,
        "edp": edp, "params_total": m[S.M_PARAMS_TOTAL], "params_active": m[S.M_PARAMS_ACTIVE],
        "world": f"{tp * cp * pp * dp} = tp {tp} x cp {cp} x pp {pp} x dp {dp}",
        "expert_fold": (f"ep {ep} x etp {etp} x edp {edp:g} = tp*cp*dp = {tp * cp * dp}; "
                        + dispatch_note(m, h, plan) if model.is_moe
                        else "dense model: no expert parallelism"),
    }


# what explain calls each fused-attention kernel (reference.fused_attention_shares' codes)
ATTENTION_KERNEL_NAMES = {0.0: "the GPU's fastest kernels", 1.0: "FlashAttention-2",
                          2.0: "the fused kernels in FP8", 3.0: "the memory-efficient kernels "
                          "(xFormers CUTLASS)", 4.0: "cuDNN's fused kernels"}


def attention_rates(h, f, head_dim: float) -> dict:
    """The fused-attention rates a plan runs at ([T18]) at long sequences and the model's
    head dimension: the shares the kernel's own reference.fused_attention_shares picks (the
    plan's kernel where the GPU has figures for it, else the GPU's fastest), times
    d/(d + attn_dim_half); zero where the GPU has no fused-attention figures (the core runs
    at the GEMM rate)."""
    r = R.fused_attention_shares(h, f.attn_kernel)
    if h[S.H_ATTN_EFF_FWD] <= 0.0:
        r = r._replace(eff_fwd=0.0, eff_bwd=0.0)
    fp8 = r.kernel == 2.0
    return {"kernels": ATTENTION_KERNEL_NAMES[r.kernel],
            # the rate at long sequences (half-rate point 0) per unit of peak
            "fwd": R.flash_attention_rate(h, 1.0, 1.0, head_dim, r.eff_fwd, 0.0),
            "bwd": R.flash_attention_rate(h, 1.0, 1.0, head_dim, r.eff_bwd, 0.0),
            "seq_half": r.half_fwd, "head_dim": head_dim,
            "fwd_peak": "FP8" if fp8 else "16-bit",
            "bwd_peak": ("FP8" if r.peak_bwd == r.peak_fwd else
                         "16-bit (no FP8 backward figures)") if fp8 else "16-bit"}


def attention_span(m, f, model: Model, plan: Plan) -> dict:
    """Chunked local attention ([T24]): the keys a prompt's query attends on average over
    the layers, against full causal attention (empty for full attention)."""
    if model.attention_chunk <= 0:
        return {}
    full = 0.5 * plan.seq_len if plan.flash_attention else float(plan.seq_len)
    span = {"chunk": model.attention_chunk, "global_every": model.global_every,
            "prompt_keys": R.attended(m, 0.0, plan.seq_len, full), "prompt_keys_full": full}
    if plan.mode == "decode":
        span.update(context_keys=R.decode_context(m, f),
                    context_keys_full=plan.seq_len + 0.5 * plan.gen_tokens)
    return span


def dispatch_note(m, h, plan: Plan) -> str:
    """How the token dispatcher moves a token to its experts ([C6], [C14])."""
    ep, etp = plan.ep, plan.expert_tp
    if plan.moe_token_dispatcher == "allgather":
        return (f"allgather dispatcher: each rank gathers the tokens of its {ep * etp} ETP x EP "
                "ranks and reduce-scatters the outputs")
    if plan.moe_token_dispatcher == "alltoall" or ep * etp <= h[S.H_NVLINK_DOMAIN]:
        return f"{plan.moe_token_dispatcher} dispatcher: all-to-all of the token-slots"
    per_domain = max(1.0, math.floor(h[S.H_NVLINK_DOMAIN] / etp))
    domains = ep / per_domain
    k = m[S.M_TOP_K]
    groups, group_topk = m[S.M_ROUTER_GROUPS], m[S.M_ROUTER_GROUP_TOPK]
    remote = R.remote_domains(domains, k, m[S.M_EXPERTS], groups, group_topk)
    limit = (f" (group-limited routing: its experts from {group_topk:g} of {groups:g} groups)"
             if groups > 0 else "")
    return (f"flex dispatcher (DeepEP/HybridEP): a token crosses the scale-out network to "
            f"{remote:.2f} of {domains - 1:g} remote NVLink domains on average{limit}, against "
            f"{k * (ep - per_domain) / ep:.2f} remote token-slots all-to-all")


def moe_decode_step(m, f, pr, plan: Plan, serving: dict, stages) -> dict:
    """The MoE layer of one decode step as the kernel costs it ([S4], [S5], [C6]): the
    step's tokens per GPU, the busiest expert rank's token-slots per expert and router
    rank against the mean, the share of its experts that run, the dispatch precision, the
    share of the dense GEMM rate its grouped expert GEMMs reach ([P4])."""
    cont = serving.get("continuous")
    if cont:
        tokens = cont["decode_tokens"] + cont["prefill_tokens"] / plan.cp
    else:
        tokens = max(1.0, math.floor(stages.batch.seqs_per_replica / plan.pp))
    mean = R.expert_capacity(m, tokens, f.cf, f.training).capacity
    load = R.expert_load(m, f, mean)
    return {"tokens_per_gpu": tokens, "slots_per_expert_mean": mean,
            "slots_per_expert_busiest": load.load, "active_share": load.active,
            "experts_per_rank": m[S.M_EXPERTS] / plan.ep, "dispatch_bytes": pr.db,
            "combine_bytes": pr.ab, "etp": plan.expert_tp,
            "grouped_gemm_share": pr.expert_rate / pr.rate,
            "attention": (f"tensor parallel (tp {plan.tp})" if plan.tp > 1 else
                          f"data parallel (dp {plan.dp}, tp 1)")}


def explain(model: Model, hardware: Hardware, plan: Plan, limits: Limits | None = None) -> dict:
    """Result plus derivations, as one JSON-ready dict."""
    result = evaluate(model, hardware, plan, limits)
    d = result.to_json()
    d["derivation"] = derivations(model, hardware, plan, result, limits)
    d["units"] = {"memory": "bytes per GPU", "time": "seconds per step",
                  "tokens_per_s": "tokens/s, all GPUs", "mfu": "fraction of peak"}
    return d


MEMORY_HOW = {
    "weights": "params on the fullest stage x {wb} B (/dp*cp dense, /edp expert with ZeRO-3)",
    "grads": "params x {gb} B (sharded with ZeRO >= 2)",
    "optimizer": "params x {ob} B: fp32 master + Adam m, v (sharded with ZeRO >= 1)",
    "activations": "per-layer bytes x layers x in-flight micro-batches (Korthikanti 2022)",
    "kv_cache": "sequences x context x layers x KV values per token x bytes",
    "overhead": "fixed: CUDA context, NCCL buffers, fragmentation",
    "buffers": "serving only",
}
# Serving memory as engines allocate it (inference modes)
SERVING_MEMORY_HOW = {
    "weights": "{stored} GEMM weights at {wb:g} B + {kept} kept in 16 bits (embedding, LM "
               "head, norms, routers)",
    "activations": "workspace: {ws:,.0f} tokens a step x one layer's working set + logits",
    "kv_cache": "{kv_how}",
    "buffers": "engine runtime: CUDA-graph pools, sampling buffers, all-reduce workspaces",
    "grads": "training only",
    "optimizer": "training only",
}
TIME_HOW = {
    "compute": "m micro-batches x slowest stage's operators (roofline each), fwd + 2x bwd",
    "recompute": "forward operators recomputed in backward",
    "offload": "CPU activation offloading: each offloaded layer's copy out (forward) and back "
               "(backward) over the {host} host link beyond a layer's compute",
    "tp": "2 all-reduces (or AG+RS with SP) per layer, fwd, bwd and recomputed fwd, on the "
          "TP tier; what no GEMM hides",
    "cp": "ring K/V exchange not hidden behind attention (all of it without cp_overlap)",
    "ep": "token dispatch + combine per MoE layer (the dispatcher's), fwd, bwd, recomputed fwd",
    "pp_p2p": "activation sends between stages (1/tp each with SP or scatter/gather)",
    "pp_bubble": "(p-1)/v micro-batch times idle",
    "dp": "gradient reduce-scatter/all-gather not hidden behind the last backward",
    "optimizer": "Adam step: fp32 states read and written at HBM bandwidth",
    "launch": "host kernel launches beyond the GPU time ({kernels:g} kernels x {launch} a step; "
              "decode steps in CUDA graphs launch none)",
    "step_overhead": "fixed cost per engine step, {step_cost} (scheduling, sampling, "
                     "detokenisation)",
}
# what the terms are for an inference plan (prefill, decode): forward only, no optimizer
SERVE_HOW = {
    **TIME_HOW,
    "compute": "every engine step's operators (roofline each), forward only: the prompts' "
               "prefill and the decode steps of every sequence's generated tokens",
    "recompute": "training only",
    "offload": "training only",
    "tp": "2 all-reduces (or AG+RS with SP) per layer a step on the TP tier; what no GEMM "
          "hides",
    "ep": "token dispatch + combine per MoE layer a step (the dispatcher's)",
    "pp_bubble": "training only (a serving pipeline keeps pp groups in flight)",
    "dp": "training only",
    "optimizer": "training only",
    "launch": "host work beyond the GPU time: {kernels:g} kernels x {launch} a step launched "
              "eagerly (decode steps in CUDA graphs launch none) plus {request} a request in "
              "the step, which the overlap scheduler hides until it is the longer",
}


def render_text(d: dict) -> str:
    """The readable table `pyengine explain` prints."""
    o = d["outputs"]
    dv = d["derivation"]
    plan = d["plan"]
    lines = []
    kv = "" if plan["mode"] == "train" or plan["kv_dtype"] == "auto" else \
        f", KV cache {plan['kv_dtype']}"
    lines.append(f"pyengine explain: {d['model']} on {d['hardware']}, {plan['mode']} "
                 f"({plan['dtype']}{kv})")
    lines.append(f"  params {fmt_count(dv['params_total'])} total, "
                 f"{fmt_count(dv['params_active'])} active per token")
    lines.append(f"  GPUs {dv['world']}   (world = tp x cp x pp x dp)")
    lines.append(f"  experts: {dv['expert_fold']}")
    lines.append(f"  batch {plan['global_batch']} seq x {plan['seq_len']} tok, micro-batch "
                 f"{plan['micro_batch']}: {o['n_micro_batches']:g} micro-batches, "
                 f"{fmt_num(dv['tokens_per_microbatch_per_gpu'])} tokens per GPU each")
    st = "  stage layers: first " + f"{o['layers_first_stage']:g}"
    if plan["pp"] > 2:
        st += f", middle up to {o['layers_middle_stage']:g}"
    if plan["pp"] > 1:
        st += f", last {o['layers_last_stage']:g}"
        counted = [w for w, on in (("embedding", plan["pp_embedding"]),
                                   ("loss", plan["pp_loss"])) if on]
        if counted:
            st += f" (the {' and '.join(counted)} counted as layers in the split)"
        fixed = [f"{w} {plan[k]}" for w, k in (("first", "pp_first_layers"),
                                                ("last", "pp_last_layers")) if plan[k]]
        if fixed:
            st += f" (fixed: {', '.join(fixed)})"
    mtp = dv["stages"]["last"]["layers"] - o["layers_last_stage"]
    if mtp > 0:
        st += (f"; + {mtp:g} multi-token-prediction module(s) on the last stage (training "
               "only, DeepSeek-V3 Sec. 2.2)")
    lines.append(st)
    if "capacity_per_expert" in o and o["capacity_per_expert"] > 0 and plan["mode"] == "train":
        lines.append(f"  expert capacity {o['capacity_per_expert']:g} tokens per expert per "
                     f"router rank; dropped {100 * o['dropped_fraction']:.1f}% of token-slots")
    elif "capacity_per_expert" in o and o["capacity_per_expert"] > 0:
        lines.append(f"  experts route dropless (inference): {o['capacity_per_expert']:,.4g} "
                     "token-slots per expert per router rank in a prefill pass")
    moe = dv["serving"].get("moe")
    if moe:
        lines.append(
            f"  MoE decode step: attention {moe['attention']}, experts ep {plan['ep']} x etp "
            f"{moe['etp']}; {fmt_num(moe['tokens_per_gpu'])} tokens per GPU route "
            f"{moe['slots_per_expert_mean']:.3g} slots per expert per router rank, the busiest "
            f"rank {moe['slots_per_expert_busiest']:.3g} "
            f"({moe['slots_per_expert_busiest'] / moe['slots_per_expert_mean']:.2f}x); "
            f"{100 * moe['active_share']:.0f}% of its {moe['experts_per_rank']:g} experts run "
            f"and read their weights, their grouped GEMMs at {moe['grouped_gemm_share']:.2f}x "
            f"the dense GEMM rate (the serving engine's MoE kernels); dispatch "
            f"{moe['dispatch_bytes']:.3g} B a value, combine {moe['combine_bytes']:g} B")
    if d["feasible"]:
        lines.append("  FEASIBLE")
    else:
        lines.append("  INFEASIBLE:")
        for v in d["violation_details"]:
            lines.append(f"    - {v}")
    lines.append("")
    wb = 1 if plan["dtype"] == "fp8" and plan["mode"] != "train" else 2
    gb = 4 if plan["grad_dtype"] == "fp32" else 2
    lines.append(f"Memory per GPU (fullest stage)        {'':>12}  how")
    sv = dv["serving"]
    if plan["mode"] == "train":
        kv_how = ""
    elif plan["kv_cache_fraction"] > 0:
        kv_how = (f"pool: {plan['kv_cache_fraction']:g} of the memory left, "
                  f"{sv['kv_blocks_per_sequence']:g} blocks of {plan['kv_block_tokens']} tokens "
                  f"a sequence: holds {o['max_concurrency']:,.0f} sequences")
    else:
        kv_how = (f"the requests' own: sequences x {sv['kv_blocks_per_sequence']:g} blocks of "
                  f"{plan['kv_block_tokens']} tokens x layers x KV bytes; "
                  f"{o['max_concurrency']:,.0f} sequences would fit")
    for term, how in MEMORY_HOW.items():
        if plan["mode"] != "train" and term in SERVING_MEMORY_HOW:
            how = SERVING_MEMORY_HOW[term].format(
                stored=fmt_bytes(sv["weights_stored_bytes"]), wb=sv["weight_bytes"],
                kept=fmt_bytes(sv["weights_kept_16bit_bytes"]), ws=sv["workspace_tokens"],
                kv_how=kv_how)
        else:
            how = how.format(wb=wb, gb=gb, ob=8 if plan["optimizer_dtype"] == "bf16" else 12)
        lines.append(f"  {term:<14} {fmt_bytes(d['memory'][term]):>14}  " + how)
    cap = o["mem_total_bytes"] / max(1.0, d.get("hbm_bytes", 0) or 1.0)
    lines.append(f"  {'total':<14} {fmt_bytes(d['memory']['total']):>14}"
                 + (f"  ({fmt_num(100 * cap)}% of HBM)" if d.get("hbm_bytes") else ""))
    stage_mem = {"first": o["mem_first_stage_bytes"], "middle": o["mem_middle_stage_bytes"],
                 "last": o["mem_last_stage_bytes"]}
    for name, s in dv["stages"].items():
        lines.append(f"    {name} stage: {fmt_bytes(stage_mem[name])} per GPU, "
                     f"{s['layers']:g} layers ({s['moe_layers']:g} MoE), "
                     f"{fmt_count(s['dense_params'])} dense + {fmt_count(s['expert_params'])} "
                     f"expert params per GPU")
    if plan["mode"] == "train":
        savers = []
        if plan["recompute"] == "selective":
            savers += ["recompute " + m.removeprefix("recompute_") for m in (
                "recompute_core_attn", "recompute_layernorm", "recompute_mla_up_proj",
                "recompute_mlp", "recompute_moe", "recompute_moe_act",
                "recompute_shared_experts") if plan[m]]
        elif plan["recompute"] == "full":
            n = plan["recompute_layers"]
            savers.append(f"full recompute of {n} layer(s) per virtual stage" if n
                          else "full recompute of every layer")
        if plan["cpu_offload_layers"]:
            savers.append(f"activations of the first {plan['cpu_offload_layers']} layer(s) "
                          "offloaded to host memory")
        if plan["fp8_activations"]:
            savers.append("GEMM inputs kept in FP8")
        if plan["optimizer_dtype"] == "bf16":
            savers.append("Adam moments in BF16")
        lines.append("    memory savers: " + (", ".join(savers) if savers else "none"))
    act = dv["activation_bytes_per_layer"]
    if plan["mode"] == "train":
        lines.append(f"    activations per layer per micro-batch: dense "
                     f"{fmt_bytes(act['dense'])}"
                     + (f", MoE {fmt_bytes(act['moe'])}" if act["moe"] else ""))
    lines.append("")
    step = d["time"]["step"]
    lines.append("Time per step" if plan["mode"] == "train" else "Time for the batch")
    hw = dv.get("host", {})
    for term, how in (TIME_HOW if plan["mode"] == "train" else SERVE_HOW).items():
        t = d["time"][term]
        share = 100 * t / step if step > 0 else 0.0
        how = how.format(kernels=o["kernels_per_step"],
                         launch=fmt_s(hw.get("launch_overhead_s", 0.0)),
                         step_cost=fmt_s(hw.get("step_overhead_s", 0.0)),
                         request=fmt_s(hw.get("request_overhead_s", 0.0)),
                         host=f"{hw.get('host_link_bandwidth_bytes_per_s', 0.0) / 1e9:g} GB/s")
        lines.append(f"  {term:<14} {fmt_s(t):>14} {share:5.1f}%  {how}")
    lines.append(f"  {'step':<14} {fmt_s(step):>14}")
    lines.append("    overlaps: " + ", ".join(
        f"{what} {'on' if plan[key] else 'off'}" for what, key in (
            ("TP collectives pipelined with GEMMs", "tp_overlap"),
            ("TP input-gradient collectives behind weight-gradient GEMMs", "tp_dgrad_overlap"),
            ("CP ring behind the same step's attention", "cp_overlap"),
            ("EP dispatch + combine behind another micro-batch", "ep_overlap"),
            ("DP buckets behind backward", "dp_overlap"),
            ("PP scatter/gather over TP (no SP)", "pp_scatter_gather"))))
    if not plan["flash_attention"]:
        attn = "unfused (the score matrix goes through HBM)"
    elif not dv["attention_rates"]["fwd"]:
        attn = "fused, at the GEMM rate (no fused-attention figures for this GPU)"
    else:
        rates = dv["attention_rates"]
        if rates["fwd_peak"] == rates["bwd_peak"]:
            shares = (f"{100 * rates['fwd']:.0f}% / {100 * rates['bwd']:.0f}% of the "
                      f"{rates['fwd_peak']} peak forward / backward")
        else:
            shares = (f"{100 * rates['fwd']:.0f}% of the {rates['fwd_peak']} peak forward, "
                      f"{100 * rates['bwd']:.0f}% of the {rates['bwd_peak']} peak backward")
        attn = (f"fused, {rates['kernels']} at {shares} at long sequences and head dim "
                f"{rates['head_dim']:g}, half that at {rates['seq_half']:g} keys")
    gemm = dv["gemm_shape"]
    kernels = ("the serving engine's kernels" if gemm["serving_kernels"]
               else "the training libraries' kernels")
    lines.append(f"    GEMMs: large ones at {100 * gemm['large_gemm_share']:.0f}% of the "
                 f"{plan['dtype']} peak, each dimension d at d/(d + half) of that, half being "
                 f"{gemm['token_half']:g} tokens in M ({kernels}) and {gemm['dim_half']:g} in "
                 "N and K")
    lines.append(f"    attention: {attn}")
    span = dv["attention_span"]
    if span:
        every = (f", every {span['global_every']:g}th layer global" if span["global_every"]
                 else "")
        text = (f"    chunked attention ({span['chunk']:,} tokens{every}): a prompt's query "
                f"attends {span['prompt_keys']:,.0f} keys on average over the layers "
                f"({span['prompt_keys_full']:,.0f} with full attention)")
        if "context_keys" in span:
            text += (f"; a decode token {span['context_keys']:,.0f} "
                     f"({span['context_keys_full']:,.0f})")
        lines.append(text)
    if plan["mode"] == "decode":
        how = "replayed from CUDA graphs" if plan["cuda_graphs"] else "launched eagerly"
        lines.append(f"    decode steps {how}; {o['kernels_per_step']:g} kernels per decode step")
    cont = dv["serving"].get("continuous")
    if cont:
        lines.append(
            f"    continuous batching, {plan['max_num_tokens']:,} tokens a step: steps of "
            f"{fmt_num(cont['decode_tokens'], ',.1f')} decode + "
            f"{fmt_num(cont['prefill_tokens'], ',.1f')} prefill tokens on average "
            f"(budget sustains {fmt_num(cont['budget_decode'], ',.0f')} decode); a prompt in "
            f"{cont['chunks']:g} chunk(s) of {fmt_num(cont['chunk_tokens'], ',.0f')} tokens, "
            f"{100 * cont['mixed_share']:.1f}% of steps carry one")
        if cont["attention_replicas"] > 1:
            lines.append(
                f"    attention data parallel: {cont['attention_replicas']:g} replicas meet at "
                "every MoE layer, so a step waits for the busiest, with "
                f"{fmt_num(cont['busiest_prefill_tokens'], ',.1f')} prefill tokens on average "
                "(time in 'compute')")
    lines.append("")
    lines.append("Throughput")
    lines.append(f"  tokens/s            {fmt_num(o['tokens_per_s'])}  "
                 f"({fmt_num(o['tokens_per_s_per_gpu'], ',.1f', 0.05)} per GPU = "
                 f"{fmt_num(o['tokens_per_s_per_gpu'] / 1e3, ',.3f', 5e-4)} tokens/ms per GPU)")
    lines.append(f"  MFU                 {fmt_num(100 * o['mfu'], '.1f', 0.05)}%  "
                 f"({fmt_num(o['model_tflops_per_gpu'], ',.1f', 0.05)} model TFLOP/s per GPU; "
                 f"{fmt_num(o['hw_tflops_per_gpu'], ',.1f', 0.05)} with recomputation)")
    lines.append(f"  model FLOPs/step    {o['model_flops_per_step']:.4g}")
    if plan["mode"] != "train":
        queue = ("  (its chunk steps after the prefill work of the prompts ahead: M/D/1 at the "
                 "rate the clients sustain)" if dv["serving"].get("continuous") else "")
        lines.append(f"  TTFT                {fmt_s(o['ttft_s'])}{queue}")
        if plan["mode"] == "decode":
            lines.append(f"  TPOT (ITL)          {fmt_s(o['tpot_s'])}")
            lines.append(f"  KV cache holds      {fmt_num(o['max_concurrency'])} sequences "
                         f"(concurrency {plan['global_batch']})")
    return "\n".join(lines)


__all__ = ["explain", "render_text", "derivations", "fmt_bytes", "fmt_s", "fmt_count", "fmt_num"]
