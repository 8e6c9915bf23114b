"""Running the `pyengine` command line in-process, with a time limit, on tiny specs."""

from __future__ import annotations

import contextlib
import io
import signal
from pathlib import Path

from test_sweep import GPU, MOE

from pyengine.cli import main
from pyengine.loaders import spec_to_toml


class Hang(Exception):
    """A command ran past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise Hang in the main thread after ``seconds`` (a hang must fail, not block CI)."""
    def on_alarm(signum, frame):
        raise Hang(f"still running after {seconds:g} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_cli(argv: list[str], seconds: float = 30.0) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``pyengine argv``."""
    out, err = io.StringIO(), io.StringIO()
    with time_limit(seconds), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def tiny_specs(folder: Path) -> tuple[str, str]:
    """A tiny MoE model and a test GPU as TOML files: sweeps over them take milliseconds."""
    model, hw = folder / "tiny-moe.toml", folder / "gpu.toml"
    model.write_text(spec_to_toml(MOE))
    hw.write_text(spec_to_toml(GPU))
    return str(model), str(hw)


def assert_one_line_error(rc: int, err: str, *names: str) -> str:
    """Exit status 2 and one line on stderr that names each of ``names``; the line."""
    assert rc == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]
