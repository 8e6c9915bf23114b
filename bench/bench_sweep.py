"""Sweep benchmark: end-to-end sweep plans/s per backend, and Pareto filtering speed.

1. The standard space of ``pyengine bench`` (Llama 3 405B and Mixtral 8x22B training on
   up to 16,384 H100s, 10.5 million plans) swept end to end with the three default
   objectives (max tokens/s per GPU, min GPUs, min memory per GPU), top-20 and counts:
   plans/s per available backend (evaluation + constraints + front + top-k + sample).
   The reference backend (a Python loop) is timed on a slice.
2. Exact Pareto front of 10 million uniform random points with 3 objectives (and 2),
   CPU (Numba) and, where CuPy and a device exist, GPU: best of a few runs after a warm-up.

    python bench/bench_sweep.py            # writes bench/results/sweep-<cpu>-<n>t.json
    python bench/bench_sweep.py --quick    # a smaller run, nothing written

Like bench_engine.py it times the installed pyengine (``pip install .`` first), and it
does not replace a results file with a run that lacks one of the file's backends unless
--force.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

try:  # the installed package: this script's folder, not the repository, is on sys.path
    from pyengine import backends, presets
    from pyengine.bench import (
        append_history,
        machine_info,
        refuse_to_overwrite,
        standard_spaces,
    )
    from pyengine.pareto import pareto_front
    from pyengine.sweep import sweep
except ImportError as exc:
    sys.exit(f"bench_sweep.py: pyengine is not installed ({exc}): run `pip install .` in "
             f"{ROOT} first")

REFERENCE_PLANS = 20_000


def bench_sweeps(backend_names, plans: int | None, chunk_size: int | None,
                 repeats: int = 3) -> dict:
    out = {}
    workloads = standard_spaces()
    for name in backend_names:
        reason = backends.why_unavailable(name)
        if reason is not None:
            out[name] = {"unavailable": reason}
            continue
        per, total_plans, total_s = {}, 0, 0.0
        for w in workloads:
            model, hw = presets.model(w.model), presets.hardware(w.hardware)
            n = REFERENCE_PLANS if name == "reference" else (plans or len(w.space))
            n = min(n, len(w.space))
            sweep(model, hw, w.space, backend=name, stop=min(n, 4096))  # compile, warm up
            # best of `repeats` (a shared machine: timings vary by tens of %); every run kept
            runs = [sweep(model, hw, w.space, backend=name, stop=n, chunk_size=chunk_size)
                    for _ in range(1 if name == "reference" else repeats)]
            r = min(runs, key=lambda x: x.elapsed_s)
            per[w.name] = {"plans": n, "seconds": r.elapsed_s, "plans_per_s": r.plans_per_s,
                           "runs_plans_per_s": [x.plans_per_s for x in runs],
                           "feasible": r.counts["feasible"], "front": len(r.front),
                           "best_tokens_per_s_per_gpu": float(r.top["tokens_per_s_per_gpu"]
                                                              .iloc[0]) if len(r.top) else None}
            total_plans += n
            total_s += r.elapsed_s
            print(f"  sweep {name:<9} {w.name:<22} {n:>11,} plans {r.elapsed_s:7.2f} s "
                  f"{r.plans_per_s:>13,.0f} plans/s  feasible {r.counts['feasible']:,}  "
                  f"front {len(r.front)}", flush=True)
        out[name] = {"plans": total_plans, "seconds": total_s,
                     "plans_per_s": total_plans / total_s, "workloads": per}
    return out


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_pareto(n: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    out = {}
    for k in (3, 2):
        x = rng.random((n, k))
        senses = ["max"] + ["min"] * (k - 1)
        pareto_front(x[:10_000], senses)  # load the compiled kernels
        t0 = time.perf_counter()
        front = pareto_front(x, senses)
        first = time.perf_counter() - t0
        best = _best_of(lambda x=x, senses=senses: pareto_front(x, senses), repeats)
        entry = {"points": n, "objectives": k, "front": int(front.size),
                 "cpu_seconds_first": first, "cpu_seconds_best": best}
        print(f"  pareto {k}-D, {n:,} uniform random points: front {front.size}, "
              f"CPU {best:.3f} s (first call {first:.3f} s)", flush=True)
        if backends.why_unavailable("cupy") is None:
            import cupy

            xg = cupy.asarray(x)

            def gpu(xg=xg, senses=senses):
                pareto_front(xg, senses)
                cupy.cuda.Device().synchronize()

            gpu()
            entry["gpu_seconds_best"] = _best_of(gpu, repeats)
            same = np.array_equal(pareto_front(xg, senses).get(), front)
            entry["gpu_equals_cpu"] = bool(same)
            print(f"    GPU {entry['gpu_seconds_best']:.4f} s, same front: {same}", flush=True)
        out[f"{k}d"] = entry
    return out


def result_path(info: dict) -> Path:
    cpu = re.sub(r"[^a-z0-9]+", "-", str(info.get("cpu", "cpu")).lower()).strip("-") or "cpu"
    threads = info.get("numba_threads") or info.get("cpu_count")
    gpu = info.get("gpu")
    tag = f"{cpu}-{threads}t" + ("-" + re.sub(r"[^a-z0-9]+", "-", gpu.lower()).strip("-")
                                 if gpu else "")
    return ROOT / "bench" / "results" / f"sweep-{tag}.json"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", action="append", choices=tuple(backends.REGISTRY),
                    help="only this backend (repeatable)")
    ap.add_argument("--plans", type=int, help="plans per workload [whole standard space]")
    ap.add_argument("--chunk-size", type=int)
    ap.add_argument("--points", type=int, default=10_000_000, help="Pareto benchmark points")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small run; write nothing")
    ap.add_argument("--out", help="result file [bench/results/sweep-<cpu>-<threads>t.json]")
    ap.add_argument("--force", action="store_true",
                    help="overwrite a results file even if this run lacks one of its backends")
    args = ap.parse_args(argv)
    if args.quick:
        args.plans, args.points, args.repeats = 200_000, 1_000_000, 1
    info = machine_info()
    names = args.backend or [n for n in backends.AUTO_ORDER]
    path = Path(args.out) if args.out else result_path(info)
    if not args.quick and not args.force:
        why = refuse_to_overwrite(path, {n for n in names if backends.why_unavailable(n) is None})
        if why:
            print(f"bench_sweep.py: not run: {why}", file=sys.stderr)
            return 2
    print(f"pyengine sweep benchmark on {info['cpu']} ({info['cpu_count']} CPUs, "
          f"numba {info.get('numba_threads')} threads)" + (f", GPU {info['gpu']}"
                                                          if info.get("gpu") else ""))
    load_before = os.getloadavg()
    result = {
        "machine": info,
        "libraries": _versions(),
        "sweep": {"space": {w.name: len(w.space) for w in standard_spaces()},
                  "objectives": ["tokens_per_s_per_gpu:max", "n_gpus:min",
                                 "mem_total_bytes:min"],
                  "backends": bench_sweeps(names, args.plans, args.chunk_size,
                                           args.repeats)},
        "pareto": bench_pareto(args.points, args.repeats),
        # other processes on the machine skew timings: the 1-minute load before and after
        "load_average_1min": [load_before[0], os.getloadavg()[0]],
    }
    if not args.quick:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1) + "\n")
        summary = {name: round(r["plans_per_s"]) for name, r in
                   result["sweep"]["backends"].items() if "plans_per_s" in r}
        summary["pareto_3d_10M_s"] = result["pareto"].get("3d", {}).get("cpu_seconds_best")
        summary["load_average_1min"] = result["load_average_1min"]
        print(f"appended to {append_history(path, summary)}")
        print(f"wrote {path}")
    return 0


def _versions() -> dict:
    out = {}
    for mod in ("numpy", "numba", "pandas", "pyarrow", "dask", "distributed", "cupy"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - optional
            out[mod] = None
    out["python"] = sys.version.split()[0]
    return out


if __name__ == "__main__":
    sys.exit(main())
