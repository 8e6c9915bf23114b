"""A digest of every output and feasibility code of the cost model on fixed inputs.

A change that should alter nothing but the shape of the code (a refactoring of
``reference.py`` and its C++ twin) must leave every bit of every output unchanged, on
every backend. This tool evaluates two fixed sets of plans and hashes the results:

- ``bench``: windows of the benchmark's standard space (``pyengine.bench``), through
  ``evaluate_space`` (consecutive plans: the space kernels' stage reuse is exercised)
  and the same plans through ``evaluate_batch`` in a shuffled order;
- ``random``: models, hardware, limits and plan rows drawn once by the Hypothesis
  strategies of ``tests/strategies.py`` from a fixed seed, stored in
  ``tests/data/digest_cases.json`` (stored, not regenerated, so that another Hypothesis
  version cannot change them).

    python tools/digest.py                 # compare every available backend with the record
    python tools/digest.py --record        # record the reference's digest (after a model change)
    python tools/digest.py --draw-cases    # draw the random cases again (needs hypothesis)

The record is ``tests/data/digest.json``; ``tests/test_digest.py`` runs the comparison.
A deliberate change of the model is recorded again, in the same commit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
CASES = DATA / "digest_cases.json"
RECORD = DATA / "digest.json"
WINDOW = 1500  # plans per bench window
WINDOWS = 3  # windows per bench workload


def _hash(codes, block) -> str:
    codes = np.ascontiguousarray(np.asarray(codes), dtype=np.int64)
    block = np.ascontiguousarray(np.asarray(block), dtype=np.float64)
    return hashlib.sha256(codes.tobytes() + block.tobytes()).hexdigest()


def _host(arr):
    return arr.get() if hasattr(arr, "get") else arr


def bench_windows():
    """(label, model, hardware, space, start) for the bench windows, fixed positions."""
    from pyengine import presets
    from pyengine.bench import standard_spaces

    for w in standard_spaces():
        n = len(w.space)
        for i in range(WINDOWS):
            start = (n - WINDOW) * (2 * i + 1) // (2 * WINDOWS)
            yield (f"bench {w.model} @{start}", presets.model(w.model),
                   presets.hardware(w.hardware), w.space, start)


def random_cases():
    """(label, model, hardware, limits, plans) from the stored Hypothesis draws."""
    from pyengine.specs import Hardware, Limits, Model

    for i, case in enumerate(json.loads(CASES.read_text())):
        plans = {k: np.asarray(v, dtype=np.float64) for k, v in case["plans"].items()}
        yield (f"random {i}", Model.from_dict(case["model"]), Hardware.from_dict(case["hardware"]),
               Limits.from_dict(case["limits"]), plans)


def digests(backend: str) -> dict[str, str]:
    """label -> sha256 of (codes, outputs) for every case, on `backend`."""
    from pyengine import schema as S
    from pyengine.engine import evaluate_batch, evaluate_space

    out: dict[str, str] = {}
    for label, model, hw, space, start in bench_windows():
        res = evaluate_space(model, hw, space, start, start + WINDOW, backend=backend)
        out[label + " space"] = _hash(_host(res.codes), _host(res.block))
        # the same plans as rows, shuffled: the row walkers must give the same bits
        rows = _space_rows(space, start, WINDOW, S)
        order = np.random.default_rng(start).permutation(WINDOW)
        res = evaluate_batch(model, hw, np.ascontiguousarray(rows[order]), backend=backend,
                             limits=space.limits)
        back = np.empty_like(order)
        back[order] = np.arange(WINDOW)
        out[label + " rows"] = _hash(_host(res.codes)[back], _host(res.block)[:, back])
    for label, model, hw, limits, plans in random_cases():
        res = evaluate_batch(model, hw, plans, backend=backend, limits=limits)
        out[label] = _hash(_host(res.codes), _host(res.block))
    return out


def _space_rows(space, start: int, count: int, S) -> np.ndarray:
    """Plans [start, start + count) of a space as kernel rows (the kernels' decoding)."""
    packed = space.packed
    rows = np.empty((count, S.N_PLAN))
    for j in range(count):
        rem = start + j
        for c in range(S.N_PLAN - 1, -1, -1):
            n = int(packed.lengths[c])
            rows[j, c] = packed.values[packed.offsets[c] + rem % n]
            rem //= n
    return rows


def draw_cases(n_cases: int = 60, seed: int = 20261201) -> list[dict]:
    """Draw models, hardware, limits and plan rows with the test strategies (fixed seed)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed
    from hypothesis import strategies as st
    from strategies import hardware, limits, models, plan_rows

    from pyengine import schema as S

    drawn: list[dict] = []

    @hseed(seed)
    @settings(max_examples=n_cases, derandomize=False, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(models(), hardware(), limits(), plan_rows(1, 48), st.data())
    def collect(model, hw, lim, rows, data):
        if len(drawn) < n_cases:
            drawn.append({
                "model": model.to_dict(), "hardware": hw.to_dict(), "limits": lim.to_dict(),
                "plans": {name: rows[:, i].tolist() for i, name in enumerate(S.PLAN_NAMES)},
            })

    collect()
    return drawn


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--record", action="store_true", help="record the reference's digest")
    ap.add_argument("--draw-cases", action="store_true", help="draw the random cases again")
    ap.add_argument("--backend", action="append", help="backends to compare (default: all)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from pyengine import backends

    if args.draw_cases:
        DATA.mkdir(parents=True, exist_ok=True)
        CASES.write_text(json.dumps(draw_cases(), indent=None) + "\n")
        print(f"wrote {CASES}")
    if args.record:
        RECORD.write_text(json.dumps(digests("reference"), indent=1, sort_keys=True) + "\n")
        print(f"wrote {RECORD}")
        return 0
    want = json.loads(RECORD.read_text())
    names = args.backend or [n for n in backends.REGISTRY if backends.why_unavailable(n) is None]
    bad = 0
    for name in names:
        got = digests(name)
        diff = sorted(k for k in want if got.get(k) != want[k])
        print(f"{name}: {len(want) - len(diff)}/{len(want)} cases equal the record"
              + (f"; differ: {', '.join(diff[:5])}" if diff else ""))
        bad += bool(diff)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
