"""Bad input to the library gets a SpecError naming the argument and what is allowed, or
a right answer: never a traceback from inside, a silent zero or a result for something
it did not understand (issue 12's library cases, then a Hypothesis fuzz of every public
entry point)."""

from __future__ import annotations

import math
import signal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyengine
from pyengine import presets
from pyengine import schema as S
from pyengine.errors import SpecError

MODEL = presets.model("mixtral-8x7b")
HW = presets.hardware("h100-sxm")
BACKENDS = [b for b in ("reference", "numba", "native")
            if pyengine.backends.why_unavailable(b) is None]


def test_decode_without_tokens_is_infeasible_wherever_it_comes_from():
    """Plan() refuses it; a batch row, a Space and a sweep report NO_TOKENS instead of a
    'feasible' plan at 0 tokens/s."""
    with pytest.raises(SpecError, match="gen_tokens"):
        pyengine.Plan(mode="decode", gen_tokens=0)
    res = pyengine.evaluate_batch(MODEL, HW, {"mode": "decode", "gen_tokens": [0, 64],
                                              "global_batch": 64, "tp": 8})
    assert res.violations(0) == ["NO_TOKENS"] and "NO_TOKENS" not in res.violations(1)
    space = pyengine.Space(mode="decode", gen_tokens=[0, 64], global_batch=64, tp=[4, 8])
    for name in BACKENDS:
        feasible, by = pyengine.count_space(MODEL, HW, space, backend=name)
        assert by["NO_TOKENS"] == 2
    result = pyengine.sweep(MODEL, HW, space, backend="numba")
    assert (result.front["gen_tokens"] > 0).all()


def test_space_takes_a_scalar_as_a_fixed_axis():
    space = pyengine.Space(tp=4, recompute="full", pp=[1, 2])
    assert len(space) == 2 and space.plan(1).tp == 4 and space.plan(1).recompute == "full"


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("kw", [dict(start=-100), dict(start=1.5), dict(stop=-1),
                                dict(start=3, stop=2), dict(start="0")])
def test_space_windows_are_checked_on_every_backend(name, kw):
    space = pyengine.Space(tp=[1, 2, 4, 8], pp=[1, 2])
    for fn in (pyengine.count_space, pyengine.evaluate_space, pyengine.feasible_space):
        with pytest.raises(SpecError, match=r"\.(start|stop) ="):
            fn(MODEL, HW, space, backend=name, **kw)


def test_a_window_past_the_end_is_clipped_not_overcounted():
    space = pyengine.Space(tp=[1, 2, 4, 8], pp=[1, 2])
    for name in BACKENDS:
        feasible, by = pyengine.count_space(MODEL, HW, space, 0, 10**12, backend=name)
        assert feasible <= len(space) and max(by.values()) <= len(space)


@pytest.mark.parametrize("args", [
    (None, HW, pyengine.Plan()), ("no-such-model", HW, pyengine.Plan()),
    (MODEL, 3.5, pyengine.Plan()), (MODEL, HW, "tp=8"), (MODEL, HW, {"tp": 0}),
    (MODEL, HW, {"tensor_parallel": 8}), ({"n_layers": 2}, HW, pyengine.Plan()),
])
def test_evaluate_refuses_what_it_cannot_read(args):
    with pytest.raises(SpecError):
        pyengine.evaluate(*args)


def test_evaluate_reads_names_and_dicts():
    r = pyengine.evaluate("mixtral-8x7b", "h100-sxm", {"tp": 8, "global_batch": 8})
    assert r.n_gpus == 8 and r.plan.tp == 8


# ------------------------------------------------------------------ fuzz

BAD_NUMBERS = [0, -1, -0.5, 0.5, 1.5, math.nan, math.inf, -math.inf, 1e400, 2**70, True,
               "8", "eight", None, [2], {}]
SETTINGS = settings(max_examples=60, deadline=None, derandomize=False,
                    suppress_health_check=list(HealthCheck))


class Timeout(Exception):
    pass


def _limited(fn, *args, seconds: int = 20, **kw):
    """fn(*args, **kw) under an alarm: no example may hang."""
    def ring(signum, frame):
        raise Timeout(f"{fn.__name__} took over {seconds} s")

    old = signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)
    try:
        return fn(*args, **kw)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _clean_or_right(fn, *args, must_name: str | None = None, **kw):
    """Either a one-line SpecError naming what is wrong (``must_name``: a text it must
    contain, e.g. the file), or a result for the caller to check."""
    try:
        result = _limited(fn, *args, **kw)
    except SpecError as exc:
        text = str(exc)
        assert "\n" not in text and (exc.field or must_name), text
        assert must_name is None or must_name in text, text
        assert " is not allowed: " in text or " is missing" in text or must_name, text
        return None
    return result


def _finite(values) -> bool:
    return bool(np.isfinite(np.asarray(values, dtype=np.float64)).all())


@SETTINGS
@given(field=st.sampled_from([c.name for c in S.PLAN]), value=st.sampled_from(BAD_NUMBERS))
def test_fuzz_plan_and_evaluate(field, value):
    plan = _clean_or_right(pyengine.Plan, **{field: value})
    if plan is not None:
        r = _clean_or_right(pyengine.evaluate, MODEL, HW, plan)
        if r is not None:
            assert _finite(list(r.outputs.values()))
    r = _clean_or_right(pyengine.evaluate, MODEL, HW, {field: value})
    if r is not None:
        assert _finite(list(r.outputs.values()))


@SETTINGS
@given(field=st.sampled_from([c.name for c in S.PLAN]), value=st.sampled_from(BAD_NUMBERS),
       backend=st.sampled_from(BACKENDS), n=st.integers(1, 5))
def test_fuzz_evaluate_batch(field, value, backend, n):
    cols = {"tp": [1, 2, 4, 8, 1][:n], field: [value] * n if n > 1 else value}
    res = _clean_or_right(pyengine.evaluate_batch, MODEL, HW, cols, backend=backend)
    if res is not None:
        assert len(res) == n and _finite(res.block)
    rows = np.tile(pyengine.engine.pack_plans({"tp": 2}), (n, 1))
    try:
        rows[n - 1, S.PLAN_NAMES.index(field)] = value
    except (TypeError, ValueError, OverflowError):
        return
    res = _clean_or_right(pyengine.evaluate_batch, MODEL, HW, rows, backend=backend)
    if res is not None:
        assert _finite(res.block)


@SETTINGS
@given(field=st.sampled_from([c.name for c in S.PLAN]), value=st.sampled_from(BAD_NUMBERS),
       backend=st.sampled_from(BACKENDS))
def test_fuzz_space_count_feasible_sweep(field, value, backend):
    axes = {"pp": [1, 2], field: [1, value]}
    space = _clean_or_right(pyengine.Space, **axes)
    if space is None:
        return
    got = _clean_or_right(pyengine.count_space, MODEL, HW, space, backend=backend)
    if got is not None:
        assert 0 <= got[0] <= len(space)
    got = _clean_or_right(pyengine.feasible_space, MODEL, HW, space, backend=backend)
    if got is not None:
        assert _finite(got.values)
    _clean_or_right(pyengine.sweep, MODEL, HW, space, backend=backend)


@SETTINGS
@given(field=st.sampled_from(["n_layers", "hidden", "n_heads", "ffn_hidden", "vocab",
                              "n_kv_heads", "n_experts", "top_k", "expert_ffn_hidden",
                              "moe_every", "kv_lora_rank"]),
       value=st.sampled_from(BAD_NUMBERS))
def test_fuzz_model_fields(field, value):
    model = _clean_or_right(MODEL.with_, **{field: value})
    if model is not None:
        r = _clean_or_right(pyengine.evaluate, model, HW, pyengine.Plan(global_batch=8))
        if r is not None:
            assert _finite(list(r.outputs.values()))


@SETTINGS
@given(field=st.sampled_from(["peak_bf16_flops_per_s", "hbm_capacity_bytes",
                              "hbm_bandwidth_bytes_per_s", "gpus_per_node",
                              "intra_node_bandwidth_bytes_per_s", "gemm_eff_max", "net_eff",
                              "op_overhead_s", "memory_overhead_bytes"]),
       value=st.sampled_from(BAD_NUMBERS))
def test_fuzz_hardware_fields(field, value):
    hw = _clean_or_right(HW.with_, **{field: value})
    if hw is not None:
        r = _clean_or_right(pyengine.evaluate, MODEL, hw, pyengine.Plan(global_batch=8))
        if r is not None:
            assert _finite(list(r.outputs.values()))


@SETTINGS
@given(text=st.sampled_from([
    "", "n_layers = ", "name = 'x'\nn_layers = inf", "n_layers = nan", "hidden = 1e400",
    "[table", "n_layers = 32\nhidden = 4096\nn_heads = 32\nffn_hidden = 0\nvocab = 32000",
    '{"n_layers": 32, "hidden": "big"}', '{"model_type": "bert"}', "\xff\xfe", "{",
    '{"n_layers": Infinity}', "peak = 1", "bf16_tflops = -1"]),
       suffix=st.sampled_from([".toml", ".json"]), kind=st.sampled_from(["model", "hardware"]))
def test_fuzz_files(tmp_path_factory, text, suffix, kind):
    path = tmp_path_factory.mktemp("f") / f"spec{suffix}"
    path.write_bytes(text.encode("latin-1"))
    loader = pyengine.loaders.load_model if kind == "model" else pyengine.loaders.load_hardware
    _clean_or_right(loader, path, must_name=str(path))
