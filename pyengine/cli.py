"""`pyengine` command line: explain, evaluate, sweep, presets, bench, validate."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from . import presets
from . import schema as S
from .errors import BackendUnavailable, SpecError
from .specs import Limits, Plan

EPILOG = """examples:
  pyengine explain --model llama3-70b --hardware h100-sxm --tp 8 --pp 4 --dp 4 \\
      --global-batch 512 --seq-len 8192 --recompute selective
  pyengine explain --model moe-10b --hardware h100-sxm --tp 2 --pp 4 --dp 6 --ep 2 --json
  pyengine sweep --model llama3-70b --hardware h100-sxm --max-gpus 256
  pyengine presets
"""


def _bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "on", "yes"):
        return True
    if t in ("0", "false", "off", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected on/off, got {text!r}")


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per plan column, generated from the schema (defaults: pyengine.Plan)."""
    base = Plan()
    g = parser.add_argument_group("plan (defaults in brackets)")
    for col in S.PLAN:
        flag = "--" + col.name.replace("_", "-")
        default = getattr(base, col.name)
        if col.kind == "bool":
            g.add_argument(flag, dest=col.name, action=argparse.BooleanOptionalAction,
                           default=default, help=f"{col.doc} [{'on' if default else 'off'}]")
        elif col.kind == "choice":
            g.add_argument(flag, dest=col.name, choices=col.choices, default=default,
                           help=f"{col.doc} [{default}]")
        elif col.kind == "int":
            g.add_argument(flag, dest=col.name, type=int, default=default,
                           metavar="N", help=f"{col.doc} [{default}]")
        else:
            g.add_argument(flag, dest=col.name, type=float, default=default,
                           metavar="X", help=f"{col.doc} [{default}]")


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", required=True,
                        help="model preset (see `pyengine presets`) or a .toml/.json file, "
                             "including a Hugging Face config.json")
    parser.add_argument("--hardware", "-H", required=True,
                        help="hardware preset or a .toml/.json file")


def plan_from_args(args: argparse.Namespace) -> Plan:
    return Plan(**{c.name: getattr(args, c.name) for c in S.PLAN})


def cmd_explain(args: argparse.Namespace) -> int:
    from .explain import explain, render_text

    model = presets.model(args.model)
    hardware = presets.hardware(args.hardware)
    plan = plan_from_args(args)
    limits = Limits(mem_fraction=args.mem_fraction)
    d = explain(model, hardware, plan, limits)
    d["hbm_bytes"] = hardware.hbm_capacity_bytes
    if args.json:
        print(json.dumps(d, indent=2))
    else:
        print(render_text(d))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Plans from a CSV/JSON file (one column per plan field) -> outputs, one row each."""
    import numpy as np

    from .engine import evaluate_batch

    model = presets.model(args.model)
    hardware = presets.hardware(args.hardware)
    path = args.plans
    if path.endswith(".json"):
        with open(path) as fh:
            rows = json.load(fh)
        if isinstance(rows, dict):
            rows = [rows]
        cols = {name: [r[name] for r in rows] for name in S.PLAN_NAMES if rows and name in rows[0]}
    else:
        import csv

        with open(path, newline="") as fh:
            reader = list(csv.DictReader(fh))
        cols = {}
        for name in S.PLAN_NAMES:
            if reader and name in reader[0]:
                col = S.PLAN[S.PLAN_NAMES.index(name)]
                vals = [r[name] for r in reader]
                cols[name] = vals if col.kind in ("choice", "bool") else [float(v) for v in vals]
    res = evaluate_batch(model, hardware, cols, backend=args.backend)
    n = len(res)
    out = []
    for i in range(n):
        row = {name: (cols[name][i] if name in cols else None) for name in cols}
        row.update({name: float(res.columns[name][i]) for name in S.OUTPUT_NAMES})
        row["feasible"] = bool(res.codes[i] == 0)
        row["violations"] = res.violations(i)
        out.append(row)
    if args.json or not args.out:
        text = json.dumps(out, indent=2)
        if args.out:
            with open(args.out, "w") as fh:
                fh.write(text)
        else:
            print(text)
    else:
        import csv

        with open(args.out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(out[0]) if out else [])
            w.writeheader()
            for r in out:
                r["violations"] = ";".join(r["violations"])
                w.writerow(r)
        print(f"wrote {n} rows to {args.out} ({int(np.sum(res.codes == 0))} feasible)")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    models = [presets.model_facts(n) for n in presets.list_models()]
    hws = [presets.hardware_facts(n) for n in presets.list_hardware()]
    if args.json:
        print(json.dumps({"models": models, "hardware": hws}, indent=2, default=str))
        return 0
    print(f"{'model':<20} {'layers':>6} {'hidden':>6} {'heads/kv':>9} {'experts':>9} "
          f"{'vocab':>7} {'params':>9} {'active':>9}")
    for f in models:
        experts = f"{f['top_k']}/{f['experts']}" if f["experts"] else "-"
        print(f"{f['name']:<20} {f['layers']:>6} {f['hidden']:>6} "
              f"{f['heads']:>4}/{f['kv_heads']:<4} {experts:>9} {f['vocab']:>7} "
              f"{f['params_total'] / 1e9:>8.2f}B {f['params_active'] / 1e9:>8.2f}B")
    print()
    print(f"{'hardware':<12} {'BF16 TFLOP/s':>12} {'FP8 TFLOP/s':>11} {'HBM GiB':>8} "
          f"{'HBM TB/s':>8} {'GPUs/node':>9} {'NVLink GB/s':>11} {'net GB/s':>8}")
    for f in hws:
        print(f"{f['name']:<12} {f['bf16_tflops']:>12,.1f} {f['fp8_tflops'] or 0:>11,.1f} "
              f"{f['hbm_gib']:>8.1f} {f['hbm_tbps']:>8.2f} {f['gpus_per_node']:>9} "
              f"{f['nvlink_gbps']:>11.0f} {f['network_gbps']:>8.0f}")
    print("\nsources: pyengine presets --json; files in pyengine/presets/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyengine",
        description="Cost model for splitting LLM training and inference across GPUs: "
                    "memory per GPU, roofline step time, feasibility, Pareto fronts.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("explain", help="one plan, every memory and time term itemised",
                       description="Evaluate one plan with the scalar reference and itemise "
                                   "memory (bytes per GPU) and time (seconds per step).",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_target_arguments(p)
    add_plan_arguments(p)
    p.add_argument("--mem-fraction", type=float, default=1.0,
                   help="usable fraction of HBM (headroom), (0, 1]")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("evaluate", help="many plans from a CSV/JSON file, on a fast backend")
    add_target_arguments(p)
    p.add_argument("plans", help="CSV or JSON file with one column per plan field "
                                 f"({', '.join(S.PLAN_NAMES)}); missing columns take defaults")
    p.add_argument("--backend", default="auto", help="auto, native, numba, cupy, reference")
    p.add_argument("--out", help="write results to this .csv or .json file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("presets", help="list model and hardware presets")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_presets)

    for module in ("cli_sweep", "bench", "validate"):
        try:
            mod = __import__(f"pyengine.{module}", fromlist=["add_parser"])
        except ImportError:
            continue
        if hasattr(mod, "add_parser"):
            mod.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        run = getattr(args, "func", None) or args.run
        return int(run(args) or 0)
    except (SpecError, BackendUnavailable, FileNotFoundError, ValueError) as exc:
        print(f"pyengine {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into head & co.: stop quietly
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
