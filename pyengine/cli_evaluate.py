"""`pyengine evaluate`: plans from a CSV or JSON file -> every output, one row per plan.

Input: a CSV file (a header line of plan columns, then one plan per line) or a JSON list
of objects with the same keys each (one object is one plan). Columns left out take the
command line's defaults. Every cell is checked where it is read: a bad one is reported
with its file, line (or row) and column and what the column allows, never as a
conversion error from deep inside, and an unknown column is refused, not ignored.
Output: JSON on stdout, or ``--out`` a .json, .csv or .parquet file (the suffix decides).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from . import backends, presets
from . import schema as S
from .cli_common import (
    GEN_TOKENS,
    GLOBAL_BATCH,
    SEQ_LEN,
    OptionError,
    check_output,
    finite_json,
    int_range,
    subparser,
)
from .optional import require
from .specs import Plan

OUT_SUFFIXES = (".json", ".csv", ".parquet")
IN_SUFFIXES = (".csv", ".json")
TRUE_WORDS = ("1", "true", "on", "yes")
FALSE_WORDS = ("0", "false", "off", "no")
COLUMNS = {c.name: c for c in S.PLAN}


# --------------------------------------------------------------------------- cells


def allowed_values(col: S.Column) -> str:
    if col.kind == "choice":
        return "one of " + ", ".join(col.choices)
    if col.kind == "bool":
        return "true or false (on/off, 1/0)"
    if col.kind == "int":
        return int_range(int(col.lo), int(col.hi))
    return f"a finite number in [{col.lo:g}, {col.hi:g}]"


def _number(value: Any) -> float | None:
    """A JSON number or a numeric string as a float; None for anything else (bools too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return float(value) if abs(value) < 1 << 1000 else math.inf  # float() overflows
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _typed(col: S.Column, value: Any) -> Any:
    """``value`` as the column's Python type, or None when it is not one."""
    if col.kind == "choice":
        v = value.strip() if isinstance(value, str) else None
        return v if v in col.choices else None
    if col.kind == "bool":
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower() if isinstance(value, (str, int)) else ""
        return True if word in TRUE_WORDS else False if word in FALSE_WORDS else None
    v = _number(value)
    if v is None or not math.isfinite(v) or not col.lo <= v <= col.hi:
        return None
    if col.kind == "int":
        if isinstance(value, int):  # exact, however large
            return value if col.lo <= value <= col.hi else None
        return int(v) if v == math.floor(v) else None
    return v


def parse_cell(col: S.Column, value: Any, where: str) -> Any:
    typed = _typed(col, value)
    if typed is None:
        raise OptionError(f"{where}, column {col.name}", value, allowed_values(col))
    return typed


# --------------------------------------------------------------------------- files


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # tolerate a spreadsheet's BOM
    except UnicodeDecodeError as err:
        raise OptionError(str(path), f"byte {err.start}", "UTF-8 text",
                          message=f"not UTF-8 text (byte {err.start}: {err.reason})") from None


def _csv_records(path: str, text: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader, [])]
        records = []
        for rec in reader:
            if not any(cell.strip() for cell in rec):
                continue  # blank lines (a trailing newline, spacing) are not plans
            where = f"{path} line {reader.line_num}"
            if len(rec) != len(header):
                raise OptionError(where, len(rec), "", message=(
                    f"{len(rec)} cells where the header has {len(header)} "
                    f"({', '.join(header)}): every line needs one cell per column"))
            records.append((where, rec))
    except csv.Error as err:
        raise OptionError(f"{path} line {reader.line_num}", "", "",
                          message=f"not valid CSV ({err})") from None
    if not header or not any(header):
        raise OptionError(path, "", "", message="empty: the first line must name plan "
                          "columns (" + ", ".join(S.PLAN_NAMES) + ")")
    return header, records


def _json_records(path: str, text: str) -> tuple[list[str], list[tuple[str, list]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise OptionError(f"{path} line {err.lineno} column {err.colno}", "", "",
                          message=f"not valid JSON ({err.msg})") from None
    rows = [data] if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise OptionError(path, type(data).__name__, "a list of objects (one per plan) "
                          "or one object")
    header: list[str] = []
    records = []
    for i, row in enumerate(rows, 1):
        where = f"{path} row {i}"
        if not isinstance(row, dict):
            raise OptionError(where, row, "an object of plan fields")
        if i == 1:
            header = list(row)
        elif set(row) != set(header):
            missing = [k for k in header if k not in row]
            extra = [k for k in row if k not in header]
            raise OptionError(where, sorted(row), "", message=(
                "keys differ from row 1's ("
                + "; ".join(p for p in (f"missing {', '.join(missing)}" if missing else "",
                                        f"extra {', '.join(extra)}" if extra else "") if p)
                + "): every row needs the same plan fields"))
        records.append((where, [row[k] for k in header]))
    return header, records


def _check_header(path: str, header: list[str]) -> None:
    seen = set()
    for name in header:
        if name not in COLUMNS:
            raise OptionError(f"{path}, column {name!r}", name, "", message=(
                "unknown column: the allowed columns are " + ", ".join(S.PLAN_NAMES)))
        if name in seen:
            raise OptionError(f"{path}, column {name!r}", name, "", message="given twice")
        seen.add(name)


def read_plans(path: str) -> dict[str, list]:
    """The plans of a CSV or JSON file as one list of typed values per column given."""
    suffix = Path(path).suffix.lower()
    if suffix not in IN_SUFFIXES:
        raise OptionError("plans", path, "a .csv or .json file")
    text = _read_text(Path(path))
    reader = _json_records if suffix == ".json" else _csv_records
    header, records = reader(path, text)
    _check_header(path, header)
    if not records:
        raise OptionError(path, "", "", message="holds no plans: give at least one")
    cols = {name: [parse_cell(COLUMNS[name], rec[j], where) for where, rec in records]
            for j, name in enumerate(header)}
    return complete(cols, [where for where, _ in records])


def complete(cols: dict[str, list], where: list[str]) -> dict[str, list]:
    """Columns the file left out take the command line's defaults; a decode plan needs
    generated tokens (as for Plan)."""
    n = len(where)
    out = dict(cols)
    out.setdefault("global_batch", [GLOBAL_BATCH] * n)
    out.setdefault("seq_len", [SEQ_LEN] * n)
    modes = out.get("mode", [Plan().mode] * n)
    if "gen_tokens" not in out:
        out["gen_tokens"] = [GEN_TOKENS if m == "decode" else 0 for m in modes]
    for i, (m, g) in enumerate(zip(modes, out["gen_tokens"])):
        if m == "decode" and g < 1:
            raise OptionError(f"{where[i]}, column gen_tokens", g, ">= 1 in decode mode")
    return out


# --------------------------------------------------------------------------- outputs


NOT_FINITE = "NOT_FINITE"  # outputs overflowed float64: no number to report


def result_rows(cols: dict[str, list], res) -> list[dict]:
    """One dict per plan: its columns, every output, feasibility and violations. An output
    that overflowed float64 (specs outside any real GPU) is None, never NaN, and makes the
    plan infeasible with reason NOT_FINITE."""
    rows = []
    for i in range(len(res)):
        row = {name: values[i] for name, values in cols.items()}
        outputs = {name: float(res.columns[name][i]) for name in S.OUTPUT_NAMES}
        finite = all(math.isfinite(v) for v in outputs.values())
        row.update({k: v if math.isfinite(v) else None for k, v in outputs.items()})
        row["feasible"] = bool(res.codes[i] == 0) and finite
        row["violations"] = res.violations(i) + ([] if finite else [NOT_FINITE])
        rows.append(row)
    return rows


def write_rows(path: Path, rows: list[dict]) -> None:
    """``rows`` in the format ``path``'s suffix names."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        path.write_text(json.dumps(finite_json(rows), indent=2, allow_nan=False) + "\n")
        return
    flat = [{**r, "violations": ";".join(r["violations"])} for r in rows]
    if suffix == ".csv":
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(flat[0]))
            w.writeheader()
            w.writerows(flat)
    else:
        import pandas as pd

        pd.DataFrame(flat).to_parquet(path, index=False)


# --------------------------------------------------------------------------- command


def add_parser(sub) -> argparse.ArgumentParser:
    p = subparser(sub, "evaluate", help="many plans from a CSV/JSON file, on a fast backend",
                  description=__doc__.split("\n\n")[0])
    p.add_argument("--model", "-m", required=True,
                   help="model preset (see `pyengine presets`) or a .toml/.json file")
    p.add_argument("--hardware", "-H", required=True, help="hardware preset or a .toml/.json "
                   "file")
    p.add_argument("plans", help="CSV or JSON file with one column per plan field "
                   f"({', '.join(S.PLAN_NAMES)}); columns left out take the defaults "
                   f"(global_batch {GLOBAL_BATCH}, seq_len {SEQ_LEN}, otherwise "
                   "`pyengine explain`'s)")
    p.add_argument("--backend", default="auto", choices=("auto", *backends.REGISTRY),
                   help="where the plans are evaluated")
    p.add_argument("--out", metavar="FILE", help="write the results to this .json, .csv or "
                   ".parquet file (the suffix decides the format)")
    p.add_argument("--json", action="store_true",
                   help="print the results as JSON even when --out writes them")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from .engine import evaluate_batch

    out = check_output("--out", args.out, OUT_SUFFIXES) if args.out else None
    if out is not None and out.suffix.lower() == ".parquet":
        require("pyarrow", "--out FILE.parquet")
    model = presets.model(args.model)
    hardware = presets.hardware(args.hardware)
    cols = read_plans(args.plans)
    res = evaluate_batch(model, hardware, cols, backend=args.backend)
    rows = result_rows(cols, res)
    if out is not None:
        write_rows(out, rows)
    if out is None or args.json:
        print(json.dumps(finite_json(rows), indent=2, allow_nan=False))
    else:
        feasible = sum(r["feasible"] for r in rows)
        print(f"wrote {len(rows)} rows to {out} ({feasible} feasible)")
    return 0
