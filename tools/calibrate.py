"""Fit the hardware efficiency parameters on published runs; anyone can re-run it.

    python tools/calibrate.py            # fit, print train/hold-out errors
    python tools/calibrate.py --write    # also write the values into the preset files
    python tools/calibrate.py --check    # exit 1 unless the presets hold exactly its output

What is fitted, per GPU kind (one set of parameters per hardware preset, no per-row
factors), operator-level data first and alone (tools/fit_operators.py; data in
pyengine/data/operators.json and kernels.json, sources in docs/sources.md):
  all         gemm_dim_half, op_overhead_s: cuBLASLt (A100 FP16, H100/H200 FP8) and DeepGEMM
              (H800 FP8 dense and grouped) shape tables, one large-GEMM level per table
  hopper      gemm_token_half_serve (a serving engine's GEMMs: their token dimension's
              half-point; h100, h200, h800): TensorRT-LLM's FP8 Linear layers at 16-2048
              tokens on H100 and H200 (aiconfigurator), N and K at the shared values; a100
              and Blackwell keep gemm_dim_half there (0: Blackwell's NVFP4 tables do not
              identify it), as training GEMMs do everywhere
  a100, h100, h200   hbm_eff: BabelStream triad over the HBM peak (Azure)
  a100-80gb   net_eff, intra_latency: nccl-tests all-reduce on one 8x A100 node
  h100-sxm    net_eff, intra_latency: nccl-tests all-gather, reduce-scatter, all-to-all,
              send/recv on one 8x H100 node and small all-reduces (8 B..64 KiB);
              inter_eff, inter_latency: nccl-tests on 10 nodes x 8 H100 and 2 nodes x 1
  h100-sxm    attn_eff_fwd, attn_eff_bwd, attn_seq_half, attn_dim_half on the
              FlashAttention-3 forward (causal) and backward kernel benchmarks;
              fa2_eff_fwd, fa2_eff_bwd, fa2_seq_half on the same figures' FlashAttention-2
              columns (b200: cudnn-frontend's FA2 rows; gb200/gb300 take B200's);
              cudnn_eff_fwd, cudnn_eff_bwd, cudnn_seq_half on their cuDNN columns
              (Blackwell: the GPU's own cuDNN fit); mea_eff, mea_seq_half by the
              FlashAttention-2 paper's A100 xFormers/FA2 relation on the GPU's FA2 fit
Then, those held fixed, the large-GEMM levels on the end-to-end runs in shared/calibration
(the share of peak GEMMs reach inside framework runs; the operator tables' own levels are
printed next to them):
  a100-80gb   gemm_eff_max on Megatron-LM 2021 Table 1 (BF16/FP16 training, full
              recomputation) and Korthikanti 2022 Table 4 (one 22B layer, five
              recompute/SP settings), each dataset weighted once; inter_eff and
              inter_latency are the H100's (no A100 multi-node measurements shipped)
  h100-sxm    gemm_eff_max_fp8 on NeMo 24.07 FP8 pre-training + TensorRT-LLM Llama 3.1 8B
              on H100; gemm_eff_max (BF16) tied to it: the share of the H100's best
              achievable FP8 matmul rate its FP8 GEMMs reach end to end, applied to its best
              achievable BF16 matmul share (MAMF: 70.9% FP8, 80.3% BF16), the same GPU and
              software stack (no H100 BF16 run is in shared/calibration)
  h200        the H100's values but its own hbm_eff (same GPU die); the H200
              TensorRT-LLM rows are never used in any fit: a true hold-out.
  b200, gb200-nvl72, gb300-nvl72: the H100 values, but fused attention fitted on the
              GPU's own cuDNN SDPA benchmarks (cudnn-frontend, head dim 128, causal); the
              FP8 level the H100's x the GPU's sustained large-GEMM level over the H100's
              (Azure's cuBLASLt FP8 tables, one tool: GB200's and GB300's own; B200 by its
              best achievable FP8 matmul share over GB200's, MAMF), the BF16 level from it as
              the H100's; FP8 attention on the GPU's cuDNN FP8 SDPA runs (H100/H200: the
              H200's); the FP4 level the BF16 level x NVFP4's share of its peak over
              BF16's in one B200 run (torchao)
  h800, mi300x: no published runs here; they inherit the H100 values (documented in
              docs/accuracy.md as uncalibrated transfers).
Last, over each preset's final dense levels (operator-level, TensorRT-LLM's own kernels):
  h100, h200, b200, gb200, gb300   grouped_gemm_eff_serve, the share of the dense rate
              its serving engine's grouped MoE GEMMs reach, on TensorRT-LLM's fused-MoE
              module benchmarks of that GPU (aiconfigurator; per-tensor FP8 on Hopper,
              NVFP4 on Blackwell); h800 and mi300x carry the H100's, a100 none (1).
Objective: mean |log(predicted / published)| per dataset, averaged over datasets; a
deterministic coordinate search within physical bounds (PARAMS) from a fixed start: the
defaults of pyengine.specs.Hardware, never the values in the preset files, so the fit is
a function of the published data alone and its output is what the presets hold
(tests/test_tooling.py checks). Generalisation inside each dataset is reported by
refitting on every other row and scoring the rows left out.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import json
import math
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
PRESETS = ROOT / "pyengine" / "presets" / "hardware"

import fit_operators as OPS  # noqa: E402

from pyengine import presets  # noqa: E402
from pyengine import validate as V  # noqa: E402
from pyengine.specs import Hardware  # noqa: E402

# Bounds are physical priors, not fit conveniences: large GEMMs reach 40-90% of tensor
# peak, NCCL bus bandwidth 60-95% of the link rate, streaming kernels 60-95% of HBM.
PARAMS = {  # name: (low, high)
    "gemm_eff_max": (0.4, 0.9),
    "gemm_eff_max_fp8": (0.3, 0.9),
    "gemm_dim_half": (16.0, 512.0),
    "net_eff": (0.6, 0.95),
    "hbm_eff": (0.6, 0.95),
    "op_overhead_s": (0.0, 20e-6),
}


def score(datasets) -> float:
    """Mean over datasets of the mean |log error| of their rows (each dataset counts once).

    Rows whose plan the model finds infeasible (memory) still count here, unlike in
    `pyengine validate`'s means: their timing is what these rate parameters shape."""
    per = [np.mean([abs(math.log(r.predicted / r.published)) for r in ds.rows
                    if r.predicted > 0]) for ds in datasets if ds.rows]
    return float(np.mean(per))


def start_values(names) -> dict[str, float]:
    """Where the search starts: the Hardware class defaults (within the bounds). A start
    taken from the presets would make each fit depend on the previous one's output."""
    defaults = {f.name: f.default for f in dataclasses.fields(Hardware)}
    return {n: float(np.clip(defaults[n], *PARAMS[n])) for n in names}


def fit(base_hw, names, make_datasets, rounds=3, points=9, derive=None):
    """Coordinate search: each parameter over a grid within its bounds, then a finer grid
    around the best value; deterministic, so anyone re-running gets the same numbers.
    `derive(values)` gives parameters tied to the fitted ones (set with each trial)."""
    current = start_values(names)
    width = {n: PARAMS[n][1] - PARAMS[n][0] for n in names}

    def with_values(values):
        return base_hw.with_(**values, **(derive(values) if derive else {}))

    def cost(values):
        return score(make_datasets(with_values(values)))

    best = cost(current)
    for _ in range(rounds):
        for n in names:
            lo, hi = PARAMS[n]
            grid = np.linspace(max(lo, current[n] - width[n] / 2),
                               min(hi, current[n] + width[n] / 2), points)
            for v in grid:
                trial = {**current, n: float(v)}
                c = cost(trial)
                if c < best - 1e-12:
                    best, current = c, trial
            width[n] /= 3.0
    return with_values(current), best


ATTN_NAMES = ["attn_eff_fwd", "attn_eff_bwd", "attn_seq_half", "attn_dim_half"]
FA2_NAMES = ["fa2_eff_fwd", "fa2_eff_bwd", "fa2_seq_half"]
FP8_ATTN_NAMES = ["attn_fp8_eff_fwd", "attn_fp8_eff_bwd", "attn_fp8_seq_half"]
MEA_NAMES = ["mea_eff", "mea_seq_half"]
CUDNN_NAMES = ["cudnn_eff_fwd", "cudnn_eff_bwd", "cudnn_seq_half"]
ATTN_BOUNDS = {"eff": (0.3, 0.95), "attn_seq_half": (0.0, 2000.0), "attn_dim_half": (0.0, 256.0)}
# FlashAttention-2 runs Ampere-generation MMA instructions, which reach a smaller share of a
# Hopper or Blackwell peak (measured: about 34% on H100, 15-20% on B200)
FA2_EFF_BOUNDS = (0.1, 0.95)
# FP8 attention is held back by the softmax's exponentials, not the tensor cores: measured
# about 35-55% of the FP8 peak (cuDNN on H200, B200, GB200, GB300)
FP8_ATTN_EFF_BOUNDS = (0.1, 0.95)


def kernels() -> dict:
    from importlib import resources

    return json.loads(resources.files("pyengine").joinpath("data/kernels.json").read_text())


def attention_rows(data: dict, column: str = "flashattention_3"
                   ) -> dict[str, list[tuple[float, float, float]]]:
    """(keys per query, head dim, TFLOP/s) of FlashAttention-3 (or the paper's other
    `column`, e.g. flashattention_2) on H100: the forward with causal masking (what LLM
    training runs; keys = seq/2 as the model counts them) and the backward (FLOPs 2.5x the
    forward's, as the kernel counts them)."""
    out = {}
    for key, pass_ in (("flashattention3_h100_fwd_16bit", "fwd"),
                       ("flashattention3_h100_bwd_16bit_secondary", "bwd")):
        rows = []
        for r in data[key]["rows"]:
            v = r.get(column)
            if v is None or (pass_ == "fwd" and r.get("mask") != "causal"):
                continue
            keys = r["seqlen"] / 2 if r.get("mask") == "causal" else float(r["seqlen"])
            rows.append((keys, float(r["head_dim"]), float(v)))
        out[pass_] = rows
    return out


def a100_fwd_bwd_rows(column: str) -> dict[str, list[tuple[float, float, float]]]:
    """(keys per query, head dim, TFLOP/s) of the FlashAttention-2 paper's A100 forward +
    backward figure (causal keys = seq/2), one `column` (flashattention_2, xformers), as
    fit_attention's two passes: the figure times both passes together (FLOPs 3.5x the
    forward's), so one share serves both."""
    rows = []
    for r in kernels()["flashattention2_a100_fwd_bwd"]["rows"]:
        v = r.get(column)
        if v is not None:
            keys = r["seqlen"] / 2 if r["mask"] == "causal" else float(r["seqlen"])
            rows.append((keys, float(r["head_dim"]), float(v)))
    return {"fwd": rows, "bwd": rows}


@functools.lru_cache(maxsize=4)
def mea_ratios(dim_half: float) -> tuple[float, float, dict[str, list[float]]]:
    """PyTorch's memory-efficient attention (xFormers' CUTLASS kernels) against
    FlashAttention-2 on the one GPU a paper measured both, the A100 (FA2 paper's fwd+bwd
    figure): each fitted in fit_attention's form (`dim_half` held), the ratios of their
    long-sequence shares and of their half-rate points, and the xFormers fit's errors.
    Cached: every GPU's mem_efficient values take the same ratios (the tables do not
    change while a process runs)."""
    peak = presets.hardware("a100-80gb").peak_bf16_flops_per_s / 1e12
    xf, errors = fit_attention(peak, a100_fwd_bwd_rows("xformers"), dim_half, FA2_EFF_BOUNDS)
    fa2, _ = fit_attention(peak, a100_fwd_bwd_rows("flashattention_2"), dim_half,
                           FA2_EFF_BOUNDS)
    return (xf["attn_eff_fwd"] / fa2["attn_eff_fwd"],
            xf["attn_seq_half"] / fa2["attn_seq_half"], {"fwd+bwd": errors["fwd"]})


def cudnn_values(attention: dict[str, float]) -> dict[str, float]:
    """A fit_attention result as cuDNN's fused-attention parameters: on H100 the cuDNN
    columns of the FlashAttention-3 paper's figures (cuDNN as of 2024-07, the kernels
    Transformer Engine selects on Hopper); on Blackwell the GPU's own cuDNN fit, which is
    its fastest."""
    return kernel_values(attention, "cudnn")


def mea_values(fa2: dict[str, float], dim_half: float) -> dict[str, float]:
    """The memory-efficient kernels on a GPU with FlashAttention-2 figures: both are
    Ampere-generation CUDA kernels (the same MMA instructions on every newer GPU), so they
    keep the A100's relation (mea_ratios) to FA2's share of the GPU's peak over forward +
    backward (3.5x the forward's FLOPs: 1 forward, 2.5 backward) and to its half-rate
    point."""
    share, half, _ = mea_ratios(dim_half)
    fwd_bwd = 3.5 / (1.0 / fa2["fa2_eff_fwd"] + 2.5 / fa2["fa2_eff_bwd"])
    return {"mea_eff": share * fwd_bwd, "mea_seq_half": half * fa2["fa2_seq_half"]}


def attention_tflops(peak_tflops, eff, keys, head_dim, seq_half, dim_half) -> float:
    """The model's fused-attention rate (reference.flash_attention_rate), in TFLOP/s."""
    return peak_tflops * eff * keys / (keys + seq_half) * head_dim / (head_dim + dim_half)


def fit_attention(peak_tflops: float, rows=None, dim_half_fixed: float | None = None,
                  eff_bounds: tuple[float, float] = ATTN_BOUNDS["eff"]
                  ) -> tuple[dict[str, float], dict[str, list[float]]]:
    """The four attention parameters minimising the mean |log error| over the forward and
    backward rows (default: FlashAttention-3 on H100): a grid over the two half-points,
    the efficiencies in closed form (the median log ratio) within their bounds;
    deterministic. With `dim_half_fixed` (tables of one head dimension, which cannot
    identify it) only the sequence half-point is searched. Returns the values and each
    pass's relative errors."""
    rows = rows or attention_rows(kernels())
    lo, hi = eff_bounds
    best = None
    dim_halves = (np.arange(0.0, ATTN_BOUNDS["attn_dim_half"][1] + 1e-9, 2.0)
                  if dim_half_fixed is None else [dim_half_fixed])
    for seq_half in np.arange(0.0, ATTN_BOUNDS["attn_seq_half"][1] + 1e-9, 10.0):
        for dim_half in dim_halves:
            effs, cost = {}, []
            for pass_, rr in rows.items():
                base = [attention_tflops(peak_tflops, 1.0, k, d, seq_half, dim_half)
                        for k, d, _ in rr]
                eff = float(np.clip(np.exp(np.median([math.log(v / b) for (_, _, v), b
                                                      in zip(rr, base)])), lo, hi))
                effs[pass_] = eff
                cost += [abs(math.log(eff * b / v)) for (_, _, v), b in zip(rr, base)]
            c = float(np.mean(cost))
            if best is None or c < best[0] - 1e-12:
                best = (c, seq_half, dim_half, effs)
    _, seq_half, dim_half, effs = best
    values = {"attn_eff_fwd": effs["fwd"], "attn_eff_bwd": effs["bwd"],
              "attn_seq_half": float(seq_half), "attn_dim_half": float(dim_half)}
    errors = {p: [attention_tflops(peak_tflops, effs[p], k, d, seq_half, dim_half) / v - 1
                  for k, d, v in rr] for p, rr in rows.items()}
    return values, errors


def a100_sets(hw, rows=None):
    data = V.published()
    return [V.megatron_lm_2021(data, hw, rows), V.korthikanti_2022_table4(data, hw)]


def h100_sets(hw, rows=None, trt_rows=None):
    data = V.published()
    trt = _trt_rows(data, "H100")
    return [V.nemo_24_07(data, hw, rows),
            V.trtllm_llama31_8b(data, {"H100 SXM 80GB": hw},
                                trt if trt_rows is None else [trt[i] for i in trt_rows])]


def _trt_rows(data, gpu):
    return [i for i, r in enumerate(data["tensorrt_llm_llama31_8b_inference"]["rows"])
            if r["gpu"].startswith(gpu)]


def report(label, datasets):
    for ds in datasets:
        print(f"  {label:<10} {ds.name:<22} mean |error| {100 * ds.mape:5.1f}%  "
              f"worst {100 * ds.worst:5.1f}%  ({len(ds.rows)} rows)")


def holdout(base_hw, names, make, n_rows):
    """Fit on even rows, score odd rows (and vice versa); return the two hold-out sets."""
    out = []
    for parity in (0, 1):
        train = [i for i in range(n_rows) if i % 2 == parity]
        test = [i for i in range(n_rows) if i % 2 != parity]
        hw, _ = fit(base_hw, names, lambda h, t=train: make(h, t))
        out.append((parity, make(hw, test)))
    return out


HEADER = "# Efficiency parameters "
A100_NAMES = ["gemm_eff_max"]
# BF16 GEMM efficiency is not identifiable from FP8 runs (only attention runs in BF16
# there): the H100's is tied to its FP8 level (h100_bf16).
H100_NAMES = ["gemm_eff_max_fp8"]
GEMM_OPS = ["gemm_dim_half", "op_overhead_s"]
HOPPER_GEMM = ["gemm_token_half_serve"]  # fitted on Hopper's TensorRT-LLM Linear tables
NET_OPS = ["net_eff", "intra_node_latency_s", "inter_eff", "inter_node_latency_s"]
A100_ALL = [*A100_NAMES, *GEMM_OPS, "hbm_eff", *NET_OPS]
H100_ALL = ["gemm_eff_max", *H100_NAMES, *GEMM_OPS, *HOPPER_GEMM, "hbm_eff", *NET_OPS,
            *ATTN_NAMES, *FA2_NAMES, *MEA_NAMES, *CUDNN_NAMES, *FP8_ATTN_NAMES]
CARRIED = ("h800", "mi300x")
# Blackwell: the H100 values, but fused attention fitted on the GPU's own cuDNN attention
# benchmarks and the large-GEMM levels transferred by the sustained cuBLASLt levels
# (tools/fit_operators.py: gemm_levels_blackwell)
BLACKWELL = ("b200", "gb200-nvl72", "gb300-nvl72")
BLACKWELL_ALL = [*H100_ALL, "gemm_eff_max_fp4"]
# the serving engine's grouped MoE GEMMs, a share of the dense rate, fitted on TensorRT-LLM's
# MoE operator benchmarks of the GPU (after its dense levels: a share of them)
H100_SERVE = [*H100_ALL, "grouped_gemm_eff_serve"]
BLACKWELL_SERVE = [*BLACKWELL_ALL, "grouped_gemm_eff_serve"]


def operator_values() -> dict[str, dict[str, float]]:
    """Per preset, the operator-level values (the first stage; see the module doc).

    Computed once per process (about a minute: the shipped tables do not change while
    it runs) and handed out as copies; `operator_values.cache_clear()` forgets them."""
    return copy.deepcopy(_operator_values())


@functools.lru_cache(maxsize=1)
def _operator_values() -> dict[str, dict[str, float]]:
    gemm, _ = OPS.fit_gemm()
    token = OPS.fit_gemm_token_half_serve(gemm["gemm_dim_half"], gemm["op_overhead_s"])
    h100_net = OPS.fit_collectives("h100-sxm")
    a100_net = OPS.fit_collectives("a100-80gb")
    a100_net.update({k: h100_net[k] for k in ("inter_eff", "inter_node_latency_s")})
    peak = presets.hardware("h100-sxm").peak_bf16_flops_per_s / 1e12
    attention, _ = fit_attention(peak)
    fa2 = fa2_values(fit_attention(peak, attention_rows(kernels(), "flashattention_2"),
                                   attention["attn_dim_half"], FA2_EFF_BOUNDS)[0])
    cudnn = cudnn_values(fit_attention(peak, attention_rows(kernels(), "cudnn"),
                                       attention["attn_dim_half"])[0])
    h100 = {**gemm, "gemm_token_half_serve": token["gemm_token_half_serve"],
            "hbm_eff": OPS.hbm_eff("h100-sxm"), **h100_net, **attention, **fa2,
            **mea_values(fa2, attention["attn_dim_half"]), **cudnn,
            **fp8_attention_values("h100-sxm", attention["attn_dim_half"])}
    return {"a100-80gb": {**gemm, "hbm_eff": OPS.hbm_eff("a100-80gb"), **a100_net},
            "h100-sxm": h100, "h200": {**h100, "hbm_eff": OPS.hbm_eff("h200")}}


operator_values.cache_clear = _operator_values.cache_clear


def fit_a100(ops=None):
    ops = ops or operator_values()
    return fit(presets.hardware("a100-80gb").with_(**ops["a100-80gb"]), A100_NAMES,
               a100_sets)[0]


def h100_base(ops=None):
    ops = ops or operator_values()
    return presets.hardware("h100-sxm").with_(**ops["h100-sxm"])


def h100_bf16(values: dict[str, float]) -> dict[str, float]:
    """The H100's BF16 level from the trial FP8 level (fit_operators.bf16_level_from_fp8),
    within the BF16 level's bounds."""
    level = OPS.bf16_level_from_fp8("h100-sxm", values["gemm_eff_max_fp8"])
    return {"gemm_eff_max": float(np.clip(level, *PARAMS["gemm_eff_max"]))}


def fit_h100(ops=None):
    return fit(h100_base(ops), H100_NAMES, h100_sets, derive=h100_bf16)[0]


def own_hardware(slug: str, hw, names):
    """The preset `slug` (its peaks and HBM) holding the fit's values of `hw` under
    `names`: the hardware its written file describes."""
    return presets.hardware(slug).with_(**{n: getattr(hw, n) for n in names})


def with_grouped_share(slug: str, hw, names):
    """`hw` (the fit's values under `names`) with the serving grouped-GEMM share fitted on
    the GPU's own TensorRT-LLM MoE table, over those values on the GPU's own preset
    (own_hardware; fit_operators.fit_grouped_gemm_serve)."""
    return hw.with_(grouped_gemm_eff_serve=grouped_share(slug, own_hardware(slug, hw, names)))


@functools.cache
def grouped_share(slug: str, hw) -> float:
    return OPS.fit_grouped_gemm_serve(slug, hw)


def outputs(a100, h100, ops=None) -> dict[str, tuple]:
    """What the fit writes, per preset: (hardware holding the values, names, comment)."""
    ops = ops or operator_values()
    h200 = with_grouped_share("h200", h100.with_(hbm_eff=ops["h200"]["hbm_eff"]), H100_ALL)
    h100 = with_grouped_share("h100-sxm", h100, H100_ALL)
    out = {"a100-80gb": (a100, A100_ALL, "fitted by tools/calibrate.py"),
           "h100-sxm": (h100, H100_SERVE, "fitted by tools/calibrate.py"),
           "h200": (h200, H100_SERVE, "of the H100 fit but hbm_eff and its TensorRT-LLM "
                    "MoE share (same GPU die; tools/calibrate.py)")}
    for slug in CARRIED:
        out[slug] = (h100, H100_SERVE, "carried over from the H100 fit by tools/calibrate.py: "
                     "no published runs of this GPU are shipped, so these are uncalibrated")
    for slug in BLACKWELL:
        hw = h100.with_(**blackwell_values(slug, h100))
        out[slug] = (with_grouped_share(slug, hw, BLACKWELL_ALL), BLACKWELL_SERVE,
                     "the H100 fit with this GPU's own cuDNN attention fit, its GEMM levels "
                     "carried by a sustained cuBLASLt level over the H100's and its own "
                     "TensorRT-LLM MoE share (tools/calibrate.py); no end-to-end runs of it "
                     "are fitted")
    return out


def kernel_values(attention: dict[str, float], prefix: str) -> dict[str, float]:
    """A fit_attention result as one attention kernel's hardware fields ({prefix}_eff_fwd,
    {prefix}_eff_bwd, {prefix}_seq_half; attn_dim_half shared)."""
    return {f"{prefix}_eff_fwd": attention["attn_eff_fwd"],
            f"{prefix}_eff_bwd": attention["attn_eff_bwd"],
            f"{prefix}_seq_half": attention["attn_seq_half"]}


def fa2_values(attention: dict[str, float]) -> dict[str, float]:
    """A fit_attention result as the FlashAttention-2 parameters."""
    return kernel_values(attention, "fa2")


def blackwell_fa2(dim_half: float) -> dict[str, float]:
    """FlashAttention-2 on B200 (cudnn-frontend's FA2 columns); GB200 and GB300 (no FA2
    figures) take B200's shares of peak: the same Blackwell SM runs the same Ampere-era
    kernels."""
    peak = presets.hardware("b200").peak_bf16_flops_per_s / 1e12
    return fa2_values(fit_attention(peak, OPS.fa2_attention_rows_b200(), dim_half,
                                    FA2_EFF_BOUNDS)[0])


def fit_fp8_attention(slug: str, dim_half: float
                      ) -> tuple[dict[str, float], dict[str, list[float]]]:
    """FP8 attention (attention_kernel fp8) on the GPU's own cuDNN FP8 SDPA benchmark
    (fit_operators.fp8_attention_rows: head dim 128 only, so the 16-bit fit's attn_dim_half
    is kept), as shares of the FP8 peak; the values and each pass's relative errors."""
    peak = presets.hardware(slug).peak_fp8_flops_per_s / 1e12
    values, errors = fit_attention(peak, OPS.fp8_attention_rows(slug), dim_half,
                                   FP8_ATTN_EFF_BOUNDS)
    return kernel_values(values, "attn_fp8"), errors


def fp8_attention_values(slug: str, dim_half: float) -> dict[str, float]:
    """The FP8 attention parameters of fit_fp8_attention."""
    return fit_fp8_attention(slug, dim_half)[0]


def blackwell_values(slug: str, h100) -> dict[str, float]:
    """Attention on the GPU's cuDNN benchmarks (head dim 128 only: the H100's
    attn_dim_half kept), FP8 attention on its FP8 runs, FlashAttention-2 on B200's, and
    GEMM levels by the sustained cuBLASLt transfer."""
    hw = presets.hardware(slug)
    rows = OPS.cudnn_attention_rows(slug)
    attention, _ = fit_attention(hw.peak_bf16_flops_per_s / 1e12, rows, h100.attn_dim_half)
    fa2 = blackwell_fa2(h100.attn_dim_half)
    return {**attention, **fa2, **mea_values(fa2, h100.attn_dim_half),
            **cudnn_values(attention),
            **fp8_attention_values(slug, h100.attn_dim_half),
            **OPS.gemm_levels_blackwell(slug, h100),
            "gemm_token_half_serve": 0.0}  # not identified on Blackwell: gemm_dim_half


# preset keys in microseconds for the Hardware fields in seconds
MICROSECONDS = {"op_overhead_s": "op_overhead_us", "intra_node_latency_s": "intra_latency_us",
                "inter_node_latency_s": "inter_latency_us"}


def preset_text(text: str, hw, names, how: str) -> str:
    """A preset file's text with its efficiency block replaced by the fitted values."""
    block = ["", f"{HEADER}{how} (docs/accuracy.md)."]
    for n in names:
        v = getattr(hw, n)
        key = MICROSECONDS.get(n, n)
        val = v * 1e6 if n in MICROSECONDS else v
        text = re.sub(rf"^#?\s*{key}\s*=.*\n", "", text, flags=re.M)
        block.append(f"{key} = {val:.4g}")
    text = re.sub(r"\n# Efficiency parameters .*", "", text, flags=re.S)
    return text.rstrip("\n") + "\n" + "\n".join(block) + "\n"


def write_params(slug: str, hw, names, how: str = "fitted by tools/calibrate.py",
                 folder: Path = PRESETS) -> Path:
    path = folder / f"{slug}.toml"
    path.write_text(preset_text(path.read_text(), hw, names, how))
    print(f"  wrote {path}")
    return path


def stale_presets(a100, h100, folder: Path = PRESETS, ops=None) -> list[str]:
    """Presets whose files differ from what this fit writes."""
    return [slug for slug, (hw, names, how) in outputs(a100, h100, ops).items()
            if (folder / f"{slug}.toml").read_text()
            != preset_text((folder / f"{slug}.toml").read_text(), hw, names, how)]


def report_passes(kernels: str, errors: dict[str, list[float]]) -> None:
    """One line per pass (forward, backward) of an attention fit's relative errors."""
    for pass_, errs in errors.items():
        print(f"  {pass_:<10} {kernels:<25} mean |error| "
              f"{100 * np.mean(np.abs(errs)):5.1f}%  worst "
              f"{100 * np.max(np.abs(errs)):5.1f}%  ({len(errs)} rows)")


def report_operators(ops) -> None:
    """Print the operator-level fits and their errors per table and collective."""
    gemm, levels = OPS.fit_gemm()
    print("GEMM shape tables (cuBLASLt, DeepGEMM): "
          + ", ".join(f"{n}={v:.4g}" for n, v in gemm.items()))
    for table, rows in OPS.gemm_errors(gemm, levels).items():
        errs = [abs(r[-1]) for r in rows]
        print(f"  {table:<27} level {levels[table]:.3f}  mean |error| {100 * np.mean(errs):5.1f}%"
              f"  worst {100 * max(errs):5.1f}%  ({len(rows)} shapes)")
    token = OPS.fit_gemm_token_half_serve(gemm["gemm_dim_half"], gemm["op_overhead_s"])
    print("serving GEMMs' token dimension (TensorRT-LLM FP8 Linear, H100 + H200, 16-2048 "
          f"tokens): gemm_token_half_serve={token['gemm_token_half_serve']:.4g} (the grid "
          f"starts at {OPS.TOKEN_HALVES[0]:.0f}); mean |log error| {100 * token['error']:.1f}% "
          f"(at gemm_dim_half: {100 * token['error_at_dim_half']:.1f}%), the tool's own fixed "
          f"time {token['extra_s'] * 1e6:.1f} us, levels "
          + ", ".join(f"{t.split()[-2]} {v:.3f}" for t, v in token["levels"].items()))
    for table in OPS.TOKEN_REPORTED:
        profile = OPS.token_half_profile([table], gemm["gemm_dim_half"], gemm["op_overhead_s"])
        print(f"  {table} (not fitted): mean |log error| at token half-points "
              + ", ".join(f"{h:.0f}: {100 * profile[h]:.1f}%" for h in (16.0, 64.0, 148.0, 300.0)))
    sustained = {t: OPS.large_gemm_level(t, gemm["gemm_dim_half"], gemm["op_overhead_s"])
                 for t in ("cuBLASLt H100 FP8", *OPS.LEVEL_TABLES)}
    print(f"sustained large-GEMM levels (shapes >= {OPS.LARGE_DIM}; the Blackwell FP8 transfer): "
          + ", ".join(f"{t} {v:.4f}" for t, v in sustained.items()))
    for slug in ("a100-80gb", "h100-sxm", "h200"):
        print(f"{slug}: hbm_eff={ops[slug]['hbm_eff']:.4g} (BabelStream triad)")
    for slug in ("a100-80gb", "h100-sxm"):
        names = [n for n in NET_OPS if n in OPS.fit_collectives(slug)]
        print(f"{slug} collectives (nccl-tests): "
              + ", ".join(f"{n}={ops[slug][n]:.4g}" for n in names))
        for tier, rows in OPS.collective_errors(slug, ops[slug]).items():
            kinds = sorted({r[0] for r in rows})
            for kind in kinds:
                errs = [abs(r[-1]) for r in rows if r[0] == kind]
                big = [abs(r[-1]) for r in rows if r[0] == kind and r[1] >= 2**30]
                print(f"  {tier:<6} {kind:<10} mean |error| {100 * np.mean(errs):5.1f}%  worst "
                      f"{100 * max(errs):5.1f}%  (>= 1 GiB: worst "
                      f"{100 * max(big, default=0.0):4.1f}%; {len(errs)} sizes)")
    print("h100-sxm fused attention on the FlashAttention-3 H100 kernel benchmarks")
    attention, errors = fit_attention(presets.hardware("h100-sxm").peak_bf16_flops_per_s / 1e12)
    print("  fitted: " + ", ".join(f"{n}={v:.4g}" for n, v in attention.items()))
    report_passes("FlashAttention-3", errors)
    dim_half = attention["attn_dim_half"]
    for gpu, slug, rows in (("H100", "h100-sxm", attention_rows(kernels(), "flashattention_2")),
                            ("B200", "b200", OPS.fa2_attention_rows_b200())):
        peak = presets.hardware(slug).peak_bf16_flops_per_s / 1e12
        fa2, errors = fit_attention(peak, rows, dim_half, FA2_EFF_BOUNDS)
        print(f"{slug} FlashAttention-2 ({gpu} FA2 kernel benchmarks): "
              + ", ".join(f"{n}={v:.4g}" for n, v in fa2_values(fa2).items()))
        report_passes("FlashAttention-2", errors)
        print(f"{slug} memory-efficient attention (A100 xFormers/FA2 ratio on the {gpu} FA2 "
              "fit): " + ", ".join(f"{n}={v:.4g}" for n, v in
                                   mea_values(fa2_values(fa2), dim_half).items()))
    cudnn, errors = fit_attention(presets.hardware("h100-sxm").peak_bf16_flops_per_s / 1e12,
                                  attention_rows(kernels(), "cudnn"), dim_half)
    print("h100-sxm cuDNN attention (the FlashAttention-3 paper's cuDNN columns): "
          + ", ".join(f"{n}={v:.4g}" for n, v in cudnn_values(cudnn).items()))
    report_passes("cuDNN (2024-07)", errors)
    share, half, errors = mea_ratios(dim_half)
    print(f"a100 xFormers over FlashAttention-2 (FA2 paper, fwd+bwd): share x{share:.3f}, "
          f"half-rate point x{half:.3f}")
    report_passes("xFormers (A100)", errors)
    for gpu, slug in (("H200", "h100-sxm"), ("B200", "b200"), ("GB200", "gb200-nvl72"),
                      ("GB300", "gb300-nvl72")):
        fp8, errors = fit_fp8_attention(slug, dim_half)
        print(f"{slug} FP8 attention ({gpu} cuDNN FP8 SDPA, causal): "
              + ", ".join(f"{n}={v:.4g}" for n, v in fp8.items()))
        report_passes("cuDNN FP8", errors)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", action="store_true", help="write fitted values to the presets")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless the presets hold exactly the fitted values")
    ap.add_argument("--no-holdout", action="store_true", help="skip the row-split refits")
    args = ap.parse_args()
    data = V.published()

    ops = operator_values()
    report_operators(ops)

    for slug in BLACKWELL:
        hw = presets.hardware(slug)
        rows = OPS.cudnn_attention_rows(slug)
        attention, errors = fit_attention(hw.peak_bf16_flops_per_s / 1e12, rows,
                                          ops["h100-sxm"]["attn_dim_half"])
        print(f"{slug} fused attention on cuDNN SDPA (head dim 128, causal): "
              + ", ".join(f"{n}={v:.4g}" for n, v in attention.items()))
        report_passes("cuDNN", errors)

    print("a100-80gb on Megatron-LM 2021 Table 1 + Korthikanti 2022 Table 4")
    a100 = fit_a100(ops)
    print("  fitted: " + ", ".join(f"{n}={getattr(a100, n):.4g}" for n in A100_NAMES))
    report("all rows", a100_sets(a100))
    if not args.no_holdout:
        n = len(data["megatron_lm_2021_table1"]["rows"])
        base = presets.hardware("a100-80gb").with_(**ops["a100-80gb"])
        for parity, sets in holdout(base, A100_NAMES, a100_sets, n):
            report(f"held-out{parity}", sets)

    print("h100-sxm on NeMo 24.07 FP8 + TensorRT-LLM H100")
    h100 = fit_h100(ops)
    print("  fitted: " + ", ".join(f"{n}={getattr(h100, n):.4g}" for n in H100_NAMES)
          + f"; tied: gemm_eff_max={h100.gemm_eff_max:.4g} (BF16 by the H100's MAMF shares)")
    report("all rows", h100_sets(h100))
    if not args.no_holdout:
        n_nemo = len(data["nemo_24_07_pretraining_h100_fp8"]["rows"])
        n_trt = len(_trt_rows(data, "H100"))
        for parity in (0, 1):
            nemo_train = [i for i in range(n_nemo) if i % 2 == parity]
            trt_train = [i for i in range(n_trt) if i % 2 == parity]
            hw, _ = fit(h100_base(ops), H100_NAMES,
                        lambda h, a=nemo_train, b=trt_train: h100_sets(h, a, b),
                        derive=h100_bf16)
            test = h100_sets(hw, [i for i in range(n_nemo) if i % 2 != parity],
                             [i for i in range(n_trt) if i % 2 != parity])
            report(f"held-out{parity}", test)

    print("serving grouped-GEMM share (grouped_gemm_eff_serve) on TensorRT-LLM's MoE module "
          "benchmarks (aiconfigurator; FP8 per-tensor on Hopper, NVFP4 on Blackwell)")
    for slug, (hw, names, _) in outputs(a100, h100, ops).items():
        if slug in OPS.SERVE_MOE_TABLES:
            own = own_hardware(slug, hw, names)
            errors = OPS.grouped_gemm_errors(slug, own, own.grouped_gemm_eff_serve)
            at_one = OPS.grouped_gemm_errors(slug, own, 1.0)
            print(f"  {slug:<12} {hw.grouped_gemm_eff_serve:.2f} of the dense rate: mean "
                  f"|log error| {np.mean(np.abs(errors)):.3f} over {len(errors)} rows (at 1: "
                  f"{np.mean(np.abs(at_one)):.3f})")

    print("h200: H100 values (own hbm_eff), scored on the never-fitted H200 TensorRT-LLM rows")
    h200 = own_hardware("h200", h100.with_(hbm_eff=ops["h200"]["hbm_eff"]), H100_ALL)
    trt200 = V.trtllm_llama31_8b(data, {"H200 SXM 141GB": h200}, _trt_rows(data, "H200"))
    report("hold-out", [trt200])

    if args.write:
        for slug, (hw, names, how) in outputs(a100, h100, ops).items():
            write_params(slug, hw, names, how)
    if args.check:
        stale = stale_presets(a100, h100, ops=ops)
        print("presets: " + (f"differ from the fit: {', '.join(stale)} (run with --write)"
                             if stale else "hold exactly the fitted values"))
        return 1 if stale else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
