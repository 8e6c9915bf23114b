"""The Numba on-disk cache follows the cost-model sources it compiles from."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

numba_cpu = pytest.importorskip("pyengine.backends.numba_cpu")


def test_cache_folder_is_keyed_on_reference_and_schema(tmp_path, monkeypatch):
    import numba

    monkeypatch.setenv("PYENGINE_CACHE_DIR", str(tmp_path))
    folder = Path(numba_cpu._cache_dir())
    assert folder.parent == tmp_path
    pkg = Path(numba_cpu.__file__).resolve().parent.parent
    digest = hashlib.sha256(numba.__version__.encode())
    for p in (Path(numba_cpu.__file__).resolve(), pkg / "reference.py", pkg / "schema.py"):
        digest.update(p.read_bytes())
    assert folder.name == "numba-" + digest.hexdigest()[:16]


def test_kernels_cache_in_that_folder_and_numba_setting_restored():
    import numba

    path = numba_cpu._rows_kernel._cache._cache_path
    assert "pyengine" in path and "numba-" in path
    assert numba.config.CACHE_DIR != path
