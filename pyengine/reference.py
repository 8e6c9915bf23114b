"""The cost model, scalar and readable: the specification every backend is tested against.

``evaluate(model, hardware, plan) -> Result`` is the public entry. Underneath,
``evaluate_plan(m, h, k, p, out)`` is the kernel: float64 vectors in (model, hardware,
limits, one plan; indices from :mod:`pyengine.schema`), the output vector filled, the
feasibility code returned. It is written in the subset Numba compiles (floats, ``math``,
``np.floor``/``np.ceil``/``np.log2``, small functions), so ``backends/numba_cpu.py``
compiles THIS source; ``csrc/cost_model.hpp`` is its C++ twin with the same function
names, variable names and ``[tag]`` comments in the same order (a test checks the tags).

Conventions (Megatron-Core): world = tp*cp*pp*dp; expert layers re-fold the same GPUs as
etp*ep*edp = tp*cp*dp; placement puts TP innermost, then CP, then DP (EP inside it), PP
outermost, and a group crosses nodes when stride*size > gpus_per_node.
All arithmetic is float64 (integer-valued where it counts things) so that every backend
agrees and nothing overflows.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass

import numpy as np

from . import schema as S
from .specs import Hardware, Limits, Model, Plan

# --------------------------------------------------------------------------- helpers


def ceil_div(a, b):
    return np.ceil(a / b)


def divides(b, a):
    # exact for integer-valued a < 2**53 (then a/b is exact or at least 1/b from an
    # integer); cheaper than fmod. Backends compile it without FMA contraction.
    return a - b * np.floor(a / b) == 0.0


def roofline_s(flops, nbytes, flops_per_s, bytes_per_s):
    # [T1] roofline: an operator takes the longer of its compute and its memory traffic.
    return max(flops / flops_per_s, nbytes / bytes_per_s)


def gemm_efficiency(min_dim, h):
    # [T2] share of the large-GEMM rate a GEMM whose smallest dimension is min_dim
    # attains: saturating, one half at gemm_dim_half (thin GEMMs fill few tiles).
    return min_dim / (min_dim + h[S.H_GEMM_DIM_HALF])


def gemm_s(flops, nbytes, min_dim, rate, h):
    # [T3] one GEMM (or a batch of same-shape GEMMs): roofline at its attainable FLOP/s;
    # `rate` is the large-GEMM rate of its dtype (peak x gemm_eff_max[_fp8]).
    # A GEMM thinner than one row (no tokens routed) is costed as one row: never 0/0.
    return roofline_s(flops, nbytes, rate * gemm_efficiency(max(min_dim, 1.0), h),
                      h[S.H_HBM_BANDWIDTH] * h[S.H_HBM_EFF]) + h[S.H_OP_OVERHEAD]


def memory_bound_s(nbytes, n_ops, h):
    # [T4] elementwise work (norms, residuals, activations, permutes): bandwidth-bound.
    return nbytes / (h[S.H_HBM_BANDWIDTH] * h[S.H_HBM_EFF]) + n_ops * h[S.H_OP_OVERHEAD]


def group_bandwidth(stride, size, h):
    # [C1] a group of `size` ranks spaced `stride` apart stays inside a node when
    # stride*size <= gpus_per_node; otherwise its ring crosses the inter-node links.
    if stride * size > h[S.H_GPUS_PER_NODE]:
        return h[S.H_INTER_BW] * h[S.H_NET_EFF]
    return h[S.H_INTRA_BW] * h[S.H_NET_EFF]


def group_latency(stride, size, h):
    if stride * size > h[S.H_GPUS_PER_NODE]:
        return h[S.H_INTER_LATENCY]
    return h[S.H_INTRA_LATENCY]


def allreduce_s(nbytes, size, stride, h):
    # [C2] all-reduce of nbytes per rank: ring 2(g-1)/g bandwidth term, or double binary
    # tree with log-depth latency, whichever is faster (NCCL picks likewise).
    if size <= 1.0:
        return 0.0
    bw = group_bandwidth(stride, size, h)
    lat = group_latency(stride, size, h)
    ring = 2.0 * (size - 1.0) / size * nbytes / bw + 2.0 * (size - 1.0) * lat
    tree = 2.0 * nbytes / bw + 2.0 * np.ceil(np.log2(size)) * lat
    return min(ring, tree)


def allgather_s(nbytes, size, stride, h):
    # [C3] all-gather / reduce-scatter of a buffer of nbytes (full size): ring (g-1)/g.
    if size <= 1.0:
        return 0.0
    bw = group_bandwidth(stride, size, h)
    lat = group_latency(stride, size, h)
    return (size - 1.0) / size * nbytes / bw + (size - 1.0) * lat


def alltoall_s(nbytes, size, stride, h):
    # [C4] all-to-all of nbytes per rank: (g-1)/g of it leaves the rank.
    return allgather_s(nbytes, size, stride, h)


def p2p_s(nbytes, stride, h):
    # [C5] point-to-point send between neighbouring ranks `stride` apart.
    return nbytes / group_bandwidth(stride, 2.0, h) + group_latency(stride, 2.0, h)


def moe_layers_in(first, last, m):
    # [S2] MoE layers among layer indices [first, last): index i is MoE when
    # i >= first_k_dense and (i - first_k_dense) % moe_every == 0.
    if m[S.M_EXPERTS] <= 0.0:
        return 0.0
    lo = max(first - m[S.M_FIRST_K_DENSE], 0.0)
    hi = last - m[S.M_FIRST_K_DENSE]
    if hi <= lo:
        return 0.0
    return ceil_div(hi, m[S.M_MOE_EVERY]) - ceil_div(lo, m[S.M_MOE_EVERY])


# --------------------------------------------------------------------------- layers

# Forward cost of one layer for one micro-batch on one GPU, split by kind so that the
# caller can scale, recompute and expose each part. Seconds.
LayerCosts = namedtuple(
    "LayerCosts",
    ["attn_s", "attn_core_s", "mlp_s", "moe_s", "tp_s", "cp_s", "ep_s", "embed_s", "output_s"],
)


def layer_costs(m, h, n_tok, keys, kv_len, decode, seqs, tp, cp, etp, ep, sp, flash,
                capacity, rate, ab, wb, kvb):
    """Forward cost of each layer kind for n_tok query tokens per GPU.

    keys: keys each query attends to (causal flash halves them); kv_len: cached context
    (decode); seqs: sequences in the micro-batch; capacity: expert capacity per router;
    rate: attainable large-GEMM FLOP/s of the compute dtype (attention runs in BF16).
    """
    hid = m[S.M_HIDDEN]
    heads_local = m[S.M_HEADS] / tp
    sp_div = tp if sp else 1.0
    rate16 = h[S.H_PEAK_BF16] * h[S.H_GEMM_EFF_MAX]

    # [T5] attention projections (QKV + output): 2 * tokens * weights FLOPs, TP-sharded.
    q_dim = m[S.M_HEADS] * m[S.M_QK_HEAD_DIM]
    o_dim = m[S.M_HEADS] * m[S.M_V_HEAD_DIM]
    kv_dim = m[S.M_KV_HEADS] * (m[S.M_QK_HEAD_DIM] + m[S.M_V_HEAD_DIM])
    proj_flops = 2.0 * n_tok * m[S.M_ATTN_GEMM_PARAMS] / tp
    proj_bytes = (m[S.M_ATTN_GEMM_PARAMS] / tp * wb
                  + n_tok * ab * (2.0 * hid + (q_dim + kv_dim + 2.0 * o_dim) / tp))
    proj_s = gemm_s(proj_flops, proj_bytes, min(n_tok, hid / tp), rate, h) + h[S.H_OP_OVERHEAD]

    # [T6] attention core: QK^T and AV, 2*tokens*keys*heads*(d_qk + d_v) FLOPs in bf16.
    # Flash streams K/V and writes only O; unfused attention also moves the score
    # matrix (write, softmax read+write, read for AV: 8 B/score, +5 with dropout).
    # Decode reads the cached K/V of every sequence.
    core_flops = 2.0 * n_tok * keys * heads_local * (m[S.M_QK_HEAD_DIM] + m[S.M_V_HEAD_DIM])
    core_bytes = n_tok * ab * (q_dim + 2.0 * o_dim) / tp
    if decode:
        core_bytes += seqs * kv_len * kv_cache_elems_per_gpu(m, tp) * kvb / cp
    else:
        core_bytes += n_tok * ab * kv_dim / tp
    if not flash:
        core_bytes += n_tok * keys * heads_local * (8.0 + 5.0 * m[S.M_DROPOUT])
    attn_core_s = gemm_s(core_flops, core_bytes, min(n_tok, m[S.M_QK_HEAD_DIM]), rate16, h)

    # [T7] attention-side elementwise: norm (r+w), residual add (2r+w), rope, dropout.
    attn_elem_s = memory_bound_s(n_tok * hid * ab * (5.0 + 2.0 * m[S.M_DROPOUT]) / sp_div
                                 + n_tok * ab * q_dim / tp, 3.0, h)
    attn_s = proj_s + attn_core_s + attn_elem_s

    # [T8] dense MLP: g = 3 matrices if gated else 2; GEMM traffic x + g*f + y;
    # activation function reads and writes g*f.
    mlp_s = mlp_forward_s(m, h, n_tok, m[S.M_FFN], tp, sp_div, rate, ab, wb)

    # [T9] MoE MLP: router GEMM, permute/unpermute, routed experts, shared experts.
    # Per GPU the experts process E*capacity/tp token-slots (conservation over the
    # folded expert group), m_e = capacity*ep*etp/tp slots per local expert, each
    # expert sharded over etp. Thin m_e makes the expert GEMMs memory-bound by itself.
    moe_s = 0.0
    ep_s = 0.0
    if m[S.M_EXPERTS] > 0.0:
        gated = m[S.M_GATED]
        n_mat = 2.0 + gated
        experts_local = m[S.M_EXPERTS] / ep
        slots = m[S.M_EXPERTS] * capacity / tp
        m_e = capacity * ep * etp / tp
        router_s = gemm_s(2.0 * n_tok / sp_div * hid * m[S.M_EXPERTS],
                          n_tok / sp_div * (hid * ab + m[S.M_EXPERTS] * 4.0),
                          min(n_tok / sp_div, m[S.M_EXPERTS]), rate16, h)
        permute_s = memory_bound_s(4.0 * slots * hid * ab, 4.0, h)
        expert_flops = 2.0 * experts_local * m_e * hid * m[S.M_EXPERT_FFN] * n_mat / etp
        expert_bytes = experts_local * (hid * m[S.M_EXPERT_FFN] * n_mat / etp * wb
                                        + m_e * ab * (2.0 * hid
                                                      + 2.0 * n_mat * m[S.M_EXPERT_FFN] / etp))
        experts_s = (gemm_s(expert_flops, expert_bytes,
                            min(m_e, m[S.M_EXPERT_FFN] / etp), rate, h)
                     + 2.0 * h[S.H_OP_OVERHEAD])
        shared_s = 0.0
        if m[S.M_SHARED_FFN] > 0.0:
            shared_s = mlp_forward_s(m, h, n_tok, m[S.M_SHARED_FFN], tp, sp_div, rate, ab, wb)
        moe_s = router_s + permute_s + experts_s + shared_s
        # [C6] expert dispatch + combine: two all-to-alls of the slots over the EP group
        # (stride etp); with etp > 1 the slots are also gathered / scattered over ETP.
        slot_bytes = slots * hid * ab
        ep_s = (2.0 * alltoall_s(slot_bytes, ep, etp, h)
                + 2.0 * allgather_s(slot_bytes, etp, 1.0, h))

    # [C7] tensor parallel: per layer two all-reduces of the activations (or, with
    # sequence parallelism, two all-gathers + two reduce-scatters of the same volume).
    act_bytes = n_tok * hid * ab
    if sp:
        tp_s = 4.0 * allgather_s(act_bytes, tp, 1.0, h)
    else:
        tp_s = 2.0 * allreduce_s(act_bytes, tp, 1.0, h)

    # [C8] context parallel: ring attention passes K/V around the CP group (stride tp),
    # overlapped with the attention core; only the excess is exposed. Decode keeps K/V in
    # place and merges partial softmax results.
    cp_s = 0.0
    if cp > 1.0:
        if decode:
            cp_s = allreduce_s(n_tok * o_dim / tp * ab, cp, tp, h)
        else:
            ring_s = (cp - 1.0) * p2p_s(n_tok * kv_dim / tp * ab, tp, h)
            cp_s = max(0.0, ring_s - attn_core_s)

    # [T10] embedding lookup (first stage) and output layer + loss (last stage).
    embed_s = memory_bound_s(2.0 * n_tok * hid * ab / sp_div, 1.0, h)
    out_tok = seqs if decode else n_tok
    output_s = (gemm_s(2.0 * out_tok * hid * m[S.M_VOCAB] / tp,
                       hid * m[S.M_VOCAB] / tp * wb + out_tok * m[S.M_VOCAB] / tp * 4.0,
                       min(out_tok, hid), rate, h)
                + memory_bound_s(2.0 * out_tok * m[S.M_VOCAB] / tp * 4.0, 2.0, h))
    return LayerCosts(attn_s, attn_core_s, mlp_s, moe_s, tp_s, cp_s, ep_s, embed_s, output_s)


def mlp_forward_s(m, h, n_tok, ffn, tp, sp_div, rate, ab, wb):
    # [T8] (see layer_costs) a dense or shared-expert MLP of intermediate size ffn.
    n_mat = 2.0 + m[S.M_GATED]
    hid = m[S.M_HIDDEN]
    flops = 2.0 * n_tok * hid * ffn * n_mat / tp
    nbytes = hid * ffn * n_mat / tp * wb + n_tok * ab * (2.0 * hid + n_mat * ffn / tp)
    elem_bytes = n_tok * ab * n_mat * ffn / tp + n_tok * hid * ab * (5.0 + m[S.M_DROPOUT]) / sp_div
    return (gemm_s(flops, nbytes, min(n_tok, ffn / tp), rate, h) + h[S.H_OP_OVERHEAD]
            + memory_bound_s(elem_bytes, 3.0, h))


def kv_cache_elems_per_gpu(m, tp):
    # [M7] KV-cache values per token and layer on one GPU: GQA shards K/V heads over TP
    # (a head is replicated when tp > kv_heads); MLA caches one compressed latent that
    # every TP rank keeps whole.
    if m[S.M_MLA] > 0.0:
        return m[S.M_KV_CACHE_ELEMS]
    return ceil_div(m[S.M_KV_HEADS], tp) * (m[S.M_QK_HEAD_DIM] + m[S.M_V_HEAD_DIM])


# --------------------------------------------------------------------------- memory


def layer_activation_bytes(m, n_tok, keys, tp, sp, flash, recompute, moe_layer, capacity, etp):
    """Activation bytes one layer keeps for backward, for n_tok tokens on one GPU.

    [M3] Korthikanti et al. 2022, Sec. 4 / Table 2: a GPT layer keeps sbh(34 + 5as/h)
    bytes with 16-bit activations and 1-byte dropout masks. Term by term (n = sb):
      attention: norm input 2nh, QKV input 2nh, Q and K 4nh, V 2nh, softmax output
      2as^2b, dropout mask as^2b, dropout output 2as^2b, projection input 2nh, dropout
      mask nh  ->  11nh + 5as^2b;   MLP: norm input 2nh, fc input 2nh, GeLU input 8nh,
      GeLU output 8nh, dropout mask nh -> 19nh.  Total 34nh + 5as^2b.
    Generalised: Q/K/V/O widths from the heads (GQA, MLA); no dropout -> no masks and one
    copy of the softmax output (2as^2b); flash attention keeps no scores, only fp32
    softmax statistics (4 B per head and token); gated MLP keeps gate and up outputs and
    the SwiGLU output (6nf) instead of GeLU in/out (4nf, = 16nh at f = 4h).
    TP divides the tensor-parallel parts (Q,K,V,O, scores, MLP hidden) by t; sequence
    parallelism also divides the rest (norms, dropout masks) by t. Selective recompute
    drops the score terms; full recompute keeps only the layer input 2nh (/t with SP).
    MoE layers replace the MLP hidden with capacity-bound expert slots (2h input +
    gated 6f/etp or 4f/etp each), router logits in fp32, and shared experts.
    """
    hid = m[S.M_HIDDEN]
    sp_div = tp if sp else 1.0
    if recompute == 2.0:
        return 2.0 * n_tok * hid / sp_div
    dropout = m[S.M_DROPOUT]
    q_dim = m[S.M_HEADS] * m[S.M_QK_HEAD_DIM]
    k_dim = m[S.M_KV_HEADS] * m[S.M_QK_HEAD_DIM]
    v_dim = m[S.M_KV_HEADS] * m[S.M_V_HEAD_DIM]
    o_dim = m[S.M_HEADS] * m[S.M_V_HEAD_DIM]
    # non-tensor-parallel parts: norm inputs, QKV/fc inputs (2nh each), dropout masks
    replicated = n_tok * hid * (8.0 + 2.0 * dropout)
    attn_parallel = n_tok * (2.0 * q_dim + 2.0 * k_dim + 2.0 * v_dim + 2.0 * o_dim)
    if flash:
        scores = 4.0 * n_tok * m[S.M_HEADS]
    else:
        scores = n_tok * keys * m[S.M_HEADS] * (2.0 + 3.0 * dropout)
        if recompute == 1.0:
            scores = 0.0
    mlp_width = 6.0 if m[S.M_GATED] > 0.0 else 4.0
    if moe_layer:
        # slots kept on this GPU: E*capacity/tp * etp (each ETP rank keeps whole inputs)
        slots = m[S.M_EXPERTS] * capacity / tp * etp
        mlp_parallel = (slots * (2.0 * hid + mlp_width * m[S.M_EXPERT_FFN] / etp) * tp
                        + n_tok * mlp_width * m[S.M_SHARED_FFN])
        replicated += 4.0 * n_tok * m[S.M_EXPERTS]
    else:
        mlp_parallel = n_tok * mlp_width * m[S.M_FFN]
    return replicated / sp_div + (attn_parallel + scores + mlp_parallel) / tp


# Parameters one GPU holds per layer kind, before ZeRO sharding.
Holdings = namedtuple("Holdings", ["dense_layer", "moe_layer", "expert_layer", "embed_extra",
                                   "output_extra"])


def layer_holdings(m, pp, tp, etp, ep):
    # [M1] dense parameters (attention, dense MLP, shared experts, embeddings) are sharded
    # over TP; norms, routers and position embeddings are replicated; routed experts are
    # split E/ep per GPU and each over etp. The first stage holds the input embedding,
    # the last the output layer (a tied embedding needs its own copy there when pp > 1).
    dense_layer = (m[S.M_ATTN_PARAMS] + m[S.M_MLP_PARAMS]) / tp + m[S.M_NORM_PARAMS]
    moe_layer = ((m[S.M_ATTN_PARAMS] + m[S.M_SHARED_PARAMS]) / tp + m[S.M_NORM_PARAMS]
                 + m[S.M_ROUTER_PARAMS])
    expert_layer = 0.0
    if m[S.M_EXPERTS] > 0.0:
        expert_layer = m[S.M_EXPERTS] / ep * m[S.M_EXPERT_PARAMS] / etp
    embed_extra = m[S.M_EMBED_PARAMS] / tp + m[S.M_POS_PARAMS]
    output_extra = m[S.M_FINAL_NORM_PARAMS]
    if m[S.M_OUTPUT_PARAMS] > 0.0 or pp > 1.0:
        output_extra += m[S.M_EMBED_PARAMS] / tp
    return Holdings(dense_layer, moe_layer, expert_layer, embed_extra, output_extra)


def stage_params(n_layers, n_moe, first, last, held):
    """(dense, expert) parameters one GPU of a stage holds before ZeRO sharding: its
    layers' holdings, plus the input embedding on the first stage and the output layer
    on the last."""
    dense = (n_layers - n_moe) * held.dense_layer + n_moe * held.moe_layer
    if first:
        dense += held.embed_extra
    if last:
        dense += held.output_extra
    return dense, n_moe * held.expert_layer


def zero_shard(shard, zero, stage):
    # [M2] ZeRO stage >= 1 shards optimizer states, >= 2 gradients, 3 parameters
    return shard if zero >= stage else 1.0


# --------------------------------------------------------------------------- the plan


def evaluate_plan(m, h, k, p, out, cache, reuse):
    """Evaluate one plan: fill `out` (indices S.O_*) and return the feasibility code.

    An empty `out` (length 0) asks for the code only: the timings are skipped.

    `cache` (length S.N_CACHE) receives values that depend on leading plan columns only;
    `reuse` says which may be read back instead of computed: 0 none; 1 the per-layer
    costs, valid when the previous call's plan differed only in columns >= S.CACHE_FROM;
    2 also the stage split and holdings, valid when it differed only in columns
    >= S.CACHE2_FROM; 3 also the micro-batch count and the checks before vpp, valid when
    it differed only in columns >= S.CACHE3_FROM (space kernels know which column changed
    from their odometer). Every cache slot is written before the code-only return.
    """
    # [P1] plan fields
    mode = p[S.P_MODE]
    training = mode == 0.0
    decode = mode == 2.0
    fp8 = p[S.P_DTYPE] == 1.0
    gbs = p[S.P_GLOBAL_BATCH]
    mbs = p[S.P_MICRO_BATCH]
    seq = p[S.P_SEQ_LEN]
    gen = p[S.P_GEN_TOKENS]
    tp = p[S.P_TP]
    pp = p[S.P_PP]
    dp = p[S.P_DP]
    cp = p[S.P_CP]
    ep = p[S.P_EP]
    etp = p[S.P_ETP] if p[S.P_ETP] > 0.0 else tp
    vpp = p[S.P_VPP]
    zero = p[S.P_ZERO] if training else 0.0
    recompute = p[S.P_RECOMPUTE] if training else 0.0
    sp = p[S.P_SEQUENCE_PARALLEL] > 0.0 and tp > 1.0
    cf = p[S.P_CAPACITY_FACTOR]
    flash = p[S.P_FLASH_ATTENTION] > 0.0
    grad_bytes = 2.0 if p[S.P_GRAD_DTYPE] == 1.0 else 4.0
    tp_overlap = p[S.P_TP_OVERLAP] > 0.0

    # [P2] precisions: bf16 weights and activations in training (FP8 GEMMs keep bf16
    # master copies); FP8 inference stores weights and the KV cache in one byte.
    ab = 2.0
    wb = 1.0 if fp8 and not training else 2.0
    kvb = 1.0 if fp8 and not training else 2.0
    peak = h[S.H_PEAK_BF16]
    rate = peak * h[S.H_GEMM_EFF_MAX]
    if fp8 and h[S.H_PEAK_FP8] > 0.0:
        peak = h[S.H_PEAK_FP8]
        rate = peak * h[S.H_GEMM_EFF_MAX_FP8]

    L = m[S.M_LAYERS]
    is_moe = m[S.M_EXPERTS] > 0.0
    n_gpus = tp * cp * pp * dp
    edp = tp * cp * dp / (etp * ep)

    # [F1] feasibility: every violated constraint sets its bit. The checks on columns
    # before S.CACHE_FROM (heads, FFN, experts, sequence) are cached with the layer costs,
    # those on columns before S.CACHE3_FROM (EP folding, batch, GPU count) with the
    # micro-batch count; only the pipeline-depth checks involve vpp.
    if reuse >= 3:
        code = int(cache[24])
        seqs_per_replica = cache[25]
        n_micro = cache[26]
    else:
        if reuse:
            code = int(cache[11])
        else:
            code = 0
            if not divides(tp, m[S.M_HEADS]):
                code |= S.V_TP_HEADS
            if m[S.M_MLA] == 0.0 and not divides(tp, m[S.M_KV_HEADS]) and \
                    not divides(m[S.M_KV_HEADS], tp):
                code |= S.V_TP_KV_HEADS
            if not divides(tp, m[S.M_FFN]):
                code |= S.V_TP_FFN
            if is_moe and not divides(etp, m[S.M_EXPERT_FFN]):
                code |= S.V_ETP_FFN
            if (is_moe and not divides(ep, m[S.M_EXPERTS])) or (not is_moe and ep > 1.0):
                code |= S.V_EP_EXPERTS
            if cp > 1.0 and not divides(2.0 * cp, seq):
                code |= S.V_CP_SEQ
            if sp and not divides(cp * tp, seq):
                code |= S.V_SP_SEQ
            cache[11] = code
        if is_moe and not divides(etp * ep, tp * cp * dp):
            code |= S.V_EP_FOLD
        seqs_per_replica = gbs / dp
        n_micro = max(1.0, np.floor(seqs_per_replica / mbs))
        if not divides(dp * mbs, gbs):
            code |= S.V_BATCH
        if k[S.K_GPUS_EXACT] > 0.0 and n_gpus != k[S.K_GPUS_EXACT]:
            code |= S.V_GPUS_EXACT
        if k[S.K_GPUS_MAX] > 0.0 and n_gpus > k[S.K_GPUS_MAX]:
            code |= S.V_GPUS_MAX
        cache[24] = code
        cache[25] = seqs_per_replica
        cache[26] = n_micro
    if pp * vpp > L:
        code |= S.V_PP_LAYERS
    if vpp > 1.0 and (pp == 1.0 or not divides(pp, n_micro)):
        code |= S.V_VPP_SCHEDULE

    # [S1] pipeline split: layers as even as possible; the remainder goes to the middle
    # stages so that the first and last (holding the embedding and the output layer)
    # get fewer (Llama 3 405B: 126 layers on 16 stages -> 7, 8 x 14, 7).
    if reuse >= 2:
        layers_first = cache[12]
        layers_last = cache[13]
        layers_mid = cache[14]
        moe_first = cache[15]
        moe_last = cache[16]
        moe_mid = cache[17]
    else:
        base = np.floor(L / pp)
        rem = L - base * pp
        mid_extra = min(rem, max(pp - 2.0, 0.0))
        layers_first = base + (rem - mid_extra)
        layers_last = base if pp > 1.0 else layers_first
        layers_mid = base + (1.0 if mid_extra > 0.0 else 0.0) if pp > 2.0 else 0.0
        # [S2] MoE layers per stage: first stage [0, f), last stage [L-l, L), and the
        # middle stage just before the last, which holds the most MoE layers when dense
        # ones lead.
        moe_first = moe_layers_in(0.0, layers_first, m)
        moe_last = moe_layers_in(L - layers_last, L, m) if pp > 1.0 else moe_first
        moe_mid = moe_layers_in(L - layers_last - layers_mid, L - layers_last, m)
        cache[12] = layers_first
        cache[13] = layers_last
        cache[14] = layers_mid
        cache[15] = moe_first
        cache[16] = moe_last
        cache[17] = moe_mid

    # [S3] tokens: a training/prefill pass of a micro-batch puts mbs*seq/cp tokens on
    # each GPU; a decode step puts one token per sequence. Flash skips the masked half
    # of causal attention; unfused attention computes every score.
    n_tok = mbs * seq / cp
    keys = seq * 0.5 if flash else seq
    ctx = seq + gen if decode else seq

    # [S4] expert capacity (DESIGN.md): capacity = ceil(k * T * cf / E) per expert for the
    # T tokens one router rank sees; balanced routing drops what exceeds it.
    capacity = 0.0
    dropped = 0.0
    if is_moe:
        if reuse:
            capacity = cache[27]
            dropped = cache[28]
        else:
            t_router = n_tok
            capacity = np.ceil(m[S.M_TOP_K] * t_router * cf / m[S.M_EXPERTS])
            dropped = max(0.0, 1.0 - m[S.M_EXPERTS] * capacity / (m[S.M_TOP_K] * t_router))
            cache[27] = capacity
            cache[28] = dropped
        if capacity <= 0.0:
            code |= S.V_MOE_NO_CAPACITY

    # [T11] per-layer forward costs of one micro-batch pass, and model FLOPs per token of
    # a pass and of a decode step (at the mean context seq + gen/2).
    kv_mean = seq + 0.5 * gen
    if reuse:
        c = load_costs(cache, 0)
        fwd_flops_tok = cache[9]
        dec_flops_tok = cache[10]
    else:
        c = layer_costs(m, h, n_tok, keys, 0.0, False, mbs, tp, cp, etp, ep, sp, flash,
                        capacity, rate, ab, wb, kvb)
        fwd_flops_tok = model_forward_flops_per_token(m, seq)
        dec_flops_tok = 0.0
        if decode:
            dec_flops_tok = model_forward_flops_per_token(m, kv_mean)
        store_costs(cache, 0, c)
        cache[9] = fwd_flops_tok
        cache[10] = dec_flops_tok
    # [M1] parameters one GPU holds, per layer kind and per stage
    if reuse >= 2:
        d_first = cache[18]
        e_first = cache[19]
        d_last = cache[20]
        e_last = cache[21]
        d_mid = cache[22]
        e_mid = cache[23]
    else:
        held = layer_holdings(m, pp, tp, etp, ep)
        d_first, e_first = stage_params(layers_first, moe_first, True, pp == 1.0, held)
        d_last, e_last = stage_params(layers_last, moe_last, pp == 1.0, True, held)
        d_mid, e_mid = stage_params(layers_mid, moe_mid, False, False, held)
        cache[18] = d_first
        cache[19] = e_first
        cache[20] = d_last
        cache[21] = e_last
        cache[22] = d_mid
        cache[23] = e_mid

    # [M2] bytes per parameter held (ZeRO paper: 2 + 2 + K, K = 12 for Adam's fp32 master
    # weights, m and v), each term divided by its ZeRO shard: DP*CP ranks for dense
    # parameters, EDP for expert parameters. Inference holds the weights only.
    dense_shard = dp * cp
    expert_shard = edp
    w_dense = wb / zero_shard(dense_shard, zero, 3.0)
    w_expert = wb / zero_shard(expert_shard, zero, 3.0)
    g_dense = 0.0
    g_expert = 0.0
    o_dense = 0.0
    o_expert = 0.0
    if training:
        g_dense = grad_bytes / zero_shard(dense_shard, zero, 2.0)
        g_expert = grad_bytes / zero_shard(expert_shard, zero, 2.0)
        o_dense = 12.0 / zero_shard(dense_shard, zero, 1.0)
        o_expert = 12.0 / zero_shard(expert_shard, zero, 1.0)

    # [M5] in-flight micro-batches under 1F1B: stage i holds min(m, p - i); interleaving
    # multiplies the first stage's by 1 + (p-1)/(p*v) (Korthikanti Sec. 4.2.3).
    inflight_first = min(n_micro, pp)
    if vpp > 1.0:
        inflight_first = inflight_first * (1.0 + (pp - 1.0) / (pp * vpp))
    inflight_mid = min(n_micro, max(pp - 1.0, 1.0))
    act_dense = layer_activation_bytes(m, n_tok, seq, tp, sp, flash, recompute, False,
                                       capacity, etp)
    act_moe = layer_activation_bytes(m, n_tok, seq, tp, sp, flash, recompute, True,
                                     capacity, etp)
    # [M6] logits kept in fp32 for the loss on the last stage (one micro-batch at a time)
    logits_bytes = n_tok * m[S.M_VOCAB] / tp * 4.0

    if training:
        act_first = inflight_first * ((layers_first - moe_first) * act_dense
                                      + moe_first * act_moe
                                      + 2.0 * n_tok * m[S.M_HIDDEN] / (tp if sp else 1.0))
        act_last = (layers_last - moe_last) * act_dense + moe_last * act_moe + logits_bytes
        if pp == 1.0:
            act_first = act_first + logits_bytes
            act_last = act_first
        act_mid = inflight_mid * ((layers_mid - moe_mid) * act_dense + moe_mid * act_moe)
    else:
        # [M8] inference keeps no activations for backward: the working set of one layer
        # (input, QKV, MLP hidden, scores without flash) plus the last token's logits.
        act_inf = ab * n_tok * (4.0 * m[S.M_HIDDEN] + (2.0 + m[S.M_GATED])
                                * max(m[S.M_FFN], m[S.M_EXPERT_FFN]) / tp)
        if not flash:
            act_inf += ab * n_tok * seq * m[S.M_HEADS] / tp
        act_inf += mbs * m[S.M_VOCAB] / tp * 4.0
        act_first = act_inf
        act_last = act_inf
        act_mid = act_inf

    # [M7] KV cache (inference): sequences per replica x context x layers on the stage x
    # values per token and layer on this GPU; CP shards the context.
    if not reuse:
        cache[29] = kv_cache_elems_per_gpu(m, tp)
    kv_tok = cache[29] * kvb * seqs_per_replica * ctx / cp
    kv_first = 0.0
    kv_last = 0.0
    kv_mid = 0.0
    if not training:
        kv_first = kv_tok * layers_first
        kv_last = kv_tok * layers_last
        kv_mid = kv_tok * layers_mid

    # [M4] memory of each stage's GPU; the fullest one is itemised
    per_dense = w_dense + g_dense + o_dense
    per_expert = w_expert + g_expert + o_expert
    overhead = h[S.H_MEM_OVERHEAD]
    mem_first = d_first * per_dense + e_first * per_expert + act_first + kv_first + overhead
    mem_last = d_last * per_dense + e_last * per_expert + act_last + kv_last + overhead
    mem_mid = d_mid * per_dense + e_mid * per_expert + act_mid + kv_mid + overhead
    d_full = d_first
    e_full = e_first
    act_full = act_first
    kv_full = kv_first
    mem_total = mem_first
    if mem_last > mem_total:
        d_full = d_last
        e_full = e_last
        act_full = act_last
        kv_full = kv_last
        mem_total = mem_last
    if mem_mid > mem_total:
        d_full = d_mid
        e_full = e_mid
        act_full = act_mid
        kv_full = kv_mid
        mem_total = mem_mid
    if mem_total > h[S.H_HBM_CAPACITY] * k[S.K_MEM_FRACTION]:
        code |= S.V_MEMORY
    # [F1] every constraint is decided by now: a caller that wants only the code passes
    # an empty `out` and skips the timings (count and sweep kernels; the cached values
    # above are all filled, so a later call may reuse them).
    if out.shape[0] == 0:
        return code

    out[S.O_MEM_WEIGHTS_BYTES] = d_full * w_dense + e_full * w_expert
    out[S.O_MEM_GRADS_BYTES] = d_full * g_dense + e_full * g_expert
    out[S.O_MEM_OPTIMIZER_BYTES] = d_full * o_dense + e_full * o_expert
    out[S.O_MEM_ACTIVATIONS_BYTES] = act_full
    out[S.O_MEM_KV_CACHE_BYTES] = kv_full
    out[S.O_MEM_OVERHEAD_BYTES] = overhead
    out[S.O_MEM_TOTAL_BYTES] = mem_total

    dense_fwd = c.attn_s + c.mlp_s
    moe_fwd = c.attn_s + c.moe_s
    # [T12] training: backward = 2x forward FLOPs and traffic (data and weight gradients);
    # full recompute repeats each layer's forward, selective only the attention core.
    passes = 3.0 if training else 1.0
    comm_passes = 2.0 if training else 1.0
    recompute_layer = 0.0
    if recompute == 2.0:
        recompute_layer = 1.0
    recompute_core = c.attn_core_s if recompute == 1.0 else 0.0

    # [T13] per-micro-batch time of each stage kind; the slowest one paces the pipeline.
    first_compute = stage_compute_s(layers_first, moe_first, dense_fwd, moe_fwd, passes,
                                    c.embed_s, c.output_s if pp == 1.0 else 0.0)
    last_compute = stage_compute_s(layers_last, moe_last, dense_fwd, moe_fwd, passes,
                                   c.embed_s if pp == 1.0 else 0.0, c.output_s)
    mid_compute = stage_compute_s(layers_mid, moe_mid, dense_fwd, moe_fwd, passes, 0.0, 0.0)
    first_re = layers_first * recompute_core + recompute_layer * (
        (layers_first - moe_first) * dense_fwd + moe_first * moe_fwd)
    last_re = layers_last * recompute_core + recompute_layer * (
        (layers_last - moe_last) * dense_fwd + moe_last * moe_fwd)
    mid_re = layers_mid * recompute_core + recompute_layer * (
        (layers_mid - moe_mid) * dense_fwd + moe_mid * moe_fwd)
    # [C11] TP communication overlap (tp_overlap: Megatron/Transformer Engine userbuffers)
    # splits each collective into chunks pipelined with the GEMMs it feeds: only what
    # exceeds the layer's GEMM time stays exposed.
    tp_dense = c.tp_s
    tp_moe = c.tp_s
    if tp_overlap:
        tp_dense = max(0.0, c.tp_s - (c.attn_s - c.attn_core_s + c.mlp_s))
        tp_moe = max(0.0, c.tp_s - (c.attn_s - c.attn_core_s + c.moe_s))
    first_comm = comm_passes * ((layers_first - moe_first) * tp_dense + moe_first * tp_moe
                                + layers_first * c.cp_s + moe_first * c.ep_s)
    last_comm = comm_passes * ((layers_last - moe_last) * tp_dense + moe_last * tp_moe
                               + layers_last * c.cp_s + moe_last * c.ep_s)
    mid_comm = comm_passes * ((layers_mid - moe_mid) * tp_dense + moe_mid * tp_moe
                              + layers_mid * c.cp_s + moe_mid * c.ep_s)
    first_total = first_compute + first_re + first_comm
    last_total = last_compute + last_re + last_comm
    mid_total = mid_compute + mid_re + mid_comm
    # pick the slowest stage, and keep its itemisation
    mb_s = first_total
    mb_compute = first_compute
    mb_re = first_re
    n_layers_slow = layers_first
    n_moe_slow = moe_first
    if last_total > mb_s:
        mb_s = last_total
        mb_compute = last_compute
        mb_re = last_re
        n_layers_slow = layers_last
        n_moe_slow = moe_last
    if mid_total > mb_s:
        mb_s = mid_total
        mb_compute = mid_compute
        mb_re = mid_re
        n_layers_slow = layers_mid
        n_moe_slow = moe_mid
    mb_tp = comm_passes * ((n_layers_slow - n_moe_slow) * tp_dense + n_moe_slow * tp_moe)
    mb_cp = comm_passes * n_layers_slow * c.cp_s
    mb_ep = comm_passes * n_moe_slow * c.ep_s

    # [C9] pipeline: one activation (/t with SP) per micro-batch per stage boundary and
    # direction, vpp times with interleaving; PP ranks are tp*cp*dp apart.
    pp_stride = tp * cp * dp
    p2p_one = p2p_s(n_tok * m[S.M_HIDDEN] * ab / (tp if sp else 1.0), pp_stride, h)
    if pp <= 1.0:
        p2p_one = 0.0


    # [M4]/[T14] the slowest stage's parameters drive DP traffic and the optimizer step;
    # take the largest stage holding.
    d_max = max(d_first, max(d_last, d_mid))
    e_max = max(e_first, max(e_last, e_mid))

    if training:
        # [T16] step = m micro-batches of the slowest stage + bubble (p-1)/v of them
        # + pipeline sends + exposed DP traffic + optimizer.
        bubble_s = (pp - 1.0) / vpp * mb_s
        p2p_total = 2.0 * n_micro * vpp * p2p_one
        # [C10] gradients: all-reduce (ZeRO 0) or reduce-scatter + parameter all-gather
        # (ZeRO >= 1, distributed optimizer) over DP*CP (stride tp) for dense and EDP
        # (stride etp*ep) for expert parameters. The gradient reduction overlaps the last
        # micro-batch's backward, the parameter all-gather the next step's first forward;
        # the excess is exposed. ZeRO-3 also gathers parameters in every fwd and bwd.
        fwd_mb = mb_compute / 3.0
        bwd_mb = mb_compute - fwd_mb + mb_re
        gather_dp = 0.0
        if zero == 0.0:
            reduce_dp = (allreduce_s(d_max * grad_bytes, dense_shard, tp, h)
                         + allreduce_s(e_max * grad_bytes, expert_shard, etp * ep, h))
        else:
            reduce_dp = (allgather_s(d_max * grad_bytes, dense_shard, tp, h)
                         + allgather_s(e_max * grad_bytes, expert_shard, etp * ep, h))
            gather_dp = (allgather_s(d_max * wb, dense_shard, tp, h)
                         + allgather_s(e_max * wb, expert_shard, etp * ep, h))
        dp_s = max(0.0, reduce_dp - bwd_mb) + max(0.0, gather_dp - fwd_mb)
        if zero == 3.0:
            gather_s = (allgather_s(d_max * wb, dense_shard, tp, h)
                        + allgather_s(e_max * wb, expert_shard, etp * ep, h))
            dp_s += n_micro * max(0.0, 2.0 * gather_s - mb_compute)
        # [T14] optimizer: Adam reads and writes fp32 master weights and both moments,
        # reads the gradient and writes the bf16 weight, for the parameters it owns.
        opt_params = (d_max / zero_shard(dense_shard, zero, 1.0)
                      + e_max / zero_shard(expert_shard, zero, 1.0))
        opt_s = memory_bound_s(opt_params * (24.0 + grad_bytes + wb), 4.0, h)
        step_s = n_micro * mb_s + bubble_s + p2p_total + dp_s + opt_s
        tokens = gbs * seq
        model_flops = 3.0 * fwd_flops_tok * tokens
        hw_flops = model_flops + tokens * recompute_flops_per_token(m, seq, recompute,
                                                                    fwd_flops_tok)
        out[S.O_TIME_COMPUTE_S] = n_micro * mb_compute
        out[S.O_TIME_RECOMPUTE_S] = n_micro * mb_re
        out[S.O_TIME_TP_S] = n_micro * mb_tp
        out[S.O_TIME_CP_S] = n_micro * mb_cp
        out[S.O_TIME_EP_S] = n_micro * mb_ep
        out[S.O_TIME_PP_P2P_S] = p2p_total
        out[S.O_TIME_PP_BUBBLE_S] = bubble_s
        out[S.O_TIME_DP_S] = dp_s
        out[S.O_TIME_OPTIMIZER_S] = opt_s
        ttft = 0.0
        tpot = 0.0
    else:
        # [T17] inference. Prefill: the replica's prompts flow through the pipeline in
        # n_micro micro-batches, (n_micro + p - 1) slowest-stage times (TTFT). Decode
        # (continuous batching): each step advances every sequence of the replica by one
        # token, in p groups that keep the pipeline full, at the mean context
        # seq + gen/2: TPOT = p x one group's slowest-stage time.
        fill = n_micro + pp - 1.0
        ttft = fill * (mb_s + p2p_one)
        t_compute = n_micro * mb_compute
        t_tp = n_micro * mb_tp
        t_cp = n_micro * mb_cp
        t_ep = n_micro * mb_ep
        t_p2p = fill * p2p_one
        bubble_s = (pp - 1.0) * mb_s
        model_flops = fwd_flops_tok * gbs * seq
        tpot = 0.0
        if decode:
            group = max(1.0, np.floor(seqs_per_replica / pp))
            d_cap = 0.0
            if is_moe:
                d_cap = np.ceil(m[S.M_TOP_K] * group * cf / m[S.M_EXPERTS])
            dc = layer_costs(m, h, group, kv_mean, kv_mean, True, group, tp, cp, etp, ep,
                             False, flash, d_cap, rate, ab, wb, kvb)
            n_l = n_layers_slow
            n_mo = n_moe_slow
            dec_compute = ((n_l - n_mo) * (dc.attn_s + dc.mlp_s) + n_mo * (dc.attn_s + dc.moe_s)
                           + dc.embed_s + dc.output_s)
            dec_tp = n_l * dc.tp_s
            dec_cp = n_l * dc.cp_s
            dec_ep = n_mo * dc.ep_s
            dec_p2p = 0.0
            if pp > 1.0:
                dec_p2p = p2p_s(group * m[S.M_HIDDEN] * ab, pp_stride, h)
            tpot = pp * (dec_compute + dec_tp + dec_cp + dec_ep + dec_p2p)
            t_compute += gen * pp * dec_compute
            t_tp += gen * pp * dec_tp
            t_cp += gen * pp * dec_cp
            t_ep += gen * pp * dec_ep
            t_p2p += gen * pp * dec_p2p
            model_flops += gen * gbs * dec_flops_tok
        step_s = t_compute + t_tp + t_cp + t_ep + t_p2p + bubble_s
        out[S.O_TIME_COMPUTE_S] = t_compute
        out[S.O_TIME_RECOMPUTE_S] = 0.0
        out[S.O_TIME_TP_S] = t_tp
        out[S.O_TIME_CP_S] = t_cp
        out[S.O_TIME_EP_S] = t_ep
        out[S.O_TIME_PP_P2P_S] = t_p2p
        out[S.O_TIME_PP_BUBBLE_S] = bubble_s
        out[S.O_TIME_DP_S] = 0.0
        out[S.O_TIME_OPTIMIZER_S] = 0.0
        tokens = gbs * gen if decode else gbs * seq
        hw_flops = model_flops

    # [O1] outputs
    out[S.O_N_GPUS] = n_gpus
    out[S.O_N_MICRO_BATCHES] = n_micro
    out[S.O_LAYERS_FIRST_STAGE] = layers_first
    out[S.O_LAYERS_MIDDLE_STAGE] = layers_mid
    out[S.O_LAYERS_LAST_STAGE] = layers_last
    out[S.O_CAPACITY_PER_EXPERT] = capacity
    out[S.O_DROPPED_FRACTION] = dropped
    out[S.O_TIME_STEP_S] = step_s
    out[S.O_TOKENS_PER_S] = tokens / step_s
    out[S.O_TOKENS_PER_S_PER_GPU] = tokens / step_s / n_gpus
    out[S.O_MODEL_FLOPS_PER_STEP] = model_flops
    out[S.O_MFU] = model_flops / (step_s * n_gpus * peak)
    out[S.O_MODEL_TFLOPS_PER_GPU] = model_flops / (step_s * n_gpus) * 1e-12
    out[S.O_HW_TFLOPS_PER_GPU] = hw_flops / (step_s * n_gpus) * 1e-12
    out[S.O_TTFT_S] = ttft
    out[S.O_TPOT_S] = tpot
    return code


def stage_compute_s(n_layers, n_moe, dense_fwd, moe_fwd, passes, embed_s, output_s):
    # [T13] compute of one stage for one micro-batch (forward, and backward when training)
    return passes * ((n_layers - n_moe) * dense_fwd + n_moe * moe_fwd + embed_s + output_s)


def load_costs(cache, at):
    # [T11] (see evaluate_plan) LayerCosts kept in the cache vector
    return LayerCosts(cache[at], cache[at + 1], cache[at + 2], cache[at + 3], cache[at + 4],
                      cache[at + 5], cache[at + 6], cache[at + 7], cache[at + 8])


def store_costs(cache, at, c):
    cache[at] = c.attn_s
    cache[at + 1] = c.attn_core_s
    cache[at + 2] = c.mlp_s
    cache[at + 3] = c.moe_s
    cache[at + 4] = c.tp_s
    cache[at + 5] = c.cp_s
    cache[at + 6] = c.ep_s
    cache[at + 7] = c.embed_s
    cache[at + 8] = c.output_s


def model_forward_flops_per_token(m, ctx):
    # [T15] model FLOPs per token, forward (Narayanan et al. 2021 eq. 3 counting): 2 FLOPs
    # per GEMM weight a token touches (experts: top-k, shared experts, the output layer)
    # + attention scores and context, 2*ctx*(d_qk+d_v) per head and layer
    # (no causal halving); training multiplies by 3.
    n_moe = moe_layers_in(0.0, m[S.M_LAYERS], m)
    n_dense = m[S.M_LAYERS] - n_moe
    n_mat = 2.0 + m[S.M_GATED]
    hid = m[S.M_HIDDEN]
    per_layer_attn = (m[S.M_ATTN_GEMM_PARAMS]
                      + ctx * m[S.M_HEADS] * (m[S.M_QK_HEAD_DIM] + m[S.M_V_HEAD_DIM]))
    moe_mlp = (m[S.M_TOP_K] * hid * m[S.M_EXPERT_FFN] * n_mat + hid * m[S.M_SHARED_FFN] * n_mat
               + hid * m[S.M_EXPERTS])
    return 2.0 * (m[S.M_LAYERS] * per_layer_attn + n_dense * m[S.M_MLP_GEMM_PARAMS]
                  + n_moe * moe_mlp + hid * m[S.M_VOCAB])


def recompute_flops_per_token(m, ctx, recompute, fwd_flops_tok):
    # [T12] recomputed forward FLOPs: full = every layer's forward (not the output layer);
    # selective = the attention scores and context only.
    if recompute == 2.0:
        return fwd_flops_tok - 2.0 * m[S.M_HIDDEN] * m[S.M_VOCAB]
    if recompute == 1.0:
        return 2.0 * m[S.M_LAYERS] * ctx * m[S.M_HEADS] * (m[S.M_QK_HEAD_DIM] + m[S.M_V_HEAD_DIM])
    return 0.0


# Helpers the Numba backend registers as jitable (the kernel's call graph).
KERNEL_FUNCTIONS = (
    ceil_div, divides, roofline_s, gemm_efficiency, gemm_s, memory_bound_s, group_bandwidth,
    group_latency, allreduce_s, allgather_s, alltoall_s, p2p_s, moe_layers_in, layer_costs,
    mlp_forward_s, kv_cache_elems_per_gpu, layer_activation_bytes, layer_holdings, stage_params,
    zero_shard, stage_compute_s, load_costs, store_costs, model_forward_flops_per_token,
    recompute_flops_per_token,
)


# --------------------------------------------------------------------------- packing
# Run once per model / hardware / plan, in Python, for every backend alike.


def model_vector(model: Model) -> np.ndarray:
    """The model as the kernel sees it: facts and parameter counts (schema.MODEL)."""
    mo = model
    h = mo.hidden
    n_mat = 3 if mo.gated_mlp else 2
    norm_w = 2 if mo.norm == "layernorm" else 1  # LayerNorm: weight + bias
    mla = mo.kv_lora_rank > 0
    qk_d = mo.head_dim + mo.rope_head_dim
    v_d = mo.v_head_dim
    a = mo.n_heads
    kv = a if mla else mo.n_kv_heads
    if mla:
        # [M0] MLA (DeepSeek-V2/V3): low-rank query and joint KV compression; the decoupled
        # RoPE key is shared by the heads. Norms on the two latents are replicated.
        if mo.q_lora_rank:
            q_proj = h * mo.q_lora_rank + mo.q_lora_rank * a * qk_d
        else:
            q_proj = h * a * qk_d
        kv_proj = (h * (mo.kv_lora_rank + mo.rope_head_dim)
                   + mo.kv_lora_rank * a * (mo.head_dim + v_d))
        attn_gemm = q_proj + kv_proj + a * v_d * h
        latent_norms = mo.q_lora_rank + mo.kv_lora_rank
        kv_cache = mo.kv_lora_rank + mo.rope_head_dim
    else:
        attn_gemm = h * (a * qk_d + kv * (qk_d + v_d)) + a * v_d * h
        latent_norms = 0
        kv_cache = kv * (qk_d + v_d)
    attn_bias = (a * qk_d + kv * (qk_d + v_d) + h) if mo.bias else 0
    mlp_gemm = h * mo.ffn_hidden * n_mat
    mlp_bias = (mo.ffn_hidden * (n_mat - 1) + h) if mo.bias else 0
    norm_params = 2 * norm_w * h + latent_norms
    expert = h * mo.expert_ffn_hidden * n_mat
    shared_ffn = mo.n_shared_experts * mo.expert_ffn_hidden
    shared = h * shared_ffn * n_mat
    router = h * mo.n_experts
    embed = mo.vocab * h
    pos = mo.learned_pos_emb * h
    output = 0 if mo.tied_embeddings else mo.vocab * h
    final_norm = norm_w * h
    n_moe = mo.n_moe_layers
    n_dense = mo.n_layers - n_moe
    common = (mo.n_layers * (attn_gemm + attn_bias + norm_params) + n_dense * (mlp_gemm + mlp_bias)
              + n_moe * (shared + router) + embed + pos + output + final_norm)
    values = {
        "layers": mo.n_layers, "hidden": h, "heads": a, "kv_heads": kv, "qk_head_dim": qk_d,
        "v_head_dim": v_d, "ffn": mo.ffn_hidden, "vocab": mo.vocab,
        "gated": 1 if mo.gated_mlp else 0, "dropout": 1 if mo.dropout else 0,
        "mla": 1 if mla else 0, "kv_cache_elems": kv_cache, "experts": mo.n_experts,
        "top_k": mo.top_k, "expert_ffn": mo.expert_ffn_hidden, "shared_ffn": shared_ffn,
        "first_k_dense": mo.first_k_dense, "moe_every": mo.moe_every,
        "attn_params": attn_gemm + attn_bias, "attn_gemm_params": attn_gemm,
        "norm_params": norm_params, "mlp_params": mlp_gemm + mlp_bias,
        "mlp_gemm_params": mlp_gemm, "expert_params": expert, "shared_params": shared,
        "router_params": router, "embed_params": embed, "pos_params": pos,
        "output_params": output, "final_norm_params": final_norm,
        "params_total": common + n_moe * mo.n_experts * expert,
        "params_active": common + n_moe * mo.top_k * expert,
    }
    return np.array([float(values[c.name]) for c in S.MODEL], dtype=np.float64)


def hardware_vector(hw: Hardware) -> np.ndarray:
    values = {
        "peak_bf16": hw.peak_bf16_flops_per_s, "peak_fp8": hw.peak_fp8_flops_per_s,
        "hbm_capacity": hw.hbm_capacity_bytes, "hbm_bandwidth": hw.hbm_bandwidth_bytes_per_s,
        "gpus_per_node": hw.gpus_per_node, "intra_bw": hw.intra_node_bandwidth_bytes_per_s,
        "inter_bw": hw.inter_node_bandwidth_bytes_per_s,
        "intra_latency": hw.intra_node_latency_s, "inter_latency": hw.inter_node_latency_s,
        "gemm_eff_max": hw.gemm_eff_max, "gemm_eff_max_fp8": hw.gemm_eff_max_fp8,
        "gemm_dim_half": hw.gemm_dim_half,
        "hbm_eff": hw.hbm_eff, "net_eff": hw.net_eff, "op_overhead": hw.op_overhead_s,
        "mem_overhead": hw.memory_overhead_bytes,
    }
    return np.array([float(values[c.name]) for c in S.HARDWARE], dtype=np.float64)


def limits_vector(limits: Limits | None = None) -> np.ndarray:
    li = limits or Limits()
    return np.array([float(li.gpus_exact), float(li.gpus_max), li.mem_fraction])


def encode_plan_value(col: S.Column, value) -> float:
    """A plan field as its kernel number (categorical -> code, bool -> 0/1)."""
    if col.kind == "choice":
        return float(col.choices.index(value))
    if col.kind == "bool":
        return 1.0 if value else 0.0
    return float(value)


def plan_vector(plan: Plan) -> np.ndarray:
    return np.array([encode_plan_value(c, getattr(plan, c.name)) for c in S.PLAN])


# --------------------------------------------------------------------------- result

MEMORY_TERMS = ("weights", "grads", "optimizer", "activations", "kv_cache", "overhead")
TIME_TERMS = ("compute", "recompute", "tp", "cp", "ep", "pp_p2p", "pp_bubble", "dp", "optimizer")


@dataclass(frozen=True)
class Result:
    """One plan's evaluation: every output column, itemised memory and time, violations."""

    model: Model
    hardware: Hardware
    plan: Plan
    code: int
    outputs: dict[str, float]

    @property
    def feasible(self) -> bool:
        return self.code == 0

    @property
    def violations(self) -> list[str]:
        return S.decode_violations(self.code)

    @property
    def n_gpus(self) -> int:
        return int(self.outputs["n_gpus"])

    @property
    def memory(self) -> dict[str, float]:
        d = {t: self.outputs[f"mem_{t}_bytes"] for t in MEMORY_TERMS}
        d["total"] = self.outputs["mem_total_bytes"]
        return d

    @property
    def time(self) -> dict[str, float]:
        d = {t: self.outputs[f"time_{t}_s"] for t in TIME_TERMS}
        d["step"] = self.outputs["time_step_s"]
        return d

    def __getattr__(self, name: str) -> float:
        outputs = self.__dict__.get("outputs", {})
        if name in outputs:
            return outputs[name]
        raise AttributeError(name)

    def to_json(self) -> dict:
        return {
            "model": self.model.name, "hardware": self.hardware.name,
            "plan": self.plan.to_dict(), "feasible": self.feasible,
            "violations": self.violations,
            "violation_details": S.explain_violations(self.code),
            "n_gpus": self.n_gpus, "memory": self.memory, "time": self.time,
            "tokens_per_s": self.outputs["tokens_per_s"],
            "tokens_per_s_per_gpu": self.outputs["tokens_per_s_per_gpu"],
            "mfu": self.outputs["mfu"],
            "model_tflops_per_gpu": self.outputs["model_tflops_per_gpu"],
            "outputs": dict(self.outputs),
        }


def evaluate(model: Model, hardware: Hardware, plan: Plan, limits: Limits | None = None) -> Result:
    """Evaluate one plan with the scalar reference: the specification of every backend."""
    out = np.zeros(S.N_OUTPUTS)
    code = evaluate_plan(model_vector(model), hardware_vector(hardware), limits_vector(limits),
                         plan_vector(plan), out, np.zeros(S.N_CACHE), 0)
    outputs = {c.name: float(out[i]) for i, c in enumerate(S.OUTPUTS)}
    return Result(model, hardware, plan, int(code), outputs)
