"""The serving front: `pyengine sweep --mode serve`, tokens/s per GPU against tokens/s per
user (1 / inter-token latency) under TTFT and inter-token-latency limits, and its plot."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
from pareto_oracle import brute_front
from test_sweep import DENSE, GPU, MOE

from pyengine import Space, cli, cli_sweep
from pyengine.engine import evaluate_space
from pyengine.errors import SpecError
from pyengine.loaders import spec_to_toml
from pyengine.specs import Plan
from pyengine.sweep import (
    DEFAULT_OBJECTIVES,
    SERVE_OBJECTIVES,
    default_objectives,
    parse_constraints,
    sweep,
)

SERVE = [("tokens_per_s_per_gpu", "max"), ("tokens_per_s_per_user", "max")]
BACKENDS = ["numba", "native", "reference"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("specs")
    model, moe, hw = d / "tiny-dense.toml", d / "tiny-moe.toml", d / "gpu.toml"
    model.write_text(spec_to_toml(DENSE))
    moe.write_text(spec_to_toml(MOE))
    hw.write_text(spec_to_toml(GPU))
    return str(model), str(hw), str(moe)


def main(argv, capsys):
    rc = cli.main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def serve_argv(files, *extra, backend="numba"):
    m, h, _ = files
    return ["sweep", "-m", m, "-H", h, "--max-gpus", "8", "--mode", "serve", "--seq-len", "1024",
            "--gen-tokens", "64", "--cp", "1", "--pp", "1,2", "--backend", backend, *extra]


def per_user(tpot):
    tpot = np.asarray(tpot, dtype=float)
    return np.where(tpot > 0, 1.0 / np.where(tpot > 0, tpot, 1.0), 0.0)


def oracle_front(model, space, constraints=None, objectives=SERVE):
    """Every plan evaluated, the derived column computed here, the front by brute force."""
    limits, bounds = parse_constraints(constraints, space.limits)
    full = copy.copy(space)
    full.limits = limits
    res = evaluate_space(model, GPU, full, backend="numba")

    def col(name):
        return per_user(res["tpot_s"]) if name == "tokens_per_s_per_user" else res[name]

    ok = res.codes == 0
    for b in bounds:
        v = col(b.column)
        ok &= (v >= b.value) if b.kind == "min" else (v <= b.value)
    pos = np.flatnonzero(ok)
    values = np.stack([col(c)[pos] for c, _ in objectives], axis=1)
    return pos[brute_front(values, [s for _, s in objectives])]


def serve_space(**axes):
    axes = {"tp": [1, 2, 4], "dp": [1, 2, 4, 8], "micro_batch": [1, 2, 4],
            "global_batch": [1, 2, 4, 8, 16, 32, 64], **axes}
    return Space(mode=["decode"], base=Plan(seq_len=1024, gen_tokens=64), **axes)


# --------------------------------------------------------------------------- library


def test_default_objectives_follow_the_modes():
    assert default_objectives(serve_space()) == SERVE_OBJECTIVES == tuple(SERVE)
    assert default_objectives(Space()) == DEFAULT_OBJECTIVES
    assert default_objectives(Space(mode=["train", "decode"])) == DEFAULT_OBJECTIVES
    assert default_objectives(Space(mode=["prefill"])) == DEFAULT_OBJECTIVES
    assert default_objectives(None) == DEFAULT_OBJECTIVES


@pytest.mark.parametrize("backend", BACKENDS)
def test_serving_front_equals_brute_force(backend):
    space = serve_space()
    r = sweep(DENSE, GPU, space, backend=backend, chunk_size=97, top_k=5)
    assert r.objectives == SERVE_OBJECTIVES
    np.testing.assert_array_equal(r.front_index, oracle_front(DENSE, space))
    assert len(r.front) > 3
    for table in (r.front, r.top, r.sample):
        np.testing.assert_array_equal(table["tokens_per_s_per_user"], per_user(table["tpot_s"]))
    # best-first by tokens/s per GPU: then tokens/s per user rises along the front
    assert (np.diff(r.front["tokens_per_s_per_gpu"]) <= 0).all()
    assert (np.diff(r.front["tokens_per_s_per_user"]) >= 0).all()


def test_derived_bounds_sort_keys_and_mixed_modes():
    space = Space(mode=["train", "decode"], tp=[1, 2, 4], dp=[1, 2, 4], micro_batch=[1, 2],
                  global_batch=[4, 16], base=Plan(seq_len=1024, gen_tokens=64))
    objs = [("tokens_per_s_per_user", "max"), ("n_gpus", "min")]
    r = sweep(DENSE, GPU, space, objectives=objs, backend="numba", chunk_size=50,
              sort_by="tokens_per_s_per_user", top_k=4)
    np.testing.assert_array_equal(r.front_index, oracle_front(DENSE, space, objectives=objs))
    train = r.sample["mode"] == "train"
    assert train.any() and (r.sample.loc[train, "tokens_per_s_per_user"] == 0).all()
    assert (np.diff(r.top["tokens_per_s_per_user"]) <= 0).all()
    floor = float(r.sample.loc[~train, "tokens_per_s_per_user"].median())
    b = sweep(DENSE, GPU, space, backend="numba",
              constraints={"min_tokens_per_s_per_user": floor})
    assert b.counts["by_reason"]["MIN_TOKENS_PER_S_PER_USER"] > 0
    assert (b.front["tokens_per_s_per_user"] >= floor).all()


def test_derived_column_needs_decode_plans():
    train = Space(tp=[1, 2])
    for kw in ({"objectives": ["tokens_per_s_per_user:max"]},
               {"sort_by": "tokens_per_s_per_user"},
               {"constraints": {"min_tokens_per_s_per_user": 1.0}}):
        with pytest.raises(SpecError, match="decode"):
            sweep(DENSE, GPU, train, backend="numba", **kw)
    with pytest.raises(SpecError, match="tokens_per_s_per_user"):
        sweep(DENSE, GPU, train, objectives=["per_user:max"])
    # a training sweep's tables do not carry it
    r = sweep(DENSE, GPU, train, backend="numba")
    assert "tokens_per_s_per_user" not in r.front


def test_dask_serving_front_is_identical_to_local():
    distributed = pytest.importorskip("distributed")
    space = serve_space()
    constraints = {"max_tpot_s": 5e-3}
    local = sweep(DENSE, GPU, space, backend="numba", constraints=constraints, top_k=6,
                  sample_size=100)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  host="127.0.0.1", protocol="tcp", dashboard_address=None,
                                  silence_logs=40) as lc, distributed.Client(lc) as client:
        remote = sweep(DENSE, GPU, space, backend="numba", constraints=constraints, top_k=6,
                       sample_size=100, chunk_size=64, client=client)
    assert remote.backend == "dask:numba" and remote.objectives == SERVE_OBJECTIVES
    assert local.counts == remote.counts
    pd.testing.assert_frame_equal(local.front, remote.front)
    pd.testing.assert_frame_equal(local.top, remote.top)
    pd.testing.assert_frame_equal(local.sample, remote.sample)


# --------------------------------------------------------------------------- command line


@pytest.mark.parametrize("backend", BACKENDS)
def test_mode_serve_gives_the_serving_front(files, capsys, backend):
    rc, out, err = main(serve_argv(files, "--json", backend=backend), capsys)
    assert rc == 0, err
    d = json.loads(out)
    assert d["objectives"] == [{"column": c, "sense": s} for c, s in SERVE]
    assert d["axes"]["global_batch"] == cli_sweep.SERVE_BATCHES  # concurrency swept
    assert "mode" not in d["axes"] and "warning" not in d
    front = pd.DataFrame(d["front"])
    assert (front["mode"] == "decode").all() and len(front) > 2
    np.testing.assert_allclose(front["tokens_per_s_per_user"], 1.0 / front["tpot_s"],
                               rtol=1e-12)
    # serve is decode: the same sweep
    rc, again, _ = main([a if a != "serve" else "decode" for a in serve_argv(
        files, "--json", backend=backend)], capsys)
    assert rc == 0 and json.loads(again)["front"] == d["front"]


def test_printed_front_shows_tokens_per_user(files, capsys):
    rc, out, err = main(serve_argv(files, "--top", "2"), capsys)
    assert rc == 0 and err == ""
    assert "tok/s/user" in out and "TPOT ms" in out and "TTFT ms" in out
    assert "max tokens_per_s_per_gpu, max tokens_per_s_per_user" in out


def test_latency_limits_constrain_the_front(files, capsys):
    rc, out, _ = main(serve_argv(files, "--json"), capsys)
    free = pd.DataFrame(json.loads(out)["front"])
    itl = float(free["tpot_s"].median()) * 1e3
    ttft = float(free["ttft_s"].median()) * 1e3
    rc, out, err = main(serve_argv(files, "--json", "--max-itl-ms", f"{itl!r}",
                                   "--max-ttft-ms", f"{ttft!r}"), capsys)
    assert rc == 0, err
    d = json.loads(out)
    front = pd.DataFrame(d["front"])
    assert len(front) and (front["tpot_s"] <= itl * 1e-3).all()
    assert (front["ttft_s"] <= ttft * 1e-3).all()
    assert d["counts"]["by_reason"]["MAX_TPOT_S"] > 0
    assert d["counts"]["by_reason"]["MAX_TTFT_S"] > 0
    # --max-tpot-ms is the same limit; both with one value are fine
    for flags in (["--max-tpot-ms", f"{itl!r}"],
                  ["--max-tpot-ms", f"{itl!r}", "--max-itl-ms", f"{itl!r}"]):
        rc, same, _ = main(serve_argv(files, "--json", "--max-ttft-ms", f"{ttft!r}", *flags),
                           capsys)
        assert rc == 0 and json.loads(same)["front"] == d["front"]


def test_derived_column_in_out_files(files, capsys, tmp_path):
    for suffix in (".csv", ".json", ".parquet"):
        path = tmp_path / f"front{suffix}"
        rc, _, err = main(serve_argv(files, "--out", str(path)), capsys)
        assert rc == 0, err
        if suffix == ".csv":
            df = pd.read_csv(path)
        elif suffix == ".json":
            df = pd.DataFrame(json.loads(path.read_text())["front"])
        else:
            pytest.importorskip("pyarrow")
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            assert table.schema.field("tokens_per_s_per_user").metadata[b"unit"] == b"tok/s"
            df = table.to_pandas()
        assert len(df)
        np.testing.assert_allclose(df["tokens_per_s_per_user"], 1.0 / df["tpot_s"], rtol=1e-12)


@pytest.mark.parametrize("argv,words", [
    (["--objective", "speed:max"], ["--objective", "'speed'", "tokens_per_s_per_gpu",
                                    "tpot_s", "tokens_per_s_per_user"]),
    (["--objective", "mfu:up"], ["--objective", "'mfu:up'", "'min' or 'max'"]),
    (["--sort-by", "speed"], ["--sort-by", "'speed'", "an output column"]),
    (["--max-itl-ms", "20", "--max-tpot-ms", "30"], ["--max-itl-ms", "--max-tpot-ms", "one"]),
])
def test_bad_serve_options_are_one_line(files, capsys, argv, words):
    rc, out, err = main(serve_argv(files, *argv), capsys)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("pyengine sweep: error: ")
    for w in words:
        assert w in err


@pytest.mark.parametrize("flag", ["--objective", "--sort-by"])
def test_tokens_per_user_on_a_train_sweep(files, capsys, flag):
    m, h, _ = files
    rc, _, err = main(["sweep", "-m", m, "-H", h, "--max-gpus", "8", "--global-batch", "16",
                       "--backend", "numba", flag, "tokens_per_s_per_user:max"], capsys)
    assert rc == 2 and err.count("\n") == 1
    assert flag in err and "--mode serve" in err and "train" in err


def test_mode_serve_in_help_and_errors(files, capsys):
    rc, out, _ = main(["sweep", "--help"], capsys)
    assert rc == 0 and "serve (= decode" in " ".join(out.split())
    assert "--max-itl-ms" in out
    rc, _, err = main(serve_argv(files, "--mode", "serving"), capsys)
    assert rc == 2 and "serve (= decode)" in err


# --------------------------------------------------------------------------- plot


def labels(fig):
    return [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes]


def test_plot_serve_axes(files, capsys, tmp_path):
    pytest.importorskip("matplotlib")
    from pyengine.plot import plot_front

    path = tmp_path / "serve.png"
    rc, out, err = main(serve_argv(files, "--plot", str(path), "--max-ttft-ms", "500"), capsys)
    assert rc == 0 and path.stat().st_size > 10_000, err
    r = sweep(DENSE, GPU, serve_space(), backend="numba", constraints={"max_ttft_s": 0.5})
    fig = plot_front(r)
    assert len(fig.axes) == 1
    (x, y), = labels(fig)
    assert "tokens/s per user" in x and "tokens/s per GPU" in y
    title = fig._suptitle.get_text()
    assert "tokens_per_s_per_gpu" in title and "tokens_per_s_per_user" in title
    assert "ttft_s \u2264 500 ms" in title
    # the staircase: tokens/s per GPU falls as tokens/s per user rises (both maximised)
    stair = fig.axes[0].get_lines()[0]
    x, y = np.asarray(stair.get_xdata()), np.asarray(stair.get_ydata())
    o = np.argsort(x, kind="stable")
    assert (np.diff(y[o]) <= 0).all() and y.max() == r.front["tokens_per_s_per_gpu"].max()


def test_plot_one_panel_per_extra_objective_in_readable_units():
    pytest.importorskip("matplotlib")
    from pyengine.plot import plot_front

    objs = ["tokens_per_s_per_gpu:max", "tokens_per_s_per_user:max", "ttft_s:min",
            "mem_total_bytes:min"]
    r = sweep(DENSE, GPU, serve_space(), objectives=objs, backend="numba", sample_size=100)
    fig = plot_front(r)
    xs = [x for x, _ in labels(fig)]
    assert len(fig.axes) == 3
    assert "per user" in xs[0] and "(ms)" in xs[1] and "GiB" in xs[2]
    assert "tokens/s per GPU" in fig.axes[0].get_ylabel()
    ttft_ms = r.front["ttft_s"].to_numpy() * 1e3
    shown = fig.axes[1].collections[-1].get_offsets()[:, 0]
    np.testing.assert_allclose(np.sort(shown), np.sort(ttft_ms))
    # two objectives, the second one first on y: x = the second
    r2 = sweep(DENSE, GPU, serve_space(), objectives=["tpot_s:min", "n_gpus:min"],
               backend="numba")
    (x, y), = labels(plot_front(r2))
    assert "GPUs" in x and "(ms)" in y


def test_plot_training_default_is_unchanged():
    pytest.importorskip("matplotlib")
    from pyengine.plot import plot_front

    space = Space(tp=[1, 2, 4], pp=[1, 2], dp=[1, 2, 4], micro_batch=[1, 2],
                  recompute=["none", "full"], base=Plan(global_batch=16, seq_len=2048))
    r = sweep(MOE, GPU, space, backend="numba", sample_size=100)
    fig = plot_front(r)
    (x1, y1), (x2, _) = labels(fig)
    assert "GPUs" in x1 and "GiB" in x2 and "tokens/s per GPU" in y1
    assert any(ln.get_linestyle() == "--" for ln in fig.axes[1].get_lines())  # usable HBM
