// The cost model in C++: a line-by-line twin of pyengine/reference.py (the specification).
//
// Same function names, same variable names, same order and the same bracketed tag
// comments as the Python kernel (tests/test_tags.py checks names and tags). One source
// for the host (the pybind11/OpenMP extension, csrc/module.cpp) and the device (CuPy
// hands csrc/kernels.cu, which includes this header, to NVRTC). Everything is float64
// and follows the Python evaluation order; build host code with -ffp-contract=off and
// NVRTC/nvcc with --fmad=false so every backend agrees with the reference to the last
// bits. Python's min/max are py_min/py_max (same semantics: the first argument wins
// ties and NaN comparisons); np.floor/np.ceil/np.log2 are floor/ceil/log2.
#pragma once

#if defined(__CUDACC__)
#define PYENGINE_HD __host__ __device__
#else
#define PYENGINE_HD
#endif

// NVRTC: floor, ceil, log2, log, exp, expm1, log1p, lgamma, sqrt, pow are builtins, no headers
#if !defined(__CUDACC_RTC__)
#include <cmath>
#endif

#include "schema.h"

namespace pyengine {

// Python's builtins: min(a, b) -> b only if b < a; max(a, b) -> b only if b > a.
PYENGINE_HD inline double py_min(double a, double b) { return b < a ? b : a; }
PYENGINE_HD inline double py_max(double a, double b) { return b > a ? b : a; }

// --------------------------------------------------------------------------- helpers

PYENGINE_HD inline double ceil_div(double a, double b) {
    return ceil(a / b);
}

PYENGINE_HD inline bool divides(double b, double a) {
    // exact for integer-valued a < 2**53 (then a/b is exact or at least 1/b from an
    // integer); cheaper than fmod. Backends compile it without FMA contraction.
    return a - b * floor(a / b) == 0.0;
}

PYENGINE_HD inline double roofline_s(double flops, double nbytes, double flops_per_s,
                                     double bytes_per_s) {
    // [T1] roofline: an operator takes the longer of its compute and its memory traffic.
    return py_max(flops / flops_per_s, nbytes / bytes_per_s);
}

PYENGINE_HD inline double gemm_efficiency(double m_dim, double n_dim, double k_dim,
                                          double token_half, const double* h) {
    // [T2] share of the large-GEMM rate an (M x K) @ (K x N) GEMM attains: the product of
    // one saturation d/(d + half) per dimension (thin M or N fill few output tiles, short K
    // amortises little of each tile's prologue; a dimension is never below one row: no
    // tokens routed is not 0/0). N and K take gemm_dim_half, fitted on cuBLASLt and
    // DeepGEMM shape tables (pyengine/data/operators.json, kernels.json); M, the tokens,
    // `token_half`: gemm_dim_half too in training, a serving engine's own in inference
    // ([P2] precisions: gemm_token_half_serve, fitted on TensorRT-LLM's Linear layers at
    // decode-sized token counts; Hopper's kernels fill the GPU from a weight's N x K alone).
    // Training's backward GEMMs permute the three dimensions, whose half-points are then
    // all gemm_dim_half, so the same share holds for them. One division.
    double half = h[H_GEMM_DIM_HALF];
    double m_d = py_max(m_dim, 1.0);
    double n_d = py_max(n_dim, 1.0);
    double k_d = py_max(k_dim, 1.0);
    return m_d * n_d * k_d / ((m_d + token_half) * (n_d + half) * (k_d + half));
}

PYENGINE_HD inline double gemm_s(double flops, double nbytes, double m_dim, double n_dim,
                                 double k_dim, double rate, double token_half, const double* h) {
    // [T3] one GEMM (or a batch of same-shape GEMMs): roofline at its attainable FLOP/s;
    // `rate` is the large-GEMM rate of its dtype (peak x gemm_eff_max[_fp8]), `token_half`
    // the token dimension's half-point ([T2]).
    return roofline_s(flops, nbytes,
                      rate * gemm_efficiency(m_dim, n_dim, k_dim, token_half, h),
                      h[H_HBM_BANDWIDTH] * h[H_HBM_EFF]) + h[H_OP_OVERHEAD];
}

PYENGINE_HD inline double memory_bound_s(double nbytes, double n_ops, const double* h) {
    // [T4] elementwise work (norms, residuals, activations, permutes): bandwidth-bound.
    return nbytes / (h[H_HBM_BANDWIDTH] * h[H_HBM_EFF]) + n_ops * h[H_OP_OVERHEAD];
}

PYENGINE_HD inline double group_bandwidth(double stride, double size, const double* h) {
    // [C1] a group of `size` ranks spaced `stride` apart stays inside the NVLink domain
    // (a node, or an NVL72 rack of 18 nodes) when stride*size <= nvlink_domain, at the
    // NVLink rate. Otherwise its rings cross the scale-out network: with k of its ranks
    // in each domain NCCL runs k rings, each leaving the domain through another rank's
    // NIC, so a rank moves k x inter_bw (nccl-tests: 80 H100s reach ~8 NICs' busbw),
    // never more than NVLink carries.
    double intra = h[H_INTRA_BW] * h[H_NET_EFF];
    if (stride * size > h[H_NVLINK_DOMAIN]) {
        double per_domain = py_max(1.0, floor(h[H_NVLINK_DOMAIN] / stride));
        return py_min(intra, per_domain * h[H_INTER_BW] * h[H_INTER_EFF]);
    }
    return intra;
}

PYENGINE_HD inline double group_latency(double stride, double size, const double* h) {
    if (stride * size > h[H_NVLINK_DOMAIN]) {
        return h[H_INTER_LATENCY];
    }
    return h[H_INTRA_LATENCY];
}

PYENGINE_HD inline double allreduce_s(double nbytes, double size, double stride,
                                      const double* h) {
    // [C2] all-reduce of nbytes per rank: ring 2(g-1)/g bandwidth term, or double binary
    // tree with log-depth latency, whichever is faster (NCCL picks likewise). Nothing to
    // send (a dense model's expert gradients) costs nothing.
    if (size <= 1.0 || nbytes <= 0.0) {
        return 0.0;
    }
    double bw = group_bandwidth(stride, size, h);
    double lat = group_latency(stride, size, h);
    double ring = 2.0 * (size - 1.0) / size * nbytes / bw + 2.0 * (size - 1.0) * lat;
    double tree = 2.0 * nbytes / bw + 2.0 * ceil(log2(size)) * lat;
    return py_min(ring, tree);
}

PYENGINE_HD inline double allgather_s(double nbytes, double size, double stride,
                                      const double* h) {
    // [C3] all-gather / reduce-scatter of a buffer of nbytes (full size): ring (g-1)/g.
    if (size <= 1.0 || nbytes <= 0.0) {
        return 0.0;
    }
    double bw = group_bandwidth(stride, size, h);
    double lat = group_latency(stride, size, h);
    return (size - 1.0) / size * nbytes / bw + (size - 1.0) * lat;
}

PYENGINE_HD inline double alltoall_s(double nbytes, double size, double stride,
                                     const double* h) {
    // [C4] all-to-all of nbytes per rank: a rank keeps 1/g and sends the rest to all its
    // peers at once, over NVLink inside the domain. A group crossing it, with k ranks per
    // domain, sends (g - k)/g through the rank's own NIC (no ring to share NICs) while
    // (k - 1)/g goes over NVLink. Concurrent sends: two latencies (send, completion).
    if (size <= 1.0) {
        return 0.0;
    }
    double intra = h[H_INTRA_BW] * h[H_NET_EFF];
    double lat = 2.0 * group_latency(stride, size, h);
    if (stride * size <= h[H_NVLINK_DOMAIN]) {
        return (size - 1.0) / size * nbytes / intra + lat;
    }
    double per_domain = py_max(1.0, floor(h[H_NVLINK_DOMAIN] / stride));
    double off_domain = (size - per_domain) / size * nbytes / (h[H_INTER_BW] * h[H_INTER_EFF]);
    double in_domain = (per_domain - 1.0) / size * nbytes / intra;
    return py_max(off_domain, in_domain) + lat;
}

PYENGINE_HD inline double domains_missed(double pool, double spread, double draws) {
    // [C14] the chance that one of `spread` domains, holding pool/spread of `pool` items,
    // gets none of `draws` items drawn without replacement: C(n - n/D, d) / C(n, d).
    double miss = 1.0;
    double i = 0.0;
    while (i < draws && miss > 0.0) {
        miss *= py_max(0.0, (pool - pool / spread - i) / (pool - i));
        i += 1.0;
    }
    return miss;
}

PYENGINE_HD inline double remote_domains(double domains, double top_k, double experts,
                                         double groups, double group_topk) {
    // [C14] the remote NVLink domains a token's k experts occupy, on average, when the E
    // experts are spread evenly over D domains and routing is uniform: a domain holding
    // E/D of them gets none of the k with probability C(E - E/D, k) / C(E, k); a token
    // touches D (1 - miss) domains, its own one of them by symmetry. Group-limited routing
    // (DeepSeek-V3: 256 experts in 8 groups, a token's 8 from its best 4; Sec. 2.1.2)
    // confines the k experts to the domains of its g groups: with whole groups in each
    // domain (D <= G) a domain holds none of them with probability C(G - G/D, g) / C(G, g)
    // (each chosen group supplying one of the k at least); with groups spanning domains
    // the k spread over the g/G of the experts and domains the chosen groups hold. The
    // smaller of the two, routing being no wider than uniform.
    double uniform = (domains - 1.0) * (1.0 - domains_missed(experts, domains, top_k));
    if (groups <= 0.0) {
        return uniform;
    }
    double touched;
    if (domains <= groups) {
        touched = domains * (1.0 - domains_missed(groups, domains, group_topk));
    } else {
        double spread = domains * group_topk / groups;
        touched = spread * (1.0 - domains_missed(experts * group_topk / groups, spread, top_k));
    }
    return py_min(uniform, touched * (1.0 - 1.0 / domains));
}

PYENGINE_HD inline double deduplicated_alltoall_s(double nbytes, double size, double stride,
                                                  double top_k, double experts, double groups,
                                                  double group_topk, const double* h) {
    // [C14] DeepEP / HybridEP dispatch and combine (Megatron-Core's flex dispatcher): a
    // token whose experts sit in several NVLink domains crosses the scale-out network once
    // per remote domain and is forwarded to its experts' ranks over NVLink there (DeepEP
    // README, "asymmetric-domain bandwidth forwarding"; combine the reverse); nbytes holds
    // the k token-slots of each token. Inside one domain it is the all-to-all.
    if (size <= 1.0) {
        return 0.0;
    }
    if (stride * size <= h[H_NVLINK_DOMAIN]) {
        return alltoall_s(nbytes, size, stride, h);
    }
    double per_domain = py_max(1.0, floor(h[H_NVLINK_DOMAIN] / stride));
    double remote = remote_domains(size / per_domain, top_k, experts, groups, group_topk);
    double off_domain = nbytes / top_k * remote / (h[H_INTER_BW] * h[H_INTER_EFF]);
    double in_domain = (per_domain - 1.0) / per_domain * nbytes / (h[H_INTRA_BW] * h[H_NET_EFF]);
    return py_max(off_domain, in_domain) + 2.0 * group_latency(stride, size, h);
}

PYENGINE_HD inline double p2p_s(double nbytes, double stride, const double* h) {
    // [C5] point-to-point send between neighbouring ranks `stride` apart.
    return nbytes / group_bandwidth(stride, 2.0, h) + group_latency(stride, 2.0, h);
}

PYENGINE_HD inline double moe_layers_in(double first, double last, const double* m) {
    // [S2] MoE layers among layer indices [first, last): index i is MoE when
    // i >= first_k_dense and (i - first_k_dense) % moe_every == 0.
    if (m[M_EXPERTS] <= 0.0) {
        return 0.0;
    }
    double lo = py_max(first - m[M_FIRST_K_DENSE], 0.0);
    double hi = last - m[M_FIRST_K_DENSE];
    if (hi <= lo) {
        return 0.0;
    }
    return ceil_div(hi, m[M_MOE_EVERY]) - ceil_div(lo, m[M_MOE_EVERY]);
}

// --------------------------------------------------------------------------- layers

// An MLP's forward time and that of its column-parallel GEMM (FC1: gate and up).
struct MlpCosts {
    double mlp_s;
    double fc1_s;
};

PYENGINE_HD inline MlpCosts mlp_forward_s(const double* m, const double* h, double n_tok,
                                          double ffn, double tp, double sp_div, double rate,
                                          double token_half, double ab, double wb) {
    // [T8] a dense or shared-expert MLP of intermediate size ffn: g = 3 matrices if gated
    // else 2; GEMM traffic x + g*f + y; the activation function reads and writes g*f.
    // FC1 holds g - 1 of the g matrices, so that share of the GEMM time.
    double n_mat = 2.0 + m[M_GATED];
    double hid = m[M_HIDDEN];
    double flops = 2.0 * n_tok * hid * ffn * n_mat / tp;
    double nbytes = hid * ffn * n_mat / tp * wb + n_tok * ab * (2.0 * hid + n_mat * ffn / tp);
    double elem_bytes = n_tok * ab * n_mat * ffn / tp
                        + n_tok * hid * ab * (5.0 + m[M_DROPOUT]) / sp_div;
    double gemm = gemm_s(flops, nbytes, n_tok, ffn / tp, hid, rate, token_half, h);
    return MlpCosts{gemm + h[H_OP_OVERHEAD] + memory_bound_s(elem_bytes, 3.0, h),
                    gemm * (n_mat - 1.0) / n_mat};
}

PYENGINE_HD inline double kv_cache_elems_per_gpu(const double* m, double tp) {
    // [M7] KV-cache values per token and layer on one GPU: GQA shards K/V heads over TP
    // (a head is replicated when tp > kv_heads); MLA caches one compressed latent that
    // every TP rank keeps whole.
    if (m[M_MLA] > 0.0) {
        return m[M_KV_CACHE_ELEMS];
    }
    return ceil_div(m[M_KV_HEADS], tp) * (m[M_QK_HEAD_DIM] + m[M_V_HEAD_DIM]);
}

PYENGINE_HD inline double flash_attention_rate(const double* h, double peak, double keys,
                                               double head_dim, double eff, double seq_half) {
    // [T18] fused attention's attainable FLOP/s: a share `eff` of its dtype's peak that
    // grows with the keys per query (short sequences fill few tiles, and causal masking
    // halves the keys; half the rate at seq_half keys) and with the head dimension (the
    // work per loaded tile); fitted on FlashAttention-3 (H100), cuDNN (Blackwell),
    // FlashAttention-2 and FP8 forward/backward benchmarks by tools/calibrate.py.
    return (peak * eff * keys / (keys + seq_half)
            * head_dim / (head_dim + h[H_ATTN_DIM_HALF]));
}

// A fused-attention kernel (the code whose figures are used) and its peak, share of it and
// half-rate point, per pass ([T18]).
struct AttentionShares {
    double kernel;
    double peak_fwd;
    double eff_fwd;
    double half_fwd;
    double peak_bwd;
    double eff_bwd;
    double half_bwd;
};

PYENGINE_HD inline AttentionShares fused_attention_shares(const double* h, double kernel) {
    // [T18] the GPU's fastest kernels (code 0) unless the plan's kernel has figures on this
    // GPU: FlashAttention-2 (attention_kernel fa2 = code 1), PyTorch's memory-efficient
    // kernels (mem_efficient = code 3, one share for both passes), cuDNN's (cudnn = code 4),
    // FP8 attention (fp8 = code 2, with an FP8 peak) at its shares of the FP8 peak, the
    // backward in FP8 only where the GPU has FP8 backward figures (else at the 16-bit
    // kernels' rate).
    double used = 0.0;
    // the kernels' hardware columns (forward share, backward share, half-rate point)
    int fwd = H_ATTN_EFF_FWD;
    int bwd = H_ATTN_EFF_BWD;
    int half = H_ATTN_SEQ_HALF;
    if (kernel == 1.0 && h[H_FA2_EFF_FWD] > 0.0) {
        used = 1.0;
        fwd = H_FA2_EFF_FWD;
        bwd = H_FA2_EFF_BWD;
        half = H_FA2_SEQ_HALF;
    } else if (kernel == 3.0 && h[H_MEA_EFF] > 0.0) {
        used = 3.0;
        fwd = H_MEA_EFF;
        bwd = H_MEA_EFF;
        half = H_MEA_SEQ_HALF;
    } else if (kernel == 4.0 && h[H_CUDNN_EFF_FWD] > 0.0) {
        used = 4.0;
        fwd = H_CUDNN_EFF_FWD;
        bwd = H_CUDNN_EFF_BWD;
        half = H_CUDNN_SEQ_HALF;
    } else if (kernel == 2.0 && h[H_ATTN_FP8_EFF_FWD] > 0.0 && h[H_PEAK_FP8] > 0.0) {
        used = 2.0;
    }
    double peak_fwd = h[H_PEAK_BF16];
    double eff_fwd = h[fwd];
    double half_fwd = h[half];
    double peak_bwd = peak_fwd;
    double eff_bwd = h[bwd];
    double half_bwd = half_fwd;
    if (used == 2.0) {
        peak_fwd = h[H_PEAK_FP8];
        eff_fwd = h[H_ATTN_FP8_EFF_FWD];
        half_fwd = h[H_ATTN_FP8_SEQ_HALF];
        if (h[H_ATTN_FP8_EFF_BWD] > 0.0) {
            peak_bwd = peak_fwd;
            eff_bwd = h[H_ATTN_FP8_EFF_BWD];
            half_bwd = half_fwd;
        }
    }
    return AttentionShares{used, peak_fwd, eff_fwd, half_fwd, peak_bwd, eff_bwd, half_bwd};
}

// The attention block's forward time, its core (QK^T, softmax, AV) alone forward and
// backward, and what recomputing its norms and MLA up-projections costs.
struct AttentionCosts {
    double attn_s;
    double attn_core_s;
    double attn_bwd_extra_s;
    double norm_s;
    double mla_up_s;
    double qkv_s;
};

PYENGINE_HD inline AttentionCosts attention_costs(const double* m, const double* h, double n_tok,
                                                  double keys, double kv_len, bool decode,
                                                  double seqs, double tp, double cp,
                                                  double sp_div, bool flash, double kernel,
                                                  double rate, double token_half,
                                                  double ab, double wb, double kvb) {
    double hid = m[M_HIDDEN];
    double heads_local = m[M_HEADS] / tp;
    double rate16 = h[H_PEAK_BF16] * h[H_GEMM_EFF_MAX];
    // [T5] attention projections (QKV + output): 2 * tokens * weights FLOPs, TP-sharded.
    double q_dim = m[M_HEADS] * m[M_QK_HEAD_DIM];
    double o_dim = m[M_HEADS] * m[M_V_HEAD_DIM];
    double kv_dim = m[M_KV_HEADS] * (m[M_QK_HEAD_DIM] + m[M_V_HEAD_DIM]);
    double proj_flops = 2.0 * n_tok * m[M_ATTN_GEMM_PARAMS] / tp;
    double proj_bytes = (m[M_ATTN_GEMM_PARAMS] / tp * wb
                         + n_tok * ab * (2.0 * hid + (q_dim + kv_dim + 2.0 * o_dim) / tp));
    double proj_gemm = gemm_s(proj_flops, proj_bytes, n_tok, hid / tp, hid, rate, token_half,
                              h);
    double proj_s = proj_gemm + h[H_OP_OVERHEAD];
    // the column-parallel side (all but the output projection's hid x o_dim weights)
    double qkv_s = proj_gemm * (1.0 - hid * o_dim / m[M_ATTN_GEMM_PARAMS]);

    // [T6] attention core: QK^T and AV, 2*tokens*keys*heads*(d_qk + d_v) FLOPs in bf16
    // (FP8 kernels, attention_kernel fp8 = code 2: Q, K, V, O in one byte).
    // Flash streams K/V and writes only O; unfused attention also moves the score
    // matrix (write, softmax read+write, read for AV: 8 B/score, +5 with dropout).
    // Decode reads the cached K/V of every sequence.
    AttentionShares r = fused_attention_shares(h, kernel);
    double qb = r.kernel == 2.0 ? 1.0 : ab;
    double core_flops = 2.0 * n_tok * keys * heads_local * (m[M_QK_HEAD_DIM] + m[M_V_HEAD_DIM]);
    double core_bytes = n_tok * qb * (q_dim + 2.0 * o_dim) / tp;
    if (decode) {
        core_bytes += seqs * kv_len * kv_cache_elems_per_gpu(m, tp) * kvb / cp;
    } else {
        core_bytes += n_tok * qb * kv_dim / tp;
    }
    if (!flash) {
        core_bytes += n_tok * keys * heads_local * (8.0 + 5.0 * m[M_DROPOUT]);
    }
    double attn_core_s = gemm_s(core_flops, core_bytes, n_tok, keys, m[M_QK_HEAD_DIM],
                                rate16, token_half, h);
    // the backward's time beyond twice the forward's (what the layer's passes assume)
    double attn_bwd_extra_s = 0.0;
    if (flash && h[H_ATTN_EFF_FWD] > 0.0) {
        // fused kernels at their own measured rates; the backward does 2.5x the forward's
        // FLOPs (it recomputes the scores) and moves Q, K, V, O, dO in and dQ, dK, dV out.
        double head_dim = 0.5 * (m[M_QK_HEAD_DIM] + m[M_V_HEAD_DIM]);
        double hbm = h[H_HBM_BANDWIDTH] * h[H_HBM_EFF];
        attn_core_s = roofline_s(core_flops, core_bytes,
                                 flash_attention_rate(h, r.peak_fwd, keys, head_dim,
                                                      r.eff_fwd, r.half_fwd),
                                 hbm) + h[H_OP_OVERHEAD];
        double attn_core_bwd_s = roofline_s(2.5 * core_flops, 2.0 * core_bytes,
                                            flash_attention_rate(h, r.peak_bwd, keys, head_dim,
                                                                 r.eff_bwd, r.half_bwd),
                                            hbm) + h[H_OP_OVERHEAD];
        attn_bwd_extra_s = attn_core_bwd_s - 2.0 * attn_core_s;
    }

    // [T7] attention-side elementwise: norm (r+w), residual add (2r+w), rope, dropout.
    double attn_elem_s = memory_bound_s(n_tok * hid * ab * (5.0 + 2.0 * m[M_DROPOUT]) / sp_div
                                        + n_tok * ab * q_dim / tp, 3.0, h);
    // what recomputing parts of the block costs (they are inside the terms above): the two
    // norms (read the input, write the output, 4nh bytes each), MLA's up-projections of
    // the query and key/value latents to the heads
    double norm_s = memory_bound_s(8.0 * n_tok * hid * ab / sp_div, 2.0, h);
    double mla_up_s = 0.0;
    if (m[M_MLA] > 0.0) {
        double nope_v = m[M_QK_HEAD_DIM] - m[M_ROPE_HEAD_DIM] + m[M_V_HEAD_DIM];
        double up_params = m[M_HEADS] * (m[M_Q_LORA_RANK] * m[M_QK_HEAD_DIM]
                                         + m[M_KV_LORA_RANK] * nope_v);
        mla_up_s = gemm_s(2.0 * n_tok * up_params / tp,
                          up_params / tp * wb + n_tok * ab * (q_dim + m[M_HEADS] * nope_v) / tp,
                          n_tok, q_dim / tp, m[M_KV_LORA_RANK], rate, token_half, h);
    }
    return AttentionCosts{proj_s + attn_core_s + attn_elem_s, attn_core_s, attn_bwd_extra_s,
                          norm_s, mla_up_s, qkv_s};
}

// An MoE layer's MLP forward time (router, permutes, experts, shared experts) and its
// expert-parallel communication.
struct MoeCosts {
    double moe_s;
    double ep_s;
    double experts_s;
    double moe_act_s;
    double shared_s;
};

PYENGINE_HD inline MoeCosts moe_costs(const double* m, const double* h, double n_tok, double tp,
                                      double etp, double ep, double sp_div, double capacity,
                                      double active, double rate, double expert_rate,
                                      double token_half, double ab, double wb, double db,
                                      double dispatcher) {
    if (m[M_EXPERTS] <= 0.0) {
        return MoeCosts{0.0, 0.0, 0.0, 0.0, 0.0};
    }
    double hid = m[M_HIDDEN];
    double rate16 = h[H_PEAK_BF16] * h[H_GEMM_EFF_MAX];
    // [T9] MoE MLP: router GEMM, permute/unpermute, routed experts, shared experts.
    // Per GPU the experts process E*capacity/tp token-slots (conservation over the
    // folded expert group), m_e = capacity*ep*etp/tp slots per local expert, each
    // expert sharded over etp. Thin m_e makes the expert GEMMs memory-bound by itself.
    // Only the `active` share of the local experts receives tokens ([S5]): only their
    // weights are read, and each runs m_e / active slots.
    double n_mat = 2.0 + m[M_GATED];
    double experts_local = m[M_EXPERTS] / ep;
    double slots = m[M_EXPERTS] * capacity / tp;
    double m_e = capacity * ep * etp / tp;
    double router_s = gemm_s(2.0 * n_tok / sp_div * hid * m[M_EXPERTS],
                             n_tok / sp_div * (hid * ab + m[M_EXPERTS] * 4.0),
                             n_tok / sp_div, m[M_EXPERTS], hid, rate16, token_half, h);
    // the router's elementwise kernels after its GEMM (score function, top-k, probability
    // normalisation, auxiliary loss, routing map: about 8 over fp32 logits, read and
    // written twice) and the dispatcher's permute and unpermute (index computation, sort
    // by expert, gather, scatter-add weighted by the probabilities: about 12 kernels), as
    // Megatron-Core's TopKRouter and MoEAlltoAllTokenDispatcher run them forward
    router_s += memory_bound_s(n_tok / sp_div * m[M_EXPERTS] * 4.0 * 4.0, 8.0, h);
    double permute_s = memory_bound_s(4.0 * slots * hid * ab, 12.0, h);
    double expert_flops = 2.0 * experts_local * m_e * hid * m[M_EXPERT_FFN] * n_mat / etp;
    double expert_bytes = experts_local * (active * hid * m[M_EXPERT_FFN] * n_mat / etp * wb
                                           + m_e * ab * (2.0 * hid
                                                         + 2.0 * n_mat * m[M_EXPERT_FFN] / etp));
    double experts_s = (gemm_s(expert_flops, expert_bytes, m_e / active, m[M_EXPERT_FFN] / etp,
                               hid, expert_rate, token_half, h)
                        + 2.0 * h[H_OP_OVERHEAD]);
    double shared_s = 0.0;
    if (m[M_SHARED_FFN] > 0.0) {
        shared_s = mlp_forward_s(m, h, n_tok, m[M_SHARED_FFN], tp, sp_div, rate, token_half,
                                 ab, wb).mlp_s;
    }
    // [C6] expert dispatch + combine as the token dispatcher moves them (Megatron-Core
    // moe_token_dispatcher_type). alltoall (0): two all-to-alls of the slots over the EP
    // group (stride etp), with etp > 1 also gathered / scattered over ETP; flex (2): the
    // same slots deduplicated per NVLink domain ([C14]). allgather (1): every rank
    // all-gathers the hidden states of the ETP x EP group's tokens (n_tok/tp each, the
    // group's ranks adjacent) and reduce-scatters the outputs (Megatron-Core's allgather
    // dispatcher; TensorRT-LLM's MoE under attention data parallel without MNNVL). The
    // dispatch moves db bytes a value (quantized inference: FP8, as DeepEP's and
    // TensorRT-LLM's dispatch kernels send it), the combine ab.
    double dispatch_bytes = slots * hid * db;
    double combine_bytes = slots * hid * ab;
    double ep_s = 0.0;
    if (dispatcher == 1.0) {
        double group = ep * etp;
        double gathered = n_tok / tp * group * hid;
        ep_s = (allgather_s(gathered * db, group, 1.0, h)
                + allgather_s(gathered * ab, group, 1.0, h));
    } else {
        if (dispatcher == 2.0) {
            ep_s = (deduplicated_alltoall_s(dispatch_bytes, ep, etp, m[M_TOP_K], m[M_EXPERTS],
                                            m[M_ROUTER_GROUPS], m[M_ROUTER_GROUP_TOPK], h)
                    + deduplicated_alltoall_s(combine_bytes, ep, etp, m[M_TOP_K], m[M_EXPERTS],
                                              m[M_ROUTER_GROUPS], m[M_ROUTER_GROUP_TOPK], h));
        } else {
            ep_s = alltoall_s(dispatch_bytes, ep, etp, h) + alltoall_s(combine_bytes, ep, etp, h);
        }
        ep_s = (ep_s + allgather_s(dispatch_bytes, etp, 1.0, h)
                + allgather_s(combine_bytes, etp, 1.0, h));
    }
    // recomputing the experts' activation function alone (inside experts_s): it reads the
    // fc1 outputs and writes its own, per token-slot on this GPU
    double act_s = memory_bound_s(experts_local * m_e * (n_mat + 1.0) * m[M_EXPERT_FFN] / etp
                                  * ab, 1.0, h);
    return MoeCosts{router_s + permute_s + experts_s + shared_s, ep_s, experts_s, act_s,
                    shared_s};
}

// Forward cost of one layer for one micro-batch on one GPU, split by kind so that the
// caller can scale, recompute and expose each part. Seconds.
struct LayerCosts {
    double attn_s;
    double attn_core_s;
    double mlp_s;
    double moe_s;
    double tp_s;
    double cp_s;
    double ep_s;
    double embed_s;
    double output_s;
    double attn_bwd_extra_s;
    double norm_s;
    double mla_up_s;
    double experts_s;
    double moe_act_s;
    double shared_s;
    double dense_kernels;
    double moe_kernels;
    double bwd_kernels;
    double mla_up_kernels;
    double shared_kernels;
    double embed_kernels;
    double output_kernels;
    double qkv_s;
    double fc1_s;
};

// Forward cost of each layer kind for n_tok query tokens per GPU.
// keys: keys each query attends to (causal flash halves them); kv_len: cached context
// (decode); seqs: sequences in the micro-batch; logit_rows: the positions whose logits
// the output layer computes (training: every token; inference: one per sequence);
// capacity: token-slots per expert and router rank of the busiest expert rank; active:
// the share of its experts with tokens; rate: attainable large-GEMM FLOP/s of the compute
// dtype (attention runs in BF16); expert_rate: the routed experts' ([P4]); token_half: the
// GEMMs' token half-point ([T2]); head_rate: the output layer's, the 16-bit rate ([P2]);
// db: bytes a dispatched value; dispatcher: the MoE token dispatcher's code ([C6]);
// kernel: the fused attention's kernels ([T18]: 0 the GPU's fastest, 1 FlashAttention-2,
// 2 FP8, 3 memory-efficient, 4 cuDNN).
PYENGINE_HD inline LayerCosts layer_costs(const double* m, const double* h, double n_tok,
                                          double keys, double kv_len, bool decode, double seqs,
                                          double logit_rows, double tp, double cp, double etp,
                                          double ep, bool sp, bool flash, double kernel,
                                          bool cp_overlap, double capacity, double active,
                                          double rate, double expert_rate, double token_half,
                                          double ab, double wb, double kvb, double db,
                                          double head_rate, double dispatcher) {
    double hid = m[M_HIDDEN];
    double sp_div = sp ? tp : 1.0;
    AttentionCosts attn = attention_costs(m, h, n_tok, keys, kv_len, decode, seqs, tp, cp,
                                          sp_div, flash, kernel, rate, token_half, ab, wb,
                                          kvb);
    MlpCosts mlp = mlp_forward_s(m, h, n_tok, m[M_FFN], tp, sp_div, rate, token_half, ab, wb);
    MoeCosts moe = moe_costs(m, h, n_tok, tp, etp, ep, sp_div, capacity, active, rate,
                             expert_rate, token_half, ab, wb, db, dispatcher);

    // [C7] tensor parallel: per layer two all-reduces of the activations (or, with
    // sequence parallelism, two all-gathers + two reduce-scatters of the same volume).
    double act_bytes = n_tok * hid * ab;
    double tp_s;
    if (sp) {
        tp_s = 4.0 * allgather_s(act_bytes, tp, 1.0, h);
    } else {
        tp_s = 2.0 * allreduce_s(act_bytes, tp, 1.0, h);
    }

    // [C8] context parallel: ring attention passes K/V around the CP group (stride tp),
    // each exchange hidden behind the attention core of the same step (Megatron-Core /
    // Transformer Engine CP, cp_overlap); only the excess is exposed, or all of it
    // without overlap. Decode keeps K/V in place and merges partial softmax results.
    double cp_s = 0.0;
    if (cp > 1.0) {
        if (decode) {
            double o_dim = m[M_HEADS] * m[M_V_HEAD_DIM];
            cp_s = allreduce_s(n_tok * o_dim / tp * ab, cp, tp, h);
        } else {
            double kv_dim = m[M_KV_HEADS] * (m[M_QK_HEAD_DIM] + m[M_V_HEAD_DIM]);
            double ring_s = (cp - 1.0) * p2p_s(n_tok * kv_dim / tp * ab, tp, h);
            cp_s = cp_overlap ? py_max(0.0, ring_s - attn.attn_core_s) : ring_s;
        }
    }

    // [T10] embedding lookup (first stage) and output layer + loss (last stage); the
    // output layer's weights stay in 16 bits (FP8/FP4 checkpoints keep lm_head in BF16).
    // Training takes the loss at every token; inference samples the last position of each
    // sequence, so engines compute only its logits (TensorRT-LLM gather_last_token_logits,
    // vLLM's logits of the sampled positions), in prefill as in decode.
    double embed_s = memory_bound_s(2.0 * n_tok * hid * ab / sp_div, 1.0, h);
    double out_tok = logit_rows;
    double output_s = (gemm_s(2.0 * out_tok * hid * m[M_VOCAB] / tp,
                              hid * m[M_VOCAB] / tp * 2.0 + out_tok * m[M_VOCAB] / tp * 4.0,
                              out_tok, m[M_VOCAB] / tp, hid, head_rate, token_half, h)
                       + memory_bound_s(2.0 * out_tok * m[M_VOCAB] / tp * 4.0, 2.0, h));
    // [T19] kernels launched, one per op_overhead term above: attention 6 (projection GEMM
    // and its epilogue, core, 3 elementwise), MLP 5 (GEMM, its epilogue, 3 elementwise),
    // MoE 24 (router GEMM and its 8 kernels, 12 permutes, the experts' GEMM and 2) plus a
    // shared MLP's 5, MLA up-projections 1, embedding 1, output layer 3; a fused attention
    // backward at its own rate is one kernel where "2x the forward" counts two.
    double shared_kernels = m[M_SHARED_FFN] > 0.0 ? 5.0 : 0.0;
    double moe_kernels = 0.0;
    if (m[M_EXPERTS] > 0.0) {
        moe_kernels = 6.0 + 24.0 + shared_kernels;
    }
    double mla_up_kernels = m[M_MLA] > 0.0 ? 1.0 : 0.0;
    double bwd_kernels = flash && h[H_ATTN_EFF_FWD] > 0.0 ? -1.0 : 0.0;
    return LayerCosts{attn.attn_s, attn.attn_core_s, mlp.mlp_s, moe.moe_s, tp_s, cp_s, moe.ep_s,
                      embed_s, output_s, attn.attn_bwd_extra_s, attn.norm_s, attn.mla_up_s,
                      moe.experts_s, moe.moe_act_s, moe.shared_s, 11.0, moe_kernels, bwd_kernels,
                      mla_up_kernels, shared_kernels, 1.0, 3.0, attn.qkv_s, mlp.fc1_s};
}

// --------------------------------------------------------------------------- memory

// What a layer does not keep for backward: the modules selective recomputation recomputes
// (Megatron-Core recompute_modules), and the bytes of a GEMM input kept (1 in FP8).
struct Savers {
    bool core_attn;
    bool layernorm;
    bool mla_up_proj;
    bool mlp;
    bool moe;
    bool moe_act;
    bool shared_experts;
    double gemm_input_bytes;
};

// Activation bytes one layer keeps for backward, for n_tok tokens on one GPU.
//
// [M3] Korthikanti et al. 2022, Sec. 4 / Table 2: a GPT layer keeps sbh(34 + 5as/h)
// bytes with 16-bit activations and 1-byte dropout masks (the term-by-term accounting
// and its generalisation to GQA, MLA, flash attention, gated MLPs, TP/SP, recompute, the
// memory savers and MoE are written out in reference.layer_activation_bytes).
PYENGINE_HD inline double layer_activation_bytes(const double* m, double n_tok, double keys,
                                                 double tp, bool sp, bool flash,
                                                 double recompute, bool moe_layer,
                                                 double capacity, double etp,
                                                 const Savers& sv) {
    double hid = m[M_HIDDEN];
    double sp_div = sp ? tp : 1.0;
    if (recompute == 2.0) {
        return 2.0 * n_tok * hid / sp_div;
    }
    double gb = sv.gemm_input_bytes;
    double dropout = m[M_DROPOUT];
    double q_dim = m[M_HEADS] * m[M_QK_HEAD_DIM];
    double k_dim = m[M_KV_HEADS] * m[M_QK_HEAD_DIM];
    double v_dim = m[M_KV_HEADS] * m[M_V_HEAD_DIM];
    double o_dim = m[M_HEADS] * m[M_V_HEAD_DIM];
    // non-tensor-parallel parts: norm inputs (2nh each), the QKV/fc inputs (the norms'
    // outputs), dropout masks
    double norm_out = sv.layernorm ? 0.0 : 2.0 * gb;
    double replicated = n_tok * hid * (4.0 + norm_out + 2.0 * dropout);
    double qkv = 2.0 * q_dim + 2.0 * k_dim + 2.0 * v_dim;
    if (sv.mla_up_proj && m[M_MLA] > 0.0) {
        qkv = 0.0;
        replicated += 2.0 * n_tok * (m[M_Q_LORA_RANK] + m[M_KV_LORA_RANK] + m[M_ROPE_HEAD_DIM]);
    }
    double attn_parallel = n_tok * (qkv + gb * o_dim);
    double scores;
    if (flash) {
        scores = 4.0 * n_tok * m[M_HEADS];
    } else {
        scores = n_tok * keys * m[M_HEADS] * (2.0 + 3.0 * dropout);
        if (sv.core_attn) {
            scores = 0.0;
        }
    }
    // MLP hidden per unit of intermediate size: the fc1 outputs (gate and up, or the
    // GeLU input) in 16 bits, and the activation output, the fc2 input
    double fc1_out = m[M_GATED] > 0.0 ? 4.0 : 2.0;
    double mlp_parallel;
    if (moe_layer) {
        // slots kept on this GPU: E*capacity/tp * etp (each ETP rank keeps whole inputs)
        double slots = m[M_EXPERTS] * capacity / tp * etp;
        double act_out = sv.moe_act ? 0.0 : gb;
        double slot_bytes = sv.moe ? 0.0
                                   : gb * hid + (fc1_out + act_out) * m[M_EXPERT_FFN] / etp;
        double shared = sv.shared_experts ? 0.0 : n_tok * (fc1_out + gb) * m[M_SHARED_FFN];
        mlp_parallel = slots * slot_bytes * tp + shared;
        replicated += 4.0 * n_tok * m[M_EXPERTS];
    } else {
        mlp_parallel = sv.mlp ? 0.0 : n_tok * (fc1_out + gb) * m[M_FFN];
    }
    return replicated / sp_div + (attn_parallel + scores + mlp_parallel) / tp;
}

// Parameters one GPU holds per layer kind, before ZeRO sharding.
struct Holdings {
    double dense_layer;
    double moe_layer;
    double expert_layer;
    double embed_extra;
    double output_extra;
    double dense_kept;
    double moe_kept;
};

PYENGINE_HD inline Holdings layer_holdings(const double* m, double pp, double tp, double etp,
                                           double ep) {
    // [M1] dense parameters (attention, dense MLP, shared experts, embeddings) are sharded
    // over TP; norms, routers and position embeddings are replicated; routed experts are
    // split E/ep per GPU and each over etp. The first stage holds the input embedding,
    // the last the output layer (a tied embedding needs its own copy there when pp > 1).
    double dense_layer = (m[M_ATTN_PARAMS] + m[M_MLP_PARAMS]) / tp + m[M_NORM_PARAMS];
    double moe_layer = ((m[M_ATTN_PARAMS] + m[M_SHARED_PARAMS]) / tp + m[M_NORM_PARAMS]
                        + m[M_ROUTER_PARAMS]);
    double expert_layer = 0.0;
    if (m[M_EXPERTS] > 0.0) {
        expert_layer = m[M_EXPERTS] / ep * m[M_EXPERT_PARAMS] / etp;
    }
    double embed_extra = m[M_EMBED_PARAMS] / tp + m[M_POS_PARAMS];
    double output_extra = m[M_FINAL_NORM_PARAMS];
    if (m[M_OUTPUT_PARAMS] > 0.0 || pp > 1.0) {
        output_extra += m[M_EMBED_PARAMS] / tp;
    }
    // [M10] what quantized inference keeps in 16 bits: besides the embedding and the output
    // layer (all of embed_extra, output_extra), each layer's norms, biases and router; the
    // GEMM weights take the stored precision (ModelOpt FP8/NVFP4 checkpoints quantize the
    // linear layers but lm_head, embeddings, norms and MoE gates)
    double biases = (m[M_ATTN_PARAMS] - m[M_ATTN_GEMM_PARAMS]) / tp;
    double dense_kept = biases + (m[M_MLP_PARAMS] - m[M_MLP_GEMM_PARAMS]) / tp + m[M_NORM_PARAMS];
    double moe_kept = biases + m[M_NORM_PARAMS] + m[M_ROUTER_PARAMS];
    return Holdings{dense_layer, moe_layer, expert_layer, embed_extra, output_extra, dense_kept,
                    moe_kept};
}

PYENGINE_HD inline double zero_shard(double shard, double zero, double stage) {
    // [M2] ZeRO stage >= 1 shards optimizer states, >= 2 gradients, 3 parameters
    return zero >= stage ? shard : 1.0;
}

// --------------------------------------------------------------------------- FLOPs

PYENGINE_HD inline double chunk_position(double lo, double hi, double chunk) {
    // [T24] the mean of p mod C over positions p spread evenly on [lo, hi]: the keys a
    // query at position p attends in chunked attention (chunks of C tokens). With
    // F(x) = floor(x/C) C^2/2 + (x mod C)^2/2 the integral of p mod C from 0 to x, the mean
    // is (F(hi) - F(lo)) / (hi - lo).
    if (hi <= lo) {
        return lo - floor(lo / chunk) * chunk;
    }
    double r_hi = hi - floor(hi / chunk) * chunk;
    double r_lo = lo - floor(lo / chunk) * chunk;
    double f_hi = floor(hi / chunk) * chunk * chunk * 0.5 + r_hi * r_hi * 0.5;
    double f_lo = floor(lo / chunk) * chunk * chunk * 0.5 + r_lo * r_lo * 0.5;
    return (f_hi - f_lo) / (hi - lo);
}

PYENGINE_HD inline double attended(const double* m, double lo, double hi, double full) {
    // [T24] keys a query attends, averaged over the layers, for queries at positions
    // spread on [lo, hi] that attend `full` keys under full causal attention (prefill:
    // hi/2 with flash, hi without; decode: the mean context). Chunked attention (Llama 4:
    // chunks of 8192 tokens) scales a layer's keys by mean(p mod C) / mean(p); every
    // global_every-th layer (Llama 4's NoPE layers) attends to the whole context.
    double chunk = m[M_ATTENTION_CHUNK];
    if (chunk <= 0.0) {
        return full;
    }
    double share_global = 0.0;
    if (m[M_GLOBAL_EVERY] > 0.0) {
        share_global = floor(m[M_LAYERS] / m[M_GLOBAL_EVERY]) / m[M_LAYERS];
    }
    double local = chunk_position(lo, hi, chunk) / py_max(0.5 * (lo + hi), 0.5);
    return full * (share_global + (1.0 - share_global) * py_min(local, 1.0));
}

PYENGINE_HD inline double model_forward_flops_per_token(const double* m, double ctx,
                                                        double mtp) {
    // [T15] model FLOPs per token, forward (Narayanan et al. 2021 eq. 3 counting): 2 FLOPs
    // per GEMM weight a token touches (experts: top-k, shared experts, the output layer)
    // + attention scores and context, 2*ctx*(d_qk+d_v) per head and layer (no causal
    // halving); training multiplies by 3. Each MTP module adds its block, its 2h x h
    // projection and another pass of the output head.
    double n_moe = moe_layers_in(0.0, m[M_LAYERS], m);
    double n_dense = m[M_LAYERS] - n_moe;
    double n_mat = 2.0 + m[M_GATED];
    double hid = m[M_HIDDEN];
    double per_layer_attn = (m[M_ATTN_GEMM_PARAMS]
                             + ctx * m[M_HEADS] * (m[M_QK_HEAD_DIM] + m[M_V_HEAD_DIM]));
    double moe_mlp = (m[M_TOP_K] * hid * m[M_EXPERT_FFN] * n_mat + hid * m[M_SHARED_FFN] * n_mat
                      + hid * m[M_EXPERTS]);
    double mtp_mlp = moe_layers_in(m[M_LAYERS], m[M_LAYERS] + 1.0, m) > 0.0
                         ? moe_mlp : m[M_MLP_GEMM_PARAMS];
    return 2.0 * (m[M_LAYERS] * per_layer_attn + n_dense * m[M_MLP_GEMM_PARAMS]
                  + n_moe * moe_mlp + hid * m[M_VOCAB]
                  + mtp * (per_layer_attn + mtp_mlp + 2.0 * hid * hid + hid * m[M_VOCAB]));
}

// --------------------------------------------------------------------------- the plan
// evaluate_plan (at the end) composes the stages below in the order the data flows,
// which is also the order of the plan columns (schema.PLAN): each cached stage reads
// only the columns before its level's boundary, so a walker whose next plan differs only
// in later columns keeps its result (`reuse`):
//   level 1, columns before CACHE_FROM (global_batch): layer_stage, the layer shape;
//   level 2, columns before CACHE2_FROM (dp): split_stage, the pipeline split;
//   level 3, columns before CACHE3_FROM (vpp): batch_stage, micro-batches and GPU count;
//   every plan: pipeline checks, memory per stage, time per stage, the step, outputs.

// The plan row as named fields, and the precisions it implies.
struct PlanFields {
    bool training;
    bool decode;
    bool fp8;
    double gbs;
    double mbs;
    double seq;
    double gen;
    double tp;
    double pp;
    double dp;
    double cp;
    double ep;
    double etp;
    double vpp;
    double zero;
    double recompute;
    bool sp;
    double cf;
    bool flash;
    double grad_bytes;
    bool tp_overlap;
    bool pp_embedding;
    bool pp_loss;
    double pp_first;
    double pp_last;
    Savers sv;
    double recompute_layers;
    double opt_bytes;
    double imbalance;
    bool cp_overlap;
    bool ep_overlap;
    bool dp_overlap;
    bool tp_dgrad_overlap;
    bool pp_scatter_gather;
    bool cuda_graphs;
    double max_tokens;
    double kv_fraction;
    double kv_block;
    double fp4;
    double kv_dtype;
    double dispatcher;
    double attn_kernel;
    double offload;
};

struct Precisions {
    double ab;
    double wb;
    double kvb;
    double peak;
    double rate;
    double hb;
    double head_rate;
    double db;
    double expert_rate;
    double token_half;
};

PYENGINE_HD inline Savers memory_savers(const double* p, bool training) {
    // [P3] memory savers: the selective recompute modules (core attention alone is
    // Megatron-Core's default "selective"), FP8 storage of the GEMM inputs kept for
    // backward; training only.
    bool sel = training && p[P_RECOMPUTE] == 1.0;
    return Savers{sel && p[P_RECOMPUTE_CORE_ATTN] > 0.0,
                  sel && p[P_RECOMPUTE_LAYERNORM] > 0.0,
                  sel && p[P_RECOMPUTE_MLA_UP_PROJ] > 0.0,
                  sel && p[P_RECOMPUTE_MLP] > 0.0, sel && p[P_RECOMPUTE_MOE] > 0.0,
                  sel && p[P_RECOMPUTE_MOE_ACT] > 0.0,
                  sel && p[P_RECOMPUTE_SHARED_EXPERTS] > 0.0,
                  training && p[P_FP8_ACTIVATIONS] > 0.0 ? 1.0 : 2.0};
}

PYENGINE_HD inline PlanFields plan_fields(const double* p) {
    // [P1] plan fields; ZeRO and recomputation apply to training only, sequence
    // parallelism needs tp > 1, etp = 0 means "as tp"; Adam keeps fp32 master weights and
    // two moments of 4 or 2 bytes.
    double mode = p[P_MODE];
    bool training = mode == 0.0;
    double tp = p[P_TP];
    // (conditional values named first: Numba compiles no long call holding them)
    double etp = p[P_ETP] > 0.0 ? p[P_ETP] : tp;
    double zero = training ? p[P_ZERO] : 0.0;
    double recompute = training ? p[P_RECOMPUTE] : 0.0;
    bool sp = p[P_SEQUENCE_PARALLEL] > 0.0 && tp > 1.0;
    double grad_bytes = p[P_GRAD_DTYPE] == 1.0 ? 2.0 : 4.0;
    double opt_bytes = p[P_OPTIMIZER_DTYPE] == 1.0 ? 8.0 : 12.0;
    // FP4 weights with their block scales: NVFP4 an E4M3 scale per 16 E2M1 values (4.5
    // bits; NVIDIA, "Introducing NVFP4", 2025), MXFP4 an E8M0 scale per 32 (4.25 bits; OCP
    // Microscaling Formats (MX) v1.0); 0 = not FP4
    double fp4 = 0.0;
    if (p[P_DTYPE] >= 2.0) {
        fp4 = p[P_DTYPE] == 2.0 ? 0.5625 : 0.53125;
    }
    return PlanFields{
        training, mode == 2.0, p[P_DTYPE] == 1.0, p[P_GLOBAL_BATCH], p[P_MICRO_BATCH],
        p[P_SEQ_LEN], p[P_GEN_TOKENS], tp, p[P_PP], p[P_DP], p[P_CP], p[P_EP], etp,
        p[P_VPP], zero, recompute, sp, p[P_CAPACITY_FACTOR], p[P_FLASH_ATTENTION] > 0.0,
        grad_bytes, p[P_TP_OVERLAP] > 0.0, p[P_PP_EMBEDDING] > 0.0, p[P_PP_LOSS] > 0.0,
        p[P_PP_FIRST_LAYERS], p[P_PP_LAST_LAYERS], memory_savers(p, training),
        p[P_RECOMPUTE_LAYERS], opt_bytes, p[P_MOE_LOAD_IMBALANCE], p[P_CP_OVERLAP] > 0.0,
        p[P_EP_OVERLAP] > 0.0, p[P_DP_OVERLAP] > 0.0, p[P_TP_DGRAD_OVERLAP] > 0.0,
        p[P_PP_SCATTER_GATHER] > 0.0, p[P_CUDA_GRAPHS] > 0.0, p[P_MAX_NUM_TOKENS], p[P_KV_CACHE_FRACTION],
        p[P_KV_BLOCK_TOKENS], fp4, p[P_KV_DTYPE], p[P_MOE_TOKEN_DISPATCHER],
        p[P_ATTENTION_KERNEL], p[P_CPU_OFFLOAD_LAYERS]};
}

PYENGINE_HD inline Precisions precisions(const double* h, const PlanFields& f) {
    // [P2] precisions: bf16 weights and activations in training (FP8/FP4 GEMMs keep bf16
    // master copies); FP8 inference stores the GEMM weights in one byte, FP4 in f.fp4
    // bytes, the parameters it keeps in 16 bits ([M10]: embedding, output layer, norms) in
    // hb. The output layer runs at the 16-bit rate in training too: Megatron-Core's
    // output_layer is its own ColumnParallelLinear, outside Transformer Engine's FP8
    // autocast, and DeepSeek-V3 keeps the output head in BF16 (Sec. 3.3.1). The KV cache
    // is kept in kv_dtype: auto = one byte under FP8/FP4 weights (TensorRT-LLM's FP8 and
    // NVFP4 checkpoints quantize the KV cache to FP8), else two. FP4 GEMMs run at the FP4
    // peak with its own large-GEMM share (gemm_eff_max_fp4; 0: the FP8 share); without an
    // FP4 peak (F1: FP4) at BF16.
    // MoE tokens are dispatched in FP8 with an fp32 scale per 128 values under quantized
    // inference (DeepEP low-latency dispatch; TensorRT-LLM's FP8 MoE), else at ab.
    // [P4] the routed experts' grouped GEMMs run at the dense rate in training (DeepGEMM's
    // grouped and dense tables share one level) and at grouped_gemm_eff_serve of it in
    // inference (TensorRT-LLM's CUTLASS MoE kernels, fitted on their operator benchmarks);
    // likewise a serving engine's GEMMs saturate in the token dimension at
    // gemm_token_half_serve ([T2]; TensorRT-LLM's Linear kernels, fitted on their operator
    // benchmarks), training's at gemm_dim_half as in N and K.
    double ab = 2.0;
    bool quantized = (f.fp8 || f.fp4 > 0.0) && !f.training;
    double wb = 2.0;
    if (quantized) {
        wb = f.fp4 > 0.0 ? f.fp4 : 1.0;
    }
    double kvb = quantized ? 1.0 : 2.0;
    if (f.kv_dtype > 0.0) {
        kvb = f.kv_dtype == 1.0 ? 2.0 : 1.0;
    }
    double peak = h[H_PEAK_BF16];
    double rate = peak * h[H_GEMM_EFF_MAX];
    double head_rate = rate;
    if (f.fp8 && h[H_PEAK_FP8] > 0.0) {
        peak = h[H_PEAK_FP8];
        rate = peak * h[H_GEMM_EFF_MAX_FP8];
    }
    if (f.fp4 > 0.0 && h[H_PEAK_FP4] > 0.0) {
        peak = h[H_PEAK_FP4];
        double level = h[H_GEMM_EFF_MAX_FP4];
        if (level <= 0.0) {
            level = h[H_GEMM_EFF_MAX_FP8];
        }
        rate = peak * level;
    }
    double db = quantized ? 1.0 + 4.0 / 128.0 : ab;
    double expert_rate = f.training ? rate : rate * h[H_GROUPED_GEMM_EFF_SERVE];
    double token_half = f.training ? h[H_GEMM_DIM_HALF] : h[H_GEMM_TOKEN_HALF_SERVE];
    return Precisions{ab, wb, kvb, peak, rate, 2.0, head_rate, db, expert_rate, token_half};
}

// ---- level 1: the layer shape (columns before global_batch)

// What the layer-shape columns decide: their feasibility bits, the tokens of a
// micro-batch pass on one GPU, expert capacity, the per-layer forward costs of a pass,
// model FLOPs per token of a pass and of a decode step, and KV values per token and layer.
struct LayerStage {
    long long code;
    double n_tok;
    double capacity;
    double expert_load;
    double dropped;
    LayerCosts costs;
    double fwd_flops_tok;
    double dec_flops_tok;
    double kv_elems;
};

PYENGINE_HD inline double decode_context(const double* m, const PlanFields& f) {
    // [T24] keys a decode token attends: the mean context seq + gen/2 of the tokens
    // generated on [seq, seq + gen], as the layers attend it
    return attended(m, f.seq, f.seq + f.gen, f.seq + 0.5 * f.gen);
}

PYENGINE_HD inline double mtp_modules(const double* m, const PlanFields& f) {
    // [S3] DeepSeek-V3's multi-token-prediction modules (Sec. 2.2) run in training only:
    // each a transformer block of the kind layer index L would have (MoE for DeepSeek-V3),
    // a 2h x h projection and two norms, sharing the embedding and the output head; they
    // sit on the last pipeline stage (as Megatron-Core places them).
    return f.training ? m[M_MTP_LAYERS] : 0.0;
}

PYENGINE_HD inline long long layer_checks(const double* m, const PlanFields& f) {
    // [F1] feasibility of the layer shape: every violated constraint sets its bit.
    bool is_moe = m[M_EXPERTS] > 0.0;
    long long code = 0;
    if (!divides(f.tp, m[M_HEADS])) {
        code |= V_TP_HEADS;
    }
    if (m[M_MLA] == 0.0 && !divides(f.tp, m[M_KV_HEADS]) && !divides(m[M_KV_HEADS], f.tp)) {
        code |= V_TP_KV_HEADS;
    }
    if (!divides(f.tp, m[M_FFN])) {
        code |= V_TP_FFN;
    }
    if (is_moe && !divides(f.etp, m[M_EXPERT_FFN])) {
        code |= V_ETP_FFN;
    }
    if ((is_moe && !divides(f.ep, m[M_EXPERTS])) || (!is_moe && f.ep > 1.0)) {
        code |= V_EP_EXPERTS;
    }
    if (f.cp > 1.0 && !divides(2.0 * f.cp, f.seq)) {
        code |= V_CP_SEQ;
    }
    if (f.sp && !divides(f.cp * f.tp, f.seq)) {
        code |= V_SP_SEQ;
    }
    if (f.decode && f.gen < 1.0) {
        code |= V_NO_TOKENS;
    }
    return code;
}

// Tokens each expert takes per router rank, and the routed token-slots it drops.
struct Capacity {
    double capacity;
    double dropped;
};

PYENGINE_HD inline Capacity expert_capacity(const double* m, double t_router, double cf,
                                            bool training) {
    // [S4] expert capacity (DESIGN.md): capacity = ceil(k * T * cf / E) per expert for the
    // T tokens one router rank sees; balanced routing drops what exceeds it. Inference
    // routes dropless and unpadded, as TensorRT-LLM, vLLM and SGLang run MoE layers: an
    // expert takes k * T / E token-slots on average and none is dropped. (0, 0) for a
    // dense model.
    if (m[M_EXPERTS] <= 0.0) {
        return Capacity{0.0, 0.0};
    }
    if (!training) {
        return Capacity{m[M_TOP_K] * t_router / m[M_EXPERTS], 0.0};
    }
    double capacity = ceil(m[M_TOP_K] * t_router * cf / m[M_EXPERTS]);
    double dropped = py_max(0.0, 1.0 - m[M_EXPERTS] * capacity / (m[M_TOP_K] * t_router));
    return Capacity{capacity, dropped};
}

// The token-slots per expert and router rank of the busiest expert rank, and the share of
// its experts that receive any token.
struct ExpertLoad {
    double load;
    double active;
};

PYENGINE_HD inline double active_experts(const double* m, double group_tokens) {
    // [S5] the share of an EP group's experts that receive any of the k-slot routings of
    // its group_tokens tokens (occupancy: none with probability (1 - k/E)^T_g), as
    // -expm1(T_g log1p(-k/E)): at few slots of many experts 1 - (1 - k/E)^T_g would be the
    // rounding of (1 - k/E) raised to T_g
    double active = group_tokens > 0.0 ? 1.0 : 0.0;
    if (group_tokens > 0.0 && m[M_TOP_K] < m[M_EXPERTS]) {
        active = -expm1(group_tokens * log1p(-m[M_TOP_K] / m[M_EXPERTS]));
    }
    return active;
}

PYENGINE_HD inline ExpertLoad expert_load(const double* m, const PlanFields& f, double capacity) {
    // [S5] expert load: the busiest expert rank paces an MoE layer; it receives
    // moe_load_imbalance times a balanced rank's token-slots (its compute, all-to-all
    // volume and activations follow it). Inference (dropless) adds the spread of the
    // routing itself: of the k * T_g slots the EP group routes (T_g = E * capacity / k
    // tokens per router rank x ep * etp / tp ranks), a rank gets a binomial share with mean
    // mu = E * capacity * etp / tp and variance mu (1 - 1/ep); the largest of ep such loads
    // lies near mu + sigma sqrt(2 ln ep) (Gaussian extreme value). A local expert receives
    // no token with probability (1 - k/E)^T_g (occupancy of T_g draws of k among E), so a
    // share 1 - (1 - k/E)^T_g of them runs and has its weights read; training pads to the
    // capacity (every expert runs).
    if (m[M_EXPERTS] <= 0.0) {
        return ExpertLoad{0.0, 0.0};
    }
    double spread = 1.0;
    double active = 1.0;
    if (!f.training) {
        double mean = m[M_EXPERTS] * capacity * f.etp / f.tp;
        if (f.ep > 1.0) {
            spread = 1.0 + sqrt(2.0 * log(f.ep) * (1.0 - 1.0 / f.ep) / mean);
        }
        active = active_experts(m, mean * f.ep / m[M_TOP_K]);
    }
    return ExpertLoad{capacity * f.imbalance * spread, active};
}

// Level 1: everything the columns before global_batch decide.
PYENGINE_HD inline LayerStage layer_stage(const double* m, const double* h, const PlanFields& f,
                                          const Precisions& pr) {
    long long code = layer_checks(m, f);
    // [S3] tokens: a training/prefill pass of a micro-batch puts mbs*seq/cp tokens on
    // each GPU; a decode step puts one token per sequence. Flash skips the masked half
    // of causal attention; unfused attention computes every score.
    double n_tok = f.mbs * f.seq / f.cp;
    double keys = attended(m, 0.0, f.seq, f.flash ? f.seq * 0.5 : f.seq);
    Capacity cap = expert_capacity(m, n_tok, f.cf, f.training);
    if (m[M_EXPERTS] > 0.0 && cap.capacity <= 0.0) {
        code |= V_MOE_NO_CAPACITY;
    }
    // [F1] FP4 weights need FP4 tensor cores (Blackwell: B200, GB200, GB300)
    if (f.fp4 > 0.0 && h[H_PEAK_FP4] <= 0.0) {
        code |= V_FP4;
    }
    // [F1] FP8 attention runs inside FP8 (or FP4) recipes, in the fused kernels, on a GPU
    // whose FP8 attention kernels have figures
    if (f.attn_kernel == 2.0 && !((f.fp8 || f.fp4 > 0.0) && f.flash
                                  && h[H_PEAK_FP8] > 0.0
                                  && h[H_ATTN_FP8_EFF_FWD] > 0.0)) {
        code |= V_FP8_ATTENTION;
    }
    // [S5] the busiest expert rank's load
    ExpertLoad load = expert_load(m, f, cap.capacity);
    // [T11] per-layer forward costs of one micro-batch pass, and model FLOPs per token of
    // a pass and of a decode step (at the mean context seq + gen/2).
    double logit_rows = f.training ? n_tok : f.mbs;
    LayerCosts costs = layer_costs(m, h, n_tok, keys, 0.0, false, f.mbs, logit_rows, f.tp, f.cp,
                                   f.etp, f.ep, f.sp, f.flash, f.attn_kernel, f.cp_overlap,
                                   load.load, load.active, pr.rate, pr.expert_rate,
                                   pr.token_half, pr.ab, pr.wb, pr.kvb, pr.db, pr.head_rate,
                                   f.dispatcher);
    double fwd_flops_tok = model_forward_flops_per_token(m, attended(m, 0.0, f.seq, f.seq),
                                                         mtp_modules(m, f));
    double dec_flops_tok = 0.0;
    if (f.decode) {
        dec_flops_tok = model_forward_flops_per_token(m, decode_context(m, f), 0.0);
    }
    double kv_elems = kv_cache_elems_per_gpu(m, f.tp);
    return LayerStage{code, n_tok, cap.capacity, load.load, cap.dropped, costs, fwd_flops_tok,
                      dec_flops_tok, kv_elems};
}

// ---- level 2: the pipeline split (columns before dp)

// One kind of pipeline stage (first, middle, last): its transformer layers, MoE layers
// among them, the (dense, expert) parameters one of its GPUs holds before ZeRO sharding,
// and whether it holds the input embedding (first) and the output layer (last).
struct StageShape {
    double layers;
    double moe_layers;
    double start;
    double dense_params;
    double expert_params;
    bool first;
    bool last;
    double mtp;
    double kept_params;
};

struct SplitStage {
    StageShape first;
    StageShape mid;
    StageShape last;
    bool valid;
};

// A stage kind holding n_layers layers (n_moe of them MoE): its layers' holdings, plus the
// input embedding on the first stage and the output layer on the last.
PYENGINE_HD inline StageShape stage_shape(double n_layers, double n_moe, double start,
                                          bool first, bool last, const Holdings& held,
                                          double mtp, double mtp_moe, double mtp_extra) {
    if (last) {
        n_layers += mtp;
        n_moe += mtp_moe;
    }
    double dense = (n_layers - n_moe) * held.dense_layer + n_moe * held.moe_layer;
    // [M10] of them, those kept in 16 bits in quantized inference
    double kept = (n_layers - n_moe) * held.dense_kept + n_moe * held.moe_kept;
    if (first) {
        dense += held.embed_extra;
        kept += held.embed_extra;
    }
    if (last) {
        dense += held.output_extra + mtp * mtp_extra;
        kept += held.output_extra;
    }
    return StageShape{n_layers, n_moe, start, dense, n_moe * held.expert_layer, first, last,
                      last ? mtp : 0.0, kept};
}

// The transformer layers of each stage kind, and whether the fixed first/last counts leave
// every other stage a share (none negative).
struct StageLayers {
    double first;
    double mid;
    double last;
    bool valid;
};

PYENGINE_HD inline StageLayers stage_layers(double L, const PlanFields& f) {
    // [S1] pipeline split as Megatron-Core makes it: the layers, plus one slot each for
    // the embedding and the loss where they count as layers
    // (account_for_embedding/loss_in_pipeline_split), go as evenly as possible over the
    // stages whose count is not fixed (decoder_first/last_pipeline_num_layers); the
    // remainder goes to the middle stages, so that the first and last (holding the
    // embedding and the output layer) get fewer (Llama 3 405B: 126 layers on 16 stages
    // -> 7, 8 x 14, 7; with both slots counted, 128 slots on 16 x 8 virtual stages, one
    // layer each, the first and last virtual stage holding no transformer layer).
    double pp = f.pp;
    if (pp <= 1.0) {
        return StageLayers{L, 0.0, L, true};
    }
    bool fix_first = f.pp_first > 0.0;
    bool fix_last = f.pp_last > 0.0;
    double n_mid = py_max(pp - 2.0, 0.0);
    double shared = n_mid + (fix_first ? 0.0 : 1.0) + (fix_last ? 0.0 : 1.0);
    double e = f.pp_embedding && !fix_first ? 1.0 : 0.0;
    double lo = f.pp_loss && !fix_last ? 1.0 : 0.0;
    double slots = L + e + lo - (fix_first ? f.pp_first : 0.0) - (fix_last ? f.pp_last : 0.0);
    if (shared <= 0.0) {
        return StageLayers{f.pp_first, 0.0, f.pp_last, slots == 0.0};
    }
    double base = floor(slots / shared);
    double rem = slots - base * shared;
    double mid_extra = py_min(rem, n_mid);
    // what the middle stages do not take goes to the first stage, else to the last
    double first = fix_first ? f.pp_first : base + (rem - mid_extra) - e;
    double last = fix_last ? f.pp_last : base + (fix_first ? rem - mid_extra : 0.0) - lo;
    double mid = pp > 2.0 ? base + (mid_extra > 0.0 ? 1.0 : 0.0) : 0.0;
    return StageLayers{first, mid, last, slots >= 0.0 && first >= 0.0 && last >= 0.0};
}

// Level 2: the layers of each stage kind and what its GPUs hold.
PYENGINE_HD inline SplitStage split_stage(const double* m, const PlanFields& f) {
    double L = m[M_LAYERS];
    double pp = f.pp;
    StageLayers sl = stage_layers(L, f);
    double layers_first = py_max(sl.first, 0.0);
    double layers_last = py_max(sl.last, 0.0);
    double layers_mid = py_max(sl.mid, 0.0);
    // [S2] MoE layers per stage: first stage [0, f), last stage [L-l, L), and the
    // middle stage just before the last, which holds the most MoE layers when dense
    // ones lead.
    double moe_first = moe_layers_in(0.0, layers_first, m);
    double moe_last = pp > 1.0 ? moe_layers_in(L - layers_last, L, m) : moe_first;
    double moe_mid = moe_layers_in(L - layers_last - layers_mid, L - layers_last, m);
    Holdings held = layer_holdings(m, pp, f.tp, f.etp, f.ep);
    double mtp = mtp_modules(m, f);
    double mtp_moe = moe_layers_in(L, L + mtp, m);
    double mtp_extra = m[M_MTP_PARAMS] / f.tp;
    return SplitStage{stage_shape(layers_first, moe_first, 0.0, true, pp == 1.0, held, mtp,
                                  mtp_moe, mtp_extra),
                      stage_shape(layers_mid, moe_mid, L - layers_last - layers_mid, false,
                                  false, held, mtp, mtp_moe, mtp_extra),
                      stage_shape(layers_last, moe_last, L - layers_last, pp == 1.0, true,
                                  held, mtp, mtp_moe, mtp_extra), sl.valid};
}

// ---- level 3: micro-batches and GPU count (columns before vpp)

struct BatchStage {
    long long code;
    double n_gpus;
    double seqs_per_replica;
    double n_micro;
};

// Level 3: the micro-batch count and the checks on expert folding, the batch and the GPU
// count, added to the layer-shape bits.
PYENGINE_HD inline BatchStage batch_stage(const double* m, const double* k, const PlanFields& f,
                                          long long layer_code) {
    // [F2] feasibility of the batch and of the GPU count
    long long code = layer_code;
    if (m[M_EXPERTS] > 0.0 && !divides(f.etp * f.ep, f.tp * f.cp * f.dp)) {
        code |= V_EP_FOLD;
    }
    double seqs_per_replica = f.gbs / f.dp;
    double n_micro = py_max(1.0, floor(seqs_per_replica / f.mbs));
    if (!divides(f.dp * f.mbs, f.gbs)) {
        code |= V_BATCH;
    }
    double n_gpus = f.tp * f.cp * f.pp * f.dp;
    if (k[K_GPUS_EXACT] > 0.0 && n_gpus != k[K_GPUS_EXACT]) {
        code |= V_GPUS_EXACT;
    }
    if (k[K_GPUS_MAX] > 0.0 && n_gpus > k[K_GPUS_MAX]) {
        code |= V_GPUS_MAX;
    }
    return BatchStage{code, n_gpus, seqs_per_replica, n_micro};
}

// What the walkers keep between consecutive plans: reuse level k means the first k stage
// results are those of the previous plan.
struct Stages {
    LayerStage layer;
    SplitStage split;
    BatchStage batch;
};

// The walkers' starting value (the first plan is evaluated with reuse 0).
PYENGINE_HD inline Stages no_stages() {
    LayerCosts c = LayerCosts{0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                              0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    StageShape shape = StageShape{0.0, 0.0, 0.0, 0.0, 0.0, false, false, 0.0, 0.0};
    return Stages{LayerStage{0, 0.0, 0.0, 0.0, 0.0, c, 0.0, 0.0, 0.0},
                  SplitStage{shape, shape, shape, true}, BatchStage{0, 0.0, 0.0, 0.0}};
}

// ---- every plan: pipeline checks and memory

PYENGINE_HD inline bool offload_refused(const double* m, const PlanFields& f) {
    // [F4] where Megatron-Core refuses CPU activation offloading (TransformerConfig: with
    // pipeline parallelism, with recomputation, for as many layers as the model's), and
    // outside training
    return (!f.training || f.pp > 1.0 || f.recompute > 0.0
            || f.offload >= m[M_LAYERS]);
}

PYENGINE_HD inline long long pipeline_checks(const double* m, const PlanFields& f,
                                             const SplitStage& split, double n_micro) {
    // [F3] feasibility of the pipeline depth (the only checks involving vpp): a virtual
    // stage per layer at most, the embedding and the loss counting as layers where the
    // split counts them; fixed first/last stage counts that leave the others a share.
    long long code = 0;
    double slots = m[M_LAYERS] + (f.pp_embedding ? 1.0 : 0.0) + (f.pp_loss ? 1.0 : 0.0);
    if (f.pp * f.vpp > slots || !split.valid) {
        code |= V_PP_LAYERS;
    }
    if (f.vpp > 1.0 && (f.pp == 1.0 || !divides(f.pp, n_micro))) {
        code |= V_VPP_SCHEDULE;
    }
    if (f.offload > 0.0 && offload_refused(m, f)) {
        code |= V_CPU_OFFLOAD;
    }
    return code;
}

// Bytes held per parameter, dense (sharded over DP*CP) and expert (over EDP).
struct ParamBytes {
    double dense_shard;
    double expert_shard;
    double w_dense;
    double w_expert;
    double g_dense;
    double g_expert;
    double o_dense;
    double o_expert;
    double w_kept;
};

PYENGINE_HD inline ParamBytes bytes_per_param(const PlanFields& f, const Precisions& pr) {
    // [M2] bytes per parameter held (ZeRO paper: 2 + 2 + K, K = 12 for Adam's fp32 master
    // weights, m and v; 8 with bf16 moments), each term divided by its ZeRO shard: DP*CP
    // ranks for dense parameters, EDP = tp*cp*dp/(etp*ep) for expert parameters.
    // Inference holds the weights only.
    double dense_shard = f.dp * f.cp;
    double expert_shard = f.tp * f.cp * f.dp / (f.etp * f.ep);
    double w_dense = pr.wb / zero_shard(dense_shard, f.zero, 3.0);
    double w_expert = pr.wb / zero_shard(expert_shard, f.zero, 3.0);
    double g_dense = 0.0;
    double g_expert = 0.0;
    double o_dense = 0.0;
    double o_expert = 0.0;
    if (f.training) {
        g_dense = f.grad_bytes / zero_shard(dense_shard, f.zero, 2.0);
        g_expert = f.grad_bytes / zero_shard(expert_shard, f.zero, 2.0);
        o_dense = f.opt_bytes / zero_shard(dense_shard, f.zero, 1.0);
        o_expert = f.opt_bytes / zero_shard(expert_shard, f.zero, 1.0);
    }
    // the 16-bit parameters of quantized inference (never ZeRO-sharded); in training every
    // weight is 16-bit already
    double w_kept = f.training ? w_dense : pr.hb;
    return ParamBytes{dense_shard, expert_shard, w_dense, w_expert, g_dense, g_expert,
                      o_dense, o_expert, w_kept};
}

// Activation bytes: per dense and per MoE layer of one micro-batch, the first stage's
// embedding output, the last stage's logits; and inference's working set.
struct Activations {
    double dense_layer;
    double moe_layer;
    double full_layer;
    double embedding;
    double logits;
    double inference;
};

PYENGINE_HD inline Activations activations(const double* m, const PlanFields& f,
                                           const Precisions& pr, const LayerStage& layer,
                                           double seqs) {
    double n_tok = layer.n_tok;
    double act_dense = 0.0;
    double act_moe = 0.0;
    double act_inf = 0.0;
    if (f.training) {
        // a layer not recomputed keeps what the savers leave (a fully recomputed one its
        // input only, the embedding's size below)
        act_dense = layer_activation_bytes(m, n_tok, f.seq, f.tp, f.sp, f.flash, 0.0, false,
                                           layer.expert_load, f.etp, f.sv);
        act_moe = layer_activation_bytes(m, n_tok, f.seq, f.tp, f.sp, f.flash, 0.0, true,
                                         layer.expert_load, f.etp, f.sv);
    } else {
        // [M8] inference keeps no activations for backward: the working set of one layer
        // (input, QKV, MLP hidden, scores without flash) plus the last token's logits, for
        // the tokens of a step: the micro-batch's prompts, or with a token budget
        // (max_num_tokens) as many tokens, and logits for as many of the seqs sampled (the
        // workspace TensorRT-LLM sizes at engine build from max_num_tokens, docs
        // reference/memory.md "Activation size").
        double ws_tok = n_tok;
        double logit_rows = f.mbs;
        if (f.max_tokens > 0.0) {
            ws_tok = f.max_tokens / f.cp;
            logit_rows = py_min(f.max_tokens, seqs);
        }
        act_inf = pr.ab * ws_tok * (4.0 * m[M_HIDDEN] + (2.0 + m[M_GATED])
                                    * py_max(m[M_FFN], m[M_EXPERT_FFN]) / f.tp);
        if (!f.flash) {
            act_inf += pr.ab * ws_tok * f.seq * m[M_HEADS] / f.tp;
        }
        act_inf += logit_rows * m[M_VOCAB] / f.tp * 4.0;
    }
    // [M6] logits kept in fp32 for the loss on the last stage (one micro-batch at a time)
    double logits_bytes = n_tok * m[M_VOCAB] / f.tp * 4.0;
    double embedding = 2.0 * n_tok * m[M_HIDDEN] / (f.sp ? f.tp : 1.0);
    return Activations{act_dense, act_moe, embedding, embedding, logits_bytes, act_inf};
}

// The dense and MoE layers of a stage kind that full recomputation recomputes.
struct FullRecompute {
    double dense;
    double moe;
};

PYENGINE_HD inline FullRecompute full_recompute(const double* m, const PlanFields& f,
                                                const StageShape& shape) {
    // [M9] full recomputation of every layer, or (recompute_layers = n, Megatron-Core's
    // block method) of the first n layers of each virtual stage: n x vpp of the stage's
    // layers, taken from its first layer on.
    if (f.recompute != 2.0) {
        return FullRecompute{0.0, 0.0};
    }
    if (f.recompute_layers <= 0.0) {
        return FullRecompute{shape.layers - shape.moe_layers, shape.moe_layers};
    }
    double n = py_min(shape.layers, f.recompute_layers * f.vpp);
    double moe = moe_layers_in(shape.start, shape.start + n, m);
    return FullRecompute{n - moe, moe};
}

// The dense and MoE layers of a stage kind whose activations CPU offloading keeps in host
// memory.
struct Offload {
    double dense;
    double moe;
};

PYENGINE_HD inline Offload offloaded_layers(const double* m, const PlanFields& f,
                                            const StageShape& shape) {
    // [M12] CPU activation offloading (Megatron-Core cpu_offloading_num_layers, run by
    // Transformer Engine's default scheduling; TE docs "CPU Offloading"): the first n
    // layers' activations go to host memory as they are saved and come back for their
    // backward, so a GPU holds L - n layers' at any time. Only where Megatron-Core runs it
    // (offload_refused: CPU_OFFLOAD, and nothing offloaded).
    if (f.offload <= 0.0 || offload_refused(m, f)) {
        return Offload{0.0, 0.0};
    }
    double n = py_min(shape.layers, f.offload);
    double moe = moe_layers_in(shape.start, shape.start + n, m);
    return Offload{n - moe, moe};
}

// One stage kind's memory per GPU, itemised.
struct StageMemory {
    double dense_params;
    double expert_params;
    double activations;
    double kv_cache;
    double total;
    double kept_params;
    double buffers;
    double kv_seqs;
};

// More sequences than any KV cache holds (a stage without layers holds no KV): 2**53.
constexpr double UNBOUNDED = 9007199254740992.0;

PYENGINE_HD inline StageMemory stage_memory(const StageShape& shape, double inflight,
                                            const Activations& act, double kv_seq, double seqs,
                                            const ParamBytes& pb, double overhead,
                                            double buffers, double usable, double kv_fraction,
                                            bool training, const FullRecompute& full,
                                            const Offload& off) {
    // [M4] memory of one GPU of a stage kind: its parameters at their bytes per
    // parameter, the activations of its in-flight micro-batches (training; `full`: the
    // dense and MoE layers fully recomputed, `off`: those offloaded to the host) or the
    // working set, KV cache and runtime buffers of its layers (inference), and the fixed
    // overhead.
    double kv = 0.0;
    double kv_seqs = 0.0;
    double per_dense = pb.w_dense + pb.g_dense + pb.o_dense;
    double per_expert = pb.w_expert + pb.g_expert + pb.o_expert;
    double params = shape.dense_params * per_dense + shape.expert_params * per_expert;
    double held_act;
    if (training) {
        double layers = ((shape.layers - shape.moe_layers - full.dense - off.dense)
                             * act.dense_layer
                         + (shape.moe_layers - full.moe - off.moe) * act.moe_layer
                         + (full.dense * act.full_layer + full.moe * act.full_layer));
        if (shape.first) {
            layers = layers + act.embedding;
        }
        held_act = inflight * layers;
        if (shape.last) {
            held_act = held_act + act.logits;
        }
    } else {
        // [M11] the KV cache as engines size it: a pool of kv_fraction of the memory left
        // after weights, workspace, overhead and buffers (TensorRT-LLM
        // kv_cache_free_gpu_mem_fraction; vLLM's gpu_memory_utilization is of the whole
        // HBM), or the requests' own (kv_fraction 0); kv_seqs: the sequences of whole
        // blocks (kv_seq bytes each per layer) that the pool, or the memory left, holds
        held_act = act.inference;
        params += shape.kept_params * (pb.w_kept - pb.w_dense);
        double seq_bytes = kv_seq * shape.layers;
        double room = py_max(0.0, usable - (params + held_act + overhead + buffers));
        kv = seqs * seq_bytes;
        if (kv_fraction > 0.0) {
            kv = kv_fraction * room;
            room = kv;
        }
        kv_seqs = UNBOUNDED;
        if (seq_bytes > 0.0) {
            kv_seqs = floor(room / seq_bytes);
        }
    }
    double total = params + held_act + kv + overhead + buffers;
    return StageMemory{shape.dense_params, shape.expert_params, held_act, kv, total,
                       shape.kept_params, buffers, kv_seqs};
}

PYENGINE_HD inline StageMemory fuller(const StageMemory& a, const StageMemory& b) {
    // the stage kind with more memory (the earlier one on a tie)
    return b.total > a.total ? b : a;
}

// The memory per GPU of each stage kind, and of the fullest (the one that must fit).
struct StageMemories {
    StageMemory first;
    StageMemory mid;
    StageMemory last;
    StageMemory fullest;
    double kv_seqs;
};

// The memory of every stage kind, which is fullest, and the sequences the KV cache of every
// stage holds (`act`: the activations of a layer; `usable`: the HBM a GPU may fill).
PYENGINE_HD inline StageMemories stage_memories(const double* m, const double* h,
                                                const PlanFields& f, const Precisions& pr,
                                                const Activations& act,
                                                const LayerStage& layer,
                                                const SplitStage& split,
                                                const BatchStage& batch, const ParamBytes& pb,
                                                double usable) {
    // [M5] in-flight micro-batches under 1F1B: stage i holds min(m, p - i); interleaving
    // multiplies the first stage's by 1 + (p-1)/(p*v) (Korthikanti Sec. 4.2.3).
    double inflight_first = py_min(batch.n_micro, f.pp);
    if (f.vpp > 1.0) {
        inflight_first = inflight_first * (1.0 + (f.pp - 1.0) / (f.pp * f.vpp));
    }
    double inflight_mid = py_min(batch.n_micro, py_max(f.pp - 1.0, 1.0));
    double inflight_last = f.pp > 1.0 ? 1.0 : inflight_first;
    // [M7] KV cache (inference): sequences per replica x context x layers on the stage x
    // values per token and layer on this GPU; CP shards the context. Paged: a sequence
    // holds whole blocks of kv_block tokens (vLLM PagedAttention, Kwon et al. 2023 Sec.
    // 4.1; TensorRT-LLM tokens_per_block).
    double kv_seq = 0.0;
    double buffers = 0.0;
    if (!f.training) {
        double ctx = f.decode ? f.seq + f.gen : f.seq;
        double blocks = ceil(ctx / (f.cp * f.kv_block));
        kv_seq = layer.kv_elems * pr.kvb * blocks * f.kv_block;
        buffers = h[H_RUNTIME_BUFFERS];
    }
    double overhead = h[H_MEM_OVERHEAD];
    double seqs = batch.seqs_per_replica;
    StageMemory first = stage_memory(split.first, inflight_first, act, kv_seq, seqs, pb,
                                     overhead, buffers, usable, f.kv_fraction, f.training,
                                     full_recompute(m, f, split.first),
                                     offloaded_layers(m, f, split.first));
    StageMemory last = stage_memory(split.last, inflight_last, act, kv_seq, seqs, pb,
                                    overhead, buffers, usable, f.kv_fraction, f.training,
                                    full_recompute(m, f, split.last),
                                    offloaded_layers(m, f, split.last));
    StageMemory mid = stage_memory(split.mid, inflight_mid, act, kv_seq, seqs, pb, overhead,
                                   buffers, usable, f.kv_fraction, f.training,
                                   full_recompute(m, f, split.mid),
                                   offloaded_layers(m, f, split.mid));
    return StageMemories{first, mid, last, fuller(fuller(first, last), mid),
                         py_min(first.kv_seqs, py_min(last.kv_seqs, mid.kv_seqs))};
}

// ---- every plan: time

// Per-layer times of one micro-batch, as a stage adds them up.
struct LayerTimes {
    double dense_fwd;
    double moe_fwd;
    double passes;
    double bwd_extra;
    double comm_passes;
    double ep_moe;
    double recompute_core;
    double recompute_dense;
    double recompute_moe;
    double recompute_layer;
    double recompute_ep;
    double tp_dense;
    double tp_moe;
    double tp_bwd_dense;
    double tp_bwd_moe;
    double dense_kernels;
    double moe_kernels;
    double launch_s;
};

PYENGINE_HD inline LayerTimes layer_times(const LayerCosts& c, const PlanFields& f,
                                          const double* h) {
    double dense_fwd = c.attn_s + c.mlp_s;
    double moe_fwd = c.attn_s + c.moe_s;
    // [T12] training: backward = 2x forward FLOPs and traffic (data and weight gradients);
    // full recompute repeats each recomputed layer's forward, selective the forward of
    // the modules it recomputes: per layer (core attention, norms, MLA up-projections),
    // per dense layer (the MLP), per MoE layer (experts, or their activation alone;
    // shared experts).
    double passes = f.training ? 3.0 : 1.0;
    // fused attention's backward runs at its own rate, not twice its forward's time
    double bwd_extra = f.training ? c.attn_bwd_extra_s : 0.0;
    double comm_passes = f.training ? 2.0 : 1.0;
    const Savers& sv = f.sv;
    double recompute_layer = f.recompute == 2.0 ? 1.0 : 0.0;
    double recompute_core = ((sv.core_attn ? c.attn_core_s : 0.0)
                             + (sv.layernorm ? c.norm_s : 0.0)
                             + (sv.mla_up_proj ? c.mla_up_s : 0.0));
    double recompute_dense = sv.mlp ? c.mlp_s : 0.0;
    double recompute_moe = ((sv.moe ? c.experts_s : sv.moe_act ? c.moe_act_s : 0.0)
                            + (sv.shared_experts ? c.shared_s : 0.0));
    // recomputing the MoE module (dispatch, experts, combine) replays its all-to-alls
    double recompute_ep = sv.moe ? 1.0 : 0.0;
    // [C11] TP communication overlap (tp_overlap: Megatron/Transformer Engine userbuffers)
    // splits each collective into chunks pipelined with the GEMMs it feeds: only what
    // exceeds the layer's GEMM time stays exposed.
    double tp_dense = c.tp_s;
    double tp_moe = c.tp_s;
    if (f.tp_overlap) {
        tp_dense = py_max(0.0, c.tp_s - (c.attn_s - c.attn_core_s + c.mlp_s));
        tp_moe = py_max(0.0, c.tp_s - (c.attn_s - c.attn_core_s + c.moe_s));
    }
    // [C15] backward TP overlap (tp_dgrad_overlap: Megatron-LM since 2022, Megatron-Core's
    // and Transformer Engine's linears): a column-parallel linear (QKV, the MLP's FC1)
    // launches its input-gradient all-reduce (with SP: reduce-scatter) asynchronously and
    // computes its weight gradient meanwhile; with SP it also re-gathers its input (kept
    // sharded) behind its input-gradient GEMM. Each hides behind a GEMM of the linear's
    // forward size; the row-parallel side (with SP: the output gradient's all-gather) and
    // the MoE block's collectives stay exposed. tp_s holds two all-reduces, or with SP
    // two all-gathers and two reduce-scatters.
    // Per side of a layer: the attention's QKV, the dense MLP's FC1, the MoE block.
    double tp_bwd_dense = tp_dense;
    double tp_bwd_moe = tp_moe;
    if (f.tp_dgrad_overlap && !f.tp_overlap) {
        double qkv_side;
        double fc1_side;
        double moe_side;
        if (f.sp) {
            double one = 0.25 * c.tp_s;
            qkv_side = one + 2.0 * py_max(0.0, one - c.qkv_s);
            fc1_side = one + 2.0 * py_max(0.0, one - c.fc1_s);
            moe_side = 2.0 * one;
        } else {
            double one = 0.5 * c.tp_s;
            qkv_side = py_max(0.0, one - c.qkv_s);
            fc1_side = py_max(0.0, one - c.fc1_s);
            moe_side = one;
        }
        tp_bwd_dense = qkv_side + fc1_side;
        tp_bwd_moe = qkv_side + moe_side;
    }
    // [C12] EP overlap (Megatron-Core's MoE all-to-all overlap, DeepSeek's DualPipe): one
    // micro-batch's dispatch and combine run while another's attention and experts
    // compute; only what exceeds that layer's compute stays exposed.
    double ep_moe = c.ep_s;
    if (f.ep_overlap) {
        ep_moe = py_max(0.0, c.ep_s - moe_fwd);
    }
    // [T20] host launches ([T19] kernels): training and prefill passes are launched eagerly
    // (no CUDA graph), so a stage's micro-batch takes at least its kernels x
    // launch_overhead; per layer of a micro-batch: the backward launches twice the
    // forward's kernels, recomputation those of the modules it recomputes (core 1, norms
    // 2, MLA up-projections, MLP 5, experts 3 or their activation 1, shared experts).
    double layer_kernels = ((f.training ? c.bwd_kernels : 0.0) + (sv.core_attn ? 1.0 : 0.0)
                            + (sv.layernorm ? 2.0 : 0.0)
                            + (sv.mla_up_proj ? c.mla_up_kernels : 0.0));
    double dense_kernels = passes * c.dense_kernels + layer_kernels + (sv.mlp ? 5.0 : 0.0);
    double moe_kernels = (passes * c.moe_kernels + layer_kernels
                          + (sv.moe ? 3.0 : sv.moe_act ? 1.0 : 0.0)
                          + (sv.shared_experts ? c.shared_kernels : 0.0));
    return LayerTimes{dense_fwd, moe_fwd, passes, bwd_extra, comm_passes, ep_moe,
                      recompute_core, recompute_dense, recompute_moe, recompute_layer,
                      recompute_ep, tp_dense, tp_moe, tp_bwd_dense, tp_bwd_moe, dense_kernels,
                      moe_kernels, h[H_LAUNCH_OVERHEAD]};
}

PYENGINE_HD inline double stage_compute_s(double n_layers, double n_moe, double dense_fwd,
                                          double moe_fwd, double passes, double embed_s,
                                          double output_s) {
    // [T13] compute of one stage for one micro-batch (forward, and backward when training)
    return passes * ((n_layers - n_moe) * dense_fwd + n_moe * moe_fwd + embed_s + output_s);
}

// One stage kind's time per micro-batch: total, compute, recompute, CPU offloading copies
// not hidden, exposed TP, CP and EP communication, launches; and its layers.
struct StageTime {
    double total;
    double compute;
    double recompute;
    double offload;
    double tp;
    double cp;
    double ep;
    double launch;
    double kernels;
    double layers;
    double moe_layers;
};

PYENGINE_HD inline double offload_s(const double* h, const LayerTimes& lt,
                                    const Activations& act, const Offload& off,
                                    double n_layers) {
    // [T27] CPU offloading's copies run on a stream of their own over the host link (one
    // direction each way): a layer's activations go out while the next layers compute
    // forward and come back while the later ones compute backward, so a copy longer than
    // a layer's pass shows the difference. With one layer's activations left on the GPU
    // (n = L - 1) nothing overlaps (TE docs: "compute and transfers cannot overlap").
    double n = off.dense + off.moe;
    if (n <= 0.0) {
        return 0.0;
    }
    double copy_dense = act.dense_layer / h[H_HOST_BW];
    double copy_moe = act.moe_layer / h[H_HOST_BW];
    if (n >= n_layers - 1.0) {
        return 2.0 * (off.dense * copy_dense + off.moe * copy_moe);
    }
    double bwd_dense = (lt.passes - 1.0) * lt.dense_fwd + lt.bwd_extra;
    double bwd_moe = (lt.passes - 1.0) * lt.moe_fwd + lt.bwd_extra;
    return (off.dense * (py_max(0.0, copy_dense - lt.dense_fwd)
                         + py_max(0.0, copy_dense - bwd_dense))
            + off.moe * (py_max(0.0, copy_moe - lt.moe_fwd) + py_max(0.0, copy_moe - bwd_moe)));
}

// The time of one stage kind for one micro-batch: its layers' compute (with the embedding
// on the first stage and the output layer on the last), recomputation (of the selective
// modules, or of the `full`y recomputed layers), the CPU offloading copies (of the
// `off`loaded layers) not hidden, and exposed TP, CP and EP communication.
PYENGINE_HD inline StageTime stage_time(const double* h, const StageShape& shape,
                                        const LayerTimes& lt, const LayerCosts& c,
                                        const Activations& act, const FullRecompute& full,
                                        const Offload& off) {
    double dense = shape.layers - shape.moe_layers;
    double compute = (stage_compute_s(shape.layers, shape.moe_layers, lt.dense_fwd, lt.moe_fwd,
                                      lt.passes, shape.first ? c.embed_s : 0.0,
                                      shape.last ? (1.0 + shape.mtp) * c.output_s : 0.0)
                      + shape.layers * lt.bwd_extra);
    double recompute = (shape.layers * lt.recompute_core + dense * lt.recompute_dense
                        + shape.moe_layers * lt.recompute_moe
                        + lt.recompute_layer * (full.dense * lt.dense_fwd
                                                + full.moe * lt.moe_fwd));
    double offload = offload_s(h, lt, act, off, shape.layers);
    // [C13] communication per pass (forward, backward); recomputing a layer's forward
    // replays its collectives (TP, the CP ring, EP dispatch and combine), recomputing the
    // MoE module its all-to-alls
    double full_layers = lt.recompute_layer * (full.dense + full.moe);
    double bwd_passes = lt.comm_passes - 1.0;
    double tp = (dense * (lt.tp_dense + bwd_passes * lt.tp_bwd_dense)
                 + shape.moe_layers * (lt.tp_moe + bwd_passes * lt.tp_bwd_moe)
                 + lt.recompute_layer * (full.dense * lt.tp_dense + full.moe * lt.tp_moe));
    double cp = (lt.comm_passes * shape.layers + full_layers) * c.cp_s;
    double ep = ((lt.comm_passes + lt.recompute_ep) * shape.moe_layers
                 + lt.recompute_layer * full.moe) * lt.ep_moe;
    // [T20] the kernels of the same terms; the host's launches not hidden behind them
    double embed_k = shape.first ? c.embed_kernels : 0.0;
    double output_k = shape.last ? (1.0 + shape.mtp) * c.output_kernels : 0.0;
    double kernels = (dense * lt.dense_kernels + shape.moe_layers * lt.moe_kernels
                      + lt.passes * (embed_k + output_k)
                      + lt.recompute_layer * (full.dense * c.dense_kernels
                                              + full.moe * c.moe_kernels));
    double gpu = compute + recompute + offload + tp + cp + ep;
    double launch = py_max(0.0, kernels * lt.launch_s - gpu);
    return StageTime{gpu + launch, compute, recompute, offload, tp, cp, ep, launch, kernels,
                     shape.layers, shape.moe_layers};
}

PYENGINE_HD inline StageTime slower(const StageTime& a, const StageTime& b) {
    // the stage kind that takes longer (the earlier one on a tie)
    return b.total > a.total ? b : a;
}

// The slowest stage's micro-batch time, itemised: it paces the pipeline.
struct MicroBatch {
    double total;
    double compute;
    double recompute;
    double offload;
    double tp;
    double cp;
    double ep;
    double launch;
    double kernels;
    double layers;
    double moe_layers;
};

PYENGINE_HD inline MicroBatch micro_batch_time(const double* m, const double* h,
                                               const LayerCosts& c, const PlanFields& f,
                                               const Activations& act,
                                               const SplitStage& split) {
    LayerTimes lt = layer_times(c, f, h);
    StageTime first = stage_time(h, split.first, lt, c, act, full_recompute(m, f, split.first),
                                 offloaded_layers(m, f, split.first));
    StageTime last = stage_time(h, split.last, lt, c, act, full_recompute(m, f, split.last),
                                offloaded_layers(m, f, split.last));
    StageTime mid = stage_time(h, split.mid, lt, c, act, full_recompute(m, f, split.mid),
                               offloaded_layers(m, f, split.mid));
    StageTime slow = slower(slower(first, last), mid);
    return MicroBatch{slow.total, slow.compute, slow.recompute, slow.offload, slow.tp, slow.cp,
                      slow.ep, slow.launch, slow.kernels, slow.layers, slow.moe_layers};
}

PYENGINE_HD inline double pipeline_send_s(const double* m, const double* h, const PlanFields& f,
                                          const Precisions& pr, double n_tok) {
    // [C9] pipeline: one activation per micro-batch per stage boundary and direction, vpp
    // times with interleaving; PP ranks are tp*cp*dp apart. With SP each TP rank holds
    // 1/t of it; without, Megatron's scatter/gather optimisation (Narayanan et al. 2021
    // Sec. 4.1) sends 1/t per rank and all-gathers it over TP on the receiving stage.
    if (f.pp <= 1.0) {
        return 0.0;
    }
    double act = n_tok * m[M_HIDDEN] * pr.ab;
    double stride = f.tp * f.cp * f.dp;
    if (f.sp) {
        return p2p_s(act / f.tp, stride, h);
    }
    if (f.pp_scatter_gather && f.tp > 1.0) {
        return p2p_s(act / f.tp, stride, h) + allgather_s(act, f.tp, 1.0, h);
    }
    return p2p_s(act, stride, h);
}

// The step, itemised (seconds), with the tokens and FLOPs it processes.
struct StepTime {
    double compute;
    double recompute;
    double offload;
    double tp;
    double cp;
    double ep;
    double pp_p2p;
    double pp_bubble;
    double dp;
    double optimizer;
    double launch;
    double step_overhead;
    double step;
    double tokens;
    double model_flops;
    double hw_flops;
    double ttft;
    double tpot;
    double kernels;
};

PYENGINE_HD inline double data_parallel_s(const double* h, const PlanFields& f,
                                          const Precisions& pr, const ParamBytes& pb,
                                          double d_max, double e_max, const MicroBatch& mb,
                                          double n_micro) {
    // [C10] gradients: all-reduce (ZeRO 0) or reduce-scatter + parameter all-gather
    // (ZeRO >= 1, distributed optimizer) over DP*CP (stride tp) for dense and EDP
    // (stride etp*ep) for expert parameters. The gradient reduction overlaps the last
    // micro-batch's backward, the parameter all-gather the next step's first forward;
    // the excess is exposed (all of it without dp_overlap). ZeRO-3 also gathers
    // parameters in every fwd and bwd.
    double fwd_mb = mb.compute / 3.0;
    double bwd_mb = mb.compute - fwd_mb + mb.recompute;
    double expert_stride = f.etp * f.ep;
    double gather_dp = 0.0;
    double reduce_dp;
    if (f.zero == 0.0) {
        reduce_dp = (allreduce_s(d_max * f.grad_bytes, pb.dense_shard, f.tp, h)
                     + allreduce_s(e_max * f.grad_bytes, pb.expert_shard, expert_stride, h));
    } else {
        reduce_dp = (allgather_s(d_max * f.grad_bytes, pb.dense_shard, f.tp, h)
                     + allgather_s(e_max * f.grad_bytes, pb.expert_shard, expert_stride, h));
        gather_dp = (allgather_s(d_max * pr.wb, pb.dense_shard, f.tp, h)
                     + allgather_s(e_max * pr.wb, pb.expert_shard, expert_stride, h));
    }
    double dp_s = py_max(0.0, reduce_dp - bwd_mb) + py_max(0.0, gather_dp - fwd_mb);
    if (!f.dp_overlap) {
        dp_s = reduce_dp + gather_dp;
    }
    if (f.zero == 3.0) {
        double gather_s = (allgather_s(d_max * pr.wb, pb.dense_shard, f.tp, h)
                           + allgather_s(e_max * pr.wb, pb.expert_shard, expert_stride, h));
        dp_s += n_micro * py_max(0.0, 2.0 * gather_s - mb.compute);
    }
    return dp_s;
}

PYENGINE_HD inline double recompute_flops_per_token(const double* m, double ctx,
                                                    const PlanFields& f, double fwd_flops_tok) {
    // [T12] recomputed forward FLOPs: full = the recomputed layers' forward (every layer's,
    // not the output layer; with recompute_layers, that share of the layers); selective =
    // the modules recomputed: attention scores and context, MLA up-projections, dense
    // MLPs, routed (top-k) and shared experts.
    double L = m[M_LAYERS];
    if (f.recompute == 2.0) {
        double layer_flops = fwd_flops_tok
                             - (1.0 + mtp_modules(m, f)) * 2.0 * m[M_HIDDEN] * m[M_VOCAB];
        if (f.recompute_layers > 0.0) {
            return layer_flops * py_min(1.0, f.recompute_layers * f.vpp * f.pp / L);
        }
        return layer_flops;
    }
    if (f.recompute != 1.0) {
        return 0.0;
    }
    const Savers& sv = f.sv;
    double n_moe = moe_layers_in(0.0, L, m);
    double n_mat = 2.0 + m[M_GATED];
    double hid = m[M_HIDDEN];
    double core = 0.0;
    if (sv.core_attn) {
        core = 2.0 * L * ctx * m[M_HEADS] * (m[M_QK_HEAD_DIM] + m[M_V_HEAD_DIM]);
    }
    double extra = 0.0;
    if (sv.mla_up_proj && m[M_MLA] > 0.0) {
        double nope_v = m[M_QK_HEAD_DIM] - m[M_ROPE_HEAD_DIM] + m[M_V_HEAD_DIM];
        extra += 2.0 * L * m[M_HEADS] * (m[M_Q_LORA_RANK] * m[M_QK_HEAD_DIM]
                                         + m[M_KV_LORA_RANK] * nope_v);
    }
    if (sv.mlp) {
        extra += 2.0 * (L - n_moe) * m[M_MLP_GEMM_PARAMS];
    }
    if (sv.moe) {
        extra += 2.0 * n_moe * m[M_TOP_K] * hid * m[M_EXPERT_FFN] * n_mat;
    }
    if (sv.shared_experts) {
        extra += 2.0 * n_moe * hid * m[M_SHARED_FFN] * n_mat;
    }
    return core + extra;
}

PYENGINE_HD inline StepTime training_step(const double* m, const double* h, const PlanFields& f,
                                          const Precisions& pr, const LayerStage& layer,
                                          const SplitStage& split, const BatchStage& batch,
                                          const ParamBytes& pb, const MicroBatch& mb,
                                          double p2p_one) {
    // [T16] step = m micro-batches of the slowest stage + bubble (p-1)/v of them
    // + pipeline sends + exposed DP traffic + optimizer.
    double n_micro = batch.n_micro;
    double bubble_s = (f.pp - 1.0) / f.vpp * mb.total;
    double p2p_total = 2.0 * n_micro * f.vpp * p2p_one;
    // the largest stage holding drives DP traffic and the optimizer step
    double d_max = py_max(split.first.dense_params,
                          py_max(split.last.dense_params, split.mid.dense_params));
    double e_max = py_max(split.first.expert_params,
                          py_max(split.last.expert_params, split.mid.expert_params));
    double dp_s = data_parallel_s(h, f, pr, pb, d_max, e_max, mb, n_micro);
    // [T14] optimizer: Adam reads and writes fp32 master weights and both moments,
    // reads the gradient and writes the bf16 weight, for the parameters it owns.
    double opt_params = (d_max / zero_shard(pb.dense_shard, f.zero, 1.0)
                         + e_max / zero_shard(pb.expert_shard, f.zero, 1.0));
    double opt_s = memory_bound_s(opt_params * (2.0 * f.opt_bytes + f.grad_bytes + pr.wb), 4.0,
                                  h);
    double step_s = n_micro * mb.total + bubble_s + p2p_total + dp_s + opt_s;
    double tokens = f.gbs * f.seq;
    double model_flops = 3.0 * layer.fwd_flops_tok * tokens;
    double hw_flops = model_flops + tokens * recompute_flops_per_token(m, f.seq, f,
                                                                       layer.fwd_flops_tok);
    return StepTime{n_micro * mb.compute, n_micro * mb.recompute, n_micro * mb.offload,
                    n_micro * mb.tp, n_micro * mb.cp, n_micro * mb.ep, p2p_total, bubble_s, dp_s,
                    opt_s, n_micro * mb.launch, 0.0, step_s, tokens, model_flops, hw_flops, 0.0,
                    0.0, mb.kernels};
}

// One decode step of one pipeline group on the slowest stage, itemised.
struct DecodeStep {
    double compute;
    double experts;
    double tp;
    double cp;
    double ep;
    double p2p;
    double launch;
    double kernels;
};

PYENGINE_HD inline double step_slot_s(const DecodeStep& d, double wait, double step_cost) {
    // one engine step's wall time: its operators (plus `wait`, the time it waits for the
    // busiest attention replica, [T23]), its collectives, launches, sends and fixed cost
    return d.compute + wait + d.tp + d.cp + d.ep + d.launch + d.p2p + step_cost;
}

PYENGINE_HD inline DecodeStep decode_step(const double* m, const double* h, const PlanFields& f,
                                          const Precisions& pr, const MicroBatch& mb,
                                          double n_tok, double keys, double seqs,
                                          double eager) {
    // (see inference_step, continuous_step) one engine step of a group: n_tok tokens on
    // each GPU attending to `keys` keys each, `seqs` of them decode tokens reading their
    // cached context (mean seq + gen/2); its experts see the step's tokens; `eager`: the
    // share of steps launched without a CUDA graph.
    double kv_mean = decode_context(m, f);
    ExpertLoad load = expert_load(m, f, expert_capacity(m, n_tok, f.cf, f.training).capacity);
    LayerCosts dc = layer_costs(m, h, n_tok, keys, kv_mean, true, seqs, seqs, f.tp, f.cp,
                                f.etp, f.ep, false, f.flash, f.attn_kernel, true, load.load,
                                load.active, pr.rate, pr.expert_rate, pr.token_half, pr.ab,
                                pr.wb, pr.kvb, pr.db, pr.head_rate, f.dispatcher);
    double n_l = mb.layers;
    double n_mo = mb.moe_layers;
    double dec_compute = ((n_l - n_mo) * (dc.attn_s + dc.mlp_s) + n_mo * (dc.attn_s + dc.moe_s)
                          + dc.embed_s + dc.output_s);
    // the MoE layers' own share: what the ranks of an EP group do together
    double dec_experts = n_mo * dc.moe_s;
    double dec_p2p = 0.0;
    if (f.pp > 1.0) {
        dec_p2p = p2p_s(n_tok * m[M_HIDDEN] * pr.ab, f.tp * f.cp * f.dp, h);
    }
    // [T20] a step replayed from a CUDA graph launches no kernel from the host; an eager
    // one takes at least its kernels x launch_overhead. [T26] Either also takes at least
    // the host's work for its `seqs` requests, which the overlap scheduler hides behind
    // the GPU until it is the longer; the host's excess over the GPU is exposed.
    double dec_kernels = ((n_l - n_mo) * dc.dense_kernels + n_mo * dc.moe_kernels
                          + dc.embed_kernels + dc.output_kernels);
    double gpu = dec_compute + n_l * dc.tp_s + n_l * dc.cp_s + n_mo * dc.ep_s;
    double launches = dec_kernels * h[H_LAUNCH_OVERHEAD];
    double requests = seqs * h[H_REQUEST_OVERHEAD];
    double host = (eager * py_max(0.0, launches + requests - gpu)
                   + (1.0 - eager) * py_max(0.0, requests - gpu));
    return DecodeStep{dec_compute, dec_experts, n_l * dc.tp_s, n_l * dc.cp_s, n_mo * dc.ep_s,
                      dec_p2p, host, dec_kernels};
}

PYENGINE_HD inline StepTime inference_step(const double* m, const double* h,
                                           const PlanFields& f, const Precisions& pr,
                                           const LayerStage& layer, const BatchStage& batch,
                                           const MicroBatch& mb, double p2p_one) {
    // [T17] inference. Prefill: the replica's prompts flow through the pipeline in
    // n_micro micro-batches, (n_micro + p - 1) slowest-stage times (TTFT). Decode
    // (continuous batching): each step advances every sequence of the replica by one
    // token, in p groups that keep the pipeline full, at the mean context
    // seq + gen/2: TPOT = p x one group's slowest-stage time. [T21] Every engine step (a
    // pipeline slot of a prefill micro-batch, a decode step of a group) also pays the
    // fixed per-step cost outside the layers.
    double n_micro = batch.n_micro;
    double pp = f.pp;
    double fill = n_micro + pp - 1.0;
    double step_cost = h[H_STEP_OVERHEAD];
    double ttft = fill * (mb.total + p2p_one + step_cost);
    double t_compute = n_micro * mb.compute;
    double t_tp = n_micro * mb.tp;
    double t_cp = n_micro * mb.cp;
    double t_ep = n_micro * mb.ep;
    double t_p2p = fill * p2p_one;
    double t_launch = n_micro * mb.launch;
    double t_fixed = fill * step_cost;
    double bubble_s = (pp - 1.0) * mb.total;
    double model_flops = layer.fwd_flops_tok * f.gbs * f.seq;
    double tpot = 0.0;
    double kernels = mb.kernels;
    if (f.decode) {
        // a group of the replica's sequences advances by one token at the mean context
        double group = py_max(1.0, floor(batch.seqs_per_replica / pp));
        DecodeStep d = decode_step(m, h, f, pr, mb, group, decode_context(m, f), group,
                                   f.cuda_graphs ? 0.0 : 1.0);
        tpot = pp * step_slot_s(d, 0.0, step_cost);
        t_compute += f.gen * pp * d.compute;
        t_tp += f.gen * pp * d.tp;
        t_cp += f.gen * pp * d.cp;
        t_ep += f.gen * pp * d.ep;
        t_p2p += f.gen * pp * d.p2p;
        t_launch += f.gen * pp * d.launch;
        t_fixed += f.gen * pp * step_cost;
        model_flops += f.gen * f.gbs * layer.dec_flops_tok;
        kernels = d.kernels;
    }
    double step_s = t_compute + t_tp + t_cp + t_ep + t_p2p + bubble_s + t_launch + t_fixed;
    double tokens = f.decode ? f.gbs * f.gen : f.gbs * f.seq;
    return StepTime{t_compute, 0.0, 0.0, t_tp, t_cp, t_ep, t_p2p, bubble_s, 0.0, 0.0, t_launch,
                    t_fixed, step_s, tokens, model_flops, model_flops, ttft, tpot, kernels};
}

// The steady state of continuous batching: the decode tokens of a step and what the token
// budget sustains, the prefill tokens of an average step and of a step carrying a chunk,
// the keys per token of each, the chunks of a prompt, the share of steps with a chunk; the
// prefill tokens of the busiest attention replica and their keys.
struct ContinuousBatch {
    double decode;
    double budget_decode;
    double prefill;
    double keys;
    double chunk;
    double chunk_keys;
    double chunks;
    double mixed;
    double busiest;
    double busiest_keys;
};

PYENGINE_HD inline double attention_ranks(const double* m, const PlanFields& f) {
    // [T23] the attention replicas an EP group's experts serve (attention data parallel:
    // ep x etp GPUs over tp x cp attention groups); a dense model's replicas never meet
    if (m[M_EXPERTS] <= 0.0) {
        return 1.0;
    }
    return py_max(1.0, f.ep * f.etp / (f.tp * f.cp));
}

PYENGINE_HD inline double busiest_chunks(double lam, double ranks, double room) {
    // [T23] the expected chunks of the busiest of `ranks` replicas, each carrying a
    // Poisson(lam) number a step, at most `room`: E[min(max, room)] = sum over k = 1..room
    // of P(max >= k) = 1 - F(k-1)^ranks, F the Poisson CDF. The terms well below the mode
    // are 1 (F < e^-50 there), so the sum starts 10 sigma + 10 below it, with the pmf in
    // log space (no underflow at large lam). Up to the median (F <= 1/2) a term comes from
    // F itself: F^ranks <= 1/2 there, so a rounding of F moves it by no more than one.
    // Above the median, 1 - F^ranks = -expm1(ranks log1p(-Q)) from the tail Q = 1 - F;
    // taken as 1 - F, Q would keep F's absolute rounding, which ranks multiplies (at
    // lam = 1e-9 and ranks = 1e6 that is the whole term), so Q is summed from the tail's
    // far end instead, where ranks x pmf is below 1e-17 of the first term 1 - e^(-lam
    // ranks), a lower bound of the sum: positive terms only, each term to its own digits.
    if (lam <= 0.0) {
        return 0.0;
    }
    double start = py_max(1.0, floor(lam - 10.0 * sqrt(lam) - 10.0));
    double total = py_min(start - 1.0, room);
    double p = exp(-lam + (start - 1.0) * log(lam) - lgamma(start));
    double cdf = p;
    double k = start;
    while (k <= room && cdf <= 0.5) {
        total += 1.0 - pow(cdf, ranks);
        p = p * lam / k;
        cdf += p;
        k += 1.0;
    }
    if (k > room) {
        return total;
    }
    double negligible = 1e-17 * -expm1(-lam * ranks) / ranks;
    double end = k;
    p = p * lam / end;
    while (end <= lam || p >= negligible) {
        end += 1.0;
        p = p * lam / end;
    }
    double tail = p;
    double upper = 0.0;
    double j = end;
    while (j >= k) {
        if (j <= room) {
            upper += -expm1(ranks * log1p(-tail));
        }
        p = p * j / lam;
        tail += p;
        j -= 1.0;
    }
    return total + upper;
}

PYENGINE_HD inline ContinuousBatch continuous_batch(const double* m, const PlanFields& f,
                                                   double group, double ranks) {
    // [T22] continuous batching with chunked prefill (TensorRT-LLM in-flight batching, vLLM
    // chunked prefill; Agrawal et al. 2024, Sarathi-Serve, OSDI'24): an engine step of a
    // group of `group` sequences carries their decode tokens and prefill chunks up to the
    // token budget B = max_num_tokens. In the steady state every request brings seq prompt
    // tokens per gen decode tokens, so the budget sustains at most B*gen/(seq + gen)
    // decode tokens a step; the prompt of a request comes in ceil(seq/(B - decode)) chunks,
    // one a step; an average step carries decode*seq/gen prefill tokens, so that share of
    // a chunk's steps carries one. Prefill tokens attend to seq/2 keys (causal, flash) or
    // seq, decode tokens to the mean context seq + gen/2. [T23] Of `ranks` attention
    // replicas that meet at every MoE layer, chunks arriving independently (a Poisson
    // number a step, pre/chunk on average), the busiest carries the expected maximum of
    // `ranks` of them, no more than the budget holds (busiest_chunks; the mean prefill
    // for one replica).
    double gen = py_max(f.gen, 1.0);
    double budget_decode = f.max_tokens * gen / (f.seq + gen);
    double dec = py_min(group, budget_decode);
    double chunks = ceil(f.seq / (f.max_tokens - dec));
    double chunk = f.seq / chunks;
    double pre = dec * f.seq / gen;
    double prefill_keys = attended(m, 0.0, f.seq, f.flash ? 0.5 * f.seq : f.seq);
    double kv_mean = decode_context(m, f);
    double keys = (pre * prefill_keys + dec * kv_mean) / (pre + dec);
    double chunk_keys = (chunk * prefill_keys + dec * kv_mean) / (chunk + dec);
    double mixed = py_min(1.0, pre / chunk);
    double room = py_max(1.0, floor((f.max_tokens - dec) / chunk));
    double busiest = py_max(pre, busiest_chunks(pre / chunk, ranks, room) * chunk);
    double busiest_keys = (busiest * prefill_keys + dec * kv_mean) / (busiest + dec);
    return ContinuousBatch{dec, budget_decode, pre, keys, chunk, chunk_keys, chunks, mixed,
                           busiest, busiest_keys};
}

struct PrefillQueue {
    double rate;
    double wait;
};

PYENGINE_HD inline PrefillQueue prefill_queue(double group, double ttft_own, double work,
                                              double decode_s) {
    // [T25] prompts queue for the prefill work of the steps (DistServe, Zhong et al.,
    // OSDI'24, Sec. 3.1: prefill as an M/D/1 queue, mean TTFT = D + R D^2 / (2 (1 - R D))
    // at R requests/s of D s of work each). Here D = `work`, the time a prompt's chunks
    // add to the steps that carry them; an arriving prompt finds the others of the `group`
    // sequences in flight as the group without it does (the arrival theorem of closed
    // queueing networks: one sequence alone never queues), so the load it meets is
    // rho = R D (group - 1) / group; and R closes Little's law over the group, each
    // sequence TTFT + gen x ITL (`decode_s`) in the system:
    //   group = R (ttft_own + decode_s) + R rho D / (2 (1 - rho)),
    // a quadratic in R with one root where rho < 1. Returns R (requests/s) and the wait.
    double share = (group - 1.0) / group;
    double cycle = ttft_own + decode_s;
    double a2 = share * work * (work - 2.0 * cycle);
    double b2 = 2.0 * (cycle + group * share * work);
    // the root of a2 R^2 + b2 R - 2 group = 0 with rho < 1, in the form without cancellation
    double rate = 4.0 * group / (b2 + sqrt(py_max(0.0, b2 * b2 + 8.0 * a2 * group)));
    double rho = py_min(rate * work * share, 1.0 - 1e-12);
    return PrefillQueue{rate, rho * work / (2.0 * (1.0 - rho))};
}

PYENGINE_HD inline StepTime continuous_step(const double* m, const double* h,
                                            const PlanFields& f, const Precisions& pr,
                                            const LayerStage& layer, const BatchStage& batch,
                                            const MicroBatch& mb) {
    // [T22] decode with a token budget: no separate prefill of every prompt; each pipeline
    // slot is a step of one group (the pp groups keep the pipeline full), ITL = pp average
    // slots. TensorRT-LLM replays CUDA graphs for generation-only steps and launches steps
    // carrying a chunk eagerly. A request's own chunks take TTFT_own = chunks x pp chunk
    // slots, during which its sequence decodes nothing, after waiting for the prefill work
    // of the prompts ahead of it ([T25]): by Little's law the group decodes R gen ITL
    // tokens a step, within the budget's; beyond it requests wait for chunk slots,
    // TTFT = (group - decode) * gen * ITL / decode. The replica's sequences produce their
    // gen tokens in pp * group * gen / decode slots.
    // [T23] With attention data parallel the replicas of an EP group wait for each other
    // at every MoE layer: a step's per-replica work (attention, dense layers, embedding,
    // LM head) lasts as long as the busiest replica's, its experts' as the mean step's.
    double pp = f.pp;
    double gen = py_max(f.gen, 1.0);
    double group = py_max(1.0, floor(batch.seqs_per_replica / pp));
    double ranks = attention_ranks(m, f);
    ContinuousBatch cb = continuous_batch(m, f, group, ranks);
    DecodeStep d = decode_step(m, h, f, pr, mb, cb.decode + cb.prefill / f.cp, cb.keys,
                               cb.decode, f.cuda_graphs ? cb.mixed : 1.0);
    DecodeStep c = decode_step(m, h, f, pr, mb, cb.decode + cb.chunk / f.cp, cb.chunk_keys,
                               cb.decode, 1.0);
    DecodeStep busy = d;
    if (ranks > 1.0) {
        busy = decode_step(m, h, f, pr, mb, cb.decode + cb.busiest / f.cp, cb.busiest_keys,
                           cb.decode, 0.0);
    }
    double wait = (busy.compute - busy.experts) - (d.compute - d.experts);
    double step_cost = h[H_STEP_OVERHEAD];
    double slot = step_slot_s(d, wait, step_cost);
    double itl = pp * slot;
    double chunk_slot = step_slot_s(c, 0.0, step_cost);
    double ttft_own = cb.chunks * pp * chunk_slot;
    // a prompt's prefill work: what its chunks add to steps of the group's decode tokens
    DecodeStep o = decode_step(m, h, f, pr, mb, cb.decode, decode_context(m, f), cb.decode,
                               1.0);
    double decode_slot = step_slot_s(o, 0.0, step_cost);
    double work = cb.chunks * pp * py_max(chunk_slot - decode_slot, 0.0);
    PrefillQueue queue = prefill_queue(group, ttft_own, work, gen * itl);
    double dec = py_min(queue.rate * gen * itl, cb.budget_decode);
    double ttft = py_max(ttft_own + queue.wait, (group - dec) * gen * itl / dec);
    double slots = pp * group * gen / dec;
    double model_flops = (layer.fwd_flops_tok * f.gbs * f.seq
                          + f.gen * f.gbs * layer.dec_flops_tok);
    return StepTime{slots * (d.compute + wait), 0.0, 0.0, slots * d.tp, slots * d.cp, slots * d.ep,
                    slots * d.p2p, 0.0, 0.0, 0.0, slots * d.launch, slots * step_cost,
                    slots * slot, f.gbs * f.gen, model_flops, model_flops, ttft, itl,
                    d.kernels};
}

PYENGINE_HD inline void write_outputs(double* out, const PlanFields& f,
                                      const LayerStage& layer, const SplitStage& split,
                                      const BatchStage& batch, const ParamBytes& pb,
                                      const StageMemories& mems, double overhead,
                                      const StepTime& t, double peak) {
    // [O1] outputs: the fullest stage's memory itemised, every stage kind's total, the
    // step's times, rates and utilisation
    const StageMemory& mem = mems.fullest;
    double n_gpus = batch.n_gpus;
    out[O_N_GPUS] = n_gpus;
    out[O_N_MICRO_BATCHES] = batch.n_micro;
    out[O_LAYERS_FIRST_STAGE] = split.first.layers - split.first.mtp;
    out[O_LAYERS_MIDDLE_STAGE] = split.mid.layers;
    out[O_LAYERS_LAST_STAGE] = split.last.layers - split.last.mtp;
    out[O_CAPACITY_PER_EXPERT] = layer.capacity;
    out[O_DROPPED_FRACTION] = layer.dropped;
    out[O_MEM_WEIGHTS_BYTES] = (mem.dense_params * pb.w_dense + mem.expert_params * pb.w_expert
                                + mem.kept_params * (pb.w_kept - pb.w_dense));
    out[O_MEM_GRADS_BYTES] = mem.dense_params * pb.g_dense + mem.expert_params * pb.g_expert;
    out[O_MEM_OPTIMIZER_BYTES] = (mem.dense_params * pb.o_dense
                                  + mem.expert_params * pb.o_expert);
    out[O_MEM_ACTIVATIONS_BYTES] = mem.activations;
    out[O_MEM_KV_CACHE_BYTES] = mem.kv_cache;
    out[O_MEM_OVERHEAD_BYTES] = overhead;
    out[O_MEM_BUFFERS_BYTES] = mem.buffers;
    out[O_MEM_TOTAL_BYTES] = mem.total;
    out[O_MEM_FIRST_STAGE_BYTES] = mems.first.total;
    out[O_MEM_MIDDLE_STAGE_BYTES] = f.pp > 2.0 ? mems.mid.total : 0.0;
    out[O_MEM_LAST_STAGE_BYTES] = mems.last.total;
    out[O_TIME_COMPUTE_S] = t.compute;
    out[O_TIME_RECOMPUTE_S] = t.recompute;
    out[O_TIME_OFFLOAD_S] = t.offload;
    out[O_TIME_TP_S] = t.tp;
    out[O_TIME_CP_S] = t.cp;
    out[O_TIME_EP_S] = t.ep;
    out[O_TIME_PP_P2P_S] = t.pp_p2p;
    out[O_TIME_PP_BUBBLE_S] = t.pp_bubble;
    out[O_TIME_DP_S] = t.dp;
    out[O_TIME_OPTIMIZER_S] = t.optimizer;
    out[O_TIME_LAUNCH_S] = t.launch;
    out[O_TIME_STEP_OVERHEAD_S] = t.step_overhead;
    out[O_TIME_STEP_S] = t.step;
    out[O_TOKENS_PER_S] = t.tokens / t.step;
    out[O_TOKENS_PER_S_PER_GPU] = t.tokens / t.step / n_gpus;
    out[O_MODEL_FLOPS_PER_STEP] = t.model_flops;
    out[O_MFU] = t.model_flops / (t.step * n_gpus * peak);
    out[O_MODEL_TFLOPS_PER_GPU] = t.model_flops / (t.step * n_gpus) * 1e-12;
    out[O_HW_TFLOPS_PER_GPU] = t.hw_flops / (t.step * n_gpus) * 1e-12;
    out[O_TTFT_S] = t.ttft;
    out[O_TPOT_S] = t.tpot;
    out[O_KERNELS_PER_STEP] = t.kernels;
    out[O_MAX_CONCURRENCY] = f.training ? 0.0 : f.dp * mems.kv_seqs;
}

// Evaluate one plan: fill `out` (indices O_*) and return the feasibility code.
//
// out == nullptr asks for the code only: the timings are skipped. `stages` holds the
// previous plan's stage results; `reuse` says how many of them still hold (0 none; 1
// layer, when the plans differ only in columns >= CACHE_FROM; 2 also split,
// >= CACHE2_FROM; 3 also batch, >= CACHE3_FROM). On return `stages` holds this plan's
// (Python returns them with the code).
PYENGINE_HD inline long long evaluate_plan(const double* m, const double* h, const double* k,
                                           const double* p, double* out, Stages& stages,
                                           int reuse) {
    PlanFields f = plan_fields(p);
    Precisions pr = precisions(h, f);
    if (reuse < 1) {
        stages.layer = layer_stage(m, h, f, pr);
    }
    if (reuse < 2) {
        stages.split = split_stage(m, f);
    }
    if (reuse < 3) {
        stages.batch = batch_stage(m, k, f, stages.layer.code);
    }
    const LayerStage& layer = stages.layer;
    const SplitStage& split = stages.split;
    const BatchStage& batch = stages.batch;
    long long code = batch.code | pipeline_checks(m, f, split, batch.n_micro);
    ParamBytes pb = bytes_per_param(f, pr);
    double usable = h[H_HBM_CAPACITY] * k[K_MEM_FRACTION];
    Activations act = activations(m, f, pr, layer, batch.seqs_per_replica);
    StageMemories mems = stage_memories(m, h, f, pr, act, layer, split, batch, pb, usable);
    if (mems.fullest.total > usable) {
        code |= V_MEMORY;
    }
    if (f.kv_fraction > 0.0 && !f.training && batch.seqs_per_replica > mems.kv_seqs) {
        code |= V_KV_CACHE;
    }
    // every constraint is decided by now: a caller that wants only the code (count and
    // sweep kernels) passes out = nullptr and skips the timings
    if (out == nullptr) {
        return code;
    }
    MicroBatch mb = micro_batch_time(m, h, layer.costs, f, act, split);
    double p2p_one = pipeline_send_s(m, h, f, pr, layer.n_tok);
    StepTime t;
    if (f.training) {
        t = training_step(m, h, f, pr, layer, split, batch, pb, mb, p2p_one);
    } else if (f.decode && f.max_tokens > 0.0) {
        t = continuous_step(m, h, f, pr, layer, batch, mb);
    } else {
        t = inference_step(m, h, f, pr, layer, batch, mb, p2p_one);
    }
    write_outputs(out, f, layer, split, batch, pb, mems, h[H_MEM_OVERHEAD], t, pr.peak);
    return code;
}

}  // namespace pyengine
