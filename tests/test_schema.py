"""csrc/schema.h is generated from pyengine/schema.py and committed: it must not drift."""

from __future__ import annotations

from pyengine import schema as S


def test_header_matches_schema():
    assert S.HEADER.exists(), f"{S.HEADER} is missing: run python -m pyengine.schema"
    assert S.HEADER.read_text() == S.render_header(), (
        "csrc/schema.h differs from pyengine/schema.py: run python -m pyengine.schema")


def test_header_lists_every_column_and_violation():
    text = S.render_header()
    for key, value in S.INDEX.items():
        if not key.startswith("V_"):
            assert f"constexpr int {key} = {value};" in text, key
    for i, (name, _) in enumerate(S.VIOLATIONS):
        assert f"V_{name} = 1LL << {i};" in text
