"""Every backend reproduces the recorded digest of the reference, bit for bit.

``tools/digest.py`` hashes every output and feasibility code on fixed inputs (windows of
the bench standard space, as a space and as shuffled rows, and stored Hypothesis draws).
A refactoring must leave the digest as it is; a deliberate model change records it again
(``python tools/digest.py --record``) in the same commit.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from pyengine import backends

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("digest", ROOT / "tools" / "digest.py")
digest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(digest)


@pytest.mark.parametrize("name", list(backends.REGISTRY))
def test_backend_reproduces_recorded_digest(name):
    reason = backends.why_unavailable(name)
    if reason is not None:
        pytest.skip(reason)
    want = json.loads(digest.RECORD.read_text())
    got = digest.digests(name)
    assert set(got) == set(want)
    differ = sorted(k for k in want if got[k] != want[k])
    assert not differ, f"{name} differs from the recorded digest on {differ}"
