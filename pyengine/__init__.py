"""pyengine: how should a large language model be split across GPUs?

For a model, a cluster and a design space of parallel plans, pyengine computes per-GPU
memory and roofline step time for every plan, says why infeasible plans fail, and finds
the Pareto front. Start with :func:`evaluate` (one plan, itemised) or
:func:`evaluate_batch` (arrays of plans on a fast backend), :func:`feasible_space` (only
the feasible plans of a :class:`Space`, with the columns asked for), :func:`sweep` (a
whole :class:`Space` down to its Pareto front), and :func:`disaggregated_front` (serving
with separate prefill and decode pools).
"""

from __future__ import annotations

from . import presets, schema
from .disagg import DisaggResult, disaggregated_front
from .engine import (
    BatchResult,
    FeasibleResult,
    count_space,
    evaluate_batch,
    evaluate_space,
    feasible_space,
)
from .errors import BackendUnavailable, SpecError
from .optional import MissingExtra
from .reference import Result, evaluate
from .space import Space
from .specs import Hardware, Limits, Model, Plan
from .sweep import ClusterError, SweepResult, sweep

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailable", "BatchResult", "ClusterError", "DisaggResult", "FeasibleResult",
    "Hardware", "Limits", "MissingExtra", "Model", "Plan", "Result", "Space", "SpecError",
    "SweepResult", "count_space", "disaggregated_front", "evaluate", "evaluate_batch",
    "evaluate_space", "feasible_space", "presets", "schema", "sweep",
]
