"""Model and hardware presets: sourced TOML files shipped inside the package.

``models/<slug>.toml`` and ``hardware/<slug>.toml`` each hold one preset with a ``source``
field and comments citing the paper, table or released config every number comes from
(units and keys: :mod:`pyengine.loaders`). They are read through
:mod:`importlib.resources`, so they work from an installed wheel or zip.

>>> from pyengine import presets
>>> presets.model("llama3-8b").n_layers
32
>>> presets.hardware("h100-sxm").gpus_per_node
8

``model(x)`` and ``hardware(x)`` also accept a path to a ``.toml``/``.json`` file (a
Hugging Face ``config.json`` included, for models) or an already-built spec.
"""

from __future__ import annotations

import difflib
import os
import sys
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .. import loaders
from ..errors import SpecError
from ..specs import Hardware, Model

_KINDS = ("models", "hardware")


def _folder(kind: str):
    return resources.files(__name__).joinpath(kind)


@cache
def _slugs(kind: str) -> tuple[str, ...]:
    names = (entry.name for entry in _folder(kind).iterdir())
    return tuple(sorted(n[: -len(".toml")] for n in names if n.endswith(".toml")))


@cache
def _load(kind: str, slug: str) -> Model | Hardware:
    where = f"pyengine/presets/{kind}/{slug}.toml"
    text = _folder(kind).joinpath(slug + ".toml").read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except ValueError as err:
        raise ValueError(f"{where}: not valid TOML: {err}") from None
    if kind == "models":
        return loaders.model_from_dict(data, where=where, default_name=slug)
    return loaders.hardware_from_dict(data, where=where, default_name=slug)


def list_models() -> list[str]:
    """Slugs of the model presets, sorted."""
    return list(_slugs("models"))


def list_hardware() -> list[str]:
    """Slugs of the hardware presets, sorted."""
    return list(_slugs("hardware"))


def _find(kind: str, what: str, name_or_path: Any):
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise SpecError("preset", what, type(name_or_path).__name__,
                        f"a {what} preset name or a path to a file")
    text = os.fspath(name_or_path)
    slugs = _slugs(kind)
    key = text.strip().lower()
    if key in slugs:
        return _load(kind, key)
    path = Path(text)
    if path.suffix.lower() in (".toml", ".json") or path.is_file():
        if not path.is_file():
            raise SpecError("preset", what, text, f"an existing file (no file at {path})")
        return loaders.load_model(path) if kind == "models" else loaders.load_hardware(path)
    allowed = "one of: " + ", ".join(slugs) + " or a path to a .toml/.json file"
    close = difflib.get_close_matches(key, slugs, n=3, cutoff=0.5)
    if close:
        allowed += " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
    raise SpecError("preset", what, text, allowed)


def model(name_or_path: str | os.PathLike[str] | Model) -> Model:
    """A model preset by slug (``list_models()``), or a Model file / HF config.json path."""
    if isinstance(name_or_path, Model):
        return name_or_path
    return _find("models", "model", name_or_path)


def hardware(name_or_path: str | os.PathLike[str] | Hardware) -> Hardware:
    """A hardware preset by slug (``list_hardware()``), or a hardware file path."""
    if isinstance(name_or_path, Hardware):
        return name_or_path
    return _find("hardware", "hardware", name_or_path)


def model_facts(name_or_model: str | Model) -> dict[str, Any]:
    """Key facts of a model: layers, hidden, heads, experts, parameters (total/active)."""
    from .. import schema as S
    from ..reference import model_vector

    m = model(name_or_model)
    v = model_vector(m)
    return {
        "name": m.name, "layers": m.n_layers, "hidden": m.hidden, "heads": m.n_heads,
        "kv_heads": m.n_kv_heads, "experts": m.n_experts, "top_k": m.top_k,
        "vocab": m.vocab, "params_total": float(v[S.M_PARAMS_TOTAL]),
        "params_active": float(v[S.M_PARAMS_ACTIVE]), "source": m.source,
    }


def hardware_facts(name_or_hardware: str | Hardware) -> dict[str, Any]:
    """Key facts of a GPU preset in friendly units (TFLOP/s, GB and GiB, TB/s, GB/s)."""
    hw = hardware(name_or_hardware)
    return {
        "name": hw.name, "bf16_tflops": hw.peak_bf16_flops_per_s / 1e12,
        "fp8_tflops": hw.peak_fp8_flops_per_s / 1e12, "hbm_gb": hw.hbm_capacity_bytes / 1e9,
        "hbm_gib": hw.hbm_capacity_bytes / 2**30,
        "hbm_tbps": hw.hbm_bandwidth_bytes_per_s / 1e12, "gpus_per_node": hw.gpus_per_node,
        "nvlink_gbps": hw.intra_node_bandwidth_bytes_per_s / 1e9,
        "network_gbps": hw.inter_node_bandwidth_bytes_per_s / 1e9, "source": hw.source,
    }


def _params(n: float) -> str:
    return f"{n / 1e12:.2f}T" if n >= 1e12 else f"{n / 1e9:.2f}B"


def describe(kind: str = "all") -> str:
    """A text listing of the presets with key facts.

    ``kind``: ``"models"``, ``"hardware"`` or ``"all"``. Models show layers, hidden size,
    heads (query/KV), experts (routed/top-k) and parameters, total and active, as
    :func:`pyengine.reference.model_vector` counts them; GPUs show dense BF16/FP8 peaks,
    HBM capacity (GiB, as nvidia-smi counts) and bandwidth, and per-GPU one-direction
    link bandwidths.
    """
    if kind not in ("all", "models", "hardware"):
        raise SpecError("describe", "kind", kind, "'all', 'models' or 'hardware'")
    out: list[str] = []
    if kind in ("all", "models"):
        rows = [model_facts(s) for s in list_models()]
        out.append(f"{'model':<20} {'layers':>6} {'hidden':>6} {'heads':>7} {'experts':>7} "
                   f"{'total':>8} {'active':>8}")
        for r in rows:
            heads = f"{r['heads']}/{r['kv_heads']}"
            experts = f"{r['experts']}/{r['top_k']}" if r["experts"] else "-"
            out.append(f"{r['name']:<20} {r['layers']:>6} {r['hidden']:>6} {heads:>7} "
                       f"{experts:>7} {_params(r['params_total']):>8} "
                       f"{_params(r['params_active']):>8}")
    if kind in ("all", "hardware"):
        if out:
            out.append("")
        out.append(f"{'hardware':<12} {'bf16 TF/s':>9} {'fp8 TF/s':>9} {'HBM GiB':>7} "
                   f"{'HBM TB/s':>8} {'GPUs/node':>9} {'intra GB/s':>10} {'inter GB/s':>10}")
        for s in list_hardware():
            r = hardware_facts(s)
            fp8 = f"{r['fp8_tflops']:.0f}" if r["fp8_tflops"] else "-"
            out.append(f"{r['name']:<12} {r['bf16_tflops']:>9.0f} {fp8:>9} {r['hbm_gib']:>7.1f} "
                       f"{r['hbm_tbps']:>8.2f} {r['gpus_per_node']:>9} "
                       f"{r['nvlink_gbps']:>10.0f} {r['network_gbps']:>10.0f}")
    return "\n".join(out)


__all__ = ["describe", "hardware", "hardware_facts", "list_hardware", "list_models", "model",
           "model_facts"]
