"""The ONE list of kernel columns: model, hardware, limit, plan inputs; outputs; violations.

Every backend follows these lists: the Python reference reads ``p[P_TP]``, the C++
header ``csrc/schema.h`` is generated from here (``python -m pyengine.schema``; a test
regenerates it and diffs), and the batch API names its arrays after ``PLAN`` and
``OUTPUTS``. Adding a column is one line here plus its formula in the kernels.

All kernel values are float64; categorical plan fields are small integer codes listed in
``choices`` (the order is the code).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Column:
    name: str
    unit: str
    doc: str
    kind: str = "float"  # float | int | bool | choice
    choices: tuple[str, ...] = ()
    lo: float = 0.0  # allowed range for plan inputs
    hi: float = float(1 << 31)


# Model vector: facts and parameter counts derived once per model (pyengine.reference.model_vector).
MODEL = (
    Column("layers", "", "transformer layers L"),
    Column("hidden", "", "hidden size h"),
    Column("heads", "", "attention (query) heads a"),
    Column("kv_heads", "", "key/value heads (GQA); = heads for MHA and MLA"),
    Column("qk_head_dim", "", "query/key width per head (MLA: nope + rope)"),
    Column("v_head_dim", "", "value width per head"),
    Column("ffn", "", "dense MLP intermediate size"),
    Column("vocab", "", "vocabulary size V"),
    Column("gated", "", "1 if the MLP is gated (SwiGLU: 3 matrices), else 0 (2 matrices)"),
    Column("dropout", "", "1 if dropout masks are kept for backward"),
    Column("mla", "", "1 for multi-head latent attention (compressed, unsharded KV cache)"),
    Column("kv_cache_elems", "", "KV-cache values per token per layer, whole model"),
    Column("q_lora_rank", "", "MLA query compression rank (0 = none)"),
    Column("kv_lora_rank", "", "MLA key/value compression rank (0 = not MLA)"),
    Column("rope_head_dim", "", "MLA decoupled RoPE width per head"),
    Column("experts", "", "routed experts E (0 = dense model)"),
    Column("top_k", "", "experts per token k"),
    Column("router_groups", "", "group-limited routing: groups the experts are split into "
           "(0 = none; DeepSeek-V3: 8)"),
    Column("router_group_topk", "", "group-limited routing: groups a token's experts come from "
           "(DeepSeek-V3: 4)"),
    Column("attention_chunk", "tok", "chunked local attention: a query attends to the keys of "
           "its own chunk of this many tokens (0 = full causal attention; Llama 4: 8192)"),
    Column("global_every", "", "with chunked attention, every n-th layer attends to the whole "
           "context (0 = none; Llama 4: 4, its NoPE layers)"),
    Column("expert_ffn", "", "routed expert intermediate size"),
    Column("shared_ffn", "", "shared-expert intermediate size, summed over shared experts"),
    Column("first_k_dense", "", "leading dense layers before the first MoE layer"),
    Column("moe_every", "", "every n-th layer after first_k_dense is MoE"),
    Column("attn_params", "", "attention parameters per layer (weights + biases), TP-sharded"),
    Column("attn_gemm_params", "", "attention GEMM weights per layer (FLOPs = 2 x tokens x this)"),
    Column("norm_params", "", "norm parameters per layer, replicated over TP"),
    Column("mlp_params", "", "dense MLP parameters per layer (weights + biases)"),
    Column("mlp_gemm_params", "", "dense MLP GEMM weights per layer"),
    Column("expert_params", "", "parameters of one routed expert"),
    Column("shared_params", "", "shared-expert parameters per MoE layer"),
    Column("router_params", "", "router parameters per MoE layer (h x E)"),
    Column("embed_params", "", "input embedding V x h (vocab-parallel over TP)"),
    Column("pos_params", "", "learned position embedding rows x h (replicated)"),
    Column("output_params", "", "output layer V x h when untied, else 0"),
    Column("final_norm_params", "", "final norm parameters"),
    Column("mtp_layers", "", "multi-token-prediction modules (DeepSeek-V3 Sec. 2.2; training "
           "only, on the last pipeline stage)"),
    Column("mtp_params", "", "parameters of one MTP module beyond its transformer block (2h x h "
           "projection, two norms); TP-sharded"),
    Column("params_total", "", "all parameters"),
    Column("params_active", "", "parameters a token touches (k of E experts)"),
)

HARDWARE = (
    Column("peak_bf16", "FLOP/s", "dense BF16 tensor peak per GPU"),
    Column("peak_fp8", "FLOP/s", "dense FP8 tensor peak per GPU (0 = none)"),
    Column("peak_fp4", "FLOP/s", "dense FP4 (NVFP4/MXFP4) tensor peak per GPU (0 = none: FP4 "
           "plans are infeasible, FP4)"),
    Column("hbm_capacity", "B", "HBM per GPU"),
    Column("hbm_bandwidth", "B/s", "HBM bandwidth per GPU"),
    Column("gpus_per_node", "", "GPUs in one node (server or compute tray)"),
    Column("nvlink_domain", "", "GPUs joined by NVLink, the fast tier (8 in an HGX node, 72 in a "
           "GB200/GB300 NVL72 rack): a group inside it runs at intra_bw"),
    Column("intra_bw", "B/s", "intra-node bandwidth per GPU, one direction"),
    Column("inter_bw", "B/s", "inter-node bandwidth per GPU, one direction"),
    Column("intra_latency", "s", "intra-node per-hop latency"),
    Column("inter_latency", "s", "inter-node per-hop latency"),
    Column("gemm_eff_max", "", "attainable fraction of BF16 peak for large GEMMs"),
    Column("gemm_eff_max_fp8", "", "attainable fraction of FP8 peak for large GEMMs"),
    Column("gemm_eff_max_fp4", "", "attainable fraction of the FP4 peak for large NVFP4/MXFP4 "
           "GEMMs (0 = the FP8 fraction)"),
    Column("gemm_dim_half", "", "GEMM smallest dimension at which half of gemm_eff_max is reached"),
    Column("gemm_token_half_serve", "tok", "a serving engine's GEMMs (inference only): the "
           "token dimension M at which that dimension's saturation is one half (TensorRT-LLM's "
           "Linear kernels, fitted on their operator benchmarks; a preset's 0 = gemm_dim_half, "
           "resolved in the vector). Training GEMMs take gemm_dim_half in every dimension"),
    Column("hbm_eff", "", "attainable fraction of HBM bandwidth"),
    Column("net_eff", "", "attainable fraction of NVLink bandwidth (NCCL ring collectives)"),
    Column("inter_eff", "", "attainable fraction of the scale-out NIC bandwidth"),
    Column("op_overhead", "s", "fixed cost per kernel"),
    Column("launch_overhead", "s", "host time to launch one kernel of a step not replayed from a "
           "CUDA graph: such a step takes at least its kernels x this"),
    Column("step_overhead", "s", "fixed cost of every serving step outside the layers "
           "(scheduling, sampling, detokenisation) not hidden behind the GPU"),
    Column("request_overhead", "s", "host time per request of a serving step (scheduling, "
           "sampled-token bookkeeping), overlapped with the step's GPU work: a step takes at "
           "least its requests x this"),
    Column("attn_eff_fwd", "", "fused (flash) attention forward: share of the 16-bit peak at long "
           "sequences (0 = the attention core runs at the GEMM rate)"),
    Column("attn_eff_bwd", "", "fused attention backward (2.5x the forward FLOPs): share of peak"),
    Column("attn_seq_half", "tok", "keys per query at which fused attention reaches half its "
           "long-sequence rate"),
    Column("attn_dim_half", "", "head dimension at which fused attention reaches half its rate"),
    Column("fa2_eff_fwd", "", "FlashAttention-2 (the Ampere-generation kernels flash-attn 2.x and "
           "PyTorch SDPA FLASH_ATTENTION run on any GPU) forward: share of the 16-bit peak at long "
           "sequences (0 = no figures: as the GPU's fused attention)"),
    Column("fa2_eff_bwd", "", "FlashAttention-2 backward: share of the 16-bit peak"),
    Column("fa2_seq_half", "tok", "keys per query at which FlashAttention-2 reaches half its "
           "long-sequence rate"),
    Column("mea_eff", "", "memory-efficient attention (PyTorch SDPA EFFICIENT_ATTENTION, "
           "xFormers' CUTLASS kernels) forward and backward: share of the 16-bit peak at long "
           "sequences (0 = no figures: as the GPU's fused attention)"),
    Column("mea_seq_half", "tok", "keys per query at which memory-efficient attention reaches "
           "half its long-sequence rate"),
    Column("cudnn_eff_fwd", "", "cuDNN fused attention (attention_kernel cudnn: Transformer "
           "Engine's FusedAttention, PyTorch SDPA CUDNN_ATTENTION) forward: share of the 16-bit "
           "peak at long sequences (0 = no figures: as the GPU's fused attention)"),
    Column("cudnn_eff_bwd", "", "cuDNN fused attention backward: share of the 16-bit peak"),
    Column("cudnn_seq_half", "tok", "keys per query at which cuDNN attention reaches half its "
           "long-sequence rate"),
    Column("attn_fp8_eff_fwd", "", "FP8 fused attention (attention_kernel fp8) forward: share "
           "of the FP8 peak at long sequences (0 = no figures: the GPU cannot run fp8 plans)"),
    Column("attn_fp8_eff_bwd", "", "FP8 fused attention backward: share of the FP8 peak (0 = no "
           "FP8 backward figures: the backward at the 16-bit kernels' rate)"),
    Column("attn_fp8_seq_half", "tok", "keys per query at which FP8 attention reaches half its "
           "long-sequence rate"),
    Column("mem_overhead", "B", "framework, NCCL buffers, fragmentation"),
    Column("runtime_buffers", "B", "what a serving engine allocates beyond mem_overhead: "
           "CUDA-graph pools, sampling and logits buffers, all-reduce workspaces (inference only)"),
    Column("host_bw", "B/s", "host-device copies per GPU, one direction, over the CPU-GPU link "
           "that CPU activation offloading uses (PCIe Gen5 x16: 52 GB/s measured; NVLink-C2C "
           "on Grace: 193 GB/s measured)"),
    Column("grouped_gemm_eff_serve", "", "serving engines' grouped (MoE expert) GEMMs: share of "
           "the dense GEMM rate they reach (TensorRT-LLM's CUTLASS MoE kernels, fitted on their "
           "operator benchmarks; 1 = the dense rate). Training's grouped GEMMs run at the dense "
           "rate"),
)

# Limits applied inside the kernel (sweep constraints that decide feasibility).
LIMITS = (
    Column("gpus_exact", "", "required GPU count (0 = any)"),
    Column("gpus_max", "", "maximum GPU count (0 = any)"),
    Column("mem_fraction", "", "usable fraction of HBM (headroom), in (0, 1]"),
)

# Plan columns. Order matters for speed, not meaning: a Space varies the LAST column
# fastest, and the columns from `global_batch` on (CACHE_FROM) do not change the
# per-layer costs, so a space kernel walking consecutive plans reuses them (`cache`).
PLAN = (
    Column("mode", "", "train, prefill or decode", "choice", ("train", "prefill", "decode")),
    Column("dtype", "", "compute precision; FP8 or FP4 inference stores the GEMM weights so "
           "(NVFP4: 16-value blocks with an FP8 scale, MXFP4: 32-value blocks with an 8-bit "
           "scale)", "choice", ("bf16", "fp8", "nvfp4", "mxfp4")),
    Column("kv_dtype", "", "KV-cache precision (inference); auto: fp8 under fp8/fp4 weights, "
           "else bf16", "choice", ("auto", "bf16", "fp8")),
    Column("micro_batch", "seq", "sequences per micro-batch", "int", lo=1),
    Column("seq_len", "tok", "sequence (prompt) length", "int", lo=1),
    Column("gen_tokens", "tok", "tokens generated per sequence (decode)", "int"),
    Column("tp", "", "tensor parallel degree", "int", lo=1),
    Column("cp", "", "context parallel degree", "int", lo=1),
    Column("ep", "", "expert parallel degree (folded inside tp*cp*dp)", "int", lo=1),
    Column("etp", "", "expert tensor parallel degree (0 = tp)", "int"),
    Column("sequence_parallel", "", "Megatron sequence parallelism", "bool", hi=1),
    Column("flash_attention", "", "fused attention, no s^2 scores stored", "bool", hi=1),
    Column("attention_kernel", "", "fused attention's kernels: auto, the GPU's fastest "
           "(FlashAttention-3 or cuDNN on Hopper, cuDNN on Blackwell); fa2, FlashAttention-2 "
           "(flash-attn 2.x, PyTorch SDPA FLASH_ATTENTION); fp8, the fused kernels in FP8 "
           "(Megatron-Core --fp8-dot-product-attention, Transformer Engine fp8_dpa, "
           "TensorRT-LLM FP8 context FMHA); mem_efficient, PyTorch SDPA EFFICIENT_ATTENTION "
           "(xFormers' CUTLASS kernels); cudnn, cuDNN's fused attention (Transformer Engine's "
           "FusedAttention, which it selects on Hopper; PyTorch SDPA CUDNN_ATTENTION)", "choice",
           ("auto", "fa2", "fp8", "mem_efficient", "cudnn")),
    Column("capacity_factor", "", "MoE expert capacity factor", "float", hi=1e6),
    Column("moe_load_imbalance", "", "tokens the busiest expert rank receives over a balanced "
           "one's (dropless routing; 1 = balanced, as benchmarks force it)", "float", lo=1.0,
           hi=1e6),
    Column("cp_overlap", "", "context-parallel K/V exchange hidden behind the attention of the "
           "same step (Megatron-Core/Transformer Engine ring attention); off: fully exposed",
           "bool", hi=1),
    Column("moe_token_dispatcher", "", "how MoE tokens reach their experts "
           "(Megatron-Core moe_token_dispatcher_type): alltoall, two all-to-alls of the "
           "token-slots; allgather, every rank gathers the expert group's tokens and "
           "reduce-scatters the outputs (TensorRT-LLM's MoE under attention data parallel "
           "without MNNVL); flex, DeepEP/HybridEP: a token crosses the scale-out network once "
           "per NVLink domain holding its experts", "choice", ("alltoall", "allgather", "flex")),
    Column("global_batch", "seq", "sequences per step (inference: concurrent sequences)", "int",
           lo=1),
    Column("pp", "", "pipeline parallel degree", "int", lo=1),
    Column("pp_embedding", "", "the input embedding counts as a layer in the pipeline split "
           "(Megatron-Core account_for_embedding_in_pipeline_split)", "bool", hi=1),
    Column("pp_loss", "", "the output layer and loss count as a layer in the pipeline split "
           "(Megatron-Core account_for_loss_in_pipeline_split)", "bool", hi=1),
    Column("pp_first_layers", "", "transformer layers on the first pipeline stage, 0 = an even "
           "split (Megatron-Core decoder_first_pipeline_num_layers)", "int"),
    Column("pp_last_layers", "", "transformer layers on the last pipeline stage, 0 = an even "
           "split (Megatron-Core decoder_last_pipeline_num_layers)", "int"),
    Column("dp", "", "data parallel degree", "int", lo=1),
    Column("vpp", "", "virtual pipeline stages per GPU (interleaved 1F1B)", "int", lo=1),
    Column("zero", "", "ZeRO stage 0-3 (1 = distributed optimizer)", "int", hi=3),
    Column("recompute", "", "activation recomputation (Megatron-Core recompute_granularity; "
           "selective: the recompute_* modules)", "choice", ("none", "selective", "full")),
    Column("recompute_core_attn", "", "selective: recompute core attention (QK^T, softmax, AV)",
           "bool", hi=1),
    Column("recompute_layernorm", "", "selective: recompute the norms (their outputs not kept)",
           "bool", hi=1),
    Column("recompute_mla_up_proj", "", "selective: recompute MLA's Q/K/V up-projections "
           "(the latents kept instead)", "bool", hi=1),
    Column("recompute_mlp", "", "selective: recompute the dense MLP", "bool", hi=1),
    Column("recompute_moe", "", "selective: recompute the routed experts", "bool", hi=1),
    Column("recompute_moe_act", "", "selective: recompute the experts' activation function",
           "bool", hi=1),
    Column("recompute_shared_experts", "", "selective: recompute the shared experts", "bool",
           hi=1),
    Column("recompute_layers", "", "full: layers recomputed per virtual pipeline stage, the "
           "first ones (Megatron-Core recompute_num_layers, block method); 0 = all", "int"),
    Column("cpu_offload_layers", "", "training: the activations of the first n layers kept in "
           "host memory, copied out in forward and back in backward behind the other layers' "
           "compute (Megatron-Core cpu_offloading_num_layers, Transformer Engine's scheduling); "
           "needs pp 1, no recomputation and n < layers", "int"),
    Column("fp8_activations", "", "GEMM inputs kept for backward in FP8 (1 byte), as FP8 "
           "recipes cache them (DeepSeek-V3 Sec. 3.3)", "bool", hi=1),
    Column("grad_dtype", "", "gradient precision", "choice", ("fp32", "bf16")),
    Column("optimizer_dtype", "", "Adam moments precision (fp32 master weights either way; "
           "Megatron-Core precision-aware optimizer)", "choice", ("fp32", "bf16")),
    Column("tp_overlap", "", "TP collectives pipelined with GEMMs (userbuffers)", "bool", hi=1),
    Column("ep_overlap", "", "expert all-to-all hidden behind another micro-batch's compute "
           "(Megatron-Core MoE A2A overlap, DeepSeek DualPipe)", "bool", hi=1),
    Column("dp_overlap", "", "gradient reduction and parameter gathers overlapped with "
           "backward/forward (bucketed); off: fully exposed", "bool", hi=1),
    Column("tp_dgrad_overlap", "", "backward: a column-parallel linear's input-gradient "
           "all-reduce (SP: reduce-scatter, and the input's re-gather) runs behind its "
           "weight-gradient GEMM (Megatron-LM since 2022, Megatron-Core, Transformer Engine); "
           "off: Megatron-LM 2021, all exposed", "bool", hi=1),
    Column("pp_scatter_gather", "", "without SP, each TP rank sends 1/tp of the activation "
           "between stages and the next stage all-gathers it (Megatron-LM "
           "scatter_gather_tensors_in_pipeline, Narayanan et al. 2021 Sec. 4.1)", "bool", hi=1),
    Column("cuda_graphs", "", "serving decode steps replayed from CUDA graphs (TensorRT-LLM, "
           "vLLM): no host launch cost per kernel; training and prefill passes launch eagerly",
           "bool", hi=1),
    Column("max_num_tokens", "tok", "serving token budget per engine step (TensorRT-LLM/vLLM "
           "max_num_tokens): sizes the activation workspace and, in decode, the continuous "
           "batching of decode tokens and prefill chunks; 0 = the micro-batch's prompt tokens, "
           "prompts prefilled apart", "int"),
    Column("kv_cache_fraction", "", "KV cache sized as engines size it: this fraction of the "
           "memory left after weights, workspace and buffers (TensorRT-LLM "
           "kv_cache_free_gpu_mem_fraction); 0 = sized by the requests", "float", hi=1.0),
    Column("kv_block_tokens", "tok", "tokens per paged KV-cache block (TensorRT-LLM "
           "tokens_per_block 32, vLLM block_size 16); a sequence holds whole blocks", "int", lo=1,
           hi=float(1 << 20)),
)
_PLAN_NAMES = [c.name for c in PLAN]
CACHE_FROM = _PLAN_NAMES.index("global_batch")  # columns from here on leave layer costs
CACHE2_FROM = _PLAN_NAMES.index("dp")  # from here on also the stage split unchanged
CACHE3_FROM = _PLAN_NAMES.index("vpp")  # from here on also the micro-batch count and
# the checks of EP folding, batch divisibility and GPU count unchanged

# The stage results evaluate_plan returns (reference.Stages: layer, split, batch) are what
# the walkers keep between consecutive plans: level 1 (layer_stage) holds while only the
# columns from CACHE_FROM on change, level 2 (split_stage) from CACHE2_FROM on, level 3
# (batch_stage) from CACHE3_FROM on. They are named structs in both sources, no slots.

OUTPUTS = (
    Column("n_gpus", "GPU", "world size tp*cp*pp*dp"),
    Column("n_micro_batches", "", "micro-batches per step per pipeline"),
    Column("layers_first_stage", "", "transformer layers on the first pipeline stage"),
    Column("layers_middle_stage", "", "most transformer layers on a middle stage"),
    Column("layers_last_stage", "", "transformer layers on the last stage"),
    Column("capacity_per_expert", "tok", "expert capacity per router rank = ceil(k*T*cf/E)"),
    Column("dropped_fraction", "", "routed token-slots dropped by the capacity limit"),
    Column("mem_weights_bytes", "B", "parameters held by the fullest GPU"),
    Column("mem_grads_bytes", "B", "gradients held by the fullest GPU"),
    Column("mem_optimizer_bytes", "B", "fp32 master weights + Adam moments"),
    Column("mem_activations_bytes", "B", "activations of all in-flight micro-batches"),
    Column("mem_kv_cache_bytes", "B", "KV cache (inference)"),
    Column("mem_overhead_bytes", "B", "fixed overhead"),
    Column("mem_buffers_bytes", "B", "serving runtime buffers (CUDA graphs, sampling, "
           "communication workspaces; inference)"),
    Column("mem_total_bytes", "B", "sum of the memory terms on the fullest stage"),
    Column("mem_first_stage_bytes", "B", "memory per GPU of the first pipeline stage"),
    Column("mem_middle_stage_bytes", "B", "memory per GPU of the fullest middle stage (0 when "
           "there is none, pp <= 2)"),
    Column("mem_last_stage_bytes", "B", "memory per GPU of the last pipeline stage"),
    Column("time_compute_s", "s", "forward + backward operators of the slowest stage"),
    Column("time_recompute_s", "s", "recomputed forward operators"),
    Column("time_offload_s", "s", "CPU activation offloading: copies to and from the host not "
           "hidden behind compute"),
    Column("time_tp_s", "s", "exposed tensor-parallel collectives"),
    Column("time_cp_s", "s", "exposed context-parallel KV exchange"),
    Column("time_ep_s", "s", "expert all-to-all dispatch + combine"),
    Column("time_pp_p2p_s", "s", "pipeline point-to-point sends"),
    Column("time_pp_bubble_s", "s", "pipeline bubble (p-1)/v micro-batch times"),
    Column("time_dp_s", "s", "exposed data-parallel gradient / ZeRO traffic"),
    Column("time_optimizer_s", "s", "optimizer step"),
    Column("time_launch_s", "s", "host work the GPU waits for: kernel launches of steps not "
           "replayed from CUDA graphs (kernels x launch_overhead) and a serving step's "
           "requests x request_overhead, beyond the GPU time"),
    Column("time_step_overhead_s", "s", "fixed per-step serving cost (scheduling, sampling, "
           "detokenisation) x engine steps"),
    Column("time_step_s", "s", "training step (inference: whole batch)"),
    Column("tokens_per_s", "tok/s", "tokens per second, all GPUs (decode: generated)"),
    Column("tokens_per_s_per_gpu", "tok/s", "tokens per second per GPU"),
    Column("model_flops_per_step", "FLOP", "model FLOPs (no recompute, no padding)"),
    Column("mfu", "", "model FLOPs utilisation"),
    Column("model_tflops_per_gpu", "TFLOP/s", "achieved model TFLOP/s per GPU"),
    Column("hw_tflops_per_gpu", "TFLOP/s", "achieved TFLOP/s counting recomputation"),
    Column("ttft_s", "s", "time to first token (inference)"),
    Column("tpot_s", "s", "time per output token (decode)"),
    Column("kernels_per_step", "", "kernels one GPU of the slowest stage launches per micro-batch "
           "(training, prefill) or per decode step"),
    Column("max_concurrency", "seq", "the most sequences (all replicas) whose KV cache fits: in "
           "the kv_cache_fraction pool, or in the memory left when it is 0 (inference)"),
)

# Feasibility: one bit per violated constraint; the code is their OR.
VIOLATIONS = (
    ("TP_HEADS", "tp must divide the attention heads"),
    ("TP_KV_HEADS", "tp must divide the KV heads, or be a multiple of them"),
    ("TP_FFN", "tp must divide the MLP intermediate size"),
    ("ETP_FFN", "etp must divide the expert intermediate size"),
    ("EP_EXPERTS", "ep must divide the experts (ep = 1 for a dense model)"),
    ("EP_FOLD", "etp*ep must divide tp*cp*dp (expert layers re-fold the same GPUs)"),
    ("PP_LAYERS", "pp*vpp must not exceed the layers"),
    ("VPP_SCHEDULE", "vpp > 1 needs pp > 1 and micro-batches divisible by pp"),
    ("CP_SEQ", "2*cp must divide seq_len (load-balanced context parallelism)"),
    ("SP_SEQ", "with sequence parallelism tp must divide seq_len/cp"),
    ("BATCH", "dp*micro_batch must divide global_batch"),
    ("MOE_NO_CAPACITY", "capacity factor leaves no expert capacity: every token dropped"),
    ("MEMORY", "memory per GPU exceeds usable HBM"),
    ("GPUS_EXACT", "GPU count differs from the required count"),
    ("GPUS_MAX", "GPU count exceeds the maximum"),
    ("NO_TOKENS", "decode generates no tokens: gen_tokens must be >= 1"),
    ("KV_CACHE", "more concurrent sequences than the KV cache pool holds (kv_cache_fraction of "
     "the memory left, in whole blocks)"),
    ("FP4", "dtype nvfp4/mxfp4 needs a GPU with FP4 tensor cores (peak_fp4 > 0)"),
    ("FP8_ATTENTION", "attention_kernel fp8 needs FP8 or FP4 GEMMs (dtype fp8/nvfp4/mxfp4), "
     "fused attention and a GPU with FP8 attention figures (peak_fp8 > 0, attn_fp8_eff_fwd > 0)"),
    ("CPU_OFFLOAD", "cpu_offload_layers needs training, pp = 1, no recomputation and fewer "
     "layers than the model's (Megatron-Core cpu_offloading_num_layers)"),
)


def _indices(prefix: str, cols) -> dict[str, int]:
    return {f"{prefix}_{c.name.upper()}": i for i, c in enumerate(cols)}


INDEX: dict[str, int] = {}
INDEX.update(_indices("M", MODEL))
INDEX.update(_indices("H", HARDWARE))
INDEX.update(_indices("K", LIMITS))
INDEX.update(_indices("P", PLAN))
INDEX.update(_indices("O", OUTPUTS))
INDEX.update({f"V_{name}": 1 << i for i, (name, _) in enumerate(VIOLATIONS)})
INDEX.update(N_MODEL=len(MODEL), N_HARDWARE=len(HARDWARE), N_LIMITS=len(LIMITS),
             N_PLAN=len(PLAN), N_OUTPUTS=len(OUTPUTS), N_VIOLATIONS=len(VIOLATIONS),
             CACHE_FROM=CACHE_FROM, CACHE2_FROM=CACHE2_FROM,
             CACHE3_FROM=CACHE3_FROM)
assert len(VIOLATIONS) <= 62, "feasibility codes are int64 bit sets"
assert PLAN[CACHE_FROM].name == "global_batch" and PLAN[CACHE2_FROM].name == "dp"
assert PLAN[CACHE3_FROM].name == "vpp"
globals().update(INDEX)

PLAN_NAMES = tuple(c.name for c in PLAN)


def plan_bounds(col: Column) -> tuple[float, float, bool]:
    """(lo, hi, integral): the values plan column `col` may hold, as kernel numbers.
    Choices are codes 0..n-1, booleans 0 or 1; anything else (NaN, inf, out of range, a
    fraction where a count is needed) is not a plan at all and is refused."""
    if col.kind == "choice":
        return 0.0, float(len(col.choices) - 1), True
    if col.kind == "bool":
        return 0.0, 1.0, True
    return float(col.lo), float(col.hi), col.kind == "int"


PLAN_LO = tuple(plan_bounds(c)[0] for c in PLAN)
PLAN_HI = tuple(plan_bounds(c)[1] for c in PLAN)
PLAN_INTEGRAL = tuple(plan_bounds(c)[2] for c in PLAN)
OUTPUT_NAMES = tuple(c.name for c in OUTPUTS)
VIOLATION_NAMES = tuple(name for name, _ in VIOLATIONS)


def decode_violations(code: int) -> list[str]:
    """Names of the constraints set in a feasibility code."""
    code = int(code)
    return [name for i, (name, _) in enumerate(VIOLATIONS) if code >> i & 1]


def explain_violations(code: int) -> list[str]:
    code = int(code)
    return [f"{name}: {text}" for i, (name, text) in enumerate(VIOLATIONS) if code >> i & 1]


HEADER = Path(__file__).resolve().parent.parent / "csrc" / "schema.h"


def render_header() -> str:
    """The C++ view of this schema: the same indices, for cost_model.hpp."""
    lines = ["// Generated by `python -m pyengine.schema` from pyengine/schema.py. Do not edit.",
             "// tests/test_schema.py regenerates it and fails on any difference.",
             "#pragma once", "", "namespace pyengine {", ""]
    for prefix, cols in (("M", MODEL), ("H", HARDWARE), ("K", LIMITS), ("P", PLAN),
                         ("O", OUTPUTS)):
        for i, c in enumerate(cols):
            lines.append(f"constexpr int {prefix}_{c.name.upper()} = {i};")
        lines.append("")
    for key in ("N_MODEL", "N_HARDWARE", "N_LIMITS", "N_PLAN", "N_OUTPUTS", "N_VIOLATIONS",
                "CACHE_FROM", "CACHE2_FROM", "CACHE3_FROM"):
        lines.append(f"constexpr int {key} = {INDEX[key]};")
    lines.append("")
    for i, (name, _) in enumerate(VIOLATIONS):
        lines.append(f"constexpr long long V_{name} = 1LL << {i};")
    lines += ["", "// Allowed plan values per column (schema.plan_bounds): lo <= v <= hi, and an",
              "// integer where PLAN_INTEGRAL (choices and booleans are codes 0..n-1).",
              "constexpr double PLAN_LO[N_PLAN] = {"
              + ", ".join(repr(b) for b in PLAN_LO) + "};",
              "constexpr double PLAN_HI[N_PLAN] = {"
              + ", ".join(repr(b) for b in PLAN_HI) + "};",
              "constexpr bool PLAN_INTEGRAL[N_PLAN] = {"
              + ", ".join("true" if b else "false" for b in PLAN_INTEGRAL) + "};",
              "", "// The first plan column whose value no plan may hold (NaN, out of its range, a",
              "// fraction where a count is needed; schema.plan_bounds), or -1. Row walkers",
              "// refuse such a row instead of evaluating it. (floor: <cmath>, included by",
              "// cost_model.hpp before this header; a builtin under NVRTC.)",
              "#if defined(__CUDACC__)", "__host__ __device__", "#endif",
              "inline int first_invalid_column(const double* p) {"]
    for i, c in enumerate(PLAN):
        lo, hi, integral = plan_bounds(c)
        test = f"!(p[{i}] >= {lo!r} && p[{i}] <= {hi!r})"
        if integral:
            test += f" || p[{i}] != floor(p[{i}])"
        lines += [f"    if ({test}) {{", f"        return {i};  // {c.name}", "    }"]
    lines += ["    return -1;", "}", "", "}  // namespace pyengine", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    HEADER.write_text(render_header())
    print(f"wrote {HEADER}")
