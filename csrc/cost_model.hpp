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

#if !defined(__CUDACC_RTC__)
#include <cmath>  // NVRTC: floor, ceil and log2 are builtins, no headers
#endif

#include "schema.h"

namespace pyengine {

// Python's builtins: min(a, b) -> b only if b < a; max(a, b) -> b only if b > a.
PYENGINE_HD inline double py_min(double a, double b) { return b < a ? b : a; }
PYENGINE_HD inline double py_max(double a, double b) { return b > a ? b : a; }

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
};

// stage_params returns (dense, expert) as Python does: `auto [d, e] = stage_params(...)`.
struct StageParams {
    double dense;
    double expert;
};

// Parameters one GPU holds per layer kind, before ZeRO sharding.
struct Holdings {
    double dense_layer;
    double moe_layer;
    double expert_layer;
    double embed_extra;
    double output_extra;
};

// Functions used before their definition (Python resolves names at call time).
PYENGINE_HD inline double mlp_forward_s(const double* m, const double* h, double n_tok,
                                        double ffn, double tp, double sp_div, double rate,
                                        double ab, double wb);
PYENGINE_HD inline double kv_cache_elems_per_gpu(const double* m, double tp);
PYENGINE_HD inline double stage_compute_s(double n_layers, double n_moe, double dense_fwd,
                                          double moe_fwd, double passes, double embed_s,
                                          double output_s);
PYENGINE_HD inline LayerCosts load_costs(const double* cache, int at);
PYENGINE_HD inline void store_costs(double* cache, int at, const LayerCosts& c);
PYENGINE_HD inline double model_forward_flops_per_token(const double* m, double ctx);
PYENGINE_HD inline double recompute_flops_per_token(const double* m, double ctx,
                                                    double recompute, double fwd_flops_tok);

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

PYENGINE_HD inline double gemm_efficiency(double min_dim, const double* h) {
    // [T2] share of the large-GEMM rate a GEMM whose smallest dimension is min_dim
    // attains: saturating, one half at gemm_dim_half (thin GEMMs fill few tiles).
    return min_dim / (min_dim + h[H_GEMM_DIM_HALF]);
}

PYENGINE_HD inline double gemm_s(double flops, double nbytes, double min_dim, double rate,
                                 const double* h) {
    // [T3] one GEMM (or a batch of same-shape GEMMs): roofline at its attainable FLOP/s;
    // `rate` is the large-GEMM rate of its dtype (peak x gemm_eff_max[_fp8]).
    // A GEMM thinner than one row (no tokens routed) is costed as one row: never 0/0.
    return roofline_s(flops, nbytes, rate * gemm_efficiency(py_max(min_dim, 1.0), h),
                      h[H_HBM_BANDWIDTH] * h[H_HBM_EFF]) + h[H_OP_OVERHEAD];
}

PYENGINE_HD inline double memory_bound_s(double nbytes, double n_ops, const double* h) {
    // [T4] elementwise work (norms, residuals, activations, permutes): bandwidth-bound.
    return nbytes / (h[H_HBM_BANDWIDTH] * h[H_HBM_EFF]) + n_ops * h[H_OP_OVERHEAD];
}

PYENGINE_HD inline double group_bandwidth(double stride, double size, const double* h) {
    // [C1] a group of `size` ranks spaced `stride` apart stays inside a node when
    // stride*size <= gpus_per_node; otherwise its ring crosses the inter-node links.
    if (stride * size > h[H_GPUS_PER_NODE]) {
        return h[H_INTER_BW] * h[H_NET_EFF];
    }
    return h[H_INTRA_BW] * h[H_NET_EFF];
}

PYENGINE_HD inline double group_latency(double stride, double size, const double* h) {
    if (stride * size > h[H_GPUS_PER_NODE]) {
        return h[H_INTER_LATENCY];
    }
    return h[H_INTRA_LATENCY];
}

PYENGINE_HD inline double allreduce_s(double nbytes, double size, double stride,
                                      const double* h) {
    // [C2] all-reduce of nbytes per rank: ring 2(g-1)/g bandwidth term, or double binary
    // tree with log-depth latency, whichever is faster (NCCL picks likewise).
    if (size <= 1.0) {
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
    if (size <= 1.0) {
        return 0.0;
    }
    double bw = group_bandwidth(stride, size, h);
    double lat = group_latency(stride, size, h);
    return (size - 1.0) / size * nbytes / bw + (size - 1.0) * lat;
}

PYENGINE_HD inline double alltoall_s(double nbytes, double size, double stride,
                                     const double* h) {
    // [C4] all-to-all of nbytes per rank: (g-1)/g of it leaves the rank.
    return allgather_s(nbytes, size, stride, h);
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

// Forward cost of each layer kind for n_tok query tokens per GPU.
// keys: keys each query attends to (causal flash halves them); kv_len: cached context
// (decode); seqs: sequences in the micro-batch; capacity: expert capacity per router;
// rate: attainable large-GEMM FLOP/s of the compute dtype (attention runs in BF16).
PYENGINE_HD inline LayerCosts layer_costs(const double* m, const double* h, double n_tok,
                                          double keys, double kv_len, bool decode, double seqs,
                                          double tp, double cp, double etp, double ep, bool sp,
                                          bool flash, double capacity, double rate, double ab,
                                          double wb, double kvb) {
    double hid = m[M_HIDDEN];
    double heads_local = m[M_HEADS] / tp;
    double sp_div = sp ? tp : 1.0;
    double rate16 = h[H_PEAK_BF16] * h[H_GEMM_EFF_MAX];

    // [T5] attention projections (QKV + output): 2 * tokens * weights FLOPs, TP-sharded.
    double q_dim = m[M_HEADS] * m[M_QK_HEAD_DIM];
    double o_dim = m[M_HEADS] * m[M_V_HEAD_DIM];
    double kv_dim = m[M_KV_HEADS] * (m[M_QK_HEAD_DIM] + m[M_V_HEAD_DIM]);
    double proj_flops = 2.0 * n_tok * m[M_ATTN_GEMM_PARAMS] / tp;
    double proj_bytes = (m[M_ATTN_GEMM_PARAMS] / tp * wb
                         + n_tok * ab * (2.0 * hid + (q_dim + kv_dim + 2.0 * o_dim) / tp));
    double proj_s = gemm_s(proj_flops, proj_bytes, py_min(n_tok, hid / tp), rate, h)
                    + h[H_OP_OVERHEAD];

    // [T6] attention core: QK^T and AV, 2*tokens*keys*heads*(d_qk + d_v) FLOPs in bf16.
    // Flash streams K/V and writes only O; unfused attention also moves the score
    // matrix (write, softmax read+write, read for AV: 8 B/score, +5 with dropout).
    // Decode reads the cached K/V of every sequence.
    double core_flops = 2.0 * n_tok * keys * heads_local * (m[M_QK_HEAD_DIM] + m[M_V_HEAD_DIM]);
    double core_bytes = n_tok * ab * (q_dim + 2.0 * o_dim) / tp;
    if (decode) {
        core_bytes += seqs * kv_len * kv_cache_elems_per_gpu(m, tp) * kvb / cp;
    } else {
        core_bytes += n_tok * ab * kv_dim / tp;
    }
    if (!flash) {
        core_bytes += n_tok * keys * heads_local * (8.0 + 5.0 * m[M_DROPOUT]);
    }
    double attn_core_s = gemm_s(core_flops, core_bytes, py_min(n_tok, m[M_QK_HEAD_DIM]), rate16,
                                h);

    // [T7] attention-side elementwise: norm (r+w), residual add (2r+w), rope, dropout.
    double attn_elem_s = memory_bound_s(n_tok * hid * ab * (5.0 + 2.0 * m[M_DROPOUT]) / sp_div
                                        + n_tok * ab * q_dim / tp, 3.0, h);
    double attn_s = proj_s + attn_core_s + attn_elem_s;

    // [T8] dense MLP: g = 3 matrices if gated else 2; GEMM traffic x + g*f + y;
    // activation function reads and writes g*f.
    double mlp_s = mlp_forward_s(m, h, n_tok, m[M_FFN], tp, sp_div, rate, ab, wb);

    // [T9] MoE MLP: router GEMM, permute/unpermute, routed experts, shared experts.
    // Per GPU the experts process E*capacity/tp token-slots (conservation over the
    // folded expert group), m_e = capacity*ep*etp/tp slots per local expert, each
    // expert sharded over etp. Thin m_e makes the expert GEMMs memory-bound by itself.
    double moe_s = 0.0;
    double ep_s = 0.0;
    if (m[M_EXPERTS] > 0.0) {
        double gated = m[M_GATED];
        double n_mat = 2.0 + gated;
        double experts_local = m[M_EXPERTS] / ep;
        double slots = m[M_EXPERTS] * capacity / tp;
        double m_e = capacity * ep * etp / tp;
        double router_s = gemm_s(2.0 * n_tok / sp_div * hid * m[M_EXPERTS],
                                 n_tok / sp_div * (hid * ab + m[M_EXPERTS] * 4.0),
                                 py_min(n_tok / sp_div, m[M_EXPERTS]), rate16, h);
        double permute_s = memory_bound_s(4.0 * slots * hid * ab, 4.0, h);
        double expert_flops = 2.0 * experts_local * m_e * hid * m[M_EXPERT_FFN] * n_mat / etp;
        double expert_bytes = experts_local * (hid * m[M_EXPERT_FFN] * n_mat / etp * wb
                                               + m_e * ab * (2.0 * hid
                                                             + 2.0 * n_mat * m[M_EXPERT_FFN]
                                                                   / etp));
        double experts_s = (gemm_s(expert_flops, expert_bytes,
                                   py_min(m_e, m[M_EXPERT_FFN] / etp), rate, h)
                            + 2.0 * h[H_OP_OVERHEAD]);
        double shared_s = 0.0;
        if (m[M_SHARED_FFN] > 0.0) {
            shared_s = mlp_forward_s(m, h, n_tok, m[M_SHARED_FFN], tp, sp_div, rate, ab, wb);
        }
        moe_s = router_s + permute_s + experts_s + shared_s;
        // [C6] expert dispatch + combine: two all-to-alls of the slots over the EP group
        // (stride etp); with etp > 1 the slots are also gathered / scattered over ETP.
        double slot_bytes = slots * hid * ab;
        ep_s = (2.0 * alltoall_s(slot_bytes, ep, etp, h)
                + 2.0 * allgather_s(slot_bytes, etp, 1.0, h));
    }

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
    // overlapped with the attention core; only the excess is exposed. Decode keeps K/V in
    // place and merges partial softmax results.
    double cp_s = 0.0;
    if (cp > 1.0) {
        if (decode) {
            cp_s = allreduce_s(n_tok * o_dim / tp * ab, cp, tp, h);
        } else {
            double ring_s = (cp - 1.0) * p2p_s(n_tok * kv_dim / tp * ab, tp, h);
            cp_s = py_max(0.0, ring_s - attn_core_s);
        }
    }

    // [T10] embedding lookup (first stage) and output layer + loss (last stage).
    double embed_s = memory_bound_s(2.0 * n_tok * hid * ab / sp_div, 1.0, h);
    double out_tok = decode ? seqs : n_tok;
    double output_s = (gemm_s(2.0 * out_tok * hid * m[M_VOCAB] / tp,
                              hid * m[M_VOCAB] / tp * wb + out_tok * m[M_VOCAB] / tp * 4.0,
                              py_min(out_tok, hid), rate, h)
                       + memory_bound_s(2.0 * out_tok * m[M_VOCAB] / tp * 4.0, 2.0, h));
    return LayerCosts{attn_s, attn_core_s, mlp_s, moe_s, tp_s, cp_s, ep_s, embed_s, output_s};
}

PYENGINE_HD inline double mlp_forward_s(const double* m, const double* h, double n_tok,
                                        double ffn, double tp, double sp_div, double rate,
                                        double ab, double wb) {
    // [T8] (see layer_costs) a dense or shared-expert MLP of intermediate size ffn.
    double n_mat = 2.0 + m[M_GATED];
    double hid = m[M_HIDDEN];
    double flops = 2.0 * n_tok * hid * ffn * n_mat / tp;
    double nbytes = hid * ffn * n_mat / tp * wb + n_tok * ab * (2.0 * hid + n_mat * ffn / tp);
    double elem_bytes = n_tok * ab * n_mat * ffn / tp
                        + n_tok * hid * ab * (5.0 + m[M_DROPOUT]) / sp_div;
    return (gemm_s(flops, nbytes, py_min(n_tok, ffn / tp), rate, h) + h[H_OP_OVERHEAD]
            + memory_bound_s(elem_bytes, 3.0, h));
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

// --------------------------------------------------------------------------- memory

// Activation bytes one layer keeps for backward, for n_tok tokens on one GPU.
//
// [M3] Korthikanti et al. 2022, Sec. 4 / Table 2: a GPT layer keeps sbh(34 + 5as/h)
// bytes with 16-bit activations and 1-byte dropout masks (the term-by-term accounting
// and its generalisation to GQA, MLA, flash attention, gated MLPs, TP/SP, recompute and
// MoE are written out in reference.layer_activation_bytes).
PYENGINE_HD inline double layer_activation_bytes(const double* m, double n_tok, double keys,
                                                 double tp, bool sp, bool flash,
                                                 double recompute, bool moe_layer,
                                                 double capacity, double etp) {
    double hid = m[M_HIDDEN];
    double sp_div = sp ? tp : 1.0;
    if (recompute == 2.0) {
        return 2.0 * n_tok * hid / sp_div;
    }
    double dropout = m[M_DROPOUT];
    double q_dim = m[M_HEADS] * m[M_QK_HEAD_DIM];
    double k_dim = m[M_KV_HEADS] * m[M_QK_HEAD_DIM];
    double v_dim = m[M_KV_HEADS] * m[M_V_HEAD_DIM];
    double o_dim = m[M_HEADS] * m[M_V_HEAD_DIM];
    // non-tensor-parallel parts: norm inputs, QKV/fc inputs (2nh each), dropout masks
    double replicated = n_tok * hid * (8.0 + 2.0 * dropout);
    double attn_parallel = n_tok * (2.0 * q_dim + 2.0 * k_dim + 2.0 * v_dim + 2.0 * o_dim);
    double scores;
    if (flash) {
        scores = 4.0 * n_tok * m[M_HEADS];
    } else {
        scores = n_tok * keys * m[M_HEADS] * (2.0 + 3.0 * dropout);
        if (recompute == 1.0) {
            scores = 0.0;
        }
    }
    double mlp_width = m[M_GATED] > 0.0 ? 6.0 : 4.0;
    double mlp_parallel;
    if (moe_layer) {
        // slots kept on this GPU: E*capacity/tp * etp (each ETP rank keeps whole inputs)
        double slots = m[M_EXPERTS] * capacity / tp * etp;
        mlp_parallel = (slots * (2.0 * hid + mlp_width * m[M_EXPERT_FFN] / etp) * tp
                        + n_tok * mlp_width * m[M_SHARED_FFN]);
        replicated += 4.0 * n_tok * m[M_EXPERTS];
    } else {
        mlp_parallel = n_tok * mlp_width * m[M_FFN];
    }
    return replicated / sp_div + (attn_parallel + scores + mlp_parallel) / tp;
}

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
    return Holdings{dense_layer, moe_layer, expert_layer, embed_extra, output_extra};
}

// (dense, expert) parameters one GPU of a stage holds before ZeRO sharding: its
// layers' holdings, plus the input embedding on the first stage and the output layer
// on the last.
PYENGINE_HD inline StageParams stage_params(double n_layers, double n_moe, bool first, bool last,
                                            const Holdings& held) {
    double dense = (n_layers - n_moe) * held.dense_layer + n_moe * held.moe_layer;
    if (first) {
        dense += held.embed_extra;
    }
    if (last) {
        dense += held.output_extra;
    }
    return StageParams{dense, n_moe * held.expert_layer};
}

PYENGINE_HD inline double zero_shard(double shard, double zero, double stage) {
    // [M2] ZeRO stage >= 1 shards optimizer states, >= 2 gradients, 3 parameters
    return zero >= stage ? shard : 1.0;
}

// --------------------------------------------------------------------------- the plan

// Evaluate one plan: fill `out` (indices O_*) and return the feasibility code.
//
// `cache` (length N_CACHE) receives values that depend on leading plan columns only;
// `reuse` says which may be read back instead of computed: 0 none; 1 the per-layer
// costs, valid when the previous call's plan differed only in columns >= CACHE_FROM;
// 2 also the stage split and holdings, valid when it differed only in columns
// >= CACHE2_FROM; 3 also the micro-batch count and the checks before vpp, valid when it
// differed only in columns >= CACHE3_FROM (space kernels know which column changed from
// their odometer). Every cache slot is written before the code-only return.
// out = nullptr asks for the code only: the timings are skipped.
PYENGINE_HD inline long long evaluate_plan(const double* m, const double* h, const double* k,
                                           const double* p, double* out, double* cache,
                                           int reuse) {
    // [P1] plan fields
    double mode = p[P_MODE];
    bool training = mode == 0.0;
    bool decode = mode == 2.0;
    bool fp8 = p[P_DTYPE] == 1.0;
    double gbs = p[P_GLOBAL_BATCH];
    double mbs = p[P_MICRO_BATCH];
    double seq = p[P_SEQ_LEN];
    double gen = p[P_GEN_TOKENS];
    double tp = p[P_TP];
    double pp = p[P_PP];
    double dp = p[P_DP];
    double cp = p[P_CP];
    double ep = p[P_EP];
    double etp = p[P_ETP] > 0.0 ? p[P_ETP] : tp;
    double vpp = p[P_VPP];
    double zero = training ? p[P_ZERO] : 0.0;
    double recompute = training ? p[P_RECOMPUTE] : 0.0;
    bool sp = p[P_SEQUENCE_PARALLEL] > 0.0 && tp > 1.0;
    double cf = p[P_CAPACITY_FACTOR];
    bool flash = p[P_FLASH_ATTENTION] > 0.0;
    double grad_bytes = p[P_GRAD_DTYPE] == 1.0 ? 2.0 : 4.0;
    bool tp_overlap = p[P_TP_OVERLAP] > 0.0;

    // [P2] precisions: bf16 weights and activations in training (FP8 GEMMs keep bf16
    // master copies); FP8 inference stores weights and the KV cache in one byte.
    double ab = 2.0;
    double wb = fp8 && !training ? 1.0 : 2.0;
    double kvb = fp8 && !training ? 1.0 : 2.0;
    double peak = h[H_PEAK_BF16];
    double rate = peak * h[H_GEMM_EFF_MAX];
    if (fp8 && h[H_PEAK_FP8] > 0.0) {
        peak = h[H_PEAK_FP8];
        rate = peak * h[H_GEMM_EFF_MAX_FP8];
    }

    double L = m[M_LAYERS];
    bool is_moe = m[M_EXPERTS] > 0.0;
    double n_gpus = tp * cp * pp * dp;
    double edp = tp * cp * dp / (etp * ep);

    // [F1] feasibility: every violated constraint sets its bit. The checks on columns
    // before CACHE_FROM (heads, FFN, experts, sequence) are cached with the layer costs,
    // those on columns before CACHE3_FROM (EP folding, batch, GPU count) with the
    // micro-batch count; only the pipeline-depth checks involve vpp.
    long long code;
    double seqs_per_replica;
    double n_micro;
    if (reuse >= 3) {
        code = (long long)cache[24];
        seqs_per_replica = cache[25];
        n_micro = cache[26];
    } else {
        if (reuse) {
            code = (long long)cache[11];
        } else {
            code = 0;
            if (!divides(tp, m[M_HEADS])) {
                code |= V_TP_HEADS;
            }
            if (m[M_MLA] == 0.0 && !divides(tp, m[M_KV_HEADS])
                    && !divides(m[M_KV_HEADS], tp)) {
                code |= V_TP_KV_HEADS;
            }
            if (!divides(tp, m[M_FFN])) {
                code |= V_TP_FFN;
            }
            if (is_moe && !divides(etp, m[M_EXPERT_FFN])) {
                code |= V_ETP_FFN;
            }
            if ((is_moe && !divides(ep, m[M_EXPERTS])) || (!is_moe && ep > 1.0)) {
                code |= V_EP_EXPERTS;
            }
            if (cp > 1.0 && !divides(2.0 * cp, seq)) {
                code |= V_CP_SEQ;
            }
            if (sp && !divides(cp * tp, seq)) {
                code |= V_SP_SEQ;
            }
            cache[11] = (double)code;
        }
        if (is_moe && !divides(etp * ep, tp * cp * dp)) {
            code |= V_EP_FOLD;
        }
        seqs_per_replica = gbs / dp;
        n_micro = py_max(1.0, floor(seqs_per_replica / mbs));
        if (!divides(dp * mbs, gbs)) {
            code |= V_BATCH;
        }
        if (k[K_GPUS_EXACT] > 0.0 && n_gpus != k[K_GPUS_EXACT]) {
            code |= V_GPUS_EXACT;
        }
        if (k[K_GPUS_MAX] > 0.0 && n_gpus > k[K_GPUS_MAX]) {
            code |= V_GPUS_MAX;
        }
        cache[24] = (double)code;
        cache[25] = seqs_per_replica;
        cache[26] = n_micro;
    }
    if (pp * vpp > L) {
        code |= V_PP_LAYERS;
    }
    if (vpp > 1.0 && (pp == 1.0 || !divides(pp, n_micro))) {
        code |= V_VPP_SCHEDULE;
    }

    // [S1] pipeline split: layers as even as possible; the remainder goes to the middle
    // stages so that the first and last (holding the embedding and the output layer)
    // get fewer (Llama 3 405B: 126 layers on 16 stages -> 7, 8 x 14, 7).
    double layers_first;
    double layers_last;
    double layers_mid;
    double moe_first;
    double moe_last;
    double moe_mid;
    if (reuse >= 2) {
        layers_first = cache[12];
        layers_last = cache[13];
        layers_mid = cache[14];
        moe_first = cache[15];
        moe_last = cache[16];
        moe_mid = cache[17];
    } else {
        double base = floor(L / pp);
        double rem = L - base * pp;
        double mid_extra = py_min(rem, py_max(pp - 2.0, 0.0));
        layers_first = base + (rem - mid_extra);
        layers_last = pp > 1.0 ? base : layers_first;
        layers_mid = pp > 2.0 ? base + (mid_extra > 0.0 ? 1.0 : 0.0) : 0.0;
        // [S2] MoE layers per stage: first stage [0, f), last stage [L-l, L), and the
        // middle stage just before the last, which holds the most MoE layers when dense
        // ones lead.
        moe_first = moe_layers_in(0.0, layers_first, m);
        moe_last = pp > 1.0 ? moe_layers_in(L - layers_last, L, m) : moe_first;
        moe_mid = moe_layers_in(L - layers_last - layers_mid, L - layers_last, m);
        cache[12] = layers_first;
        cache[13] = layers_last;
        cache[14] = layers_mid;
        cache[15] = moe_first;
        cache[16] = moe_last;
        cache[17] = moe_mid;
    }

    // [S3] tokens: a training/prefill pass of a micro-batch puts mbs*seq/cp tokens on
    // each GPU; a decode step puts one token per sequence. Flash skips the masked half
    // of causal attention; unfused attention computes every score.
    double n_tok = mbs * seq / cp;
    double keys = flash ? seq * 0.5 : seq;
    double ctx = decode ? seq + gen : seq;

    // [S4] expert capacity (DESIGN.md): capacity = ceil(k * T * cf / E) per expert for the
    // T tokens one router rank sees; balanced routing drops what exceeds it.
    double capacity = 0.0;
    double dropped = 0.0;
    if (is_moe) {
        if (reuse) {
            capacity = cache[27];
            dropped = cache[28];
        } else {
            double t_router = n_tok;
            capacity = ceil(m[M_TOP_K] * t_router * cf / m[M_EXPERTS]);
            dropped = py_max(0.0, 1.0 - m[M_EXPERTS] * capacity / (m[M_TOP_K] * t_router));
            cache[27] = capacity;
            cache[28] = dropped;
        }
        if (capacity <= 0.0) {
            code |= V_MOE_NO_CAPACITY;
        }
    }

    // [T11] per-layer forward costs of one micro-batch pass, and model FLOPs per token of
    // a pass and of a decode step (at the mean context seq + gen/2).
    double kv_mean = seq + 0.5 * gen;
    LayerCosts c;
    double fwd_flops_tok;
    double dec_flops_tok;
    if (reuse) {
        c = load_costs(cache, 0);
        fwd_flops_tok = cache[9];
        dec_flops_tok = cache[10];
    } else {
        c = layer_costs(m, h, n_tok, keys, 0.0, false, mbs, tp, cp, etp, ep, sp, flash,
                        capacity, rate, ab, wb, kvb);
        fwd_flops_tok = model_forward_flops_per_token(m, seq);
        dec_flops_tok = 0.0;
        if (decode) {
            dec_flops_tok = model_forward_flops_per_token(m, kv_mean);
        }
        store_costs(cache, 0, c);
        cache[9] = fwd_flops_tok;
        cache[10] = dec_flops_tok;
    }
    // [M1] parameters one GPU holds, per layer kind and per stage
    double d_first;
    double e_first;
    double d_last;
    double e_last;
    double d_mid;
    double e_mid;
    if (reuse >= 2) {
        d_first = cache[18];
        e_first = cache[19];
        d_last = cache[20];
        e_last = cache[21];
        d_mid = cache[22];
        e_mid = cache[23];
    } else {
        Holdings held = layer_holdings(m, pp, tp, etp, ep);
        StageParams first_stage = stage_params(layers_first, moe_first, true, pp == 1.0, held);
        StageParams last_stage = stage_params(layers_last, moe_last, pp == 1.0, true, held);
        StageParams mid_stage = stage_params(layers_mid, moe_mid, false, false, held);
        d_first = first_stage.dense;
        e_first = first_stage.expert;
        d_last = last_stage.dense;
        e_last = last_stage.expert;
        d_mid = mid_stage.dense;
        e_mid = mid_stage.expert;
        cache[18] = d_first;
        cache[19] = e_first;
        cache[20] = d_last;
        cache[21] = e_last;
        cache[22] = d_mid;
        cache[23] = e_mid;
    }

    // [M2] bytes per parameter held (ZeRO paper: 2 + 2 + K, K = 12 for Adam's fp32 master
    // weights, m and v), each term divided by its ZeRO shard: DP*CP ranks for dense
    // parameters, EDP for expert parameters. Inference holds the weights only.
    double dense_shard = dp * cp;
    double expert_shard = edp;
    double w_dense = wb / zero_shard(dense_shard, zero, 3.0);
    double w_expert = wb / zero_shard(expert_shard, zero, 3.0);
    double g_dense = 0.0;
    double g_expert = 0.0;
    double o_dense = 0.0;
    double o_expert = 0.0;
    if (training) {
        g_dense = grad_bytes / zero_shard(dense_shard, zero, 2.0);
        g_expert = grad_bytes / zero_shard(expert_shard, zero, 2.0);
        o_dense = 12.0 / zero_shard(dense_shard, zero, 1.0);
        o_expert = 12.0 / zero_shard(expert_shard, zero, 1.0);
    }

    // [M5] in-flight micro-batches under 1F1B: stage i holds min(m, p - i); interleaving
    // multiplies the first stage's by 1 + (p-1)/(p*v) (Korthikanti Sec. 4.2.3).
    double inflight_first = py_min(n_micro, pp);
    if (vpp > 1.0) {
        inflight_first = inflight_first * (1.0 + (pp - 1.0) / (pp * vpp));
    }
    double inflight_mid = py_min(n_micro, py_max(pp - 1.0, 1.0));
    double act_dense = layer_activation_bytes(m, n_tok, seq, tp, sp, flash, recompute, false,
                                              capacity, etp);
    double act_moe = layer_activation_bytes(m, n_tok, seq, tp, sp, flash, recompute, true,
                                            capacity, etp);
    // [M6] logits kept in fp32 for the loss on the last stage (one micro-batch at a time)
    double logits_bytes = n_tok * m[M_VOCAB] / tp * 4.0;

    double act_first;
    double act_last;
    double act_mid;
    if (training) {
        act_first = inflight_first * ((layers_first - moe_first) * act_dense
                                      + moe_first * act_moe
                                      + 2.0 * n_tok * m[M_HIDDEN] / (sp ? tp : 1.0));
        act_last = (layers_last - moe_last) * act_dense + moe_last * act_moe + logits_bytes;
        if (pp == 1.0) {
            act_first = act_first + logits_bytes;
            act_last = act_first;
        }
        act_mid = inflight_mid * ((layers_mid - moe_mid) * act_dense + moe_mid * act_moe);
    } else {
        // [M8] inference keeps no activations for backward: the working set of one layer
        // (input, QKV, MLP hidden, scores without flash) plus the last token's logits.
        double act_inf = ab * n_tok * (4.0 * m[M_HIDDEN] + (2.0 + m[M_GATED])
                                       * py_max(m[M_FFN], m[M_EXPERT_FFN]) / tp);
        if (!flash) {
            act_inf += ab * n_tok * seq * m[M_HEADS] / tp;
        }
        act_inf += mbs * m[M_VOCAB] / tp * 4.0;
        act_first = act_inf;
        act_last = act_inf;
        act_mid = act_inf;
    }

    // [M7] KV cache (inference): sequences per replica x context x layers on the stage x
    // values per token and layer on this GPU; CP shards the context.
    if (!reuse) {
        cache[29] = kv_cache_elems_per_gpu(m, tp);
    }
    double kv_tok = cache[29] * kvb * seqs_per_replica * ctx / cp;
    double kv_first = 0.0;
    double kv_last = 0.0;
    double kv_mid = 0.0;
    if (!training) {
        kv_first = kv_tok * layers_first;
        kv_last = kv_tok * layers_last;
        kv_mid = kv_tok * layers_mid;
    }

    // [M4] memory of each stage's GPU; the fullest one is itemised
    double per_dense = w_dense + g_dense + o_dense;
    double per_expert = w_expert + g_expert + o_expert;
    double overhead = h[H_MEM_OVERHEAD];
    double mem_first = d_first * per_dense + e_first * per_expert + act_first + kv_first + overhead;
    double mem_last = d_last * per_dense + e_last * per_expert + act_last + kv_last + overhead;
    double mem_mid = d_mid * per_dense + e_mid * per_expert + act_mid + kv_mid + overhead;
    double d_full = d_first;
    double e_full = e_first;
    double act_full = act_first;
    double kv_full = kv_first;
    double mem_total = mem_first;
    if (mem_last > mem_total) {
        d_full = d_last;
        e_full = e_last;
        act_full = act_last;
        kv_full = kv_last;
        mem_total = mem_last;
    }
    if (mem_mid > mem_total) {
        d_full = d_mid;
        e_full = e_mid;
        act_full = act_mid;
        kv_full = kv_mid;
        mem_total = mem_mid;
    }
    if (mem_total > h[H_HBM_CAPACITY] * k[K_MEM_FRACTION]) {
        code |= V_MEMORY;
    }
    // [F1] every constraint is decided by now: a caller that wants only the code passes
    // out = nullptr and skips the timings (count and sweep kernels; the cached values
    // above are all filled, so a later call may reuse them).
    if (out == nullptr) {
        return code;
    }

    out[O_MEM_WEIGHTS_BYTES] = d_full * w_dense + e_full * w_expert;
    out[O_MEM_GRADS_BYTES] = d_full * g_dense + e_full * g_expert;
    out[O_MEM_OPTIMIZER_BYTES] = d_full * o_dense + e_full * o_expert;
    out[O_MEM_ACTIVATIONS_BYTES] = act_full;
    out[O_MEM_KV_CACHE_BYTES] = kv_full;
    out[O_MEM_OVERHEAD_BYTES] = overhead;
    out[O_MEM_TOTAL_BYTES] = mem_total;

    double dense_fwd = c.attn_s + c.mlp_s;
    double moe_fwd = c.attn_s + c.moe_s;
    // [T12] training: backward = 2x forward FLOPs and traffic (data and weight gradients);
    // full recompute repeats each layer's forward, selective only the attention core.
    double passes = training ? 3.0 : 1.0;
    double comm_passes = training ? 2.0 : 1.0;
    double recompute_layer = 0.0;
    if (recompute == 2.0) {
        recompute_layer = 1.0;
    }
    double recompute_core = recompute == 1.0 ? c.attn_core_s : 0.0;

    // [T13] per-micro-batch time of each stage kind; the slowest one paces the pipeline.
    double first_compute = stage_compute_s(layers_first, moe_first, dense_fwd, moe_fwd, passes,
                                           c.embed_s, pp == 1.0 ? c.output_s : 0.0);
    double last_compute = stage_compute_s(layers_last, moe_last, dense_fwd, moe_fwd, passes,
                                          pp == 1.0 ? c.embed_s : 0.0, c.output_s);
    double mid_compute = stage_compute_s(layers_mid, moe_mid, dense_fwd, moe_fwd, passes, 0.0,
                                         0.0);
    double first_re = layers_first * recompute_core + recompute_layer * (
        (layers_first - moe_first) * dense_fwd + moe_first * moe_fwd);
    double last_re = layers_last * recompute_core + recompute_layer * (
        (layers_last - moe_last) * dense_fwd + moe_last * moe_fwd);
    double mid_re = layers_mid * recompute_core + recompute_layer * (
        (layers_mid - moe_mid) * dense_fwd + moe_mid * moe_fwd);
    // [C11] TP communication overlap (tp_overlap: Megatron/Transformer Engine userbuffers)
    // splits each collective into chunks pipelined with the GEMMs it feeds: only what
    // exceeds the layer's GEMM time stays exposed.
    double tp_dense = c.tp_s;
    double tp_moe = c.tp_s;
    if (tp_overlap) {
        tp_dense = py_max(0.0, c.tp_s - (c.attn_s - c.attn_core_s + c.mlp_s));
        tp_moe = py_max(0.0, c.tp_s - (c.attn_s - c.attn_core_s + c.moe_s));
    }
    double first_comm = comm_passes * ((layers_first - moe_first) * tp_dense
                                       + moe_first * tp_moe
                                       + layers_first * c.cp_s + moe_first * c.ep_s);
    double last_comm = comm_passes * ((layers_last - moe_last) * tp_dense + moe_last * tp_moe
                                      + layers_last * c.cp_s + moe_last * c.ep_s);
    double mid_comm = comm_passes * ((layers_mid - moe_mid) * tp_dense + moe_mid * tp_moe
                                     + layers_mid * c.cp_s + moe_mid * c.ep_s);
    double first_total = first_compute + first_re + first_comm;
    double last_total = last_compute + last_re + last_comm;
    double mid_total = mid_compute + mid_re + mid_comm;
    // pick the slowest stage, and keep its itemisation
    double mb_s = first_total;
    double mb_compute = first_compute;
    double mb_re = first_re;
    double n_layers_slow = layers_first;
    double n_moe_slow = moe_first;
    if (last_total > mb_s) {
        mb_s = last_total;
        mb_compute = last_compute;
        mb_re = last_re;
        n_layers_slow = layers_last;
        n_moe_slow = moe_last;
    }
    if (mid_total > mb_s) {
        mb_s = mid_total;
        mb_compute = mid_compute;
        mb_re = mid_re;
        n_layers_slow = layers_mid;
        n_moe_slow = moe_mid;
    }
    double mb_tp = comm_passes * ((n_layers_slow - n_moe_slow) * tp_dense
                                  + n_moe_slow * tp_moe);
    double mb_cp = comm_passes * n_layers_slow * c.cp_s;
    double mb_ep = comm_passes * n_moe_slow * c.ep_s;

    // [C9] pipeline: one activation (/t with SP) per micro-batch per stage boundary and
    // direction, vpp times with interleaving; PP ranks are tp*cp*dp apart.
    double pp_stride = tp * cp * dp;
    double p2p_one = p2p_s(n_tok * m[M_HIDDEN] * ab / (sp ? tp : 1.0), pp_stride, h);
    if (pp <= 1.0) {
        p2p_one = 0.0;
    }


    // [M4]/[T14] the slowest stage's parameters drive DP traffic and the optimizer step;
    // take the largest stage holding.
    double d_max = py_max(d_first, py_max(d_last, d_mid));
    double e_max = py_max(e_first, py_max(e_last, e_mid));

    double step_s;
    double tokens;
    double model_flops;
    double hw_flops;
    double ttft;
    double tpot;
    if (training) {
        // [T16] step = m micro-batches of the slowest stage + bubble (p-1)/v of them
        // + pipeline sends + exposed DP traffic + optimizer.
        double bubble_s = (pp - 1.0) / vpp * mb_s;
        double p2p_total = 2.0 * n_micro * vpp * p2p_one;
        // [C10] gradients: all-reduce (ZeRO 0) or reduce-scatter + parameter all-gather
        // (ZeRO >= 1, distributed optimizer) over DP*CP (stride tp) for dense and EDP
        // (stride etp*ep) for expert parameters. The gradient reduction overlaps the last
        // micro-batch's backward, the parameter all-gather the next step's first forward;
        // the excess is exposed. ZeRO-3 also gathers parameters in every fwd and bwd.
        double fwd_mb = mb_compute / 3.0;
        double bwd_mb = mb_compute - fwd_mb + mb_re;
        double gather_dp = 0.0;
        double reduce_dp;
        if (zero == 0.0) {
            reduce_dp = (allreduce_s(d_max * grad_bytes, dense_shard, tp, h)
                         + allreduce_s(e_max * grad_bytes, expert_shard, etp * ep, h));
        } else {
            reduce_dp = (allgather_s(d_max * grad_bytes, dense_shard, tp, h)
                         + allgather_s(e_max * grad_bytes, expert_shard, etp * ep, h));
            gather_dp = (allgather_s(d_max * wb, dense_shard, tp, h)
                         + allgather_s(e_max * wb, expert_shard, etp * ep, h));
        }
        double dp_s = py_max(0.0, reduce_dp - bwd_mb) + py_max(0.0, gather_dp - fwd_mb);
        if (zero == 3.0) {
            double gather_s = (allgather_s(d_max * wb, dense_shard, tp, h)
                               + allgather_s(e_max * wb, expert_shard, etp * ep, h));
            dp_s += n_micro * py_max(0.0, 2.0 * gather_s - mb_compute);
        }
        // [T14] optimizer: Adam reads and writes fp32 master weights and both moments,
        // reads the gradient and writes the bf16 weight, for the parameters it owns.
        double opt_params = (d_max / zero_shard(dense_shard, zero, 1.0)
                             + e_max / zero_shard(expert_shard, zero, 1.0));
        double opt_s = memory_bound_s(opt_params * (24.0 + grad_bytes + wb), 4.0, h);
        step_s = n_micro * mb_s + bubble_s + p2p_total + dp_s + opt_s;
        tokens = gbs * seq;
        model_flops = 3.0 * fwd_flops_tok * tokens;
        hw_flops = model_flops + tokens * recompute_flops_per_token(m, seq, recompute,
                                                                    fwd_flops_tok);
        out[O_TIME_COMPUTE_S] = n_micro * mb_compute;
        out[O_TIME_RECOMPUTE_S] = n_micro * mb_re;
        out[O_TIME_TP_S] = n_micro * mb_tp;
        out[O_TIME_CP_S] = n_micro * mb_cp;
        out[O_TIME_EP_S] = n_micro * mb_ep;
        out[O_TIME_PP_P2P_S] = p2p_total;
        out[O_TIME_PP_BUBBLE_S] = bubble_s;
        out[O_TIME_DP_S] = dp_s;
        out[O_TIME_OPTIMIZER_S] = opt_s;
        ttft = 0.0;
        tpot = 0.0;
    } else {
        // [T17] inference. Prefill: the replica's prompts flow through the pipeline in
        // n_micro micro-batches, (n_micro + p - 1) slowest-stage times (TTFT). Decode
        // (continuous batching): each step advances every sequence of the replica by one
        // token, in p groups that keep the pipeline full, at the mean context
        // seq + gen/2: TPOT = p x one group's slowest-stage time.
        double fill = n_micro + pp - 1.0;
        ttft = fill * (mb_s + p2p_one);
        double t_compute = n_micro * mb_compute;
        double t_tp = n_micro * mb_tp;
        double t_cp = n_micro * mb_cp;
        double t_ep = n_micro * mb_ep;
        double t_p2p = fill * p2p_one;
        double bubble_s = (pp - 1.0) * mb_s;
        model_flops = fwd_flops_tok * gbs * seq;
        tpot = 0.0;
        if (decode) {
            double group = py_max(1.0, floor(seqs_per_replica / pp));
            double d_cap = 0.0;
            if (is_moe) {
                d_cap = ceil(m[M_TOP_K] * group * cf / m[M_EXPERTS]);
            }
            LayerCosts dc = layer_costs(m, h, group, kv_mean, kv_mean, true, group, tp, cp, etp,
                                        ep, false, flash, d_cap, rate, ab, wb, kvb);
            double n_l = n_layers_slow;
            double n_mo = n_moe_slow;
            double dec_compute = ((n_l - n_mo) * (dc.attn_s + dc.mlp_s)
                                  + n_mo * (dc.attn_s + dc.moe_s)
                                  + dc.embed_s + dc.output_s);
            double dec_tp = n_l * dc.tp_s;
            double dec_cp = n_l * dc.cp_s;
            double dec_ep = n_mo * dc.ep_s;
            double dec_p2p = 0.0;
            if (pp > 1.0) {
                dec_p2p = p2p_s(group * m[M_HIDDEN] * ab, pp_stride, h);
            }
            tpot = pp * (dec_compute + dec_tp + dec_cp + dec_ep + dec_p2p);
            t_compute += gen * pp * dec_compute;
            t_tp += gen * pp * dec_tp;
            t_cp += gen * pp * dec_cp;
            t_ep += gen * pp * dec_ep;
            t_p2p += gen * pp * dec_p2p;
            model_flops += gen * gbs * dec_flops_tok;
        }
        step_s = t_compute + t_tp + t_cp + t_ep + t_p2p + bubble_s;
        out[O_TIME_COMPUTE_S] = t_compute;
        out[O_TIME_RECOMPUTE_S] = 0.0;
        out[O_TIME_TP_S] = t_tp;
        out[O_TIME_CP_S] = t_cp;
        out[O_TIME_EP_S] = t_ep;
        out[O_TIME_PP_P2P_S] = t_p2p;
        out[O_TIME_PP_BUBBLE_S] = bubble_s;
        out[O_TIME_DP_S] = 0.0;
        out[O_TIME_OPTIMIZER_S] = 0.0;
        tokens = decode ? gbs * gen : gbs * seq;
        hw_flops = model_flops;
    }

    // [O1] outputs
    out[O_N_GPUS] = n_gpus;
    out[O_N_MICRO_BATCHES] = n_micro;
    out[O_LAYERS_FIRST_STAGE] = layers_first;
    out[O_LAYERS_MIDDLE_STAGE] = layers_mid;
    out[O_LAYERS_LAST_STAGE] = layers_last;
    out[O_CAPACITY_PER_EXPERT] = capacity;
    out[O_DROPPED_FRACTION] = dropped;
    out[O_TIME_STEP_S] = step_s;
    out[O_TOKENS_PER_S] = tokens / step_s;
    out[O_TOKENS_PER_S_PER_GPU] = tokens / step_s / n_gpus;
    out[O_MODEL_FLOPS_PER_STEP] = model_flops;
    out[O_MFU] = model_flops / (step_s * n_gpus * peak);
    out[O_MODEL_TFLOPS_PER_GPU] = model_flops / (step_s * n_gpus) * 1e-12;
    out[O_HW_TFLOPS_PER_GPU] = hw_flops / (step_s * n_gpus) * 1e-12;
    out[O_TTFT_S] = ttft;
    out[O_TPOT_S] = tpot;
    return code;
}

PYENGINE_HD inline double stage_compute_s(double n_layers, double n_moe, double dense_fwd,
                                          double moe_fwd, double passes, double embed_s,
                                          double output_s) {
    // [T13] compute of one stage for one micro-batch (forward, and backward when training)
    return passes * ((n_layers - n_moe) * dense_fwd + n_moe * moe_fwd + embed_s + output_s);
}

PYENGINE_HD inline LayerCosts load_costs(const double* cache, int at) {
    // [T11] (see evaluate_plan) LayerCosts kept in the cache vector
    return LayerCosts{cache[at], cache[at + 1], cache[at + 2], cache[at + 3], cache[at + 4],
                      cache[at + 5], cache[at + 6], cache[at + 7], cache[at + 8]};
}

PYENGINE_HD inline void store_costs(double* cache, int at, const LayerCosts& c) {
    cache[at] = c.attn_s;
    cache[at + 1] = c.attn_core_s;
    cache[at + 2] = c.mlp_s;
    cache[at + 3] = c.moe_s;
    cache[at + 4] = c.tp_s;
    cache[at + 5] = c.cp_s;
    cache[at + 6] = c.ep_s;
    cache[at + 7] = c.embed_s;
    cache[at + 8] = c.output_s;
}

PYENGINE_HD inline double model_forward_flops_per_token(const double* m, double ctx) {
    // [T15] model FLOPs per token, forward (Narayanan et al. 2021 eq. 3 counting): 2 FLOPs
    // per GEMM weight a token touches (experts: top-k, shared experts, the output layer)
    // + attention scores and context, 2*ctx*(d_qk+d_v) per head and layer (no causal
    // halving); training multiplies by 3.
    double n_moe = moe_layers_in(0.0, m[M_LAYERS], m);
    double n_dense = m[M_LAYERS] - n_moe;
    double n_mat = 2.0 + m[M_GATED];
    double hid = m[M_HIDDEN];
    double per_layer_attn = (m[M_ATTN_GEMM_PARAMS]
                             + ctx * m[M_HEADS] * (m[M_QK_HEAD_DIM] + m[M_V_HEAD_DIM]));
    double moe_mlp = (m[M_TOP_K] * hid * m[M_EXPERT_FFN] * n_mat + hid * m[M_SHARED_FFN] * n_mat
                      + hid * m[M_EXPERTS]);
    return 2.0 * (m[M_LAYERS] * per_layer_attn + n_dense * m[M_MLP_GEMM_PARAMS]
                  + n_moe * moe_mlp + hid * m[M_VOCAB]);
}

PYENGINE_HD inline double recompute_flops_per_token(const double* m, double ctx,
                                                    double recompute, double fwd_flops_tok) {
    // [T12] recomputed forward FLOPs: full = every layer's forward (not the output layer);
    // selective = the attention scores and context only.
    if (recompute == 2.0) {
        return fwd_flops_tok - 2.0 * m[M_HIDDEN] * m[M_VOCAB];
    }
    if (recompute == 1.0) {
        return 2.0 * m[M_LAYERS] * ctx * m[M_HEADS] * (m[M_QK_HEAD_DIM] + m[M_V_HEAD_DIM]);
    }
    return 0.0;
}

}  // namespace pyengine
