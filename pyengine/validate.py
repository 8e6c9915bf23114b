"""`pyengine validate`: the model against every published measurement it ships with.

Data: ``pyengine/data/published.json``, a copy of the project's calibration file; each
dataset there carries its source (paper, table, repository and commit). For each row the
published configuration is rebuilt as a Plan (assumptions where a paper is silent are
stated below), evaluated with the reference, and compared. Each dataset has a documented
error bound (docs/accuracy.md); ``validate`` exits non-zero when one is exceeded.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
from dataclasses import dataclass, field
from functools import partial
from importlib import resources

import numpy as np

from . import presets
from . import reference as R
from . import schema as S
from .specs import Hardware, Limits, Model, Plan, check_float


def published() -> dict:
    return json.loads(resources.files("pyengine").joinpath("data/published.json").read_text())


@dataclass
class Row:
    """One published measurement and the model's prediction of it. A published run did
    run: when the model finds its plan infeasible (``feasible`` False) the prediction is
    no number to average but a failure of its own."""

    label: str
    published: float
    predicted: float
    unit: str
    note: str = ""
    feasible: bool = True
    # which quantity, where a dataset compares more than one per run (e.g. "TTFT")
    metric: str = ""
    plan: Plan | None = field(default=None, repr=False)  # the plan evaluated, where kept
    # the rows' group where a dataset reports signed means per group (model and GPU)
    group: str = ""

    @property
    def error(self) -> float:
        return self.predicted / self.published - 1.0 if self.feasible else math.nan


@dataclass
class Dataset:
    name: str
    source: str
    metric: str
    bound_mean: float  # mean absolute relative error allowed
    bound_row: float  # worst row allowed
    rows: list[Row] = field(default_factory=list)
    trend: str = ""  # e.g. rank agreement for inference
    trend_ok: bool = True
    # rows the model is known to predict infeasible (a documented limit, docs/accuracy.md);
    # any other infeasible row fails the dataset
    known_infeasible: tuple[str, ...] = ()
    # False: validation only, never fitted (results found outside shared/calibration);
    # reported against the goal, not a pass/fail bound
    fitted: bool = True
    kind: str = ""  # "training", "serving" or "memory": what the summary pools it with
    notes: str = ""  # assumptions where the source is silent, in one paragraph
    # published values that are not rows: "what: why" (a plan pyengine cannot express)
    skipped: list[str] = field(default_factory=list)

    @property
    def scored(self) -> list[Row]:
        """The rows the model finds feasible: the ones with an error to average."""
        return [r for r in self.rows if r.feasible]

    @property
    def infeasible(self) -> list[Row]:
        return [r for r in self.rows if not r.feasible]

    @property
    def mape(self) -> float:
        rows = self.scored
        return float(np.mean([abs(r.error) for r in rows])) if rows else 0.0

    @property
    def worst(self) -> float:
        rows = self.scored
        return float(max(abs(r.error) for r in rows)) if rows else 0.0

    def groups(self) -> list[dict]:
        """Per group of rows (Row.group, first-seen order), over its feasible rows: their
        count, the signed mean error (+: the model optimistic) and the mean |error|. Where
        one source's error leans one way by model or GPU, the dataset's mean hides it."""
        by: dict[str, list[float]] = {}
        for r in self.scored:
            if r.group:
                by.setdefault(r.group, []).append(r.error)
        return [{"group": g, "rows": len(e), "signed": float(np.mean(e)),
                 "mean_abs": float(np.mean(np.abs(e)))} for g, e in by.items()]

    @property
    def unexpected_infeasible(self) -> list[Row]:
        return [r for r in self.infeasible if r.label not in self.known_infeasible]

    @property
    def ok(self) -> bool:
        """Within both bounds, the trend kept, and every published run feasible (but the
        documented known limits)."""
        if not self.fitted:
            return True
        return (self.mape <= self.bound_mean and self.worst <= self.bound_row
                and self.trend_ok and not self.unexpected_infeasible)


def infeasible_note(result) -> str:
    return "" if result.feasible else "infeasible: " + ",".join(result.violations)


# --------------------------------------------------------------------------- ZeRO


def round_like(value: float, printed: float) -> float:
    """`value` rounded to the significant digits `printed` shows (0.12 -> 2, 1.88 -> 3)."""
    digits = len(f"{printed:g}".replace(".", "").replace("-", "").lstrip("0")) or 1
    return float(f"{value:.{digits}g}")

def model_state_bytes_per_param(nd: int, zero: int) -> float:
    """Weights + gradients + optimizer bytes per parameter of one GPU, through evaluate():
    a Megatron GPT 7.5B (ZeRO's own example size) with data parallelism nd, fp16/bf16
    gradients (the paper's mixed-precision Adam: 2 + 2 + K, K = 12) and no TP/PP. The
    table is linear in the parameter count, so bytes per parameter x Psi reproduces it."""
    model = presets.model("megatron-gpt-7.5b")
    hw = presets.hardware("a100-80gb").with_(memory_overhead_bytes=0.0)
    plan = Plan(global_batch=nd, dp=nd, zero=zero, grad_dtype="bf16", recompute="full")
    r = R.evaluate(model, hw, plan)
    states = r.memory["weights"] + r.memory["grads"] + r.memory["optimizer"]
    return states / R.model_vector(model)[S.M_PARAMS_TOTAL]


def zero_2019(data: dict) -> Dataset:
    """ZeRO Table 1: model-state memory per GPU (fp16 params/grads, K = 12), GB = 1e9."""
    d = data["zero_2019"]
    ds = Dataset("zero_2019", d["source"], "model-state GB per GPU", 0.01, 0.02, kind="memory")
    psi = {"7.5B": 7.5e9, "128B": 128e9, "1T": 1e12}
    for row in d["table1_per_device_memory_GB"]:
        nd = int(row["dp_degree_Nd"])
        for zero, key in ((1, "Pos"), (2, "Pos+g"), (3, "Pos+g+p")):
            per_param = model_state_bytes_per_param(nd, zero)
            for model, p in psi.items():
                published_gb = row[f"{model}_{key}_GB"]
                # the table prints the value rounded: compare at the printed precision
                pred = round_like(per_param * p / 1e9, published_gb)
                ds.rows.append(Row(f"{model} {key} Nd={nd:g}", published_gb, pred, "GB"))
    return ds


# --------------------------------------------------------------------------- Korthikanti

KORTHIKANTI_MODELS = {"22B": "gpt-22b", "175B (GPT-3)": "gpt3-175b",
                      "530B (MT-NLG)": "megatron-gpt-530b", "1T": "megatron-gpt-1t"}


def korthikanti_2022(data: dict) -> Dataset:
    """Korthikanti Table 2 per-layer activation formulas for the Table 3 models: exact."""
    d = data["korthikanti_2022"]
    ds = Dataset("korthikanti_2022", d["source"], "activation bytes per layer", 1e-12, 1e-12,
                 kind="memory")
    for cfg in d["table3_model_configs"]:
        model = presets.model(KORTHIKANTI_MODELS[cfg["model"]])
        m = R.model_vector(model)
        s, b, h, a, t = (cfg["seq_len"], cfg["micro_batch_size"], cfg["hidden_size"],
                         cfg["attention_heads"], cfg["tensor_parallel"])
        cases = [
            ("no parallelism", 1, False, 0.0, s * b * h * (34 + 5 * a * s / h)),
            ("tensor parallel (baseline)", t, False, 0.0,
             s * b * h * (10 + 24 / t + 5 * a * s / (h * t))),
            ("tensor + sequence parallel", t, True, 0.0,
             s * b * h * (34 / t + 5 * a * s / (h * t))),
            ("tensor parallel + selective activation recomputation", t, False, 1.0,
             s * b * h * (10 + 24 / t)),
            ("tensor parallel + sequence parallel + selective activation recomputation", t, True,
             1.0, s * b * h * (34 / t)),
            ("full activation recomputation", 1, False, 2.0, s * b * h * 2),
        ]
        for label, tp, sp, rec, formula in cases:
            pred = R.layer_activation_bytes(m, float(s * b), float(s), float(tp), sp, False, rec,
                                            False, 0.0, float(tp), R.savers_of(rec))
            ds.rows.append(Row(f"{cfg['model']}: {label}", formula, pred, "B"))
    return ds


def layer_time_ms(model: Model, hw: Hardware, plan: Plan) -> float:
    """One transformer layer's forward + backward (+ recomputation, + TP traffic) of one
    micro-batch, in ms: the difference between the model with L and with L - 1 layers, so
    embedding, output layer and optimizer cancel exactly."""
    def busy(m: Model) -> float:
        t = R.evaluate(m, hw, plan).time
        return t["compute"] + t["recompute"] + t["tp"] + t["cp"]
    fewer = dataclasses.replace(model, n_layers=model.n_layers - 1)
    return 1e3 * (busy(model) - busy(fewer))


def korthikanti_2022_table4(data: dict, hardware: Hardware | None = None) -> Dataset:
    """Korthikanti Table 4: one layer of the 22B model (TP 8, micro-batch 4, sequence
    2048, A100), forward + backward, five settings: baseline, sequence parallelism, full
    recomputation, selective recomputation, selective + sequence parallelism."""
    d = data["korthikanti_2022"]
    ds = Dataset("korthikanti_2022_table4", d["source"], "ms per layer, forward + backward",
                 0.10, 0.20)
    hw = hardware or presets.hardware("a100-80gb")
    model = presets.model("gpt-22b")
    settings = {"Baseline no recompute": dict(recompute="none", sequence_parallel=False),
                "Sequence Parallelism": dict(recompute="none", sequence_parallel=True),
                "Baseline with (full) recompute": dict(recompute="full", sequence_parallel=False),
                "Selective Recompute": dict(recompute="selective", sequence_parallel=False),
                "Selective + Sequence": dict(recompute="selective", sequence_parallel=True)}
    for row in d["table4_time_per_layer_22B_ms"]:
        plan = Plan(global_batch=4, micro_batch=4, seq_len=2048, tp=8, zero=0,
                    flash_attention=False, **settings[row["experiment"]])
        ds.rows.append(Row(row["experiment"], row["combined_ms"],
                           layer_time_ms(model, hw, plan), "ms"))
    return ds


# --------------------------------------------------------------------------- Megatron-LM

MEGATRON_NAMES = {24: "megatron-gpt-1.7b", 30: "megatron-gpt-3.6b", 36: "megatron-gpt-7.5b",
                  40: "megatron-gpt-18b", 48: "megatron-gpt-39b", 60: "megatron-gpt-76b",
                  80: "megatron-gpt-145b", 96: "megatron-gpt-310b", 105: "megatron-gpt-530b",
                  128: "megatron-gpt-1t"}


def run_settings() -> dict:
    """Settings of published runs read from the authors' launch scripts
    (``pyengine/data/run_settings.json``, each with its source)."""
    return json.loads(resources.files("pyengine").joinpath("data/run_settings.json").read_text())


def megatron_plan(row: dict) -> Plan:
    """Table 1 rows as the paper's own scripts ran them (run_settings.json: Megatron-LM
    examples/sc21/run_table_1.sh of 2021-08): the micro-batch (16 for the smallest models
    down to 1), full recomputation (--checkpoint-activations), the interleaved schedule
    only where a run sets --num-layers-per-virtual-pipeline-stage (76B-530B; the 39B and
    1T runs are not interleaved), scatter/gather pipeline sends; no sequence parallelism
    or flash attention (2021). Gradients in 16 bits (grad_dtype "bf16": 2 bytes; fp16
    training, Megatron's default of all-reducing in the parameter dtype), no ZeRO;
    --DDP-impl torch (1.7B-18B) all-reduces buckets during the last micro-batch's
    backward (dp_overlap), local (39B up) after it; the TP all-reduces are synchronous
    (the asynchronous input-gradient all-reduce came to Megatron-LM in 2022-02:
    tp_dgrad_overlap off)."""
    tp, pp, dp = row["tensor_parallel"], row["pipeline_parallel"], row["data_parallel_derived"]
    run = {r["num_layers"]: r for r in run_settings()["megatron_lm_2021_table1"]["rows"]}[
        row["num_layers"]]
    per_stage = row["num_layers"] // pp
    vpp = per_stage // run["layers_per_virtual_stage"] if run["layers_per_virtual_stage"] else 1
    return Plan(global_batch=row["global_batch_size_sequences"],
                micro_batch=run["micro_batch_size"], seq_len=row["seq_len"], tp=tp, pp=pp,
                dp=dp, vpp=vpp, zero=0, recompute="full", flash_attention=False,
                sequence_parallel=False, dp_overlap=run["ddp_impl"] == "torch",
                tp_dgrad_overlap=False, grad_dtype="bf16")


def megatron_lm_2021(data: dict, hardware: Hardware | None = None, rows=None) -> Dataset:
    d = data["megatron_lm_2021_table1"]
    ds = Dataset("megatron_lm_2021", d["source"], "achieved TFLOP/s per GPU (eq. 3 counting)",
                 0.10, 0.20, kind="training")
    hw = hardware or presets.hardware("a100-80gb")
    for i, row in enumerate(d["rows"]):
        if rows is not None and i not in rows:
            continue
        model = presets.model(MEGATRON_NAMES[row["num_layers"]])
        r = R.evaluate(model, hw, megatron_plan(row))
        ds.rows.append(Row(f"GPT {row['params_billion']}B on {row['num_gpus']} GPUs",
                           row["achieved_tflops_per_gpu"], r.outputs["hw_tflops_per_gpu"],
                           "TFLOP/s", infeasible_note(r), r.feasible))
    return ds


# --------------------------------------------------------------------------- NeMo

# Architectures of the NeMo 24.07 performance models that are not presets, from the NeMo
# launcher configs of that release (approximate: vocabularies rounded to the padded size).
NEMO_MODELS = {
    "GPT3-5B": dict(n_layers=24, hidden=4096, n_heads=32, ffn_hidden=16384, vocab=50304,
                    bias=True, norm="layernorm", learned_pos_emb=2048, tied_embeddings=True),
    "GPT3-20B": dict(n_layers=44, hidden=6144, n_heads=48, ffn_hidden=24576, vocab=50304,
                     bias=True, norm="layernorm", learned_pos_emb=2048, tied_embeddings=True),
    "Nemotron-8B": dict(n_layers=32, hidden=4096, n_heads=32, ffn_hidden=16384, vocab=256000,
                        norm="layernorm"),
    "Nemotron-22B": dict(n_layers=40, hidden=6144, n_heads=48, ffn_hidden=24576, vocab=256000,
                         norm="layernorm"),
    "Nemotron-340B": dict(n_layers=96, hidden=18432, n_heads=96, n_kv_heads=8, ffn_hidden=73728,
                          vocab=256000, norm="layernorm"),
}
NEMO_PRESETS = {"GPT3-175B": "gpt3-175b", "LLAMA2-7B": "llama2-7b", "LLAMA2-13B": "llama2-13b",
                "LLAMA2-70B": "llama2-70b", "LLAMA3-8B": "llama3-8b", "LLAMA3-70B": "llama3-70b"}


def nemo_model(name: str) -> Model:
    if name in NEMO_PRESETS:
        return presets.model(NEMO_PRESETS[name])
    return Model(name=name.lower(), **NEMO_MODELS[name])


# Transformer Engine's attention on Hopper: it prefers its FusedAttention backend (cuDNN) to
# flash-attn on sm90 ("Disabling FlashAttention to give FusedAttention preference on Hopper+
# for performance reasons", transformer_engine/pytorch/attention.py, since v1.3), unless
# NVTE_FUSED_ATTN=0; on Blackwell the GPU's fastest kernels are cuDNN's anyway
TE_ATTENTION = "cudnn"


def nemo_plan(row: dict) -> Plan:
    """NeMo 24.07 FP8 pre-training on DGX-H100: the row's TP/PP/CP/VP, micro and global
    batch; sequence parallelism with TP, flash attention, distributed optimizer (ZeRO-1)
    with Megatron-Core's default gradient buffer in the parameter dtype (bf16), TP
    communication overlap where TP > 1, no activation recomputation (the performance
    recipes' defaults); the GEMM inputs kept for backward in FP8, as Transformer Engine's
    FP8 Linear layers save their FP8-cast inputs for the weight gradient; attention in
    cuDNN's fused kernels (TE_ATTENTION)."""
    tp, pp, cp = row["tp"], row["pp"], row["cp"]
    dp = row["num_gpus"] // (tp * pp * cp)
    return Plan(dtype="fp8", global_batch=row["gbs"], micro_batch=row["mbs"],
                seq_len=row["seq_len"], tp=tp, pp=pp, cp=cp, dp=dp, vpp=row["vp"], zero=1,
                recompute="none", sequence_parallel=tp > 1, flash_attention=True,
                grad_dtype="bf16", tp_overlap=tp > 1, fp8_activations=True,
                attention_kernel=TE_ATTENTION)


def nemo_24_07(data: dict, hardware: Hardware | None = None, rows=None) -> Dataset:
    d = data["nemo_24_07_pretraining_h100_fp8"]
    ds = Dataset("nemo_24_07", d["source"], "tokens/s per GPU", 0.15, 0.35, kind="training")
    hw = hardware or presets.hardware("h100-sxm")
    for i, row in enumerate(d["rows"]):
        if rows is not None and i not in rows:
            continue
        r = R.evaluate(nemo_model(row["model"]), hw, nemo_plan(row))
        ds.rows.append(Row(f"{row['model']} on {row['num_gpus']} GPUs",
                           row["tokens_per_s_per_gpu"], r.outputs["tokens_per_s_per_gpu"],
                           "tok/s/GPU", infeasible_note(r), r.feasible))
    return ds


# --------------------------------------------------------------------------- Megatron-Bridge

def validation_data() -> dict:
    """End-to-end results found outside shared/calibration: validation only, never fitted
    (pyengine/data/validation.json, sources in docs/sources.md)."""
    text = resources.files("pyengine").joinpath("data/validation.json").read_text()
    return json.loads(text)["datasets"]


BRIDGE_MODELS = {"DeepSeekV3": "deepseek-v3", "LLAMA3.1_405B": "llama3-405b",
                 "LLAMA3_70B": "llama3-70b", "LLAMA3_8B": "llama3-8b"}
BRIDGE_SYSTEMS = {"DGX-H100": "h100-sxm", "DGX-B200": "b200", "DGX-GB200": "gb200-nvl72",
                  "DGX-GB300": "gb300-nvl72"}
BRIDGE_DTYPES = {"FP8": "fp8", "FP8-CS": "fp8", "MXFP8": "fp8", "FP8-MX": "fp8",
                 "FP8-CS (FP8-MX)": "fp8", "BF16": "bf16"}
# The recipes' recompute settings are not on the page. Each run is evaluated without
# recomputation and, when that does not fit, with the first of these (lightest first)
# that does: a published run did run, so the planner's own savers must let it.
BRIDGE_SAVERS = (
    {}, dict(recompute="selective", recompute_layernorm=True, recompute_moe_act=True,
             recompute_mla_up_proj=True),
    dict(recompute="selective", recompute_layernorm=True, recompute_moe_act=True,
         recompute_mla_up_proj=True, recompute_mlp=True, recompute_shared_experts=True),
    dict(recompute="full"),
)


def bridge_rows(data: dict) -> list[dict]:
    """Pre-training rows of every Megatron-Bridge container version whose model, system
    and precision pyengine has, the newest version of each plan first and alone. A dense
    model's EP, which the 26.x tables print as "n/a", is 1."""
    seen = set()
    rows = []
    for key in sorted((k for k in data if k.startswith("megatron_bridge_perf_summary")),
                      reverse=True):
        for row in data[key]["values"].get("rows", []):
            model, system = row.get("model"), row.get("system")
            if row.get("ep") == "n/a" and model != "DeepSeekV3":
                row = {**row, "ep": 1}
            fields = ("num_gpus", "tp", "pp", "cp", "ep", "global_batch_size_sequences",
                      "micro_batch_size", "seq_len_tokens", "tokens_per_s_per_gpu")
            if (row.get("task") != "Pre-Training Performance" or model not in BRIDGE_MODELS
                    or system not in BRIDGE_SYSTEMS or row.get("precision") not in BRIDGE_DTYPES
                    or not all(isinstance(row.get(f), (int, float)) for f in fields)):
                continue
            plan = tuple(row.get(f) for f in (*fields[:-1], "vp", "precision")) + (model, system)
            if plan in seen:
                continue
            seen.add(plan)
            rows.append({**row, "container": key.removeprefix("megatron_bridge_perf_summary_")})
    return rows


def megatron_core_plan(model: Model, *, dtype: str, gbs: int, mbs: int, seq: int, tp: int,
                       pp: int = 1, cp: int = 1, dp: int = 1, vpp: int = 1, ep: int = 1,
                       etp: int = 1, fsdp: bool = False, attention_kernel: str = TE_ATTENTION,
                       **savers) -> Plan:
    """A Megatron-Core (NeMo, Megatron-Bridge) training run as a Plan, from its printed
    degrees: sequence parallelism and TP communication overlap with TP, distributed
    optimizer (ZeRO-1; ZeRO-3 for FSDP) with bf16 gradient buffers, the embedding and
    loss counted in the pipeline split when the virtual stages outnumber the layers,
    forced-balanced dropless routing (capacity factor 1), expert TP ``etp``; in FP8 the
    GEMM inputs kept for backward in FP8 (Transformer Engine saves its FP8-cast inputs);
    attention in cuDNN's fused kernels (TE_ATTENTION) unless the run says otherwise."""
    counted = pp * vpp > model.n_layers
    return Plan(dtype=dtype, global_batch=gbs, micro_batch=mbs, seq_len=seq, tp=tp, pp=pp,
                cp=cp, dp=dp, vpp=vpp, ep=ep if model.is_moe else 1,
                etp=etp if model.is_moe else 0, zero=3 if fsdp else 1,
                sequence_parallel=tp > 1, grad_dtype="bf16", tp_overlap=tp > 1,
                pp_embedding=counted, pp_loss=counted, fp8_activations=dtype == "fp8",
                attention_kernel=attention_kernel, **savers)


# Megatron-Bridge's DeepSeek-V3 performance recipes (github.com/NVIDIA-NeMo/Megatron-Bridge
# scripts/performance/configs/deepseek/deepseek_workload_base_configs.py at
# 042641823051ce167c52b0ae289941a227c11535), by the layout a published row prints (system,
# micro-batch, PP, VP, EP): the flex dispatcher (moe_flex_dispatcher_backend hybridep or
# deepep), the MoE all-to-all overlap (moe_a2a_overlap) and the recompute modules
# (recompute_modules; core attention only where listed).
_MLA_UP = dict(recompute="selective", recompute_core_attn=False, recompute_mla_up_proj=True)
BRIDGE_MOE_RECIPES = {
    # GB300 FP8_MX: micro-batch 1, a2a overlap, no recomputation
    ("DGX-GB300", 1, 2, 8, 32): dict(moe_token_dispatcher="flex", ep_overlap=True),
    # GB300 base (V1): micro-batch 2, recompute mla_up_proj
    ("DGX-GB300", 2, 2, 8, 32): dict(moe_token_dispatcher="flex", **_MLA_UP),
    # GB200 FP8_MX: a2a overlap, recompute mla_up_proj
    ("DGX-GB200", 1, 4, 4, 64): dict(moe_token_dispatcher="flex", ep_overlap=True, **_MLA_UP),
    # B200 FP8_MX_V2 (deepep): a2a overlap, recompute mla_up_proj and mlp
    ("DGX-B200", 1, 8, 2, 32): dict(moe_token_dispatcher="flex", ep_overlap=True,
                                    recompute_mlp=True, **_MLA_UP),
    # B200 base (V1, hybridep): recompute mla_up_proj
    ("DGX-B200", 1, 16, 1, 8): dict(moe_token_dispatcher="flex", **_MLA_UP),
}


# Megatron-Bridge's Llama 3 70B FP8 current-scaling recipes on Megatron-FSDP
# (scripts/performance/configs/llama/llama3_workload_base_configs.py at 00919dcf,
# LLAMA3_70B_PRETRAIN_CONFIG_{GPU}_FP8_CS_V1/V2: use_megatron_fsdp, micro-batch 2 on
# GB200/GB300, 1 on B200) keep the activations of the first n layers in host memory
# (cpu_offloading_num_layers) instead of recomputing them; by system.
BRIDGE_OFFLOAD_LAYERS = {"DGX-GB300": 20, "DGX-GB200": 40, "DGX-B200": 5}
BRIDGE_FP8_CS = ("FP8", "FP8-CS")  # MXFP8 / FP8-MX recipes run PP 4 x VP 5, no offloading


def bridge_vpp(row: dict) -> int:
    """A Megatron-Bridge row's virtual pipeline stages ("n/a" or blank: 1)."""
    return int(row["vp"]) if isinstance(row.get("vp"), (int, float)) and row["vp"] else 1


def bridge_fsdp(row: dict) -> bool:
    """Whether a Megatron-Bridge row runs Megatron-FSDP (its FSDP column a size > 0)."""
    return isinstance(row.get("fsdp"), (int, float)) and row["fsdp"] > 0


def bridge_recipe(row: dict) -> dict:
    """The recipe flags of a Megatron-Bridge row: a MoE row's (BRIDGE_MOE_RECIPES), a
    Llama 3 70B FP8 FSDP row's CPU offloading (BRIDGE_OFFLOAD_LAYERS), or none."""
    key = (row["system"], int(row["micro_batch_size"]), int(row["pp"]), bridge_vpp(row),
           int(row["ep"]) if isinstance(row.get("ep"), (int, float)) else 1)
    if row["model"] == "DeepSeekV3":
        return BRIDGE_MOE_RECIPES.get(key, {})
    if (row["model"] == "LLAMA3_70B" and bridge_fsdp(row) and row.get("precision") in BRIDGE_FP8_CS
            and row["system"] in BRIDGE_OFFLOAD_LAYERS):
        return {"cpu_offload_layers": BRIDGE_OFFLOAD_LAYERS[row["system"]]}
    return {}


def bridge_plan(row: dict, model: Model, **savers) -> Plan:
    """A Megatron-Bridge pre-training row as a Plan: its TP/PP/CP/VP/EP, batch and
    sequence; DP = GPUs / (TP PP CP); expert TP 1, sequence parallelism and TP overlap
    with TP, distributed optimizer (ZeRO-3 where the row says FSDP), bf16 gradients;
    the embedding and loss counted in the split when the virtual stages outnumber the
    layers; forced-balanced dropless routing (capacity factor 1)."""
    tp, pp, cp = int(row["tp"]), int(row["pp"]), int(row["cp"])
    return megatron_core_plan(
        model, dtype=BRIDGE_DTYPES[row["precision"]],
        gbs=int(row["global_batch_size_sequences"]), mbs=int(row["micro_batch_size"]),
        seq=int(row["seq_len_tokens"]), tp=tp, pp=pp, cp=cp,
        dp=int(row["num_gpus"]) // (tp * pp * cp), vpp=bridge_vpp(row), ep=int(row["ep"]),
        etp=1, fsdp=bridge_fsdp(row), **savers)


def evaluate_fitting(model: Model, hw: Hardware, make_plan, savers_list=BRIDGE_SAVERS,
                     limits: Limits | None = None):
    """Evaluate ``make_plan(**savers)`` with the lightest savers of ``savers_list`` that
    fit (a published run did run); stops early on a violation other than MEMORY.
    Returns the Result and the savers used."""
    for savers in savers_list:
        r = R.evaluate(model, hw, make_plan(**savers), limits)
        if r.feasible or "MEMORY" not in r.violations:
            break
    return r, savers


def saver_note(r, savers: dict) -> str:
    if infeasible_note(r) or not savers:
        return infeasible_note(r)
    if savers.get("cpu_offload_layers"):
        return f"recipe: activations of {savers['cpu_offload_layers']} layers offloaded to the CPU"
    if "moe_token_dispatcher" not in savers:
        return savers.get("recompute", "") + " recompute"
    modules = [k.removeprefix("recompute_") for k, v in savers.items()
               if k.startswith("recompute_") and v]
    return ", ".join(["recipe: " + savers["moe_token_dispatcher"] + " dispatcher"]
                     + (["a2a overlap"] if savers.get("ep_overlap") else [])
                     + (["recompute " + "+".join(modules)] if modules else []))


def megatron_bridge(data: dict | None = None) -> Dataset:
    data = validation_data() if data is None else data
    src = data["megatron_bridge_perf_summary_nemo_26_08"]["source"]
    ds = Dataset("megatron_bridge", src + " and earlier containers (validation, not fitted)",
                 "tokens/s per GPU", 0.10, math.inf, fitted=False, kind="training")
    for row in bridge_rows(data):
        model = presets.model(BRIDGE_MODELS[row["model"]])
        hw = presets.hardware(BRIDGE_SYSTEMS[row["system"]])
        recipe = bridge_recipe(row)
        savers_list = (recipe, *BRIDGE_SAVERS) if recipe else BRIDGE_SAVERS
        r, savers = evaluate_fitting(model, hw, partial(bridge_plan, row, model), savers_list)
        label = (f"{row['model']} {row['system']} {row['precision']} {row['num_gpus']} GPUs "
                 f"({row['container']})")
        ds.rows.append(Row(label, float(row["tokens_per_s_per_gpu"]),
                           r.outputs["tokens_per_s_per_gpu"], "tok/s/GPU",
                           saver_note(r, savers), r.feasible, plan=r.plan))
    return ds


# --------------------------------------------------------------------------- TensorRT-LLM

BATCHES = tuple(2**i for i in range(13))  # 1 .. 4096 concurrent sequences


@dataclass(frozen=True)
class ServingWorkload:
    """What the TensorRT-LLM serving tables leave unprinted, as `pyengine validate` assumes
    it (the defaults) or a sensitivity run sets it (``--moe-load-imbalance``,
    ``--fill-kv``), so how much an accuracy figure rests on each assumption is measured,
    not argued. moe_load_imbalance: the busiest expert rank's token-slots over a balanced
    rank's in the MoE runs (the plan field of that name, [S5]); trtllm-bench's prompts
    are random token IDs, whose routing on real checkpoints is uneven (Ma et al. 2026,
    arXiv:2605.20982, "mock tokens overestimate routing Gini by up to 2.35x"), but no
    table says by how much, so the default is balanced routing. fill_kv: besides the
    powers of two up to the request count, also run at the largest concurrency whose KV
    cache fits (the engine's max_concurrency), as trtllm-bench's scheduler admits every
    request the cache holds."""

    moe_load_imbalance: float = 1.0
    fill_kv: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "moe_load_imbalance",
                           check_float("validate", "--moe-load-imbalance",
                                       self.moe_load_imbalance, 1.0, 64.0))

    def describe(self) -> str:
        """One line for the reports: the assumptions in force."""
        routing = ("balanced" if self.moe_load_imbalance == 1.0
                   else f"busiest expert rank x{self.moe_load_imbalance:g}")
        batches = ("powers of two and the largest the KV cache fits" if self.fill_kv
                   else "powers of two")
        return f"MoE routing {routing}; concurrency: {batches}"


# The assumptions of the run in progress (run() sets them for its duration).
WORKLOAD = ServingWorkload()


# How trtllm-bench's PyTorch backend runs (perf-overview v1.0 'llm_options'): in-flight
# batching inside a token budget (max_num_tokens: per run, trtllm_bench_engine sets the
# budget trtllm-bench's own heuristic gives; 8192, the LLM API's default, where it does
# not apply, as for NIM's engine), the KV cache as 95% of the free memory
# (kv_cache_free_gpu_mem_fraction 0.95 as printed), CUDA graphs for generation steps;
# MoE models with attention data parallelism (enable_attention_dp) and the experts over
# EP = the printed TP (--ep per column not printed).
TRTLLM_BENCH = {"max_num_tokens": 8192, "kv_cache_fraction": 0.95, "cuda_graphs": True}


def trtllm_bench_requests(model: Model, hw: Hardware, isl: int, osl: int, tp: int,
                          dtype: str, fraction: float = 0.95) -> float:
    """The requests trtllm-bench estimates the KV cache holds (TensorRT-LLM
    tensorrt_llm/bench/build/tuning.py calc_engine_setting, called for the PyTorch backend
    by bench/benchmark/utils/general.py get_settings when a run sets neither max batch
    size nor max tokens; read at v1.0-era main): GPU memory (GiB) of the TP group less
    the weights at the checkpoint's bytes per parameter (FP8 1, NVFP4 0.5), x `fraction`,
    over the KV cache of ISL + OSL tokens with max(tp, kv_heads) heads (FP8 KV under FP8
    and NVFP4 checkpoints)."""
    quantized = dtype in ("fp8", "nvfp4", "mxfp4")
    weight_bytes = {"fp8": 1.0, "nvfp4": 0.5, "mxfp4": 0.5}.get(dtype, 2.0)
    gib = 2.0 ** 30
    # the config's head_dim (TensorRT-LLM's head_size), not hidden / heads (Qwen3: 128 vs 64)
    per_token = (2 * model.n_layers * max(tp, model.n_kv_heads) * model.head_dim
                 * (1.0 if quantized else 2.0) / gib)
    engine = R.model_vector(model)[S.M_PARAMS_TOTAL] * weight_bytes / gib
    cache = (hw.hbm_capacity_bytes / gib * tp - engine) * fraction
    return cache / (per_token * (isl + osl))


def trtllm_bench_limits(requests: float, isl: int, osl: int) -> tuple[int, int]:
    """(max_batch_size, max_num_tokens) from the estimated requests (tuning.py
    finetune_setting, optimistic tuning): the requests capped at 4096 and rounded up (at
    least 64, to 32 below 256, 128 below 1024, else 256); tokens = requests x (1 +
    ISL/OSL) capped at 32768 and rounded up (at least 2048, to 256 below 4096, 512 below
    8192, else 1024); chunked prefill being off unless asked for, the tokens are at least
    ISL + max_batch_size (general.py get_settings)."""
    raw_bs = min(requests, 4096.0)
    raw_tokens = min(raw_bs * (1.0 + isl / osl), 32768.0)
    bs = round_up_in_bands(raw_bs, 64, ((256, 32), (1024, 128), (math.inf, 256)))
    tokens = round_up_in_bands(raw_tokens, 2048, ((4096, 256), (8192, 512), (math.inf, 1024)))
    return bs, max(tokens, isl + bs)


def round_up_in_bands(value: float, least: int, bands: tuple) -> int:
    """`value` rounded up to the step of the first (below, step) band it is below, and at
    least `least` (finetune_setting's rounding of batch size and token budget)."""
    for below, step in bands:
        if value < below:
            return max(least, step * math.ceil(value / step))
    raise ValueError(f"{value} is above every band")


def trtllm_bench_engine(model: Model, hw: Hardware, isl: int, osl: int, tp: int,
                        dtype: str) -> dict:
    """TRTLLM_BENCH with the token budget trtllm-bench sets for this run
    (trtllm_bench_requests, trtllm_bench_limits)."""
    requests = trtllm_bench_requests(model, hw, isl, osl, tp, dtype,
                                     TRTLLM_BENCH["kv_cache_fraction"])
    return {**TRTLLM_BENCH, "max_num_tokens": trtllm_bench_limits(requests, isl, osl)[1]}


def trtllm_best(model: Model, hw: Hardware, isl: int, osl: int, requests: int,
                tp: int = 1, dtype: str = "fp8", engine: dict | None = None,
                attention_dp: bool = False) -> tuple[float, int]:
    """Offline max-throughput: the feasible concurrency with the most output tokens/s.

    trtllm-bench fills the KV cache (95% of free memory) with as many sequences as fit;
    here every batch size up to the request count is evaluated and the best feasible
    one is kept (FP8 weights and KV cache, TP ``tp``; with TP > 1 the all-reduce
    layout of TensorRT-LLM: no sequence parallelism). ``engine``: further plan fields
    (TRTLLM_BENCH); ``attention_dp``: attention data parallel over the TP GPUs, experts
    over EP = tp (batches below tp skipped), tokens moved as TensorRT-LLM moves them
    (trtllm_moe_dispatcher). Under WORKLOAD.fill_kv (a sensitivity run) the largest
    concurrency the best plan's KV cache holds (whole replicas under attention DP) is one
    more candidate; WORKLOAD.moe_load_imbalance reaches the plans through trtllm_plan.
    """
    best, best_b, fits = 0.0, 0, 0.0
    limits = Limits(mem_fraction=1.0)
    dispatcher = trtllm_moe_dispatcher(model, hw, tp)

    def evaluate(b: int):
        return R.evaluate(model, hw, trtllm_plan(b, isl, osl, tp, dtype, engine, attention_dp,
                                                 dispatcher), limits)

    for b in BATCHES:
        if b > requests:
            break
        if attention_dp and b < tp:
            continue
        r = evaluate(b)
        if r.feasible and r.outputs["tokens_per_s"] > best:
            best, best_b, fits = r.outputs["tokens_per_s"], b, r.outputs["max_concurrency"]
    if WORKLOAD.fill_kv and best_b:
        # the largest concurrency the KV cache holds, whole attention replicas' worth
        b = int(min(fits, requests, BATCHES[-1]))
        b -= b % tp if attention_dp else 0
        if b > best_b:
            r = evaluate(b)
            if r.feasible and r.outputs["tokens_per_s"] > best:
                best, best_b = r.outputs["tokens_per_s"], b
    return best, best_b


def trtllm_moe_dispatcher(model: Model, hw: Hardware, ep: int) -> str:
    """How TensorRT-LLM (v0.21-1.0, PyTorch backend) moves MoE tokens under attention data
    parallel: all-to-all only over multi-node NVLink (MNNVL: an NVLink domain wider than a
    node, GB200 NVL72) and only when EP exceeds top-k; else AllGather + ReduceScatter
    (CutlassFusedMoE.select_alltoall_method_type / enable_alltoall: DeepEP needs
    TRTLLM_CAN_USE_DEEP_EP=1, not set by trtllm-bench). Dense models never use it: their
    plans have no attention data parallel (trtllm_plan)."""
    mnnvl = (hw.nvlink_domain or hw.gpus_per_node) > hw.gpus_per_node
    return "alltoall" if mnnvl and ep > model.top_k else "allgather"


def trtllm_plan(batch: int, isl: int, osl: int, tp: int = 1, dtype: str = "fp8",
                engine: dict | None = None, attention_dp: bool = False,
                dispatcher: str = "alltoall") -> Plan:
    extra = {"tp": tp, "sequence_parallel": False} if tp > 1 else {}
    mb = batch
    if attention_dp and tp > 1:
        extra = {"dp": tp, "ep": tp, "etp": 1, "moe_token_dispatcher": dispatcher,
                 "moe_load_imbalance": WORKLOAD.moe_load_imbalance}
        mb = batch // tp
    return Plan(mode="decode", dtype=dtype, global_batch=batch, micro_batch=mb,
                seq_len=isl, gen_tokens=osl, **extra, **(engine or {}))


def trtllm_llama31_8b(data: dict, hardware: dict[str, Hardware] | None = None,
                      rows=None) -> Dataset:
    d = data["tensorrt_llm_llama31_8b_inference"]
    ds = Dataset("trtllm_llama31_8b", "; ".join(f"{k}: {v}" for k, v in d["sources"].items()),
                 "output tokens/s (TP 1)", 0.25, 0.60, kind="serving")
    # trtllm-bench runs (the metric's note): in-flight batching in the token budget of
    # trtllm-bench's heuristic (trtllm_bench_engine), KV cache 95% of free memory
    model = presets.model("llama3-8b")
    hws = hardware or {"H100 SXM 80GB": presets.hardware("h100-sxm"),
                       "H200 SXM 141GB": presets.hardware("h200")}
    for i, row in enumerate(d["rows"]):
        if rows is not None and i not in rows:
            continue
        if row["total_output_tokens_per_s"] is None or row["gpu"] not in hws:
            continue
        key = f"{row['isl']}/{row['osl']}"
        requests = d["num_requests_by_isl_osl"].get(key, 1000)
        hw = hws[row["gpu"]]
        pred, b = trtllm_best(model, hw, row["isl"], row["osl"], requests,
                              engine=trtllm_bench_engine(model, hw, row["isl"], row["osl"], 1,
                                                         "fp8"))
        ds.rows.append(Row(f"{row['gpu'].split()[0]} {key} ({row['doc_version'].split()[0]}"
                           f"{' v1.0' if 'v1.0' in row['doc_version'] else ''})",
                           row["total_output_tokens_per_s"], pred, "tok/s",
                           f"batch {b}" if b else "infeasible: no batch size fits", b > 0,
                           group=row["gpu"].split()[0]))
    # trend: predictions must rank the ISL/OSL workloads as the measurements do
    pub = np.array([r.published for r in ds.scored])
    pre = np.array([r.predicted for r in ds.scored])
    if len(pub) > 2:
        rho = spearman(pub, pre)
        ds.trend = f"Spearman rank correlation {rho:.3f} (>= 0.8 required)"
        ds.trend_ok = rho >= 0.8
    return ds


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


# --------------------------------------------------------------------------- validation only
# End-to-end results found outside shared/calibration (pyengine/data/validation.json, one
# dataset per source, docs/sources.md): never fitted, reported against the goal
# (mean |error| <= 10% training, <= 15% serving), no pass/fail bound.

TRAINING_GOAL, SERVING_GOAL = 0.10, 0.15

# Architectures the validation-only sources run that are not presets, each from the config
# the comment names (what pyengine cannot express is said there too).
VALIDATION_MODELS = {
    # Megatron-Bridge src/megatron/bridge/models/llama/llama_provider.py (commit
    # 2afd2d34f7d7b2e84095af1a7fd7244902189ebc) Llama32ModelProvider1B: 16 layers, hidden
    # 2048, 32 heads, 8 query groups, FFN 8192, SwiGLU, RMSNorm, tied embeddings; the Llama 3
    # tokenizer's vocabulary (128256, as the llama3-8b preset)
    "llama3.2-1b": dict(n_layers=16, hidden=2048, n_heads=32, n_kv_heads=8, ffn_hidden=8192,
                        vocab=128256, gated_mlp=True, tied_embeddings=True),
    # the same file, Llama4Experts16ModelProvider (Llama 4 Scout): 48 layers, hidden 5120,
    # 40 heads, 8 query groups, vocab 25256 * 8, every layer MoE of 16 routed experts (top-1,
    # FFN 8192) + one shared expert (8192), SwiGLU, untied; chunked attention of 8192
    # tokens with every 4th layer a global NoPE layer (the provider's chunk_size 8192 and
    # no_rope_freq 4, as Hugging Face's attention_chunk_size / no_rope_layers)
    "llama4-scout": dict(n_layers=48, hidden=5120, n_heads=40, n_kv_heads=8, ffn_hidden=16384,
                         vocab=202048, gated_mlp=True, n_experts=16, top_k=1,
                         expert_ffn_hidden=8192, n_shared_experts=1, attention_chunk=8192,
                         global_every=4),
    # Llama4Experts128ModelProvider (Llama 4 Maverick): as Scout with 128 experts and
    # moe_layer_freq [0, 1] * 24 (odd layers MoE, even layers a dense FFN of 16384)
    "llama4-maverick": dict(n_layers=48, hidden=5120, n_heads=40, n_kv_heads=8,
                            ffn_hidden=16384, vocab=202048, gated_mlp=True, n_experts=128,
                            top_k=1, expert_ffn_hidden=8192, n_shared_experts=1,
                            first_k_dense=1, moe_every=2, attention_chunk=8192,
                            global_every=4),
    # Megatron-Bridge src/megatron/bridge/models/nemotron/nemotron_provider.py (commit
    # 04f7cfe860926bfae7d0551da0d99f1cd6c6e322) Nemotron4ModelProvider15B: 32 layers, hidden
    # 6144, FFN 24576, 48 heads, 8 query groups, LayerNorm, squared ReLU (non-gated), no
    # biases, untied; vocabulary 256000 as NEMO_MODELS' Nemotron rows
    "nemotron4-15b": dict(n_layers=32, hidden=6144, n_heads=48, n_kv_heads=8, ffn_hidden=24576,
                          vocab=256000, norm="layernorm"),
    # xai-org/grok-1 run.py (commit 11b95e7a2635e66ecb26ddd165b6b5fb39375f8e): 64 layers, emb
    # 48 * 128, 48 query and 8 KV heads of 128, 8 experts top-2, widening factor 8
    # (model.py ffn_size: 32768, gated), vocab 128 * 1024, tied in/out embedding (model.py)
    "grok1-314b": dict(n_layers=64, hidden=6144, n_heads=48, n_kv_heads=8, ffn_hidden=32768,
                       vocab=131072, gated_mlp=True, tied_embeddings=True, n_experts=8, top_k=2,
                       expert_ffn_hidden=32768),
    # Jiang et al. 2023, "Mistral 7B", arXiv:2310.06825 Table 1: dim 4096, 32 layers, head
    # dim 128, hidden dim 14336, 32 heads, 8 KV heads, vocab 32000 (its 4096-token sliding
    # window is longer than every sequence here)
    "mistral-7b": dict(n_layers=32, hidden=4096, n_heads=32, n_kv_heads=8, ffn_hidden=14336,
                       vocab=32000, gated_mlp=True),
}


def validation_model(name: str) -> Model:
    return Model(name=name, **VALIDATION_MODELS[name])


def validation_dataset(data: dict, key: str, metric: str, kind: str, name: str = "") -> Dataset:
    d = data[key]
    goal = TRAINING_GOAL if kind == "training" else SERVING_GOAL
    return Dataset(name or key, d["source"] + " (validation, not fitted)", metric, goal,
                   math.inf, fitted=False, kind=kind)


def row_note(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def result_row(label: str, published_value: float, r, output: str, unit: str, note: str = "",
               metric: str = "") -> Row:
    """A validation row from a Result: its output ``output`` against the published value,
    infeasible (with the violations) when the model cannot run the published plan."""
    return Row(label, float(published_value), r.outputs[output], unit,
               row_note(infeasible_note(r), note), r.feasible, metric=metric, plan=r.plan)


def serving_fitting(model: Model, hw: Hardware, batch: int, isl: int, osl: int, tp: int,
                    dtype: str = "fp8", engine: dict | None = None):
    """A serving run at a fixed concurrency: all ``batch`` sequences in flight, their
    prompts prefilled together or, when those activations do not fit, in the largest
    micro-batches that do (engines chunk the prefill); returns (Result, note)."""
    for mb in sorted((d for d in range(1, batch + 1) if batch % d == 0), reverse=True):
        plan = trtllm_plan(batch, isl, osl, tp, dtype, engine).with_(micro_batch=mb)
        r = R.evaluate(model, hw, plan)
        if r.feasible or "MEMORY" not in r.violations:
            break
    return r, "" if mb == batch or not r.feasible else f"prefill micro-batch {mb}"


# ---- Korthikanti et al. 2022 Table 5

def korthikanti_plan(cfg: dict, **kw) -> Plan:
    """A Korthikanti Table 3 configuration: TP, PP, micro and global batch, interleaving m
    as printed (1 where blank), data parallel 1, seq 2048; 2022 Megatron-LM without ZeRO or
    flash attention, fp32 gradients (as megatron_plan)."""
    return Plan(global_batch=cfg["global_batch_size"], micro_batch=cfg["micro_batch_size"],
                seq_len=cfg["seq_len"], tp=cfg["tensor_parallel"], pp=cfg["pipeline_parallel"],
                dp=cfg["data_parallel"], vpp=cfg["interleaved_stages_m"] or 1, zero=0,
                flash_attention=False, **kw)


KORTHIKANTI_MODES = (
    ("full recompute", "full_recompute_iteration_time_s",
     dict(recompute="full", sequence_parallel=False)),
    ("present work", "present_work_iteration_time_s",
     dict(recompute="selective", sequence_parallel=True)),  # selective = core attention
)


def korthikanti_2022_table5(data: dict | None = None) -> Dataset:
    """Korthikanti Table 5: end-to-end iteration time on A100 (Selene), for the Table 3
    configurations (published.json, korthikanti_plan). 'full recompute': full activation
    recomputation without sequence parallelism; 'present work': sequence parallelism +
    selective recomputation (the Plan's default modules: core attention)."""
    data = validation_data() if data is None else data
    ds = validation_dataset(data, "korthikanti_2022_table5", "iteration time (s)", "training")
    ds.notes = ("Plans: korthikanti_plan (Table 3 as printed, no ZeRO, no flash attention, "
                "fp32 gradients); the issue's target for this table is 3.5% mean.")
    cfgs = {c["model"].split()[0]: c for c in published()["korthikanti_2022"]
            ["table3_model_configs"]}
    hw = presets.hardware("a100-80gb")
    for row in data["korthikanti_2022_table5"]["values"]["rows"]:
        cfg = cfgs[row["model"]]
        model = presets.model(KORTHIKANTI_MODELS[cfg["model"]])
        for mode, key, kw in KORTHIKANTI_MODES:
            r = R.evaluate(model, hw, korthikanti_plan(cfg, **kw))
            ds.rows.append(result_row(f"{row['model']} {mode}", row[key], r, "time_step_s",
                                      "s"))
    return ds


# ---- NeMo long-sequence (context parallelism) tables

# (model, system, attention kernel of the plans with CP > 1). The H100 table ran the
# NeMo 24.03.01 container, whose NeMo (v1.23.0, Dockerfile at the tag: "Transformer Engine
# 1.2.0", commit da30634, on PyTorch 24.01; the launcher's Dockerfile at its 24.03.01 docs
# update, b434fd3e, builds on PyTorch 24.01 too) runs Transformer Engine 1.2, whose
# DotProductAttention asserts "Context parallelism is only implemented with Flash
# Attention!" (transformer_engine/pytorch/attention.py at v1.2): with CP its attention is
# flash-attn 2 (fa2); without CP it prefers cuDNN's fused attention on sm90. TE 1.3+
# (the B200 table's NeMo 25.04) runs CP with the fused attention too.
NEMO_LONG = {"nemo_long_sequence_cp_llama2_7b_h100": ("llama2-7b", "h100-sxm", "fa2"),
             "nemo_long_sequence_cp_llama3_8b_b200": ("llama3-8b", "b200", TE_ATTENTION)}


def nemo_long_sequence(key: str, data: dict | None = None) -> Dataset:
    """NeMo 'Long Sequence Performance', FP8 pre-training, model TFLOP/s per GPU of the
    with-CP plans: TP/PP/DP/CP and the global batch as printed, sequence = K x 1024;
    micro-batch 1 and recompute are not printed (micro-batch 1; the lightest of
    BRIDGE_SAVERS that fits); the rest as megatron_core_plan, with the attention kernel of
    the table's Transformer Engine under CP (NEMO_LONG: flash-attn 2 in the H100 table's
    TE 1.2). The world size is TP x PP x DP x CP of the printed plan."""
    data = validation_data() if data is None else data
    ds = validation_dataset(data, key, "model TFLOP/s per GPU", "training")
    name, system, cp_attention = NEMO_LONG[key]
    model, hw = presets.model(name), presets.hardware(system)
    rows = data[key]["values"]["rows"]
    n_without = sum(r["without_cp_tflops_per_gpu"] is not None for r in rows)
    ds.skipped.append(f"without-CP column ({n_without} values): 'the most performant "
                      "configuration without CP', its plan not printed")
    mismatch = 0
    for row in rows:
        tp, pp, dp, cp = (int(row[f"with_cp_{k}"]) for k in ("tp", "pp", "dp", "cp"))
        mismatch += tp * pp * dp * cp != row["num_gpus"]
        seq = int(row["seq_len_K"]) * 1024
        plan = partial(megatron_core_plan, model, dtype="fp8", gbs=int(row["batch_size"]),
                       mbs=1, seq=seq, tp=tp, pp=pp, cp=cp, dp=dp,
                       attention_kernel=cp_attention if cp > 1 else TE_ATTENTION)
        r, savers = evaluate_fitting(model, hw, plan)
        gpus = "" if tp * pp * dp * cp == row["num_gpus"] else f"; printed {row['num_gpus']} GPUs"
        ds.rows.append(result_row(f"{row['seq_len_K']}K TP{tp} PP{pp} DP{dp} CP{cp}{gpus}",
                                  row["with_cp_tflops_per_gpu"], r, "model_tflops_per_gpu",
                                  "TFLOP/s", saver_note(r, savers) if r.feasible else ""))
    why = "TE 1.2 runs CP with flash-attn only" if cp_attention == "fa2" else "TE fused"
    ds.notes = ("Plans: the printed with-CP TP/PP/DP/CP and global batch, micro-batch 1 "
                "(not printed), recompute the lightest of BRIDGE_SAVERS that fits; FLOPs "
                f"counted without causal halving, as NeMo's; attention with CP: "
                f"{cp_attention} ({why}), without CP: {TE_ATTENTION}.")
    if mismatch:
        ds.notes += (f" In {mismatch} rows the '# of GPUs' column is not TP x PP x DP x CP of "
                     "the printed plan (4x it in every B200 row); the printed degrees are used.")
    return ds


# ---- Megatron-LM README weak scaling (H100)

def megatron_core_gpt(row: dict, vocab: int, seq: int) -> Model:
    """A Megatron-LM README weak-scaling GPT: the printed layers, hidden size and heads;
    vocabulary 131072 and sequence 4096 as printed for the table; otherwise Megatron-LM's
    GPT defaults (learned absolute positions, biases, LayerNorm, GeLU MLP of 4h, tied
    embeddings, multi-head attention)."""
    return Model(name=f"megatron-core-gpt-{row['model_size'].lower()}",
                 n_layers=int(row["num_layers"]), hidden=int(row["hidden_size"]),
                 n_heads=int(row["attention_heads"]), ffn_hidden=4 * int(row["hidden_size"]),
                 vocab=vocab, bias=True, norm="layernorm", learned_pos_emb=seq,
                 tied_embeddings=True)


def megatron_core_weak_scaling(data: dict | None = None) -> Dataset:
    """Megatron-LM README weak scaling on H100: per-GPU achieved TFLOP/s (MFU x 989, model
    FLOPs). TP/PP/DP, GPU count and global batch as printed; precision not printed (BF16:
    the MFU column is TFLOP/s over the 989 TFLOP/s BF16 peak); micro-batch, recompute and
    sequence parallelism not printed (micro-batch 1, SP with TP, the lightest
    BRIDGE_SAVERS that fit); TP overlap and overlapped gradient reduce / parameter gather
    (distributed optimizer) as stated. VP is not printed either, but the README says
    pipeline communication was overlapped with computation, which the Megatron-LM of
    the table's commit (arguments.py at 86d5aa5d77, 2024-07-15) turns off unless the
    schedule is interleaved; its split is even, so the 119B (23 layers a stage) and 462B
    (7) runs can interleave only at one layer per virtual stage, and every PP run takes
    that (vpp = layers per stage)."""
    data = validation_data() if data is None else data
    key = "megatron_core_h100_weak_scaling_gpt"
    ds = validation_dataset(data, key, "model TFLOP/s per GPU", "training")
    cond = data[key]["conditions"]
    vocab, seq = int(cond["vocab_size"]), int(cond["seq_len_tokens"])
    hw = presets.hardware("h100-sxm")
    for row in data[key]["values"]["rows"]:
        model = megatron_core_gpt(row, vocab, seq)
        pp = int(row["pp"])
        plan = partial(megatron_core_plan, model, dtype="bf16",
                       gbs=int(row["global_batch_size_sequences"]), mbs=1, seq=seq,
                       tp=int(row["tp"]), pp=pp, dp=int(row["dp"]),
                       vpp=model.n_layers // pp if pp > 1 else 1)
        r, savers = evaluate_fitting(model, hw, plan)
        ds.rows.append(result_row(f"GPT {row['model_size']} on {row['num_gpus']} GPUs",
                                  row["per_gpu_tflops"], r, "model_tflops_per_gpu", "TFLOP/s",
                                  saver_note(r, savers) if r.feasible else ""))
    ds.notes = ("Models: megatron_core_gpt (Megatron-LM GPT defaults for what the table does "
                "not print); BF16, micro-batch 1, ZeRO-1, bf16 gradients; with PP, one layer "
                "per virtual stage (the README's overlapped PP communication needs the "
                "interleaved schedule).")
    ds.skipped.append("strong-scaling figure: per-point values only in a log-log plot")
    return ds


# ---- NVIDIA DGX Cloud Benchmarking recipes

DGXC_STEP = "Training step time (seconds per step)"
DGXC_TOKENS = "Throughput in tokens per second"
DGXC_SYSTEMS = {"H100": "h100-sxm", "GB200": "gb200-nvl72"}
# config tables whose system the README does not print beside them, in its order (the
# v25.04 H100 405B plan, TP 8, identifies the second llama3.1 table as H100's)
DGXC_CONFIG_SYSTEMS = {
    "dgxc_benchmarking_v25_05_04_llama3_1_405b_gb200_h100": ("GB200", "H100"),
    "dgxc_benchmarking_v25_05_04_grok1_314b_gb200_h100": ("GB200", "H100"),
}
DGXC_KEYS = (
    "dgxc_benchmarking_v25_03_gpt3_175b_h100", "dgxc_benchmarking_v25_03_nemotron4_15b_h100",
    "dgxc_benchmarking_v25_03_nemotron4_340b_h100", "dgxc_benchmarking_v25_03_grok1_314b_h100",
    "dgxc_benchmarking_v25_03_maxtext_llama3_70b_h100",
    "dgxc_benchmarking_v25_03_llama3_70b_sft_h100",
    "dgxc_benchmarking_v25_04_llama3_1_8b_70b_405b_h100",
    "dgxc_benchmarking_v25_05_04_llama3_1_405b_gb200_h100",
    "dgxc_benchmarking_v25_05_04_grok1_314b_gb200_h100",
    "dgxc_benchmarking_v25_05_04_nemotron4_340b_gb200_h100",
)


def dgxc_model(key: str, size: str) -> Model:
    if "gpt3_175b" in key:
        return presets.model("gpt3-175b")
    if "grok1" in key:
        return validation_model("grok1-314b")
    if "nemotron" in key:
        return validation_model("nemotron4-15b") if size == "15b" else nemo_model("Nemotron-340B")
    return presets.model({"8b": "llama3-8b", "70b": "llama3-70b", "405b": "llama3-405b"}[size])


def dgxc_params(text: str) -> dict:
    return {k: v for k, v in re.findall(r"\b(TP|PP|CP|EP|ETP|VP|MBS|GBS|GA|SEQ|FSDP)=(\w+)",
                                        text)}


def as_int(value) -> int | None:
    """A printed degree as an int; 'NA', 'None', null and other words are None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    return int(value) if isinstance(value, str) and value.isdigit() else None


def dgxc_config_rows(key: str, d: dict) -> list[tuple[str, dict]]:
    """(system, row) of every printed plan row: the system from DGXC_CONFIG_SYSTEMS or the
    text beside the table (GB200 or H100), else H100."""
    out = []
    for i, table in enumerate(d["values"]["config_tables"]):
        text = table.get("section", "") + " " + table.get("preceding_text", "")
        system = (DGXC_CONFIG_SYSTEMS[key][i] if key in DGXC_CONFIG_SYSTEMS
                  else "GB200" if "GB200" in text else "H100")
        aliases = {"SEQLEN": "SEQ", "GPUS": "GPUS"}
        out += [(system, {aliases.get(k.upper(), k.upper()): v for k, v in row.items()})
                for row in table["rows"]]
    return out


def dgxc_column_plan(key: str, title: str, column: str, configs: list) -> tuple[dict, str]:
    """The printed plan of one performance column: the table title's settings, then the
    matching config row (same system, GPU count, size, precision and, where the column
    prints it, global batch), then the column's own (GBS, FSDP). Returns (plan, problem)."""
    m = re.search(r"(\d+)x?\s*(H100|GB200)", column)
    n, system = int(m[1]), m[2]
    size = (re.search(r"(\d+)b\b", title, re.I) or re.search(r"_(\d+)b_", key))[1] + "b"
    dtype = "FP8" if "FP8" in title.upper() else "BF16"
    col = dgxc_params(column)
    cands = [row for sys_, row in configs
             if sys_ == system and as_int(row.get("GPUS")) == n
             and str(row.get("SIZE", size)).lower().startswith(size)
             and dtype in str(row.get("PRECISION", dtype)).upper().split("/")
             and ("GBS" not in col or as_int(row.get("GBS")) == int(col["GBS"]))]
    if len(cands) > 1:
        return {}, f"{len(cands)} printed plans match"
    p = {**dgxc_params(title), **(cands[0] if cands else {}), **col}
    return {**p, "GPUS": n, "SYSTEM": system, "SIZE": size, "DTYPE": dtype.lower()}, ""


# Recipes whose configure.sh turns Transformer Engine's cuDNN attention off (export
# NVTE_FUSED_ATTN=0, dgxc-benchmarking v25.03 at 1b9bb6b: grok1/configure.sh, and
# nemotron/configure.sh for 340b, where 15b sets it to 1): TE's flash-attn backend in the
# nemo:24.12 container. TE runs FlashAttention-3 only when its separate Hopper package is
# installed (TE's installation docs; TE 1.11+), which NVIDIA's containers of the time did
# not ship (NVIDIA-BioNeMo/bionemo-recipes issue #735, 2025-03: "add the installation
# steps to our docker container"); NeMo's Dockerfile.ci at v2.1.0 (24.12) installs none
# either: flash-attn 2 (fa2)
DGXC_FLASH_ATTN = {"dgxc_benchmarking_v25_03_grok1_314b_h100": ("314b",),
                   "dgxc_benchmarking_v25_03_nemotron4_340b_h100": ("340b",)}


def dgxc_dataset(key: str, data: dict | None = None) -> Dataset:
    """An NVIDIA DGX Cloud Benchmarking recipe README ('Expected Performance'): training
    step time per GPU count. Each column's plan is the printed one (dgxc_column_plan);
    DP = GPUs / (TP PP CP) (a printed DP or GA that disagrees is noted on the row); VP and
    EP 'NA' = 1, ETP not printed = TP (Megatron-Core's default: ModelParallelConfig sets
    expert_tensor_parallel_size = tensor_model_parallel_size when it is None, in every
    release these recipes ran, e.g. core_r0.10.0 of NeMo 24.12); the sequence, where the
    README prints none, is tokens/s x step time / global batch (4096 or 8192, noted);
    micro-batch 1 where not printed; a 'Layers' column below the model's depth is the
    recipe's proxy model with that many layers; FSDP over all GPUs is ZeRO-3. Recompute,
    CUDA-graph and overlap settings are in the recipe scripts, not the README:
    megatron_core_plan's defaults (distributed optimizer, bf16 gradients, SP and TP
    overlap with TP) and the lightest BRIDGE_SAVERS that fit."""
    data = validation_data() if data is None else data
    d = data[key]
    ds = validation_dataset(data, key, "training step time (s)", "training")
    configs = dgxc_config_rows(key, d)
    for table in d["values"]["performance_tables"]:
        title = table["table_title"]
        short = re.sub(r"\s*\(.*?\)", "", title).strip()
        if "LORA" in title.upper():
            ds.skipped.append(f"{short} ({len(table['columns'])} values): LoRA fine-tuning "
                              "(frozen base weights, adapter GEMMs) is not expressible")
            continue
        steps, tokens = table["rows"][DGXC_STEP], table["rows"].get(DGXC_TOKENS, [])
        for j, column in enumerate(table["columns"]):
            p, problem = dgxc_column_plan(key, title, column, configs)
            n = p.get("GPUS", 0)
            label = f"{short} on {n}x {p.get('SYSTEM', '')}"
            fsdp = as_int(p.get("FSDP")) or 0
            tp, pp, cp = (as_int(p.get(k)) or (1 if fsdp or k != "TP" else None)
                          for k in ("TP", "PP", "CP"))
            if not problem and tp is None:
                problem = "no parallel plan printed for this column"
            elif not problem and fsdp and fsdp != n:
                problem = (f"hybrid sharding (FSDP {fsdp} x DP {n // fsdp}) is not expressible "
                           "(ZeRO-3 shards over all data-parallel GPUs)")
            elif not problem and n % (tp * pp * cp):
                problem = f"printed TP {tp} x PP {pp} x CP {cp} does not divide {n} GPUs"
            if problem or not isinstance(steps[j], (int, float)):
                ds.skipped.append(f"{label}: {problem or 'no step time printed'}")
                continue
            dp = n // (tp * pp * cp)
            gbs, mbs = int(p["GBS"]), as_int(p.get("MBS"))
            notes = [] if mbs else ["micro-batch 1 (not printed)"]
            mbs = mbs or 1
            seq = as_int(p.get("SEQ"))
            if not seq:
                seq = int(round(tokens[j] * steps[j] / gbs / 1024) * 1024)
                notes.append(f"seq {seq} from tokens/s")
            if as_int(p.get("DP")) not in (None, dp):
                notes.append(f"printed DP {p['DP']}")
            if as_int(p.get("GA")) not in (None, gbs // (dp * mbs)):
                notes.append(f"printed GA {p['GA']}")
            model = dgxc_model(key, p["SIZE"])
            layers = as_int(p.get("LAYERS"))
            if layers and layers != model.n_layers:
                model = model.with_(name=f"{model.name}-{layers}-layers", n_layers=layers)
                label += f" ({layers}-layer proxy)"
            hw = presets.hardware(DGXC_SYSTEMS[p["SYSTEM"]])
            flash_attn = p["SIZE"] in DGXC_FLASH_ATTN.get(key, ())
            if flash_attn:
                notes.append("TE flash-attn backend (NVTE_FUSED_ATTN=0): flash-attn 2")
            kw = dict(dtype=p["DTYPE"], gbs=gbs, mbs=mbs, seq=seq, tp=tp, pp=pp, cp=cp, dp=dp,
                      vpp=as_int(p.get("VP")) or 1, ep=as_int(p.get("EP")) or 1,
                      etp=as_int(p.get("ETP")) or tp, fsdp=bool(fsdp),
                      attention_kernel="fa2" if flash_attn else TE_ATTENTION)
            r, savers = evaluate_fitting(model, hw, partial(megatron_core_plan, model, **kw))
            ds.rows.append(result_row(label, steps[j], r, "time_step_s", "s", row_note(
                saver_note(r, savers) if r.feasible else "", *notes)))
    ds.notes = ("Plans: dgxc_dataset (the printed degrees; DP = GPUs / (TP PP CP); "
                "megatron_core_plan defaults for what the README leaves to the recipe "
                "scripts). GB200 efficiencies: the H100 fit, GEMM levels carried by the sustained "
                "cuBLASLt transfer (docs/accuracy.md); no GB200 run is fitted.")
    return ds


# ---- single-GPU PyTorch training steps

# The SM clock at which a preset's tensor peaks are quoted: the vendor's dense BF16 peak
# over (SMs x dense BF16 FLOP per SM per clock). Ampere's SM does 2,048 (A100: 312 TFLOP/s
# = 108 x 2048 x 1.41 GHz, its 1410 MHz boost), Hopper's twice that (H100/H200 SXM:
# 989.4 TFLOP/s = 132 x 4096 x 1.83 GHz), Blackwell's twice Hopper's (B200: 2.25 PFLOP/s
# = 148 x 8192 x 1.856 GHz).
PEAK_CLOCK_MHZ = {"a100-80gb": 1410.0, "h100-sxm": 1830.0, "h200": 1830.0, "b200": 1856.0}


def at_clock(hw: Hardware, mhz: float) -> Hardware:
    """The GPU with its SM clock locked at `mhz` (nvidia-smi -lgc): tensor peaks scale
    with the clock, HBM, NVLink and the network do not."""
    s = mhz / PEAK_CLOCK_MHZ[hw.name]
    return hw.with_(peak_bf16_flops_per_s=hw.peak_bf16_flops_per_s * s,
                    peak_fp8_flops_per_s=hw.peak_fp8_flops_per_s * s,
                    peak_fp4_flops_per_s=hw.peak_fp4_flops_per_s * s)


def single_gpu_plan(batch: int, seq: int, **kw) -> Plan:
    """One GPU, PyTorch bf16 model: no ZeRO, bf16 gradients, fused attention (SDPA)."""
    return Plan(global_batch=batch, micro_batch=batch, seq_len=seq, zero=0, grad_dtype="bf16",
                sequence_parallel=False, **kw)


# PyTorch SDPA backends (torch.nn.attention.SDPBackend) as attention_kernel
SDPA_KERNELS = {"CUDNN": "cudnn", "FLASH": "fa2", "EFFICIENT": "mem_efficient"}


def llama32_1b_cudnn_frontend(data: dict | None = None) -> Dataset:
    """cudnn-frontend Llama-3.2-1B training iteration (forward + backward + SGD step) on one
    B200 and one H200, per batch/sequence shape and SDPA backend: single_gpu_plan; the
    CUDNN backend is cuDNN's fused attention (attention_kernel cudnn), FLASH is
    FlashAttention-2 (fa2), EFFICIENT PyTorch's memory-efficient kernels (mem_efficient:
    xFormers' CUTLASS kernels, at the A100's xFormers/FA2 relation on the GPU's FA2); gradient
    checkpointing is not mentioned (none; the lightest BRIDGE_SAVERS that fit). The H200
    at the clock the source locked it to (1500 MHz: at_clock); the B200 at its vendor peak,
    since its run log shows the 1665 MHz lock failing (locked_clock_MHz null). Not
    expressible and left as they are: the SGD optimizer without state (pyengine's step is
    Adam's) and eager PyTorch's unfused element-wise kernels."""
    data = validation_data() if data is None else data
    key = "llama3_2_1b_single_gpu_training_iteration_b200_h200_cudnn_frontend"
    ds = validation_dataset(data, key, "training iteration time (s)", "training",
                            name="llama3_2_1b_cudnn_frontend")
    model = validation_model("llama3.2-1b")
    hws = {"NVIDIA B200": presets.hardware("b200"), "NVIDIA H200": presets.hardware("h200")}
    for row in data[key]["values"]["rows"]:
        b, s = int(row["batch_size"]), int(row["seq_len_tokens"])
        hw = hws[row["gpu"]]
        if row["locked_clock_MHz"]:
            hw = at_clock(hw, float(row["locked_clock_MHz"]))
        kernel = SDPA_KERNELS[row["sdpa_backend"].split("_")[0]]
        r, savers = evaluate_fitting(model, hw, partial(single_gpu_plan, b, s,
                                                        attention_kernel=kernel))
        ds.rows.append(result_row(f"{row['gpu'].split()[-1]} {row['sdpa_backend'].split('_')[0]}"
                                  f" b{b} x {s}", row["iteration_time_s"], r, "time_step_s", "s",
                                  saver_note(r, savers) if r.feasible else ""))
    ds.notes = ("Plans: single_gpu_plan, Adam in place of the source's stateless SGD; H200 "
                "tensor peaks scaled to the locked clock (at_clock); the B200's clock lock "
                "failed in its run log, so it runs at the vendor peak.")
    return ds


def torch_compile_b200(data: dict | None = None) -> Dataset:
    """ml-engineering torch.compile benchmark on one B200: the eager '+ AdamW step' rows
    (a whole training step) of Llama 3.2 1B (batch 1 x 512) and Llama 3.1 8B (batch 1 x
    8192): single_gpu_plan with full recomputation (gradient checkpointing, as printed)."""
    data = validation_data() if data is None else data
    key = "torch_compile_eager_vs_cudagraph_b200_mlengineering"
    ds = validation_dataset(data, key, "training step time (s)", "training",
                            name="torch_compile_b200")
    hw = presets.hardware("b200")
    values = data[key]["values"]
    for vkey, model, seq in (("llama3_2_1b_b1_s512_ms", validation_model("llama3.2-1b"), 512),
                             ("llama3_1_8b_b1_s8192_ms", presets.model("llama3-8b"), 8192)):
        for row in values[vkey]:
            if row["workload"] != "+ AdamW step":
                continue
            r = R.evaluate(model, hw, single_gpu_plan(1, seq, recompute="full"))
            ds.rows.append(result_row(f"{model.name} b1 x {seq} eager", row["eager_ms"] / 1000,
                                      r, "time_step_s", "s"))
    ds.skipped += [
        "torch.compile default / reduce-overhead / max-autotune columns (6 steps): the same "
        "plan as eager; pyengine has no kernel-fusion or CUDA-graph setting",
        "'forward (infer)' and 'forward+backward' rows (2 workloads x 2 models, every "
        "column): not a whole training step (no optimizer step)"]
    return ds


# ---- TorchTitan Llama 4 Scout on GB200

def torchtitan_llama4_scout(data: dict | None = None) -> Dataset:
    """TorchTitan Llama 4 Scout pre-training on GB200, BF16 and MXFP8 (fp8 here): 256 GPUs
    (the configuration text's 64 nodes x 4; the table's '512' is not used), local batch 1 x
    8192, FSDP (ZeRO-3) over all of them, EP 16 with expert TP 1, no activation
    checkpointing, as printed; TorchTitan's FSDP2 default fp32 gradient reduction. Read as
    tokens/s per GPU (the scope is not printed; per GPU is the reading with a plausible
    utilisation). Not expressible: the routed experts' FSDP degree 64 (pyengine shards them
    over the 16 expert-data-parallel ranks) and the BF16 layers of the MXFP8 run (output,
    router, attention wk/wv)."""
    data = validation_data() if data is None else data
    key = "torchtitan_llama4_scout_mxfp8_gb200_torchao"
    ds = validation_dataset(data, key, "tokens/s per GPU", "training",
                            name="torchtitan_llama4_scout_gb200")
    d = data[key]
    model, hw = validation_model("llama4-scout"), presets.hardware("gb200-nvl72")
    gpus, seq = 256, int(d["conditions"]["seq_len_tokens"])
    for row in d["values"]["rows"]:
        for dtype, col in (("bf16", "bf16_tokens_per_s"), ("fp8", "mxfp8_tokens_per_s")):
            plan = Plan(dtype=dtype, global_batch=gpus, micro_batch=1, seq_len=seq, dp=gpus,
                        ep=int(d["conditions"]["ep"]), etp=1, zero=3, recompute="none",
                        sequence_parallel=False)
            r = R.evaluate(model, hw, plan)
            ds.rows.append(result_row(f"Llama4 Scout {'MXFP8' if dtype == 'fp8' else 'BF16'} "
                                      f"on {gpus} GB200", row[col], r, "tokens_per_s_per_gpu",
                                      "tok/s/GPU"))
    ds.notes = ("GPU count 256 (text) against 512 (table) and the tokens/s scope are "
                "ambiguous in the source; see the function's docstring.")
    return ds


# ---- serving

PERF_OVERVIEW_MODELS = {"Llama 3.3 70B": lambda: presets.model("llama3-70b"),
                        "Llama 3.1 405B": lambda: presets.model("llama3-405b"),
                        "Qwen3-235B-A22B": lambda: presets.model("qwen3-235b-a22b"),
                        "Llama 4 Scout": lambda: validation_model("llama4-scout"),
                        "Llama 4 Maverick": lambda: validation_model("llama4-maverick")}
PERF_DTYPES = {"FP8": "fp8", "FP4": "nvfp4"}  # ModelOpt FP4 checkpoints are NVFP4
PERF_OVERVIEW_GPUS = {"H100": "h100-sxm", "H200": "h200", "B200": "b200", "GB200": "gb200-nvl72"}


def trtllm_serving_row(label: str, published_value: float, model: Model, hw: Hardware,
                       isl: int, osl: int, requests: int, tp: int, dtype: str = "fp8",
                       engine: dict | None = None, attention_dp: bool = False) -> Row:
    pred, b = trtllm_best(model, hw, isl, osl, requests, tp, dtype, engine, attention_dp)
    dispatcher = trtllm_moe_dispatcher(model, hw, tp)
    if b:
        return Row(label, published_value, pred, "tok/s", f"batch {b}",
                   plan=trtllm_plan(b, isl, osl, tp, dtype, engine, attention_dp, dispatcher))
    r = R.evaluate(model, hw, trtllm_plan(tp if attention_dp else 1, isl, osl, tp, dtype,
                                          engine, attention_dp, dispatcher),
                   Limits(mem_fraction=1.0))
    return Row(label, published_value, 0.0, "tok/s",
               "infeasible at every batch size: " + ",".join(r.violations), False, plan=r.plan)


def trtllm_perf_overview(data: dict | None = None) -> Dataset:
    """TensorRT-LLM perf-overview (v1.0) offline max throughput, whole TP group: as
    trtllm_llama31_8b, the engine's best feasible batch up to the request count
    (trtllm_best) with the printed TP, run as trtllm-bench runs (trtllm_bench_engine:
    in-flight batching in the token budget trtllm-bench's heuristic sets, KV cache 95% of
    the free memory, CUDA graphs);
    FP8 weights and KV cache, or NVFP4 weights with an FP8 KV cache on Blackwell; ISL =
    the prompt, OSL = the generated tokens. Llama 3.3 70B has Llama 3.1 70B's
    architecture (the llama3-70b preset). MoE runs: attention data parallel over the
    printed TP GPUs, experts over EP = TP (enable_attention_dp as printed; the EP size per
    column is not printed)."""
    data = validation_data() if data is None else data
    key = "tensorrt_llm_perf_overview_v1_0_max_throughput"
    ds = validation_dataset(data, key, "output tokens/s (TP group)", "serving",
                            name="trtllm_perf_overview")
    d = data[key]
    requests = d["conditions"]["num_requests_by_isl_osl"]
    skipped: dict[str, int] = {}
    for row in d["values"]["rows"]:
        reason = (f"{row['precision']} precision" if row["precision"] not in PERF_DTYPES
                  else f"{row['gpu']}: no hardware preset" if row["gpu"] not in
                  PERF_OVERVIEW_GPUS
                  else f"{row['model']}: no architecture" if row["model"] not in
                  PERF_OVERVIEW_MODELS
                  else "blank cell (not run or out of memory)"
                  if row["total_output_tokens_per_s"] is None else "")
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        tp = int(row["parallelism"].removeprefix("TP"))
        isl, osl = int(row["isl"]), int(row["osl"])
        model = PERF_OVERVIEW_MODELS[row["model"]]()
        hw = presets.hardware(PERF_OVERVIEW_GPUS[row["gpu"]])
        ds.rows.append(dataclasses.replace(trtllm_serving_row(
            f"{row['model']} {row['gpu']} {row['precision']} TP{tp} {isl}/{osl}",
            float(row["total_output_tokens_per_s"]), model, hw, isl, osl,
            int(requests.get(f"{isl}/{osl}", 1000)), tp, PERF_DTYPES[row["precision"]],
            trtllm_bench_engine(model, hw, isl, osl, tp, PERF_DTYPES[row["precision"]]),
            model.is_moe), group=f"{row['model']} {row['gpu']}"))
    ds.skipped += [f"{why}: {n} values" for why, n in skipped.items()]
    ds.notes = (f"Batches searched: {BATCHES[0]}..{BATCHES[-1]} (the runs' CUDA graphs go to "
                "8192); MoE runs as attention data parallel + EP = TP; "
                f"{WORKLOAD.describe()}.")
    return ds


AZURE_GPUS = {"a100": ("a100-80gb", "bf16"), "h100": ("h100-sxm", "fp8"), "h200": ("h200", "fp8")}
# TensorRT-LLM benchmarks/python/benchmark.py (the GPT session benchmark the Azure guide's
# LLMBenchmark.py runs): --enable_cuda_graph is off unless passed, and the guide passes it not
AZURE_ENGINE = {"cuda_graphs": False}
AZURE_MODELS = {"Mistral 7B": lambda: validation_model("mistral-7b"),
                "Llama 3 8B": lambda: presets.model("llama3-8b"),
                "Llama 3 70B": lambda: presets.model("llama3-70b"),
                "Llama 3 405B": lambda: presets.model("llama3-405b")}


def azure_trtllm(gpu: str, data: dict | None = None) -> Dataset:
    """Azure AI Benchmarking Guide, TensorRT-LLM offline throughput at a fixed batch,
    input 128 / output 8 tokens: decode with seq_len = 128, gen_tokens = 8 and the printed
    batch (serving_fitting), TP = the printed world size; tokens/s counts generated tokens
    (the benchmark's batch x output length / latency). Precision: A100 float16 as printed
    (pyengine's 16-bit: bf16); H100 and H200 FP8 weights and KV cache (the repository's
    config.json at the results' commit: 'precision': 'fp8'; the 405B run uses the FP8
    checkpoint). The runs call TensorRT-LLM's benchmarks/python/benchmark.py -m dec with
    no --enable_cuda_graph, whose default is off (AZURE_ENGINE): the generation steps are
    launched kernel by kernel. The session runs one static batch with the requests as rows
    of its tensors, without an in-flight-batching scheduler handling each request in
    Python, so the host work per request (request_overhead_s) is none."""
    data = validation_data() if data is None else data
    key = f"azure_trtllm_inference_tokens_per_s_{gpu}"
    ds = validation_dataset(data, key, "output tokens/s (ISL 128, OSL 8)", "serving",
                            name=f"azure_trtllm_{gpu}")
    slug, dtype = AZURE_GPUS[gpu]
    hw = presets.hardware(slug).with_(request_overhead_s=0.0)
    d = data[key]
    isl, osl = int(d["conditions"]["isl"]), int(d["conditions"]["osl"])
    for row in d["values"]["rows"]:
        tp, b = int(row["world_size"]), int(row["batch_size"])
        r, note = serving_fitting(AZURE_MODELS[row["model"]](), hw, b, isl, osl, tp, dtype,
                                  AZURE_ENGINE)
        ds.rows.append(result_row(f"{row['model']} TP{tp} batch {b}", row["tokens_per_s"], r,
                                  "tokens_per_s", "tok/s", note))
    ds.notes = f"{dtype} on {slug}; see azure_trtllm's docstring for the precision source."
    return ds


NIM_METRICS = (("throughput", "throughput_tokens_per_s", 1.0, "tokens_per_s", "tok/s"),
               ("TTFT", "ttft_ms", 1e-3, "ttft_s", "s"),
               ("ITL", "itl_ms", 1e-3, "tpot_s", "s"))


def queued_serving(model: Model, hw: Hardware, plan: Plan) -> tuple[dict, object, str]:
    """A closed loop of ``plan.global_batch`` clients on an engine whose KV cache holds
    fewer: the engine serves the max_concurrency that fits and queues the rest (TensorRT-LLM's
    GUARANTEED_NO_EVICT scheduler admits a request only with its whole KV cache). By
    Little's law each of the c clients waits c / c_max - 1 service times T_s = TTFT + gen x
    ITL of the served requests before its own starts: TTFT = TTFT(c_max) + T_s (c / c_max -
    1); throughput and ITL are those at c_max. Returns (outputs, Result, note)."""
    r = R.evaluate(model, hw, plan)
    if r.violations != ["KV_CACHE"]:
        return dict(r.outputs), r, ""
    c = plan.global_batch
    c_max = int(r.outputs["max_concurrency"])
    served = R.evaluate(model, hw, plan.with_(global_batch=c_max, micro_batch=c_max))
    out = dict(served.outputs)
    service = out["ttft_s"] + plan.gen_tokens * out["tpot_s"]
    out["ttft_s"] += service * (c / c_max - 1.0)
    return out, served, f"{c_max} served, {c - c_max} queued"


def nim_llama33_70b(data: dict | None = None) -> Dataset:
    """NVIDIA NIM Llama-3.3-70B-Instruct on 2x H100, FP8, TP 2, ISL 5000 / OSL 500: each
    client concurrency c as decode with global batch c, run as its TensorRT-LLM engine runs
    (TRTLLM_BENCH: in-flight batching with chunked prefill in a token budget, KV cache 95%
    of free memory; NIM's own fraction is not printed), beyond the KV cache's capacity
    queued (queued_serving); three metric rows per concurrency: total output throughput
    (tokens/s), TTFT (ttft_s) and inter-token latency (tpot_s)."""
    data = validation_data() if data is None else data
    key = "nim_llama3_3_70b_2xh100_fp8_tp2_latency_vs_concurrency"
    ds = validation_dataset(data, key, "output tokens/s, TTFT (s), ITL (s)", "serving",
                            name="nim_llama3_3_70b_h100")
    d = data[key]
    c = d["conditions"]
    model, hw = presets.model("llama3-70b"), presets.hardware("h100-sxm")
    for row in d["values"]["rows"]:
        conc = int(row["concurrency"])
        plan = trtllm_plan(conc, int(c["isl"]), int(c["osl"]), int(c["tp"]), "fp8",
                           TRTLLM_BENCH)
        out, r, note = queued_serving(model, hw, plan)
        for metric, col, scale, name, unit in NIM_METRICS:
            ds.rows.append(Row(f"concurrency {conc}", row[col] * scale, out[name], unit,
                               row_note(infeasible_note(r), note), r.feasible, metric=metric,
                               plan=plan))
    ds.notes = "Llama 3.3 70B = the llama3-70b preset's architecture; FP8 weights and KV cache."
    return ds


# Datasets of validation.json not wired, and why (reported by `validate`)
UNWIRED = {
    "dgxc_benchmarking_v25_03_llama3_8b_sft_h100":
        "every SFT plan prints PP=41 on 8-32 GPUs of a 32-layer model (not a plan; not "
        "guessed) and the LoRA tables are not expressible",
    "deepseek_v3_training_cost_and_plan_fragments":
        "no plan: PP, DP, GPU count and global batch are not in the source",
    "deepseek_v3_r1_online_inference_statistics":
        "production serving with prefill/decode disaggregation over a day: no plan or batch",
    "sglang_deepseek_96_h100_pd_disaggregation_headline":
        "prefill/decode disaggregation with per-role EP and two-batch overlap: no single plan",
}


# --------------------------------------------------------------------------- registry

DATASETS = {
    "zero_2019": zero_2019,
    "korthikanti_2022": korthikanti_2022,
    "korthikanti_2022_table4": korthikanti_2022_table4,
    "megatron_lm_2021": megatron_lm_2021,
    "nemo_24_07": nemo_24_07,
    "trtllm_llama31_8b": trtllm_llama31_8b,
}
# validation only: results found elsewhere, never fitted (their own data file); each is
# called with validation_data()
VALIDATION = {
    "megatron_bridge": megatron_bridge,
    "korthikanti_2022_table5": korthikanti_2022_table5,
    **{key: partial(nemo_long_sequence, key) for key in NEMO_LONG},
    "megatron_core_h100_weak_scaling_gpt": megatron_core_weak_scaling,
    **{key: partial(dgxc_dataset, key) for key in DGXC_KEYS},
    "llama3_2_1b_cudnn_frontend": llama32_1b_cudnn_frontend,
    "torch_compile_b200": torch_compile_b200,
    "torchtitan_llama4_scout_gb200": torchtitan_llama4_scout,
    "trtllm_perf_overview": trtllm_perf_overview,
    **{f"azure_trtllm_{gpu}": partial(azure_trtllm, gpu) for gpu in AZURE_GPUS},
    "nim_llama3_3_70b_h100": nim_llama33_70b,
}


def run(names=None, workload: ServingWorkload | None = None) -> list[Dataset]:
    """Every dataset (or those named), the TensorRT-LLM serving runs under `workload`
    (ServingWorkload(): the defaults)."""
    global WORKLOAD
    data, vdata = published(), None
    out = []
    before, WORKLOAD = WORKLOAD, workload or ServingWorkload()
    try:
        for n in names or [*DATASETS, *VALIDATION]:
            if n in DATASETS:
                out.append(DATASETS[n](data))
            else:
                vdata = validation_data() if vdata is None else vdata
                out.append(VALIDATION[n](vdata))
    finally:
        WORKLOAD = before
    return out


# --------------------------------------------------------------------------- summaries

def pooled(datasets: list[Dataset], kind: str, unit: str = "") -> dict:
    """Every validation-only row of one kind together (only those in ``unit``, when
    given): mean and worst |error| over the rows predicted feasible, and how many
    published rows were predicted infeasible."""
    rows = [r for ds in datasets if not ds.fitted and ds.kind == kind for r in ds.rows
            if not unit or r.unit == unit]
    errors = [abs(r.error) for r in rows if r.feasible]
    return {"rows": len(errors), "infeasible": len(rows) - len(errors),
            "mape": float(np.mean(errors)) if errors else None,
            "worst": float(max(errors)) if errors else None,
            "goal": TRAINING_GOAL if kind == "training" else SERVING_GOAL}


def infeasible_runs(datasets: list[Dataset]) -> list[dict]:
    """Published runs the model finds infeasible (one entry per run, its metric rows
    together): each is a failure of the model, listed with the violated constraints."""
    runs: dict[tuple[str, str], dict] = {}
    for ds in datasets:
        for r in ds.infeasible:
            run_ = runs.setdefault((ds.name, r.label), {
                "dataset": ds.name, "label": r.label, "fitted": ds.fitted,
                "known": r.label in ds.known_infeasible, "violations": r.note, "metrics": []})
            if r.metric:
                run_["metrics"].append(r.metric)
    return list(runs.values())


def summary_line(datasets: list[Dataset]) -> str:
    parts = []
    for kind in ("training", "serving"):
        p = pooled(datasets, kind)
        if not p["rows"] and not p["infeasible"]:
            continue
        mean = "n/a" if p["mape"] is None else f"{100 * p['mape']:.1f}%"
        worst = "" if p["worst"] is None else f", worst {100 * p['worst']:.1f}%"
        parts.append(f"{kind} {p['rows']} rows, mean |error| {mean} (goal <= "
                     f"{100 * p['goal']:g}%){worst}, {p['infeasible']} predicted infeasible")
        t = pooled(datasets, kind, "tok/s")
        if kind == "serving" and t["rows"] and t["rows"] < p["rows"]:
            parts.append(f"serving throughput (tok/s) rows alone {t['rows']}, mean |error| "
                         f"{100 * t['mape']:.1f}%")
    return "validation only, not fitted: " + ("; ".join(parts) if parts else "no rows")


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def status_of(ds: Dataset) -> str:
    if not ds.fitted:
        return f"validation, not fitted; goal {100 * ds.bound_mean:g}% mean"
    return "ok" if ds.ok else "FAILED"


# --------------------------------------------------------------------------- text

def render(datasets: list[Dataset], verbose: bool = True) -> str:
    lines = []
    for ds in datasets:
        lines.append(f"{ds.name}: {ds.metric}")
        lines.append(f"  source: {ds.source}")
        for r in ds.rows if verbose else ds.infeasible:
            lines.append(render_row(r))
        bad = len(ds.infeasible)
        bounds = (f" (bound {100 * ds.bound_mean:g}%)", f" (bound {100 * ds.bound_row:g}%)")
        if not ds.fitted:
            bounds = ("", "")
        lines.append(f"  mean |error| {100 * ds.mape:.2f}%{bounds[0]}, "
                     f"worst {100 * ds.worst:.2f}%{bounds[1]}"
                     + (f" over {len(ds.scored)} rows; {bad} published "
                        f"run{'s' if bad > 1 else ''} predicted infeasible, not in the mean"
                        if bad else "")
                     + (f"; {ds.trend}" if ds.trend else "") + f"  [{status_of(ds)}]")
        for g in ds.groups() if verbose else ():
            lines.append(f"  group {g['group']:<30} {g['rows']:>3} rows  signed "
                         f"{100 * g['signed']:+6.1f}%  mean |error| {100 * g['mean_abs']:5.1f}%")
        if verbose and ds.notes:
            lines.append(f"  notes: {ds.notes}")
        for s in ds.skipped if verbose else ():
            lines.append(f"  not compared: {s}")
        lines.append("")
    lines += render_summary(datasets)
    return "\n".join(lines)


def render_row(r: Row) -> str:
    label = f"{r.label} [{r.metric}]" if r.metric else r.label
    head = f"  {label:<58} published {r.published:>12.6g}  predicted "
    if not r.feasible:  # no number to compare: the model says the published run cannot run
        return head + f"{'INFEASIBLE':>12}  {'':>7}   {r.note} (not in the mean)"
    return head + f"{r.predicted:>12.6g}  {100 * r.error:+7.1f}%  {r.note}"


def render_summary(datasets: list[Dataset]) -> list[str]:
    w = max([len(ds.name) for ds in datasets] + [7])
    lines = ["summary: mean and worst |error| over the rows predicted feasible",
             f"  {'dataset':<{w}}  {'kind':<8}  {'fitted':<6}  {'rows':>4}  {'infeas.':>7}  "
             f"{'mean':>8}  {'worst':>8}  status"]
    for ds in datasets:
        lines.append(f"  {ds.name:<{w}}  {ds.kind:<8}  {'yes' if ds.fitted else 'no':<6}  "
                     f"{len(ds.scored):>4}  {len(ds.infeasible):>7}  "
                     f"{pct(ds.mape if ds.scored else None):>8}  "
                     f"{pct(ds.worst if ds.scored else None):>8}  {status_of(ds)}")
    runs = infeasible_runs(datasets)
    lines.append(f"infeasible published runs: {len(runs)} (runs that ran; each a failure of "
                 "the model)")
    for run_ in runs:
        metrics = f" [{', '.join(run_['metrics'])}]" if run_["metrics"] else ""
        known = " (known limit)" if run_["known"] else ""
        lines.append(f"  {run_['dataset']}: {run_['label']}{metrics}: "
                     f"{run_['violations']}{known}")
    lines.append(summary_line(datasets))
    return lines


# --------------------------------------------------------------------------- markdown

MARKDOWN_BEGIN = "<!-- BEGIN generated by `pyengine validate --markdown` -->"
MARKDOWN_END = "<!-- END generated -->"


def md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_number(v: float) -> str:
    if not math.isfinite(v):
        return str(v)
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def render_markdown(datasets: list[Dataset]) -> str:
    """The accuracy tables of docs/accuracy.md: a summary of every dataset (fitted and
    validation-only), the pooled validation-only means, every published run predicted
    infeasible with its violations, then one table per dataset."""
    out = [MARKDOWN_BEGIN, "",
           "### Every dataset", "",
           "| dataset | kind | fitted | rows | infeasible | mean abs error | worst | "
           "bound (fitted) or goal |", "|---|---|---|---:|---:|---:|---:|---|"]
    for ds in datasets:
        bound = (f"{100 * ds.bound_mean:g}% mean, {100 * ds.bound_row:g}% row"
                 + (f" ({'ok' if ds.ok else 'FAILED'})") if ds.fitted
                 else f"goal {100 * ds.bound_mean:g}% mean")
        out.append(f"| {ds.name} | {ds.kind} | {'yes' if ds.fitted else 'no'} | "
                   f"{len(ds.scored)} | {len(ds.infeasible)} | "
                   f"{pct(ds.mape if ds.scored else None)} | "
                   f"{pct(ds.worst if ds.scored else None)} | {bound} |")
    out += ["", f"**{md(summary_line(datasets))}**", "",
            "### Published runs predicted infeasible", ""]
    runs = infeasible_runs(datasets)
    if not runs:
        out.append("None.")
    for run_ in runs:
        metrics = f" ({', '.join(run_['metrics'])})" if run_["metrics"] else ""
        known = "; a documented known limit" if run_["known"] else ""
        out.append(f"- `{run_['dataset']}`: {md(run_['label'])}{metrics}: "
                   f"{md(run_['violations'])}{known}")
    out += ["", "Not wired from `pyengine/data/validation.json`:", ""]
    out += [f"- `{key}`: {md(why)}" for key, why in UNWIRED.items()]
    for ds in datasets:
        out += ["", f"### {ds.name}", "",
                f"{md(ds.metric)}; {'fitted' if ds.fitted else 'validation, not fitted'}. "
                f"Source: {md(ds.source.removesuffix(' (validation, not fitted)'))}", ""]
        if ds.notes:
            out += [f"Notes: {md(ds.notes)}", ""]
        for s in ds.skipped:
            out.append(f"- not compared: {md(s)}")
        if ds.skipped:
            out.append("")
        metric_col = any(r.metric for r in ds.rows)
        head = "| run |" + (" metric |" if metric_col else "")
        out += [head + " published | predicted | error | note |",
                "|---|" + ("---|" if metric_col else "") + "---:|---:|---:|---|"]
        for r in ds.rows:
            cells = [md(r.label)] + ([md(r.metric)] if metric_col else [])
            cells += [md_number(r.published),
                      md_number(r.predicted) if r.feasible else "infeasible",
                      f"{100 * r.error:+.1f}%" if r.feasible else "", md(r.note)]
            out.append("| " + " | ".join(cells) + " |")
        out += ["", f"Mean abs error {pct(ds.mape if ds.scored else None)}, worst "
                f"{pct(ds.worst if ds.scored else None)} over {len(ds.scored)} rows"
                + (f"; {len(ds.infeasible)} predicted infeasible" if ds.infeasible else "")
                + (f"; {md(ds.trend)}" if ds.trend else "") + "."]
        groups = ds.groups()
        if groups:
            out += ["", "By group (signed: + the model optimistic):", "",
                    "| group | rows | signed mean error | mean abs error |",
                    "|---|---:|---:|---:|"]
            out += [f"| {md(g['group'])} | {g['rows']} | {100 * g['signed']:+.1f}% | "
                    f"{pct(g['mean_abs'])} |" for g in groups]
    out += ["", MARKDOWN_END]
    return "\n".join(out)


def splice_markdown(doc: str, block: str) -> str:
    """``doc`` with the text between the generated-block markers replaced by ``block``."""
    i, j = doc.find(MARKDOWN_BEGIN), doc.find(MARKDOWN_END)
    if i < 0 or j < i:
        raise ValueError(f"no '{MARKDOWN_BEGIN}' ... '{MARKDOWN_END}' block to replace")
    return doc[:i] + block + doc[j + len(MARKDOWN_END):]


# --------------------------------------------------------------------------- json

def to_json(datasets: list[Dataset]) -> dict:
    out = {ds.name: {
        "source": ds.source, "metric": ds.metric, "mape": ds.mape, "worst": ds.worst,
        "bound_mean": ds.bound_mean, "bound_row": ds.bound_row if math.isfinite(ds.bound_row)
        else None, "trend": ds.trend, "ok": ds.ok, "fitted": ds.fitted, "kind": ds.kind,
        "infeasible": len(ds.infeasible), "notes": ds.notes, "skipped": ds.skipped,
        "rows": [{"label": r.label, "metric": r.metric, "published": r.published,
                  "predicted": r.predicted if r.feasible else None,
                  "error": r.error if r.feasible else None, "feasible": r.feasible,
                  "unit": r.unit, "note": r.note, "group": r.group} for r in ds.rows],
        "groups": ds.groups(),
    } for ds in datasets}
    out["_summary"] = {"validation_training": pooled(datasets, "training"),
                       "validation_serving": pooled(datasets, "serving"),
                       "validation_serving_tokens_per_s": pooled(datasets, "serving", "tok/s"),
                       "infeasible_runs": infeasible_runs(datasets), "not_wired": UNWIRED}
    return out


# --------------------------------------------------------------------------- command line

def add_parser(sub) -> None:
    from .cli_common import subparser

    p = subparser(sub, "validate", help="compare the model with published measurements",
                  description="Run the cost model on every published row shipped with "
                              "pyengine; exit 1 if a fitted dataset exceeds its error bound "
                              "or finds a published run infeasible (validation-only "
                              "datasets are reported against their goal).")
    p.add_argument("--dataset", action="append", choices=sorted([*DATASETS, *VALIDATION]),
                   help="only this dataset (repeatable; default: all)")
    p.add_argument("--json", action="store_true", help="every row and summary as JSON")
    p.add_argument("--markdown", nargs="?", const="-", metavar="FILE",
                   help="the accuracy tables as Markdown; with FILE, replace the generated "
                        "block of FILE (docs/accuracy.md) instead of printing")
    p.add_argument("--quiet", action="store_true", help="summaries only")
    p.add_argument("--moe-load-imbalance", type=float, default=1.0, metavar="X",
                   help="sensitivity: the TensorRT-LLM MoE runs with the busiest expert rank "
                        "carrying X times a balanced rank's tokens (1-64; default 1: "
                        "balanced routing, which the tables do not confirm)")
    p.add_argument("--fill-kv", action="store_true",
                   help="sensitivity: the TensorRT-LLM runs also at the largest concurrency "
                        "whose KV cache fits, as trtllm-bench admits requests (default: the "
                        "best power of two up to the request count)")
    p.add_argument("--plot", metavar="FILE.png",
                   help="also draw predicted / published of every row, one line per "
                        "dataset (.png, .pdf, .svg, ...; needs matplotlib: pip install "
                        "pyengine[plot])")
    p.set_defaults(func=cmd_validate)


def cmd_validate(args) -> int:
    plot = getattr(args, "plot", None)
    if plot:
        from .cli_common import check_output
        from .cli_sweep import PLOT_SUFFIXES
        from .optional import require

        check_output("--plot", plot, PLOT_SUFFIXES)
        require("matplotlib", "--plot")
    try:
        workload = ServingWorkload(getattr(args, "moe_load_imbalance", 1.0),
                                   getattr(args, "fill_kv", False))
    except ValueError as err:
        print(f"pyengine validate: {err}", file=sys.stderr)
        return 2
    datasets = run(args.dataset, workload)
    if plot:
        from .plot import plot_validation

        plot_validation(datasets, plot)
        print(f"plot saved to {plot}", file=sys.stderr)
    markdown = getattr(args, "markdown", None)
    if markdown is not None:
        block = render_markdown(datasets)
        if markdown == "-":
            print(block)
        else:
            try:
                with open(markdown, encoding="utf-8") as f:
                    doc = splice_markdown(f.read(), block)
                with open(markdown, "w", encoding="utf-8") as f:
                    f.write(doc)
            except (OSError, ValueError) as err:
                print(f"pyengine validate: --markdown {markdown}: {err}", file=sys.stderr)
                return 2
            print(f"wrote the generated tables into {markdown}")
    elif args.json:
        print(json.dumps(to_json(datasets), indent=2))
    else:
        print(render(datasets, verbose=not args.quiet))
    return 0 if all(ds.ok for ds in datasets) else 1


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    sys.exit(cmd_validate(parser.parse_args(["validate", *sys.argv[1:]])))
