"""Fuzzing every subcommand's options: bad input is one line and exit 2, or a valid answer.

Hypothesis draws command lines for explain, evaluate, sweep, presets, validate and bench
(tiny model, tiny spaces, tiny benchmark sizes) whose values are often bad: zero,
negative, NaN, infinite, huge, of the wrong type, misspelled, missing, or files that are
truncated, corrupted or absent. Each is run in-process through ``pyengine.cli.main`` under
a time limit and must end in one of two ways:

- exit status 2 and ONE line on stderr that names a flag or file of the command line and
  says what is allowed (or where to read it);
- exit status 0 with output that parses and holds no NaN or infinity.

Never a traceback, a NaN, a hang or any other exit status. ``PYENGINE_FUZZ_EXAMPLES``
scales the number of examples (default 1: the CI budget); ``PYENGINE_FUZZ_RANDOM=1``
draws new examples instead of the fixed, derandomised ones.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pytest
from cli_helpers import run_cli, tiny_specs
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pyengine import schema as S
from pyengine.specs import RECOMPUTE
from pyengine.validate import DATASETS

SCALE = float(os.environ.get("PYENGINE_FUZZ_EXAMPLES", "1"))
SECONDS = 20.0  # per command line: far beyond any tiny run, short of a hang


def fuzz_settings(examples: int):
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None,
                    derandomize=os.environ.get("PYENGINE_FUZZ_RANDOM") != "1",
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture],
                    database=None)


# --------------------------------------------------------------------------- files


FILES: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def files(tmp_path_factory):
    """Spec files: valid, truncated at several places, with a field made bad, not there,
    a directory, bytes that are not text."""
    root = tmp_path_factory.mktemp("fuzz")
    model, hw = tiny_specs(root)
    FILES.update(model=model, hw=hw, dir=str(root), missing=str(root / "absent.toml"))
    for kind, path in (("model", model), ("hw", hw)):
        text = Path(path).read_text()
        for k in (1, 4, 7):  # cut mid-line: TOML that ends early
            cut = root / f"{kind}-cut{k}.toml"
            cut.write_text(text[: len(text) * k // 9 + 3])
            FILES[f"{kind}-cut{k}"] = str(cut)
        junk = root / f"{kind}-junk.json"
        junk.write_bytes(b'{"n_layers": 8, \xff\xfe')
        FILES[f"{kind}-junk"] = str(junk)
    for name, field, bad in (("hw-zero-gpus", "gpus_per_node = 8", "gpus_per_node = 0"),
                             ("hw-nan", "hbm_eff = 0.85", "hbm_eff = nan"),
                             ("hw-inf", "peak_bf16_flops_per_s = 989000000000000.0",
                              "peak_bf16_flops_per_s = inf"),
                             ("hw-tiny", "peak_bf16_flops_per_s = 989000000000000.0",
                              "peak_bf16_flops_per_s = 1e-300")):
        path = root / f"{name}.toml"
        path.write_text(Path(hw).read_text().replace(field, bad))
        FILES[name] = str(path)
    for name, field, bad in (("model-huge", "n_layers = 8", "n_layers = 100000"),
                             ("model-neg", "hidden = 1024", "hidden = -1"),
                             ("model-str", "vocab = 32000", 'vocab = "many"')):
        path = root / f"{name}.toml"
        path.write_text(Path(model).read_text().replace(field, bad))
        FILES[name] = str(path)
    (root / "out").mkdir()
    FILES["out"] = str(root / "out")
    return root


def spec_file(kind: str):
    """A model or hardware that is broken: truncated, a bad field, absent, a folder, junk,
    no preset by that name."""
    broken = sorted(k for k in FILES if k.startswith(kind + "-"))
    return st.one_of(st.sampled_from(broken + ["dir", "missing"]).map(FILES.get),
                     st.sampled_from(["no-such-preset", "", "h100-sxm" if kind == "hw" else
                                      "llama3-8b"]))


def targets():
    return ["-m", FILES["model"], "-H", FILES["hw"]]


# --------------------------------------------------------------------------- values

BAD_NUMBERS = ["0", "-1", "-0", "nan", "NaN", "inf", "-inf", "1e400", "1e12", "1e-300",
               "2.5", "abc", "", " ", "1,2", "0x10", "1_000", str(2**63), "9" * 40, "true",
               "[1]", "--", "1e9", "16777217"]


def bad():
    return st.one_of(st.sampled_from(BAD_NUMBERS), st.integers(-2, 40).map(str),
                     st.floats(allow_nan=True, allow_infinity=True).map(repr))


def mixed(*valid):
    """Three in four draws valid (so the commands run to the end), the fourth often bad."""
    good = st.sampled_from([str(v) for v in valid])
    return st.one_of(good, good, good, bad())


def choice(options):
    wrong = st.sampled_from([o.upper() for o in options] + ["", "x", "none,"])
    return st.one_of(st.sampled_from(list(options)), st.sampled_from(list(options)), wrong)


def comma_list(item):
    return st.lists(item, min_size=1, max_size=3).map(",".join)


VALID = {"micro_batch": (1, 2), "seq_len": (512, 1024, 4096), "gen_tokens": (1, 16),
         "tp": (1, 2, 4, 8), "cp": (1, 2), "ep": (1, 2, 8), "etp": (0, 1, 2),
         "capacity_factor": (0.5, 1, 1.25), "global_batch": (8, 16), "pp": (1, 2, 3),
         "dp": (1, 2, 4), "vpp": (1, 2), "zero": (0, 1, 2, 3), "pp_first_layers": (0, 2),
         "pp_last_layers": (0, 1), "recompute_layers": (0, 1), "cpu_offload_layers": (0, 2),
         "moe_load_imbalance": (1, 1.25), "max_num_tokens": (0, 2048, 8192),
         "kv_cache_fraction": (0, 0.9), "kv_block_tokens": (16, 32)}


def plan_value(col, for_sweep: bool):
    if col.kind == "choice":
        v = choice(col.choices)
    elif col.kind == "bool":
        v = choice(("on", "off", "true", "0"))
    else:
        v = mixed(*VALID[col.name])
    return comma_list(v) if for_sweep else v


def misspelled(flags):
    """A flag no command has: a letter dropped or doubled, or a near word."""
    def mutate(args):
        flag, i, how = args
        i = 2 + i % max(1, len(flag) - 2)
        return flag[:i] + flag[i + 1:] if how else flag[:i] + flag[i] + flag[i:]

    return st.tuples(st.sampled_from(sorted(flags)), st.integers(0, 30), st.booleans()).map(
        mutate).filter(lambda f: f not in flags)


@st.composite
def command_line(draw, base, options, max_options=4):
    """``base`` plus some of ``options`` (flag -> value strategy, or None for a switch),
    now and then a misspelled flag or a flag left without its value."""
    argv = list(base)
    for flag in draw(st.lists(st.sampled_from(sorted(options)), max_size=max_options,
                              unique=True)):
        value = options[flag]
        argv += [flag] if value is None else [flag, draw(value)]
    # (Hypothesis favours the first entries and the ends of ranges: the common case first)
    trouble = draw(st.sampled_from([None] * 10 + ["misspelled", "no value"]))
    valued = sorted(f for f, v in options.items() if v is not None)
    if trouble == "misspelled":
        argv.append(draw(misspelled(options)))
    elif trouble == "no value" and valued:
        argv.append(draw(st.sampled_from(valued)))
    return argv


# --------------------------------------------------------------------------- the oracle


ALLOWED_WORDS = ("allowed", "expected", "choose from", "one of", "must", "required",
                 "did you mean", "--help", "install", "not valid", "needs", "no file",
                 "cannot", "No such file", "Is a directory", "not UTF-8", "unknown",
                 "missing", "holds no", "empty", "given twice", "differ", "outside any real")


def names_of(argv) -> set[str]:
    """What an error line may name: the flags of argv (with dashes or as the field), and
    the files."""
    names = set()
    for tok in argv:
        if tok.startswith("--"):
            flag = tok.split("=")[0]
            names |= {flag, flag[2:].replace("-", "_")}
        elif tok in ("-m", "-H"):
            names |= {"--model", "--hardware", "model", "hardware"}
        elif "/" in tok or tok.endswith((".csv", ".json", ".toml")):
            names |= {tok, Path(tok).name}
    names.discard("")
    return names


NON_FINITE = re.compile(r"\b(nan|inf|infinity)\b", re.IGNORECASE)


def _reject_constant(text):
    raise AssertionError(f"{text} in JSON output")


def check_outcome(argv, rc, out, err):
    assert "Traceback" not in err and "Traceback" not in out, err
    if rc == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        line = lines[0]
        assert any(n in line for n in names_of(argv)), (argv, line)
        assert any(w in line for w in ALLOWED_WORDS), (argv, line)
        return
    assert rc == 0, (argv, rc, err)
    assert out.strip(), argv
    if "--json" in argv:
        json.loads(out, parse_constant=_reject_constant)
    else:
        assert not NON_FINITE.search(out), (argv, NON_FINITE.search(out))
    for line in err.splitlines():  # only warnings may come with a result
        assert ": warning: " in line, (argv, err)


def run_and_check(argv):
    rc, out, err = run_cli(argv, seconds=SECONDS)
    event(f"exit status {rc}")  # --hypothesis-show-statistics: how many ran to the end
    check_outcome(argv, rc, out, err)
    return rc, out


# --------------------------------------------------------------------------- explain


def explain_options():
    opts = {"--" + c.name.replace("_", "-"): plan_value(c, False) for c in S.PLAN
            if c.kind != "bool"}
    for c in S.PLAN:
        if c.kind == "bool":
            opts["--" + c.name.replace("_", "-")] = None
            opts["--no-" + c.name.replace("_", "-")] = None
    opts.update({"--mem-fraction": mixed(0.5, 1), "--mem-headroom": mixed(0.9), "--json": None})
    return opts


@fuzz_settings(150)
@given(data=st.data())
def test_fuzz_explain(data):
    base = ["explain", *targets(), "--global-batch", "16", "--seq-len", "1024"]
    argv = data.draw(command_line(base, explain_options(), max_options=5))
    rc, out = run_and_check(argv)
    if rc == 0 and "--json" in argv:
        d = json.loads(out)
        if d["feasible"]:  # a feasible plan has a positive, finite step and rate
            assert d["time"]["step"] > 0 and math.isfinite(d["time"]["step"])
            assert d["tokens_per_s"] is not None and d["tokens_per_s"] > 0


# --------------------------------------------------------------------------- evaluate


CELLS = {"tp": mixed(1, 2), "pp": mixed(1, 2), "dp": mixed(1, 2), "ep": mixed(1, 2),
         "global_batch": mixed(8, 16), "mode": choice(("train", "prefill", "decode")),
         "recompute": choice(RECOMPUTE), "sequence_parallel": choice(("true", "false", "1")),
         "gen_tokens": mixed(1, 8), "capacity_factor": mixed(1, 0.5)}


@st.composite
def plans_file(draw):
    """A CSV or JSON file of plans drawn cell by cell; now and then with an unknown
    column, a ragged row, no rows, or cut short."""
    columns = draw(st.lists(st.sampled_from(sorted(CELLS)), min_size=1, max_size=4,
                            unique=True))
    flaw = draw(st.sampled_from([None] * 8 + ["column", "ragged", "empty", "cut"]))
    if flaw == "column":
        columns.append("pipeline")  # not a plan column
    rows = [[draw(CELLS.get(c, st.just("2"))) for c in columns]
            for _ in range(0 if flaw == "empty" else draw(st.integers(1, 4)))]
    if flaw == "ragged":
        rows[-1] = rows[-1][:-1]
    if draw(st.booleans()):
        suffix = ".csv"
        text = ",".join(columns) + "\n" + "".join(",".join(r) + "\n" for r in rows)
    else:
        suffix = ".json"
        text = json.dumps([dict(zip(columns, r)) for r in rows])
    if flaw == "cut":
        text = text[: draw(st.integers(1, max(1, len(text) - 1)))]
    path = Path(FILES["dir"]) / f"plans-{draw(st.integers(0, 10**9))}{suffix}"
    path.write_text(text)
    return str(path)


@fuzz_settings(150)
@given(data=st.data())
def test_fuzz_evaluate(data):
    out = Path(FILES["out"])
    plans = data.draw(st.one_of(plans_file(), st.sampled_from(
        [FILES["missing"], FILES["dir"], FILES["model"]])))
    base = ["evaluate", *targets(), plans]
    options = {"--backend": choice(("auto", "native", "numba", "reference")),
               "--out": st.sampled_from([str(out / "r.json"), str(out) + ".csv",
                                         str(out / "x" / "r.csv"), FILES["dir"], "r.txt"]),
               "--json": None}
    run_and_check(data.draw(command_line(base, options)))


# --------------------------------------------------------------------------- sweep


def sweep_options():
    opts = {"--" + c.name.replace("_", "-"): plan_value(c, True) for c in S.PLAN}
    output = Path(FILES["out"])
    opts.update({
        "--gpus": mixed(1, 4, 8), "--max-gpus": mixed(8, 16, 64), "--all-zero": None,
        "--objective": st.sampled_from(["tokens_per_s_per_gpu:max", "tpot_s:min", "mfu",
                                        "mfu:up", "nope:max", ""]),
        "--sort-by": st.sampled_from(["n_gpus", "mfu:max", "x", "time_step_s:min"]),
        "--mem-fraction": mixed(0.5, 0.9), "--mem-headroom": mixed(1),
        "--min-tokens-per-s": mixed(0, 1000), "--min-tokens-per-s-per-gpu": mixed(10),
        "--max-tpot-ms": mixed(50, "inf"), "--max-ttft-ms": mixed(1000),
        "--max-dropped": mixed(0, 0.1, 1), "--duplicates": choice(("all", "first")),
        "--top": mixed(0, 3), "--front-rows": mixed(0, 5),
        "--chunk-size": st.sampled_from(["0", "-5", "abc", "1.5", "67108865", "4096", "nan",
                                         "1000"]),
        "--backend": choice(("auto", "native", "numba")),
        "--scheduler-timeout": bad(), "--worker-timeout": bad(),
        "--out": st.sampled_from([str(output) + ".json", str(output) + ".csv",
                                  str(output) + ".xlsx", str(output / "x" / "f.csv"),
                                  FILES["dir"]]),
        "--json": None,
    })
    return opts


@fuzz_settings(120)
@given(data=st.data())
def test_fuzz_sweep(data):
    base = ["sweep", *targets(), "--global-batch", "16", "--seq-len", "1024", "--micro-batch",
            "1"]
    run_and_check(data.draw(command_line(base, sweep_options(), max_options=5)))


# --------------------------------------------------------------------------- spec files


@fuzz_settings(40)
@given(command=st.sampled_from(["explain", "sweep", "evaluate"]), kind=st.sampled_from(
    ["model", "hw"]), data=st.data())
def test_fuzz_spec_files(command, kind, data):
    """Broken model and hardware files (or names) for each command that reads them."""
    argv = targets()
    argv[1 if kind == "model" else 3] = data.draw(spec_file(kind))
    plans = Path(FILES["dir"]) / "one-plan.csv"
    plans.write_text("tp,dp\n1,2\n")
    extra = {"explain": ["--global-batch", "8"], "evaluate": [str(plans)],
             "sweep": ["--max-gpus", "8", "--global-batch", "8", "--micro-batch", "1"]}
    run_and_check([command, *argv, *extra[command]])


# --------------------------------------------------------------------------- the rest


@fuzz_settings(15)
@given(data=st.data())
def test_fuzz_presets(data):
    run_and_check(data.draw(command_line(["presets"], {"--json": None})))


@fuzz_settings(8)
@given(data=st.data())
def test_fuzz_validate(data):
    dataset = choice(sorted(DATASETS))
    base = ["validate", "--dataset", data.draw(dataset)]
    run_and_check(data.draw(command_line(base, {"--dataset": dataset, "--json": None,
                                                "--quiet": None})))


@fuzz_settings(10)
@given(data=st.data())
def test_fuzz_bench(data):
    """Tiny benchmark sizes only: a missing --plans would time 10.5 million plans."""
    base = ["bench", "--plans", data.draw(st.sampled_from(["40", "200"])),
            "--reference-plans", "20", "--repeat", "1"]
    options = {"--backend": choice(("numba", "native", "reference", "cupy")),
               "--plans": st.sampled_from(["0", "-1", "nan", "1e400", "abc", "64"]),
               "--reference-plans": st.sampled_from(["0", "inf", "10"]),
               "--repeat": st.sampled_from(["0", "-2", "2.5", "1"]),
               "--out": st.sampled_from([FILES["dir"], str(Path(FILES["out"]) / "b.json"),
                                         str(Path(FILES["out"])) + ".txt"]),
               "--json": None}
    run_and_check(data.draw(command_line(base, options, max_options=3)))
