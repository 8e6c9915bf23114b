"""Instructions per plan of the CPU kernels, counted by valgrind (cachegrind).

Wall time on the shared development VMs swings by +-50% within minutes; instruction
counts do not. Each measurement runs one kernel call, single-threaded, under
``valgrind --tool=cachegrind`` twice, on N and 3N plans of the standard space's Mixtral
workload (or on shuffled rows of it), and reports (I(3N) - I(N)) / 2N: start-up,
imports and compilation cancel out.

    python bench/instructions.py                    # native: evaluate_space, count_space, rows
    python bench/instructions.py --plans 100000

Needs valgrind. Numba is not measured here (its JIT start-up under valgrind takes minutes).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

CHILD = r"""
import sys
import numpy as np
from pyengine import presets
from pyengine.bench import standard_spaces
from pyengine.engine import count_space, evaluate_batch, evaluate_space
kind, n = sys.argv[1], int(sys.argv[2])
w = standard_spaces()[1]
model, hw = presets.model(w.model), presets.hardware(w.hardware)
start = len(w.space) // 3
if kind == "evaluate":
    evaluate_space(model, hw, w.space, start, start + n, backend="native")
elif kind == "count":
    count_space(model, hw, w.space, start, start + n, backend="native")
else:
    rows = np.load(sys.argv[3])[:n]
    evaluate_batch(model, hw, rows, backend="native", limits=w.space.limits)
"""


def rows_file(n: int) -> str:
    """3n plans of the Mixtral workload, shuffled, saved for the child processes."""
    import numpy as np

    from pyengine import schema as S
    from pyengine.bench import standard_spaces

    w = standard_spaces()[1]
    start = len(w.space) // 3
    packed = w.space.packed
    rem = np.arange(start, start + 3 * n, dtype=np.int64)
    rows = np.empty((3 * n, S.N_PLAN))
    for c in range(S.N_PLAN - 1, -1, -1):  # the kernels' decoding, last column fastest
        length = int(packed.lengths[c])
        rows[:, c] = packed.values[packed.offsets[c] + rem % length]
        rem //= length
    rows = rows[np.random.default_rng(0).permutation(rows.shape[0])]
    path = os.path.join(tempfile.mkdtemp(), "rows.npy")
    np.save(path, np.ascontiguousarray(rows))
    return path


def instructions(kind: str, n: int, extra: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
        subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no",
                        f"--cachegrind-out-file={out}", sys.executable, "-c", CHILD, kind,
                        str(n), *extra], check=True, env=env, capture_output=True)
        with open(out) as fh:
            for line in fh:
                if line.startswith("summary:"):
                    return int(re.findall(r"\d+", line)[0])
    raise RuntimeError("cachegrind wrote no summary")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plans", type=int, default=50_000, help="N (the runs use N and 3N)")
    ap.add_argument("--kind", action="append", choices=("evaluate", "count", "rows"),
                    help="what to measure (default: all three)")
    args = ap.parse_args(argv)
    n = args.plans
    extra: list[str] = []
    for kind in args.kind or ("evaluate", "count", "rows"):
        if kind == "rows" and not extra:
            extra = [rows_file(n)]
        per_plan = (instructions(kind, 3 * n, extra) - instructions(kind, n, extra)) / (2 * n)
        print(f"native {kind:<9} {per_plan:8.1f} instructions per plan")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
