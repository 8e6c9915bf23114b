"""Operator-level fits: hardware parameters from published kernel and collective benchmarks.

tools/calibrate.py runs these first and alone, then fits what they do not identify (the
large-GEMM levels) on the end-to-end runs with these values fixed. Every fit scores the
model's OWN formulas (pyengine.reference: gemm_s, allgather_s, ...) on a hardware vector,
so a fitted value means what the kernels use. Data: pyengine/data/operators.json and
kernels.json (sources in docs/sources.md); deterministic grid searches within physical
bounds, no per-row factors.

  hbm_eff                  BabelStream triad / HBM peak (Azure AI Benchmarking Guide)
  gemm_dim_half,           cuBLASLt shape tables (Azure: A100 FP16, H100/H200 FP8) and
  op_overhead_s            DeepGEMM FP8 dense + grouped (H800), one level per table
  net_eff, intra_latency   nccl-tests on one 8-GPU NVLink node (H100; A100 all-reduce)
  inter_eff, inter_latency nccl-tests on 80 H100s (10 nodes) and 2 nodes x 1 GPU
  Blackwell attention      cuDNN SDPA benchmarks (cudnn-frontend) on B200, GB200, GB300
  FlashAttention-2 rates   the FA2 columns of the FlashAttention-3 paper's H100 benchmarks
                           and of cudnn-frontend's B200 SDPA benchmark (GB200/GB300: B200's)
  FP8 attention rates      cudnn-frontend's FP8 SDPA runs: H200 (every Hopper preset), B200,
                           GB200, GB300
  H100 BF16 GEMM level     the H100's end-to-end FP8 level x its BF16/FP8 best achievable
                           matmul shares (the FP8 level is fitted end to end)
  Blackwell GEMM levels    FP8: the H100's end-to-end FP8 level x GB200's sustained
                           large-GEMM level over the H100's (Azure's cuBLASLt tables, one
                           tool; GB300 by its own table), B200 by its best achievable FP8
                           matmul share over GB200's; BF16 from FP8 as the H100's; FP4: the
                           BF16 level x NVFP4's share of peak over BF16's (torchao
                           bench_matmul, one B200)
  serving grouped GEMMs    TensorRT-LLM's fused-MoE module benchmarks (NVIDIA
                           aiconfigurator): the share of the preset's dense rate its
                           grouped expert GEMMs reach (fit_grouped_gemm_serve)
"""

from __future__ import annotations

import functools
import json
import math
from importlib import resources

import numpy as np

from pyengine import presets
from pyengine import reference as R

GEMM_TABLES = {  # name: (preset, dtype bytes in, source key, file)
    "cuBLASLt A100 FP16": ("a100-80gb", 2, "cublaslt_gemm_tflops_by_mnk_azure_a100", "operators"),
    "cuBLASLt H100 FP8": ("h100-sxm", 1, "cublaslt_gemm_tflops_by_mnk_azure_h100", "operators"),
    "cuBLASLt H200 FP8": ("h200", 1, "cublaslt_gemm_tflops_by_mnk_azure_h200", "operators"),
    "DeepGEMM H800 FP8": ("h800", 1, "deepgemm_h800_fp8_dense", "kernels"),
    "DeepGEMM H800 FP8 grouped": ("h800", 1, "deepgemm_h800_fp8_grouped_moe", "kernels"),
}
# Tables read for their sustained large-GEMM level only (large_gemm_level), not in the
# shape fit: GB200's curve is flat from 4096^3 to 32768^3, where the Hopper tables'
# saturation (gemm_dim_half) still rises 10%.
LEVEL_TABLES = {
    "cuBLASLt GB200 FP8": ("gb200-nvl72", 1, "cublaslt_gemm_tflops_by_mnk_azure_gb200",
                           "operators"),
    "cuBLASLt GB300 FP8": ("gb300-nvl72", 1, "cublaslt_gemm_tflops_by_mnk_azure_gb300",
                           "operators"),
}
# The Blackwell presets with a sustained FP8 table of that tool, and the table; the others
# are carried by their mamf-finder FP8 share over GB200's.
SUSTAINED_FP8 = {slug: table for table, (slug, *_) in LEVEL_TABLES.items()}
ALL_GEMM_TABLES = {**GEMM_TABLES, **LEVEL_TABLES}
STREAM = {"a100-80gb": "node_microbenchmarks_azure_a100",
          "h100-sxm": "node_microbenchmarks_azure_h100", "h200": "node_microbenchmarks_azure_h200"}


def load(name: str) -> dict:
    text = resources.files("pyengine").joinpath(f"data/{name}.json").read_text()
    data = json.loads(text)
    return data["datasets"] if "datasets" in data else data


# --------------------------------------------------------------------------- HBM


def hbm_eff(slug: str) -> float:
    """Attainable share of HBM: the BabelStream triad rate over the preset's peak."""
    triad = load("operators")[STREAM[slug]]["values"]["hbm_bandwidth_TBps"]["triad"] * 1e12
    return round(triad / presets.hardware(slug).hbm_bandwidth_bytes_per_s, 4)


# --------------------------------------------------------------------------- GEMM


def gemm_rows(table: str) -> list[tuple[float, float, float, float]]:
    """(M, N, K, TFLOP/s) of one shape table; DeepGEMM's newest README version only."""
    _, _, key, file = ALL_GEMM_TABLES[table]
    d = load(file)[key]
    rows = d["values"]["rows"] if "values" in d else d["rows"]
    out = []
    for r in rows:
        if "version" in r and "2025-03-25" not in r["version"]:
            continue
        m = r.get("m_per_group", r.get("m"))
        out.append((float(m), float(r["n"]), float(r["k"]), float(r["tflops"])))
    return out


def gemm_tflops(hv, peak, level, m, n, k, in_bytes, token_half=None) -> float:
    """The model's attainable TFLOP/s for one (M, N, K) GEMM: reference.gemm_s, the token
    dimension at `token_half` (None: gemm_dim_half, as training's GEMMs)."""
    flops = 2.0 * m * n * k
    nbytes = (m * k + k * n) * in_bytes + m * n * 2.0
    half = hv[R.S.H_GEMM_DIM_HALF] if token_half is None else token_half
    return flops / R.gemm_s(flops, nbytes, m, n, k, peak * level, half, hv) / 1e12


def _gemm_hw(slug, dim_half, overhead):
    hw = presets.hardware(slug).with_(hbm_eff=hbm_eff_for(slug), gemm_dim_half=dim_half,
                                      op_overhead_s=overhead)
    return R.hardware_vector(hw), hw


def hbm_eff_for(slug: str) -> float:
    return hbm_eff(slug if slug in STREAM else "h100-sxm")


def _peak(hw, in_bytes):
    """The peak of the dtype whose values take `in_bytes` (2 BF16, 1 FP8, 0.5 FP4)."""
    return {2: hw.peak_bf16_flops_per_s, 1: hw.peak_fp8_flops_per_s,
            0.5: hw.peak_fp4_flops_per_s}[in_bytes]


def _gemm_cost_grid(dims, overheads):
    """Mean |log error| over every table's rows for each (gemm_dim_half, op_overhead_s) of
    the grid, each table at its own level (the median log ratio at level 1, within
    [0.3, 0.95]): reference.gemm_s written over arrays (fit_gemm checks it against
    gemm_s row by row), shape (dims, overheads)."""
    d = np.asarray(dims)[:, None, None]
    o = np.asarray(overheads)[None, :, None]
    total, count, levels = 0.0, 0, {}
    for table, (slug, nb, _, _) in GEMM_TABLES.items():
        hv, hw = _gemm_hw(slug, 96.0, 0.0)
        peak = _peak(hw, nb)
        bw = hv[R.S.H_HBM_BANDWIDTH] * hv[R.S.H_HBM_EFF]
        m, n, k, t = (np.array(c, dtype=np.float64) for c in zip(*gemm_rows(table)))
        flops = 2.0 * m * n * k
        mem = ((m * k + k * n) * nb + m * n * 2.0) / bw
        compute = flops / (peak * (m * n * k / ((m + d) * (n + d) * (k + d))))
        at_one = flops / (np.maximum(compute, mem) + o) / 1e12
        level = np.clip(np.exp(np.median(np.log(t / at_one), axis=-1, keepdims=True)),
                        0.3, 0.95)
        levels[table] = level[..., 0]
        at_level = flops / (np.maximum(compute / level, mem) + o) / 1e12
        total = total + np.abs(np.log(at_level / t)).sum(axis=-1)
        count += len(t)
    return total / count, levels


def fit_gemm():
    """gemm_dim_half and op_overhead_s shared by every table, one large-GEMM level per
    table (the median log ratio, within [0.3, 0.95]); minimises the mean |log error| over
    a grid within physical bounds (the first minimum in grid order)."""
    dims = np.arange(16.0, 256.0 + 1e-9, 4.0)
    overheads = np.arange(0.0, 10e-6 + 1e-12, 0.5e-6)
    cost, levels = _gemm_cost_grid(dims, overheads)
    i, j = np.unravel_index(int(np.argmin(cost)), cost.shape)
    values = {"gemm_dim_half": float(dims[i]), "op_overhead_s": float(overheads[j])}
    best = {t: float(lv[i, j]) for t, lv in levels.items()}
    # the array form is the model's: gemm_errors (reference.gemm_s row by row) agrees
    errors = gemm_errors(values, best)
    scored = np.mean([abs(math.log(1.0 + r[5])) for rows in errors.values() for r in rows])
    assert abs(scored - float(cost[i, j])) < 1e-9, (scored, float(cost[i, j]))
    return values, best


def gemm_errors(values, levels) -> dict[str, list[tuple]]:
    """Per table: (M, N, K, published, predicted, relative error)."""
    out = {}
    for table, (slug, nb, _, _) in GEMM_TABLES.items():
        hv, hw = _gemm_hw(slug, values["gemm_dim_half"], values["op_overhead_s"])
        rows = []
        for m, n, k, t in gemm_rows(table):
            p = gemm_tflops(hv, _peak(hw, nb), levels[table], m, n, k, nb)
            rows.append((m, n, k, t, p, p / t - 1.0))
        out[table] = rows
    return out


# --------------------------------------------------------------------------- collectives

# nccl-tests sizes: all_reduce and sendrecv count the per-rank buffer, all_gather the
# gathered output, reduce_scatter the input, alltoall the per-rank send buffer: each is the
# `nbytes` the model's function of the same collective takes.
NCCL_FUNCS = {"all_reduce_perf": "allreduce", "all_gather_perf": "allgather",
              "reduce_scatter_perf": "allgather", "alltoall_perf": "alltoall",
              "sendrecv_perf": "p2p"}


def collective_s(kind, nbytes, ranks, stride, hv) -> float:
    if kind == "allreduce":
        return R.allreduce_s(nbytes, ranks, stride, hv)
    if kind == "allgather":
        return R.allgather_s(nbytes, ranks, stride, hv)
    if kind == "alltoall":
        return R.alltoall_s(nbytes, ranks, stride, hv)
    return R.p2p_s(nbytes, stride, hv)


def collective_rows(slug: str) -> dict[str, list[tuple]]:
    """Per tier, (kind, bytes, ranks, stride, published seconds) of one GPU kind.

    intra: one 8-GPU node; H100 all-reduce is left out (NCCL runs NVLS there, in-switch
    reduction the ring/tree model does not have: 480 GB/s busbw against 360 for the ring
    collectives). inter: ranks spread over nodes (stride = GPUs per node for 1 GPU per
    node). Out-of-place times."""
    ops = load("operators")
    intra, inter = [], []
    if slug == "a100-80gb":
        for r in ops["nccl_tests_a100_8gpu_allreduce_mlengineering"]["values"]["rows"]:
            intra.append(("allreduce", float(r["size_bytes"]), 8.0, 1.0, r["time_us"] * 1e-6))
        return {"intra": intra, "inter": inter}
    if slug != "h100-sxm":
        return {"intra": intra, "inter": inter}
    one = ops["nccl_tests_h100_single_node_8gpu_5collectives_xxrjun"]["values"]["collectives"]
    for name, rows in one.items():
        if name == "all_reduce_perf":
            continue
        for r in rows:
            intra.append((NCCL_FUNCS[name], float(r["size_bytes"]), 8.0, 1.0,
                          r["out_of_place_time_us"] * 1e-6))
    many = ops["nccl_tests_h100_10_nodes_80gpu_5collectives_xxrjun"]["values"]["collectives"]
    for name, rows in many.items():
        if name == "sendrecv_perf":  # pairs spread over the job: not a stated topology
            continue
        for r in rows:
            inter.append((NCCL_FUNCS[name], float(r["size_bytes"]), 80.0, 1.0,
                          r["out_of_place_time_us"] * 1e-6))
    two = ops["nccl_tests_h100_2nodes_1gpu_each_xxrjun"]["values"]
    for name, rows in two.items():
        for r in rows:
            inter.append((NCCL_FUNCS[name], float(r["size_bytes"]), 2.0, 8.0,
                          r["out_of_place_time_us"] * 1e-6))
    return {"intra": intra, "inter": inter}


def small_allreduce_rows() -> list[tuple]:
    """8 B .. 64 KiB all-reduce on one DGX H100 (NVIDIA dgxc-benchmarking): latency-bound."""
    rows = load("operators")["nccl_tests_h100_8gpu_allreduce_8B_to_16GiB_nvidia_dgxc"]
    return [("allreduce", float(r["size_bytes"]), 8.0, 1.0, r["in_place_time_us"] * 1e-6)
            for r in rows["values"]["rows"] if r["size_bytes"] <= 65536]


def _log_cost(rows, hv) -> float:
    return float(np.mean([abs(math.log(collective_s(k, b, n, s, hv) / t))
                          for k, b, n, s, t in rows]))


def fit_collectives(slug: str) -> dict[str, float]:
    """net_eff and intra_latency on the node's rows; then, those fixed, inter_eff and
    inter_latency on the multi-node rows."""
    hw = presets.hardware(slug)
    rows = collective_rows(slug)
    small = small_allreduce_rows() if slug == "h100-sxm" else []
    best = None
    for lat in np.arange(0.5e-6, 10e-6 + 1e-12, 0.25e-6):
        for eff in np.arange(0.6, 0.95 + 1e-9, 0.005):
            hv = R.hardware_vector(hw.with_(intra_node_latency_s=float(lat), net_eff=float(eff)))
            c = _log_cost(rows["intra"] + small, hv)
            if best is None or c < best[0] - 1e-12:
                best = (c, float(lat), float(eff))
    out = {"intra_node_latency_s": round(best[1], 10), "net_eff": round(best[2], 4)}
    if rows["inter"]:
        base = hw.with_(**out)
        best = None
        for lat in np.arange(1e-6, 30e-6 + 1e-12, 0.5e-6):
            for eff in np.arange(0.6, 0.95 + 1e-9, 0.005):
                hv = R.hardware_vector(base.with_(inter_node_latency_s=float(lat),
                                                  inter_eff=float(eff)))
                c = _log_cost(rows["inter"], hv)
                if best is None or c < best[0] - 1e-12:
                    best = (c, float(lat), float(eff))
        out["inter_node_latency_s"] = round(best[1], 10)
        out["inter_eff"] = round(best[2], 4)
    return out


def collective_errors(slug: str, values: dict) -> dict[str, list[tuple]]:
    """Per tier: (kind, bytes, ranks, published s, predicted s, relative error)."""
    hv = R.hardware_vector(presets.hardware(slug).with_(**values))
    rows = collective_rows(slug)
    if slug == "h100-sxm":
        rows["intra"] = rows["intra"] + small_allreduce_rows()
    return {tier: [(k, b, n, t, collective_s(k, b, n, s, hv),
                    collective_s(k, b, n, s, hv) / t - 1.0) for k, b, n, s, t in rr]
            for tier, rr in rows.items() if rr}


# --------------------------------------------------------------------------- Blackwell

CUDNN_ATTENTION = {  # preset: (operators.json key, backend column)
    "b200": ("cudnn_sdpa_b200_bf16_backends_cudnn9_13", "pyt_cudnn"),
    "gb200-nvl72": ("cudnn_sdpa_gb200_bf16_fp8_cudnn9_17", "cudnn_fe"),
    "gb300-nvl72": ("cudnn_sdpa_gb300_bf16_fp8_cudnn9_17", "cudnn_fe"),
}
# MAMF rows (ml-engineering mamf-finder) per preset; GB300 has none: the B300 SXM (the
# same Blackwell Ultra GPU in an HGX board) stands in
MAMF = {"a100-80gb": "NVIDIA A100 SXM", "h100-sxm": "NVIDIA H100 SXM", "b200": "NVIDIA B200 SXM",
        "gb200-nvl72": "NVIDIA GB200 SXM", "gb300-nvl72": "NVIDIA B300 SXM"}


def pass_rows(rows: list[dict], head_key: str = "head_dim"
              ) -> dict[str, list[tuple[float, float, float]]]:
    """(keys per query, head dim, TFLOP/s), forward and backward, of causal attention
    benchmark rows (keys = seq/2, as the model and the benchmarks' FLOP formulas count
    them)."""
    return {p: [(r["q_seqlen"] / 2.0, float(r[head_key]), float(r[f"{p}_tflops"]))
                for r in rows] for p in ("fwd", "bwd")}


def sdpa_rows(key: str, backends: tuple[str, ...]) -> dict[str, list[tuple[float, float, float]]]:
    """The causal rows of a cudnn-frontend SDPA benchmark for the given backends
    (pass_rows)."""
    return pass_rows([r for r in load("operators")[key]["values"]["rows"]
                      if r["backend"] in backends and r["is_causal"]])


def cudnn_attention_rows(slug: str) -> dict[str, list[tuple[float, float, float]]]:
    """cuDNN's BF16 attention on the GPU's own SDPA benchmark (sdpa_rows)."""
    key, backend = CUDNN_ATTENTION[slug]
    return sdpa_rows(key, (backend,))


def fa2_attention_rows_b200() -> dict[str, list[tuple[float, float, float]]]:
    """FlashAttention-2 on one B200 (sdpa_rows): the PyTorch SDPA FLASH_ATTENTION and
    native flash-attn 2.7.4 columns of the cudnn-frontend SDPA benchmark (the
    Ampere-generation kernels on Blackwell)."""
    return sdpa_rows("cudnn_sdpa_b200_bf16_backends_cudnn9_13",
                     ("pyt_flash_attention", "flash_attention"))


def fp8_attention_rows(slug: str) -> dict[str, list[tuple[float, float, float]]]:
    """(keys per query, head dim, TFLOP/s), forward and backward, of cuDNN's FP8 (E4M3)
    attention with causal masking on the GPU's own benchmark (keys = seq/2): cudnn-frontend's
    FP8 SDPA runs on B200 (cuDNN 9.13), GB200/GB300 (cuDNN 9.17), and its llama3.1-shape
    run on H200 (cuDNN 9.19), which stands for every Hopper preset (the H100's SMs and
    clocks)."""
    ops = load("operators")
    if slug == "b200":
        return pass_rows([r for r in ops["cudnn_sdpa_b200_fp8_vs_bf16_cudnn9_13"]["values"]
                          ["rows"] if r["precision"] == "fp8" and r["is_causal"]])
    if slug in CUDNN_ATTENTION:
        return sdpa_rows(CUDNN_ATTENTION[slug][0], ("cudnn_fe_fp8",))
    return pass_rows([r for r in ops["cudnn_sdpa_llama3_1_shapes_gb200_gb300_h200_cudnn_head"]
                      ["values"]["rows"] if r["gpu_name"] == "NVIDIA H200"
                      and r["data_type"] == "fp8" and r["attn_mask"] == "top_left"],
                     "head_dim_qk")


def mamf_share(slug: str, dtype: str) -> float:
    """The best achieved matmul TFLOP/s over the preset's own peak for that dtype."""
    v = load("operators")["gemm_max_achievable_matmul_tflops_mlengineering"]["values"]
    row = next(r for r in v["bf16" if dtype == "bf16" else "fp8_e4m3fn"]
               if r["accelerator"] == MAMF[slug])
    hw = presets.hardware(slug)
    peak = hw.peak_bf16_flops_per_s if dtype == "bf16" else hw.peak_fp8_flops_per_s
    return row["mamf_tflops"] * 1e12 / peak


def bf16_level_from_fp8(slug: str, fp8_level: float) -> float:
    """A GPU's BF16 large-GEMM level from its FP8 one: the share of its best achievable FP8
    matmul rate that its FP8 GEMMs reach end to end, applied to its best achievable BF16
    matmul share (mamf-finder, one tool for both dtypes). The in-framework shortfall from
    the microbenchmark (clocks and power under sustained load, communication kernels on
    the same SMs, the framework's kernels between GEMMs) is taken to belong to the GPU and
    its software stack, not to the dtype."""
    return round(mamf_share(slug, "bf16") * fp8_level / mamf_share(slug, "fp8"), 4)


def fp4_share_ratio() -> float:
    """NVFP4 GEMMs' share of the FP4 peak over BF16 GEMMs' share of the BF16 peak on the
    same B200 in the same run (torchao's bench_matmul, square 6144 and 8192: the largest
    shapes printed, where both have saturated), the mean of the two."""
    rows = load("operators")["nvfp4_vs_bf16_gemm_b200_torchao"]["values"]["rows"]
    hw = presets.hardware("b200")
    ratios = [(r["nvfp4_tflops"] * 1e12 / hw.peak_fp4_flops_per_s)
              / (r["bf16_tflops"] * 1e12 / hw.peak_bf16_flops_per_s)
              for r in rows if r["m"] >= 6144]
    return float(np.mean(ratios))


# The smallest dimension of the shapes a table's large-GEMM level is read from: training
# and prefill GEMMs (thousands of tokens x hidden sizes of thousands).
LARGE_DIM = 4096


def large_gemm_level(table: str, dim_half: float, overhead: float) -> float:
    """A shape table's sustained large-GEMM level: the geometric mean, over its shapes with
    every dimension >= LARGE_DIM, of the measured TFLOP/s over the model's at level 1
    (reference.gemm_s with the shared shape values)."""
    slug, nb, _, _ = ALL_GEMM_TABLES[table]
    hv, hw = _gemm_hw(slug, dim_half, overhead)
    peak = _peak(hw, nb)
    logs = [math.log(t / gemm_tflops(hv, peak, 1.0, m, n, k, nb))
            for m, n, k, t in gemm_rows(table) if min(m, n, k) >= LARGE_DIM]
    return round(math.exp(sum(logs) / len(logs)), 4)


# --------------------------------------------------------------------------- serving GEMMs

# TensorRT-LLM's Linear layer timed by NVIDIA aiconfigurator's collector (operators.json,
# tools/extract_aiconfigurator.py): weights of N, K each 4096-16384 at 16-16384 tokens.
# name: (preset, dtype bytes in, dataset, gemm_dtype). A serving engine's token half-point
# (gemm_token_half_serve) is fitted on Hopper's FP8 tables (the dtype Hopper serves in):
# its kernels reach the large-GEMM rate within a few hundred tokens, where the training
# shape tables' gemm_dim_half (148) would still cost a third. On Blackwell's NVFP4 tables
# it is not identified (mean |log error| of the decode-sized rows within 17-25% from 16 to
# 300 tokens: the tables' own shape, 0.8x the model at 64-128 tokens and 1.2x at 512-1024,
# is not a saturation), so the Blackwell presets keep dim_half there.
TOKEN_TABLES = {
    "TensorRT-LLM Linear H100 FP8": ("h100-sxm", 1.0, "trtllm_gemm_latency_aiconfigurator_h100",
                                     "fp8"),
    "TensorRT-LLM Linear H200 FP8": ("h200", 1.0, "trtllm_gemm_latency_aiconfigurator_h200",
                                     "fp8"),
}
TOKEN_REPORTED = {
    "TensorRT-LLM Linear B200 NVFP4": ("b200", 0.5, "trtllm_gemm_latency_aiconfigurator_b200",
                                       "nvfp4"),
    "TensorRT-LLM Linear GB200 NVFP4": ("gb200-nvl72", 0.5,
                                        "trtllm_gemm_latency_aiconfigurator_gb200", "nvfp4"),
    "TensorRT-LLM Linear GB300 NVFP4": ("gb300-nvl72", 0.5,
                                        "trtllm_gemm_latency_aiconfigurator_gb300", "nvfp4"),
}
TOKEN_ALL = {**TOKEN_TABLES, **TOKEN_REPORTED}
TOKEN_HALVES = np.arange(16.0, 512.0 + 1e-9, 4.0)  # gemm_dim_half's bounds, its 4-token grid
# the tool's fixed time beyond op_overhead_s (its FP8 flow quantizes the input with an
# amax pass and a cast before the GEMM), a nuisance of the fit
TOKEN_EXTRAS = np.arange(0.0, 20e-6 + 1e-12, 0.5e-6)


def token_rows(table: str) -> tuple[np.ndarray, ...]:
    """(M, N, K, seconds) of one TensorRT-LLM Linear table's dtype."""
    _, _, key, dtype = TOKEN_ALL[table]
    rows = [r for r in load("operators")[key]["values"]["rows"] if r[0] == dtype]
    m, n, k, ms = (np.array(c, dtype=np.float64) for c in zip(*(r[1:] for r in rows)))
    return m, n, k, ms * 1e-3


def _token_cost(tables, dim_half, overhead):
    """Per (token half-point, fixed time) of the grids, shape (halves, extras): the mean
    |log error| over the tables' rows with fewer than LARGE_DIM tokens, each table at its
    own level (read, as large_gemm_level, from its rows with LARGE_DIM tokens or more: the
    median of compute / (measured - fixed times), within [0.3, 0.95]); and per table the
    log errors, levels and tokens of those rows. reference.gemm_s over arrays, checked
    against it row by row by fit_gemm_token_half_serve."""
    hm = TOKEN_HALVES[:, None, None]
    ex = TOKEN_EXTRAS[None, :, None]
    errors = {}
    for table in tables:
        slug, nb, _, _ = TOKEN_ALL[table]
        hv, hw = _gemm_hw(slug, dim_half, overhead)
        bw = hv[R.S.H_HBM_BANDWIDTH] * hv[R.S.H_HBM_EFF]
        m, n, k, t = token_rows(table)
        flops = 2.0 * m * n * k
        mem = ((m * k + k * n) * nb + m * n * 2.0) / bw
        compute = flops / (_peak(hw, nb) * m / (m + hm) * n * k
                           / ((n + dim_half) * (k + dim_half)))
        big = m >= LARGE_DIM
        fixed = overhead + ex
        level = np.clip(np.exp(np.median(np.log(compute[..., big] / (t[big] - fixed)), axis=-1,
                                         keepdims=True)), 0.3, 0.95)
        predicted = np.maximum(compute / level, mem) + fixed
        errors[table] = (np.log(predicted / t)[..., ~big], level[..., 0], m[~big])
    cost = np.mean(np.concatenate([np.abs(e) for e, _, _ in errors.values()], axis=-1), axis=-1)
    return cost, errors


def fit_gemm_token_half_serve(dim_half: float, overhead: float) -> dict:
    """gemm_token_half_serve on Hopper's TensorRT-LLM Linear tables (TOKEN_TABLES), N and K
    at the shared dim_half and op_overhead_s, each table at its own large-GEMM level, one
    fixed time of the tool's flow beyond op_overhead_s (TOKEN_EXTRAS, a nuisance); the
    first minimum in grid order of the mean |log error| of the decode-sized rows. Returns
    the value and, for the report, the fixed time, the tables' levels, the mean |log
    error| at the fit and with the token dimension at dim_half."""
    cost, errors = _token_cost(TOKEN_TABLES, dim_half, overhead)
    i, j = np.unravel_index(int(np.argmin(cost)), cost.shape)
    half = float(TOKEN_HALVES[i])
    # the array form is the model's: reference.gemm_s agrees on every decode-sized row
    for table, (slug, nb, _, _) in TOKEN_TABLES.items():
        hv, hw = _gemm_hw(slug, dim_half, overhead)
        e, level, _ = errors[table]
        m, n, k, t = token_rows(table)
        for r, x in enumerate(np.flatnonzero(m < LARGE_DIM)):
            tflops = gemm_tflops(hv, _peak(hw, nb), level[i, j], m[x], n[x], k[x], nb, half)
            row = 2.0 * m[x] * n[x] * k[x] / (tflops * 1e12) + TOKEN_EXTRAS[j]
            assert abs(math.log(row / t[x]) - e[i, j, r]) < 1e-9, (table, r)
    at_dim = int(np.argmin(np.abs(TOKEN_HALVES - dim_half)))
    return {"gemm_token_half_serve": half, "extra_s": float(TOKEN_EXTRAS[j]),
            "levels": {tb: float(errors[tb][1][i, j]) for tb in TOKEN_TABLES},
            "error": float(cost[i, j]), "error_at_dim_half": float(cost[at_dim].min())}


def token_half_profile(tables, dim_half: float, overhead: float) -> dict[float, float]:
    """Mean |log error| of the tables' decode-sized rows at each token half-point of the
    grid (the best fixed time at each): how sharply a table identifies it."""
    cost, _ = _token_cost(tables, dim_half, overhead)
    return {float(h): float(c.min()) for h, c in zip(TOKEN_HALVES, cost)}


def gemm_levels_blackwell(slug: str, h100) -> dict[str, float]:
    """A Blackwell GPU's large-GEMM levels from the H100's end-to-end FP8 level.

    FP8: scaled by the GPU's sustained large-GEMM level over the H100's, both measured by
    one tool at the same shapes (Azure's cuBLASLt FP8 tables: random data, 10,000 warm-up
    iterations; at shapes >= 4096 H100 0.70, GB200 0.58-0.59, GB300 0.66-0.68 of peak,
    levels 0.709 / 0.629 / 0.720 over the model's shape curve), and for B200 (no table of
    that tool) by its best achievable FP8 matmul share over GB200's (mamf-finder: the
    same die family). Not the best-achievable shares across generations: on
    H100 the burst maximum and the sustained table agree (1403 / 1382 TFLOP/s), on GB200
    the maximum (3616) is 24% above what large GEMMs sustain (2826-2907), and training
    runs are sustained (torchao's B200 BF16 squares, another tool, flatten at 0.63-0.67 of
    peak against mamf-finder's 0.78 too).
    BF16 from FP8 by the GPU's best achievable matmul shares (bf16_level_from_fp8, as the
    H100's); FP4: the BF16 level x NVFP4's share of peak over BF16's (one B200 run)."""
    half, overhead = h100.gemm_dim_half, h100.op_overhead_s
    table = SUSTAINED_FP8.get(slug, "cuBLASLt GB200 FP8")
    sustained = (large_gemm_level(table, half, overhead)
                 / large_gemm_level("cuBLASLt H100 FP8", half, overhead))
    carried = 1.0 if slug in SUSTAINED_FP8 else (mamf_share(slug, "fp8")
                                                 / mamf_share("gb200-nvl72", "fp8"))
    fp8 = round(h100.gemm_eff_max_fp8 * sustained * carried, 4)
    bf16 = bf16_level_from_fp8(slug, fp8)
    return {"gemm_eff_max": bf16, "gemm_eff_max_fp8": fp8,
            "gemm_eff_max_fp4": round(bf16 * fp4_share_ratio(), 4)}


# --------------------------------------------------------------------------- serving MoE

# TensorRT-LLM's fused MoE module measured by NVIDIA aiconfigurator's collector (operators.json,
# tools/extract_aiconfigurator.py): per preset, the table of its GPU and the serving dtype
# that table holds (Hopper FP8 per-tensor and block-scaled, Blackwell NVFP4)
SERVE_MOE_TABLES = {"h100-sxm": "trtllm_moe_latency_aiconfigurator_h100",
                    "h200": "trtllm_moe_latency_aiconfigurator_h200",
                    "b200": "trtllm_moe_latency_aiconfigurator_b200",
                    "gb200-nvl72": "trtllm_moe_latency_aiconfigurator_gb200",
                    "gb300-nvl72": "trtllm_moe_latency_aiconfigurator_gb300"}
# the tables' dtypes as pyengine plans them: the FP8 checkpoints TensorRT-LLM serves
# (ModelOpt's) scale per tensor; block-scaled FP8 (DeepSeek's, Qwen's own) runs other
# grouped kernels, about half as fast on H100 at large token counts, not fitted here
PLAN_DTYPES = {"fp8": "fp8", "nvfp4": "nvfp4"}
GROUPED_SHARES = np.round(np.arange(0.30, 1.50 + 1e-9, 0.01), 2)


@functools.cache
def moe_module_rows(slug: str) -> tuple[tuple, ...]:
    """(model vector, precisions, ep, tokens, measured seconds) per row of the preset's
    TensorRT-LLM MoE table: a gated MoE of the row's hidden, expert FFN, top-k and expert
    count (no shared expert), in decode at the row's dtype."""
    from pyengine.specs import Plan

    d = load("operators")[SERVE_MOE_TABLES[slug]]["values"]
    col = {c: i for i, c in enumerate(d["columns"])}
    base = presets.model("qwen3-235b-a22b")
    models, precs, out = {}, {}, []
    for r in d["rows"]:
        if r[col["moe_dtype"]] not in PLAN_DTYPES:
            continue
        shape = tuple(r[col[c]] for c in ("hidden_size", "inter_size", "topk", "num_experts"))
        if shape not in models:
            models[shape] = R.model_vector(base.with_(
                name="moe", hidden=shape[0], expert_ffn_hidden=shape[1], top_k=shape[2],
                n_experts=shape[3], n_shared_experts=0))
        dtype = PLAN_DTYPES[r[col["moe_dtype"]]]
        if dtype not in precs:
            precs[dtype] = R.plan_fields(R.plan_vector(Plan(mode="decode", dtype=dtype,
                                                                gen_tokens=1)))
        out.append((models[shape], precs[dtype], float(r[col["moe_ep_size"]]),
                    float(r[col["num_tokens"]]), r[col["latency_ms"]] * 1e-3))
    return tuple(out)


def moe_module_s(m, h, f, ep: float, tokens: float) -> float:
    """The model's time for TensorRT-LLM's MoE module (routing, permutation, the routed
    experts, un-permutation; reference.moe_costs without communication or shared expert)
    on one rank of an EP group that routes `tokens` tokens, balanced: each of the ep ranks
    stands for tokens/ep of them, k x tokens/E slots reach every expert, and the experts
    run at the serving grouped share of the dense rate (reference.precisions [P4]). The
    router GEMM (under 1% of the module's FLOPs) is left in: the module is handed logits."""
    pr = R.precisions(h, f)
    n_tok = tokens / ep
    capacity = m[R.S.M_TOP_K] * n_tok / m[R.S.M_EXPERTS]
    return R.moe_costs(m, h, n_tok, 1.0, 1.0, ep, 1.0, capacity, R.active_experts(m, tokens),
                       pr.rate, pr.expert_rate, pr.token_half, pr.ab, pr.wb, pr.db,
                       0.0).moe_s


def grouped_gemm_errors(slug: str, hw, share: float) -> list[float]:
    """log(model / measured) per row of the preset's TensorRT-LLM MoE table, the preset's
    hardware `hw` with grouped_gemm_eff_serve = share."""
    h = R.hardware_vector(hw.with_(grouped_gemm_eff_serve=share))
    return [math.log(moe_module_s(m, h, f, ep, t) / s) for m, f, ep, t, s in moe_module_rows(slug)]


def fit_grouped_gemm_serve(slug: str, hw) -> float:
    """grouped_gemm_eff_serve: the share of the dense GEMM rate (the preset's own, `hw`)
    that TensorRT-LLM's grouped MoE GEMMs reach on that GPU, the first minimum of the mean
    |log error| over GROUPED_SHARES on the rows of its MoE table (every row there has at
    least 128 token-slots per expert: compute-bound experts, which the share moves)."""
    costs = [np.mean(np.abs(grouped_gemm_errors(slug, hw, float(s)))) for s in GROUPED_SHARES]
    return float(GROUPED_SHARES[int(np.argmin(costs))])
