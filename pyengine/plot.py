"""Plot a sweep's Pareto front on the axes of its objectives.

The first objective is the y axis of every panel; each further objective is the x axis of
one panel (two objectives: one panel; the training default, tokens/s per GPU against GPU
count and memory per GPU: two panels sharing y; the serving default, tokens/s per GPU
against tokens/s per user: one panel). A sweep with one objective draws it against the
GPU count. The front is drawn as points and a staircase (the best y reachable at a given
x), a uniform sample of feasible plans in grey behind it. Bytes are shown in GiB, seconds
in ms. :func:`plot_layouts` draws serving fronts of several layouts (aggregated and
disaggregated prefill/decode) on one panel, each in its own colour and marker. Uses
matplotlib's object API with the Agg canvas, so it needs no display and
touches no global pyplot state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import schema as S

GIB = float(1 << 30)
# (label, scale: values are divided by it) for the columns people plot most
AXES = {
    "n_gpus": ("GPUs (world size)", 1.0),
    "mem_total_bytes": ("memory per GPU (GiB, fullest stage)", GIB),
    "tokens_per_s_per_gpu": ("tokens/s per GPU", 1.0),
    "tokens_per_s": ("tokens/s (all GPUs)", 1.0),
    "tokens_per_s_per_user": ("tokens/s per user (1 / inter-token latency)", 1.0),
    "tpot_s": ("time per output token, inter-token latency (ms)", 1e-3),
    "ttft_s": ("time to first token (ms)", 1e-3),
    "time_step_s": ("step time (ms)", 1e-3),
    "mfu": ("MFU (%)", 0.01),
    "dropped_fraction": ("dropped token-slots (%)", 0.01),
}


def axis_of(column: str) -> tuple[str, float]:
    """(label, scale) of a column on a plot axis: GiB for bytes, ms for seconds."""
    if column in AXES:
        return AXES[column]
    from .sweep import DERIVED

    cols = {c.name: c for c in S.OUTPUTS}
    cols.update(DERIVED)
    col = cols.get(column)
    unit = col.unit if col is not None else ""
    name = column.replace("_", " ")
    if unit == "B":
        return f"{name} (GiB)", GIB
    if unit == "s":
        return f"{name} (ms)", 1e-3
    return (f"{name} ({unit})" if unit else name), 1.0


def panels_of(objectives) -> tuple[str, list[tuple[str, str | None]]]:
    """(y column, [(x column, its sense or None when x is no objective), ...])."""
    y = objectives[0][0]
    extra = [(c, s) for c, s in objectives[1:]]
    if not extra:  # one objective: against the GPU count (or throughput, for n_gpus)
        extra = [("tokens_per_s_per_gpu" if y == "n_gpus" else "n_gpus", None)]
    return y, extra


def staircase(x: np.ndarray, y: np.ndarray, x_sense: str, y_sense: str):
    """The best y reachable with an x at least as good, as step coordinates (sorted from
    the best x to the worst on the min side: ascending for min, descending for max)."""
    o = np.argsort(x if x_sense == "min" else -x, kind="stable")
    best = np.maximum.accumulate(y[o]) if y_sense == "max" else np.minimum.accumulate(y[o])
    return x[o], best


def _log_if_wide(ax, which: str, column: str, values: np.ndarray) -> None:
    """A GPU-count axis spanning more than 16x is drawn in powers of two."""
    v = values[np.isfinite(values) & (values > 0)]
    if column == "n_gpus" and v.size and v.max() / v.min() > 16:
        (ax.set_xscale if which == "x" else ax.set_yscale)("log", base=2)


def _bound_text(bound) -> str:
    op = "\u2265" if bound.kind == "min" else "\u2264"
    unit = {c.name: c.unit for c in S.OUTPUTS}.get(bound.column)
    if unit == "s":
        return f"{bound.column} {op} {bound.value * 1e3:g} ms"
    return f"{bound.column} {op} {bound.value:g}"


def default_title(result) -> str:
    """Model, hardware and counts; then the objectives of the front and its limits."""
    objectives = ", ".join(f"{s} {c}" for c, s in result.objectives)
    limits = [_bound_text(b) for b in result.bounds
              if not (b.column == "dropped_fraction" and b.value == 0)]  # the default
    return (f"{result.model.name} on {result.hardware.name}: {result.counts['feasible']:,} "
            f"of {result.counts['evaluated']:,} plans feasible\nPareto front of {objectives}"
            + (f"\nlimits: {', '.join(limits)}" if limits else ""))


def plot_front(result, path=None, title: str | None = None, dpi: int = 130):
    """Draw ``result`` (a :class:`~pyengine.sweep.SweepResult`) on the axes of its
    objectives; save to ``path`` if given. Returns the matplotlib Figure."""
    from .optional import require

    require("matplotlib", "plotting a sweep")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    senses = dict(result.objectives)
    ycol, panels = panels_of(result.objectives)
    ylabel, yscale = axis_of(ycol)
    n = len(panels)
    fig = Figure(figsize=(6.2 if n == 1 else 5.5 * n, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(1, n, sharey=True, squeeze=False)[0])
    sample, front = result.sample, result.front
    usable = result.hardware.hbm_capacity_bytes * result.limits.mem_fraction / GIB
    for ax, (xcol, xsense) in zip(axes, panels):
        xlabel, xscale = axis_of(xcol)
        if len(sample):
            ax.scatter(sample[xcol] / xscale, sample[ycol] / yscale, s=6, c="0.72", lw=0,
                       alpha=0.6, label=f"feasible plans (sample of {len(sample)})",
                       rasterized=True)
        if len(front):
            fx = front[xcol].to_numpy() / xscale
            fy = front[ycol].to_numpy() / yscale
            ax.scatter(fx, fy, s=26, c="tab:red", edgecolors="k", linewidths=0.4, zorder=3,
                       label=f"Pareto front ({len(front)} plans)")
            if xsense is not None:
                sx, sy = staircase(fx, fy, xsense, senses[ycol])
                ax.step(sx, sy, where="post", c="tab:red", lw=1.0, alpha=0.7, zorder=2)
        if xcol == "mem_total_bytes":
            ax.axvline(usable, c="0.3", ls="--", lw=0.8, label="usable HBM")
        if ycol == "mem_total_bytes" and ax is axes[0]:
            ax.axhline(usable, c="0.3", ls="--", lw=0.8, label="usable HBM")
        both = sample if len(sample) else front
        if len(both):
            _log_if_wide(ax, "x", xcol, both[xcol].to_numpy() / xscale)
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    both = sample if len(sample) else front
    if len(both):
        _log_if_wide(axes[0], "y", ycol, both[ycol].to_numpy() / yscale)
    axes[0].set_ylabel(ylabel)
    fig.suptitle(title or default_title(result), fontsize=10)
    if path is not None:
        fig.savefig(Path(path), dpi=dpi)
    return fig


# Serving layouts drawn side by side: (label, colour, marker) per layout column value.
LAYOUTS = {
    "agg": ("aggregated: prefill and decode on the same GPUs", "tab:red", "o"),
    "disagg": ("disaggregated: prefill and decode pools, KV sent between", "tab:blue", "^"),
}


def plot_layouts(fronts, path=None, title: str | None = None, sample=None, dpi: int = 130):
    """The serving fronts of several layouts on one panel: tokens/s per user (x) against
    tokens/s per GPU (y), each front as points and a staircase in its own colour and
    marker, with a legend. ``fronts``: {layout: DataFrame with tokens_per_s_per_user and
    tokens_per_s_per_gpu} (layouts "agg", "disagg", or any other name); ``sample``: feasible
    plans drawn in grey behind (the aggregated sweep's sample). Saved to ``path`` if given;
    returns the matplotlib Figure."""
    from .optional import require

    require("matplotlib", "plotting a sweep")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xcol, ycol = "tokens_per_s_per_user", "tokens_per_s_per_gpu"
    (xlabel, xscale), (ylabel, yscale) = axis_of(xcol), axis_of(ycol)
    fig = Figure(figsize=(6.8, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    if sample is not None and len(sample):
        ax.scatter(sample[xcol] / xscale, sample[ycol] / yscale, s=6, c="0.72", lw=0,
                   alpha=0.6, label=f"aggregated feasible plans (sample of {len(sample)})",
                   rasterized=True)
    extra = ["tab:green", "tab:purple", "tab:orange"]
    for k, (name, front) in enumerate(fronts.items()):
        label, colour, marker = LAYOUTS.get(name, (name, extra[k % len(extra)], "s"))
        if front is None or not len(front):
            ax.plot([], [], marker=marker, c=colour, ls="", label=f"{label} (none feasible)")
            continue
        fx = front[xcol].to_numpy(dtype=float) / xscale
        fy = front[ycol].to_numpy(dtype=float) / yscale
        ax.scatter(fx, fy, s=30, c=colour, marker=marker, edgecolors="k", linewidths=0.4,
                   zorder=3, label=f"{label} ({len(front)} on the front)")
        sx, sy = staircase(fx, fy, "max", "max")
        ax.step(sx, sy, where="post", c=colour, lw=1.0, alpha=0.7, zorder=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.suptitle(title or "serving front by layout: max tokens_per_s_per_gpu, "
                 "max tokens_per_s_per_user", fontsize=10)
    if path is not None:
        fig.savefig(Path(path), dpi=dpi)
    return fig


# Validation kinds, top to bottom: (kind, colour)
KINDS = (("memory", "tab:green"), ("training", "tab:blue"), ("serving", "tab:orange"))


def plot_validation(datasets, path=None, dpi: int = 130):
    """Every row of ``datasets`` (:class:`pyengine.validate.Dataset`) as the model's
    optimism: predicted over published for rates and sizes, published over predicted for
    times (a step time, TTFT, ITL), so that right of 1 is always "faster than measured".
    One line of points per dataset, grouped by kind (memory, training, serving), on a log
    axis with the +-10% and +-15% bands (the issues' goals for training and serving);
    fitted datasets in black, validation-only ones in the kind's colour, each labelled
    with its mean |error|; rows predicted infeasible as a red x at the left edge. Save to
    ``path`` if given; returns the Figure."""
    from .optional import require

    require("matplotlib", "plotting the validation")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    kinds = dict(KINDS)
    order = [(kinds[k], ds) for k, _ in KINDS for ds in datasets
             if (ds.kind or "training") == k and ds.rows]
    order += [("0.4", ds) for ds in datasets if (ds.kind or "training") not in kinds
              and ds.rows]
    fig = Figure(figsize=(8.5, 1.4 + 0.24 * len(order)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    lo, hi = 0.4, 2.5
    ax.axvspan(1 / 1.15, 1.15, color="0.93", zorder=0)
    ax.axvspan(1 / 1.1, 1.1, color="0.85", zorder=0)
    ax.axvline(1.0, c="0.3", lw=0.8, zorder=1)
    labels = []
    for i, (colour, ds) in enumerate(order):
        y = len(order) - 1 - i
        ratios = np.array([(r.published / r.predicted if r.unit == "s"
                            else r.predicted / r.published) for r in ds.scored
                           if r.published > 0 and r.predicted > 0])
        if len(ratios):
            jitter = (np.arange(len(ratios)) % 5 - 2) * 0.05
            ax.scatter(np.clip(ratios, lo, hi), y + jitter, s=12,
                       c="0.15" if ds.fitted else colour, lw=0, alpha=0.75, zorder=3)
        if ds.infeasible:
            ax.scatter([lo] * len(ds.infeasible), [y] * len(ds.infeasible), marker="x",
                       c="tab:red", s=30, zorder=4)
        mean = f"{100 * ds.mape:.1f}%" if ds.scored else "-"
        labels.append(f"{ds.name}{' (fitted)' if ds.fitted else ''}  {mean}")
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels(labels[::-1], fontsize=7)
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ticks = [0.5, 0.67, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.set_xlabel("predicted / published (times: published / predicted)\nright of 1: "
                  "the model is optimistic; shaded +-10%, +-15%; beyond the axis: on its "
                  "edge", fontsize=8)
    ax.set_ylim(-0.7, len(order) - 0.3)
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title("pyengine against published measurements\nmemory (green), training "
                 "(blue), serving (orange); fitted datasets in black", fontsize=9)
    if path is not None:
        fig.savefig(Path(path), dpi=dpi)
    return fig
