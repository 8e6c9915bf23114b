"""csrc/schema.h is generated from pyengine/schema.py and committed: it must not drift."""

from __future__ import annotations

from pathlib import Path

from pyengine import schema as S

REPO_HEADER = Path(__file__).resolve().parent.parent / "csrc" / "schema.h"


def test_header_matches_schema():
    # the repository's committed header (the test runs against an installed package,
    # whose own copy lives in pyengine/_csrc)
    assert REPO_HEADER.exists(), f"{REPO_HEADER} is missing: run python -m pyengine.schema"
    assert REPO_HEADER.read_text() == S.render_header(), (
        "csrc/schema.h differs from pyengine/schema.py: run python -m pyengine.schema")
    shipped = Path(S.__file__).resolve().parent / "_csrc" / "schema.h"
    if shipped.exists():
        assert shipped.read_text() == S.render_header()


def test_header_lists_every_column_and_violation():
    text = S.render_header()
    for key, value in S.INDEX.items():
        if not key.startswith("V_"):
            assert f"constexpr int {key} = {value};" in text, key
    for i, (name, _) in enumerate(S.VIOLATIONS):
        assert f"V_{name} = 1LL << {i};" in text
