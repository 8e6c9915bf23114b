"""Engine benchmark: plans evaluated per second per backend on the standard space.

The standard space (pyengine/bench.py, bench/README.md): Llama 3 405B and Mixtral 8x22B
training on up to 16,384 H100s, 10.5 million plans. Every available backend evaluates
all of them ("evaluate": every output column into a reused block; "count": feasibility
counts only); the reference (scalar Python) is timed on a 20,000-plan slice.

    python bench/bench_engine.py                 # writes bench/results/engine-<cpu>-<n>t.json
    python bench/bench_engine.py --backend cupy  # one backend (e.g. on a GPU machine)
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
sys.path.insert(0, str(ROOT))

from pyengine.bench import append_history, headline, render, run  # noqa: E402


def result_path(result: dict, prefix: str) -> Path:
    m = result["machine"]
    what = m.get("gpu") or m.get("cpu") or "machine"
    slug = re.sub(r"[^a-z0-9]+", "-", what.lower()).strip("-")
    threads = m.get("native_threads") or m.get("numba_threads") or m.get("cpu_count")
    return ROOT / "bench" / "results" / f"{prefix}-{slug}-{threads}t.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", action="append", help="only this backend (repeatable)")
    ap.add_argument("--plans", type=int, default=None, help="plans per fast backend")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    result = run(args.backend, plans=args.plans)
    print(render(result))
    if not args.no_write:
        path = result_path(result, "engine")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        history = append_history(path, headline(result))
        print(f"wrote {path.relative_to(ROOT)}, appended to {history.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
