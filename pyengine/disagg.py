"""Disaggregated prefill and decode: two pools, the KV cache sent between them, balanced.

A disaggregated deployment (DistServe, Zhong et al., OSDI'24; NVIDIA Dynamo; NVIDIA's
aiconfigurator) runs the prompts' prefill on one pool of GPUs and the token-by-token
decode on another, each pool with its own parallelism and batch, and sends every
request's KV cache from the prefill instance that computed it to a decode instance over
the scale-out network. Here it is a composition, in NumPy, of two plan sets the engine
has evaluated (any backend; the cost model itself is unchanged):

- a prefill instance is a ``prefill``-mode plan (its own tp/cp/pp/dp/ep; ``global_batch``
  prompts a step, ``seq_len`` tokens each) on ``n_p`` GPUs. It serves
  ``r_p = global_batch / time_step_s`` requests/s; a request's first token is ready after
  the plan's ``ttft_s`` (the last micro-batch out of the pipeline).
- a decode instance is a ``decode``-mode plan with the same sequence whose sequences
  arrive with their KV cache (``max_num_tokens = 0`` in both pools: no prefill chunks in
  a decode step, a prefill workspace for the micro-batch's prompts). In
  the continuous-batching steady state each of its ``global_batch`` sequences gains a
  token every ``tpot_s``, so it finishes ``r_d = global_batch / (gen_tokens * tpot_s)``
  requests/s; the inter-token latency is ``tpot_s``. Its memory holds every sequence's
  KV cache (prompt + generated tokens), as the decode plan's does already; the prefill
  it would run itself is not counted.
- the KV transfer (:func:`kv_transfer`): a request's prompt KV cache, layers x KV values
  per token (K and V heads, or MLA's compressed latent and RoPE key) x KV bytes x seq,
  leaves the prefill GPUs that hold it, each sending its share over its own NIC at
  ``inter_bw x inter_eff``, and lands on the decode GPUs, each receiving what it will
  hold; the slower end sets the time, plus one ``inter_latency``. Only the last
  micro-batch's transfer adds to TTFT (earlier ones go while later micro-batches are
  computed); it is not overlapped layer by layer with that micro-batch's own prefill, as
  DistServe, Dynamo/NIXL and Mooncake can, so TTFT is pessimistic by at most that
  transfer. The NICs also cap each pool's request rate (a replica sends or receives one
  request's share per transfer time).
- the pool ratio (:func:`best_ratio`): ``a`` prefill and ``b`` decode instances serve
  ``min(a * r_p, b * r_d)`` requests/s (aiconfigurator's rate matching: seq/s =
  min(prefill seq/s x workers, decode seq/s x workers)); the deployment's tokens/s per
  GPU is ``gen * min(a r_p, b r_d) / (a n_p + b n_d)``, maximised over integers
  ``1 <= a, b <= max_instances`` within the GPU budget (exactly ``gpus_exact`` GPUs, or at
  most ``gpus_max``).

Deployment outputs: tokens/s per GPU, tokens/s per user = 1 / ITL (the decode plan's
tpot_s), TTFT = prefill ttft_s + kv_transfer_s, the instance counts and both plans. The
front is the serving front of the aggregated sweep (max tokens_per_s_per_gpu, max
tokens_per_s_per_user), so the two can be drawn side by side.

Exactness: before pairing, each pool is reduced to the plans no other plan of the same
workload and GPU count beats on every quantity a deployment reads (prefill: rate, ttft,
ttft + micro-batch x send time, micro-batch; decode: rate, tpot, receive time), so a
pruned plan is never needed. The GPU count is held fixed in that comparison: with
integer instance counts and a budget, a plan on more GPUs at the same rate per GPU is
not interchangeable with a smaller one. ``prune=False`` pairs every feasible plan (a
check; tests compare both with a brute force).

Not modelled: queueing (a request waiting for its prefill batch to form), the shorter
steps of an under-loaded pool (its plan's times are used as they are), prefill instances
on the decode GPUs' NVLink domain (the transfer always crosses the scale-out network).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from . import schema as S
from .engine import evaluate_batch, feasible_space, pack_plans
from .errors import SpecError
from .inputs import as_hardware, as_model
from .pareto import pareto_front
from .reference import model_vector
from .space import Space
from .specs import Hardware, Limits, Model

MAX_INSTANCES = 64  # default cap on prefill and on decode instances of a deployment
PAIR_CELLS = 1 << 21  # (pair, prefill-instance count) cells evaluated at once
POOL_CHUNK = 1 << 19  # plans per feasible_space call
SERVE_OBJECTIVES = (("tokens_per_s_per_gpu", "max"), ("tokens_per_s_per_user", "max"))
POOL_COLUMNS = ("n_gpus", "time_step_s", "ttft_s", "tpot_s", "layers_first_stage",
                "layers_middle_stage", "layers_last_stage", "mem_total_bytes",
                "dropped_fraction", "tokens_per_s_per_gpu")
# plan columns each pool's table shows, prefixed prefill_ / decode_ (plus the varying ones)
PARALLEL = ("global_batch", "micro_batch", "tp", "cp", "pp", "dp", "ep", "etp", "vpp")
FP_LOW = ("fp8", "nvfp4", "mxfp4")
CONSTRAINTS = {
    "gpus_exact": "the deployment's GPUs, exactly", "gpus": "= gpus_exact",
    "gpus_max": "the deployment's GPUs, at most", "max_gpus": "= gpus_max",
    "mem_fraction": "usable fraction of HBM, every instance", "mem_headroom": "= mem_fraction",
    "max_ttft_s": "prefill ttft + KV transfer", "max_tpot_s": "decode inter-token latency",
    "max_itl_s": "= max_tpot_s", "min_tokens_per_s_per_user": "1 / decode tpot",
    "min_tokens_per_s_per_gpu": "the deployment's", "min_tokens_per_s": "the deployment's",
    "max_dropped_fraction": "MoE token-slots dropped, every instance (default 0)",
}
ALIASES = {"gpus": "gpus_exact", "max_gpus": "gpus_max", "mem_headroom": "mem_fraction",
           "max_itl_s": "max_tpot_s"}


# --------------------------------------------------------------------------- KV transfer


def kv_value_bytes(dtype: str = "bf16", kv_dtype: str = "auto") -> float:
    """Bytes of one KV-cache value: kv_dtype bf16 = 2, fp8 = 1; auto = 1 under fp8/fp4
    weights (TensorRT-LLM's quantized checkpoints quantize the KV cache), else 2
    (as reference.precisions [P2])."""
    if kv_dtype == "bf16":
        return 2.0
    if kv_dtype == "fp8":
        return 1.0
    if kv_dtype != "auto":
        raise SpecError("kv_value_bytes", "kv_dtype", kv_dtype, "auto, bf16 or fp8")
    return 1.0 if dtype in FP_LOW else 2.0


def kv_values_per_token(model: Model) -> float:
    """KV-cache values one token keeps per layer, the whole model's (not one GPU's share):
    K and V of every KV head (GQA: kv_heads x (qk_head_dim + v_head_dim)), or MLA's
    compressed latent and decoupled RoPE key (kv_lora_rank + rope_head_dim). This is what
    reference.kv_cache_elems_per_gpu shards over tp (times tp where tp divides the KV
    heads)."""
    mv = model_vector(as_model(model, "kv_values_per_token"))
    return float(mv[S.M_KV_CACHE_ELEMS])


def kv_bytes_per_token(model: Model, dtype: str = "bf16", kv_dtype: str = "auto") -> float:
    """KV-cache bytes of one prompt token, all layers: layers x values x value bytes.
    Llama 3 70B in bf16: 80 x 8 x (128 + 128) x 2 = 327,680 B."""
    m = as_model(model, "kv_bytes_per_token")
    return m.n_layers * kv_values_per_token(m) * kv_value_bytes(dtype, kv_dtype)


def _held_per_gpu(mv: np.ndarray, tp: np.ndarray) -> np.ndarray:
    """KV values per token and layer one GPU keeps (reference.kv_cache_elems_per_gpu
    [M7]): GQA shards the KV heads over tp (a head is replicated when tp exceeds them),
    every rank keeps MLA's latent whole."""
    if mv[S.M_MLA] > 0:
        return np.full(tp.shape, float(mv[S.M_KV_CACHE_ELEMS]))
    return np.ceil(mv[S.M_KV_HEADS] / tp) * (mv[S.M_QK_HEAD_DIM] + mv[S.M_V_HEAD_DIM])


def _nic_rate(hw: Hardware) -> float:
    return hw.inter_node_bandwidth_bytes_per_s * hw.inter_eff


def _send_s(values: float, hw: Hardware, seq, tp, cp, stage_layers, kvb) -> np.ndarray:
    """Seconds a prefill GPU sends its share of one request's prompt KV cache: the unique
    bytes of its stage split over the stage's tp x cp ranks."""
    return (np.asarray(seq, float) / cp * stage_layers * values / tp * kvb) / _nic_rate(hw)


def _recv_s(mv: np.ndarray, hw: Hardware, seq, tp, cp, stage_layers, kvb) -> np.ndarray:
    """Seconds a decode GPU receives what it will hold of one request's prompt KV cache."""
    tp = np.asarray(tp, float)
    held = _held_per_gpu(mv, np.atleast_1d(tp)).reshape(tp.shape)
    return (np.asarray(seq, float) / cp * stage_layers * held * kvb) / _nic_rate(hw)


def kv_transfer(model: Model, hardware: Hardware, seq_len, kv_bytes, prefill: Mapping,
                decode: Mapping) -> dict[str, np.ndarray]:
    """Time to move one request's prompt KV cache from a prefill to a decode instance.

    ``prefill`` / ``decode``: arrays (broadcastable) ``tp``, ``cp`` and ``stage_layers``
    (the most transformer layers on one pipeline stage). A prefill GPU sends its share of
    the unique bytes, seq/cp tokens x stage layers x values/tp (ranks that hold a
    replicated head or MLA's latent split the sending); a decode GPU receives what it
    will hold, seq/cp tokens x stage layers x its KV values (replicas included). Each end
    moves its bytes over its own NIC at inter_bw x inter_eff. Returns ``send_s`` and
    ``recv_s`` (per request and GPU), ``transfer_s`` = max(send_s, recv_s) + the
    inter-node latency, and ``bytes`` (the request's whole prompt KV cache).
    """
    m = as_model(model, "kv_transfer")
    h = as_hardware(hardware, "kv_transfer")
    mv = model_vector(m)
    values = float(mv[S.M_KV_CACHE_ELEMS])
    seq = np.asarray(seq_len, dtype=float)
    kvb = np.asarray(kv_bytes, dtype=float)
    send = _send_s(values, h, seq, np.asarray(prefill["tp"], float),
                   np.asarray(prefill["cp"], float),
                   np.asarray(prefill["stage_layers"], float), kvb)
    recv = _recv_s(mv, h, seq, decode["tp"], np.asarray(decode["cp"], float),
                   np.asarray(decode["stage_layers"], float), kvb)
    return {"send_s": send, "recv_s": recv,
            "transfer_s": np.maximum(send, recv) + h.inter_node_latency_s,
            "bytes": seq * m.n_layers * values * kvb}


# --------------------------------------------------------------------------- pool ratio


def best_ratio(r_p, n_p, r_d, n_d, gen, gpus_max: float | None = None,
               gpus_exact: int | None = None, max_instances: int = MAX_INSTANCES,
               min_tokens_per_s: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The instance counts (a prefill, b decode) that maximise tokens/s per GPU.

    For each pair (arrays broadcast): requests/s per prefill instance ``r_p`` on ``n_p``
    GPUs, per decode instance ``r_d`` on ``n_d`` GPUs, ``gen`` tokens per request. The
    deployment serves ``min(a r_p, b r_d)`` requests/s on ``a n_p + b n_d`` GPUs;
    ``1 <= a, b <= max_instances``, the GPUs ``== gpus_exact`` or ``<= gpus_max`` (None:
    no budget) and ``gen * min(a r_p, b r_d) >= min_tokens_per_s``. For a given a the
    best b is the integer just below or above the balance ``a r_p / r_d`` (below it the
    decode pool limits and each added instance raises the rate per GPU, above it the
    prefill pool does), so 2 candidates per a are tried; ties go to fewer GPUs.
    Returns (a, b, tokens_per_s_per_gpu), 0 where no deployment fits.
    """
    r_p, n_p, r_d, n_d, gen = (np.asarray(v, dtype=float) for v in
                               np.broadcast_arrays(r_p, n_p, r_d, n_d, gen))
    shape = r_p.shape
    r_p, n_p, r_d, n_d, gen = (v.reshape(-1, 1) for v in (r_p, n_p, r_d, n_d, gen))
    cap = int(max_instances)
    if cap < 1:
        raise SpecError("best_ratio", "max_instances", max_instances, "an integer >= 1")
    a = np.arange(1, cap + 1, dtype=float).reshape(1, -1)
    need = float(min_tokens_per_s) / gen  # requests/s the deployment must reach
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = np.maximum(1.0, np.ceil(need / r_d))
        if gpus_exact:
            rem = float(gpus_exact) - a * n_p
            b = np.floor(rem / n_d)
            ok = (rem >= n_d) & (b * n_d == rem) & (b <= cap) & (b >= lo)
            cands = [b]
        else:
            room = math.inf if gpus_max is None else float(gpus_max)
            hi = np.minimum(float(cap), np.floor((room - a * n_p) / n_d))
            ok = hi >= lo
            b0 = a * r_p / r_d
            cands = [np.clip(np.floor(b0), lo, hi), np.clip(np.ceil(b0), lo, hi)]
        ok &= a * r_p >= need * (1.0 - 1e-12)
        best_f = np.full((r_p.shape[0], a.shape[1]), -1.0)
        best_b = np.zeros_like(best_f)
        for bc in cands:
            f = gen * np.minimum(a * r_p, bc * r_d) / (a * n_p + bc * n_d)
            f = np.where(ok & np.isfinite(f), f, -1.0)
            better = f > best_f * (1.0 + 1e-12)
            best_f = np.where(better, f, best_f)
            best_b = np.where(better, bc, best_b)
    top = best_f.max(axis=1, keepdims=True)
    pick = np.argmax(best_f >= top * (1.0 - 1e-12), axis=1)  # fewest GPUs among ties
    rows = np.arange(best_f.shape[0])
    f = best_f[rows, pick]
    found = f > 0
    a_out = np.where(found, pick + 1, 0).astype(np.int64)
    b_out = np.where(found, best_b[rows, pick], 0).astype(np.int64)
    return a_out.reshape(shape), b_out.reshape(shape), np.where(found, f, 0.0).reshape(shape)


# --------------------------------------------------------------------------- pools


@dataclass
class Pool:
    """The feasible plans of one pool (role "prefill" or "decode"): their positions in
    the pool's space or plan list (``index``), plan rows [n, N_PLAN] and output columns,
    and how many plans were evaluated and rejected by reason."""

    role: str
    space: Space | None
    index: np.ndarray
    rows: np.ndarray
    out: dict[str, np.ndarray]
    counts: dict = field(default_factory=dict)

    def col(self, name: str) -> np.ndarray:
        return self.rows[:, S.PLAN_NAMES.index(name)]

    def take(self, keep: np.ndarray) -> Pool:
        return Pool(self.role, self.space, self.index[keep], self.rows[keep],
                    {k: v[keep] for k, v in self.out.items()}, self.counts)


def _host(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)


def pool_spaces(space: Space) -> tuple[Space, Space]:
    """The prefill and decode pool spaces of a serving space (decode plans): the same
    axes, mode prefill (gen_tokens 0: it generates nothing) and mode decode, both with
    max_num_tokens 0: a decode step carries decode tokens only, no prefill chunks, and a
    prefill instance's workspace holds its micro-batch's prompt tokens, what it runs."""
    axes = {name: space.axes[name] for name in S.PLAN_NAMES}
    pre = dict(axes, mode=["prefill"], gen_tokens=[0], max_num_tokens=[0])
    dec = dict(axes, mode=["decode"], max_num_tokens=[0])
    return (Space(base=space.base, limits=space.limits, **pre),
            Space(base=space.base, limits=space.limits, **dec))


def evaluate_pool(model, hardware, plans, role: str, limits: Limits, backend: str = "auto",
                  chunk_size: int | None = None) -> Pool:
    """The feasible plans of ``plans`` (a Space, or anything evaluate_batch takes) under
    the kernel ``limits``, with the outputs a deployment reads."""
    if isinstance(plans, Space):
        work = Space(base=plans.base, limits=limits,
                     **{n: plans.axes[n] for n in S.PLAN_NAMES})
        idx, vals = [], []
        by_bit = np.zeros(S.N_VIOLATIONS, dtype=np.int64)
        chunk = chunk_size or POOL_CHUNK
        for s, e in work.chunks(chunk):
            res = feasible_space(model, hardware, work, s, e, POOL_COLUMNS, backend=backend)
            idx.append(_host(res.index).astype(np.int64))
            vals.append(_host(res.values))
            by_bit += _host(res.by_bit).astype(np.int64)
        index = np.concatenate(idx) if idx else np.empty(0, np.int64)
        values = np.concatenate(vals, axis=1) if vals else np.empty((len(POOL_COLUMNS), 0))
        rows = work.decode(index)
        evaluated = len(work)
        out = {c: np.ascontiguousarray(values[i]) for i, c in enumerate(POOL_COLUMNS)}
        space = work
    else:
        rows_all = _host(pack_plans(plans))
        res = evaluate_batch(model, hardware, rows_all, backend=backend, limits=limits)
        codes = _host(res.codes)
        index = np.flatnonzero(codes == 0).astype(np.int64)
        rows = rows_all[index]
        out = {c: _host(res[c])[index] for c in POOL_COLUMNS}
        by_bit = np.array([np.count_nonzero(codes & (1 << b)) for b in range(S.N_VIOLATIONS)])
        evaluated = int(codes.shape[0])
        space = None
    counts = {"evaluated": int(evaluated), "feasible": int(index.shape[0]),
              "by_reason": {n: int(c) for n, c in zip(S.VIOLATION_NAMES, by_bit.tolist()) if c}}
    return Pool(role, space, index, rows, out, counts)


# --------------------------------------------------------------------------- result


@dataclass
class DisaggResult:
    """Disaggregated deployments on the serving front.

    ``front``: a DataFrame, best-first by tokens/s per GPU, one row per deployment:
    ``layout`` ("disagg"), the workload (seq_len, gen_tokens, dtype, kv_dtype),
    ``prefill_instances`` / ``decode_instances`` (a, b), ``prefill_gpus`` /
    ``decode_gpus`` (per instance), ``n_gpus`` (a n_p + b n_d), ``tokens_per_s``,
    ``tokens_per_s_per_gpu``, ``tokens_per_s_per_user`` (1 / tpot_s), ``requests_per_s``,
    ``ttft_s`` (prefill ttft + KV transfer), ``prefill_ttft_s``, ``kv_transfer_s``,
    ``kv_bytes_per_request``, ``tpot_s`` (= the ITL), the pools' utilisation (served
    rate / capacity), ``mem_total_bytes`` (the fuller instance's per GPU), and every
    prefill and decode plan column shown (``prefill_tp``, ``decode_global_batch``, ...)
    with ``prefill_index`` / ``decode_index`` (positions in the pool spaces or lists).
    ``counts``: plans evaluated and feasible per pool, plans kept for pairing, pairs
    tried, deployments meeting the constraints.
    """

    model: Model
    hardware: Hardware
    front: object
    counts: dict
    constraints: dict
    budget: dict
    backend: str
    elapsed_s: float
    prefill: Pool | None = None
    decode: Pool | None = None
    objectives: tuple = SERVE_OBJECTIVES

    def to_dict(self, tables: bool = True) -> dict:
        from .sweep import _records

        d = {"layout": "disagg", "model": self.model.name, "hardware": self.hardware.name,
             "objectives": [{"column": c, "sense": s} for c, s in self.objectives],
             "constraints": dict(self.constraints), "budget": dict(self.budget),
             "counts": self.counts, "backend": self.backend, "elapsed_s": self.elapsed_s}
        if tables:
            d["front"] = _records(self.front)
        return d


def parse_disagg_constraints(constraints: Mapping | None, limits: Limits | None = None):
    """(kernel Limits for every instance, deployment bounds, budget) from a constraints
    mapping with the keys of :data:`CONSTRAINTS` (None removes one)."""
    lim = (limits or Limits()).to_dict()
    merged: dict = {"max_dropped_fraction": 0.0}
    if lim.get("gpus_exact"):
        merged["gpus_exact"] = lim["gpus_exact"]
    if lim.get("gpus_max"):
        merged["gpus_max"] = lim["gpus_max"]
    for key, value in (constraints or {}).items():
        if key not in CONSTRAINTS:
            raise SpecError("disaggregated_front", "constraint", key,
                            "one of " + ", ".join(CONSTRAINTS))
        merged[ALIASES.get(key, key)] = value
    out: dict = {}
    for key, value in merged.items():
        if value is None:
            continue
        if isinstance(value, bool):
            raise SpecError("disaggregated_front", key, value, "a number")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise SpecError("disaggregated_front", key, value, "a number") from None
        if not v >= 0 or (key.startswith("min_") and not math.isfinite(v)):
            raise SpecError("disaggregated_front", key, value, "a finite number >= 0")
        out[key] = v
    exact = int(out.pop("gpus_exact", 0) or 0)
    gmax = out.pop("gpus_max", None)
    if exact and gmax is not None and exact > gmax:
        raise SpecError("disaggregated_front", "gpus_exact", exact,
                        f"at most gpus_max ({gmax:g})")
    budget = {"gpus_exact": exact or None,
              "gpus_max": None if exact or gmax is None or math.isinf(gmax) else int(gmax)}
    cap = exact or budget["gpus_max"] or 0
    kernel = Limits(gpus_exact=0, gpus_max=int(cap),
                    mem_fraction=out.pop("mem_fraction", lim.get("mem_fraction", 1.0)))
    return kernel, out, budget


def _stage_layers(out: Mapping) -> np.ndarray:
    return np.maximum(np.maximum(out["layers_first_stage"], out["layers_middle_stage"]),
                      out["layers_last_stage"])


def _kv_bytes_of(rows: np.ndarray) -> np.ndarray:
    dtype = S.PLAN[S.PLAN_NAMES.index("dtype")].choices
    kvd = S.PLAN[S.PLAN_NAMES.index("kv_dtype")].choices
    d = rows[:, S.PLAN_NAMES.index("dtype")].astype(int)
    k = rows[:, S.PLAN_NAMES.index("kv_dtype")].astype(int)
    table = np.array([[kv_value_bytes(dt, kd) for kd in kvd] for dt in dtype])
    return table[d, k]


def _groups(*cols: np.ndarray) -> np.ndarray:
    """A group number per row: rows equal in every column share one."""
    if not cols or cols[0].shape[0] == 0:
        return np.zeros(0 if not cols else cols[0].shape[0], dtype=np.int64)
    _, inv = np.unique(np.stack(cols, axis=1), axis=0, return_inverse=True)
    return inv.reshape(-1).astype(np.int64)


def _fronts_by_group(values: np.ndarray, senses, groups: np.ndarray) -> np.ndarray:
    """Positions of the rows on the Pareto front of their own group (ascending)."""
    keep = []
    order = np.argsort(groups, kind="stable")
    bounds = np.flatnonzero(np.diff(groups[order])) + 1
    for part in np.split(order, bounds):
        if part.size:
            keep.append(part[pareto_front(values[part], senses, duplicates="first")])
    return np.sort(np.concatenate(keep)) if keep else np.empty(0, np.int64)


def _derive_prefill(model, hw, pool: Pool, bounds: dict) -> tuple[Pool, dict]:
    """Prefill plans' rate, TTFT and send time; the plans that can meet the bounds."""
    o = pool.out
    gbs, dp = pool.col("global_batch"), pool.col("dp")
    seq, kvb = pool.col("seq_len"), _kv_bytes_of(pool.rows)
    tp, cp = pool.col("tp"), pool.col("cp")
    send = _send_s(kv_values_per_token(model), hw, seq, tp, cp, _stage_layers(o), kvb)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = gbs / o["time_step_s"]
        r_net = np.where(send > 0, dp / send, np.inf)
    d = {"rate": np.minimum(r, r_net), "ttft": o["ttft_s"], "send": send, "kvb": kvb,
         "mbs": pool.col("micro_batch"), "seq": seq, "n": o["n_gpus"]}
    ok = np.isfinite(d["rate"]) & (d["rate"] > 0) & np.isfinite(d["ttft"])
    ok &= o["dropped_fraction"] <= bounds.get("max_dropped_fraction", math.inf)
    if "max_ttft_s" in bounds:  # the transfer only adds to it
        ok &= d["ttft"] + hw.inter_node_latency_s <= bounds["max_ttft_s"]
    return _select(pool, d, ok)


def _derive_decode(model, hw, pool: Pool, bounds: dict) -> tuple[Pool, dict]:
    """Decode plans' rate, ITL and receive time; the plans that can meet the bounds."""
    o = pool.out
    gbs, dp, gen = pool.col("global_batch"), pool.col("dp"), pool.col("gen_tokens")
    seq, kvb = pool.col("seq_len"), _kv_bytes_of(pool.rows)
    tp, cp = pool.col("tp"), pool.col("cp")
    recv = _recv_s(model_vector(model), hw, seq, tp, cp, _stage_layers(o), kvb)
    tpot = o["tpot_s"]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = gbs / (gen * tpot)
        r_net = np.where(recv > 0, dp / recv, np.inf)
        per_user = np.where(tpot > 0, 1.0 / tpot, 0.0)
    d = {"rate": np.minimum(r, r_net), "tpot": tpot, "recv": recv, "kvb": kvb, "seq": seq,
         "gen": gen, "n": o["n_gpus"], "per_user": per_user}
    ok = np.isfinite(d["rate"]) & (d["rate"] > 0) & (tpot > 0) & np.isfinite(per_user)
    ok &= o["dropped_fraction"] <= bounds.get("max_dropped_fraction", math.inf)
    if "max_tpot_s" in bounds:
        ok &= tpot <= bounds["max_tpot_s"]
    if "min_tokens_per_s_per_user" in bounds:
        ok &= per_user >= bounds["min_tokens_per_s_per_user"]
    return _select(pool, d, ok)


def _select(pool: Pool, d: dict, keep: np.ndarray) -> tuple[Pool, dict]:
    """The plans at ``keep`` (a boolean mask or positions) and their derived values."""
    if keep.dtype == bool:
        keep = np.flatnonzero(keep)
    return pool.take(keep), {k: v[keep] for k, v in d.items()}


def _dtype_code(pool: Pool) -> np.ndarray:
    return pool.col("dtype")


def disaggregated_front(model: Model, hardware: Hardware, space, constraints: Mapping | None = None,
                        backend: str = "auto", max_instances: int = MAX_INSTANCES,
                        duplicates: str = "all", chunk_size: int | None = None,
                        prune: bool = True) -> DisaggResult:
    """The serving front of disaggregated prefill/decode deployments.

    ``space``: a serving :class:`~pyengine.space.Space` (decode plans: its axes give both
    pools, see :func:`pool_spaces`), or a pair ``(prefill_plans, decode_plans)`` of
    Spaces or plan tables (anything :func:`~pyengine.engine.evaluate_batch` takes; modes
    prefill and decode). ``constraints``: keys of :data:`CONSTRAINTS`, the sweep's names
    (``gpus_exact``/``gpus_max`` bound the whole deployment and each instance,
    ``mem_fraction`` every instance, ``max_ttft_s`` the deployment's TTFT, ``max_tpot_s``
    its inter-token latency, ``min_tokens_per_s_per_gpu`` / ``min_tokens_per_s`` its
    throughput; ``max_dropped_fraction`` defaults to 0). ``max_instances``: the most
    prefill and the most decode instances. ``duplicates``: "all" or "first" for
    deployments with equal objectives. ``prune=False`` pairs every feasible plan instead
    of each pool's own front (slow; for checks). Any backend: the pools are evaluated by
    the engine, the composition is NumPy.
    """
    t0 = time.perf_counter()
    model, hw = as_model(model, "disaggregated_front"), as_hardware(hardware, "disaggregated_front")
    if duplicates not in ("all", "first"):
        raise SpecError("disaggregated_front", "duplicates", duplicates, "'all' or 'first'")
    if isinstance(max_instances, bool) or not isinstance(max_instances, (int, np.integer)) \
            or not 1 <= int(max_instances) <= 1 << 20:
        raise SpecError("disaggregated_front", "max_instances", max_instances,
                        "an integer in [1, 1048576]")
    if isinstance(space, Space):
        from .sweep import space_modes

        if space_modes(space) != {"decode"}:
            raise SpecError("disaggregated_front", "space", sorted(space_modes(space)),
                            "a serving space: mode decode only (its axes give both pools)")
        pre_plans, dec_plans = pool_spaces(space)
        base_limits = space.limits
    elif isinstance(space, (tuple, list)) and len(space) == 2:
        pre_plans, dec_plans = space
        base_limits = None
    else:
        raise SpecError("disaggregated_front", "space", type(space).__name__,
                        "a serving Space, or a pair (prefill plans, decode plans)")
    limits, bounds, budget = parse_disagg_constraints(constraints, base_limits)
    budget["max_instances"] = int(max_instances)
    pre = evaluate_pool(model, hw, pre_plans, "prefill", limits, backend, chunk_size)
    dec = evaluate_pool(model, hw, dec_plans, "decode", limits, backend, chunk_size)
    _check_modes(pre, "prefill")
    _check_modes(dec, "decode")
    pre_ok, p = _derive_prefill(model, hw, pre, bounds)
    dec_ok, d = _derive_decode(model, hw, dec, bounds)
    # the plans a deployment may need: per workload and GPU count, the pool's own front
    pg = _groups(p["seq"], _dtype_code(pre_ok), p["kvb"], p["n"])
    dg = _groups(d["seq"], _dtype_code(dec_ok), d["kvb"], d["gen"], d["n"])
    if prune:
        # TTFT = max(ttft + mbs * send, ttft + mbs * recv) + latency: no worse when
        # ttft + mbs * send, ttft and mbs are all no worse
        pk = _fronts_by_group(np.stack([p["rate"], p["ttft"], p["ttft"] + p["mbs"] * p["send"],
                                        p["mbs"]], axis=1), ("max", "min", "min", "min"), pg)
        dk = _fronts_by_group(np.stack([d["rate"], d["tpot"], d["recv"]], axis=1),
                              ("max", "min", "min"), dg)
    else:
        pk, dk = np.arange(pg.shape[0]), np.arange(dg.shape[0])
    counts = {"prefill": dict(pre.counts, usable=int(pre_ok.index.shape[0]),
                              paired=int(pk.shape[0])),
              "decode": dict(dec.counts, usable=int(dec_ok.index.shape[0]),
                             paired=int(dk.shape[0]))}
    pre_ok, p = _select(pre_ok, p, pk)
    dec_ok, d = _select(dec_ok, d, dk)
    best = _pair(hw, p, d, pre_ok, dec_ok, bounds, budget, duplicates, counts)
    front = _front_frame(model, hw, pre_ok, dec_ok, p, d, best)
    return DisaggResult(model, hw, front, counts, bounds, budget, _backend_name(backend),
                        time.perf_counter() - t0, pre_ok, dec_ok)


def _backend_name(backend: str) -> str:
    from . import backends

    return backends.get(backend).NAME


def _check_modes(pool: Pool, mode: str) -> None:
    code = S.PLAN[S.PLAN_NAMES.index("mode")].choices.index(mode)
    if pool.rows.shape[0] and (pool.col("mode") != code).any():
        raise SpecError("disaggregated_front", f"{pool.role} plans", "mode",
                        f"{mode} plans only")


def _pair(hw, p: dict, d: dict, pre: Pool, dec: Pool, bounds: dict, budget: dict,
          duplicates: str, counts: dict) -> dict:
    """Every (prefill, decode) pair of one workload, its best instance counts, and the
    deployments on the front: a dict of arrays (pair positions, a, b, metrics)."""
    key_p = np.stack([p["seq"], _dtype_code(pre), p["kvb"]], axis=1)
    key_d = np.stack([d["seq"], _dtype_code(dec), d["kvb"]], axis=1)
    lat = hw.inter_node_latency_s
    kept: dict | None = None
    tried = feasible = 0
    for key in (np.unique(key_p, axis=0) if key_p.shape[0] else []):
        ip = np.flatnonzero((key_p == key).all(axis=1))
        jd = np.flatnonzero((key_d == key).all(axis=1))
        if not ip.size or not jd.size:
            continue
        per = max(1, PAIR_CELLS // (max(1, budget["max_instances"]) * ip.size))
        for s in range(0, jd.size, per):
            jj = jd[s:s + per]
            I, J = (g.reshape(-1) for g in np.meshgrid(ip, jj, indexing="ij"))  # noqa: N806
            tried += I.size
            t_req = np.maximum(p["send"][I], d["recv"][J])
            kv_s = p["mbs"][I] * t_req + lat
            ttft = p["ttft"][I] + kv_s
            ok = np.ones(I.size, dtype=bool)
            if "max_ttft_s" in bounds:
                ok &= ttft <= bounds["max_ttft_s"]
            I, J, ttft, kv_s = I[ok], J[ok], ttft[ok], kv_s[ok]  # noqa: N806
            a, b, f = best_ratio(p["rate"][I], p["n"][I], d["rate"][J], d["n"][J], d["gen"][J],
                                 gpus_max=budget["gpus_max"], gpus_exact=budget["gpus_exact"],
                                 max_instances=budget["max_instances"],
                                 min_tokens_per_s=bounds.get("min_tokens_per_s", 0.0))
            ok = f > 0
            if "min_tokens_per_s_per_gpu" in bounds:
                ok &= f >= bounds["min_tokens_per_s_per_gpu"]
            feasible += int(np.count_nonzero(ok))
            part = {"i": I[ok], "j": J[ok], "a": a[ok], "b": b[ok], "f": f[ok],
                    "u": d["per_user"][J[ok]], "ttft": ttft[ok], "kv": kv_s[ok]}
            kept = part if kept is None else {k: np.concatenate([kept[k], part[k]])
                                              for k in part}
            kept = _deploy_front(kept, duplicates)
    counts["pairs"] = int(tried)
    counts["deployments"] = int(feasible)
    if kept is None:
        kept = {k: np.empty(0, dtype=np.int64) for k in ("i", "j", "a", "b")}
        kept.update({k: np.empty(0) for k in ("f", "u", "ttft", "kv")})
    counts["front"] = int(kept["i"].shape[0])
    return kept


def _deploy_front(kept: dict, duplicates: str) -> dict:
    if kept["i"].shape[0] == 0:
        return kept
    # a stable order so "first" never depends on chunking: among deployments with equal
    # objectives the one with the shortest TTFT first, then by prefill and decode position
    order = np.lexsort((kept["j"], kept["i"], kept["ttft"]))
    kept = {k: v[order] for k, v in kept.items()}
    pos = pareto_front(np.stack([kept["f"], kept["u"]], axis=1), ("max", "max"),
                       duplicates=duplicates)
    return {k: v[pos] for k, v in kept.items()}


def _human(rows: np.ndarray, name: str) -> np.ndarray:
    col = S.PLAN[S.PLAN_NAMES.index(name)]
    v = rows[:, S.PLAN_NAMES.index(name)]
    if col.kind == "choice":
        return np.array(col.choices, dtype=object)[v.astype(np.int64)]
    if col.kind == "bool":
        return v > 0
    if col.kind == "int":
        return v.astype(np.int64)
    return v


def _shown(pre: Pool, dec: Pool) -> list[str]:
    """Plan columns each pool's part of the table shows: the parallel layout and batch,
    and whatever else varies among the pool's plans."""
    names = list(PARALLEL)
    for pool in (pre, dec):
        if pool.rows.shape[0] > 1:
            vary = np.flatnonzero((pool.rows != pool.rows[:1]).any(axis=0))
            names += [S.PLAN_NAMES[i] for i in vary]
    skip = {"mode", "seq_len", "gen_tokens", "dtype", "kv_dtype"}
    return [n for n in dict.fromkeys(names) if n not in skip]


def _front_frame(model, hw, pre: Pool, dec: Pool, p: dict, d: dict, best: dict):
    import pandas as pd

    i, j, a, b = best["i"], best["j"], best["a"], best["b"]
    n_p, n_d = p["n"][i], d["n"][j]
    gpus = a * n_p + b * n_d
    req = np.minimum(a * p["rate"][i], b * d["rate"][j])
    with np.errstate(divide="ignore", invalid="ignore"):
        util_p = np.where(a > 0, req / (a * p["rate"][i]), 0.0)
        util_d = np.where(b > 0, req / (b * d["rate"][j]), 0.0)
    gen = d["gen"][j]
    data = {
        "layout": np.array(["disagg"] * i.shape[0], dtype=object),
        "seq_len": p["seq"][i].astype(np.int64), "gen_tokens": gen.astype(np.int64),
        "dtype": _human(pre.rows[i], "dtype"), "kv_dtype": _human(pre.rows[i], "kv_dtype"),
        "prefill_instances": a, "decode_instances": b,
        "prefill_gpus": n_p.astype(np.int64), "decode_gpus": n_d.astype(np.int64),
        "n_gpus": gpus.astype(np.int64),
        "tokens_per_s_per_gpu": best["f"], "tokens_per_s": gen * req,
        "tokens_per_s_per_user": best["u"], "requests_per_s": req,
        "ttft_s": best["ttft"], "prefill_ttft_s": p["ttft"][i], "kv_transfer_s": best["kv"],
        "kv_bytes_per_request": p["seq"][i] * model.n_layers * kv_values_per_token(model)
        * p["kvb"][i],
        "tpot_s": d["tpot"][j], "prefill_utilization": util_p, "decode_utilization": util_d,
        "mem_total_bytes": np.maximum(pre.out["mem_total_bytes"][i],
                                      dec.out["mem_total_bytes"][j]),
        "prefill_mem_total_bytes": pre.out["mem_total_bytes"][i],
        "decode_mem_total_bytes": dec.out["mem_total_bytes"][j],
        "prefill_index": pre.index[i], "decode_index": dec.index[j],
    }
    for name in _shown(pre, dec):
        data["prefill_" + name] = _human(pre.rows[i], name)
        data["decode_" + name] = _human(dec.rows[j], name)
    df = pd.DataFrame(data)
    if len(df):
        order = np.lexsort((df["decode_index"].to_numpy(), df["prefill_index"].to_numpy(),
                            df["n_gpus"].to_numpy(), df["ttft_s"].to_numpy(),
                            -df["tokens_per_s_per_user"].to_numpy(),
                            -df["tokens_per_s_per_gpu"].to_numpy()))
        df = df.iloc[order].reset_index(drop=True)
    return df


# --------------------------------------------------------------------------- comparison


def best_at(front, per_user: float) -> float:
    """The most tokens/s per GPU a front reaches at tokens/s per user >= ``per_user``
    (0 when none of its plans is that fast)."""
    if front is None or not len(front):
        return 0.0
    ok = front["tokens_per_s_per_user"].to_numpy() >= per_user
    return float(front["tokens_per_s_per_gpu"].to_numpy()[ok].max()) if ok.any() else 0.0


def compare_fronts(fronts: Mapping[str, object], levels=(5, 10, 20, 30, 50, 75, 100, 150,
                                                         200, 300)) -> list[dict]:
    """For each tokens/s-per-user level some front reaches: the best tokens/s per GPU of
    each front at that level or faster (a side-by-side reading of the staircases)."""
    top = max((float(f["tokens_per_s_per_user"].max()) for f in fronts.values()
               if f is not None and len(f)), default=0.0)
    return [{"tokens_per_s_per_user": float(v),
             **{name: best_at(f, v) for name, f in fronts.items()}}
            for v in levels if v <= top]


__all__ = ["disaggregated_front", "DisaggResult", "Pool", "best_ratio", "kv_transfer",
           "kv_bytes_per_token", "kv_values_per_token", "kv_value_bytes", "pool_spaces",
           "evaluate_pool", "parse_disagg_constraints", "compare_fronts", "best_at",
           "MAX_INSTANCES", "CONSTRAINTS"]
