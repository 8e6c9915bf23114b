"""`pyengine validate`: the model against every published measurement it ships with.

Data: ``pyengine/data/published.json``, a copy of the project's calibration file; each
dataset there carries its source (paper, table, repository and commit). For each row the
published configuration is rebuilt as a Plan (assumptions where a paper is silent are
stated below), evaluated with the reference, and compared. Each dataset has a documented
error bound (docs/accuracy.md); ``validate`` exits non-zero when one is exceeded.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from . import presets
from . import reference as R
from . import schema as S
from .specs import Hardware, Limits, Model, Plan


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
    ds = Dataset("zero_2019", d["source"], "model-state GB per GPU", 0.01, 0.02)
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

def korthikanti_2022(data: dict) -> Dataset:
    """Korthikanti Table 2 per-layer activation formulas for the Table 3 models: exact."""
    d = data["korthikanti_2022"]
    ds = Dataset("korthikanti_2022", d["source"], "activation bytes per layer", 1e-12, 1e-12)
    names = {"22B": "gpt-22b", "175B (GPT-3)": "gpt3-175b", "530B (MT-NLG)": "megatron-gpt-530b",
             "1T": "megatron-gpt-1t"}
    for cfg in d["table3_model_configs"]:
        model = presets.model(names[cfg["model"]])
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


# --------------------------------------------------------------------------- Megatron-LM

MEGATRON_NAMES = {24: "megatron-gpt-1.7b", 30: "megatron-gpt-3.6b", 36: "megatron-gpt-7.5b",
                  40: "megatron-gpt-18b", 48: "megatron-gpt-39b", 60: "megatron-gpt-76b",
                  80: "megatron-gpt-145b", 96: "megatron-gpt-310b", 105: "megatron-gpt-530b",
                  128: "megatron-gpt-1t"}


def megatron_plan(row: dict) -> Plan:
    """Table 1 rows: interleaved schedule, full recomputation, micro-batch 1 (paper Sec. 5.1
    and Table 1 settings); no sequence parallelism or flash attention (2021); fp32 grads
    all-reduced without ZeRO. Interleaving depth: the largest of 4, 3, 2 that splits the
    layers evenly (the paper does not list it per row)."""
    tp, pp, dp = row["tensor_parallel"], row["pipeline_parallel"], row["data_parallel_derived"]
    L = row["num_layers"]
    vpp = 1
    if pp > 1:
        for v in (4, 3, 2):
            if L % (pp * v) == 0 and (row["global_batch_size_sequences"] // dp) % pp == 0:
                vpp = v
                break
    return Plan(global_batch=row["global_batch_size_sequences"], micro_batch=1,
                seq_len=row["seq_len"], tp=tp, pp=pp, dp=dp, vpp=vpp, zero=0, recompute="full",
                flash_attention=False, sequence_parallel=False)


def megatron_lm_2021(data: dict, hardware: Hardware | None = None, rows=None) -> Dataset:
    d = data["megatron_lm_2021_table1"]
    ds = Dataset("megatron_lm_2021", d["source"], "achieved TFLOP/s per GPU (eq. 3 counting)",
                 0.10, 0.20)
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


def nemo_plan(row: dict) -> Plan:
    """NeMo 24.07 FP8 pre-training on DGX-H100: the row's TP/PP/CP/VP, micro and global
    batch; sequence parallelism with TP, flash attention, distributed optimizer (ZeRO-1)
    with Megatron-Core's default gradient buffer in the parameter dtype (bf16), TP
    communication overlap where TP > 1, no activation recomputation (the performance
    recipes' defaults)."""
    tp, pp, cp = row["tp"], row["pp"], row["cp"]
    dp = row["num_gpus"] // (tp * pp * cp)
    return Plan(dtype="fp8", global_batch=row["gbs"], micro_batch=row["mbs"],
                seq_len=row["seq_len"], tp=tp, pp=pp, cp=cp, dp=dp, vpp=row["vp"], zero=1,
                recompute="none", sequence_parallel=tp > 1, flash_attention=True,
                grad_dtype="bf16", tp_overlap=tp > 1)


def nemo_24_07(data: dict, hardware: Hardware | None = None, rows=None) -> Dataset:
    d = data["nemo_24_07_pretraining_h100_fp8"]
    # Nemotron-340B on 128 GPUs (TP 8, PP 8, VP 12, micro-batch 1) ran in 80 GB; the model
    # counts its activations and buffers above that, so it is no number to average
    ds = Dataset("nemo_24_07", d["source"], "tokens/s per GPU", 0.15, 0.35,
                 known_infeasible=("Nemotron-340B on 128 GPUs",))
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
    and precision pyengine has, the newest version of each plan first and alone."""
    seen = set()
    rows = []
    for key in sorted((k for k in data if k.startswith("megatron_bridge_perf_summary")),
                      reverse=True):
        for row in data[key]["values"].get("rows", []):
            model, system = row.get("model"), row.get("system")
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


def bridge_plan(row: dict, model: Model, **savers) -> Plan:
    """A Megatron-Bridge pre-training row as a Plan: its TP/PP/CP/VP/EP, batch and
    sequence; DP = GPUs / (TP PP CP); expert TP 1, sequence parallelism and TP overlap
    with TP, distributed optimizer (ZeRO-3 where the row says FSDP), bf16 gradients;
    the embedding and loss counted in the split when the virtual stages outnumber the
    layers; forced-balanced dropless routing (capacity factor 1)."""
    tp, pp, cp = int(row["tp"]), int(row["pp"]), int(row["cp"])
    vpp = int(row["vp"]) if isinstance(row.get("vp"), (int, float)) and row["vp"] else 1
    counted = pp * vpp > model.n_layers
    fsdp = isinstance(row.get("fsdp"), (int, float)) and row["fsdp"] > 0  # Megatron FSDP
    return Plan(dtype=BRIDGE_DTYPES[row["precision"]],
                global_batch=int(row["global_batch_size_sequences"]),
                micro_batch=int(row["micro_batch_size"]), seq_len=int(row["seq_len_tokens"]),
                tp=tp, pp=pp, cp=cp, dp=int(row["num_gpus"]) // (tp * pp * cp), vpp=vpp,
                ep=int(row["ep"]) if model.is_moe else 1, etp=1 if model.is_moe else 0,
                zero=3 if fsdp else 1, sequence_parallel=tp > 1, grad_dtype="bf16",
                tp_overlap=tp > 1, pp_embedding=counted, pp_loss=counted, **savers)


def megatron_bridge(data: dict | None = None) -> Dataset:
    data = validation_data() if data is None else data
    src = data["megatron_bridge_perf_summary_nemo_26_08"]["source"]
    ds = Dataset("megatron_bridge", src + " and earlier containers (validation, not fitted)",
                 "tokens/s per GPU", 0.10, math.inf, fitted=False)
    for row in bridge_rows(data):
        model = presets.model(BRIDGE_MODELS[row["model"]])
        hw = presets.hardware(BRIDGE_SYSTEMS[row["system"]])
        for savers in BRIDGE_SAVERS:
            r = R.evaluate(model, hw, bridge_plan(row, model, **savers))
            if r.feasible or "MEMORY" not in r.violations:
                break
        note = infeasible_note(r) or (savers.get("recompute", "") + " recompute" if savers else "")
        label = (f"{row['model']} {row['system']} {row['precision']} {row['num_gpus']} GPUs "
                 f"({row['container']})")
        ds.rows.append(Row(label, float(row["tokens_per_s_per_gpu"]),
                           r.outputs["tokens_per_s_per_gpu"], "tok/s/GPU", note, r.feasible))
    return ds


# --------------------------------------------------------------------------- TensorRT-LLM

BATCHES = tuple(2**i for i in range(13))  # 1 .. 4096 concurrent sequences


def trtllm_best(model: Model, hw: Hardware, isl: int, osl: int, requests: int) -> tuple[float, int]:
    """Offline max-throughput: the feasible concurrency with the most output tokens/s.

    trtllm-bench fills the KV cache (95% of free memory) with as many sequences as fit;
    here every batch size up to the request count is evaluated and the best feasible
    one is kept (FP8 weights and KV cache, TP 1).
    """
    best, best_b = 0.0, 0
    limits = Limits(mem_fraction=1.0)
    for b in BATCHES:
        if b > requests:
            break
        plan = Plan(mode="decode", dtype="fp8", global_batch=b, micro_batch=b, seq_len=isl,
                    gen_tokens=osl)
        r = R.evaluate(model, hw, plan, limits)
        if r.feasible and r.outputs["tokens_per_s"] > best:
            best, best_b = r.outputs["tokens_per_s"], b
    return best, best_b


def trtllm_llama31_8b(data: dict, hardware: dict[str, Hardware] | None = None,
                      rows=None) -> Dataset:
    d = data["tensorrt_llm_llama31_8b_inference"]
    ds = Dataset("trtllm_llama31_8b", "; ".join(f"{k}: {v}" for k, v in d["sources"].items()),
                 "output tokens/s (TP 1)", 0.25, 0.60)
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
        pred, b = trtllm_best(model, hws[row["gpu"]], row["isl"], row["osl"], requests)
        ds.rows.append(Row(f"{row['gpu'].split()[0]} {key} ({row['doc_version'].split()[0]}"
                           f"{' v1.0' if 'v1.0' in row['doc_version'] else ''})",
                           row["total_output_tokens_per_s"], pred, "tok/s",
                           f"batch {b}" if b else "infeasible: no batch size fits", b > 0))
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


DATASETS = {
    "zero_2019": zero_2019,
    "korthikanti_2022": korthikanti_2022,
    "megatron_lm_2021": megatron_lm_2021,
    "nemo_24_07": nemo_24_07,
    "trtllm_llama31_8b": trtllm_llama31_8b,
}
# validation only: results found elsewhere, never fitted (their own data file)
VALIDATION = {"megatron_bridge": megatron_bridge}


def run(names=None) -> list[Dataset]:
    data = published()
    names = names or [*DATASETS, *VALIDATION]
    return [DATASETS[n](data) if n in DATASETS else VALIDATION[n]() for n in names]


def render(datasets: list[Dataset], verbose: bool = True) -> str:
    lines = []
    for ds in datasets:
        lines.append(f"{ds.name}: {ds.metric}")
        lines.append(f"  source: {ds.source}")
        if verbose:
            for r in ds.rows:
                lines.append(render_row(r))
        status = ("validation, not fitted; goal " f"{100 * ds.bound_mean:g}% mean"
                  if not ds.fitted else "ok" if ds.ok else "FAILED")
        bad = len(ds.infeasible)
        bounds = (f" (bound {100 * ds.bound_mean:g}%)", f" (bound {100 * ds.bound_row:g}%)")
        if not ds.fitted:
            bounds = ("", "")
        lines.append(f"  mean |error| {100 * ds.mape:.2f}%{bounds[0]}, "
                     f"worst {100 * ds.worst:.2f}%{bounds[1]}"
                     + (f" over {len(ds.scored)} rows; {bad} published "
                        f"run{'s' if bad > 1 else ''} predicted infeasible, not in the mean"
                        if bad else "")
                     + (f"; {ds.trend}" if ds.trend else "") + f"  [{status}]")
        lines.append("")
    return "\n".join(lines)


def render_row(r: Row) -> str:
    head = f"  {r.label:<58} published {r.published:>12.6g}  predicted "
    if not r.feasible:  # no number to compare: the model says the published run cannot run
        return head + f"{'INFEASIBLE':>12}  {'':>7}   {r.note} (not in the mean)"
    return head + f"{r.predicted:>12.6g}  {100 * r.error:+7.1f}%  {r.note}"


def to_json(datasets: list[Dataset]) -> dict:
    return {ds.name: {
        "source": ds.source, "metric": ds.metric, "mape": ds.mape, "worst": ds.worst,
        "bound_mean": ds.bound_mean, "bound_row": ds.bound_row if math.isfinite(ds.bound_row)
        else None, "trend": ds.trend, "ok": ds.ok, "fitted": ds.fitted,
        "infeasible": len(ds.infeasible),
        "rows": [{"label": r.label, "published": r.published,
                  "predicted": r.predicted if r.feasible else None,
                  "error": r.error if r.feasible else None, "feasible": r.feasible,
                  "unit": r.unit, "note": r.note} for r in ds.rows],
    } for ds in datasets}


def add_parser(sub) -> None:
    from .cli_common import subparser

    p = subparser(sub, "validate", help="compare the model with published measurements",
                  description="Run the cost model on every published row shipped with "
                              "pyengine; exit 1 if a dataset exceeds its error bound or "
                              "finds a published run infeasible.")
    p.add_argument("--dataset", action="append", choices=sorted([*DATASETS, *VALIDATION]),
                   help="only this dataset (repeatable; default: all)")
    p.add_argument("--json", action="store_true", help="every row and summary as JSON")
    p.add_argument("--quiet", action="store_true", help="summaries only")
    p.set_defaults(func=cmd_validate)


def cmd_validate(args) -> int:
    datasets = run(args.dataset)
    if args.json:
        print(json.dumps(to_json(datasets), indent=2))
    else:
        print(render(datasets, verbose=not args.quiet))
    return 0 if all(ds.ok for ds in datasets) else 1


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    sys.exit(cmd_validate(parser.parse_args(["validate", *sys.argv[1:]])))
