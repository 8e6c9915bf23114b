"""The specs a public entry point is handed, as the dataclasses the engine works on.

Every entry point (``evaluate``, ``evaluate_batch``, the space functions, ``sweep``)
takes a model and hardware as a :class:`Model` / :class:`Hardware`, a preset name, a
path to a TOML/JSON file (or a Hugging Face config.json) or a dict of fields; a plan as a
:class:`Plan` or a dict; limits as :class:`Limits`, a dict or None. Anything else is a
:class:`SpecError` naming the argument and what it may be, never an AttributeError from
deep inside.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .errors import SpecError
from .specs import Hardware, Limits, Model, Plan


def as_model(value: Any, caller: str = "evaluate") -> Model:
    from . import loaders, presets

    if isinstance(value, Model):
        return value
    if isinstance(value, (str, os.PathLike)):
        return presets.model(value)
    if isinstance(value, Mapping):
        return loaders.load_model(dict(value))
    raise SpecError(caller, "model", type(value).__name__,
                    "a Model, a model preset name, a path to a model file or a dict of fields")


def as_hardware(value: Any, caller: str = "evaluate") -> Hardware:
    from . import loaders, presets

    if isinstance(value, Hardware):
        return value
    if isinstance(value, (str, os.PathLike)):
        return presets.hardware(value)
    if isinstance(value, Mapping):
        return loaders.load_hardware(dict(value))
    raise SpecError(caller, "hardware", type(value).__name__,
                    "a Hardware, a hardware preset name, a path to a hardware file or a "
                    "dict of fields")


def as_plan(value: Any, caller: str = "evaluate") -> Plan:
    if isinstance(value, Plan):
        return value
    if isinstance(value, Mapping):
        return Plan.from_dict(dict(value))
    raise SpecError(caller, "plan", type(value).__name__, "a Plan or a dict of Plan fields")


def as_limits(value: Any, caller: str = "evaluate") -> Limits | None:
    if value is None or isinstance(value, Limits):
        return value
    if isinstance(value, Mapping):
        return Limits.from_dict(dict(value))
    raise SpecError(caller, "limits", type(value).__name__, "a Limits, a dict of fields or None")
