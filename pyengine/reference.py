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
outermost, and a group leaves the NVLink domain (a node, or an NVL72 rack) when
stride*size > nvlink_domain.
All arithmetic is float64 (integer-valued where it counts things) so that every backend
agrees and nothing overflows; transcendentals come from ``math`` (libm, which the C++ twin
and Numba call too: numpy's exp, log, log1p and expm1 differ from it in the last bit for
some arguments).
"""

from __future__ import annotations

import math
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


def gemm_efficiency(m_dim, n_dim, k_dim, token_half, h):
    # [T2] share of the large-GEMM rate an (M x K) @ (K x N) GEMM attains: the product of
    # one saturation d/(d + half) per dimension (thin M or N fill few output tiles, short K
    # amortises little of each tile's prologue; a dimension is never below one row: no
    # tokens routed is not 0/0). N and K take gemm_dim_half, fitted on cuBLASLt and
    # DeepGEMM shape tables (pyengine/data/operators.json, kernels.json); M, the tokens,
    # `token_half`: gemm_dim_half too in training, a serving engine's own in inference
    # ([P2] precisions: gemm_token_half_serve, fitted on TensorRT-LLM's Linear layers at
    # decode-sized token counts; Hopper's kernels fill the GPU from a weight's N x K alone).
    # Training's backward GEMMs permute the three dimensions, whose half-points are then
    # all gemm_dim_half, so the same share holds for them. One division.
    half = h[S.H_GEMM_DIM_HALF]
    m_d = max(m_dim, 1.0)
    n_d = max(n_dim, 1.0)
    k_d = max(k_dim, 1.0)
    return m_d * n_d * k_d / ((m_d + token_half) * (n_d + half) * (k_d + half))


def gemm_s(flops, nbytes, m_dim, n_dim, k_dim, rate, token_half, h):
    # [T3] one GEMM (or a batch of same-shape GEMMs): roofline at its attainable FLOP/s;
    # `rate` is the large-GEMM rate of its dtype (peak x gemm_eff_max[_fp8]), `token_half`
    # the token dimension's half-point ([T2]).
    return roofline_s(flops, nbytes,
                      rate * gemm_efficiency(m_dim, n_dim, k_dim, token_half, h),
                      h[S.H_HBM_BANDWIDTH] * h[S.H_HBM_EFF]) + h[S.H_OP_OVERHEAD]


def memory_bound_s(nbytes, n_ops, h):
    # [T4] elementwise work (norms, residuals, activations, permutes): bandwidth-bound.
    return nbytes / (h[S.H_HBM_BANDWIDTH] * h[S.H_HBM_EFF]) + n_ops * h[S.H_OP_OVERHEAD]


def group_bandwidth(stride, size, h):
    # [C1] a group of `size` ranks spaced `stride` apart stays inside the NVLink domain
    # (a node, or an NVL72 rack of 18 nodes) when stride*size <= nvlink_domain, at the
    # NVLink rate. Otherwise its rings cross the scale-out network: with k of its ranks
    # in each domain NCCL runs k rings, each leaving the domain through another rank's
    # NIC, so a rank moves k x inter_bw (nccl-tests: 80 H100s reach ~8 NICs' busbw),
    # never more than NVLink carries.
    intra = h[S.H_INTRA_BW] * h[S.H_NET_EFF]
    if stride * size > h[S.H_NVLINK_DOMAIN]:
        per_domain = max(1.0, np.floor(h[S.H_NVLINK_DOMAIN] / stride))
        return min(intra, per_domain * h[S.H_INTER_BW] * h[S.H_INTER_EFF])
    return intra


def group_latency(stride, size, h):
    if stride * size > h[S.H_NVLINK_DOMAIN]:
        return h[S.H_INTER_LATENCY]
    return h[S.H_INTRA_LATENCY]


def allreduce_s(nbytes, size, stride, h):
    # [C2] all-reduce of nbytes per rank: ring 2(g-1)/g bandwidth term, or double binary
    # tree with log-depth latency, whichever is faster (NCCL picks likewise). Nothing to
    # send (a dense model's expert gradients) costs nothing.
    if size <= 1.0 or nbytes <= 0.0:
        return 0.0
    bw = group_bandwidth(stride, size, h)
    lat = group_latency(stride, size, h)
    ring = 2.0 * (size - 1.0) / size * nbytes / bw + 2.0 * (size - 1.0) * lat
    tree = 2.0 * nbytes / bw + 2.0 * np.ceil(np.log2(size)) * lat
    return min(ring, tree)


def allgather_s(nbytes, size, stride, h):
    # [C3] all-gather / reduce-scatter of a buffer of nbytes (full size): ring (g-1)/g.
    if size <= 1.0 or nbytes <= 0.0:
        return 0.0
    bw = group_bandwidth(stride, size, h)
    lat = group_latency(stride, size, h)
    return (size - 1.0) / size * nbytes / bw + (size - 1.0) * lat


def alltoall_s(nbytes, size, stride, h):
    # [C4] all-to-all of nbytes per rank: a rank keeps 1/g and sends the rest to all its
    # peers at once, over NVLink inside the domain. A group crossing it, with k ranks per
    # domain, sends (g - k)/g through the rank's own NIC (no ring to share NICs) while
    # (k - 1)/g goes over NVLink. Concurrent sends: two latencies (send, completion).
    if size <= 1.0:
        return 0.0
    intra = h[S.H_INTRA_BW] * h[S.H_NET_EFF]
    lat = 2.0 * group_latency(stride, size, h)
    if stride * size <= h[S.H_NVLINK_DOMAIN]:
        return (size - 1.0) / size * nbytes / intra + lat
    per_domain = max(1.0, np.floor(h[S.H_NVLINK_DOMAIN] / stride))
    off_domain = (size - per_domain) / size * nbytes / (h[S.H_INTER_BW] * h[S.H_INTER_EFF])
    in_domain = (per_domain - 1.0) / size * nbytes / intra
    return max(off_domain, in_domain) + lat


def domains_missed(pool, spread, draws):
    # [C14] the chance that one of `spread` domains, holding pool/spread of `pool` items,
    # gets none of `draws` items drawn without replacement: C(n - n/D, d) / C(n, d).
    miss = 1.0
    i = 0.0
    while i < draws and miss > 0.0:
        miss *= max(0.0, (pool - pool / spread - i) / (pool - i))
        i += 1.0
    return miss


def remote_domains(domains, top_k, experts, groups, group_topk):
    # [C14] the remote NVLink domains a token's k experts occupy, on average, when the E
    # experts are spread evenly over D domains and routing is uniform: a domain holding
    # E/D of them gets none of the k with probability C(E - E/D, k) / C(E, k); a token
    # touches D (1 - miss) domains, its own one of them by symmetry. Group-limited routing
    # (DeepSeek-V3: 256 experts in 8 groups, a token's 8 from its best 4; Sec. 2.1.2)
    # confines the k experts to the domains of its g groups: with whole groups in each
    # domain (D <= G) a domain holds none of them with probability C(G - G/D, g) / C(G, g)
    # (each chosen group supplying one of the k at least); with groups spanning domains
    # the k spread over the g/G of the experts and domains the chosen groups hold. The
    # smaller of the two, routing being no wider than uniform.
    uniform = (domains - 1.0) * (1.0 - domains_missed(experts, domains, top_k))
    if groups <= 0.0:
        return uniform
    if domains <= groups:
        touched = domains * (1.0 - domains_missed(groups, domains, group_topk))
    else:
        spread = domains * group_topk / groups
        touched = spread * (1.0 - domains_missed(experts * group_topk / groups, spread, top_k))
    return min(uniform, touched * (1.0 - 1.0 / domains))


def deduplicated_alltoall_s(nbytes, size, stride, top_k, experts, groups, group_topk, h):
    # [C14] DeepEP / HybridEP dispatch and combine (Megatron-Core's flex dispatcher): a
    # token whose experts sit in several NVLink domains crosses the scale-out network once
    # per remote domain and is forwarded to its experts' ranks over NVLink there (DeepEP
    # README, "asymmetric-domain bandwidth forwarding"; combine the reverse); nbytes holds
    # the k token-slots of each token. Inside one domain it is the all-to-all.
    if size <= 1.0:
        return 0.0
    if stride * size <= h[S.H_NVLINK_DOMAIN]:
        return alltoall_s(nbytes, size, stride, h)
    per_domain = max(1.0, np.floor(h[S.H_NVLINK_DOMAIN] / stride))
    remote = remote_domains(size / per_domain, top_k, experts, groups, group_topk)
    off_domain = nbytes / top_k * remote / (h[S.H_INTER_BW] * h[S.H_INTER_EFF])
    in_domain = (per_domain - 1.0) / per_domain * nbytes / (h[S.H_INTRA_BW] * h[S.H_NET_EFF])
    return max(off_domain, in_domain) + 2.0 * group_latency(stride, size, h)


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


# An MLP's forward time and that of its column-parallel GEMM (FC1: gate and up).
MlpCosts = namedtuple("MlpCosts", ["mlp_s", "fc1_s"])


def mlp_forward_s(m, h, n_tok, ffn, tp, sp_div, rate, token_half, ab, wb):
    # [T8] a dense or shared-expert MLP of intermediate size ffn: g = 3 matrices if gated
    # else 2; GEMM traffic x + g*f + y; the activation function reads and writes g*f.
    # FC1 holds g - 1 of the g matrices, so that share of the GEMM time.
    n_mat = 2.0 + m[S.M_GATED]
    hid = m[S.M_HIDDEN]
    flops = 2.0 * n_tok * hid * ffn * n_mat / tp
    nbytes = hid * ffn * n_mat / tp * wb + n_tok * ab * (2.0 * hid + n_mat * ffn / tp)
    elem_bytes = n_tok * ab * n_mat * ffn / tp + n_tok * hid * ab * (5.0 + m[S.M_DROPOUT]) / sp_div
    gemm = gemm_s(flops, nbytes, n_tok, ffn / tp, hid, rate, token_half, h)
    return MlpCosts(gemm + h[S.H_OP_OVERHEAD] + memory_bound_s(elem_bytes, 3.0, h),
                    gemm * (n_mat - 1.0) / n_mat)


def kv_cache_elems_per_gpu(m, tp):
    # [M7] KV-cache values per token and layer on one GPU: GQA shards K/V heads over TP
    # (a head is replicated when tp > kv_heads); MLA caches one compressed latent that
    # every TP rank keeps whole.
    if m[S.M_MLA] > 0.0:
        return m[S.M_KV_CACHE_ELEMS]
    return ceil_div(m[S.M_KV_HEADS], tp) * (m[S.M_QK_HEAD_DIM] + m[S.M_V_HEAD_DIM])


def flash_attention_rate(h, peak, keys, head_dim, eff, seq_half):
    # [T18] fused attention's attainable FLOP/s: a share `eff` of its dtype's peak that
    # grows with the keys per query (short sequences fill few tiles, and causal masking
    # halves the keys; half the rate at seq_half keys) and with the head dimension (the
    # work per loaded tile); fitted on FlashAttention-3 (H100), cuDNN (Blackwell),
    # FlashAttention-2 and FP8 forward/backward benchmarks by tools/calibrate.py.
    return (peak * eff * keys / (keys + seq_half)
            * head_dim / (head_dim + h[S.H_ATTN_DIM_HALF]))


# A fused-attention kernel (the code whose figures are used) and its peak, share of it and
# half-rate point, per pass ([T18]).
AttentionShares = namedtuple("AttentionShares", ["kernel", "peak_fwd", "eff_fwd", "half_fwd",
                                                 "peak_bwd", "eff_bwd", "half_bwd"])


def fused_attention_shares(h, kernel):
    # [T18] the GPU's fastest kernels (code 0) unless the plan's kernel has figures on this
    # GPU: FlashAttention-2 (attention_kernel fa2 = code 1), PyTorch's memory-efficient
    # kernels (mem_efficient = code 3, one share for both passes), cuDNN's (cudnn = code 4),
    # FP8 attention (fp8 = code 2, with an FP8 peak) at its shares of the FP8 peak, the
    # backward in FP8 only where the GPU has FP8 backward figures (else at the 16-bit
    # kernels' rate).
    used = 0.0
    # the kernels' hardware columns (forward share, backward share, half-rate point)
    fwd, bwd, half = S.H_ATTN_EFF_FWD, S.H_ATTN_EFF_BWD, S.H_ATTN_SEQ_HALF
    if kernel == 1.0 and h[S.H_FA2_EFF_FWD] > 0.0:
        used = 1.0
        fwd, bwd, half = S.H_FA2_EFF_FWD, S.H_FA2_EFF_BWD, S.H_FA2_SEQ_HALF
    elif kernel == 3.0 and h[S.H_MEA_EFF] > 0.0:
        used = 3.0
        fwd, bwd, half = S.H_MEA_EFF, S.H_MEA_EFF, S.H_MEA_SEQ_HALF
    elif kernel == 4.0 and h[S.H_CUDNN_EFF_FWD] > 0.0:
        used = 4.0
        fwd, bwd, half = S.H_CUDNN_EFF_FWD, S.H_CUDNN_EFF_BWD, S.H_CUDNN_SEQ_HALF
    elif kernel == 2.0 and h[S.H_ATTN_FP8_EFF_FWD] > 0.0 and h[S.H_PEAK_FP8] > 0.0:
        used = 2.0
    peak_fwd = h[S.H_PEAK_BF16]
    eff_fwd = h[fwd]
    half_fwd = h[half]
    peak_bwd = peak_fwd
    eff_bwd = h[bwd]
    half_bwd = half_fwd
    if used == 2.0:
        peak_fwd = h[S.H_PEAK_FP8]
        eff_fwd = h[S.H_ATTN_FP8_EFF_FWD]
        half_fwd = h[S.H_ATTN_FP8_SEQ_HALF]
        if h[S.H_ATTN_FP8_EFF_BWD] > 0.0:
            peak_bwd = peak_fwd
            eff_bwd = h[S.H_ATTN_FP8_EFF_BWD]
            half_bwd = half_fwd
    return AttentionShares(used, peak_fwd, eff_fwd, half_fwd, peak_bwd, eff_bwd, half_bwd)


# The attention block's forward time, its core (QK^T, softmax, AV) alone forward and
# backward, and what recomputing its norms and MLA up-projections costs.
AttentionCosts = namedtuple("AttentionCosts", ["attn_s", "attn_core_s", "attn_bwd_extra_s",
                                               "norm_s", "mla_up_s", "qkv_s"])


def attention_costs(m, h, n_tok, keys, kv_len, decode, seqs, tp, cp, sp_div, flash, kernel,
                    rate, token_half, ab, wb, kvb):
    hid = m[S.M_HIDDEN]
    heads_local = m[S.M_HEADS] / tp
    rate16 = h[S.H_PEAK_BF16] * h[S.H_GEMM_EFF_MAX]
    # [T5] attention projections (QKV + output): 2 * tokens * weights FLOPs, TP-sharded.
    q_dim = m[S.M_HEADS] * m[S.M_QK_HEAD_DIM]
    o_dim = m[S.M_HEADS] * m[S.M_V_HEAD_DIM]
    kv_dim = m[S.M_KV_HEADS] * (m[S.M_QK_HEAD_DIM] + m[S.M_V_HEAD_DIM])
    proj_flops = 2.0 * n_tok * m[S.M_ATTN_GEMM_PARAMS] / tp
    proj_bytes = (m[S.M_ATTN_GEMM_PARAMS] / tp * wb
                  + n_tok * ab * (2.0 * hid + (q_dim + kv_dim + 2.0 * o_dim) / tp))
    proj_gemm = gemm_s(proj_flops, proj_bytes, n_tok, hid / tp, hid, rate, token_half, h)
    proj_s = proj_gemm + h[S.H_OP_OVERHEAD]
    # the column-parallel side (all but the output projection's hid x o_dim weights)
    qkv_s = proj_gemm * (1.0 - hid * o_dim / m[S.M_ATTN_GEMM_PARAMS])

    # [T6] attention core: QK^T and AV, 2*tokens*keys*heads*(d_qk + d_v) FLOPs in bf16
    # (FP8 kernels, attention_kernel fp8 = code 2: Q, K, V, O in one byte).
    # Flash streams K/V and writes only O; unfused attention also moves the score
    # matrix (write, softmax read+write, read for AV: 8 B/score, +5 with dropout).
    # Decode reads the cached K/V of every sequence.
    r = fused_attention_shares(h, kernel)
    qb = 1.0 if r.kernel == 2.0 else ab
    core_flops = 2.0 * n_tok * keys * heads_local * (m[S.M_QK_HEAD_DIM] + m[S.M_V_HEAD_DIM])
    core_bytes = n_tok * qb * (q_dim + 2.0 * o_dim) / tp
    if decode:
        core_bytes += seqs * kv_len * kv_cache_elems_per_gpu(m, tp) * kvb / cp
    else:
        core_bytes += n_tok * qb * kv_dim / tp
    if not flash:
        core_bytes += n_tok * keys * heads_local * (8.0 + 5.0 * m[S.M_DROPOUT])
    attn_core_s = gemm_s(core_flops, core_bytes, n_tok, keys, m[S.M_QK_HEAD_DIM], rate16,
                         token_half, h)
    # the backward's time beyond twice the forward's (what the layer's passes assume)
    attn_bwd_extra_s = 0.0
    if flash and h[S.H_ATTN_EFF_FWD] > 0.0:
        # fused kernels at their own measured rates; the backward does 2.5x the forward's
        # FLOPs (it recomputes the scores) and moves Q, K, V, O, dO in and dQ, dK, dV out.
        head_dim = 0.5 * (m[S.M_QK_HEAD_DIM] + m[S.M_V_HEAD_DIM])
        hbm = h[S.H_HBM_BANDWIDTH] * h[S.H_HBM_EFF]
        attn_core_s = roofline_s(core_flops, core_bytes,
                                 flash_attention_rate(h, r.peak_fwd, keys, head_dim,
                                                      r.eff_fwd, r.half_fwd),
                                 hbm) + h[S.H_OP_OVERHEAD]
        attn_core_bwd_s = roofline_s(2.5 * core_flops, 2.0 * core_bytes,
                                     flash_attention_rate(h, r.peak_bwd, keys, head_dim,
                                                          r.eff_bwd, r.half_bwd),
                                     hbm) + h[S.H_OP_OVERHEAD]
        attn_bwd_extra_s = attn_core_bwd_s - 2.0 * attn_core_s

    # [T7] attention-side elementwise: norm (r+w), residual add (2r+w), rope, dropout.
    attn_elem_s = memory_bound_s(n_tok * hid * ab * (5.0 + 2.0 * m[S.M_DROPOUT]) / sp_div
                                 + n_tok * ab * q_dim / tp, 3.0, h)
    # what recomputing parts of the block costs (they are inside the terms above): the two
    # norms (read the input, write the output, 4nh bytes each), MLA's up-projections of
    # the query and key/value latents to the heads
    norm_s = memory_bound_s(8.0 * n_tok * hid * ab / sp_div, 2.0, h)
    mla_up_s = 0.0
    if m[S.M_MLA] > 0.0:
        nope_v = m[S.M_QK_HEAD_DIM] - m[S.M_ROPE_HEAD_DIM] + m[S.M_V_HEAD_DIM]
        up_params = m[S.M_HEADS] * (m[S.M_Q_LORA_RANK] * m[S.M_QK_HEAD_DIM]
                                    + m[S.M_KV_LORA_RANK] * nope_v)
        mla_up_s = gemm_s(2.0 * n_tok * up_params / tp,
                          up_params / tp * wb + n_tok * ab * (q_dim + m[S.M_HEADS] * nope_v) / tp,
                          n_tok, q_dim / tp, m[S.M_KV_LORA_RANK], rate, token_half, h)
    return AttentionCosts(proj_s + attn_core_s + attn_elem_s, attn_core_s, attn_bwd_extra_s,
                          norm_s, mla_up_s, qkv_s)


# An MoE layer's MLP forward time (router, permutes, experts, shared experts) and its
# expert-parallel communication.
MoeCosts = namedtuple("MoeCosts", ["moe_s", "ep_s", "experts_s", "moe_act_s", "shared_s"])


def moe_costs(m, h, n_tok, tp, etp, ep, sp_div, capacity, active, rate, expert_rate,
              token_half, ab, wb, db, dispatcher):
    if m[S.M_EXPERTS] <= 0.0:
        return MoeCosts(0.0, 0.0, 0.0, 0.0, 0.0)
    hid = m[S.M_HIDDEN]
    rate16 = h[S.H_PEAK_BF16] * h[S.H_GEMM_EFF_MAX]
    # [T9] MoE MLP: router GEMM, permute/unpermute, routed experts, shared experts.
    # Per GPU the experts process E*capacity/tp token-slots (conservation over the
    # folded expert group), m_e = capacity*ep*etp/tp slots per local expert, each
    # expert sharded over etp. Thin m_e makes the expert GEMMs memory-bound by itself.
    # Only the `active` share of the local experts receives tokens ([S5]): only their
    # weights are read, and each runs m_e / active slots.
    n_mat = 2.0 + m[S.M_GATED]
    experts_local = m[S.M_EXPERTS] / ep
    slots = m[S.M_EXPERTS] * capacity / tp
    m_e = capacity * ep * etp / tp
    router_s = gemm_s(2.0 * n_tok / sp_div * hid * m[S.M_EXPERTS],
                      n_tok / sp_div * (hid * ab + m[S.M_EXPERTS] * 4.0),
                      n_tok / sp_div, m[S.M_EXPERTS], hid, rate16, token_half, h)
    # the router's elementwise kernels after its GEMM (score function, top-k, probability
    # normalisation, auxiliary loss, routing map: about 8 over fp32 logits, read and
    # written twice) and the dispatcher's permute and unpermute (index computation, sort
    # by expert, gather, scatter-add weighted by the probabilities: about 12 kernels), as
    # Megatron-Core's TopKRouter and MoEAlltoAllTokenDispatcher run them forward
    router_s += memory_bound_s(n_tok / sp_div * m[S.M_EXPERTS] * 4.0 * 4.0, 8.0, h)
    permute_s = memory_bound_s(4.0 * slots * hid * ab, 12.0, h)
    expert_flops = 2.0 * experts_local * m_e * hid * m[S.M_EXPERT_FFN] * n_mat / etp
    expert_bytes = experts_local * (active * hid * m[S.M_EXPERT_FFN] * n_mat / etp * wb
                                    + m_e * ab * (2.0 * hid
                                                  + 2.0 * n_mat * m[S.M_EXPERT_FFN] / etp))
    experts_s = (gemm_s(expert_flops, expert_bytes, m_e / active, m[S.M_EXPERT_FFN] / etp, hid,
                        expert_rate, token_half, h)
                 + 2.0 * h[S.H_OP_OVERHEAD])
    shared_s = 0.0
    if m[S.M_SHARED_FFN] > 0.0:
        shared_s = mlp_forward_s(m, h, n_tok, m[S.M_SHARED_FFN], tp, sp_div, rate, token_half,
                                 ab, wb).mlp_s
    # [C6] expert dispatch + combine as the token dispatcher moves them (Megatron-Core
    # moe_token_dispatcher_type). alltoall (0): two all-to-alls of the slots over the EP
    # group (stride etp), with etp > 1 also gathered / scattered over ETP; flex (2): the
    # same slots deduplicated per NVLink domain ([C14]). allgather (1): every rank
    # all-gathers the hidden states of the ETP x EP group's tokens (n_tok/tp each, the
    # group's ranks adjacent) and reduce-scatters the outputs (Megatron-Core's allgather
    # dispatcher; TensorRT-LLM's MoE under attention data parallel without MNNVL). The
    # dispatch moves db bytes a value (quantized inference: FP8, as DeepEP's and
    # TensorRT-LLM's dispatch kernels send it), the combine ab.
    dispatch_bytes = slots * hid * db
    combine_bytes = slots * hid * ab
    if dispatcher == 1.0:
        group = ep * etp
        gathered = n_tok / tp * group * hid
        ep_s = (allgather_s(gathered * db, group, 1.0, h)
                + allgather_s(gathered * ab, group, 1.0, h))
    else:
        if dispatcher == 2.0:
            ep_s = (deduplicated_alltoall_s(dispatch_bytes, ep, etp, m[S.M_TOP_K],
                                            m[S.M_EXPERTS], m[S.M_ROUTER_GROUPS],
                                            m[S.M_ROUTER_GROUP_TOPK], h)
                    + deduplicated_alltoall_s(combine_bytes, ep, etp, m[S.M_TOP_K],
                                              m[S.M_EXPERTS], m[S.M_ROUTER_GROUPS],
                                              m[S.M_ROUTER_GROUP_TOPK], h))
        else:
            ep_s = alltoall_s(dispatch_bytes, ep, etp, h) + alltoall_s(combine_bytes, ep, etp, h)
        ep_s = (ep_s + allgather_s(dispatch_bytes, etp, 1.0, h)
                + allgather_s(combine_bytes, etp, 1.0, h))
    # recomputing the experts' activation function alone (inside experts_s): it reads the
    # fc1 outputs and writes its own, per token-slot on this GPU
    act_s = memory_bound_s(experts_local * m_e * (n_mat + 1.0) * m[S.M_EXPERT_FFN] / etp * ab,
                           1.0, h)
    return MoeCosts(router_s + permute_s + experts_s + shared_s, ep_s, experts_s, act_s,
                    shared_s)


# Forward cost of one layer for one micro-batch on one GPU, split by kind so that the
# caller can scale, recompute and expose each part. Seconds.
LayerCosts = namedtuple(
    "LayerCosts",
    ["attn_s", "attn_core_s", "mlp_s", "moe_s", "tp_s", "cp_s", "ep_s", "embed_s", "output_s",
     "attn_bwd_extra_s", "norm_s", "mla_up_s", "experts_s", "moe_act_s", "shared_s",
     "dense_kernels", "moe_kernels", "bwd_kernels", "mla_up_kernels", "shared_kernels",
     "embed_kernels", "output_kernels", "qkv_s", "fc1_s"],
)


def layer_costs(m, h, n_tok, keys, kv_len, decode, seqs, logit_rows, tp, cp, etp, ep, sp,
                flash, kernel, cp_overlap, capacity, active, rate, expert_rate, token_half, ab,
                wb, kvb, db, head_rate, dispatcher):
    """Forward cost of each layer kind for n_tok query tokens per GPU.

    keys: keys each query attends to (causal flash halves them); kv_len: cached context
    (decode); seqs: sequences in the micro-batch; logit_rows: the positions whose logits
    the output layer computes (training: every token; inference: one per sequence);
    capacity: token-slots per expert and router rank of the busiest expert rank; active:
    the share of its experts with tokens; rate: attainable large-GEMM FLOP/s of the compute
    dtype (attention runs in BF16); expert_rate: the routed experts' ([P4]); token_half: the
    GEMMs' token half-point ([T2]); head_rate: the output layer's, the 16-bit rate ([P2]);
    db: bytes a dispatched value; dispatcher: the MoE token dispatcher's code ([C6]);
    kernel: the fused attention's kernels ([T18]: 0 the GPU's fastest, 1 FlashAttention-2,
    2 FP8, 3 memory-efficient, 4 cuDNN).
    """
    hid = m[S.M_HIDDEN]
    sp_div = tp if sp else 1.0
    attn = attention_costs(m, h, n_tok, keys, kv_len, decode, seqs, tp, cp, sp_div, flash,
                           kernel, rate, token_half, ab, wb, kvb)
    mlp = mlp_forward_s(m, h, n_tok, m[S.M_FFN], tp, sp_div, rate, token_half, ab, wb)
    moe = moe_costs(m, h, n_tok, tp, etp, ep, sp_div, capacity, active, rate, expert_rate,
                    token_half, ab, wb, db, dispatcher)

    # [C7] tensor parallel: per layer two all-reduces of the activations (or, with
    # sequence parallelism, two all-gathers + two reduce-scatters of the same volume).
    act_bytes = n_tok * hid * ab
    if sp:
        tp_s = 4.0 * allgather_s(act_bytes, tp, 1.0, h)
    else:
        tp_s = 2.0 * allreduce_s(act_bytes, tp, 1.0, h)

    # [C8] context parallel: ring attention passes K/V around the CP group (stride tp),
    # each exchange hidden behind the attention core of the same step (Megatron-Core /
    # Transformer Engine CP, cp_overlap); only the excess is exposed, or all of it
    # without overlap. Decode keeps K/V in place and merges partial softmax results.
    cp_s = 0.0
    if cp > 1.0:
        if decode:
            o_dim = m[S.M_HEADS] * m[S.M_V_HEAD_DIM]
            cp_s = allreduce_s(n_tok * o_dim / tp * ab, cp, tp, h)
        else:
            kv_dim = m[S.M_KV_HEADS] * (m[S.M_QK_HEAD_DIM] + m[S.M_V_HEAD_DIM])
            ring_s = (cp - 1.0) * p2p_s(n_tok * kv_dim / tp * ab, tp, h)
            cp_s = max(0.0, ring_s - attn.attn_core_s) if cp_overlap else ring_s

    # [T10] embedding lookup (first stage) and output layer + loss (last stage); the
    # output layer's weights stay in 16 bits (FP8/FP4 checkpoints keep lm_head in BF16).
    # Training takes the loss at every token; inference samples the last position of each
    # sequence, so engines compute only its logits (TensorRT-LLM gather_last_token_logits,
    # vLLM's logits of the sampled positions), in prefill as in decode.
    embed_s = memory_bound_s(2.0 * n_tok * hid * ab / sp_div, 1.0, h)
    out_tok = logit_rows
    output_s = (gemm_s(2.0 * out_tok * hid * m[S.M_VOCAB] / tp,
                       hid * m[S.M_VOCAB] / tp * 2.0 + out_tok * m[S.M_VOCAB] / tp * 4.0,
                       out_tok, m[S.M_VOCAB] / tp, hid, head_rate, token_half, h)
                + memory_bound_s(2.0 * out_tok * m[S.M_VOCAB] / tp * 4.0, 2.0, h))
    # [T19] kernels launched, one per op_overhead term above: attention 6 (projection GEMM
    # and its epilogue, core, 3 elementwise), MLP 5 (GEMM, its epilogue, 3 elementwise),
    # MoE 24 (router GEMM and its 8 kernels, 12 permutes, the experts' GEMM and 2) plus a
    # shared MLP's 5, MLA up-projections 1, embedding 1, output layer 3; a fused attention
    # backward at its own rate is one kernel where "2x the forward" counts two.
    shared_kernels = 5.0 if m[S.M_SHARED_FFN] > 0.0 else 0.0
    moe_kernels = 0.0
    if m[S.M_EXPERTS] > 0.0:
        moe_kernels = 6.0 + 24.0 + shared_kernels
    mla_up_kernels = 1.0 if m[S.M_MLA] > 0.0 else 0.0
    bwd_kernels = -1.0 if flash and h[S.H_ATTN_EFF_FWD] > 0.0 else 0.0
    return LayerCosts(attn.attn_s, attn.attn_core_s, mlp.mlp_s, moe.moe_s, tp_s, cp_s, moe.ep_s,
                      embed_s, output_s, attn.attn_bwd_extra_s, attn.norm_s, attn.mla_up_s,
                      moe.experts_s, moe.moe_act_s, moe.shared_s, 11.0, moe_kernels, bwd_kernels,
                      mla_up_kernels, shared_kernels, 1.0, 3.0, attn.qkv_s, mlp.fc1_s)


# --------------------------------------------------------------------------- memory


# What a layer does not keep for backward: the modules selective recomputation recomputes
# (Megatron-Core recompute_modules), and the bytes of a GEMM input kept (1 in FP8).
Savers = namedtuple("Savers", ["core_attn", "layernorm", "mla_up_proj", "mlp", "moe",
                               "moe_act", "shared_experts", "gemm_input_bytes"])


def layer_activation_bytes(m, n_tok, keys, tp, sp, flash, recompute, moe_layer, capacity, etp,
                           sv):
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
    parallelism also divides the rest (norms, dropout masks) by t. Full recompute keeps
    only the layer input 2nh (/t with SP). MoE layers replace the MLP hidden with
    capacity-bound expert slots (2h input + gated 6f/etp or 4f/etp each), router logits
    in fp32, and shared experts.
    Memory savers `sv` (Megatron-Core recompute_modules): core_attn drops the scores
    (unfused attention), layernorm the norm outputs (the QKV and fc inputs), mla_up_proj
    Q/K/V (keeping MLA's latents, 2(q_lora + kv_lora + rope) per token, instead), mlp the
    dense MLP hidden, moe the expert slots, moe_act the experts' activation output,
    shared_experts their hidden; GEMM inputs kept (QKV/fc inputs, projection input,
    expert inputs, fc2 inputs) take gemm_input_bytes (1 in FP8, DeepSeek-V3 Sec. 3.3.2).
    """
    hid = m[S.M_HIDDEN]
    sp_div = tp if sp else 1.0
    if recompute == 2.0:
        return 2.0 * n_tok * hid / sp_div
    gb = sv.gemm_input_bytes
    dropout = m[S.M_DROPOUT]
    q_dim = m[S.M_HEADS] * m[S.M_QK_HEAD_DIM]
    k_dim = m[S.M_KV_HEADS] * m[S.M_QK_HEAD_DIM]
    v_dim = m[S.M_KV_HEADS] * m[S.M_V_HEAD_DIM]
    o_dim = m[S.M_HEADS] * m[S.M_V_HEAD_DIM]
    # non-tensor-parallel parts: norm inputs (2nh each), the QKV/fc inputs (the norms'
    # outputs), dropout masks
    norm_out = 0.0 if sv.layernorm else 2.0 * gb
    replicated = n_tok * hid * (4.0 + norm_out + 2.0 * dropout)
    qkv = 2.0 * q_dim + 2.0 * k_dim + 2.0 * v_dim
    if sv.mla_up_proj and m[S.M_MLA] > 0.0:
        qkv = 0.0
        replicated += 2.0 * n_tok * (m[S.M_Q_LORA_RANK] + m[S.M_KV_LORA_RANK]
                                     + m[S.M_ROPE_HEAD_DIM])
    attn_parallel = n_tok * (qkv + gb * o_dim)
    if flash:
        scores = 4.0 * n_tok * m[S.M_HEADS]
    else:
        scores = n_tok * keys * m[S.M_HEADS] * (2.0 + 3.0 * dropout)
        if sv.core_attn:
            scores = 0.0
    # MLP hidden per unit of intermediate size: the fc1 outputs (gate and up, or the
    # GeLU input) in 16 bits, and the activation output, the fc2 input
    fc1_out = 4.0 if m[S.M_GATED] > 0.0 else 2.0
    if moe_layer:
        # slots kept on this GPU: E*capacity/tp * etp (each ETP rank keeps whole inputs)
        slots = m[S.M_EXPERTS] * capacity / tp * etp
        act_out = 0.0 if sv.moe_act else gb
        slot_bytes = 0.0 if sv.moe else gb * hid + (fc1_out + act_out) * m[S.M_EXPERT_FFN] / etp
        shared = 0.0 if sv.shared_experts else n_tok * (fc1_out + gb) * m[S.M_SHARED_FFN]
        mlp_parallel = slots * slot_bytes * tp + shared
        replicated += 4.0 * n_tok * m[S.M_EXPERTS]
    else:
        mlp_parallel = 0.0 if sv.mlp else n_tok * (fc1_out + gb) * m[S.M_FFN]
    return replicated / sp_div + (attn_parallel + scores + mlp_parallel) / tp


# Parameters one GPU holds per layer kind, before ZeRO sharding.
Holdings = namedtuple("Holdings", ["dense_layer", "moe_layer", "expert_layer", "embed_extra",
                                   "output_extra", "dense_kept", "moe_kept"])


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
    # [M10] what quantized inference keeps in 16 bits: besides the embedding and the output
    # layer (all of embed_extra, output_extra), each layer's norms, biases and router; the
    # GEMM weights take the stored precision (ModelOpt FP8/NVFP4 checkpoints quantize the
    # linear layers but lm_head, embeddings, norms and MoE gates)
    biases = (m[S.M_ATTN_PARAMS] - m[S.M_ATTN_GEMM_PARAMS]) / tp
    dense_kept = biases + (m[S.M_MLP_PARAMS] - m[S.M_MLP_GEMM_PARAMS]) / tp + m[S.M_NORM_PARAMS]
    moe_kept = biases + m[S.M_NORM_PARAMS] + m[S.M_ROUTER_PARAMS]
    return Holdings(dense_layer, moe_layer, expert_layer, embed_extra, output_extra, dense_kept,
                    moe_kept)


def zero_shard(shard, zero, stage):
    # [M2] ZeRO stage >= 1 shards optimizer states, >= 2 gradients, 3 parameters
    return shard if zero >= stage else 1.0


# --------------------------------------------------------------------------- FLOPs


def chunk_position(lo, hi, chunk):
    # [T24] the mean of p mod C over positions p spread evenly on [lo, hi]: the keys a
    # query at position p attends in chunked attention (chunks of C tokens). With
    # F(x) = floor(x/C) C^2/2 + (x mod C)^2/2 the integral of p mod C from 0 to x, the mean
    # is (F(hi) - F(lo)) / (hi - lo).
    if hi <= lo:
        return lo - np.floor(lo / chunk) * chunk
    r_hi = hi - np.floor(hi / chunk) * chunk
    r_lo = lo - np.floor(lo / chunk) * chunk
    f_hi = np.floor(hi / chunk) * chunk * chunk * 0.5 + r_hi * r_hi * 0.5
    f_lo = np.floor(lo / chunk) * chunk * chunk * 0.5 + r_lo * r_lo * 0.5
    return (f_hi - f_lo) / (hi - lo)


def attended(m, lo, hi, full):
    # [T24] keys a query attends, averaged over the layers, for queries at positions
    # spread on [lo, hi] that attend `full` keys under full causal attention (prefill:
    # hi/2 with flash, hi without; decode: the mean context). Chunked attention (Llama 4:
    # chunks of 8192 tokens) scales a layer's keys by mean(p mod C) / mean(p); every
    # global_every-th layer (Llama 4's NoPE layers) attends to the whole context.
    chunk = m[S.M_ATTENTION_CHUNK]
    if chunk <= 0.0:
        return full
    share_global = 0.0
    if m[S.M_GLOBAL_EVERY] > 0.0:
        share_global = np.floor(m[S.M_LAYERS] / m[S.M_GLOBAL_EVERY]) / m[S.M_LAYERS]
    local = chunk_position(lo, hi, chunk) / max(0.5 * (lo + hi), 0.5)
    return full * (share_global + (1.0 - share_global) * min(local, 1.0))


def model_forward_flops_per_token(m, ctx, mtp):
    # [T15] model FLOPs per token, forward (Narayanan et al. 2021 eq. 3 counting): 2 FLOPs
    # per GEMM weight a token touches (experts: top-k, shared experts, the output layer)
    # + attention scores and context, 2*ctx*(d_qk+d_v) per head and layer
    # (no causal halving); training multiplies by 3. Each MTP module adds its block, its
    # 2h x h projection and another pass of the output head.
    n_moe = moe_layers_in(0.0, m[S.M_LAYERS], m)
    n_dense = m[S.M_LAYERS] - n_moe
    n_mat = 2.0 + m[S.M_GATED]
    hid = m[S.M_HIDDEN]
    per_layer_attn = (m[S.M_ATTN_GEMM_PARAMS]
                      + ctx * m[S.M_HEADS] * (m[S.M_QK_HEAD_DIM] + m[S.M_V_HEAD_DIM]))
    moe_mlp = (m[S.M_TOP_K] * hid * m[S.M_EXPERT_FFN] * n_mat + hid * m[S.M_SHARED_FFN] * n_mat
               + hid * m[S.M_EXPERTS])
    mtp_mlp = moe_mlp if moe_layers_in(m[S.M_LAYERS], m[S.M_LAYERS] + 1.0, m) > 0.0 \
        else m[S.M_MLP_GEMM_PARAMS]
    return 2.0 * (m[S.M_LAYERS] * per_layer_attn + n_dense * m[S.M_MLP_GEMM_PARAMS]
                  + n_moe * moe_mlp + hid * m[S.M_VOCAB]
                  + mtp * (per_layer_attn + mtp_mlp + 2.0 * hid * hid + hid * m[S.M_VOCAB]))


# --------------------------------------------------------------------------- the plan
# evaluate_plan (at the end) composes the stages below in the order the data flows,
# which is also the order of the plan columns (schema.PLAN): each cached stage reads
# only the columns before its level's boundary, so a walker whose next plan differs only
# in later columns keeps its result (`reuse`):
#   level 1, columns before CACHE_FROM (global_batch): layer_stage, the layer shape;
#   level 2, columns before CACHE2_FROM (dp): split_stage, the pipeline split;
#   level 3, columns before CACHE3_FROM (vpp): batch_stage, micro-batches and GPU count;
#   every plan: pipeline checks, memory per stage, time per stage, the step, outputs.

# The plan row as named fields, and the precisions it implies.
PlanFields = namedtuple("PlanFields", [
    "training", "decode", "fp8", "gbs", "mbs", "seq", "gen", "tp", "pp", "dp", "cp", "ep",
    "etp", "vpp", "zero", "recompute", "sp", "cf", "flash", "grad_bytes", "tp_overlap",
    "pp_embedding", "pp_loss", "pp_first", "pp_last", "sv", "recompute_layers", "opt_bytes",
    "imbalance", "cp_overlap", "ep_overlap", "dp_overlap", "tp_dgrad_overlap",
    "pp_scatter_gather", "cuda_graphs",
    "max_tokens", "kv_fraction", "kv_block", "fp4", "kv_dtype", "dispatcher", "attn_kernel",
    "offload"])
Precisions = namedtuple("Precisions", ["ab", "wb", "kvb", "peak", "rate", "hb", "head_rate",
                                       "db", "expert_rate", "token_half"])


def memory_savers(p, training):
    # [P3] memory savers: the selective recompute modules (core attention alone is
    # Megatron-Core's default "selective"), FP8 storage of the GEMM inputs kept for
    # backward; training only.
    sel = training and p[S.P_RECOMPUTE] == 1.0
    return Savers(sel and p[S.P_RECOMPUTE_CORE_ATTN] > 0.0,
                  sel and p[S.P_RECOMPUTE_LAYERNORM] > 0.0,
                  sel and p[S.P_RECOMPUTE_MLA_UP_PROJ] > 0.0,
                  sel and p[S.P_RECOMPUTE_MLP] > 0.0, sel and p[S.P_RECOMPUTE_MOE] > 0.0,
                  sel and p[S.P_RECOMPUTE_MOE_ACT] > 0.0,
                  sel and p[S.P_RECOMPUTE_SHARED_EXPERTS] > 0.0,
                  1.0 if training and p[S.P_FP8_ACTIVATIONS] > 0.0 else 2.0)


def plan_fields(p):
    # [P1] plan fields; ZeRO and recomputation apply to training only, sequence
    # parallelism needs tp > 1, etp = 0 means "as tp"; Adam keeps fp32 master weights and
    # two moments of 4 or 2 bytes.
    mode = p[S.P_MODE]
    training = mode == 0.0
    tp = p[S.P_TP]
    # (conditional values named first: Numba compiles no long call holding them)
    etp = p[S.P_ETP] if p[S.P_ETP] > 0.0 else tp
    zero = p[S.P_ZERO] if training else 0.0
    recompute = p[S.P_RECOMPUTE] if training else 0.0
    sp = p[S.P_SEQUENCE_PARALLEL] > 0.0 and tp > 1.0
    grad_bytes = 2.0 if p[S.P_GRAD_DTYPE] == 1.0 else 4.0
    opt_bytes = 8.0 if p[S.P_OPTIMIZER_DTYPE] == 1.0 else 12.0
    # FP4 weights with their block scales: NVFP4 an E4M3 scale per 16 E2M1 values (4.5
    # bits; NVIDIA, "Introducing NVFP4", 2025), MXFP4 an E8M0 scale per 32 (4.25 bits; OCP
    # Microscaling Formats (MX) v1.0); 0 = not FP4
    fp4 = 0.0
    if p[S.P_DTYPE] >= 2.0:
        fp4 = 0.5625 if p[S.P_DTYPE] == 2.0 else 0.53125
    return PlanFields(
        training, mode == 2.0, p[S.P_DTYPE] == 1.0, p[S.P_GLOBAL_BATCH], p[S.P_MICRO_BATCH],
        p[S.P_SEQ_LEN], p[S.P_GEN_TOKENS], tp, p[S.P_PP], p[S.P_DP], p[S.P_CP], p[S.P_EP], etp,
        p[S.P_VPP], zero, recompute, sp, p[S.P_CAPACITY_FACTOR], p[S.P_FLASH_ATTENTION] > 0.0,
        grad_bytes, p[S.P_TP_OVERLAP] > 0.0, p[S.P_PP_EMBEDDING] > 0.0, p[S.P_PP_LOSS] > 0.0,
        p[S.P_PP_FIRST_LAYERS], p[S.P_PP_LAST_LAYERS], memory_savers(p, training),
        p[S.P_RECOMPUTE_LAYERS], opt_bytes, p[S.P_MOE_LOAD_IMBALANCE], p[S.P_CP_OVERLAP] > 0.0,
        p[S.P_EP_OVERLAP] > 0.0, p[S.P_DP_OVERLAP] > 0.0, p[S.P_TP_DGRAD_OVERLAP] > 0.0,
        p[S.P_PP_SCATTER_GATHER] > 0.0,
        p[S.P_CUDA_GRAPHS] > 0.0, p[S.P_MAX_NUM_TOKENS], p[S.P_KV_CACHE_FRACTION],
        p[S.P_KV_BLOCK_TOKENS], fp4, p[S.P_KV_DTYPE], p[S.P_MOE_TOKEN_DISPATCHER],
        p[S.P_ATTENTION_KERNEL], p[S.P_CPU_OFFLOAD_LAYERS])


def precisions(h, f):
    # [P2] precisions: bf16 weights and activations in training (FP8/FP4 GEMMs keep bf16
    # master copies); FP8 inference stores the GEMM weights in one byte, FP4 in f.fp4
    # bytes, the parameters it keeps in 16 bits ([M10]: embedding, output layer, norms) in
    # hb. The output layer runs at the 16-bit rate in training too: Megatron-Core's
    # output_layer is its own ColumnParallelLinear, outside Transformer Engine's FP8
    # autocast, and DeepSeek-V3 keeps the output head in BF16 (Sec. 3.3.1). The KV cache
    # is kept in kv_dtype: auto = one byte under FP8/FP4 weights (TensorRT-LLM's FP8 and
    # NVFP4 checkpoints quantize the KV cache to FP8), else two. FP4 GEMMs run at the FP4
    # peak with its own large-GEMM share (gemm_eff_max_fp4; 0: the FP8 share); without an
    # FP4 peak (F1: FP4) at BF16.
    # MoE tokens are dispatched in FP8 with an fp32 scale per 128 values under quantized
    # inference (DeepEP low-latency dispatch; TensorRT-LLM's FP8 MoE), else at ab.
    # [P4] the routed experts' grouped GEMMs run at the dense rate in training (DeepGEMM's
    # grouped and dense tables share one level) and at grouped_gemm_eff_serve of it in
    # inference (TensorRT-LLM's CUTLASS MoE kernels, fitted on their operator benchmarks);
    # likewise a serving engine's GEMMs saturate in the token dimension at
    # gemm_token_half_serve ([T2]; TensorRT-LLM's Linear kernels, fitted on their operator
    # benchmarks), training's at gemm_dim_half as in N and K.
    ab = 2.0
    quantized = (f.fp8 or f.fp4 > 0.0) and not f.training
    wb = 2.0
    if quantized:
        wb = f.fp4 if f.fp4 > 0.0 else 1.0
    kvb = 1.0 if quantized else 2.0
    if f.kv_dtype > 0.0:
        kvb = 2.0 if f.kv_dtype == 1.0 else 1.0
    peak = h[S.H_PEAK_BF16]
    rate = peak * h[S.H_GEMM_EFF_MAX]
    head_rate = rate
    if f.fp8 and h[S.H_PEAK_FP8] > 0.0:
        peak = h[S.H_PEAK_FP8]
        rate = peak * h[S.H_GEMM_EFF_MAX_FP8]
    if f.fp4 > 0.0 and h[S.H_PEAK_FP4] > 0.0:
        peak = h[S.H_PEAK_FP4]
        level = h[S.H_GEMM_EFF_MAX_FP4]
        if level <= 0.0:
            level = h[S.H_GEMM_EFF_MAX_FP8]
        rate = peak * level
    db = 1.0 + 4.0 / 128.0 if quantized else ab
    expert_rate = rate if f.training else rate * h[S.H_GROUPED_GEMM_EFF_SERVE]
    token_half = h[S.H_GEMM_DIM_HALF] if f.training else h[S.H_GEMM_TOKEN_HALF_SERVE]
    return Precisions(ab, wb, kvb, peak, rate, 2.0, head_rate, db, expert_rate, token_half)


# ---- level 1: the layer shape (columns before global_batch)

# What the layer-shape columns decide: their feasibility bits, the tokens of a
# micro-batch pass on one GPU, expert capacity, the per-layer forward costs of a pass,
# model FLOPs per token of a pass and of a decode step, and KV values per token and layer.
LayerStage = namedtuple("LayerStage", [
    "code", "n_tok", "capacity", "expert_load", "dropped", "costs", "fwd_flops_tok",
    "dec_flops_tok",
    "kv_elems"])


def decode_context(m, f):
    # [T24] keys a decode token attends: the mean context seq + gen/2 of the tokens
    # generated on [seq, seq + gen], as the layers attend it
    return attended(m, f.seq, f.seq + f.gen, f.seq + 0.5 * f.gen)


def mtp_modules(m, f):
    # [S3] DeepSeek-V3's multi-token-prediction modules (Sec. 2.2) run in training only:
    # each a transformer block of the kind layer index L would have (MoE for DeepSeek-V3),
    # a 2h x h projection and two norms, sharing the embedding and the output head; they
    # sit on the last pipeline stage (as Megatron-Core places them).
    return m[S.M_MTP_LAYERS] if f.training else 0.0


def layer_checks(m, f):
    # [F1] feasibility of the layer shape: every violated constraint sets its bit.
    is_moe = m[S.M_EXPERTS] > 0.0
    code = 0
    if not divides(f.tp, m[S.M_HEADS]):
        code |= S.V_TP_HEADS
    if m[S.M_MLA] == 0.0 and not divides(f.tp, m[S.M_KV_HEADS]) and \
            not divides(m[S.M_KV_HEADS], f.tp):
        code |= S.V_TP_KV_HEADS
    if not divides(f.tp, m[S.M_FFN]):
        code |= S.V_TP_FFN
    if is_moe and not divides(f.etp, m[S.M_EXPERT_FFN]):
        code |= S.V_ETP_FFN
    if (is_moe and not divides(f.ep, m[S.M_EXPERTS])) or (not is_moe and f.ep > 1.0):
        code |= S.V_EP_EXPERTS
    if f.cp > 1.0 and not divides(2.0 * f.cp, f.seq):
        code |= S.V_CP_SEQ
    if f.sp and not divides(f.cp * f.tp, f.seq):
        code |= S.V_SP_SEQ
    if f.decode and f.gen < 1.0:
        code |= S.V_NO_TOKENS
    return code


# Tokens each expert takes per router rank, and the routed token-slots it drops.
Capacity = namedtuple("Capacity", ["capacity", "dropped"])


def expert_capacity(m, t_router, cf, training):
    # [S4] expert capacity (DESIGN.md): capacity = ceil(k * T * cf / E) per expert for the
    # T tokens one router rank sees; balanced routing drops what exceeds it. Inference
    # routes dropless and unpadded, as TensorRT-LLM, vLLM and SGLang run MoE layers: an
    # expert takes k * T / E token-slots on average and none is dropped. (0, 0) for a
    # dense model.
    if m[S.M_EXPERTS] <= 0.0:
        return Capacity(0.0, 0.0)
    if not training:
        return Capacity(m[S.M_TOP_K] * t_router / m[S.M_EXPERTS], 0.0)
    capacity = np.ceil(m[S.M_TOP_K] * t_router * cf / m[S.M_EXPERTS])
    dropped = max(0.0, 1.0 - m[S.M_EXPERTS] * capacity / (m[S.M_TOP_K] * t_router))
    return Capacity(capacity, dropped)


# The token-slots per expert and router rank of the busiest expert rank, and the share of
# its experts that receive any token.
ExpertLoad = namedtuple("ExpertLoad", ["load", "active"])


def active_experts(m, group_tokens):
    # [S5] the share of an EP group's experts that receive any of the k-slot routings of
    # its group_tokens tokens (occupancy: none with probability (1 - k/E)^T_g), as
    # -expm1(T_g log1p(-k/E)): at few slots of many experts 1 - (1 - k/E)^T_g would be the
    # rounding of (1 - k/E) raised to T_g
    active = 1.0 if group_tokens > 0.0 else 0.0
    if group_tokens > 0.0 and m[S.M_TOP_K] < m[S.M_EXPERTS]:
        active = -math.expm1(group_tokens * math.log1p(-m[S.M_TOP_K] / m[S.M_EXPERTS]))
    return active


def expert_load(m, f, capacity):
    # [S5] expert load: the busiest expert rank paces an MoE layer; it receives
    # moe_load_imbalance times a balanced rank's token-slots (its compute, all-to-all
    # volume and activations follow it). Inference (dropless) adds the spread of the
    # routing itself: of the k * T_g slots the EP group routes (T_g = E * capacity / k
    # tokens per router rank x ep * etp / tp ranks), a rank gets a binomial share with mean
    # mu = E * capacity * etp / tp and variance mu (1 - 1/ep); the largest of ep such loads
    # lies near mu + sigma sqrt(2 ln ep) (Gaussian extreme value). A local expert receives
    # no token with probability (1 - k/E)^T_g (occupancy of T_g draws of k among E), so a
    # share 1 - (1 - k/E)^T_g of them runs and has its weights read; training pads to the
    # capacity (every expert runs).
    if m[S.M_EXPERTS] <= 0.0:
        return ExpertLoad(0.0, 0.0)
    spread = 1.0
    active = 1.0
    if not f.training:
        mean = m[S.M_EXPERTS] * capacity * f.etp / f.tp
        if f.ep > 1.0:
            spread = 1.0 + np.sqrt(2.0 * math.log(f.ep) * (1.0 - 1.0 / f.ep) / mean)
        active = active_experts(m, mean * f.ep / m[S.M_TOP_K])
    return ExpertLoad(capacity * f.imbalance * spread, active)


def layer_stage(m, h, f, pr):
    """Level 1: everything the columns before global_batch decide."""
    code = layer_checks(m, f)
    # [S3] tokens: a training/prefill pass of a micro-batch puts mbs*seq/cp tokens on
    # each GPU; a decode step puts one token per sequence. Flash skips the masked half
    # of causal attention; unfused attention computes every score.
    n_tok = f.mbs * f.seq / f.cp
    keys = attended(m, 0.0, f.seq, f.seq * 0.5 if f.flash else f.seq)
    cap = expert_capacity(m, n_tok, f.cf, f.training)
    if m[S.M_EXPERTS] > 0.0 and cap.capacity <= 0.0:
        code |= S.V_MOE_NO_CAPACITY
    # [F1] FP4 weights need FP4 tensor cores (Blackwell: B200, GB200, GB300)
    if f.fp4 > 0.0 and h[S.H_PEAK_FP4] <= 0.0:
        code |= S.V_FP4
    # [F1] FP8 attention runs inside FP8 (or FP4) recipes, in the fused kernels, on a GPU
    # whose FP8 attention kernels have figures
    if f.attn_kernel == 2.0 and not ((f.fp8 or f.fp4 > 0.0) and f.flash
                                     and h[S.H_PEAK_FP8] > 0.0
                                     and h[S.H_ATTN_FP8_EFF_FWD] > 0.0):
        code |= S.V_FP8_ATTENTION
    # [S5] the busiest expert rank's load
    load = expert_load(m, f, cap.capacity)
    # [T11] per-layer forward costs of one micro-batch pass, and model FLOPs per token of
    # a pass and of a decode step (at the mean context seq + gen/2).
    logit_rows = n_tok if f.training else f.mbs
    costs = layer_costs(m, h, n_tok, keys, 0.0, False, f.mbs, logit_rows, f.tp, f.cp, f.etp,
                        f.ep, f.sp, f.flash, f.attn_kernel, f.cp_overlap, load.load,
                        load.active, pr.rate, pr.expert_rate, pr.token_half, pr.ab, pr.wb,
                        pr.kvb, pr.db, pr.head_rate, f.dispatcher)
    fwd_flops_tok = model_forward_flops_per_token(m, attended(m, 0.0, f.seq, f.seq),
                                                  mtp_modules(m, f))
    dec_flops_tok = 0.0
    if f.decode:
        dec_flops_tok = model_forward_flops_per_token(m, decode_context(m, f), 0.0)
    kv_elems = kv_cache_elems_per_gpu(m, f.tp)
    return LayerStage(code, n_tok, cap.capacity, load.load, cap.dropped, costs, fwd_flops_tok,
                      dec_flops_tok, kv_elems)


# ---- level 2: the pipeline split (columns before dp)

# One kind of pipeline stage (first, middle, last): its transformer layers, MoE layers
# among them, the (dense, expert) parameters one of its GPUs holds before ZeRO sharding,
# and whether it holds the input embedding (first) and the output layer (last).
StageShape = namedtuple("StageShape", ["layers", "moe_layers", "start", "dense_params",
                                       "expert_params", "first", "last", "mtp", "kept_params"])
SplitStage = namedtuple("SplitStage", ["first", "mid", "last", "valid"])


def stage_shape(n_layers, n_moe, start, first, last, held, mtp, mtp_moe, mtp_extra):
    """A stage kind holding n_layers layers (n_moe of them MoE): its layers' holdings,
    plus the input embedding on the first stage and the output layer on the last; the
    last also holds the MTP modules, counted as layers (mtp_moe of them MoE) and their
    projections."""
    if last:
        n_layers += mtp
        n_moe += mtp_moe
    dense = (n_layers - n_moe) * held.dense_layer + n_moe * held.moe_layer
    # [M10] of them, those kept in 16 bits in quantized inference
    kept = (n_layers - n_moe) * held.dense_kept + n_moe * held.moe_kept
    if first:
        dense += held.embed_extra
        kept += held.embed_extra
    if last:
        dense += held.output_extra + mtp * mtp_extra
        kept += held.output_extra
    return StageShape(n_layers, n_moe, start, dense, n_moe * held.expert_layer, first, last,
                      mtp if last else 0.0, kept)


# The transformer layers of each stage kind, and whether the fixed first/last counts
# leave every other stage a share (none negative).
StageLayers = namedtuple("StageLayers", ["first", "mid", "last", "valid"])


def stage_layers(L, f):
    # [S1] pipeline split as Megatron-Core makes it: the layers, plus one slot each for
    # the embedding and the loss where they count as layers
    # (account_for_embedding/loss_in_pipeline_split), go as evenly as possible over the
    # stages whose count is not fixed (decoder_first/last_pipeline_num_layers); the
    # remainder goes to the middle stages, so that the first and last (holding the
    # embedding and the output layer) get fewer (Llama 3 405B: 126 layers on 16 stages
    # -> 7, 8 x 14, 7; with both slots counted, 128 slots on 16 x 8 virtual stages, one
    # layer each, the first and last virtual stage holding no transformer layer).
    pp = f.pp
    if pp <= 1.0:
        return StageLayers(L, 0.0, L, True)
    fix_first = f.pp_first > 0.0
    fix_last = f.pp_last > 0.0
    n_mid = max(pp - 2.0, 0.0)
    shared = n_mid + (0.0 if fix_first else 1.0) + (0.0 if fix_last else 1.0)
    e = 1.0 if f.pp_embedding and not fix_first else 0.0
    lo = 1.0 if f.pp_loss and not fix_last else 0.0
    slots = L + e + lo - (f.pp_first if fix_first else 0.0) - (f.pp_last if fix_last else 0.0)
    if shared <= 0.0:
        return StageLayers(f.pp_first, 0.0, f.pp_last, slots == 0.0)
    base = np.floor(slots / shared)
    rem = slots - base * shared
    mid_extra = min(rem, n_mid)
    # what the middle stages do not take goes to the first stage, else to the last
    first = f.pp_first if fix_first else base + (rem - mid_extra) - e
    last = f.pp_last if fix_last else base + (rem - mid_extra if fix_first else 0.0) - lo
    mid = base + (1.0 if mid_extra > 0.0 else 0.0) if pp > 2.0 else 0.0
    return StageLayers(first, mid, last, slots >= 0.0 and first >= 0.0 and last >= 0.0)


def split_stage(m, f):
    """Level 2: the layers of each stage kind and what its GPUs hold."""
    L = m[S.M_LAYERS]
    pp = f.pp
    sl = stage_layers(L, f)
    layers_first = max(sl.first, 0.0)
    layers_last = max(sl.last, 0.0)
    layers_mid = max(sl.mid, 0.0)
    # [S2] MoE layers per stage: first stage [0, f), last stage [L-l, L), and the
    # middle stage just before the last, which holds the most MoE layers when dense
    # ones lead.
    moe_first = moe_layers_in(0.0, layers_first, m)
    moe_last = moe_layers_in(L - layers_last, L, m) if pp > 1.0 else moe_first
    moe_mid = moe_layers_in(L - layers_last - layers_mid, L - layers_last, m)
    held = layer_holdings(m, pp, f.tp, f.etp, f.ep)
    mtp = mtp_modules(m, f)
    mtp_moe = moe_layers_in(L, L + mtp, m)
    mtp_extra = m[S.M_MTP_PARAMS] / f.tp
    return SplitStage(stage_shape(layers_first, moe_first, 0.0, True, pp == 1.0, held, mtp,
                                  mtp_moe, mtp_extra),
                      stage_shape(layers_mid, moe_mid, L - layers_last - layers_mid, False,
                                  False, held, mtp, mtp_moe, mtp_extra),
                      stage_shape(layers_last, moe_last, L - layers_last, pp == 1.0, True,
                                  held, mtp, mtp_moe, mtp_extra), sl.valid)


# ---- level 3: micro-batches and GPU count (columns before vpp)

BatchStage = namedtuple("BatchStage", ["code", "n_gpus", "seqs_per_replica", "n_micro"])


def batch_stage(m, k, f, layer_code):
    """Level 3: the micro-batch count and the checks on expert folding, the batch and
    the GPU count, added to the layer-shape bits."""
    # [F2] feasibility of the batch and of the GPU count
    code = layer_code
    if m[S.M_EXPERTS] > 0.0 and not divides(f.etp * f.ep, f.tp * f.cp * f.dp):
        code |= S.V_EP_FOLD
    seqs_per_replica = f.gbs / f.dp
    n_micro = max(1.0, np.floor(seqs_per_replica / f.mbs))
    if not divides(f.dp * f.mbs, f.gbs):
        code |= S.V_BATCH
    n_gpus = f.tp * f.cp * f.pp * f.dp
    if k[S.K_GPUS_EXACT] > 0.0 and n_gpus != k[S.K_GPUS_EXACT]:
        code |= S.V_GPUS_EXACT
    if k[S.K_GPUS_MAX] > 0.0 and n_gpus > k[S.K_GPUS_MAX]:
        code |= S.V_GPUS_MAX
    return BatchStage(code, n_gpus, seqs_per_replica, n_micro)


# What the walkers keep between consecutive plans: reuse level k means the first k
# stage results are those of the previous plan.
Stages = namedtuple("Stages", ["layer", "split", "batch"])


def no_stages():
    """The walkers' starting value (the first plan is evaluated with reuse 0)."""
    c = LayerCosts(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                   0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    shape = StageShape(0.0, 0.0, 0.0, 0.0, 0.0, False, False, 0.0, 0.0)
    return Stages(LayerStage(0, 0.0, 0.0, 0.0, 0.0, c, 0.0, 0.0, 0.0),
                  SplitStage(shape, shape, shape, True), BatchStage(0, 0.0, 0.0, 0.0))


# ---- every plan: pipeline checks and memory


def offload_refused(m, f):
    # [F4] where Megatron-Core refuses CPU activation offloading (TransformerConfig: with
    # pipeline parallelism, with recomputation, for as many layers as the model's), and
    # outside training
    return (not f.training or f.pp > 1.0 or f.recompute > 0.0
            or f.offload >= m[S.M_LAYERS])


def pipeline_checks(m, f, split, n_micro):
    # [F3] feasibility of the pipeline depth (the only checks involving vpp): a virtual
    # stage per layer at most, the embedding and the loss counting as layers where the
    # split counts them; fixed first/last stage counts that leave the others a share.
    code = 0
    slots = m[S.M_LAYERS] + (1.0 if f.pp_embedding else 0.0) + (1.0 if f.pp_loss else 0.0)
    if f.pp * f.vpp > slots or not split.valid:
        code |= S.V_PP_LAYERS
    if f.vpp > 1.0 and (f.pp == 1.0 or not divides(f.pp, n_micro)):
        code |= S.V_VPP_SCHEDULE
    if f.offload > 0.0 and offload_refused(m, f):
        code |= S.V_CPU_OFFLOAD
    return code


# Bytes held per parameter, dense (sharded over DP*CP) and expert (over EDP).
ParamBytes = namedtuple("ParamBytes", ["dense_shard", "expert_shard", "w_dense", "w_expert",
                                       "g_dense", "g_expert", "o_dense", "o_expert", "w_kept"])


def bytes_per_param(f, pr):
    # [M2] bytes per parameter held (ZeRO paper: 2 + 2 + K, K = 12 for Adam's fp32 master
    # weights, m and v; 8 with bf16 moments), each term divided by its ZeRO shard: DP*CP
    # ranks for dense parameters, EDP = tp*cp*dp/(etp*ep) for expert parameters.
    # Inference holds the weights only.
    dense_shard = f.dp * f.cp
    expert_shard = f.tp * f.cp * f.dp / (f.etp * f.ep)
    w_dense = pr.wb / zero_shard(dense_shard, f.zero, 3.0)
    w_expert = pr.wb / zero_shard(expert_shard, f.zero, 3.0)
    g_dense = 0.0
    g_expert = 0.0
    o_dense = 0.0
    o_expert = 0.0
    if f.training:
        g_dense = f.grad_bytes / zero_shard(dense_shard, f.zero, 2.0)
        g_expert = f.grad_bytes / zero_shard(expert_shard, f.zero, 2.0)
        o_dense = f.opt_bytes / zero_shard(dense_shard, f.zero, 1.0)
        o_expert = f.opt_bytes / zero_shard(expert_shard, f.zero, 1.0)
    # the 16-bit parameters of quantized inference (never ZeRO-sharded); in training every
    # weight is 16-bit already
    w_kept = w_dense if f.training else pr.hb
    return ParamBytes(dense_shard, expert_shard, w_dense, w_expert, g_dense, g_expert,
                      o_dense, o_expert, w_kept)


# Activation bytes: per dense and per MoE layer of one micro-batch, the first stage's
# embedding output, the last stage's logits; and inference's working set.
Activations = namedtuple("Activations", ["dense_layer", "moe_layer", "full_layer", "embedding",
                                         "logits", "inference"])


def activations(m, f, pr, layer, seqs):
    n_tok = layer.n_tok
    act_dense = 0.0
    act_moe = 0.0
    act_inf = 0.0
    if f.training:
        # a layer not recomputed keeps what the savers leave (a fully recomputed one its
        # input only, the embedding's size below)
        act_dense = layer_activation_bytes(m, n_tok, f.seq, f.tp, f.sp, f.flash, 0.0, False,
                                           layer.expert_load, f.etp, f.sv)
        act_moe = layer_activation_bytes(m, n_tok, f.seq, f.tp, f.sp, f.flash, 0.0, True,
                                         layer.expert_load, f.etp, f.sv)
    else:
        # [M8] inference keeps no activations for backward: the working set of one layer
        # (input, QKV, MLP hidden, scores without flash) plus the last token's logits, for
        # the tokens of a step: the micro-batch's prompts, or with a token budget
        # (max_num_tokens) as many tokens, and logits for as many of the seqs sampled (the
        # workspace TensorRT-LLM sizes at engine build from max_num_tokens, docs
        # reference/memory.md "Activation size").
        ws_tok = n_tok
        logit_rows = f.mbs
        if f.max_tokens > 0.0:
            ws_tok = f.max_tokens / f.cp
            logit_rows = min(f.max_tokens, seqs)
        act_inf = pr.ab * ws_tok * (4.0 * m[S.M_HIDDEN] + (2.0 + m[S.M_GATED])
                                    * max(m[S.M_FFN], m[S.M_EXPERT_FFN]) / f.tp)
        if not f.flash:
            act_inf += pr.ab * ws_tok * f.seq * m[S.M_HEADS] / f.tp
        act_inf += logit_rows * m[S.M_VOCAB] / f.tp * 4.0
    # [M6] logits kept in fp32 for the loss on the last stage (one micro-batch at a time)
    logits_bytes = n_tok * m[S.M_VOCAB] / f.tp * 4.0
    embedding = 2.0 * n_tok * m[S.M_HIDDEN] / (f.tp if f.sp else 1.0)
    return Activations(act_dense, act_moe, embedding, embedding, logits_bytes, act_inf)


# The dense and MoE layers of a stage kind that full recomputation recomputes.
FullRecompute = namedtuple("FullRecompute", ["dense", "moe"])


def full_recompute(m, f, shape):
    # [M9] full recomputation of every layer, or (recompute_layers = n, Megatron-Core's
    # block method) of the first n layers of each virtual stage: n x vpp of the stage's
    # layers, taken from its first layer on.
    if f.recompute != 2.0:
        return FullRecompute(0.0, 0.0)
    if f.recompute_layers <= 0.0:
        return FullRecompute(shape.layers - shape.moe_layers, shape.moe_layers)
    n = min(shape.layers, f.recompute_layers * f.vpp)
    moe = moe_layers_in(shape.start, shape.start + n, m)
    return FullRecompute(n - moe, moe)


# The dense and MoE layers of a stage kind whose activations CPU offloading keeps in host
# memory.
Offload = namedtuple("Offload", ["dense", "moe"])


def offloaded_layers(m, f, shape):
    # [M12] CPU activation offloading (Megatron-Core cpu_offloading_num_layers, run by
    # Transformer Engine's default scheduling; TE docs "CPU Offloading"): the first n
    # layers' activations go to host memory as they are saved and come back for their
    # backward, so a GPU holds L - n layers' at any time. Only where Megatron-Core runs it
    # (offload_refused: CPU_OFFLOAD, and nothing offloaded).
    if f.offload <= 0.0 or offload_refused(m, f):
        return Offload(0.0, 0.0)
    n = min(shape.layers, f.offload)
    moe = moe_layers_in(shape.start, shape.start + n, m)
    return Offload(n - moe, moe)


# One stage kind's memory per GPU, itemised.
StageMemory = namedtuple("StageMemory", ["dense_params", "expert_params", "activations",
                                         "kv_cache", "total", "kept_params", "buffers",
                                         "kv_seqs"])

# More sequences than any KV cache holds (a stage without layers holds no KV): 2**53.
UNBOUNDED = 9007199254740992.0


def stage_memory(shape, inflight, act, kv_seq, seqs, pb, overhead, buffers, usable,
                 kv_fraction, training, full, off):
    # [M4] memory of one GPU of a stage kind: its parameters at their bytes per
    # parameter, the activations of its in-flight micro-batches (training; `full`: the
    # dense and MoE layers fully recomputed, `off`: those offloaded to the host) or the
    # working set, KV cache and runtime buffers of its layers (inference), and the fixed
    # overhead.
    kv = 0.0
    kv_seqs = 0.0
    per_dense = pb.w_dense + pb.g_dense + pb.o_dense
    per_expert = pb.w_expert + pb.g_expert + pb.o_expert
    params = shape.dense_params * per_dense + shape.expert_params * per_expert
    if training:
        layers = ((shape.layers - shape.moe_layers - full.dense - off.dense) * act.dense_layer
                  + (shape.moe_layers - full.moe - off.moe) * act.moe_layer
                  + (full.dense * act.full_layer + full.moe * act.full_layer))
        if shape.first:
            layers = layers + act.embedding
        held_act = inflight * layers
        if shape.last:
            held_act = held_act + act.logits
    else:
        # [M11] the KV cache as engines size it: a pool of kv_fraction of the memory left
        # after weights, workspace, overhead and buffers (TensorRT-LLM
        # kv_cache_free_gpu_mem_fraction; vLLM's gpu_memory_utilization is of the whole
        # HBM), or the requests' own (kv_fraction 0); kv_seqs: the sequences of whole
        # blocks (kv_seq bytes each per layer) that the pool, or the memory left, holds
        held_act = act.inference
        params += shape.kept_params * (pb.w_kept - pb.w_dense)
        seq_bytes = kv_seq * shape.layers
        room = max(0.0, usable - (params + held_act + overhead + buffers))
        kv = seqs * seq_bytes
        if kv_fraction > 0.0:
            kv = kv_fraction * room
            room = kv
        kv_seqs = UNBOUNDED
        if seq_bytes > 0.0:
            kv_seqs = np.floor(room / seq_bytes)
    total = params + held_act + kv + overhead + buffers
    return StageMemory(shape.dense_params, shape.expert_params, held_act, kv, total,
                       shape.kept_params, buffers, kv_seqs)


def fuller(a, b):
    # the stage kind with more memory (the earlier one on a tie)
    return b if b.total > a.total else a


# The memory per GPU of each stage kind, and of the fullest (the one that must fit).
StageMemories = namedtuple("StageMemories", ["first", "mid", "last", "fullest", "kv_seqs"])


def stage_memories(m, h, f, pr, act, layer, split, batch, pb, usable):
    """The memory of every stage kind, which is fullest, and the sequences the KV cache of
    every stage holds (`act`: the activations of a layer; `usable`: the HBM a GPU may
    fill)."""
    # [M5] in-flight micro-batches under 1F1B: stage i holds min(m, p - i); interleaving
    # multiplies the first stage's by 1 + (p-1)/(p*v) (Korthikanti Sec. 4.2.3).
    inflight_first = min(batch.n_micro, f.pp)
    if f.vpp > 1.0:
        inflight_first = inflight_first * (1.0 + (f.pp - 1.0) / (f.pp * f.vpp))
    inflight_mid = min(batch.n_micro, max(f.pp - 1.0, 1.0))
    inflight_last = 1.0 if f.pp > 1.0 else inflight_first
    # [M7] KV cache (inference): sequences per replica x context x layers on the stage x
    # values per token and layer on this GPU; CP shards the context. Paged: a sequence
    # holds whole blocks of kv_block tokens (vLLM PagedAttention, Kwon et al. 2023 Sec.
    # 4.1; TensorRT-LLM tokens_per_block).
    kv_seq = 0.0
    buffers = 0.0
    if not f.training:
        ctx = f.seq + f.gen if f.decode else f.seq
        blocks = np.ceil(ctx / (f.cp * f.kv_block))
        kv_seq = layer.kv_elems * pr.kvb * blocks * f.kv_block
        buffers = h[S.H_RUNTIME_BUFFERS]
    overhead = h[S.H_MEM_OVERHEAD]
    seqs = batch.seqs_per_replica
    first = stage_memory(split.first, inflight_first, act, kv_seq, seqs, pb, overhead, buffers,
                         usable, f.kv_fraction, f.training, full_recompute(m, f, split.first),
                         offloaded_layers(m, f, split.first))
    last = stage_memory(split.last, inflight_last, act, kv_seq, seqs, pb, overhead, buffers,
                        usable, f.kv_fraction, f.training, full_recompute(m, f, split.last),
                        offloaded_layers(m, f, split.last))
    mid = stage_memory(split.mid, inflight_mid, act, kv_seq, seqs, pb, overhead, buffers,
                       usable, f.kv_fraction, f.training, full_recompute(m, f, split.mid),
                       offloaded_layers(m, f, split.mid))
    return StageMemories(first, mid, last, fuller(fuller(first, last), mid),
                         min(first.kv_seqs, min(last.kv_seqs, mid.kv_seqs)))


# ---- every plan: time


# Per-layer times of one micro-batch, as a stage adds them up.
LayerTimes = namedtuple("LayerTimes", ["dense_fwd", "moe_fwd", "passes", "bwd_extra",
                                       "comm_passes", "ep_moe",
                                       "recompute_core", "recompute_dense", "recompute_moe",
                                       "recompute_layer", "recompute_ep", "tp_dense", "tp_moe",
                                       "tp_bwd_dense", "tp_bwd_moe", "dense_kernels",
                                       "moe_kernels", "launch_s"])


def layer_times(c, f, h):
    dense_fwd = c.attn_s + c.mlp_s
    moe_fwd = c.attn_s + c.moe_s
    # [T12] training: backward = 2x forward FLOPs and traffic (data and weight gradients);
    # full recompute repeats each recomputed layer's forward, selective the forward of
    # the modules it recomputes: per layer (core attention, norms, MLA up-projections),
    # per dense layer (the MLP), per MoE layer (experts, or their activation alone;
    # shared experts).
    passes = 3.0 if f.training else 1.0
    # fused attention's backward runs at its own rate, not twice its forward's time
    bwd_extra = c.attn_bwd_extra_s if f.training else 0.0
    comm_passes = 2.0 if f.training else 1.0
    sv = f.sv
    recompute_layer = 1.0 if f.recompute == 2.0 else 0.0
    recompute_core = ((c.attn_core_s if sv.core_attn else 0.0)
                      + (c.norm_s if sv.layernorm else 0.0)
                      + (c.mla_up_s if sv.mla_up_proj else 0.0))
    recompute_dense = c.mlp_s if sv.mlp else 0.0
    recompute_moe = ((c.experts_s if sv.moe else c.moe_act_s if sv.moe_act else 0.0)
                     + (c.shared_s if sv.shared_experts else 0.0))
    # recomputing the MoE module (dispatch, experts, combine) replays its all-to-alls
    recompute_ep = 1.0 if sv.moe else 0.0
    # [C11] TP communication overlap (tp_overlap: Megatron/Transformer Engine userbuffers)
    # splits each collective into chunks pipelined with the GEMMs it feeds: only what
    # exceeds the layer's GEMM time stays exposed.
    tp_dense = c.tp_s
    tp_moe = c.tp_s
    if f.tp_overlap:
        tp_dense = max(0.0, c.tp_s - (c.attn_s - c.attn_core_s + c.mlp_s))
        tp_moe = max(0.0, c.tp_s - (c.attn_s - c.attn_core_s + c.moe_s))
    # [C15] backward TP overlap (tp_dgrad_overlap: Megatron-LM since 2022, Megatron-Core's
    # and Transformer Engine's linears): a column-parallel linear (QKV, the MLP's FC1)
    # launches its input-gradient all-reduce (with SP: reduce-scatter) asynchronously and
    # computes its weight gradient meanwhile; with SP it also re-gathers its input (kept
    # sharded) behind its input-gradient GEMM. Each hides behind a GEMM of the linear's
    # forward size; the row-parallel side (with SP: the output gradient's all-gather) and
    # the MoE block's collectives stay exposed. tp_s holds two all-reduces, or with SP
    # two all-gathers and two reduce-scatters.
    # Per side of a layer: the attention's QKV, the dense MLP's FC1, the MoE block.
    tp_bwd_dense = tp_dense
    tp_bwd_moe = tp_moe
    if f.tp_dgrad_overlap and not f.tp_overlap:
        if f.sp:
            one = 0.25 * c.tp_s
            qkv_side = one + 2.0 * max(0.0, one - c.qkv_s)
            fc1_side = one + 2.0 * max(0.0, one - c.fc1_s)
            moe_side = 2.0 * one
        else:
            one = 0.5 * c.tp_s
            qkv_side = max(0.0, one - c.qkv_s)
            fc1_side = max(0.0, one - c.fc1_s)
            moe_side = one
        tp_bwd_dense = qkv_side + fc1_side
        tp_bwd_moe = qkv_side + moe_side
    # [C12] EP overlap (Megatron-Core's MoE all-to-all overlap, DeepSeek's DualPipe): one
    # micro-batch's dispatch and combine run while another's attention and experts
    # compute; only what exceeds that layer's compute stays exposed.
    ep_moe = c.ep_s
    if f.ep_overlap:
        ep_moe = max(0.0, c.ep_s - moe_fwd)
    # [T20] host launches ([T19] kernels): training and prefill passes are launched eagerly
    # (no CUDA graph), so a stage's micro-batch takes at least its kernels x
    # launch_overhead; per layer of a micro-batch: the backward launches twice the
    # forward's kernels, recomputation those of the modules it recomputes (core 1, norms
    # 2, MLA up-projections, MLP 5, experts 3 or their activation 1, shared experts).
    layer_kernels = ((c.bwd_kernels if f.training else 0.0) + (1.0 if sv.core_attn else 0.0)
                     + (2.0 if sv.layernorm else 0.0)
                     + (c.mla_up_kernels if sv.mla_up_proj else 0.0))
    dense_kernels = passes * c.dense_kernels + layer_kernels + (5.0 if sv.mlp else 0.0)
    moe_kernels = (passes * c.moe_kernels + layer_kernels
                   + (3.0 if sv.moe else 1.0 if sv.moe_act else 0.0)
                   + (c.shared_kernels if sv.shared_experts else 0.0))
    return LayerTimes(dense_fwd, moe_fwd, passes, bwd_extra, comm_passes, ep_moe,
                      recompute_core, recompute_dense, recompute_moe, recompute_layer,
                      recompute_ep, tp_dense, tp_moe, tp_bwd_dense, tp_bwd_moe, dense_kernels,
                      moe_kernels, h[S.H_LAUNCH_OVERHEAD])


def stage_compute_s(n_layers, n_moe, dense_fwd, moe_fwd, passes, embed_s, output_s):
    # [T13] compute of one stage for one micro-batch (forward, and backward when training)
    return passes * ((n_layers - n_moe) * dense_fwd + n_moe * moe_fwd + embed_s + output_s)


# One stage kind's time per micro-batch: total, compute, recompute, CPU offloading copies
# not hidden, exposed TP, CP and EP communication, launches; and its layers.
StageTime = namedtuple("StageTime", ["total", "compute", "recompute", "offload", "tp", "cp",
                                     "ep", "launch", "kernels", "layers", "moe_layers"])


def offload_s(h, lt, act, off, n_layers):
    # [T27] CPU offloading's copies run on a stream of their own over the host link (one
    # direction each way): a layer's activations go out while the next layers compute
    # forward and come back while the later ones compute backward, so a copy longer than
    # a layer's pass shows the difference. With one layer's activations left on the GPU
    # (n = L - 1) nothing overlaps (TE docs: "compute and transfers cannot overlap").
    n = off.dense + off.moe
    if n <= 0.0:
        return 0.0
    copy_dense = act.dense_layer / h[S.H_HOST_BW]
    copy_moe = act.moe_layer / h[S.H_HOST_BW]
    if n >= n_layers - 1.0:
        return 2.0 * (off.dense * copy_dense + off.moe * copy_moe)
    bwd_dense = (lt.passes - 1.0) * lt.dense_fwd + lt.bwd_extra
    bwd_moe = (lt.passes - 1.0) * lt.moe_fwd + lt.bwd_extra
    return (off.dense * (max(0.0, copy_dense - lt.dense_fwd) + max(0.0, copy_dense - bwd_dense))
            + off.moe * (max(0.0, copy_moe - lt.moe_fwd) + max(0.0, copy_moe - bwd_moe)))


def stage_time(h, shape, lt, c, act, full, off):
    """The time of one stage kind for one micro-batch: its layers' compute (with the
    embedding on the first stage and the output layer on the last), recomputation (of
    the selective modules, or of the `full`y recomputed layers), the CPU offloading
    copies (of the `off`loaded layers) not hidden, and exposed TP, CP and EP
    communication."""
    dense = shape.layers - shape.moe_layers
    compute = (stage_compute_s(shape.layers, shape.moe_layers, lt.dense_fwd, lt.moe_fwd,
                               lt.passes, c.embed_s if shape.first else 0.0,
                               (1.0 + shape.mtp) * c.output_s if shape.last else 0.0)
               + shape.layers * lt.bwd_extra)
    recompute = (shape.layers * lt.recompute_core + dense * lt.recompute_dense
                 + shape.moe_layers * lt.recompute_moe
                 + lt.recompute_layer * (full.dense * lt.dense_fwd + full.moe * lt.moe_fwd))
    offload = offload_s(h, lt, act, off, shape.layers)
    # [C13] communication per pass (forward, backward); recomputing a layer's forward
    # replays its collectives (TP, the CP ring, EP dispatch and combine), recomputing the
    # MoE module its all-to-alls
    full_layers = lt.recompute_layer * (full.dense + full.moe)
    bwd_passes = lt.comm_passes - 1.0
    tp = (dense * (lt.tp_dense + bwd_passes * lt.tp_bwd_dense)
          + shape.moe_layers * (lt.tp_moe + bwd_passes * lt.tp_bwd_moe)
          + lt.recompute_layer * (full.dense * lt.tp_dense + full.moe * lt.tp_moe))
    cp = (lt.comm_passes * shape.layers + full_layers) * c.cp_s
    ep = ((lt.comm_passes + lt.recompute_ep) * shape.moe_layers
          + lt.recompute_layer * full.moe) * lt.ep_moe
    # [T20] the kernels of the same terms; the host's launches not hidden behind them
    embed_k = c.embed_kernels if shape.first else 0.0
    output_k = (1.0 + shape.mtp) * c.output_kernels if shape.last else 0.0
    kernels = (dense * lt.dense_kernels + shape.moe_layers * lt.moe_kernels
               + lt.passes * (embed_k + output_k)
               + lt.recompute_layer * (full.dense * c.dense_kernels + full.moe * c.moe_kernels))
    gpu = compute + recompute + offload + tp + cp + ep
    launch = max(0.0, kernels * lt.launch_s - gpu)
    return StageTime(gpu + launch, compute, recompute, offload, tp, cp, ep, launch, kernels,
                     shape.layers, shape.moe_layers)


def slower(a, b):
    # the stage kind that takes longer (the earlier one on a tie)
    return b if b.total > a.total else a


# The slowest stage's micro-batch time, itemised: it paces the pipeline.
MicroBatch = namedtuple("MicroBatch", ["total", "compute", "recompute", "offload", "tp", "cp",
                                       "ep", "launch", "kernels", "layers", "moe_layers"])


def micro_batch_time(m, h, c, f, act, split):
    lt = layer_times(c, f, h)
    first = stage_time(h, split.first, lt, c, act, full_recompute(m, f, split.first),
                       offloaded_layers(m, f, split.first))
    last = stage_time(h, split.last, lt, c, act, full_recompute(m, f, split.last),
                      offloaded_layers(m, f, split.last))
    mid = stage_time(h, split.mid, lt, c, act, full_recompute(m, f, split.mid),
                     offloaded_layers(m, f, split.mid))
    slow = slower(slower(first, last), mid)
    return MicroBatch(slow.total, slow.compute, slow.recompute, slow.offload, slow.tp, slow.cp,
                      slow.ep, slow.launch, slow.kernels, slow.layers, slow.moe_layers)


def pipeline_send_s(m, h, f, pr, n_tok):
    # [C9] pipeline: one activation per micro-batch per stage boundary and direction, vpp
    # times with interleaving; PP ranks are tp*cp*dp apart. With SP each TP rank holds
    # 1/t of it; without, Megatron's scatter/gather optimisation (Narayanan et al. 2021
    # Sec. 4.1) sends 1/t per rank and all-gathers it over TP on the receiving stage.
    if f.pp <= 1.0:
        return 0.0
    act = n_tok * m[S.M_HIDDEN] * pr.ab
    stride = f.tp * f.cp * f.dp
    if f.sp:
        return p2p_s(act / f.tp, stride, h)
    if f.pp_scatter_gather and f.tp > 1.0:
        return p2p_s(act / f.tp, stride, h) + allgather_s(act, f.tp, 1.0, h)
    return p2p_s(act, stride, h)


# The step, itemised (seconds), with the tokens and FLOPs it processes.
StepTime = namedtuple("StepTime", [
    "compute", "recompute", "offload", "tp", "cp", "ep", "pp_p2p", "pp_bubble", "dp", "optimizer",
    "launch", "step_overhead", "step", "tokens", "model_flops", "hw_flops", "ttft", "tpot",
    "kernels"])


def data_parallel_s(h, f, pr, pb, d_max, e_max, mb, n_micro):
    # [C10] gradients: all-reduce (ZeRO 0) or reduce-scatter + parameter all-gather
    # (ZeRO >= 1, distributed optimizer) over DP*CP (stride tp) for dense and EDP
    # (stride etp*ep) for expert parameters. The gradient reduction overlaps the last
    # micro-batch's backward, the parameter all-gather the next step's first forward;
    # the excess is exposed (all of it without dp_overlap). ZeRO-3 also gathers
    # parameters in every fwd and bwd.
    fwd_mb = mb.compute / 3.0
    bwd_mb = mb.compute - fwd_mb + mb.recompute
    expert_stride = f.etp * f.ep
    gather_dp = 0.0
    if f.zero == 0.0:
        reduce_dp = (allreduce_s(d_max * f.grad_bytes, pb.dense_shard, f.tp, h)
                     + allreduce_s(e_max * f.grad_bytes, pb.expert_shard, expert_stride, h))
    else:
        reduce_dp = (allgather_s(d_max * f.grad_bytes, pb.dense_shard, f.tp, h)
                     + allgather_s(e_max * f.grad_bytes, pb.expert_shard, expert_stride, h))
        gather_dp = (allgather_s(d_max * pr.wb, pb.dense_shard, f.tp, h)
                     + allgather_s(e_max * pr.wb, pb.expert_shard, expert_stride, h))
    dp_s = max(0.0, reduce_dp - bwd_mb) + max(0.0, gather_dp - fwd_mb)
    if not f.dp_overlap:
        dp_s = reduce_dp + gather_dp
    if f.zero == 3.0:
        gather_s = (allgather_s(d_max * pr.wb, pb.dense_shard, f.tp, h)
                    + allgather_s(e_max * pr.wb, pb.expert_shard, expert_stride, h))
        dp_s += n_micro * max(0.0, 2.0 * gather_s - mb.compute)
    return dp_s


def recompute_flops_per_token(m, ctx, f, fwd_flops_tok):
    # [T12] recomputed forward FLOPs: full = the recomputed layers' forward (every layer's,
    # not the output layer; with recompute_layers, that share of the layers); selective =
    # the modules recomputed: attention scores and context, MLA up-projections, dense
    # MLPs, routed (top-k) and shared experts.
    L = m[S.M_LAYERS]
    if f.recompute == 2.0:
        layer_flops = (fwd_flops_tok
                       - (1.0 + mtp_modules(m, f)) * 2.0 * m[S.M_HIDDEN] * m[S.M_VOCAB])
        if f.recompute_layers > 0.0:
            return layer_flops * min(1.0, f.recompute_layers * f.vpp * f.pp / L)
        return layer_flops
    if f.recompute != 1.0:
        return 0.0
    sv = f.sv
    n_moe = moe_layers_in(0.0, L, m)
    n_mat = 2.0 + m[S.M_GATED]
    hid = m[S.M_HIDDEN]
    core = 0.0
    if sv.core_attn:
        core = 2.0 * L * ctx * m[S.M_HEADS] * (m[S.M_QK_HEAD_DIM] + m[S.M_V_HEAD_DIM])
    extra = 0.0
    if sv.mla_up_proj and m[S.M_MLA] > 0.0:
        nope_v = m[S.M_QK_HEAD_DIM] - m[S.M_ROPE_HEAD_DIM] + m[S.M_V_HEAD_DIM]
        extra += 2.0 * L * m[S.M_HEADS] * (m[S.M_Q_LORA_RANK] * m[S.M_QK_HEAD_DIM]
                                           + m[S.M_KV_LORA_RANK] * nope_v)
    if sv.mlp:
        extra += 2.0 * (L - n_moe) * m[S.M_MLP_GEMM_PARAMS]
    if sv.moe:
        extra += 2.0 * n_moe * m[S.M_TOP_K] * hid * m[S.M_EXPERT_FFN] * n_mat
    if sv.shared_experts:
        extra += 2.0 * n_moe * hid * m[S.M_SHARED_FFN] * n_mat
    return core + extra


def training_step(m, h, f, pr, layer, split, batch, pb, mb, p2p_one):
    # [T16] step = m micro-batches of the slowest stage + bubble (p-1)/v of them
    # + pipeline sends + exposed DP traffic + optimizer.
    n_micro = batch.n_micro
    bubble_s = (f.pp - 1.0) / f.vpp * mb.total
    p2p_total = 2.0 * n_micro * f.vpp * p2p_one
    # the largest stage holding drives DP traffic and the optimizer step
    d_max = max(split.first.dense_params, max(split.last.dense_params, split.mid.dense_params))
    e_max = max(split.first.expert_params,
                max(split.last.expert_params, split.mid.expert_params))
    dp_s = data_parallel_s(h, f, pr, pb, d_max, e_max, mb, n_micro)
    # [T14] optimizer: Adam reads and writes fp32 master weights and both moments,
    # reads the gradient and writes the bf16 weight, for the parameters it owns.
    opt_params = (d_max / zero_shard(pb.dense_shard, f.zero, 1.0)
                  + e_max / zero_shard(pb.expert_shard, f.zero, 1.0))
    opt_s = memory_bound_s(opt_params * (2.0 * f.opt_bytes + f.grad_bytes + pr.wb), 4.0, h)
    step_s = n_micro * mb.total + bubble_s + p2p_total + dp_s + opt_s
    tokens = f.gbs * f.seq
    model_flops = 3.0 * layer.fwd_flops_tok * tokens
    hw_flops = model_flops + tokens * recompute_flops_per_token(m, f.seq, f, layer.fwd_flops_tok)
    return StepTime(n_micro * mb.compute, n_micro * mb.recompute, n_micro * mb.offload,
                    n_micro * mb.tp, n_micro * mb.cp, n_micro * mb.ep, p2p_total, bubble_s, dp_s,
                    opt_s, n_micro * mb.launch, 0.0, step_s, tokens, model_flops, hw_flops, 0.0,
                    0.0, mb.kernels)


# One decode step of one pipeline group on the slowest stage, itemised.
DecodeStep = namedtuple("DecodeStep", ["compute", "experts", "tp", "cp", "ep", "p2p", "launch",
                                       "kernels"])


def step_slot_s(d, wait, step_cost):
    # one engine step's wall time: its operators (plus `wait`, the time it waits for the
    # busiest attention replica, [T23]), its collectives, launches, sends and fixed cost
    return d.compute + wait + d.tp + d.cp + d.ep + d.launch + d.p2p + step_cost


def decode_step(m, h, f, pr, mb, n_tok, keys, seqs, eager):
    # (see inference_step, continuous_step) one engine step of a group: n_tok tokens on
    # each GPU attending to `keys` keys each, `seqs` of them decode tokens reading their
    # cached context (mean seq + gen/2); its experts see the step's tokens; `eager`: the
    # share of steps launched without a CUDA graph.
    kv_mean = decode_context(m, f)
    load = expert_load(m, f, expert_capacity(m, n_tok, f.cf, f.training).capacity)
    dc = layer_costs(m, h, n_tok, keys, kv_mean, True, seqs, seqs, f.tp, f.cp, f.etp, f.ep,
                     False, f.flash, f.attn_kernel, True, load.load, load.active, pr.rate,
                     pr.expert_rate, pr.token_half, pr.ab, pr.wb, pr.kvb, pr.db, pr.head_rate,
                     f.dispatcher)
    n_l = mb.layers
    n_mo = mb.moe_layers
    dec_compute = ((n_l - n_mo) * (dc.attn_s + dc.mlp_s) + n_mo * (dc.attn_s + dc.moe_s)
                   + dc.embed_s + dc.output_s)
    # the MoE layers' own share: what the ranks of an EP group do together
    dec_experts = n_mo * dc.moe_s
    dec_p2p = 0.0
    if f.pp > 1.0:
        dec_p2p = p2p_s(n_tok * m[S.M_HIDDEN] * pr.ab, f.tp * f.cp * f.dp, h)
    # [T20] a step replayed from a CUDA graph launches no kernel from the host; an eager
    # one takes at least its kernels x launch_overhead. [T26] Either also takes at least
    # the host's work for its `seqs` requests, which the overlap scheduler hides behind
    # the GPU until it is the longer; the host's excess over the GPU is exposed.
    dec_kernels = ((n_l - n_mo) * dc.dense_kernels + n_mo * dc.moe_kernels + dc.embed_kernels
                   + dc.output_kernels)
    gpu = dec_compute + n_l * dc.tp_s + n_l * dc.cp_s + n_mo * dc.ep_s
    launches = dec_kernels * h[S.H_LAUNCH_OVERHEAD]
    requests = seqs * h[S.H_REQUEST_OVERHEAD]
    host = (eager * max(0.0, launches + requests - gpu)
            + (1.0 - eager) * max(0.0, requests - gpu))
    return DecodeStep(dec_compute, dec_experts, n_l * dc.tp_s, n_l * dc.cp_s, n_mo * dc.ep_s,
                      dec_p2p, host, dec_kernels)


def inference_step(m, h, f, pr, layer, batch, mb, p2p_one):
    # [T17] inference. Prefill: the replica's prompts flow through the pipeline in
    # n_micro micro-batches, (n_micro + p - 1) slowest-stage times (TTFT). Decode
    # (continuous batching): each step advances every sequence of the replica by one
    # token, in p groups that keep the pipeline full, at the mean context
    # seq + gen/2: TPOT = p x one group's slowest-stage time. [T21] Every engine step (a
    # pipeline slot of a prefill micro-batch, a decode step of a group) also pays the
    # fixed per-step cost outside the layers.
    n_micro = batch.n_micro
    pp = f.pp
    fill = n_micro + pp - 1.0
    step_cost = h[S.H_STEP_OVERHEAD]
    ttft = fill * (mb.total + p2p_one + step_cost)
    t_compute = n_micro * mb.compute
    t_tp = n_micro * mb.tp
    t_cp = n_micro * mb.cp
    t_ep = n_micro * mb.ep
    t_p2p = fill * p2p_one
    t_launch = n_micro * mb.launch
    t_fixed = fill * step_cost
    bubble_s = (pp - 1.0) * mb.total
    model_flops = layer.fwd_flops_tok * f.gbs * f.seq
    tpot = 0.0
    kernels = mb.kernels
    if f.decode:
        # a group of the replica's sequences advances by one token at the mean context
        group = max(1.0, np.floor(batch.seqs_per_replica / pp))
        d = decode_step(m, h, f, pr, mb, group, decode_context(m, f), group,
                        0.0 if f.cuda_graphs else 1.0)
        tpot = pp * step_slot_s(d, 0.0, step_cost)
        t_compute += f.gen * pp * d.compute
        t_tp += f.gen * pp * d.tp
        t_cp += f.gen * pp * d.cp
        t_ep += f.gen * pp * d.ep
        t_p2p += f.gen * pp * d.p2p
        t_launch += f.gen * pp * d.launch
        t_fixed += f.gen * pp * step_cost
        model_flops += f.gen * f.gbs * layer.dec_flops_tok
        kernels = d.kernels
    step_s = t_compute + t_tp + t_cp + t_ep + t_p2p + bubble_s + t_launch + t_fixed
    tokens = f.gbs * f.gen if f.decode else f.gbs * f.seq
    return StepTime(t_compute, 0.0, 0.0, t_tp, t_cp, t_ep, t_p2p, bubble_s, 0.0, 0.0, t_launch,
                    t_fixed, step_s, tokens, model_flops, model_flops, ttft, tpot, kernels)


# The steady state of continuous batching: the decode tokens of a step and what the token
# budget sustains, the prefill tokens of an average step and of a step carrying a chunk,
# the keys per token of each, the chunks of a prompt, the share of steps with a chunk; the
# prefill tokens of the busiest attention replica and their keys.
ContinuousBatch = namedtuple("ContinuousBatch", ["decode", "budget_decode", "prefill", "keys",
                                                 "chunk", "chunk_keys", "chunks", "mixed",
                                                 "busiest", "busiest_keys"])


def attention_ranks(m, f):
    # [T23] the attention replicas an EP group's experts serve (attention data parallel:
    # ep x etp GPUs over tp x cp attention groups); a dense model's replicas never meet
    if m[S.M_EXPERTS] <= 0.0:
        return 1.0
    return max(1.0, f.ep * f.etp / (f.tp * f.cp))


def busiest_chunks(lam, ranks, room):
    # [T23] the expected chunks of the busiest of `ranks` replicas, each carrying a
    # Poisson(lam) number a step, at most `room`: E[min(max, room)] = sum over k = 1..room
    # of P(max >= k) = 1 - F(k-1)^ranks, F the Poisson CDF. The terms well below the mode
    # are 1 (F < e^-50 there), so the sum starts 10 sigma + 10 below it, with the pmf in
    # log space (no underflow at large lam). Up to the median (F <= 1/2) a term comes from
    # F itself: F^ranks <= 1/2 there, so a rounding of F moves it by no more than one.
    # Above the median, 1 - F^ranks = -expm1(ranks log1p(-Q)) from the tail Q = 1 - F;
    # taken as 1 - F, Q would keep F's absolute rounding, which ranks multiplies (at
    # lam = 1e-9 and ranks = 1e6 that is the whole term), so Q is summed from the tail's
    # far end instead, where ranks x pmf is below 1e-17 of the first term 1 - e^(-lam
    # ranks), a lower bound of the sum: positive terms only, each term to its own digits.
    if lam <= 0.0:
        return 0.0
    start = max(1.0, np.floor(lam - 10.0 * np.sqrt(lam) - 10.0))
    total = min(start - 1.0, room)
    p = math.exp(-lam + (start - 1.0) * math.log(lam) - math.lgamma(start))
    cdf = p
    k = start
    while k <= room and cdf <= 0.5:
        total += 1.0 - cdf ** ranks
        p = p * lam / k
        cdf += p
        k += 1.0
    if k > room:
        return total
    negligible = 1e-17 * -math.expm1(-lam * ranks) / ranks
    end = k
    p = p * lam / end
    while end <= lam or p >= negligible:
        end += 1.0
        p = p * lam / end
    tail = p
    upper = 0.0
    j = end
    while j >= k:
        if j <= room:
            upper += -math.expm1(ranks * math.log1p(-tail))
        p = p * j / lam
        tail += p
        j -= 1.0
    return total + upper


def continuous_batch(m, f, group, ranks):
    # [T22] continuous batching with chunked prefill (TensorRT-LLM in-flight batching, vLLM
    # chunked prefill; Agrawal et al. 2024, Sarathi-Serve, OSDI'24): an engine step of a
    # group of `group` sequences carries their decode tokens and prefill chunks up to the
    # token budget B = max_num_tokens. In the steady state every request brings seq prompt
    # tokens per gen decode tokens, so the budget sustains at most B*gen/(seq + gen)
    # decode tokens a step; the prompt of a request comes in ceil(seq/(B - decode)) chunks,
    # one a step; an average step carries decode*seq/gen prefill tokens, so that share of
    # a chunk's steps carries one. Prefill tokens attend to seq/2 keys (causal, flash) or
    # seq, decode tokens to the mean context seq + gen/2. [T23] Of `ranks` attention
    # replicas that meet at every MoE layer, chunks arriving independently (a Poisson
    # number a step, pre/chunk on average), the busiest carries the expected maximum of
    # `ranks` of them, no more than the budget holds (busiest_chunks; the mean prefill
    # for one replica).
    gen = max(f.gen, 1.0)
    budget_decode = f.max_tokens * gen / (f.seq + gen)
    dec = min(group, budget_decode)
    chunks = np.ceil(f.seq / (f.max_tokens - dec))
    chunk = f.seq / chunks
    pre = dec * f.seq / gen
    prefill_keys = attended(m, 0.0, f.seq, 0.5 * f.seq if f.flash else f.seq)
    kv_mean = decode_context(m, f)
    keys = (pre * prefill_keys + dec * kv_mean) / (pre + dec)
    chunk_keys = (chunk * prefill_keys + dec * kv_mean) / (chunk + dec)
    mixed = min(1.0, pre / chunk)
    room = max(1.0, np.floor((f.max_tokens - dec) / chunk))
    busiest = max(pre, busiest_chunks(pre / chunk, ranks, room) * chunk)
    busiest_keys = (busiest * prefill_keys + dec * kv_mean) / (busiest + dec)
    return ContinuousBatch(dec, budget_decode, pre, keys, chunk, chunk_keys, chunks, mixed,
                           busiest, busiest_keys)


PrefillQueue = namedtuple("PrefillQueue", ["rate", "wait"])


def prefill_queue(group, ttft_own, work, decode_s):
    # [T25] prompts queue for the prefill work of the steps (DistServe, Zhong et al.,
    # OSDI'24, Sec. 3.1: prefill as an M/D/1 queue, mean TTFT = D + R D^2 / (2 (1 - R D))
    # at R requests/s of D s of work each). Here D = `work`, the time a prompt's chunks
    # add to the steps that carry them; an arriving prompt finds the others of the `group`
    # sequences in flight as the group without it does (the arrival theorem of closed
    # queueing networks: one sequence alone never queues), so the load it meets is
    # rho = R D (group - 1) / group; and R closes Little's law over the group, each
    # sequence TTFT + gen x ITL (`decode_s`) in the system:
    #   group = R (ttft_own + decode_s) + R rho D / (2 (1 - rho)),
    # a quadratic in R with one root where rho < 1. Returns R (requests/s) and the wait.
    share = (group - 1.0) / group
    cycle = ttft_own + decode_s
    a2 = share * work * (work - 2.0 * cycle)
    b2 = 2.0 * (cycle + group * share * work)
    # the root of a2 R^2 + b2 R - 2 group = 0 with rho < 1, in the form without cancellation
    rate = 4.0 * group / (b2 + np.sqrt(max(0.0, b2 * b2 + 8.0 * a2 * group)))
    rho = min(rate * work * share, 1.0 - 1e-12)
    return PrefillQueue(rate, rho * work / (2.0 * (1.0 - rho)))


def continuous_step(m, h, f, pr, layer, batch, mb):
    # [T22] decode with a token budget: no separate prefill of every prompt; each pipeline
    # slot is a step of one group (the pp groups keep the pipeline full), ITL = pp average
    # slots. TensorRT-LLM replays CUDA graphs for generation-only steps and launches steps
    # carrying a chunk eagerly. A request's own chunks take TTFT_own = chunks x pp chunk
    # slots, during which its sequence decodes nothing, after waiting for the prefill work
    # of the prompts ahead of it ([T25]): by Little's law the group decodes R gen ITL
    # tokens a step, within the budget's; beyond it requests wait for chunk slots,
    # TTFT = (group - decode) * gen * ITL / decode. The replica's sequences produce their
    # gen tokens in pp * group * gen / decode slots.
    # [T23] With attention data parallel the replicas of an EP group wait for each other
    # at every MoE layer: a step's per-replica work (attention, dense layers, embedding,
    # LM head) lasts as long as the busiest replica's, its experts' as the mean step's.
    pp = f.pp
    gen = max(f.gen, 1.0)
    group = max(1.0, np.floor(batch.seqs_per_replica / pp))
    ranks = attention_ranks(m, f)
    cb = continuous_batch(m, f, group, ranks)
    d = decode_step(m, h, f, pr, mb, cb.decode + cb.prefill / f.cp, cb.keys, cb.decode,
                    cb.mixed if f.cuda_graphs else 1.0)
    c = decode_step(m, h, f, pr, mb, cb.decode + cb.chunk / f.cp, cb.chunk_keys, cb.decode, 1.0)
    busy = d
    if ranks > 1.0:
        busy = decode_step(m, h, f, pr, mb, cb.decode + cb.busiest / f.cp, cb.busiest_keys,
                           cb.decode, 0.0)
    wait = (busy.compute - busy.experts) - (d.compute - d.experts)
    step_cost = h[S.H_STEP_OVERHEAD]
    slot = step_slot_s(d, wait, step_cost)
    itl = pp * slot
    chunk_slot = step_slot_s(c, 0.0, step_cost)
    ttft_own = cb.chunks * pp * chunk_slot
    # a prompt's prefill work: what its chunks add to steps of the group's decode tokens
    o = decode_step(m, h, f, pr, mb, cb.decode, decode_context(m, f), cb.decode, 1.0)
    decode_slot = step_slot_s(o, 0.0, step_cost)
    work = cb.chunks * pp * max(chunk_slot - decode_slot, 0.0)
    queue = prefill_queue(group, ttft_own, work, gen * itl)
    dec = min(queue.rate * gen * itl, cb.budget_decode)
    ttft = max(ttft_own + queue.wait, (group - dec) * gen * itl / dec)
    slots = pp * group * gen / dec
    model_flops = (layer.fwd_flops_tok * f.gbs * f.seq
                   + f.gen * f.gbs * layer.dec_flops_tok)
    return StepTime(slots * (d.compute + wait), 0.0, 0.0, slots * d.tp, slots * d.cp, slots * d.ep,
                    slots * d.p2p, 0.0, 0.0, 0.0, slots * d.launch, slots * step_cost,
                    slots * slot, f.gbs * f.gen, model_flops, model_flops, ttft, itl,
                    d.kernels)


def write_outputs(out, f, layer, split, batch, pb, mems, overhead, t, peak):
    # [O1] outputs: the fullest stage's memory itemised, every stage kind's total, the
    # step's times, rates and utilisation
    mem = mems.fullest
    n_gpus = batch.n_gpus
    out[S.O_N_GPUS] = n_gpus
    out[S.O_N_MICRO_BATCHES] = batch.n_micro
    out[S.O_LAYERS_FIRST_STAGE] = split.first.layers - split.first.mtp
    out[S.O_LAYERS_MIDDLE_STAGE] = split.mid.layers
    out[S.O_LAYERS_LAST_STAGE] = split.last.layers - split.last.mtp
    out[S.O_CAPACITY_PER_EXPERT] = layer.capacity
    out[S.O_DROPPED_FRACTION] = layer.dropped
    out[S.O_MEM_WEIGHTS_BYTES] = (mem.dense_params * pb.w_dense + mem.expert_params * pb.w_expert
                                  + mem.kept_params * (pb.w_kept - pb.w_dense))
    out[S.O_MEM_GRADS_BYTES] = mem.dense_params * pb.g_dense + mem.expert_params * pb.g_expert
    out[S.O_MEM_OPTIMIZER_BYTES] = (mem.dense_params * pb.o_dense
                                    + mem.expert_params * pb.o_expert)
    out[S.O_MEM_ACTIVATIONS_BYTES] = mem.activations
    out[S.O_MEM_KV_CACHE_BYTES] = mem.kv_cache
    out[S.O_MEM_OVERHEAD_BYTES] = overhead
    out[S.O_MEM_BUFFERS_BYTES] = mem.buffers
    out[S.O_MEM_TOTAL_BYTES] = mem.total
    out[S.O_MEM_FIRST_STAGE_BYTES] = mems.first.total
    out[S.O_MEM_MIDDLE_STAGE_BYTES] = mems.mid.total if f.pp > 2.0 else 0.0
    out[S.O_MEM_LAST_STAGE_BYTES] = mems.last.total
    out[S.O_TIME_COMPUTE_S] = t.compute
    out[S.O_TIME_RECOMPUTE_S] = t.recompute
    out[S.O_TIME_OFFLOAD_S] = t.offload
    out[S.O_TIME_TP_S] = t.tp
    out[S.O_TIME_CP_S] = t.cp
    out[S.O_TIME_EP_S] = t.ep
    out[S.O_TIME_PP_P2P_S] = t.pp_p2p
    out[S.O_TIME_PP_BUBBLE_S] = t.pp_bubble
    out[S.O_TIME_DP_S] = t.dp
    out[S.O_TIME_OPTIMIZER_S] = t.optimizer
    out[S.O_TIME_LAUNCH_S] = t.launch
    out[S.O_TIME_STEP_OVERHEAD_S] = t.step_overhead
    out[S.O_TIME_STEP_S] = t.step
    out[S.O_TOKENS_PER_S] = t.tokens / t.step
    out[S.O_TOKENS_PER_S_PER_GPU] = t.tokens / t.step / n_gpus
    out[S.O_MODEL_FLOPS_PER_STEP] = t.model_flops
    out[S.O_MFU] = t.model_flops / (t.step * n_gpus * peak)
    out[S.O_MODEL_TFLOPS_PER_GPU] = t.model_flops / (t.step * n_gpus) * 1e-12
    out[S.O_HW_TFLOPS_PER_GPU] = t.hw_flops / (t.step * n_gpus) * 1e-12
    out[S.O_TTFT_S] = t.ttft
    out[S.O_TPOT_S] = t.tpot
    out[S.O_KERNELS_PER_STEP] = t.kernels
    out[S.O_MAX_CONCURRENCY] = 0.0 if f.training else f.dp * mems.kv_seqs


def evaluate_plan(m, h, k, p, out, stages, reuse):
    """Evaluate one plan: fill `out` (indices S.O_*); return (feasibility code, stages).

    An empty `out` (length 0) asks for the code only: the timings are skipped.
    `stages` are the previous plan's stage results; `reuse` says how many of them still
    hold (0 none; 1 layer, when the plans differ only in columns >= S.CACHE_FROM; 2 also
    split, >= S.CACHE2_FROM; 3 also batch, >= S.CACHE3_FROM). The returned stages are
    this plan's, for the next call.
    """
    f = plan_fields(p)
    pr = precisions(h, f)
    layer = stages.layer if reuse >= 1 else layer_stage(m, h, f, pr)
    split = stages.split if reuse >= 2 else split_stage(m, f)
    batch = stages.batch if reuse >= 3 else batch_stage(m, k, f, layer.code)
    stages = Stages(layer, split, batch)
    code = batch.code | pipeline_checks(m, f, split, batch.n_micro)
    pb = bytes_per_param(f, pr)
    usable = h[S.H_HBM_CAPACITY] * k[S.K_MEM_FRACTION]
    act = activations(m, f, pr, layer, batch.seqs_per_replica)
    mems = stage_memories(m, h, f, pr, act, layer, split, batch, pb, usable)
    if mems.fullest.total > usable:
        code |= S.V_MEMORY
    if f.kv_fraction > 0.0 and not f.training and batch.seqs_per_replica > mems.kv_seqs:
        code |= S.V_KV_CACHE
    # every constraint is decided by now: a caller that wants only the code (count and
    # sweep kernels) passes an empty `out` and skips the timings
    if out.shape[0] == 0:
        return code, stages
    mb = micro_batch_time(m, h, layer.costs, f, act, split)
    p2p_one = pipeline_send_s(m, h, f, pr, layer.n_tok)
    if f.training:
        t = training_step(m, h, f, pr, layer, split, batch, pb, mb, p2p_one)
    elif f.decode and f.max_tokens > 0.0:
        t = continuous_step(m, h, f, pr, layer, batch, mb)
    else:
        t = inference_step(m, h, f, pr, layer, batch, mb, p2p_one)
    write_outputs(out, f, layer, split, batch, pb, mems, h[S.H_MEM_OVERHEAD], t, pr.peak)
    return code, stages


# Functions the Numba backend registers as jitable (the kernel's call graph).
KERNEL_FUNCTIONS = (
    ceil_div, divides, roofline_s, gemm_efficiency, gemm_s, memory_bound_s,
    group_bandwidth, group_latency, allreduce_s, allgather_s, alltoall_s, domains_missed,
    remote_domains, chunk_position, attended,
    deduplicated_alltoall_s, p2p_s, moe_layers_in,
    mlp_forward_s, kv_cache_elems_per_gpu, flash_attention_rate, decode_context, mtp_modules,
    fused_attention_shares, attention_costs, moe_costs, layer_costs,
    layer_activation_bytes,
    layer_holdings, zero_shard, model_forward_flops_per_token, memory_savers, plan_fields,
    precisions, layer_checks, expert_capacity, active_experts, expert_load, layer_stage,
    stage_shape,
    stage_layers, split_stage,
    batch_stage, no_stages, offload_refused, pipeline_checks, bytes_per_param, activations,
    full_recompute, offloaded_layers, stage_memory, fuller, stage_memories, layer_times,
    stage_compute_s, offload_s, stage_time, slower,
    micro_batch_time, pipeline_send_s, data_parallel_s, recompute_flops_per_token, training_step,
    step_slot_s, decode_step, inference_step, attention_ranks, busiest_chunks, continuous_batch,
    prefill_queue,
    continuous_step,
    write_outputs,
)


# The stages every plan runs (the cached levels aside): the Numba backend inlines them
# into the kernel (Numba IR inlining), since a call passing named results by value costs
# more than the work of most of them.
PER_PLAN_FUNCTIONS = (
    memory_savers, plan_fields, precisions, offload_refused, pipeline_checks, full_recompute,
    offloaded_layers,
    bytes_per_param, activations, stage_memory, fuller, stage_memories, layer_times,
    stage_compute_s, offload_s, stage_time, slower, micro_batch_time, pipeline_send_s,
    data_parallel_s, training_step, inference_step, attention_ranks, continuous_batch,
    continuous_step, write_outputs,
)


def savers_of(recompute: float, fp8_activations: bool = False, **modules: bool) -> Savers:
    """The Savers a training plan with recompute code `recompute` (0 none, 1 selective,
    2 full) has, for callers outside the kernel: selective recomputes core attention
    unless told otherwise, plus the modules named True (Savers' field names)."""
    sel = recompute == 1.0
    flags = {"core_attn": True, **modules}
    unknown = set(flags) - set(Savers._fields)
    if unknown:
        raise ValueError(f"unknown recompute modules {sorted(unknown)}")
    return Savers(*(sel and bool(flags.get(name, False)) for name in Savers._fields[:-1]),
                  1.0 if fp8_activations else 2.0)


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
    # [M0] MTP modules (DeepSeek-V3 Sec. 2.2): a block like layer index L, a 2h x h
    # projection and two norms each; embedding and output head shared
    mtp_moe = mo.n_experts > 0 and mo.n_layers >= mo.first_k_dense \
        and (mo.n_layers - mo.first_k_dense) % mo.moe_every == 0
    mtp_params = 2 * h * h + 2 * norm_w * h
    mtp_block = attn_gemm + attn_bias + norm_params + mtp_params
    mtp_block += (shared + router) if mtp_moe else (mlp_gemm + mlp_bias)
    mtp_experts = mo.mtp_layers * (mo.n_experts if mtp_moe else 0)
    mtp_active = mo.mtp_layers * (mo.top_k if mtp_moe else 0)
    common = (mo.n_layers * (attn_gemm + attn_bias + norm_params) + n_dense * (mlp_gemm + mlp_bias)
              + n_moe * (shared + router) + embed + pos + output + final_norm
              + mo.mtp_layers * mtp_block)
    values = {
        "layers": mo.n_layers, "hidden": h, "heads": a, "kv_heads": kv, "qk_head_dim": qk_d,
        "v_head_dim": v_d, "ffn": mo.ffn_hidden, "vocab": mo.vocab,
        "gated": 1 if mo.gated_mlp else 0, "dropout": 1 if mo.dropout else 0,
        "mla": 1 if mla else 0, "kv_cache_elems": kv_cache,
        "q_lora_rank": mo.q_lora_rank if mla else 0, "kv_lora_rank": mo.kv_lora_rank,
        "rope_head_dim": mo.rope_head_dim if mla else 0, "experts": mo.n_experts,
        "top_k": mo.top_k, "router_groups": mo.router_groups,
        "router_group_topk": mo.router_group_topk,
        "attention_chunk": mo.attention_chunk, "global_every": mo.global_every,
        "expert_ffn": mo.expert_ffn_hidden, "shared_ffn": shared_ffn,
        "first_k_dense": mo.first_k_dense, "moe_every": mo.moe_every,
        "attn_params": attn_gemm + attn_bias, "attn_gemm_params": attn_gemm,
        "norm_params": norm_params, "mlp_params": mlp_gemm + mlp_bias,
        "mlp_gemm_params": mlp_gemm, "expert_params": expert, "shared_params": shared,
        "router_params": router, "embed_params": embed, "pos_params": pos,
        "output_params": output, "final_norm_params": final_norm,
        "mtp_layers": mo.mtp_layers, "mtp_params": mtp_params,
        "params_total": common + (n_moe * mo.n_experts + mtp_experts) * expert,
        "params_active": common + (n_moe * mo.top_k + mtp_active) * expert,
    }
    return np.array([float(values[c.name]) for c in S.MODEL], dtype=np.float64)


def hardware_vector(hw: Hardware) -> np.ndarray:
    values = {
        "peak_bf16": hw.peak_bf16_flops_per_s, "peak_fp8": hw.peak_fp8_flops_per_s,
        "peak_fp4": hw.peak_fp4_flops_per_s,
        "hbm_capacity": hw.hbm_capacity_bytes, "hbm_bandwidth": hw.hbm_bandwidth_bytes_per_s,
        "gpus_per_node": hw.gpus_per_node,
        "nvlink_domain": hw.nvlink_domain or hw.gpus_per_node,
        "intra_bw": hw.intra_node_bandwidth_bytes_per_s,
        "inter_bw": hw.inter_node_bandwidth_bytes_per_s,
        "intra_latency": hw.intra_node_latency_s, "inter_latency": hw.inter_node_latency_s,
        "gemm_eff_max": hw.gemm_eff_max, "gemm_eff_max_fp8": hw.gemm_eff_max_fp8,
        "gemm_eff_max_fp4": hw.gemm_eff_max_fp4,
        "gemm_dim_half": hw.gemm_dim_half,
        "gemm_token_half_serve": hw.gemm_token_half_serve or hw.gemm_dim_half,
        "hbm_eff": hw.hbm_eff, "net_eff": hw.net_eff, "inter_eff": hw.inter_eff,
        "op_overhead": hw.op_overhead_s, "launch_overhead": hw.launch_overhead_s,
        "step_overhead": hw.step_overhead_s, "request_overhead": hw.request_overhead_s,
        "attn_eff_fwd": hw.attn_eff_fwd, "attn_eff_bwd": hw.attn_eff_bwd,
        "attn_seq_half": hw.attn_seq_half, "attn_dim_half": hw.attn_dim_half,
        "fa2_eff_fwd": hw.fa2_eff_fwd, "fa2_eff_bwd": hw.fa2_eff_bwd,
        "fa2_seq_half": hw.fa2_seq_half,
        "mea_eff": hw.mea_eff, "mea_seq_half": hw.mea_seq_half,
        "cudnn_eff_fwd": hw.cudnn_eff_fwd, "cudnn_eff_bwd": hw.cudnn_eff_bwd,
        "cudnn_seq_half": hw.cudnn_seq_half,
        "attn_fp8_eff_fwd": hw.attn_fp8_eff_fwd, "attn_fp8_eff_bwd": hw.attn_fp8_eff_bwd,
        "attn_fp8_seq_half": hw.attn_fp8_seq_half,
        "mem_overhead": hw.memory_overhead_bytes, "runtime_buffers": hw.runtime_buffer_bytes,
        "host_bw": hw.host_link_bandwidth_bytes_per_s,
        "grouped_gemm_eff_serve": hw.grouped_gemm_eff_serve,
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

MEMORY_TERMS = ("weights", "grads", "optimizer", "activations", "kv_cache", "overhead",
                "buffers")
TIME_TERMS = ("compute", "recompute", "offload", "tp", "cp", "ep", "pp_p2p", "pp_bubble", "dp",
              "optimizer", "launch", "step_overhead")


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
    """Evaluate one plan with the scalar reference: the specification of every backend.

    ``model`` and ``hardware`` may also be preset names, file paths or dicts, ``plan`` a
    dict (see :mod:`pyengine.inputs`)."""
    from .inputs import as_hardware, as_limits, as_model, as_plan

    model, hardware = as_model(model), as_hardware(hardware)
    plan, limits = as_plan(plan), as_limits(limits)
    out = np.zeros(S.N_OUTPUTS)
    code, _ = evaluate_plan(model_vector(model), hardware_vector(hardware),
                            limits_vector(limits), plan_vector(plan), out, no_stages(), 0)
    outputs = {c.name: float(out[i]) for i, c in enumerate(S.OUTPUTS)}
    return Result(model, hardware, plan, int(code), outputs)
