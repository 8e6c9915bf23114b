"""Engine benchmark: plans evaluated per second per backend on the standard space.

The standard space (pyengine/bench.py, bench/README.md): Llama 3 405B and Mixtral 8x22B
training on up to 16,384 H100s, 10.5 million plans. Every available backend evaluates
all of them ("evaluate": every output column into a reused block; "count": feasibility
counts only); the reference (scalar Python) is timed on a 20,000-plan slice.

    python bench/bench_engine.py                 # writes bench/results/engine-<cpu>-<n>t.json
    python bench/bench_engine.py --backend cupy  # one backend (e.g. on a GPU machine)

It times the INSTALLED pyengine (``pip install .`` first), never the source tree next to
it, whose compiled extension may be missing or stale: a silent fallback would record
another backend's numbers. A results file is not replaced by a run that lacks a backend
the file has numbers for (not built here, or left out by --backend) unless --force.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

ROOT = Path(__file__).resolve().parent.parent

try:  # the installed package: this script's folder, not the repository, is on sys.path
    from pyengine import backends
    from pyengine.bench import (
        append_history,
        headline,
        machine_info,
        refuse_to_overwrite,
        render,
        run,
    )
except ImportError as exc:
    sys.exit(f"bench_engine.py: pyengine is not installed ({exc}): run `pip install .` in "
             f"{ROOT} first")


def result_path(result: dict, prefix: str) -> Path:
    m = result["machine"]
    what = m.get("gpu") or m.get("cpu") or "machine"
    slug = re.sub(r"[^a-z0-9]+", "-", what.lower()).strip("-")
    threads = m.get("native_threads") or m.get("numba_threads") or m.get("cpu_count")
    return ROOT / "bench" / "results" / f"{prefix}-{slug}-{threads}t.json"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", action="append", choices=tuple(backends.REGISTRY),
                    help="only this backend (repeatable)")
    ap.add_argument("--plans", type=int, default=None, help="plans per fast backend")
    ap.add_argument("--repeat", type=int, default=5, help="runs per backend; the best counts")
    ap.add_argument("--out", help="results file [bench/results/engine-<cpu>-<threads>t.json]")
    ap.add_argument("--batch-plans", type=int, default=2_000_000,
                    help="plans timed as shuffled rows (evaluate_batch) against the same plans "
                         "in order (evaluate_space); 0 skips")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--force", action="store_true",
                    help="overwrite a results file even if this run lacks one of its backends")
    args = ap.parse_args(argv)
    names = args.backend or backends.available()
    path = Path(args.out) if args.out else result_path({"machine": machine_info()}, "engine")
    if not args.no_write and not args.force:
        why = refuse_to_overwrite(path, {n for n in names if backends.why_unavailable(n) is None})
        if why:
            print(f"bench_engine.py: not run: {why}", file=sys.stderr)
            return 2
    result = run(names, plans=args.plans, repeat=args.repeat, batch_plans=args.batch_plans)
    print(render(result))
    if not args.no_write:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        history = append_history(path, headline(result))
        print(f"wrote {path}, appended to {history}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
