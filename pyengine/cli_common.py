"""What every `pyengine` subcommand shares: one-line errors, typed options, output checks.

A bad command line must cost the user one line on stderr that names the flag (or the
file, and the place in it) and says what is allowed, and exit status 2: never a
traceback, a hang or a silently different question. Options are therefore parsed by
typed functions that check the range where argparse sees them, and output paths are
checked before any work starts, so a long sweep is never lost to a typo in ``--out``.
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import SpecError

# Defaults the command line uses for the workload, the same in explain, evaluate and sweep
# (the library's Plan() keeps its own): a batch and a sequence a training run would use.
GLOBAL_BATCH = 128
SEQ_LEN = 4096
GEN_TOKENS = 256  # tokens generated per sequence in decode mode


class OptionError(SpecError):
    """A command-line value (a flag's, or a cell of an input file) that is not allowed.

    ``where`` names the flag (``--out``) or the place (``plans.csv line 3, column tp``)."""

    def __init__(self, where: str, value: object, allowed: str,
                 message: str | None = None) -> None:
        super().__init__("pyengine", where, value, allowed)
        self.args = (f"{where}: " + (message or f"{value!r} is not allowed: {allowed}"),)


def one_line(text: object) -> str:
    """A message on one line: errors from other libraries may span several."""
    return " ".join(str(text).split())


class OneLineParser(argparse.ArgumentParser):
    """argparse with errors on ONE line (prog, message, where to read more), exit 2.

    argparse's own error prints the whole usage first: for `pyengine sweep` that is
    thirty lines before the one that says what went wrong."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see `{self.prog} --help`)\n")

    def unrecognized(self, extra: list[str]):
        """Fail on arguments no option takes, suggesting the closest option names."""
        known = [s for a in self._actions for s in a.option_strings if a.help is not
                 argparse.SUPPRESS]
        hints = []
        for word in extra:
            if word.startswith("-"):
                close = difflib.get_close_matches(word.split("=")[0], known, n=1, cutoff=0.6)
                if close:
                    hints.append(close[0])
        self.error(f"unrecognized arguments: {' '.join(extra)}"
                   + (f" (did you mean {' or '.join(hints)}?)" if hints else ""))


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each option's default shown once, as "(default: X)", where it has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        flag_only = action.nargs == 0 and not isinstance(action, argparse.BooleanOptionalAction)
        if ("default" in text  # the text states it already (or argparse added it)
                or not action.option_strings or flag_only
                or action.default is None or action.default is argparse.SUPPRESS):
            return text
        return text + " (default: %(default)s)"


def subparser(sub, name: str, **kwargs) -> OneLineParser:
    """A subcommand parser with the shared formatter and one-line errors."""
    kwargs.setdefault("formatter_class", HelpFormatter)
    return sub.add_parser(name, allow_abbrev=False, **kwargs)


# --------------------------------------------------------------------------- typed options


def _as_int(text: str) -> int | None:
    t = text.strip()
    try:
        return int(t)
    except ValueError:
        pass
    try:
        v = float(t)  # "1e3" and "8.0" are integers too; "inf", "nan" and "2.5" are not
    except ValueError:
        return None
    if not math.isfinite(v) or v != math.floor(v):
        return None
    return int(v)


def int_range(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f"an integer in [{lo}, {hi}]"
    if lo is not None:
        return f"an integer >= {lo}"
    return "an integer"


def integer(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """argparse type: an integer (``8``, ``8.0``, ``1e3``) in [lo, hi]."""
    allowed = int_range(lo, hi)

    def parse(text: str) -> int:
        v = _as_int(text)
        if v is None or (lo is not None and v < lo) or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed: {allowed}")
        return v

    parse.__name__ = "integer"
    return parse


def number_range(lo: float, hi: float, lo_open: bool, hi_open: bool, allow_inf: bool) -> str:
    if math.isinf(lo) and math.isinf(hi):
        return "a finite number" + (" or inf" if allow_inf else "")
    if math.isinf(hi):
        op = ">" if lo_open else ">="
        return f"a number {op} {lo:g} (inf: no limit)" if allow_inf else \
            f"a finite number {op} {lo:g}"
    if math.isinf(lo):
        return f"a finite number {'<' if hi_open else '<='} {hi:g}"
    return f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def number(lo: float = -math.inf, hi: float = math.inf, lo_open: bool = False,
           hi_open: bool = False, allow_inf: bool = False) -> Callable[[str], float]:
    """argparse type: a number in the interval; never NaN, never -inf, and +inf only with
    ``allow_inf`` (an upper limit that is no limit)."""
    allowed = number_range(lo, hi, lo_open, hi_open, allow_inf)

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed: {allowed}") from None
        if math.isinf(v):
            ok = allow_inf and v > 0 and math.isinf(hi)
        else:
            ok = (lo < v or (not lo_open and v == lo)) and (v < hi or (not hi_open and v == hi))
        if not ok:  # NaN fails every comparison
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed: {allowed}")
        return v

    parse.__name__ = "number"
    return parse


def finite_json(obj: object) -> object:
    """``obj`` with every non-finite float replaced by None: JSON has no NaN or Infinity,
    and a reader must not mistake one for a number."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def add_mem_fraction(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                     default: float | None) -> None:
    """``--mem-fraction`` (the usable share of HBM), with sweep's old ``--mem-headroom`` as
    a hidden alias: one name and one meaning in every command."""
    kind = number(0.0, 1.0, lo_open=True)
    parser.add_argument("--mem-fraction", type=kind, default=default, metavar="F",
                        help="usable fraction of HBM, in (0, 1]; the rest is headroom"
                             + ("" if default is not None else " (default: 1)"))
    parser.add_argument("--mem-headroom", dest="mem_fraction", type=kind,
                        help=argparse.SUPPRESS)


# --------------------------------------------------------------------------- output files


def check_output(flag: str, path: str, suffixes: Iterable[str]) -> Path:
    """``path`` as a file this process can create or replace, with one of ``suffixes``.

    Checked before the work, so that the result is never computed and then lost."""
    p = Path(path)
    suffixes = tuple(suffixes)
    if p.suffix.lower() not in suffixes:
        raise OptionError(flag, path, "a file name ending in " + ", ".join(suffixes))
    if p.is_dir():
        raise OptionError(flag, path, "a file name, not a directory")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise OptionError(flag, path, f"a file in an existing directory ({parent} is not one)")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise OptionError(flag, path, "a file this user may write")
    return p


__all__ = ["GLOBAL_BATCH", "SEQ_LEN", "GEN_TOKENS", "OptionError", "OneLineParser",
           "HelpFormatter", "subparser", "integer", "number", "int_range", "number_range",
           "check_output", "one_line", "finite_json", "add_mem_fraction"]
