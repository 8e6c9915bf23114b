"""Copy TensorRT-LLM's measured GEMM and MoE module latencies from NVIDIA aiconfigurator's
performance database into pyengine/data/operators.json (one dataset per GPU and kind).

    python tools/extract_aiconfigurator.py MIRROR      # MIRROR: a clone of ai-dynamo/aiconfigurator

aiconfigurator (github.com/ai-dynamo/aiconfigurator, Apache-2.0) ships, per GPU and
TensorRT-LLM version, operator benchmarks its collector ran on that GPU:
collector/trtllm/collect_moe.py times TensorRT-LLM's fused MoE module (create_moe) on
[num_tokens, hidden] BF16 inputs and router logits crafted for a token distribution
(routing, permutation, the grouped expert GEMMs with their activation, and the final
un-permute and weighted sum; no router GEMM, no communication); collect_gemm.py times one
TensorRT-LLM Linear layer. This script copies the Linear rows whose weights are large
(N and K each 4096-16384) at large and at decode-sized token counts (the Hopper
token-dimension half-point is fitted on them, tools/fit_operators.py
fit_gemm_token_half; the large-shape rows give the serving GEMM levels docs/accuracy.md
reports) and the MoE rows
pyengine fits the serving engines' grouped-GEMM share on (tools/fit_operators.py
fit_grouped_gemm_serve): balanced routing, expert parallelism only (moe_tp_size 1, as
TensorRT-LLM runs MoE under attention data parallelism), the serving dtypes (Hopper FP8
per-tensor and block-scaled, Blackwell NVFP4) on the default CUTLASS path, and at least
128 token-slots per expert (the compute-bound rows: below that the experts stream their
weights and the share does not move them). Values are copied as stored (latency in ms);
nothing is interpolated. Needs pandas and pyarrow (not dependencies of pyengine: the
package reads the JSON this writes).
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPERATORS = ROOT / "pyengine" / "data" / "operators.json"
DATA = "aic-core/src/aiconfigurator_core/systems/data"
# dataset key suffix: (aiconfigurator system, TensorRT-LLM version: the oldest stored with
# real data, nearest the v1.0 runs the perf overview measured), kernel source per dtype
SYSTEMS = {
    "h100": ("h100_sxm", "1.2.0rc5", {"fp8": "moe_torch_flow_cutlass",
                                       "fp8_block": "moe_torch_flow_cutlass"}),
    "h200": ("h200_sxm", "1.2.0rc5", {"fp8": "moe_torch_flow", "fp8_block": "moe_torch_flow"}),
    "b200": ("b200_sxm", "1.2.0rc5", {"nvfp4": "moe_torch_flow_cutlass"}),
    "gb200": ("gb200", "1.3.0rc10", {"nvfp4": "moe_torch_flow_cutlass"}),
    "gb300": ("gb300", "1.3.0rc10", {"nvfp4": "moe_torch_flow_cutlass"}),
}
MIN_SLOTS = 128
# GEMM tables: (aiconfigurator system, TensorRT-LLM version) per preset key, the rows whose
# N and K are each 4096, 8192 or 16384 and whose M (tokens) is one of those (where a table's
# sustained large-GEMM level is read, tools/fit_operators.py LARGE_DIM) or a decode-sized
# power of two 16-2048 (GEMM_TOKENS), TensorRT-LLM's Linear path ("torch_flow")
GEMM_SYSTEMS = {
    "h100": ("h100_sxm", "1.2.0rc5"), "h200": ("h200_sxm", "1.2.0rc5"),
    "b200": ("b200_sxm", "1.2.0rc5"), "gb200": ("gb200", "1.3.0rc10"),
    "gb300": ("gb300", "1.3.0rc10"), "a100": ("a100_sxm", "1.0.0"),
}
GEMM_DIMS = (4096, 8192, 16384)
GEMM_TOKENS = (16, 32, 64, 128, 256, 512, 1024, 2048)
GEMM_DTYPES = ("bfloat16", "fp8", "fp8_static", "nvfp4")
GEMM_COLUMNS = ("gemm_dtype", "m", "n", "k", "latency")
COLUMNS = ("moe_dtype", "hidden_size", "inter_size", "topk", "num_experts", "moe_ep_size",
           "num_tokens", "latency")


def git_show(mirror: Path, commit: str, path: str) -> bytes:
    return subprocess.run(["git", "-C", str(mirror), "show", f"{commit}:{path}"],
                          check=True, capture_output=True).stdout


def read_table(mirror: Path, commit: str, system: str, kind: str, version: str):
    """(path, the table) of one aiconfigurator performance file at `commit`."""
    import pandas as pd

    path = f"{DATA}/{system}/{kind}/trtllm/{version}/{kind}_perf.parquet"
    return path, pd.read_parquet(io.BytesIO(git_show(mirror, commit, path)))


def record(path: str, commit: str, collector: str, what: str, conditions: dict, columns,
           rows, caveats: str) -> dict:
    """An operators.json dataset of copied rows (latency in ms as stored)."""
    return {
        "source": (f"NVIDIA aiconfigurator (github.com/ai-dynamo/aiconfigurator, Apache-2.0) "
                   f"performance database {path} at commit {commit}; collected by its "
                   f"collector/trtllm/{collector}"),
        "accessed": "2026-12-06",
        "what": what,
        "conditions": {**conditions,
                       "timing": "CUDA-graph replay (collector/helper.py benchmark_with_power, "
                                 "eager where capture fails)"},
        "values": {"columns": [c if c != "latency" else "latency_ms" for c in columns],
                   "rows": [[r[c].item() if hasattr(r[c], "item") else r[c] for c in columns]
                            for _, r in rows.iterrows()]},
        "caveats": caveats + " TensorRT-LLM versions newer than the v1.0 perf-overview runs.",
        "primary": True,
    }


def dataset(mirror: Path, commit: str, system: str, version: str, sources: dict) -> dict:
    path, df = read_table(mirror, commit, system, "moe", version)
    keep = (df.distribution == "balanced") & (df.moe_tp_size == 1)
    keep &= df.topk * df.num_tokens / df.num_experts >= MIN_SLOTS
    keep &= df.moe_dtype.map(sources).eq(df.kernel_source)
    rows = df[keep].sort_values(list(COLUMNS[:-1]))
    device = str(rows.device.iloc[0])
    return record(
        path, commit, "collect_moe.py",
        "TensorRT-LLM fused MoE module latency (routing from given logits, permutation, "
        "grouped expert GEMMs with the activation, un-permute and weighted sum; no router "
        "GEMM, no communication) by MoE shape, expert-parallel size and tokens entering the "
        f"module, on one {device}.",
        {"framework": f"TensorRT-LLM {version} (PyTorch flow)", "device": device,
         "distribution": "balanced (every expert the same share of slots)", "moe_tp_size": 1,
         "kernel_source": sources,
         "selection": f"rows with top_k x num_tokens / num_experts >= {MIN_SLOTS} token-slots "
                      "per expert (tools/extract_aiconfigurator.py)"},
        COLUMNS, rows,
        "Operator benchmark of the module alone, not an end-to-end run; num_tokens is the "
        "tokens every rank of the EP group routes (after attention-DP all-gather), so a "
        "rank's experts receive top_k x num_tokens / ep slots.")


def gemm_dataset(mirror: Path, commit: str, system: str, version: str) -> dict:
    path, df = read_table(mirror, commit, system, "gemm", version)
    keep = df.kernel_source.eq("torch_flow") & df.gemm_dtype.isin(GEMM_DTYPES)
    keep &= df.m.isin(GEMM_TOKENS + GEMM_DIMS)
    for c in ("n", "k"):
        keep &= df[c].isin(GEMM_DIMS)
    rows = df[keep].sort_values(list(GEMM_COLUMNS[:-1]))
    device = str(rows.device.iloc[0])
    return record(
        path, commit, "collect_gemm.py",
        "TensorRT-LLM Linear layer (tensorrt_llm._torch.modules.linear.Linear) latency on a "
        f"[m, k] BF16 input with [k, n] weights, by dtype, on one {device}: BF16; FP8 "
        "per-tensor weights without an input scale, so TensorRT-LLM quantizes the input "
        "dynamically (an amax pass, then the cast; the collector's own note); FP8 with a "
        "static input scale where stored (fp8_static); NVFP4 with a static global input "
        "scale (its block quantization of the input included).",
        {"framework": f"TensorRT-LLM {version} (PyTorch flow)", "device": device,
         "kernel_source": "torch_flow",
         "selection": "rows with n, k each in {4096, 8192, 16384} and m in those or a "
                      "power of two 16-2048 (tools/extract_aiconfigurator.py); weights in "
                      "several copies when they fit in L2 (the collector)"},
        GEMM_COLUMNS, rows,
        "Operator benchmark of one Linear layer; H200 and A100 tables stop at m = 8192.")


def dump(doc: dict) -> str:
    """The file's layout (indent 1), with each copied row on one line: thousands of rows
    stay thousands of lines."""
    rows, marks = {}, {}
    for key, d in doc["datasets"].items():
        if key.startswith(("trtllm_moe_latency_aiconfigurator_",
                           "trtllm_gemm_latency_aiconfigurator_")):
            marks[key] = f"@rows:{key}@"
            rows[key] = d["values"]["rows"]
            d["values"]["rows"] = marks[key]
    text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    for key, mark in marks.items():
        lines = ",\n    ".join(json.dumps(r) for r in rows[key])
        text = text.replace(json.dumps(mark), "[\n    " + lines + "\n   ]")
        doc["datasets"][key]["values"]["rows"] = rows[key]
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mirror", type=Path, help="a git clone of ai-dynamo/aiconfigurator")
    ap.add_argument("--commit", default="HEAD")
    args = ap.parse_args(argv)
    commit = subprocess.run(["git", "-C", str(args.mirror), "rev-parse", args.commit],
                            check=True, capture_output=True, text=True).stdout.strip()
    doc = json.loads(OPERATORS.read_text())
    for name, (system, version, sources) in SYSTEMS.items():
        key = f"trtllm_moe_latency_aiconfigurator_{name}"
        doc["datasets"][key] = dataset(args.mirror, commit, system, version, sources)
        print(f"{key}: {len(doc['datasets'][key]['values']['rows'])} rows", file=sys.stderr)
    for name, (system, version) in GEMM_SYSTEMS.items():
        key = f"trtllm_gemm_latency_aiconfigurator_{name}"
        doc["datasets"][key] = gemm_dataset(args.mirror, commit, system, version)
        print(f"{key}: {len(doc['datasets'][key]['values']['rows'])} rows", file=sys.stderr)
    OPERATORS.write_text(dump(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
