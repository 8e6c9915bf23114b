"""`pyengine bench`: plans evaluated per second per backend on the standard space.

The standard space (documented in bench/README.md) is two training sweeps on up to
16,384 H100s, the kind of space a planner explores before booking a cluster:

- Llama 3 405B: tp 1-8, pp 1-32, dp 1-16384, cp 1-8, vpp 1/2/4, micro-batch 1/2/4,
  global batch 256-4096, sequence 2048-32768, recompute none/selective/full, ZeRO 0-3
  (3,888,000 plans).
- Mixtral 8x22B: tp 1-8, pp 1-8, dp 1-16384, ep 1-8, expert TP = tp or 1, cp 1/2,
  vpp 1/2, micro-batch 1/2/4, global batch 1024-8192, sequence 4096/8192, recompute x3,
  ZeRO 0-3, capacity factor 1.0/1.25/1.5 (6,635,520 plans).

10,523,520 plans in all (powers of two for every degree),

with at most 16,384 GPUs enforced inside the kernel (Limits.gpus_max). Each backend
evaluates the same plans; "evaluate" writes every output column into a reused buffer,
"count" only counts feasible plans and violations. The reference backend, ~10^4 plans/s,
is timed on a sample.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import backends, presets
from . import schema as S
from .engine import count_space, evaluate_space
from .space import Space
from .specs import Limits, Plan

POW2 = [2**i for i in range(15)]  # 1 .. 16384
GPUS_MAX = 16384


@dataclass
class Workload:
    name: str
    model: str
    hardware: str
    space: Space


def standard_spaces() -> list[Workload]:
    limits = Limits(gpus_max=GPUS_MAX)
    llama = Space(
        base=Plan(mode="train", dtype="bf16"), limits=limits,
        tp=[1, 2, 4, 8], pp=[1, 2, 4, 8, 16, 32], dp=POW2, cp=[1, 2, 4, 8], vpp=[1, 2, 4],
        micro_batch=[1, 2, 4], global_batch=[256, 512, 1024, 2048, 4096],
        seq_len=[2048, 4096, 8192, 16384, 32768], recompute=["none", "selective", "full"],
        zero=[0, 1, 2, 3])
    mixtral = Space(
        base=Plan(mode="train", dtype="bf16"), limits=limits,
        tp=[1, 2, 4, 8], pp=[1, 2, 4, 8], dp=POW2, ep=[1, 2, 4, 8], cp=[1, 2], vpp=[1, 2],
        micro_batch=[1, 2, 4], global_batch=[1024, 2048, 4096, 8192], seq_len=[4096, 8192],
        recompute=["none", "selective", "full"], zero=[0, 1, 2, 3],
        capacity_factor=[1.0, 1.25, 1.5], etp=[0, 1])
    return [Workload("llama3-405b train", "llama3-405b", "h100-sxm", llama),
            Workload("mixtral-8x22b train", "mixtral-8x22b", "h100-sxm", mixtral)]


def machine_info() -> dict:
    info = {"hostname": platform.node(), "platform": platform.platform(),
            "python": platform.python_version(), "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(), "numpy": np.__version__}
    for mod in ("numba", "cupy", "pybind11"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - optional packages
            info[mod] = None
    try:
        from . import _native

        info["native_threads"] = int(_native.max_threads())
    except Exception:  # noqa: BLE001
        info["native_threads"] = None
    try:
        import numba

        info["numba_threads"] = numba.get_num_threads()
    except Exception:  # noqa: BLE001
        pass
    try:
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        info["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    except Exception:  # noqa: BLE001
        info["gpu"] = None
    return info


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def time_backend(name: str, workloads: list[Workload], plans: int, chunk: int,
                 mode: str) -> dict:
    """Plans/s of one backend: `plans` plans split evenly over the workloads.

    Output blocks are allocated once and reused for every chunk, as a sweep does."""
    total_plans = 0
    total_s = 0.0
    per = {}
    out = codes = None
    xp = np
    # at least one plan per workload: a rate of zero plans would read as "no speed"
    per_workload = max(1, plans // len(workloads))
    # one block size that every workload fills, so the blocks are reused, never reallocated
    chunk = max(1, min([chunk] + [min(per_workload, len(w.space)) for w in workloads]))
    if mode == "evaluate":
        if name == "cupy":
            import cupy as xp  # noqa: N813
        # flat buffers: the first n * N_OUTPUTS values are a C-contiguous [N_OUTPUTS, n]
        # block, so a last, shorter chunk reuses them too (no fresh pages to fault in)
        out = xp.zeros(S.N_OUTPUTS * chunk)  # zeros: first touch outside the timed region
        codes = xp.zeros(chunk, dtype=np.int64)
    for w in workloads:
        model, hw = presets.model(w.model), presets.hardware(w.hardware)
        n = min(per_workload, len(w.space))
        if plans >= sum(len(x.space) for x in workloads):
            n = len(w.space)  # the whole standard space
        # warm-up: compile (numba), build kernels (cupy), first-touch buffers
        warm = min(n, 4096)
        evaluate_space(model, hw, w.space, 0, warm, backend=name)
        count_space(model, hw, w.space, 0, warm, backend=name)
        feasible = 0
        t0 = time.perf_counter()
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            if mode == "evaluate":
                size = stop - start
                res = evaluate_space(model, hw, w.space, start, stop, backend=name,
                                     out=out[:S.N_OUTPUTS * size].reshape(S.N_OUTPUTS, size),
                                     codes=codes[:size])
                feasible += int(xp.count_nonzero(res.codes == 0))
            else:
                feasible += count_space(model, hw, w.space, start, stop, backend=name)[0]
        if name == "cupy":
            import cupy

            cupy.cuda.Device().synchronize()
        dt = time.perf_counter() - t0
        per[w.name] = {"plans": n, "seconds": dt, "plans_per_s": n / dt, "feasible": feasible}
        total_plans += n
        total_s += dt
    return {"plans": total_plans, "seconds": total_s, "plans_per_s": total_plans / total_s,
            "workloads": per}


BATCH_PLANS = 2_000_000  # plans of the Mixtral workload timed as shuffled rows


def time_batch(name: str, plans: int = BATCH_PLANS, repeat: int = 5) -> dict:
    """A planner's own arrays: the same `plans` plans of the Mixtral workload through
    ``evaluate_space`` in the space's order and through ``evaluate_batch`` as rows in a
    random order, back to back in one run (best of `repeat` each, buffers reused).
    The ratio is what matters on a shared machine; each call keeps every run."""
    from .engine import evaluate_batch

    w = standard_spaces()[1]
    model, hw = presets.model(w.model), presets.hardware(w.hardware)
    n = min(plans, len(w.space))
    start = (len(w.space) - n) // 2
    rows = w.space.decode(np.arange(start, start + n))
    rows = np.ascontiguousarray(rows[np.random.default_rng(0).permutation(n)])
    xp = np
    if name == "cupy":
        import cupy as xp  # noqa: N813

        rows = xp.asarray(rows)
    out = xp.zeros((S.N_OUTPUTS, n))
    codes = xp.zeros(n, dtype=np.int64)

    def sync():
        if name == "cupy":
            xp.cuda.Device().synchronize()

    # warm-up: compile (numba), build kernels (cupy)
    evaluate_space(model, hw, w.space, start, start + 4096, backend=name)
    evaluate_batch(model, hw, rows[:4096], backend=name, limits=w.space.limits)
    space_runs, batch_runs = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        evaluate_space(model, hw, w.space, start, start + n, backend=name, out=out, codes=codes)
        sync()
        space_runs.append(n / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        evaluate_batch(model, hw, rows, backend=name, out=out, limits=w.space.limits)
        sync()
        batch_runs.append(n / (time.perf_counter() - t0))
    return {"workload": w.name, "plans": n, "space_in_order_plans_per_s": max(space_runs),
            "batch_shuffled_plans_per_s": max(batch_runs),
            "batch_over_space": max(batch_runs) / max(space_runs),
            "runs_space_plans_per_s": space_runs, "runs_batch_plans_per_s": batch_runs}


def append_history(path: Path, summary: dict) -> Path:
    """Add one line (UTC time, commit, the run's headline numbers) to ``<path>.history.jsonl``
    next to a results file: on a shared machine one run is a sample, the history is the
    range."""
    import datetime
    import subprocess

    line = {"utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    try:
        def git(*args):
            return subprocess.run(["git", *args], capture_output=True, text=True,
                                  cwd=path.parent, timeout=10).stdout.strip()

        commit = git("rev-parse", "--short", "HEAD") or None
        # uncommitted changes to the code (not to the results themselves) make it "+dirty"
        if commit and git("status", "--porcelain", "--", "../../pyengine", "../../csrc"):
            commit += "+dirty"
        line["commit"] = commit
    except (OSError, subprocess.SubprocessError):
        line["commit"] = None
    line.update(summary)
    history = path.with_name(path.stem + ".history.jsonl")
    with history.open("a") as fh:
        fh.write(json.dumps(line) + "\n")
    return history


def headline(result: dict) -> dict:
    """plans/s per backend and mode of a ``run()`` result, and the load average."""
    out = {"load_average": result.get("load_average")}
    for name, r in result["backends"].items():
        if "unavailable" not in r:
            out[name] = {mode: round(v["plans_per_s"]) for mode, v in r.items()
                         if "plans_per_s" in v}
            if "batch" in r:
                out[name]["batch_shuffled"] = round(r["batch"]["batch_shuffled_plans_per_s"])
                out[name]["batch_over_space"] = round(r["batch"]["batch_over_space"], 3)
    return out


def run(backend_names=None, plans: int | None = None, reference_plans: int = 20_000,
        chunk: int = 1 << 20, modes=("evaluate", "count"), repeat: int = 5,
        batch_plans: int = BATCH_PLANS) -> dict:
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    workloads = standard_spaces()
    names = backend_names or backends.available()
    result = {"machine": machine_info(), "space_plans": {w.name: len(w.space) for w in workloads},
              "gpus_max": GPUS_MAX, "repeat": repeat, "load_average": _loadavg(),
              "backends": {}}
    for name in names:
        reason = backends.why_unavailable(name)
        if reason is not None:
            result["backends"][name] = {"unavailable": reason}
            continue
        n = reference_plans if name == "reference" else (plans or sum(
            len(w.space) for w in workloads))
        result["backends"][name] = {}
        for mode in modes:
            # best of `repeat` runs (this machine is shared: timings vary by tens of %);
            # every run's rate is kept in the result
            runs = [time_backend(name, workloads, n, min(chunk, n), mode)
                    for _ in range(1 if name == "reference" else repeat)]
            best = max(runs, key=lambda r: r["plans_per_s"])
            best["runs_plans_per_s"] = [r["plans_per_s"] for r in runs]
            result["backends"][name][mode] = best
        if name != "reference" and batch_plans:
            result["backends"][name]["batch"] = time_batch(name, batch_plans, repeat)
    ref = result["backends"].get("reference", {}).get("evaluate", {}).get("plans_per_s")
    if ref:
        for r in result["backends"].values():
            for mode in modes:
                if mode in r:
                    r[mode]["speedup_vs_reference"] = r[mode]["plans_per_s"] / ref
    return result


def render(result: dict) -> str:
    m = result["machine"]
    lines = [f"pyengine bench on {m['cpu']} ({m['cpu_count']} CPUs)"
             + (f", GPU {m['gpu']}" if m.get("gpu") else ""),
             "standard space: " + ", ".join(f"{k} {v:,} plans"
                                            for k, v in result["space_plans"].items()),
             f"{'backend':<10} {'evaluate plans/s':>18} {'count plans/s':>16} {'speed-up':>10}"
             f" {'shuffled rows plans/s':>22} {'vs in order':>12}"]
    for name, r in result["backends"].items():
        if "unavailable" in r:
            lines.append(f"{name:<10} unavailable: {r['unavailable']}")
            continue
        ev = r.get("evaluate", {})
        co = r.get("count", {})
        speedup = ev.get("speedup_vs_reference")
        ba = r.get("batch", {})
        lines.append(f"{name:<10} {ev.get('plans_per_s', 0):>18,.0f} "
                     f"{co.get('plans_per_s', 0):>16,.0f} "
                     + (f"{speedup:>9,.0f}x" if speedup else f"{'-':>10}")
                     + (f" {ba['batch_shuffled_plans_per_s']:>22,.0f} "
                        f"{ba['batch_over_space']:>11.2f}x" if ba else ""))
    return "\n".join(lines)


def results_backends(result: dict) -> set[str]:
    """Backends with numbers in a results file (``pyengine bench`` or bench_sweep.py's)."""
    table = result.get("backends") or result.get("sweep", {}).get("backends") or {}
    return {name for name, r in table.items() if isinstance(r, dict) and "unavailable" not in r}


def refuse_to_overwrite(path: Path, will_run: set[str]) -> str | None:
    """Why writing a new result to ``path`` would lose numbers, or None when it would not.

    A results file holds one machine's numbers per backend; a run that lacks one of them
    (not built here, or left out with --backend) must not replace them with nothing."""
    if not path.exists():
        return None
    try:
        old = results_backends(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None
    lost = sorted(old - will_run)
    if not lost:
        return None
    why = "; ".join(f"{n}: {backends.why_unavailable(n) or 'not asked for'}"
                    for n in lost if n in backends.REGISTRY)
    return (f"{path} has results of {', '.join(lost)}, which this run would not measure"
            + (f" ({why})" if why else "") + ": build or ask for them, or pass --force "
            "to overwrite")


def add_parser(sub) -> None:
    from .cli_common import integer, subparser

    p = subparser(sub, "bench", help="plans/s per backend on the standard space",
                  description=__doc__.split("\n")[0])
    p.add_argument("--backend", action="append", choices=tuple(backends.REGISTRY),
                   help="only this backend (repeatable; default: every available one)")
    p.add_argument("--plans", type=integer(1, 1 << 40), default=None,
                   help="plans per fast backend, split over the two workloads "
                        "(default: the whole standard space, 10.5 million)")
    p.add_argument("--reference-plans", type=integer(1, 1 << 40), default=20_000,
                   help="plans the scalar reference evaluates")
    p.add_argument("--repeat", type=integer(1, 1000), default=5,
                   help="runs per backend; the best counts")
    p.add_argument("--batch-plans", type=integer(0, 1 << 40), default=BATCH_PLANS,
                   help="plans timed as shuffled rows through evaluate_batch against the same "
                        "plans through evaluate_space in order (0: skip)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--out", metavar="FILE.json", help="also write the JSON result to this file")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    from .cli_common import check_output

    out = check_output("--out", args.out, (".json",)) if args.out else None
    result = run(args.backend, plans=args.plans, reference_plans=args.reference_plans,
                 repeat=args.repeat, batch_plans=args.batch_plans)
    if out is not None:
        out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0
