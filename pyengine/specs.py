"""Model, Hardware and Plan: frozen, validated dataclasses.

Every field is checked on construction; a bad value raises :class:`SpecError` naming the
field, the value and the allowed range. Units are SI and carried in the field names
(``_bytes``, ``_s``, ``_flops_per_s``, ``_bytes_per_s``); files in friendlier units
(GB, TFLOP/s, us) are converted once, in :mod:`pyengine.loaders`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from .errors import SpecError

MODES = ("train", "prefill", "decode")
DTYPES = ("bf16", "fp8", "nvfp4", "mxfp4")
KV_DTYPES = ("auto", "bf16", "fp8")
RECOMPUTE = ("none", "selective", "full")
GRAD_DTYPES = ("fp32", "bf16")
MOE_DISPATCHERS = ("alltoall", "allgather", "flex")  # Megatron-Core moe_token_dispatcher_type
# fused attention: the GPU's fastest, FlashAttention-2, or the fused kernels in FP8
ATTENTION_KERNELS = ("auto", "fa2", "fp8", "mem_efficient", "cudnn")
NORMS = ("layernorm", "rmsnorm")

# Largest degree or size any integer field may take: big enough for any real cluster,
# small enough that every product the cost model forms stays exact in float64.
MAX_INT = 1 << 31


def check_int(owner: str, name: str, value: Any, lo: int, hi: int = MAX_INT) -> int:
    """Return ``value`` as an int in ``[lo, hi]`` or raise SpecError."""
    allowed = f"an integer in [{lo}, {hi}]"
    if isinstance(value, bool):
        raise SpecError(owner, name, value, allowed)
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise SpecError(owner, name, value, allowed)
        value = int(value)
    if not isinstance(value, int):
        try:
            import numpy as np

            if isinstance(value, np.integer):
                value = int(value)
            else:
                raise SpecError(owner, name, value, allowed)
        except ImportError:  # pragma: no cover - numpy is a dependency
            raise SpecError(owner, name, value, allowed) from None
    if not lo <= value <= hi:
        raise SpecError(owner, name, value, allowed)
    return value


def check_float(
    owner: str, name: str, value: Any, lo: float, hi: float = math.inf, lo_open: bool = False
) -> float:
    """Return ``value`` as a finite float in ``[lo, hi]`` (``(lo, hi]`` if lo_open)."""
    bracket = "(" if lo_open else "["
    allowed = f"a finite number in {bracket}{lo:g}, {hi:g}]"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise SpecError(owner, name, value, allowed) from None
    value = float(value)
    if not math.isfinite(value) or value > hi or value < lo or (lo_open and value == lo):
        raise SpecError(owner, name, value, allowed)
    return value


def check_choice(owner: str, name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise SpecError(owner, name, value, "one of " + ", ".join(repr(c) for c in choices))
    return value


def check_bool(owner: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SpecError(owner, name, value, "true or false")
    return value


class _Spec:
    """Shared helpers: construction from a dict with unknown keys rejected."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(cls.__name__, unknown[0], data[unknown[0]], "a field of " + cls.__name__
                            + " (" + ", ".join(sorted(known)) + ")")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    def with_(self, **changes: Any):
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class Model(_Spec):
    """A decoder-only transformer, dense or mixture-of-experts.

    MoE layers: with ``n_experts > 0``, layer i (0-based) is an MoE layer when
    ``i >= first_k_dense`` and ``(i - first_k_dense) % moe_every == 0``
    (DeepSeek-V3: first_k_dense=3, moe_every=1; Mixtral: 0, 1).
    MLA (DeepSeek-V3): ``kv_lora_rank > 0`` switches attention to multi-head latent
    attention; the KV cache then holds ``kv_lora_rank + rope_head_dim`` values per token
    and layer, and attention projections are counted through the low-rank factors.
    """

    name: str
    n_layers: int
    hidden: int
    n_heads: int
    ffn_hidden: int
    vocab: int
    n_kv_heads: int = 0  # 0 = n_heads (MHA); fewer = GQA; 1 = MQA
    head_dim: int = 0  # 0 = hidden // n_heads
    gated_mlp: bool = False  # SwiGLU: gate and up projections
    tied_embeddings: bool = False
    bias: bool = False  # linear-layer biases (GPT-2/3 style)
    norm: str = "rmsnorm"
    learned_pos_emb: int = 0  # rows of a learned position embedding (GPT); 0 = rotary
    dropout: bool = False  # dropout masks kept for backward (Korthikanti's GPT layer)
    n_experts: int = 0
    top_k: int = 0
    # group-limited routing (DeepSeek-V3's node-limited routing; Megatron-Core
    # moe_router_num_groups / moe_router_group_topk, Hugging Face n_group / topk_group): the
    # experts in router_groups groups, a token's top_k from its best router_group_topk
    router_groups: int = 0
    router_group_topk: int = 0
    # chunked local attention (Llama 4: attention_chunk_size 8192, every 4th layer a global
    # NoPE layer): a query attends within its chunk of attention_chunk tokens, every
    # global_every-th layer to the whole context; 0 = full causal attention everywhere
    attention_chunk: int = 0
    global_every: int = 0
    expert_ffn_hidden: int = 0
    n_shared_experts: int = 0
    first_k_dense: int = 0
    moe_every: int = 1
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    rope_head_dim: int = 0
    v_head_dim: int = 0  # 0 = head_dim
    mtp_layers: int = 0  # multi-token-prediction modules (DeepSeek-V3), training only
    source: str = ""

    def __post_init__(self) -> None:
        o = "Model"
        if not isinstance(self.name, str) or not self.name:
            raise SpecError(o, "name", self.name, "a non-empty string")
        for name in ("n_layers", "hidden", "n_heads", "ffn_hidden", "vocab"):
            check_int(o, name, getattr(self, name), 1)
        for name in ("n_kv_heads", "head_dim", "learned_pos_emb", "n_experts", "top_k",
                     "expert_ffn_hidden", "n_shared_experts", "first_k_dense", "q_lora_rank",
                     "kv_lora_rank", "rope_head_dim", "v_head_dim"):
            check_int(o, name, getattr(self, name), 0)
        check_int(o, "mtp_layers", self.mtp_layers, 0, 64)
        check_int(o, "moe_every", self.moe_every, 1)
        for name in ("gated_mlp", "tied_embeddings", "bias", "dropout"):
            check_bool(o, name, getattr(self, name))
        check_choice(o, "norm", self.norm, NORMS)
        if self.n_kv_heads == 0:
            object.__setattr__(self, "n_kv_heads", self.n_heads)
        if self.head_dim == 0:
            if self.hidden % self.n_heads:
                raise SpecError(o, "head_dim", 0, f"given explicitly when hidden ({self.hidden}) "
                                f"is not a multiple of n_heads ({self.n_heads})")
            object.__setattr__(self, "head_dim", self.hidden // self.n_heads)
        if self.v_head_dim == 0:
            object.__setattr__(self, "v_head_dim", self.head_dim)
        if self.n_kv_heads > self.n_heads or self.n_heads % self.n_kv_heads:
            raise SpecError(o, "n_kv_heads", self.n_kv_heads,
                            f"a divisor of n_heads ({self.n_heads})")
        if self.n_experts:
            check_int(o, "top_k", self.top_k, 1, self.n_experts)
            check_int(o, "expert_ffn_hidden", self.expert_ffn_hidden, 1)
            check_int(o, "first_k_dense", self.first_k_dense, 0, self.n_layers - 1)
        elif self.top_k or self.n_shared_experts or self.expert_ffn_hidden:
            raise SpecError(o, "n_experts", 0, "> 0 when top_k, expert_ffn_hidden or "
                            "n_shared_experts is set")
        check_int(o, "attention_chunk", self.attention_chunk, 0)
        check_int(o, "global_every", self.global_every, 0, self.n_layers)
        if self.global_every and not self.attention_chunk:
            raise SpecError(o, "attention_chunk", 0, "> 0 when global_every is set (global "
                            "layers among chunked ones)")
        check_int(o, "router_groups", self.router_groups, 0)
        if self.router_groups:
            if not self.n_experts or self.n_experts % self.router_groups:
                raise SpecError(o, "router_groups", self.router_groups,
                                f"a divisor of n_experts ({self.n_experts})")
            per_group = self.n_experts // self.router_groups
            check_int(o, "router_group_topk", self.router_group_topk,
                      max(1, -(-self.top_k // per_group)), self.router_groups)
        else:
            check_int(o, "router_group_topk", self.router_group_topk, 0, 0)
        if self.kv_lora_rank == 0 and (self.q_lora_rank or self.rope_head_dim):
            raise SpecError(o, "kv_lora_rank", 0, "> 0 (MLA) when q_lora_rank or "
                            "rope_head_dim is set")

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 0

    @property
    def n_moe_layers(self) -> int:
        if not self.n_experts:
            return 0
        span = self.n_layers - self.first_k_dense
        return (span + self.moe_every - 1) // self.moe_every


@dataclass(frozen=True)
class Hardware(_Spec):
    """One GPU kind and the cluster network around it.

    Bandwidths are per GPU and one direction. The efficiency parameters bound what a
    kernel can attain (see :mod:`pyengine.reference`, [T1]-[T3]): an M x N x K GEMM
    attains ``gemm_eff_max`` times one saturation ``d / (d + gemm_dim_half)`` per dimension
    d of peak (``gemm_eff_max_fp8`` for FP8 GEMMs; a serving engine's GEMMs saturate in
    the token dimension at ``gemm_token_half_serve`` instead); memory-bound
    work attains ``hbm_eff`` of HBM bandwidth; collectives ``net_eff`` of NVLink and
    ``inter_eff`` of the scale-out NIC bandwidth.
    They are fitted by ``tools/calibrate.py`` on published runs.
    """

    name: str
    peak_bf16_flops_per_s: float
    hbm_capacity_bytes: float
    hbm_bandwidth_bytes_per_s: float
    gpus_per_node: int
    intra_node_bandwidth_bytes_per_s: float
    inter_node_bandwidth_bytes_per_s: float
    peak_fp8_flops_per_s: float = 0.0  # 0 = no FP8 tensor cores
    peak_fp4_flops_per_s: float = 0.0  # dense NVFP4/MXFP4 peak; 0 = none (FP4 plans infeasible)
    nvlink_domain: int = 0  # GPUs joined by NVLink (0 = gpus_per_node; 72 in an NVL72 rack)
    intra_node_latency_s: float = 3e-6
    inter_node_latency_s: float = 10e-6
    gemm_eff_max: float = 0.8
    gemm_eff_max_fp8: float = 0.6  # FP8 GEMMs reach a smaller share of their peak
    gemm_eff_max_fp4: float = 0.0  # FP4 (NVFP4/MXFP4) GEMMs' share of the FP4 peak; 0 = FP8's
    gemm_dim_half: float = 96.0
    gemm_token_half_serve: float = 0.0  # serving GEMMs' token (M) half-point; 0 = gemm_dim_half
    hbm_eff: float = 0.85
    net_eff: float = 0.8  # of the NVLink rate (NCCL ring collectives)
    inter_eff: float = 0.8  # of the scale-out NIC rate
    op_overhead_s: float = 4e-6  # fixed GPU-side cost of one kernel
    # Host CPU time per kernel launch when a step is not replayed from a CUDA graph:
    # PyTorch eager issues a small torch.matmul every 11.3-17.7 us, median of the eight
    # sizes 13.0 us (pyengine/data/operators.json pytorch_small_gemm_launch_time_nvidia_dgxc,
    # NVIDIA/dgxc-benchmarking @8e77d60 microbenchmarks/cpu_overhead); Meta's HTA docs put
    # PyTorch launches at 5-20 us (hta_cpu_launch_time_statement); a raw cuLaunchKernel is
    # 3.0 us on GB200 (kernel_launch_overhead_breakdown_gb200_tritonbench), the floor of a
    # C++ runtime. Training frameworks, vLLM's eager mode and TensorRT-LLM's PyTorch flow
    # run eager PyTorch.
    launch_overhead_s: float = 13e-6
    # Per-step serving cost not hidden behind the GPU. Engines overlap the CPU work of a
    # step (scheduling, sampled-token processing, detokenisation) with the next step's GPU
    # work: TensorRT-LLM's overlap scheduler, on by default (docs features/overlap-scheduler),
    # SGLang v0.4's zero-overhead scheduler ("no single idle time on the GPU" over five
    # decode batches, lmsys.org/blog/2024-12-04-sglang-v0-4); without it the GPU idles about
    # 4 ms a decode step (vLLM 0.5.3, vllm-project/vllm#6854). What stays exposed is the host
    # turnaround and per-step input copies between steps: 146 us gaps plus 12 us uploads a
    # step in a steady-state trace (kekzl/imp#2021); NVIDIA's aiconfigurator adds no per-step
    # constant to TensorRT-LLM steps (ai-dynamo/aiconfigurator sdk/backends/trtllm_backend.py).
    step_overhead_s: float = 150e-6
    # Host CPU time per request of a serving step, which the overlap scheduler hides behind
    # the step's GPU work until it is the longer: TensorRT-LLM's PyExecutor handles every
    # scheduled request in Python each iteration (capacity and micro-batch scheduling,
    # KV-block bookkeeping, sampled-token handling, stop checks). Measured by its
    # maintainers on GB200 (Grace host), GPT-OSS-120B at max throughput with 1536 requests
    # per attention-DP rank, 1k/1k: 45.11 ms average host_step_time an iteration
    # (NVIDIA/TensorRT-LLM pull request #10273, 2025-12-24), i.e. (45.11 ms - 150 us) /
    # 1536 = 29.3 us a request. The one published figure; other hosts (x86 DGX) take it too.
    request_overhead_s: float = 29.3e-6
    # fused attention (FlashAttention-class kernels): shares of the 16-bit peak, fitted on
    # kernel benchmarks by tools/calibrate.py; attn_eff_fwd = 0: the GEMM rate instead
    attn_eff_fwd: float = 0.0
    attn_eff_bwd: float = 0.0
    attn_seq_half: float = 0.0
    attn_dim_half: float = 0.0
    # FlashAttention-2's own rates (plans with attention_kernel = fa2): the Ampere-generation
    # kernels on Hopper and Blackwell reach a smaller share of the peak; fitted on the FA2
    # columns of kernel benchmarks by tools/calibrate.py, attn_dim_half shared; 0 = none
    fa2_eff_fwd: float = 0.0
    fa2_eff_bwd: float = 0.0
    fa2_seq_half: float = 0.0
    # PyTorch SDPA's memory-efficient kernels (plans with attention_kernel = mem_efficient:
    # xFormers' CUTLASS kernels, Ampere-generation like FA2 but slower): one share of the
    # 16-bit peak for forward and backward (the only figures are fwd+bwd), attn_dim_half
    # shared; tools/calibrate.py transfers the FlashAttention-2 paper's A100 xFormers/FA2
    # ratio onto the GPU's own FA2 figures; 0 = none
    mea_eff: float = 0.0
    mea_seq_half: float = 0.0
    # cuDNN's fused attention (plans with attention_kernel = cudnn: Transformer Engine's
    # FusedAttention, which TE selects on Hopper over flash-attn, PyTorch SDPA
    # CUDNN_ATTENTION): shares of the 16-bit peak, attn_dim_half shared; fitted on the
    # cuDNN columns of kernel benchmarks by tools/calibrate.py (on Blackwell the GPU's
    # fastest kernels are cuDNN's: the same values); 0 = none
    cudnn_eff_fwd: float = 0.0
    cudnn_eff_bwd: float = 0.0
    cudnn_seq_half: float = 0.0
    # FP8 fused attention (plans with attention_kernel = fp8): shares of the FP8 peak,
    # fitted on FP8 attention benchmarks by tools/calibrate.py, attn_dim_half shared; 0 = no
    # figures (forward: no fp8 plans; backward: it runs at the 16-bit kernels' rate)
    attn_fp8_eff_fwd: float = 0.0
    attn_fp8_eff_bwd: float = 0.0
    attn_fp8_seq_half: float = 0.0
    memory_overhead_bytes: float = 3 * 2**30  # CUDA context, NCCL buffers, fragmentation
    # A serving engine's allocations beyond that (inference only): NVIDIA's aiconfigurator
    # budgets TensorRT-LLM at 3.5 GiB "other" memory plus 392 MB of NCCL memory at TP >= 4
    # (ai-dynamo/aiconfigurator @77f0282 src/aiconfigurator/systems/h800_sxm.yaml, misc:
    # other_mem 3758096384, nccl_mem 411041792): the 0.5 GiB beyond memory_overhead plus the
    # NCCL workspace, for CUDA-graph pools, sampling and logits buffers
    runtime_buffer_bytes: float = 0.5 * 2**30 + 411041792
    # What one GPU's host-device copies move, one direction, over the CPU-GPU link that CPU
    # activation offloading uses: PCIe Gen5 x16 (128 GB/s both directions nominal,
    # Transformer Engine docs "CPU Offloading") measures 51-52 GB/s with NVBandwidth on
    # Azure's H100/H200 pages; the presets carry their own figures (NVLink-C2C on Grace
    # 193-211 GB/s measured)
    host_link_bandwidth_bytes_per_s: float = 52e9
    # The rate a serving engine's grouped (MoE expert) GEMMs reach, as a share of the
    # preset's dense GEMM rate: TensorRT-LLM's CUTLASS MoE kernels, fitted on
    # aiconfigurator's operator benchmarks of them (tools/fit_operators.py
    # fit_grouped_gemm_serve); 1 = the dense rate (training's grouped GEMMs: DeepGEMM's
    # grouped tables match its dense ones). Above 1 where the kernels pass the end-to-end
    # dense level the presets carry
    grouped_gemm_eff_serve: float = 1.0
    source: str = ""

    def __post_init__(self) -> None:
        o = "Hardware"
        if not isinstance(self.name, str) or not self.name:
            raise SpecError(o, "name", self.name, "a non-empty string")
        for name in ("peak_bf16_flops_per_s", "hbm_capacity_bytes", "hbm_bandwidth_bytes_per_s",
                     "intra_node_bandwidth_bytes_per_s", "inter_node_bandwidth_bytes_per_s",
                     "host_link_bandwidth_bytes_per_s"):
            object.__setattr__(self, name, check_float(o, name, getattr(self, name), 0.0,
                                                       lo_open=True))
        check_int(o, "gpus_per_node", self.gpus_per_node, 1, 1 << 16)
        check_int(o, "nvlink_domain", self.nvlink_domain, 0, 1 << 16)
        for name in ("peak_fp8_flops_per_s", "peak_fp4_flops_per_s", "intra_node_latency_s",
                     "inter_node_latency_s", "op_overhead_s", "launch_overhead_s",
                     "step_overhead_s", "request_overhead_s", "memory_overhead_bytes",
                     "runtime_buffer_bytes"):
            object.__setattr__(self, name, check_float(o, name, getattr(self, name), 0.0))
        for name in ("attn_eff_fwd", "attn_eff_bwd", "fa2_eff_fwd", "fa2_eff_bwd", "mea_eff",
                     "cudnn_eff_fwd", "cudnn_eff_bwd", "attn_fp8_eff_fwd", "attn_fp8_eff_bwd"):
            object.__setattr__(self, name, check_float(o, name, getattr(self, name), 0.0, 1.0))
        for name in ("attn_seq_half", "attn_dim_half", "fa2_seq_half", "mea_seq_half",
                     "cudnn_seq_half", "attn_fp8_seq_half"):
            object.__setattr__(self, name, check_float(o, name, getattr(self, name), 0.0, 1e6))
        for fwd, bwd in (("attn_eff_fwd", "attn_eff_bwd"), ("fa2_eff_fwd", "fa2_eff_bwd"),
                         ("cudnn_eff_fwd", "cudnn_eff_bwd")):
            if getattr(self, fwd) > 0 and getattr(self, bwd) <= 0:
                raise SpecError(o, bwd, getattr(self, bwd),
                                f"> 0 when {fwd} is set (the backward needs its own rate)")
        if self.attn_fp8_eff_bwd > 0 and self.attn_fp8_eff_fwd <= 0:
            raise SpecError(o, "attn_fp8_eff_fwd", self.attn_fp8_eff_fwd,
                            "> 0 when attn_fp8_eff_bwd is set (FP8 attention needs a forward rate)")
        object.__setattr__(self, "gemm_eff_max_fp4",
                           check_float(o, "gemm_eff_max_fp4", self.gemm_eff_max_fp4, 0.0, 1.0))
        # a share of the preset's end-to-end dense rate, which a serving engine's grouped
        # kernels may pass (fitted: 0.5-1.3)
        object.__setattr__(self, "grouped_gemm_eff_serve",
                           check_float(o, "grouped_gemm_eff_serve", self.grouped_gemm_eff_serve,
                                       0.0, 2.0, lo_open=True))
        for name in ("gemm_eff_max", "gemm_eff_max_fp8", "hbm_eff", "net_eff", "inter_eff"):
            object.__setattr__(self, name, check_float(o, name, getattr(self, name), 0.0, 1.0,
                                                       lo_open=True))
        object.__setattr__(self, "gemm_dim_half",
                           check_float(o, "gemm_dim_half", self.gemm_dim_half, 0.0))
        object.__setattr__(self, "gemm_token_half_serve",
                           check_float(o, "gemm_token_half_serve", self.gemm_token_half_serve,
                                       0.0))


@dataclass(frozen=True)
class Plan(_Spec):
    """One way to run the model: parallel degrees, batch, schedule, memory savers.

    World size = tp * cp * pp * dp (Megatron-Core order). Expert layers re-fold the same
    GPUs as etp * ep * edp = tp * cp * dp ("MoE parallel folding"), so ep may span TP and
    CP ranks as well as DP ranks; ``etp`` defaults to ``tp``.

    Inference: ``global_batch`` is the number of concurrent sequences (split over dp
    replicas and pipelined in micro-batches of ``micro_batch``); ``seq_len`` is the prompt
    length and ``gen_tokens`` the tokens generated per sequence in ``decode`` mode.
    """

    mode: str = "train"
    dtype: str = "bf16"  # bf16 | fp8 | nvfp4 | mxfp4 (GEMMs; stored weights in inference)
    kv_dtype: str = "auto"  # KV cache: auto (fp8 under fp8/fp4 inference) | bf16 | fp8
    global_batch: int = 1
    micro_batch: int = 1
    seq_len: int = 2048
    gen_tokens: int = 0
    tp: int = 1
    pp: int = 1
    pp_embedding: bool = False  # the embedding counts as a layer in the pipeline split
    pp_loss: bool = False  # the output layer + loss count as a layer in the split
    pp_first_layers: int = 0  # transformer layers on the first stage (0 = even split)
    pp_last_layers: int = 0  # ... on the last stage (0 = even split)
    dp: int = 1
    cp: int = 1
    ep: int = 1
    etp: int = 0  # 0 = same as tp
    vpp: int = 1
    zero: int = 1  # 0 none, 1 optimizer states (distributed optimizer), 2 + grads, 3 + params
    recompute: str = "none"  # none | selective (the recompute_* modules) | full
    recompute_core_attn: bool = True  # selective recompute modules (Megatron-Core names)
    recompute_layernorm: bool = False
    recompute_mla_up_proj: bool = False
    recompute_mlp: bool = False
    recompute_moe: bool = False
    recompute_moe_act: bool = False
    recompute_shared_experts: bool = False
    recompute_layers: int = 0  # full: layers recomputed per virtual stage (0 = all)
    # training: activations of the first n layers in host memory (Megatron-Core
    # cpu_offloading_num_layers; pp 1, no recomputation, n < layers)
    cpu_offload_layers: int = 0
    fp8_activations: bool = False  # GEMM inputs kept for backward in FP8
    sequence_parallel: bool = True
    capacity_factor: float = 1.0
    moe_load_imbalance: float = 1.0  # busiest expert rank's tokens over a balanced one's
    cp_overlap: bool = True  # CP ring exchange behind the same step's attention
    # MoE token dispatch (Megatron-Core moe_token_dispatcher_type): alltoall | allgather |
    # flex (DeepEP/HybridEP, deduplicated per NVLink domain)
    moe_token_dispatcher: str = "alltoall"
    flash_attention: bool = True
    # fused attention: auto (the GPU's fastest) | fa2 | fp8 | mem_efficient | cudnn
    attention_kernel: str = "auto"
    grad_dtype: str = "fp32"
    optimizer_dtype: str = "fp32"  # Adam moments (master weights stay fp32)
    tp_overlap: bool = False
    ep_overlap: bool = False  # expert all-to-all hidden behind other compute
    dp_overlap: bool = True  # DP gradient/parameter traffic bucketed behind compute
    # backward: column-parallel input-gradient collectives behind the weight-gradient GEMMs
    tp_dgrad_overlap: bool = True
    pp_scatter_gather: bool = True  # without SP: 1/tp per rank between stages, all-gathered
    # serving decode steps replayed from CUDA graphs, as TensorRT-LLM (cuda_graph_config) and
    # vLLM (enforce_eager=False) run them by default; training steps and prefill passes are
    # launched eagerly (Megatron-Core and NeMo capture no graphs by default)
    cuda_graphs: bool = True
    # serving: the token budget of an engine step (TensorRT-LLM/vLLM max_num_tokens; 0 = the
    # micro-batch's prompt tokens, prompts prefilled apart), the KV cache as a fraction of
    # the memory left (TensorRT-LLM kv_cache_free_gpu_mem_fraction; 0 = sized by the
    # requests) and its paged block (TensorRT-LLM KvCacheConfig.tokens_per_block = 32)
    max_num_tokens: int = 0
    kv_cache_fraction: float = 0.0
    kv_block_tokens: int = 32

    def __post_init__(self) -> None:
        o = "Plan"
        check_choice(o, "mode", self.mode, MODES)
        check_choice(o, "dtype", self.dtype, DTYPES)
        check_choice(o, "kv_dtype", self.kv_dtype, KV_DTYPES)
        check_choice(o, "recompute", self.recompute, RECOMPUTE)
        check_choice(o, "grad_dtype", self.grad_dtype, GRAD_DTYPES)
        check_choice(o, "optimizer_dtype", self.optimizer_dtype, GRAD_DTYPES)
        check_choice(o, "moe_token_dispatcher", self.moe_token_dispatcher, MOE_DISPATCHERS)
        check_choice(o, "attention_kernel", self.attention_kernel, ATTENTION_KERNELS)
        for name in ("recompute_core_attn", "recompute_layernorm", "recompute_mla_up_proj",
                     "recompute_mlp", "recompute_moe", "recompute_moe_act",
                     "recompute_shared_experts", "fp8_activations"):
            check_bool(o, name, getattr(self, name))
        for name in ("recompute_layers", "cpu_offload_layers"):
            object.__setattr__(self, name, check_int(o, name, getattr(self, name), 0))
        for name in ("global_batch", "micro_batch", "seq_len", "tp", "pp", "dp", "cp", "ep",
                     "vpp"):
            object.__setattr__(self, name, check_int(o, name, getattr(self, name), 1))
        object.__setattr__(self, "gen_tokens", check_int(o, "gen_tokens", self.gen_tokens, 0))
        object.__setattr__(self, "etp", check_int(o, "etp", self.etp, 0))
        for name in ("pp_first_layers", "pp_last_layers"):
            object.__setattr__(self, name, check_int(o, name, getattr(self, name), 0))
        check_bool(o, "pp_embedding", self.pp_embedding)
        check_bool(o, "pp_loss", self.pp_loss)
        object.__setattr__(self, "zero", check_int(o, "zero", self.zero, 0, 3))
        check_bool(o, "sequence_parallel", self.sequence_parallel)
        check_bool(o, "flash_attention", self.flash_attention)
        check_bool(o, "tp_overlap", self.tp_overlap)
        check_bool(o, "ep_overlap", self.ep_overlap)
        check_bool(o, "dp_overlap", self.dp_overlap)
        check_bool(o, "tp_dgrad_overlap", self.tp_dgrad_overlap)
        check_bool(o, "cp_overlap", self.cp_overlap)
        check_bool(o, "pp_scatter_gather", self.pp_scatter_gather)
        check_bool(o, "cuda_graphs", self.cuda_graphs)
        object.__setattr__(self, "max_num_tokens",
                           check_int(o, "max_num_tokens", self.max_num_tokens, 0))
        object.__setattr__(self, "kv_block_tokens",
                           check_int(o, "kv_block_tokens", self.kv_block_tokens, 1, 1 << 20))
        object.__setattr__(self, "kv_cache_fraction",
                           check_float(o, "kv_cache_fraction", self.kv_cache_fraction, 0.0, 1.0))
        object.__setattr__(self, "moe_load_imbalance",
                           check_float(o, "moe_load_imbalance", self.moe_load_imbalance, 1.0,
                                       1e6))
        object.__setattr__(self, "capacity_factor",
                           check_float(o, "capacity_factor", self.capacity_factor, 0.0, 1e6))
        if self.mode == "decode" and self.gen_tokens < 1:
            raise SpecError(o, "gen_tokens", self.gen_tokens, ">= 1 in decode mode")

    @property
    def n_gpus(self) -> int:
        """World size: tp * cp * pp * dp. EP and ETP fold inside it and add no GPUs."""
        return self.tp * self.cp * self.pp * self.dp

    @property
    def expert_tp(self) -> int:
        return self.etp or self.tp


__all__ = ["Model", "Hardware", "Plan", "Limits", "MODES", "DTYPES", "KV_DTYPES", "RECOMPUTE",
           "GRAD_DTYPES", "MOE_DISPATCHERS", "ATTENTION_KERNELS",
           "check_int", "check_float", "check_choice", "check_bool"]


@dataclass(frozen=True)
class Limits(_Spec):
    """Constraints decided inside the kernel: GPU budget and usable HBM fraction."""

    gpus_exact: int = 0  # 0 = any
    gpus_max: int = 0  # 0 = any
    mem_fraction: float = 1.0

    def __post_init__(self) -> None:
        o = "Limits"
        object.__setattr__(self, "gpus_exact", check_int(o, "gpus_exact", self.gpus_exact, 0))
        object.__setattr__(self, "gpus_max", check_int(o, "gpus_max", self.gpus_max, 0))
        object.__setattr__(self, "mem_fraction",
                           check_float(o, "mem_fraction", self.mem_fraction, 0.0, 1.0,
                                       lo_open=True))
