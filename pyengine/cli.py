"""`pyengine` command line: explain, evaluate, sweep, presets, bench, validate.

Every command reports bad input as ONE line on stderr naming the flag or file and what
is allowed, with exit status 2 (:mod:`pyengine.cli_common`); ``main(argv)`` returns the
exit status instead of raising, so it can be called in-process.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence

from . import __version__, presets
from . import schema as S
from .cli_common import (
    GEN_TOKENS,
    GLOBAL_BATCH,
    SEQ_LEN,
    HelpFormatter,
    OneLineParser,
    OptionError,
    add_mem_fraction,
    finite_json,
    integer,
    number,
    one_line,
    subparser,
)
from .errors import BackendUnavailable, SpecError
from .optional import MissingExtra
from .specs import Limits, Plan
from .sweep import ClusterError

EPILOG = """examples:
  pyengine explain --model llama3-70b --hardware h100-sxm --tp 8 --pp 4 --dp 4 \\
      --global-batch 512 --seq-len 8192 --recompute selective
  pyengine explain --model moe-10b --hardware h100-sxm --tp 2 --pp 4 --dp 6 --ep 2 --json
  pyengine sweep --model llama3-70b --hardware h100-sxm --max-gpus 256
  pyengine presets
"""

# Errors that are the input's fault: one line and exit status 2. Anything else is a bug
# in pyengine and keeps its traceback.
USER_ERRORS = (SpecError, BackendUnavailable, MissingExtra, ClusterError, OSError, ValueError)

# The command line's defaults where they differ from the library's Plan(): the workload.
CLI_PLAN_DEFAULTS = {"global_batch": GLOBAL_BATCH, "seq_len": SEQ_LEN}


def plan_default(name: str) -> object:
    return CLI_PLAN_DEFAULTS.get(name, getattr(Plan(), name))


def flag_of(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per plan column, generated from the schema. Values are parsed here (an
    integer flag takes integers only); ranges are Plan's, checked when it is built."""
    g = parser.add_argument_group("plan")
    for col in S.PLAN:
        flag, default = flag_of(col.name), plan_default(col.name)
        kw: dict = {"dest": col.name, "default": default, "help": col.doc}
        if col.name == "gen_tokens":
            kw.update(default=None, help=f"{col.doc} (default: {GEN_TOKENS} in decode mode, "
                                         "else 0)")
        if col.kind == "bool":
            g.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif col.kind == "choice":
            g.add_argument(flag, choices=col.choices, **kw)
        elif col.kind == "int":
            g.add_argument(flag, type=integer(), metavar="N", **kw)
        else:
            g.add_argument(flag, type=number(), metavar="X", **kw)


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", required=True,
                        help="model preset (see `pyengine presets`) or a .toml/.json file, "
                             "including a Hugging Face config.json")
    parser.add_argument("--hardware", "-H", required=True,
                        help="hardware preset or a .toml/.json file")


def plan_from_args(args: argparse.Namespace) -> Plan:
    """The Plan the flags describe; a value Plan refuses is reported with its flag."""
    values = {c.name: getattr(args, c.name) for c in S.PLAN}
    if values["gen_tokens"] is None:
        values["gen_tokens"] = GEN_TOKENS if values["mode"] == "decode" else 0
    try:
        return Plan(**values)
    except SpecError as exc:
        if exc.field not in values:
            raise
        err = OptionError(flag_of(exc.field), exc.value, exc.allowed)
        err.args = (f"{exc} (flag {flag_of(exc.field)})",)  # Plan's words, and the flag
        raise err from None


def check_finite(args: argparse.Namespace, outputs: dict) -> None:
    """Refuse to print an itemisation whose numbers overflowed float64: specs that far from
    any real GPU or model (1e-300 FLOP/s) would otherwise show as NaN."""
    bad = [k for k, v in outputs.items() if not math.isfinite(v)]
    if bad:
        shown = ", ".join(f"{k} = {outputs[k]}" for k in bad[:3])
        raise OptionError(f"--model {args.model} --hardware {args.hardware}", shown, "",
                          message=f"the cost model overflows float64 ({shown}): a spec value "
                                  "is outside any real GPU or model")


def cmd_explain(args: argparse.Namespace) -> int:
    from .explain import explain, render_text

    model = presets.model(args.model)
    hardware = presets.hardware(args.hardware)
    plan = plan_from_args(args)
    limits = Limits(mem_fraction=args.mem_fraction)
    d = explain(model, hardware, plan, limits)
    check_finite(args, d["outputs"])
    d["hbm_bytes"] = hardware.hbm_capacity_bytes
    if args.json:
        print(json.dumps(finite_json(d), indent=2, allow_nan=False))
    else:
        print(render_text(d))
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


def add_explain(sub) -> None:
    p = subparser(sub, "explain", help="one plan, every memory and time term itemised",
                  description="Evaluate one plan with the scalar reference and itemise "
                              "memory (bytes per GPU) and time (seconds per step).")
    add_target_arguments(p)
    add_plan_arguments(p)
    add_mem_fraction(p, 1.0)
    p.add_argument("--json", action="store_true", help="print a machine-readable object")
    p.set_defaults(func=cmd_explain)


def add_presets(sub) -> None:
    p = subparser(sub, "presets", help="list model and hardware presets",
                  description="The model and hardware presets shipped with pyengine, with "
                              "their headline facts.")
    p.add_argument("--json", action="store_true", help="every fact and source, as JSON")
    p.set_defaults(func=cmd_presets)


def build_parser() -> OneLineParser:
    from . import bench, cli_evaluate, cli_sweep, validate

    parser = OneLineParser(
        prog="pyengine", allow_abbrev=False,
        description="Cost model for splitting LLM training and inference across GPUs: "
                    "memory per GPU, roofline step time, feasibility, Pareto fronts.",
        epilog=EPILOG, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"pyengine {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    add_explain(sub)
    cli_evaluate.add_parser(sub)
    cli_sweep.add_parser(sub)
    add_presets(sub)
    bench.add_parser(sub)
    validate.add_parser(sub)
    parser.commands = sub.choices  # type: ignore[attr-defined]
    return parser


def parse(parser: OneLineParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse, failing on one line (SystemExit) on anything no option takes."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        command = getattr(args, "command", None)
        (parser.commands.get(command) or parser).unrecognized(extra)  # type: ignore[attr-defined]
    return args


def _exit_status(exc: SystemExit) -> int:
    code = exc.code
    return 0 if code is None else code if isinstance(code, int) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parse(parser, argv)
    except SystemExit as exc:  # --help, --version, or a bad command line (already reported)
        return _exit_status(exc)
    if not getattr(args, "command", None):
        print("pyengine: error: a command is required: " + ", ".join(parser.commands)
              + " (see `pyengine --help`)", file=sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # output piped into head & co.: stop quietly
        sys.stderr.close()
        return 0
    except USER_ERRORS as exc:
        print(f"pyengine {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pyengine {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
