"""Optional dependencies: a feature that needs one says which extra installs it, up front.

A plain ``pip install pyengine`` has NumPy, Numba and pandas: enough for every command.
Dask (``--scheduler``), matplotlib (``--plot``), pyarrow (``.parquet`` files) and CuPy
(``--backend cupy``) are extras. Commands call :func:`require` before they start working,
so a missing extra costs a one-line message, not a sweep's result.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# importable module -> the extra of pyproject.toml that installs it
EXTRAS = {
    "distributed": "dask",
    "dask": "dask",
    "matplotlib": "plot",
    "pyarrow": "parquet",
    "cupy": "gpu",
}


class MissingExtra(ImportError):
    """A feature needs an optional package that is not installed; the message names the
    extra to install."""


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` for ``purpose`` or raise :class:`MissingExtra` saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = EXTRAS.get(module.split(".")[0], "all")
        raise MissingExtra(f"{purpose} needs {module.split('.')[0]}, which is not installed "
                           f"here ({exc}): pip install 'pyengine[{extra}]'",
                           name=module) from None


__all__ = ["EXTRAS", "MissingExtra", "require"]
