"""Plot a sweep's Pareto front: tokens/s per GPU against GPU count and memory per GPU.

Two panels share the y axis (throughput per GPU); a uniform sample of feasible plans is
drawn in grey behind the front. Uses matplotlib's object API with the Agg canvas, so it
needs no display and touches no global pyplot state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

GIB = float(1 << 30)


def plot_front(result, path=None, title: str | None = None, dpi: int = 130):
    """Draw ``result`` (a :class:`~pyengine.sweep.SweepResult`); save to ``path`` if given.

    Returns the matplotlib Figure.
    """
    from .optional import require

    require("matplotlib", "plotting a sweep")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax_gpu, ax_mem = fig.subplots(1, 2, sharey=True)
    sample, front = result.sample, result.front
    y = "tokens_per_s_per_gpu"
    panels = ((ax_gpu, "n_gpus", 1.0, "GPUs (world size)"),
              (ax_mem, "mem_total_bytes", GIB, "memory per GPU (GiB, fullest stage)"))
    for ax, xcol, scale, xlabel in panels:
        if len(sample):
            ax.scatter(sample[xcol] / scale, sample[y], s=6, c="0.72", lw=0, alpha=0.6,
                       label=f"feasible plans (sample of {len(sample)})", rasterized=True)
        if len(front):
            fx = front[xcol].to_numpy() / scale
            fy = front[y].to_numpy()
            ax.scatter(fx, fy, s=26, c="tab:red", edgecolors="k", linewidths=0.4, zorder=3,
                       label=f"Pareto front ({len(front)} plans)")
            # the staircase of the best throughput reachable within a budget of x
            o = np.argsort(fx, kind="stable")
            stair = np.maximum.accumulate(fy[o])
            ax.step(fx[o], stair, where="post", c="tab:red", lw=1.0, alpha=0.7, zorder=2)
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
    if len(sample) and (sample["n_gpus"].max() / max(sample["n_gpus"].min(), 1) > 16):
        ax_gpu.set_xscale("log", base=2)
    ax_gpu.set_ylabel("tokens/s per GPU")
    ax_mem.axvline(result.hardware.hbm_capacity_bytes * result.limits.mem_fraction / GIB,
                   c="0.3", ls="--", lw=0.8, label="usable HBM")
    ax_gpu.legend(loc="best", fontsize=8)
    ax_mem.legend(loc="best", fontsize=8)
    objectives = ", ".join(f"{s} {c}" for c, s in result.objectives)
    fig.suptitle(title or f"{result.model.name} on {result.hardware.name}: "
                 f"{result.counts['feasible']:,} of {result.counts['evaluated']:,} plans "
                 f"feasible; front of {objectives}", fontsize=10)
    if path is not None:
        fig.savefig(Path(path), dpi=dpi)
    return fig
