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
import textwrap
import time

from . import backends
from . import schema as S
from .cli_common import (
    GEN_TOKENS,
    GLOBAL_BATCH,
    SEQ_LEN,
    OptionError,
    add_mem_fraction,
    check_output,
    finite_json,
    int_range,
    integer,
    number,
    one_line,
    subparser,
)
from .errors import SpecError
from .optional import require
from .specs import Plan

EXAMPLES = """examples:
  pyengine sweep --model llama3-70b --hardware h100-sxm --max-gpus 256 --seq-len 8192
  pyengine sweep -m moe-10b -H h100-sxm --max-gpus 40 --global-batch 128 \\
      --seq-len 10240 --mem-fraction 0.9 --out front.parquet --plot front.png
  pyengine sweep -m llama3-8b -H h100-sxm --gpus 8 --mode serve --gen-tokens 512 \\
      --max-ttft-ms 2000 --max-itl-ms 30 --plot serve.png
  pyengine sweep -m llama3-8b -H h100-sxm --gpus 8 --mode decode --gen-tokens 512 \\
      --max-tpot-ms 30 --objective tokens_per_s_per_gpu:max --objective tpot_s:min
  pyengine sweep -m llama3-70b -H h100-sxm --max-gpus 64 --mode serve --seq-len 2048 \\
      --gen-tokens 256 --layout both --max-ttft-ms 2000 --plot layouts.png
"""

DEFAULT_BUDGET_NODES = 8
DEFAULT_GLOBAL_BATCH = GLOBAL_BATCH
DEFAULT_SEQ_LEN = SEQ_LEN
DEFAULT_GEN_TOKENS = GEN_TOKENS
# A serving sweep (decode plans only) with no --global-batch: the batch is the number of
# sequences served at once, the knob that trades tokens/s per GPU for tokens/s per user.
SERVE_BATCHES = [1 << i for i in range(9)]  # 1 .. 256
# The largest GPU budget the default axes are built for: far beyond any cluster, small
# enough that the axes stay short lists (they are computed from divisors and powers of
# two, never by walking every count up to the budget).
MAX_BUDGET = 1 << 24
PP_EVERY_UP_TO = 128  # default pp axis: every count up to this, powers of two beyond
MAX_CHUNK = 1 << 26
MAX_TOP = 100_000
OUT_SUFFIXES = (".parquet", ".csv", ".json")
PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".eps", ".ps")
# Plan columns that define the work (what is computed), rather than how it is split: plans
# that differ in them are answers to different questions.
WORKLOAD = ("mode", "global_batch", "seq_len", "gen_tokens")
GIB = float(1 << 30)
LAYOUTS = ("agg", "disagg", "both")
MAX_INSTANCES = 64  # = pyengine.disagg.MAX_INSTANCES (not imported: keeps --help light)


# --------------------------------------------------------------------------- parser


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# Other names a sweep takes for a mode: serving is decode (its plans carry TTFT and the
# time per output token, the steady-state inter-token latency).
MODE_ALIASES = {"serve": "decode"}
AXIS_HELP = {"mode": "train, prefill, decode, or serve (= decode: the serving front, "
                     "tokens/s per GPU against tokens/s per user)"}

AXIS_DEFAULTS = {
    "mode": "train",
    "global_batch": f"{GLOBAL_BATCH}; serve/decode: {SERVE_BATCHES[0]},{SERVE_BATCHES[1]},"
                    f"{SERVE_BATCHES[2]},...,{SERVE_BATCHES[-1]} sequences at once",
    "seq_len": str(SEQ_LEN),
    "gen_tokens": f"{GEN_TOKENS} in decode mode", "tp": "powers of two up to a node",
    "cp": "powers of two up to the budget",
    "pp": f"every count up to the layers ({PP_EVERY_UP_TO} at most; powers of two beyond)",
    "ep": "powers of two dividing the experts", "dp": "the divisors of the global batch",
    "micro_batch": "1,2,4", "recompute": "none,selective,full in training",
    "zero": "1; --all-zero: 0,1,2,3",
}


def _axis_default(col) -> str:
    """The default of an axis as its help text shows it."""
    if col.name in AXIS_DEFAULTS:
        return AXIS_DEFAULTS[col.name]
    value = getattr(Plan(), col.name)
    if col.kind == "bool":
        return "on" if value else "off"
    return str(value)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparser(
        subparsers, "sweep", help="a design space: feasible count, Pareto front, best plans, "
        "a plot", description="Evaluate every plan of a design space (the Cartesian "
        "product of the axes) and keep the Pareto front, the best plans and the counts of "
        "infeasible plans by reason.", epilog=EXAMPLES)
    p.add_argument("--model", "-m", required=True,
                   help="model preset (see `pyengine presets`) or a .toml/.json file")
    p.add_argument("--hardware", "-H", required=True, help="hardware preset or a .toml/.json file")
    budget = p.add_mutually_exclusive_group()
    count = integer(1, MAX_BUDGET)
    budget.add_argument("--gpus", type=count, metavar="N", help="use exactly N GPUs")
    budget.add_argument("--max-gpus", type=count, metavar="N",
                        help=f"use at most N GPUs (default: {DEFAULT_BUDGET_NODES} nodes)")
    axes = p.add_argument_group(
        "axes (comma lists; omitted axes get defaults sized to the GPU budget)")
    for col in S.PLAN:
        axes.add_argument(_flag(col.name), dest=col.name, metavar=_metavar(col),
                          help=AXIS_HELP.get(col.name, col.doc)
                          + (f" ({col.unit})" if col.unit else "")
                          + f" (default: {_axis_default(col)})")
    axes.add_argument("--all-zero", action="store_true", help="sweep ZeRO stages 0,1,2,3")
    c = p.add_argument_group("objectives and constraints")
    c.add_argument("--objective", action="append", metavar="COLUMN:min|max",
                   help="an output column to optimise (repeat), or tokens_per_s_per_user "
                        "(1 / inter-token latency; decode/serve); default "
                        "tokens_per_s_per_gpu:max, n_gpus:min, mem_total_bytes:min, and "
                        "for --mode serve/decode the serving front "
                        "tokens_per_s_per_gpu:max, tokens_per_s_per_user:max")
    c.add_argument("--sort-by", metavar="COLUMN[:min|max]",
                   help="rank the best plans by this (default: the first objective)")
    add_mem_fraction(c, None)
    rate = number(0.0)
    c.add_argument("--min-tokens-per-s", type=rate, metavar="X",
                   help="least tokens/s, all GPUs together")
    c.add_argument("--min-tokens-per-s-per-gpu", type=rate, metavar="X",
                   help="least tokens/s per GPU")
    latency = number(0.0, lo_open=True, allow_inf=True)
    c.add_argument("--max-tpot-ms", type=latency, metavar="MS",
                   help="longest time per output token (decode); the same limit as "
                        "--max-itl-ms")
    c.add_argument("--max-itl-ms", type=latency, metavar="MS",
                   help="longest inter-token latency (serve/decode): another name for "
                        "--max-tpot-ms (give one, or both with the same value)")
    c.add_argument("--max-ttft-ms", type=latency, metavar="MS",
                   help="longest time to first token (inference)")
    c.add_argument("--max-dropped", type=number(0.0, 1.0), default=0.0, metavar="F",
                   help="largest allowed fraction of MoE token-slots dropped, in [0, 1]")
    c.add_argument("--duplicates", choices=("all", "first"), default="all",
                   help="front plans with identical objectives: keep all, or the first")
    lay = p.add_argument_group("serving layout (--mode serve)", textwrap.fill(
        "agg: every GPU runs prefill and decode (the decode plans with their own prefill). "
        "disagg: a prefill pool and a decode pool, each instance with its own "
        "parallelism and batch, every request's KV cache sent from prefill to decode GPUs "
        "over the scale-out network, and the numbers of prefill and decode instances "
        "chosen to balance their request rates (DistServe, Dynamo, aiconfigurator); "
        "tokens/s per GPU of the whole deployment, TTFT = prefill + KV transfer, ITL = the "
        "decode plan's. The GPU budget (--gpus/--max-gpus) bounds the whole deployment; "
        "--max-ttft-ms, --max-itl-ms, --min-tokens-per-s(-per-gpu) apply to it. "
        "See docs/disaggregation.md.", 80, break_on_hyphens=False))
    lay.add_argument("--layout", choices=LAYOUTS, default="agg",
                     help="agg, disagg, or both: the aggregated and disaggregated fronts "
                          "side by side (a layout column in the table, --json and --out; "
                          "--plot draws both)")
    lay.add_argument("--max-instances", type=integer(1, 1 << 20), metavar="N",
                     help="most prefill instances and most decode instances in a "
                          f"disaggregated deployment (default: {MAX_INSTANCES} each)")
    o = p.add_argument_group("execution and output")
    o.add_argument("--top", type=integer(0, MAX_TOP), default=20, metavar="K",
                   help="best plans to keep")
    o.add_argument("--front-rows", type=integer(0), default=40, metavar="N",
                   help="front rows to print (all are saved with --out)")
    o.add_argument("--chunk-size", type=integer(1, MAX_CHUNK), metavar="N",
                   help="plans per evaluated chunk (default: 2**19 on CPU, 2**23 on a GPU)")
    o.add_argument("--backend", default="auto", choices=("auto", *backends.REGISTRY),
                   help="where the plans are evaluated")
    o.add_argument("--scheduler", metavar="ADDRESS",
                   help="Dask scheduler to spread work over (needs pyengine[dask])")
    o.add_argument("--scheduler-timeout", type=number(0.0, 3600.0, lo_open=True), default=10.0,
                   metavar="S", help="seconds to wait for the scheduler to answer")
    o.add_argument("--worker-timeout", type=number(0.0, lo_open=True, allow_inf=True),
                   default=60.0, metavar="S",
                   help="fail when the scheduler has had no worker for this long")
    o.add_argument("--out", metavar="FILE", help="save the front: .parquet, .csv or .json")
    o.add_argument("--plot", metavar="FILE.png", help="plot the front (.png, .pdf, .svg, ...)")
    o.add_argument("--json", action="store_true", help="print a machine-readable object")
    p.set_defaults(func=run)
    return p


def _metavar(col) -> str:
    if col.kind == "choice":
        return ",".join([*col.choices, *(MODE_ALIASES if col.name == "mode" else ())])
    if col.kind == "bool":
        return "on,off"
    return "N,..." if col.kind == "int" else "X,..."


def _allowed(col) -> str:
    if col.kind == "choice":
        aliases = [f"{a} (= {v})" for a, v in MODE_ALIASES.items()] if col.name == "mode" else []
        return "one of " + ", ".join([*col.choices, *aliases])
    if col.kind == "bool":
        return "on or off"
    if col.kind == "int":
        return "integers in " + f"[{int(col.lo)}, {int(col.hi)}]"
    return f"finite numbers in [{col.lo:g}, {col.hi:g}]"


def _item(col, t: str):
    """One value of a comma list, or None when the column does not allow it."""
    if col.kind == "choice":
        return t if t in col.choices else None
    if col.kind == "bool":
        low = t.lower()
        return low in ("on", "true", "1", "yes") if low in (
            "on", "off", "true", "false", "1", "0", "yes", "no") else None
    try:
        v = float(t)
    except ValueError:
        return None
    if not math.isfinite(v) or not col.lo <= v <= col.hi:
        return None
    if col.kind == "int":
        return int(v) if v == math.floor(v) else None
    return v


def parse_list(col, text: str) -> list:
    """A comma list of human values for a plan column, each checked against the column."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise OptionError(_flag(col.name), text, "a comma-separated list of values")
    if col.name == "mode":
        items = [MODE_ALIASES.get(t.lower(), t) for t in items]
    out = []
    for t in items:
        v = _item(col, t)
        if v is None:
            raise OptionError(_flag(col.name), t, _allowed(col))
        out.append(v)
    return sorted(set(out), key=out.index)


# --------------------------------------------------------------------------- specs and axes


def load_spec(kind: str, name: str):
    """A model or hardware from a preset name or a .toml/.json file (pyengine.presets)."""
    from . import presets

    return getattr(presets, kind)(name)


def _pow2(limit: int) -> list[int]:
    """Powers of two up to ``limit`` (>= 1)."""
    return [1 << i for i in range(max(1, int(limit)).bit_length())]


def _divisors(n: int) -> list[int]:
    """The divisors of n, sorted: O(sqrt n) trial division, never a walk up to n."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def _pp_axis(layers: int, budget: int, exact: bool) -> list[int]:
    limit = min(budget, layers)
    if exact:
        return [v for v in _divisors(budget) if v <= limit]
    every = list(range(1, min(limit, PP_EVERY_UP_TO) + 1))
    return every + [v for v in _pow2(limit) if v > PP_EVERY_UP_TO]


def _dp_axis(batches: list[int], budget: int, exact: bool) -> list[int]:
    """Degrees that split some global batch (dp * micro_batch must divide it) and fit the
    budget (divide it, when exact)."""
    if exact:
        return [v for v in _divisors(budget) if any(g % v == 0 for g in batches)]
    found: set[int] = set()
    for g in batches:
        found.update(v for v in _divisors(int(g)) if v <= budget)
    return sorted(found)


def default_axes(model, hardware, budget: int, exact: bool, axes: dict) -> dict:
    """Default values for the axes the user left out, sized to the GPU budget.

    tp: powers of two up to min(budget, GPUs per node); cp: powers of two up to the
    budget; pp: every count up to min(budget, layers) (layers need not divide pp), powers
    of two beyond 128; ep: powers of two dividing the experts (MoE) or 1; dp: the divisors
    of a global batch up to the budget (dp * micro_batch must divide it). With ``exact``
    every degree must divide the budget. micro_batch 1,2,4; recompute none/selective/full
    and ZeRO 1 in training; global batch 128, sequence 4096, 256 generated tokens (decode).
    A serving sweep (decode plans only) sweeps the global batch, the sequences served at
    once: 1, 2, 4, ..., 256.
    Every axis is computed from divisors and powers of two: the budget may be large.
    """
    if not 1 <= budget <= MAX_BUDGET:
        raise OptionError("--max-gpus", budget, int_range(1, MAX_BUDGET))

    def fits(v):
        return v <= budget and (not exact or budget % v == 0)

    mode = axes.get("mode", ["train"])
    training = "train" in mode
    serving = set(mode) == {"decode"}
    d: dict = {}
    d["mode"] = mode
    d["global_batch"] = axes.get("global_batch",
                                 list(SERVE_BATCHES) if serving else [DEFAULT_GLOBAL_BATCH])
    d["seq_len"] = axes.get("seq_len", [DEFAULT_SEQ_LEN])
    if "decode" in mode:
        d["gen_tokens"] = axes.get("gen_tokens", [DEFAULT_GEN_TOKENS])
    d["tp"] = [v for v in _pow2(min(budget, hardware.gpus_per_node)) if fits(v)]
    d["cp"] = [v for v in _pow2(budget) if fits(v)]
    d["pp"] = _pp_axis(model.n_layers, budget, exact)
    if model.n_experts:
        d["ep"] = [v for v in _pow2(min(budget, model.n_experts))
                   if model.n_experts % v == 0 and fits(v)]
    d["dp"] = _dp_axis(d["global_batch"], budget, exact) or [1]
    d["micro_batch"] = [1, 2, 4]
    if training:
        d["recompute"] = ["none", "selective", "full"]
        d["zero"] = [1]
    d.update(axes)
    return d


def build_space(args, model, hardware):
    from .space import Space

    budget = args.gpus or args.max_gpus or DEFAULT_BUDGET_NODES * hardware.gpus_per_node
    given = {col.name: parse_list(col, getattr(args, col.name))
             for col in S.PLAN if getattr(args, col.name, None) is not None}
    if getattr(args, "all_zero", False) and "zero" not in given:
        given["zero"] = [0, 1, 2, 3]
    axes = default_axes(model, hardware, budget, args.gpus is not None, given)
    if "decode" in axes["mode"] and 0 in axes.get("gen_tokens", [0]):
        raise SpecError("sweep", "gen_tokens", 0, ">= 1 in decode mode: give --gen-tokens")
    return Space(base=Plan(), **axes), budget


def max_itl_ms(args) -> float | None:
    """The inter-token latency limit: --max-itl-ms and --max-tpot-ms are one limit (the
    time per output token is the steady-state inter-token latency)."""
    tpot, itl = getattr(args, "max_tpot_ms", None), getattr(args, "max_itl_ms", None)
    if tpot is not None and itl is not None and tpot != itl:
        raise OptionError("--max-itl-ms", itl, "", message=(
            f"{itl:g} ms differs from --max-tpot-ms {tpot:g} ms: they are one limit (the "
            "time per output token is the inter-token latency); give one of them"))
    return itl if itl is not None else tpot


def objectives_of(args, space):
    """(objectives, sort key) from --objective and --sort-by, checked against the space:
    a bad one is a one-line error naming its flag and the allowed columns."""
    from .sweep import check_derived, parse_objectives, sort_key

    try:
        objs = parse_objectives(args.objective, space)
        check_derived([c for c, _ in objs], space)
    except SpecError as exc:
        raise _flag_error("--objective", exc) from None
    try:
        key = sort_key(args.sort_by, objs)
        check_derived([key[0]], space)
    except SpecError as exc:
        raise _flag_error("--sort-by", exc) from None
    return objs, key


def _flag_error(flag: str, exc: SpecError) -> OptionError:
    value = exc.value
    if exc.field == "objectives" and value == []:
        return OptionError(flag, "", exc.allowed)
    if exc.field.startswith("objective ") and flag == "--objective":  # a bad sense
        value = f"{exc.field.split(' ', 1)[1]}:{value}"
    err = OptionError(flag, value, exc.allowed)
    if "space has mode" in exc.allowed:  # a serving column on a sweep without decode plans
        err.args = (f"{flag}: {value!r} needs --mode serve (or decode): "
                    + exc.allowed.split(", and ", 1)[1]
                    + "; a training or prefill plan has no inter-token latency",)
    return err


def constraints_of(args, budget: int) -> dict:
    c: dict = {"max_dropped_fraction": args.max_dropped}
    if args.gpus is not None:
        c["gpus_exact"] = args.gpus
    else:
        c["gpus_max"] = budget
    if getattr(args, "mem_fraction", None) is not None:
        c["mem_fraction"] = args.mem_fraction
    if args.min_tokens_per_s is not None:
        c["min_tokens_per_s"] = args.min_tokens_per_s
    if args.min_tokens_per_s_per_gpu is not None:
        c["min_tokens_per_s_per_gpu"] = args.min_tokens_per_s_per_gpu
    itl = max_itl_ms(args)
    if itl is not None:
        c["max_tpot_s"] = itl * 1e-3
    if args.max_ttft_ms is not None:
        c["max_ttft_s"] = args.max_ttft_ms * 1e-3
    return c


# --------------------------------------------------------------------------- progress


class ProgressBar:
    """A one-line progress bar with plans/s on a stream (stderr when it is a terminal).

    Each frame overwrites the last from the line start; a shorter frame is padded with
    blanks so nothing of a longer one stays behind ("ETA 6 ss")."""

    def __init__(self, stream=None, width: int = 28):
        self.stream = stream or sys.stderr
        self.width = width
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.shown = 0  # length of the frame on screen

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
        line = (f"  [{'#' * fill}{'.' * (self.width - fill)}] {100 * frac:5.1f}%  "
                f"{_si(done)}/{_si(total)} plans  {_si(rate)} plans/s"
                + (f"  ETA {eta:.0f} s" if done < total and math.isfinite(eta) else ""))
        self.stream.write("\r" + line.ljust(self.shown))
        self.shown = len(line)
        if done >= total:
            self.stream.write("\n")
            self.shown = 0
        self.stream.flush()


def _si(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.1f}{unit}"
    return f"{x:.0f}"


def cell(value: float, fmt: str) -> str:
    """A number for a table: ``fmt`` in the human range, 3 significant digits outside it
    (absurd hardware gives 1e300 s steps: no 300-digit cells, and no tiny value shown as 0)."""
    if value != value:
        return "nan"
    if value != 0 and not 1e-3 <= abs(value) < 1e12:
        return f"{value:.3g}"
    return fmt.format(value)


# --------------------------------------------------------------------------- output

DISPLAY = (  # output column, header, scale, format
    ("n_gpus", "GPUs", 1.0, "{:.0f}"),
    ("tokens_per_s_per_gpu", "tok/s/GPU", 1.0, "{:,.0f}"),
    ("tokens_per_s", "tok/s", 1.0, "{:,.0f}"),
    ("mem_total_bytes", "mem GiB", GIB, "{:.1f}"),
    ("time_step_s", "step s", 1.0, "{:.3g}"),
    ("mfu", "MFU %", 0.01, "{:.1f}"),
)
# the workload columns first: they say which question a row answers
PLAN_ORDER = ("mode", "global_batch", "seq_len", "gen_tokens", "dtype", "tp", "cp", "pp", "dp",
              "ep", "etp", "vpp", "micro_batch", "zero", "recompute", "sequence_parallel",
              "capacity_factor", "flash_attention", "grad_dtype")
SHORT = {"global_batch": "gbs", "micro_batch": "mbs", "seq_len": "seq", "gen_tokens": "gen",
         "sequence_parallel": "sp", "capacity_factor": "cf", "flash_attention": "flash"}
INFERENCE_DISPLAY = (
    ("ttft_s", "TTFT ms", 1e-3, "{:.3g}"),
    ("tpot_s", "TPOT ms", 1e-3, "{:.3g}"),
    ("tokens_per_s_per_user", "tok/s/user", 1.0, "{:,.1f}"),  # derived: decode spaces
)


def _order(name: str) -> int:
    return PLAN_ORDER.index(name) if name in PLAN_ORDER else len(PLAN_ORDER)


def format_table(df, space, limit: int | None = None) -> str:
    """Plans as an aligned text table: the varying plan columns (workload first), then
    outputs with units."""
    if limit is not None:
        df = df.head(limit)
    if not len(df):
        return "  (none)"
    varying = sorted(space.varying, key=_order)
    cols = ["index"] + varying
    headers = ["#"] + [SHORT.get(c, c.replace("_", " ")) for c in varying]
    rows = [[str(v) for v in df[c]] for c in cols]
    display = DISPLAY
    if (df["mode"] != "train").any():
        display = DISPLAY + INFERENCE_DISPLAY
    for col, head, scale, fmt in display:
        if col not in df:
            continue
        headers.append(head)
        rows.append([cell(v / scale, fmt) for v in df[col]])
    widths = [max(len(h), *(len(r) for r in col)) for h, col in zip(headers, rows)]
    lines = ["  " + "  ".join(h.rjust(w) for h, w in zip(headers, widths))]
    for i in range(len(df)):
        lines.append("  " + "  ".join(col[i].rjust(w) for col, w in zip(rows, widths)))
    return "\n".join(lines)


def mixed_workloads(df) -> str | None:
    """A warning when a table's plans do different work (several sequence lengths, batches
    or modes): a plan for one workload is no alternative to a plan for another, and a front
    over them compares tokens/s of different questions. In a serving front (decode plans
    only) the batch is the number of sequences served at once, a choice like tp: not a
    different workload."""
    if not len(df):
        return None
    workload = WORKLOAD
    if (df["mode"] == "decode").all():  # serving: the batch is the concurrency, a knob
        workload = tuple(c for c in WORKLOAD if c != "global_batch")
    differ = [c for c in workload if c in df and df[c].nunique() > 1]
    if not differ:
        return None
    kinds = "; ".join(f"{SHORT.get(c, c)} {', '.join(str(v) for v in sorted(df[c].unique()))}"
                      for c in differ)
    n = len(df.drop_duplicates(subset=differ))
    return (f"the front mixes {n} workloads ({kinds}): its plans answer different questions; "
            f"read the {', '.join(SHORT.get(c, c) for c in differ)} column, or sweep one "
            "workload at a time")


def format_counts(result) -> str:
    c = result.counts
    from .sweep import NOT_FINITE, NOT_FINITE_DOC

    docs = dict(S.VIOLATIONS)
    docs.update({b.reason: b.describe() for b in result.bounds})
    docs[NOT_FINITE] = NOT_FINITE_DOC
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
    warning = mixed_workloads(result.front)
    if warning:
        out += ["", "note: " + warning]
    return "\n".join(out)


# --------------------------------------------------------------------------- run


def check_files(args) -> None:
    """Output paths and the extras the options need, checked before any work."""
    if args.out:
        out = check_output("--out", args.out, OUT_SUFFIXES)
        if out.suffix.lower() == ".parquet":
            require("pyarrow", "--out FILE.parquet")
    if args.plot:
        check_output("--plot", args.plot, PLOT_SUFFIXES)
        require("matplotlib", "--plot")
    if args.scheduler:
        require("distributed", "--scheduler")


def connect(address: str, timeout: float):
    """A Dask client for the scheduler at ``address``, or a one-line ClusterError."""
    import logging

    from distributed import Client

    from .sweep import ClusterError

    log = logging.getLogger("distributed")
    level = log.level
    log.setLevel(logging.CRITICAL)  # the failure is reported once, below, not logged too
    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address!r} within "
                           f"{timeout:g} s ({one_line(exc)}); is it running? "
                           "(--scheduler-timeout sets the wait)") from None
    finally:
        log.setLevel(level)


def check_layout(args, space) -> None:
    """Options that do not go with the chosen --layout: one-line errors naming the flag."""
    from .sweep import SERVE_OBJECTIVES, space_modes

    layout = getattr(args, "layout", "agg")
    if layout == "agg":
        if getattr(args, "max_instances", None) is not None:
            raise OptionError("--max-instances", args.max_instances, "", message=(
                "sizes the pools of a disaggregated deployment: give --layout disagg or "
                "both"))
        return
    modes = space_modes(space)
    if modes != {"decode"}:
        raise OptionError("--layout", layout, "", message=(
            f"{layout!r} needs --mode serve (decode plans only: the serving space gives "
            f"both pools their plans), and the sweep has mode {', '.join(sorted(modes))}"))
    if args.scheduler:
        raise OptionError("--scheduler", args.scheduler, "", message=(
            f"--layout {layout} evaluates its prefill and decode pools on this machine; "
            "use --layout agg to sweep on a Dask cluster"))
    if args.objective:
        objs, _ = objectives_of(args, space)
        if tuple(objs) != SERVE_OBJECTIVES:
            raise OptionError("--objective", ",".join(f"{c}:{s}" for c, s in objs), "",
                              message=f"--layout {layout} draws the serving front (max "
                              "tokens_per_s_per_gpu, max tokens_per_s_per_user) of every "
                              "layout; other objectives need --layout agg")
    if args.sort_by:
        raise OptionError("--sort-by", args.sort_by, "", message=(
            f"--layout {layout} ranks deployments by tokens_per_s_per_gpu; --sort-by needs "
            "--layout agg"))


def run(args) -> int:
    from .sweep import parse_constraints, sweep

    check_files(args)
    model = load_spec("model", args.model)
    hardware = load_spec("hardware", args.hardware)
    space, budget = build_space(args, model, hardware)
    check_layout(args, space)
    constraints = constraints_of(args, budget)
    objectives, _ = objectives_of(args, space)  # fail on a bad objective before connecting
    parse_constraints(constraints, space.limits)
    layout = getattr(args, "layout", "agg")
    if layout != "agg":
        return run_layouts(args, model, hardware, space, constraints, layout)
    client = connect(args.scheduler, args.scheduler_timeout) if args.scheduler else None
    progress = ProgressBar() if sys.stderr.isatty() and not args.json else None
    try:
        result = sweep(model, hardware, space, objectives=objectives,
                       constraints=constraints, backend=args.backend,
                       chunk_size=args.chunk_size, top_k=args.top, sort_by=args.sort_by,
                       client=client, progress=progress, duplicates=args.duplicates,
                       worker_timeout=args.worker_timeout)
    finally:
        if client is not None:
            client.close()
    if args.out:
        result.save(args.out)
    if args.plot:
        from .plot import plot_front

        plot_front(result, args.plot)
    warning = mixed_workloads(result.front)
    if args.json:
        d = result.to_dict()
        if args.out:
            d["out"] = str(args.out)
        if args.plot:
            d["plot"] = str(args.plot)
        if warning:
            d["warning"] = warning
        print(json.dumps(finite_json(d), indent=1, allow_nan=False))
    else:
        print(report(result, args.top, args.front_rows))
        for what, path in (("front saved to", args.out), ("plot saved to", args.plot)):
            if path:
                print(f"\n{what} {path}")
    if warning:
        print(f"pyengine sweep: warning: {warning}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- layouts


def _degrees(row, prefix: str) -> str:
    """A pool instance's parallel layout, e.g. "tp8 pp2" (degrees of 1 left out, tp kept)."""
    parts = [f"tp{int(row[prefix + 'tp'])}"]
    for name in ("cp", "pp", "dp", "ep"):
        key = prefix + name
        if key in row and int(row[key]) > 1:
            parts.append(f"{name}{int(row[key])}")
    return " ".join(parts)


DISAGG_DISPLAY = (  # column, header, scale, format
    ("n_gpus", "GPUs", 1.0, "{:.0f}"),
    ("tokens_per_s_per_gpu", "tok/s/GPU", 1.0, "{:,.0f}"),
    ("tokens_per_s", "tok/s", 1.0, "{:,.0f}"),
    ("ttft_s", "TTFT ms", 1e-3, "{:.3g}"),
    ("kv_transfer_s", "KV ms", 1e-3, "{:.3g}"),
    ("tpot_s", "ITL ms", 1e-3, "{:.3g}"),
    ("tokens_per_s_per_user", "tok/s/user", 1.0, "{:,.1f}"),
)


def format_disagg(df, limit: int | None = None) -> str:
    """Disaggregated deployments as a table: each pool's instances x layout and its batch
    (sequences a step / per micro-batch), then the deployment's numbers."""
    if limit is not None:
        df = df.head(limit)
    if not len(df):
        return "  (none)"
    headers = ["prefill", "P gbs/mbs", "decode", "D gbs/mbs"]
    rows: list[list[str]] = [[], [], [], []]
    for _, r in df.iterrows():
        rows[0].append(f"{int(r['prefill_instances'])} x {_degrees(r, 'prefill_')}")
        rows[1].append(f"{int(r['prefill_global_batch'])}/{int(r['prefill_micro_batch'])}")
        rows[2].append(f"{int(r['decode_instances'])} x {_degrees(r, 'decode_')}")
        rows[3].append(f"{int(r['decode_global_batch'])}/{int(r['decode_micro_batch'])}")
    for col, head, scale, fmt in DISAGG_DISPLAY:
        headers.append(head)
        rows.append([cell(v / scale, fmt) for v in df[col]])
    widths = [max(len(h), *(len(x) for x in col)) for h, col in zip(headers, rows)]
    lines = ["  " + "  ".join(h.rjust(w) for h, w in zip(headers, widths))]
    for i in range(len(df)):
        lines.append("  " + "  ".join(col[i].rjust(w) for col, w in zip(rows, widths)))
    return "\n".join(lines)


def _pool_line(role: str, c: dict) -> str:
    reasons = ", ".join(f"{n} {v:,}" for n, v in sorted(c["by_reason"].items(),
                                                          key=lambda t: -t[1]))
    return (f"  {role} pool: {c['evaluated']:,} plans, {c['feasible']:,} feasible"
            + (f" (infeasible by reason: {reasons})" if reasons else "")
            + f"; {c['usable']:,} within the limits, {c['paired']:,} on their own fronts "
            "(paired)")


def disagg_report(d, front_rows: int) -> str:
    """The disaggregated part of a sweep's report: pools, pairs, the front."""
    c = d.counts
    b = d.budget
    budget = (f"exactly {b['gpus_exact']} GPUs" if b.get("gpus_exact") else
              f"at most {b['gpus_max']} GPUs" if b.get("gpus_max") else "no GPU budget")
    out = [f"disaggregated prefill/decode: {c['pairs']:,} (prefill, decode) pairs in "
           f"{d.elapsed_s:.2f} s (backend {d.backend}); {budget}, at most "
           f"{b['max_instances']} instances of each pool",
           _pool_line("prefill", c["prefill"]), _pool_line("decode", c["decode"]),
           f"  deployments within the limits: {c['deployments']:,}", "",
           f"disaggregated front: {len(d.front)} deployments (max tokens_per_s_per_gpu, "
           "max tokens_per_s_per_user)"
           + (f", first {front_rows} shown" if len(d.front) > front_rows else "") + ":",
           format_disagg(d.front, front_rows)]
    return "\n".join(out)


def side_by_side(fronts: dict) -> str:
    """The best tokens/s per GPU of each layout at tokens/s per user levels."""
    from .disagg import compare_fronts

    rows = compare_fronts(fronts)
    if not rows:
        return "  (no front)"
    names = list(fronts)
    head = "  " + "tok/s/user >=".rjust(13) + "".join(
        f"  {('best tok/s/GPU ' + n).rjust(20)}" for n in names)
    if names == ["agg", "disagg"]:
        head += "  disagg/agg".rjust(13)
    lines = [head]
    for r in rows:
        line = "  " + f"{r['tokens_per_s_per_user']:g}".rjust(13) + "".join(
            f"  {cell(r[n], '{:,.0f}').rjust(20)}" if r[n] > 0 else f"  {'-'.rjust(20)}"
            for n in names)
        if names == ["agg", "disagg"]:
            ratio = f"{r['disagg'] / r['agg']:.2f}x" if r["agg"] > 0 and r["disagg"] > 0 else "-"
            line += ratio.rjust(13)
        lines.append(line)
    return "\n".join(lines)


def _workload_note(df) -> str | None:
    differ = [c for c in ("seq_len", "gen_tokens") if c in df and df[c].nunique() > 1]
    if not len(df) or not differ:
        return None
    return ("the disaggregated front mixes workloads ("
            + "; ".join(f"{SHORT.get(c, c)} {', '.join(str(v) for v in sorted(df[c].unique()))}"
                        for c in differ)
            + "): read those columns, or sweep one workload at a time")


def combined_front(result, d):
    """The fronts of both layouts in one table with a ``layout`` column."""
    import pandas as pd

    parts = []
    if result is not None:
        agg = result.front.copy()
        agg.insert(0, "layout", "agg")
        parts.append(agg)
    if d is not None:
        parts.append(d.front)
    parts = [p for p in parts if len(p)] or parts[:1]
    return pd.concat(parts, ignore_index=True, sort=False) if len(parts) > 1 else parts[0]


def run_layouts(args, model, hardware, space, constraints, layout: str) -> int:
    """`--layout disagg|both`: the disaggregated front (pyengine.disagg), with the
    aggregated sweep beside it for both."""
    from .disagg import MAX_INSTANCES as LIB_MAX
    from .disagg import compare_fronts, disaggregated_front
    from .sweep import _records, sweep

    result = None
    if layout == "both":
        progress = ProgressBar() if sys.stderr.isatty() and not args.json else None
        result = sweep(model, hardware, space, constraints=constraints, backend=args.backend,
                       chunk_size=args.chunk_size, top_k=args.top, progress=progress,
                       duplicates=args.duplicates)
    d = disaggregated_front(model, hardware, space, constraints=constraints,
                            backend=args.backend,
                            max_instances=args.max_instances or LIB_MAX,
                            duplicates=args.duplicates, chunk_size=args.chunk_size)
    fronts = {"agg": result.front, "disagg": d.front} if result is not None else \
        {"disagg": d.front}
    table = combined_front(result, d)
    warnings = [w for w in (mixed_workloads(result.front) if result is not None else None,
                            _workload_note(d.front)) if w]
    payload = d.to_dict(tables=False)
    payload["layout"] = layout
    if result is not None:
        payload = dict(result.to_dict(tables=False), layout=layout, disagg=payload)
        payload["top"] = _records(result.top)
    payload["front"] = _records(table)
    payload["side_by_side"] = compare_fronts(fronts)
    if args.out:
        save_table(table, payload, args.out)
        payload["out"] = str(args.out)
    if args.plot:
        from .plot import plot_layouts

        plot_layouts(fronts, args.plot, title=layout_title(model, hardware, result, d),
                     sample=result.sample if result is not None else None)
        payload["plot"] = str(args.plot)
    if warnings:
        payload["warning"] = "; ".join(warnings)
    if args.json:
        print(json.dumps(finite_json(payload), indent=1, allow_nan=False))
    else:
        out = []
        if result is not None:
            out += ["aggregated (prefill and decode on the same GPUs):",
                    report(result, args.top, args.front_rows), ""]
        out += [f"pyengine sweep: {model.name} on {hardware.name}, " + disagg_report(
            d, args.front_rows)]
        if result is not None:
            out += ["", "side by side, the best tokens/s per GPU at a tokens/s per user:",
                    side_by_side(fronts)]
        print("\n".join(out))
        for what, path in (("front saved to", args.out), ("plot saved to", args.plot)):
            if path:
                print(f"\n{what} {path}")
    for w in warnings:
        print(f"pyengine sweep: warning: {w}", file=sys.stderr)
    return 0


def layout_title(model, hardware, result, d) -> str:
    limits = []
    b = d.constraints
    if "max_ttft_s" in b:
        limits.append(f"TTFT \u2264 {b['max_ttft_s'] * 1e3:g} ms")
    if "max_tpot_s" in b:
        limits.append(f"ITL \u2264 {b['max_tpot_s'] * 1e3:g} ms")
    gpus = d.budget.get("gpus_exact") or d.budget.get("gpus_max")
    if gpus:
        limits.append(("exactly " if d.budget.get("gpus_exact") else "\u2264 ")
                      + f"{gpus} GPUs")
    head = f"{model.name} on {hardware.name}: the serving front by layout"
    counts = []
    if result is not None:
        counts.append(f"aggregated: {result.counts['feasible']:,} of "
                      f"{result.counts['evaluated']:,} plans feasible")
    counts.append(f"disaggregated: {d.counts['deployments']:,} deployments")
    return (head + "\n" + "; ".join(counts)
            + (f"\nlimits: {', '.join(limits)}" if limits else ""))


def save_table(table, payload: dict, path) -> None:
    """The combined front: .csv and .parquet as a table, .json the whole object."""
    from pathlib import Path

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        table.to_csv(path, index=False)
    elif suffix == ".parquet":
        table.to_parquet(path, index=False)
    else:
        path.write_text(json.dumps(finite_json(payload), indent=1, allow_nan=False))
