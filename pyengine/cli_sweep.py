"""`pyengine sweep`: a design space -> feasible count, Pareto front, best plans, a plot.

``add_parser(subparsers)`` registers the subcommand and ``run(args)`` executes it
(:mod:`pyengine.cli` calls both). Every plan column has an axis flag taking a comma
list (``--tp 1,2,4,8 --recompute none,full --sequence-parallel on,off``); axes left out
get defaults sized to the GPU budget (see :func:`default_axes`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from . import schema as S
from .errors import SpecError
from .specs import Plan

EXAMPLES = """examples:
  pyengine sweep --model llama3-70b --hardware h100-sxm --max-gpus 256 --seq-len 8192
  pyengine sweep -m moe-10b -H h100-sxm --max-gpus 40 --global-batch 128 \\
      --seq-len 4096,10240 --mem-headroom 0.9 --out front.parquet --plot front.png
  pyengine sweep -m llama3-8b -H h100-sxm --gpus 8 --mode decode --gen-tokens 512 \\
      --max-tpot-ms 30 --objective tokens_per_s_per_gpu:max --objective tpot_s:min
"""

DEFAULT_BUDGET_NODES = 8
DEFAULT_GLOBAL_BATCH = 128
DEFAULT_SEQ_LEN = 4096
DEFAULT_GEN_TOKENS = 256
GIB = float(1 << 30)


# --------------------------------------------------------------------------- parser


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "sweep", help="a design space: feasible count, Pareto front, best plans, a plot",
        description="Evaluate every plan of a design space (the Cartesian product of the "
                    "axes) and keep the Pareto front, the best plans and the counts of "
                    "infeasible plans by reason.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", "-m", required=True,
                   help="model preset (see `pyengine presets`) or a .toml/.json file")
    p.add_argument("--hardware", "-H", required=True, help="hardware preset or a .toml/.json file")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--gpus", type=int, metavar="N", help="use exactly N GPUs")
    budget.add_argument("--max-gpus", type=int, metavar="N",
                        help=f"use at most N GPUs (default: {DEFAULT_BUDGET_NODES} nodes)")
    axes = p.add_argument_group(
        "axes (comma lists; omitted axes get defaults sized to the GPU budget)")
    for col in S.PLAN:
        axes.add_argument(_flag(col.name), dest=col.name, metavar=_metavar(col),
                          help=col.doc + (f" ({col.unit})" if col.unit else ""))
    axes.add_argument("--all-zero", action="store_true", help="sweep ZeRO stages 0,1,2,3")
    c = p.add_argument_group("objectives and constraints")
    c.add_argument("--objective", action="append", metavar="COLUMN:min|max",
                   help="an output column to optimise (repeat; default "
                        "tokens_per_s_per_gpu:max, n_gpus:min, mem_total_bytes:min)")
    c.add_argument("--sort-by", metavar="COLUMN[:min|max]",
                   help="rank the best plans by this (default: the first objective)")
    c.add_argument("--mem-headroom", type=float, metavar="F",
                   help="usable fraction of HBM, e.g. 0.9 (default 1)")
    c.add_argument("--min-tokens-per-s", type=float, metavar="X", help="all GPUs together")
    c.add_argument("--min-tokens-per-s-per-gpu", type=float, metavar="X")
    c.add_argument("--max-tpot-ms", type=float, metavar="MS", help="time per output token")
    c.add_argument("--max-ttft-ms", type=float, metavar="MS", help="time to first token")
    c.add_argument("--max-dropped", type=float, default=0.0, metavar="F",
                   help="largest allowed fraction of MoE token-slots dropped (default 0)")
    c.add_argument("--duplicates", choices=("all", "first"), default="all",
                   help="front plans with identical objectives: keep all, or the first")
    o = p.add_argument_group("execution and output")
    o.add_argument("--top", type=int, default=20, metavar="K", help="best plans to keep")
    o.add_argument("--front-rows", type=int, default=40, metavar="N",
                   help="front rows to print (all are saved with --out)")
    o.add_argument("--chunk-size", type=int, metavar="N", help="plans per evaluated chunk")
    o.add_argument("--backend", default="auto", help="auto, cupy, native, numba, reference")
    o.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler to spread work over")
    o.add_argument("--out", metavar="FILE", help="save the front: .parquet, .csv or .json")
    o.add_argument("--plot", metavar="FILE.png", help="plot the front")
    o.add_argument("--json", action="store_true", help="print a machine-readable object")
    p.set_defaults(func=run)
    return p


def _metavar(col) -> str:
    if col.kind == "choice":
        return ",".join(col.choices)
    if col.kind == "bool":
        return "on,off"
    return "N,..." if col.kind == "int" else "X,..."


def parse_list(col, text: str) -> list:
    """A comma list of human values for a plan column (validated by Space later)."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise SpecError("sweep", col.name, text, "a comma-separated list of values")
    out = []
    for t in items:
        try:
            if col.kind == "choice":
                if t not in col.choices:
                    raise ValueError
                out.append(t)
            elif col.kind == "bool":
                low = t.lower()
                if low not in ("on", "off", "true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                out.append(low in ("on", "true", "1", "yes"))
            elif col.kind == "int":
                v = float(t)
                if v != int(v):
                    raise ValueError
                out.append(int(v))
            else:
                out.append(float(t))
        except ValueError:
            allowed = {"choice": "one of " + ", ".join(col.choices),
                       "bool": "on or off", "int": "integers"}.get(col.kind, "numbers")
            raise SpecError("sweep", col.name, t, allowed) from None
    return sorted(set(out), key=out.index)


# --------------------------------------------------------------------------- specs and axes


def load_spec(kind: str, name: str):
    """A model or hardware from a preset name or a .toml/.json file (pyengine.presets)."""
    from . import presets

    return getattr(presets, kind)(name)


def _pow2(limit: int) -> list[int]:
    out, v = [], 1
    while v <= limit:
        out.append(v)
        v *= 2
    return out


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def default_axes(model, hardware, budget: int, exact: bool, axes: dict) -> dict:
    """Default values for the axes the user left out, sized to the GPU budget.

    tp: powers of two up to min(budget, GPUs per node); cp: powers of two up to the
    budget; pp: every count up to min(budget, layers) (layers need not divide pp);
    ep: powers of two dividing the experts (MoE) or 1; dp: every count up to the budget
    that divides a global batch (dp * micro_batch must divide it). With ``exact`` every
    degree must divide the budget. micro_batch 1,2,4; recompute none/selective/full and
    ZeRO 1 in training; global batch 128, sequence 4096, 256 generated tokens (decode).
    """
    def fits(v):
        return v <= budget and (not exact or budget % v == 0)

    mode = axes.get("mode", ["train"])
    training = "train" in mode
    d: dict = {}
    d["mode"] = mode
    d["global_batch"] = axes.get("global_batch", [DEFAULT_GLOBAL_BATCH])
    d["seq_len"] = axes.get("seq_len", [DEFAULT_SEQ_LEN])
    if "decode" in mode:
        d["gen_tokens"] = axes.get("gen_tokens", [DEFAULT_GEN_TOKENS])
    d["tp"] = [v for v in _pow2(min(budget, hardware.gpus_per_node)) if fits(v)]
    d["cp"] = [v for v in _pow2(budget) if fits(v)]
    d["pp"] = [v for v in range(1, min(budget, model.n_layers) + 1) if fits(v)]
    if model.n_experts:
        d["ep"] = [v for v in _pow2(min(budget, model.n_experts))
                   if model.n_experts % v == 0 and fits(v)]
    d["dp"] = [v for v in range(1, budget + 1)
               if fits(v) and any(g % v == 0 for g in d["global_batch"])] or [1]
    d["micro_batch"] = [1, 2, 4]
    if training:
        d["recompute"] = ["none", "selective", "full"]
        d["zero"] = [1]
    d.update(axes)
    return d


def build_space(args, model, hardware):
    from .space import Space

    budget = args.gpus or args.max_gpus or DEFAULT_BUDGET_NODES * hardware.gpus_per_node
    if budget < 1:
        raise SpecError("sweep", "gpus", budget, "an integer >= 1")
    given = {col.name: parse_list(col, getattr(args, col.name))
             for col in S.PLAN if getattr(args, col.name, None) is not None}
    if getattr(args, "all_zero", False) and "zero" not in given:
        given["zero"] = [0, 1, 2, 3]
    axes = default_axes(model, hardware, budget, args.gpus is not None, given)
    if "decode" in axes["mode"] and 0 in axes.get("gen_tokens", [0]):
        raise SpecError("sweep", "gen_tokens", 0, ">= 1 in decode mode")
    return Space(base=Plan(), **axes), budget


def constraints_of(args, budget: int) -> dict:
    c: dict = {"max_dropped_fraction": args.max_dropped}
    if args.gpus is not None:
        c["gpus_exact"] = args.gpus
    else:
        c["gpus_max"] = budget
    if args.mem_headroom is not None:
        c["mem_fraction"] = args.mem_headroom
    if args.min_tokens_per_s is not None:
        c["min_tokens_per_s"] = args.min_tokens_per_s
    if args.min_tokens_per_s_per_gpu is not None:
        c["min_tokens_per_s_per_gpu"] = args.min_tokens_per_s_per_gpu
    if args.max_tpot_ms is not None:
        c["max_tpot_s"] = args.max_tpot_ms * 1e-3
    if args.max_ttft_ms is not None:
        c["max_ttft_s"] = args.max_ttft_ms * 1e-3
    return c


# --------------------------------------------------------------------------- progress


class ProgressBar:
    """A one-line progress bar with plans/s on a stream (stderr when it is a terminal)."""

    def __init__(self, stream=None, width: int = 28):
        self.stream = stream or sys.stderr
        self.width = width
        self.t0 = time.perf_counter()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if done < total and now - self.last < 0.1:
            return
        self.last = now
        dt = max(now - self.t0, 1e-9)
        frac = done / total if total else 1.0
        fill = int(round(frac * self.width))
        rate = done / dt
        eta = (total - done) / rate if rate > 0 else float("inf")
        line = (f"\r  [{'#' * fill}{'.' * (self.width - fill)}] {100 * frac:5.1f}%  "
                f"{_si(done)}/{_si(total)} plans  {_si(rate)} plans/s"
                + (f"  ETA {eta:.0f} s" if done < total and math.isfinite(eta) else ""))
        self.stream.write(line)
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def _si(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.1f}{unit}"
    return f"{x:.0f}"


# --------------------------------------------------------------------------- output

DISPLAY = (  # output column, header, scale, format
    ("n_gpus", "GPUs", 1.0, "{:.0f}"),
    ("tokens_per_s_per_gpu", "tok/s/GPU", 1.0, "{:,.0f}"),
    ("tokens_per_s", "tok/s", 1.0, "{:,.0f}"),
    ("mem_total_bytes", "mem GiB", GIB, "{:.1f}"),
    ("time_step_s", "step s", 1.0, "{:.3g}"),
    ("mfu", "MFU %", 0.01, "{:.1f}"),
)
PLAN_ORDER = ("mode", "tp", "cp", "pp", "dp", "ep", "etp", "vpp", "global_batch", "micro_batch",
              "seq_len", "gen_tokens", "zero", "recompute", "sequence_parallel",
              "capacity_factor", "flash_attention", "dtype", "grad_dtype")
SHORT = {"global_batch": "gbs", "micro_batch": "mbs", "seq_len": "seq", "gen_tokens": "gen",
         "sequence_parallel": "sp", "capacity_factor": "cf", "flash_attention": "flash"}
INFERENCE_DISPLAY = (
    ("ttft_s", "TTFT ms", 1e-3, "{:.3g}"),
    ("tpot_s", "TPOT ms", 1e-3, "{:.3g}"),
)


def format_table(df, space, limit: int | None = None) -> str:
    """Plans as an aligned text table: the varying plan columns, then outputs with units."""
    if limit is not None:
        df = df.head(limit)
    if not len(df):
        return "  (none)"
    varying = sorted(space.varying, key=lambda c: (PLAN_ORDER.index(c)
                                                   if c in PLAN_ORDER else len(PLAN_ORDER)))
    cols = ["index"] + varying
    headers = ["#"] + [SHORT.get(c, c.replace("_", " ")) for c in varying]
    rows = [[str(v) for v in df[c]] for c in cols]
    display = DISPLAY
    if (df["mode"] != "train").any():
        display = DISPLAY + INFERENCE_DISPLAY
    for col, head, scale, fmt in display:
        headers.append(head)
        rows.append([fmt.format(v / scale) if v == v else "nan" for v in df[col]])
    widths = [max(len(h), *(len(r) for r in col)) for h, col in zip(headers, rows)]
    lines = ["  " + "  ".join(h.rjust(w) for h, w in zip(headers, widths))]
    for i in range(len(df)):
        lines.append("  " + "  ".join(col[i].rjust(w) for col, w in zip(rows, widths)))
    return "\n".join(lines)


def format_counts(result) -> str:
    c = result.counts
    docs = dict(S.VIOLATIONS)
    docs.update({b.reason: b.describe() for b in result.bounds})
    lines = [f"  evaluated {c['evaluated']:,}   feasible {c['feasible']:,}   "
             f"infeasible {c['infeasible']:,}"]
    reasons = sorted(((n, v) for n, v in c["by_reason"].items() if v), key=lambda t: -t[1])
    if reasons:
        lines.append("  infeasible by reason (a plan may have several):")
        w = max(len(n) for n, _ in reasons)
        for name, v in reasons:
            lines.append(f"    {name.ljust(w)}  {v:>12,}  {docs.get(name, '')}")
    return "\n".join(lines)


def report(result, top: int, front_rows: int) -> str:
    sort_col, sort_sense = result.sort_by
    objectives = ", ".join(f"{s} {c}" for c, s in result.objectives)
    out = [f"pyengine sweep: {result.model.name} on {result.hardware.name}, "
           f"{len(result.space):,} plans in {result.elapsed_s:.2f} s "
           f"({_si(result.plans_per_s)} plans/s, backend {result.backend})",
           "", format_counts(result), "",
           f"best {min(top, len(result.top))} plans by {sort_sense} {sort_col}:",
           format_table(result.top, result.space, top), "",
           f"Pareto front: {len(result.front)} plans ({objectives})"
           + (f", first {front_rows} shown" if len(result.front) > front_rows else "") + ":",
           format_table(result.front, result.space, front_rows)]
    return "\n".join(out)


# --------------------------------------------------------------------------- run


def run(args) -> int:
    from .sweep import sweep

    if args.out and Path(args.out).suffix.lower() not in (".parquet", ".csv", ".json"):
        raise SpecError("sweep", "out", args.out, "a file name ending in .parquet, .csv or .json")
    model = load_spec("model", args.model)
    hardware = load_spec("hardware", args.hardware)
    space, budget = build_space(args, model, hardware)
    client = None
    if args.scheduler:
        from distributed import Client

        client = Client(args.scheduler)
    progress = ProgressBar() if sys.stderr.isatty() and not args.json else None
    try:
        result = sweep(model, hardware, space, objectives=args.objective,
                       constraints=constraints_of(args, budget), backend=args.backend,
                       chunk_size=args.chunk_size, top_k=args.top, sort_by=args.sort_by,
                       client=client, progress=progress, duplicates=args.duplicates)
    finally:
        if client is not None:
            client.close()
    if args.out:
        result.save(args.out)
    if args.plot:
        from .plot import plot_front

        plot_front(result, args.plot)
    if args.json:
        d = result.to_dict()
        if args.out:
            d["out"] = str(args.out)
        if args.plot:
            d["plot"] = str(args.plot)
        print(json.dumps(d, indent=1))
    else:
        print(report(result, args.top, args.front_rows))
        for what, path in (("front saved to", args.out), ("plot saved to", args.plot)):
            if path:
                print(f"\n{what} {path}")
    return 0
