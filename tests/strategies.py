"""Hypothesis strategies for models, hardware, limits, plan rows and spaces.

Everything is built through :mod:`pyengine.specs` (so every Model/Hardware/Limits passes
its own validation) and :mod:`pyengine.schema` (plan values come from each PLAN column's
kind and range, so every row passes ``space.validate_plan_values``). Plans are meant to
be hostile: degrees up to 2**20 that divide nothing, capacity factor 0, huge batches,
plans that cannot fit, alongside realistic ones.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from pyengine import schema as S
from pyengine.space import Space
from pyengine.specs import Hardware, Limits, Model

POW2 = [1 << i for i in range(21)]  # degrees up to 2**20


def _maybe(strategy, zero=0):
    return st.one_of(st.just(zero), strategy)


@st.composite
def models(draw, moe: bool | None = None, mla: bool | None = None) -> Model:
    """Dense or MoE; MHA, GQA, MQA or MLA; gated or not; dropout, bias, tied, ..."""
    n_heads = draw(st.sampled_from([1, 2, 3, 4, 8, 12, 16, 20, 32, 40, 48, 64, 96, 128]))
    divisors = [d for d in range(1, n_heads + 1) if n_heads % d == 0]
    n_kv_heads = draw(st.sampled_from([0, *divisors]))
    explicit_head_dim = draw(st.booleans())
    if explicit_head_dim:
        head_dim = draw(st.integers(8, 256))
        hidden = draw(st.integers(16, 32768))
    else:
        head_dim = 0
        hidden = n_heads * draw(st.sampled_from([16, 32, 64, 80, 96, 128, 192, 256]))
    n_layers = draw(st.integers(1, 160))
    use_moe = draw(st.booleans()) if moe is None else moe
    use_mla = draw(st.booleans()) if mla is None else mla
    kw = dict(
        name="m", n_layers=n_layers, hidden=hidden, n_heads=n_heads, n_kv_heads=n_kv_heads,
        head_dim=head_dim,
        ffn_hidden=draw(st.one_of(st.integers(1, 65536), st.sampled_from([4 * hidden]))),
        vocab=draw(st.one_of(st.integers(1, 262144), st.sampled_from([32000, 128256]))),
        gated_mlp=draw(st.booleans()), tied_embeddings=draw(st.booleans()),
        bias=draw(st.booleans()), norm=draw(st.sampled_from(["layernorm", "rmsnorm"])),
        learned_pos_emb=draw(_maybe(st.integers(1, 8192))), dropout=draw(st.booleans()),
    )
    if draw(st.booleans()):  # chunked local attention, some layers global
        kw.update(attention_chunk=draw(st.one_of(st.integers(1, 1 << 16),
                                                 st.sampled_from([8192]))),
                  global_every=draw(st.integers(0, n_layers)))
    if use_moe:
        n_experts = draw(st.one_of(st.integers(1, 256), st.sampled_from([8, 64, 160, 256])))
        kw.update(
            n_experts=n_experts, top_k=draw(st.integers(1, min(n_experts, 8))),
            expert_ffn_hidden=draw(st.integers(1, 16384)),
            n_shared_experts=draw(st.integers(0, 2)),
            first_k_dense=draw(st.integers(0, n_layers - 1)),
            moe_every=draw(st.integers(1, 3)),
        )
        if draw(st.booleans()):  # group-limited routing over a divisor of the experts
            groups = draw(st.sampled_from([g for g in range(1, n_experts + 1)
                                           if n_experts % g == 0]))
            least = -(-kw["top_k"] // (n_experts // groups))
            kw.update(router_groups=groups,
                      router_group_topk=draw(st.integers(least, groups)))
    if use_mla:
        kw.update(
            kv_lora_rank=draw(st.integers(16, 1024)),
            q_lora_rank=draw(_maybe(st.integers(16, 2048))),
            rope_head_dim=draw(_maybe(st.integers(8, 128))),
            v_head_dim=draw(_maybe(st.integers(8, 256))),
        )
    else:
        kw.update(v_head_dim=draw(_maybe(st.integers(8, 256))))
    return Model(**kw)


def _attention(draw, prefix: str, dim_half: bool, bwd_optional: bool = False) -> dict:
    """Fused-attention rates ({prefix}_eff_fwd/bwd, {prefix}_seq_half): none, or drawn
    (with bwd_optional, the backward rate may be 0: no figures for it)."""
    if not draw(st.booleans()):
        return {}
    bwd = st.floats(0.01, 1.0)
    if bwd_optional:
        bwd = st.one_of(st.just(0.0), bwd)
    kw = {f"{prefix}_eff_fwd": draw(st.floats(0.01, 1.0)),
          f"{prefix}_eff_bwd": draw(bwd),
          f"{prefix}_seq_half": draw(st.floats(0.0, 1e5))}
    if dim_half:
        kw["attn_dim_half"] = draw(st.floats(0.0, 1024.0))
    return kw


@st.composite
def hardware(draw) -> Hardware:
    peak = draw(st.floats(1e12, 5e15))
    return Hardware(
        **_attention(draw, "attn", True), **_attention(draw, "fa2", False),
        **_attention(draw, "attn_fp8", False, bwd_optional=True),
        **(dict(mea_eff=draw(st.floats(0.01, 1.0)), mea_seq_half=draw(st.floats(0.0, 1e5)))
           if draw(st.booleans()) else {}),
        **_attention(draw, "cudnn", False),
        name="hw",
        peak_bf16_flops_per_s=peak,
        peak_fp8_flops_per_s=draw(st.one_of(st.just(0.0), st.just(2.0 * peak),
                                            st.floats(1e12, 1e16))),
        peak_fp4_flops_per_s=draw(st.one_of(st.just(0.0), st.just(4.0 * peak),
                                            st.floats(1e12, 4e16))),
        hbm_capacity_bytes=draw(st.floats(4e9, 4e11)),
        hbm_bandwidth_bytes_per_s=draw(st.floats(1e11, 2e13)),
        gpus_per_node=draw(st.sampled_from([1, 2, 4, 8, 16, 72, 3, 1 << 16])),
        intra_node_bandwidth_bytes_per_s=draw(st.floats(1e9, 4e12)),
        inter_node_bandwidth_bytes_per_s=draw(st.floats(1e8, 1e12)),
        intra_node_latency_s=draw(st.floats(0.0, 1e-4)),
        inter_node_latency_s=draw(st.floats(0.0, 1e-3)),
        gemm_eff_max=draw(st.floats(0.05, 1.0)),
        gemm_eff_max_fp8=draw(st.floats(0.05, 1.0)),
        gemm_eff_max_fp4=draw(st.one_of(st.just(0.0), st.floats(0.05, 1.0))),
        gemm_dim_half=draw(st.floats(1.0, 2048.0)),
        gemm_token_half_serve=draw(st.one_of(st.just(0.0), st.floats(1.0, 2048.0))),
        hbm_eff=draw(st.floats(0.05, 1.0)),
        net_eff=draw(st.floats(0.05, 1.0)),
        inter_eff=draw(st.floats(0.05, 1.0)),
        op_overhead_s=draw(st.floats(0.0, 1e-4)),
        launch_overhead_s=draw(st.one_of(st.just(0.0), st.floats(0.0, 1e-4))),
        step_overhead_s=draw(st.one_of(st.just(0.0), st.floats(0.0, 1e-2))),
        request_overhead_s=draw(st.one_of(st.just(0.0), st.floats(0.0, 1e-3))),
        memory_overhead_bytes=draw(st.floats(0.0, 1e10)),
        runtime_buffer_bytes=draw(st.one_of(st.just(0.0), st.floats(0.0, 1e10))),
        host_link_bandwidth_bytes_per_s=draw(st.floats(1e9, 1e12)),
        grouped_gemm_eff_serve=draw(st.one_of(st.just(1.0), st.floats(0.05, 2.0))),
    )


@st.composite
def limits(draw) -> Limits:
    return Limits(
        gpus_exact=draw(st.one_of(st.just(0), st.sampled_from(POW2), st.integers(1, 1 << 20))),
        gpus_max=draw(st.one_of(st.just(0), st.sampled_from(POW2), st.integers(1, 1 << 24))),
        mem_fraction=draw(st.floats(0.01, 1.0)),
    )


def _int_values(col: S.Column):
    lo, hi = int(col.lo), int(col.hi)
    small = st.integers(lo, min(hi, 64))
    if col.name in ("global_batch", "micro_batch", "seq_len", "gen_tokens"):
        # realistic sizes, powers of two, and huge ones
        realistic = st.sampled_from([v for v in (1, 2, 8, 128, 512, 1024, 2048, 4096, 8192,
                                                 32768, 131072) if lo <= v <= hi])
        return st.one_of(small, realistic, st.integers(lo, hi))
    # parallel degrees (and zero, vpp, etp): small, powers of two up to 2**20, odd sizes
    return st.one_of(small, st.sampled_from([v for v in POW2 if lo <= v <= hi]),
                     st.integers(lo, min(hi, 1 << 20)))


def column_values(col: S.Column):
    """Kernel values allowed for plan column `col` (from its kind and range in schema.PLAN)."""
    if col.kind == "choice":
        return st.integers(0, len(col.choices) - 1).map(float)
    if col.kind == "bool":
        return st.sampled_from([0.0, 1.0])
    if col.kind == "int":
        return _int_values(col).map(float)
    # float columns (capacity factor, load imbalance): the lowest allowed (capacity 0: no
    # capacity), usual values, anything in range, huge
    usual = [v for v in (col.lo, 1.0, 1.25, 2.0) if col.lo <= v <= col.hi]
    return st.one_of(st.sampled_from(usual),
                     st.floats(col.lo, col.hi, allow_nan=False, allow_infinity=False),
                     st.floats(col.lo, min(col.hi, max(col.lo, 4.0))))


def plan_rows(n_min: int = 1, n_max: int = 64):
    """[n, N_PLAN] float64 C-contiguous plan rows, valid for pack_plans but often infeasible.

    Some batches repeat a row with only the trailing columns changed, so backends that
    reuse per-layer costs between consecutive rows are exercised as well.
    """
    row = st.tuples(*[column_values(c) for c in S.PLAN]).map(list)

    @st.composite
    def build(draw):
        rows = draw(st.lists(row, min_size=n_min, max_size=n_max))
        if draw(st.booleans()) and rows:
            cut = draw(st.integers(0, S.N_PLAN - 1))
            for i in range(1, len(rows)):
                if draw(st.booleans()):
                    rows[i] = rows[i - 1][:cut] + rows[i][cut:]
        return np.ascontiguousarray(np.array(rows, dtype=np.float64).reshape(-1, S.N_PLAN))

    return build()


@st.composite
def spaces(draw, max_size: int = 256) -> Space:
    """A small Space: a few columns with 1-4 values each, the others fixed to one value."""
    axes: dict[str, list] = {}
    size = 1
    order = draw(st.permutations(list(S.PLAN)))
    for col in order:
        most = max(1, min(4, max_size // size))
        vals = draw(st.lists(column_values(col), min_size=1, max_size=most, unique=True))
        axes[col.name] = vals
        size *= len(vals)
    return Space(limits=draw(limits()), **axes)


def mixtral_like() -> tuple[Model, Hardware]:
    """A fixed Mixtral-8x22B-shaped MoE on H100-like hardware (uncalibrated defaults):
    the concrete case the backend and GPU tests evaluate beside the random ones."""
    m = Model(name="mix", n_layers=56, hidden=6144, n_heads=48, n_kv_heads=8,
              ffn_hidden=16384, vocab=32768, gated_mlp=True, n_experts=8, top_k=2,
              expert_ffn_hidden=16384)
    h = Hardware(name="h100", peak_bf16_flops_per_s=989e12, peak_fp8_flops_per_s=1979e12,
                 hbm_capacity_bytes=80e9, hbm_bandwidth_bytes_per_s=3.35e12, gpus_per_node=8,
                 intra_node_bandwidth_bytes_per_s=450e9,
                 inter_node_bandwidth_bytes_per_s=50e9)
    return m, h
