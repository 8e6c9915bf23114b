"""Read :class:`Model` and :class:`Hardware` from TOML/JSON files, dicts and Hugging Face
``config.json``; units are converted here, once.

Model files
    Keys are the :class:`~pyengine.specs.Model` field names (counts need no units):
    ``n_layers``, ``hidden``, ``n_heads``, ``ffn_hidden``, ``vocab``, ``n_kv_heads``, ...
    ``name`` defaults to the file's stem. A JSON file (or a dict) that has
    ``model_type`` or ``architectures`` is read as a Hugging Face config instead
    (:func:`model_from_hf_config`).

Hardware files
    Friendly units, converted to the SI fields of :class:`~pyengine.specs.Hardware`:

    =========================  ====================================  =====================
    file key                   Hardware field                        conversion
    =========================  ====================================  =====================
    ``bf16_tflops``            ``peak_bf16_flops_per_s``             x 1e12 (dense)
    ``fp8_tflops``             ``peak_fp8_flops_per_s``              x 1e12 (dense; 0=none)
    ``fp4_tflops``             ``peak_fp4_flops_per_s``              x 1e12 (dense; 0=none)
    ``hbm_gb``                 ``hbm_capacity_bytes``                x 1e9 (decimal GB)
    ``hbm_gib``                ``hbm_capacity_bytes``                x 2**30
    ``hbm_mib``                ``hbm_capacity_bytes``                x 2**20 (as nvidia-smi)
    ``hbm_tbps``               ``hbm_bandwidth_bytes_per_s``         x 1e12 (TB/s)
    ``nvlink_gbps``            ``intra_node_bandwidth_bytes_per_s``  x 1e9 (GB/s, per GPU,
                                                                     one direction)
    ``network_gbps``           ``inter_node_bandwidth_bytes_per_s``  x 1e9 (GB/s, per GPU,
                                                                     one direction;
                                                                     400 Gb/s IB = 50)
    ``host_link_gbps``         ``host_link_bandwidth_bytes_per_s``   x 1e9 (GB/s, CPU-GPU
                                                                     link per GPU, one
                                                                     direction)
    ``intra_latency_us``       ``intra_node_latency_s``              / 1e6
    ``inter_latency_us``       ``inter_node_latency_s``              / 1e6
    ``op_overhead_us``         ``op_overhead_s``                     / 1e6
    ``launch_overhead_us``     ``launch_overhead_s``                 / 1e6
    ``step_overhead_us``       ``step_overhead_s``                   / 1e6
    ``request_overhead_us``    ``request_overhead_s``                / 1e6
    ``memory_overhead_gib``    ``memory_overhead_bytes``             x 2**30
    =========================  ====================================  =====================

    ``name``, ``source``, ``gpus_per_node``, ``nvlink_domain`` and the efficiency parameters
    ``gemm_eff_max``, ``gemm_eff_max_fp8``, ``gemm_dim_half``, ``gemm_token_half_serve``,
    ``hbm_eff``, ``net_eff``,
    ``inter_eff``, ``grouped_gemm_eff_serve`` are
    read as they are.
    The SI field names themselves are accepted too (what :func:`spec_to_toml` writes), but a
    field may be given only once: ``hbm_gb`` together with ``hbm_gib`` is an error.

Every problem is a :class:`~pyengine.errors.SpecError` (a ValueError) whose message starts
with the file it came from and names the key: a missing key, an unknown key, a value of
the wrong type or out of range. A file that is not UTF-8 or not valid TOML/JSON is a
SpecError naming the file too. Hugging Face configs: see :func:`model_from_hf_config`.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, Union

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from .errors import SpecError
from .specs import MAX_INT, Hardware, Model

PathOrDict = Union[str, "os.PathLike[str]", Mapping[str, Any]]

# friendly key -> (Hardware field, multiply by, divide by). Division keeps the sub-unit
# conversions correctly rounded (3 / 1e6 is the double nearest 3e-6; 3 * 1e-6 is not).
HARDWARE_UNITS: dict[str, tuple[str, float, float]] = {
    "bf16_tflops": ("peak_bf16_flops_per_s", 1e12, 1.0),
    "fp8_tflops": ("peak_fp8_flops_per_s", 1e12, 1.0),
    "fp4_tflops": ("peak_fp4_flops_per_s", 1e12, 1.0),
    "hbm_gb": ("hbm_capacity_bytes", 1e9, 1.0),
    "hbm_gib": ("hbm_capacity_bytes", float(2**30), 1.0),
    "hbm_mib": ("hbm_capacity_bytes", float(2**20), 1.0),
    "hbm_tbps": ("hbm_bandwidth_bytes_per_s", 1e12, 1.0),
    "nvlink_gbps": ("intra_node_bandwidth_bytes_per_s", 1e9, 1.0),
    "network_gbps": ("inter_node_bandwidth_bytes_per_s", 1e9, 1.0),
    "host_link_gbps": ("host_link_bandwidth_bytes_per_s", 1e9, 1.0),
    "intra_latency_us": ("intra_node_latency_s", 1.0, 1e6),
    "inter_latency_us": ("inter_node_latency_s", 1.0, 1e6),
    "op_overhead_us": ("op_overhead_s", 1.0, 1e6),
    "launch_overhead_us": ("launch_overhead_s", 1.0, 1e6),
    "step_overhead_us": ("step_overhead_s", 1.0, 1e6),
    "request_overhead_us": ("request_overhead_s", 1.0, 1e6),
    "memory_overhead_gib": ("memory_overhead_bytes", float(2**30), 1.0),
}

_MODEL_FIELDS = tuple(Model.__dataclass_fields__)
_HARDWARE_FIELDS = tuple(Hardware.__dataclass_fields__)
_MODEL_REQUIRED = ("n_layers", "hidden", "n_heads", "ffn_hidden", "vocab")
_HARDWARE_REQUIRED = ("peak_bf16_flops_per_s", "hbm_capacity_bytes", "hbm_bandwidth_bytes_per_s",
                      "gpus_per_node", "intra_node_bandwidth_bytes_per_s",
                      "inter_node_bandwidth_bytes_per_s")
# For messages about a missing SI field: the friendly key a file would normally use.
_FRIENDLY_HINT = {
    "peak_bf16_flops_per_s": ("bf16_tflops", ""),
    "hbm_capacity_bytes": ("hbm_gb", ", or hbm_gib / hbm_mib"),
    "hbm_bandwidth_bytes_per_s": ("hbm_tbps", ""),
    "intra_node_bandwidth_bytes_per_s": ("nvlink_gbps", ""),
    "inter_node_bandwidth_bytes_per_s": ("network_gbps", ""),
}


# --------------------------------------------------------------------------- errors


def _error(where: str | None, owner: str, key: str, value: Any, allowed: str,
           message: str | None = None) -> SpecError:
    """A SpecError whose message starts with the file (``where``) it is about."""
    err = SpecError(owner, key, value, allowed)
    text = message if message is not None else str(err)
    if where:
        text = f"{where}: {text}"
    err.args = (text,)
    err.path = where  # type: ignore[attr-defined]
    return err


def _missing(where: str | None, owner: str, key: str, hint: str = "") -> SpecError:
    text = f"{owner}.{key} is missing: the key '{key}' is required{hint}"
    return _error(where, owner, key, None, "a required key", text)


def _construct(cls, data: dict[str, Any], where: str | None):
    """``cls(**data)`` with SpecErrors prefixed by the file they came from."""
    try:
        return cls(**data)
    except SpecError as err:
        if where:
            err.args = (f"{where}: {err.args[0]}",)
            err.path = where  # type: ignore[attr-defined]
        raise


# --------------------------------------------------------------------------- files


def _file_error(p: Path, field: str, value: Any, allowed: str, text: str) -> SpecError:
    return _error(str(p), "file", field, value, allowed, text)


def _decode(p: Path, raw: bytes) -> str:
    """The file's text (UTF-8, a leading byte-order mark allowed); errors name the file."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        bad = raw[err.start:err.start + 1]
        raise _file_error(p, "encoding", bad, "UTF-8 text",
                          f"not UTF-8 text: byte 0x{bad.hex()} at offset {err.start} cannot "
                          "be decoded; save the file as UTF-8") from None


def _parse(p: Path, text: str, kind: str) -> Any:
    """TOML or JSON text parsed; a syntax error names the file, line and column."""
    try:
        return tomllib.loads(text) if kind == "TOML" else json.loads(text)
    except RecursionError:
        raise _file_error(p, "contents", None, f"valid {kind}",
                          f"not valid {kind}: nested too deeply") from None
    except ValueError as err:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        ends_early = isinstance(err, json.JSONDecodeError) and err.pos >= len(text.rstrip())
        hint = " (the file ends early: truncated?)" if ends_early else ""
        raise _file_error(p, "contents", None, f"valid {kind}",
                          f"not valid {kind}: {err}{hint}") from None


def read_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a ``.toml`` or ``.json`` file into a dict.

    A missing file is a FileNotFoundError; a file that is not UTF-8, not valid TOML/JSON
    (truncated, say) or not a table/object at the top is a SpecError naming the file.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise ValueError(f"{p}: cannot read a '{suffix or 'extensionless'}' file; "
                         "give a .toml or .json file")
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{p}: is a directory, not a .toml/.json file") from None
    kind = suffix[1:].upper()
    data = _parse(p, _decode(p, raw), kind)
    if not isinstance(data, dict):
        raise _file_error(p, "contents", type(data).__name__, f"a {kind} table/object",
                          f"expected a {kind} table/object at the top level, got "
                          f"{type(data).__name__}")
    return data


def _resolve(path_or_dict: PathOrDict) -> tuple[dict[str, Any], str | None, str | None]:
    """(data, where, default name) for a path or a mapping."""
    if isinstance(path_or_dict, Mapping):
        return dict(path_or_dict), None, None
    if isinstance(path_or_dict, (str, os.PathLike)):
        p = Path(path_or_dict)
        return read_file(p), str(p), p.stem
    raise TypeError("expected a path to a .toml/.json file or a dict, got "
                    f"{type(path_or_dict).__name__}")


def is_hf_config(data: Mapping[str, Any]) -> bool:
    """A Hugging Face config.json carries ``model_type`` or ``architectures``."""
    return "model_type" in data or "architectures" in data


# --------------------------------------------------------------------------- models


def model_from_dict(data: Mapping[str, Any], *, where: str | None = None,
                    default_name: str | None = None) -> Model:
    """A Model from a dict of Model field names (a HF config dict is detected and parsed)."""
    if is_hf_config(data):
        return model_from_hf_config(data, where=where, default_name=default_name)
    d = dict(data)
    unknown = sorted(set(d) - set(_MODEL_FIELDS))
    if unknown:
        k = unknown[0]
        raise _error(where, "Model", k, d[k], "a field of Model (" + ", ".join(_MODEL_FIELDS)
                     + ")", f"Model.{k}: unknown key '{k}'; the keys of a model file are "
                     + ", ".join(_MODEL_FIELDS))
    if "name" not in d and default_name:
        d["name"] = default_name
    for key in ("name",) + _MODEL_REQUIRED:
        if key not in d:
            raise _missing(where, "Model", key)
    return _construct(Model, d, where)


def load_model(path_or_dict: PathOrDict | Model) -> Model:
    """A Model from a ``.toml``/``.json`` file, a dict, or a Hugging Face config.json.

    Model files use the Model field names; ``name`` defaults to the file's stem. A JSON
    file or dict with ``model_type`` or ``architectures`` is read by
    :func:`model_from_hf_config`.
    """
    if isinstance(path_or_dict, Model):
        return path_or_dict
    data, where, stem = _resolve(path_or_dict)
    return model_from_dict(data, where=where, default_name=stem)


# --------------------------------------------------------------------------- hardware


def _number(where: str | None, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _error(where, "Hardware", key, value, "a number")
    if not math.isfinite(value):
        raise _error(where, "Hardware", key, value, "a finite number")
    return value


def hardware_from_dict(data: Mapping[str, Any], *, where: str | None = None,
                       default_name: str | None = None) -> Hardware:
    """A Hardware from a dict in friendly units (see the module docstring) or SI fields."""
    out: dict[str, Any] = {}
    given_as: dict[str, str] = {}
    for key, value in data.items():
        if key in HARDWARE_UNITS:
            field, mul, div = HARDWARE_UNITS[key]
            x = _number(where, key, value)
            converted = x * mul if div == 1.0 else x / div
        elif key in _HARDWARE_FIELDS:
            field, converted = key, value
        else:
            allowed = sorted(HARDWARE_UNITS) + [f for f in _HARDWARE_FIELDS]
            raise _error(where, "Hardware", key, value, "a hardware key",
                         f"Hardware.{key}: unknown key '{key}'; allowed keys are "
                         + ", ".join(allowed))
        if field in given_as:
            raise _error(where, "Hardware", key, value, "given once",
                         f"Hardware.{key}: '{key}' and '{given_as[field]}' both set "
                         f"{field}; give only one")
        given_as[field] = key
        out[field] = converted
    if "name" not in out and default_name:
        out["name"] = default_name
    for field in ("name",) + _HARDWARE_REQUIRED:
        if field not in out:
            key, alternatives = _FRIENDLY_HINT.get(field, (field, None))
            raise _missing(where, "Hardware", key, "" if alternatives is None
                           else f" (sets {field}{alternatives})")
    return _construct(Hardware, out, where)


def load_hardware(path_or_dict: PathOrDict | Hardware) -> Hardware:
    """A Hardware from a ``.toml``/``.json`` file or a dict, in the friendly units of the
    module docstring (``bf16_tflops``, ``hbm_gb``, ``nvlink_gbps``, ...)."""
    if isinstance(path_or_dict, Hardware):
        return path_or_dict
    data, where, stem = _resolve(path_or_dict)
    return hardware_from_dict(data, where=where, default_name=stem)


# --------------------------------------------------------------------------- writing


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # shortest repr round-trips exactly; finite by validation
    if isinstance(value, str):
        return json.dumps(value)  # a valid TOML basic string
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def spec_to_toml(spec: Model | Hardware) -> str:
    """A TOML text of ``spec``'s fields (SI names) that the loaders read back exactly."""
    return "".join(f"{k} = {_toml_value(v)}\n" for k, v in spec.to_dict().items())


# --------------------------------------------------------------------------- Hugging Face
#
# One reader per model_type (the _FAMILIES table below). Each reads its family's keys
# with that family's transformers defaults when a key is absent: save_pretrained writes a
# nested text_config as a diff against its class defaults (gemma-3-4b's text_config has no
# num_attention_heads), and hand-written configs (GPT-2's) omit keys such as the dropout
# probabilities. The defaults are those of transformers' configuration_<family>.py (main
# branch, 2025; DeepSeek's remote-code configuration_deepseek.py for model_type 'deepseek').
# The size keys of a top-level config (layers, widths, vocabulary, expert counts) are
# required all the same: save_pretrained always writes them, so a top-level config without
# one is truncated or misspelled, and a silently default-sized model is the bug this guards.

_ABSENT = object()
_DROPOUT = ("attention_dropout",)
_LLAMA_KEYS = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size",
               "vocab_size")


class _Family(NamedTuple):
    """How to read one model_type: its reader, transformers defaults, required keys and
    key aliases (transformers' attribute_map: a config may use either name)."""

    reader: Callable[[_Cfg], dict[str, Any]]
    defaults: Mapping[str, Any]
    required: tuple[str, ...]
    aliases: Mapping[str, tuple[str, ...]] = {}


class _Cfg:
    """One Hugging Face config being read: every value checked, its key named on error."""

    def __init__(self, cfg: Mapping[str, Any], where: str | None, model_type: str,
                 family: _Family, prefix: str = "") -> None:
        self.cfg = cfg
        self.where = where
        self.model_type = model_type
        self.family = family
        self.prefix = prefix  # "text_config." when read from a wrapper's text_config
        self.notes: list[str] = []

    # ---- errors

    def error(self, key: str, value: Any, allowed: str, text: str | None = None) -> SpecError:
        """A SpecError for ``key``: "HFConfig.<key> = <value> is not allowed: <allowed>",
        or "HFConfig.<key>" followed by ``text``."""
        full = self.prefix + key
        message = None if text is None else f"HFConfig.{full}{text}"
        return _error(self.where, "HFConfig", full, value, allowed, message)

    def _bad(self, key: str, value: Any, allowed: str) -> SpecError:
        origin = "" if self._given(key) else (
            f" (the key is absent; transformers' {self.model_type} default is {value!r})")
        return self.error(key, value, allowed + origin)

    def _missing(self, key: str) -> SpecError:
        text = (f" is missing: the key '{key}' is required to size a {self.model_type} "
                "model (save_pretrained always writes it)")
        close = self._near_miss(key)
        if close:
            text += f"; did you mean '{close}'?"
        return self.error(key, None, "a required key", text)

    def _near_miss(self, key: str) -> str | None:
        """A key of the config that looks like a misspelling of ``key``."""
        known = set(self.family.defaults) | {a for al in self.family.aliases.values()
                                             for a in al}
        others = [k for k in self.cfg if isinstance(k, str) and k not in known]
        close = difflib.get_close_matches(key, others, n=1, cutoff=0.85)
        return close[0] if close else None

    # ---- raw values

    def _given(self, key: str) -> bool:
        return any(k in self.cfg for k in (key,) + self.family.aliases.get(key, ()))

    def raw(self, key: str) -> Any:
        """The value of ``key`` (or an alias), else the family default; None for null."""
        names = [k for k in (key,) + self.family.aliases.get(key, ()) if k in self.cfg]
        if len(names) > 1 and any(self.cfg[k] != self.cfg[names[0]] for k in names[1:]):
            raise self.error(names[1], self.cfg[names[1]], f"equal to '{names[0]}'",
                             f": '{names[0]}' and '{names[1]}' are the same setting in a "
                             f"{self.model_type} config but differ "
                             f"({self.cfg[names[0]]!r} vs {self.cfg[names[1]]!r})")
        if names:
            return self.cfg[names[0]]
        if key in self.family.required and not self.prefix:
            raise self._missing(key)
        close = self._near_miss(key)
        if close:
            raise self.error(close, self.cfg[close], f"the key '{key}'",
                             f": unknown key '{close}'; did you mean '{key}'? (a "
                             f"{self.model_type} config reads '{key}')")
        return self.family.defaults[key]

    # ---- typed values

    def optional_int(self, key: str, lo: int = 1, hi: int = MAX_INT) -> int | None:
        """An integer in [lo, hi], or None when the value (or the default) is null."""
        value = self.raw(key)
        if value is None:
            return None
        allowed = f"an integer in [{lo}, {hi}]"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._bad(key, value, allowed)
        if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
            raise self._bad(key, value, allowed)
        if not lo <= value <= hi:
            raise self._bad(key, value, allowed)
        return int(value)

    def integer(self, key: str, lo: int = 1, hi: int = MAX_INT) -> int:
        value = self.optional_int(key, lo, hi)
        if value is None:
            raise self._bad(key, None, f"an integer in [{lo}, {hi}]")
        return value

    def flag(self, key: str) -> bool:
        value = self.raw(key)
        if not isinstance(value, bool):
            raise self._bad(key, value, "true or false")
        return value

    def probability(self, key: str) -> float:
        value = self.raw(key)
        if value is None:  # transformers types the dropouts "float | None"
            return 0.0
        # The range test first: it is false for NaN and safe for integers of any size.
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not 0 <= value <= 1:
            raise self._bad(key, value, "a number in [0, 1]")
        return float(value)

    def layer_list(self, key: str, n_layers: int) -> list[int]:
        value = self.raw(key)
        if value is None:
            return []
        allowed = f"a list of layer indices in [0, {n_layers - 1}]"
        if not isinstance(value, list):
            raise self._bad(key, value, allowed)
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int) \
                    or not 0 <= item < n_layers:
                raise self._bad(key, value, f"{allowed} (bad entry {item!r})")
        return sorted(set(value))


# ---- shared pieces of the readers


def _dropout(c: _Cfg, keys: tuple[str, ...] = _DROPOUT) -> bool:
    return max(c.probability(k) for k in keys) > 0


def _heads(c: _Cfg, hidden: int, kv_key: str = "num_key_value_heads") -> dict[str, Any]:
    """Query heads, KV heads (null or a None default: = heads) and head_dim (absent or
    null with a None default: hidden / heads)."""
    heads = c.integer("num_attention_heads")
    kv = c.optional_int(kv_key) or heads
    if heads % kv:
        raise c._bad(kv_key, kv, f"a divisor of num_attention_heads ({heads})")
    head_dim = c.optional_int("head_dim") if "head_dim" in c.family.defaults else None
    if head_dim is None:
        if hidden % heads:
            raise c.error("head_dim", None, "given when hidden_size is not a multiple of "
                          "num_attention_heads", f" is missing: hidden_size ({hidden}) is not "
                          f"a multiple of num_attention_heads ({heads}), so head_dim must be "
                          "given")
        head_dim = hidden // heads
    return dict(n_heads=heads, n_kv_heads=kv, head_dim=head_dim)


def _llama_like(c: _Cfg, *, bias_keys: tuple[str, ...] = (), dropout: tuple[str, ...] = _DROPOUT,
                norm: str = "rmsnorm") -> dict[str, Any]:
    """A pre-norm decoder with a gated MLP (Llama and the families that copied it)."""
    hidden = c.integer("hidden_size")
    return dict(n_layers=c.integer("num_hidden_layers"), hidden=hidden, **_heads(c, hidden),
                ffn_hidden=c.integer("intermediate_size"), vocab=c.integer("vocab_size"),
                tied_embeddings=c.flag("tie_word_embeddings"), norm=norm, gated_mlp=True,
                bias=any([c.flag(k) for k in bias_keys]), dropout=_dropout(c, dropout))


def _experts(c: _Cfg, count: str, top_k: str, ffn: str, lo: int = 1) -> dict[str, Any]:
    n = c.integer(count, lo)
    if n == 0:
        return {}
    return dict(n_experts=n, top_k=c.integer(top_k, 1, n), expert_ffn_hidden=c.integer(ffn))


def _place(c: _Cfg, fields: dict[str, Any], moe: list[int], rule: str) -> dict[str, Any]:
    """Set first_k_dense / moe_every so pyengine's MoE layers are ``moe`` (HF's rule).

    pyengine's MoE layers are first_k_dense, first_k_dense + moe_every, ...; a set that is
    not such a progression keeps its count (what the parameter counts need) but is
    counted as the last layers, noted in ``source``.
    """
    n_layers = fields["n_layers"]
    if not fields.get("n_experts"):
        return fields
    if not moe:
        c.notes.append(f"no MoE layer ({rule}): read as a dense model")
        for key in ("n_experts", "top_k", "expert_ffn_hidden", "n_shared_experts"):
            fields.pop(key, None)
        return fields
    every = moe[1] - moe[0] if len(moe) > 1 else 1
    if moe != list(range(moe[0], n_layers, every)):
        c.notes.append(f"MoE layers {moe} ({rule}) counted as the last {len(moe)} layers")
        moe, every = list(range(n_layers - len(moe), n_layers)), 1
    fields.update(first_k_dense=moe[0], moe_every=every)
    return fields


def _qwen_moe_layers(c: _Cfg, fields: dict[str, Any]) -> dict[str, Any]:
    """Qwen-MoE: layer i is sparse unless listed in mlp_only_layers, when (i+1) % step == 0."""
    n_layers = fields["n_layers"]
    step = c.integer("decoder_sparse_step", 1, n_layers)
    dense = set(c.layer_list("mlp_only_layers", n_layers))
    moe = [i for i in range(n_layers) if i not in dense and (i + 1) % step == 0]
    return _place(c, fields, moe, "decoder_sparse_step / mlp_only_layers")


def _deepseek_moe(c: _Cfg, fields: dict[str, Any]) -> dict[str, Any]:
    """DeepSeek MoE: n_routed_experts routed + n_shared_experts shared experts of
    moe_intermediate_size; layer i is MoE when i >= first_k_dense_replace and
    i % moe_layer_freq == 0 (the rule of DeepSeek's modeling code)."""
    n_routed = c.optional_int("n_routed_experts")
    if n_routed is None:  # DeepSeek's configuration code: None = a dense model
        return fields
    n_layers = fields["n_layers"]
    fields.update(n_experts=n_routed, top_k=c.integer("num_experts_per_tok", 1, n_routed),
                  expert_ffn_hidden=c.integer("moe_intermediate_size"),
                  n_shared_experts=c.optional_int("n_shared_experts", 0) or 0)
    first = c.integer("first_k_dense_replace", 0, n_layers)
    freq = c.integer("moe_layer_freq", 1, n_layers)
    moe = [i for i in range(first, n_layers) if i % freq == 0]
    return _place(c, fields, moe, "first_k_dense_replace / moe_layer_freq")


# ---- the readers, one per family


def _read_llama(c: _Cfg) -> dict[str, Any]:
    return _llama_like(c, bias_keys=("attention_bias", "mlp_bias"))


def _read_plain(c: _Cfg) -> dict[str, Any]:
    """Mistral, Qwen2, Phi-3, OLMo-2: the Llama layout without bias keys."""
    if c.model_type == "qwen2":
        c.notes.append("q/k/v biases not counted (<0.01%)")
    if c.model_type == "olmo2":
        c.notes.append("q/k norms and post-norms counted as two RMSNorms (<0.01%)")
    dropout = ("resid_pdrop", "embd_pdrop", "attention_dropout") \
        if c.model_type == "phi3" else _DROPOUT
    return _llama_like(c, dropout=dropout)


def _read_biased(c: _Cfg) -> dict[str, Any]:
    """Qwen3, Gemma 1/2/3, OLMo: the Llama layout with an attention_bias key."""
    if c.model_type in ("gemma2", "gemma3_text"):
        c.notes.append("pre/post-feedforward norms (and Gemma 3's q/k norms) not counted "
                       "(<0.01%)")
    if c.model_type == "qwen3":
        c.notes.append("q/k norms not counted (<0.01%)")
    if c.model_type == "olmo":
        # OLMo's LayerNorms have neither weight nor bias: 4h per layer too many (<0.01%).
        c.notes.append("weightless LayerNorms counted with weights (<0.01%)")
        return _llama_like(c, bias_keys=("attention_bias",), norm="layernorm")
    return _llama_like(c, bias_keys=("attention_bias",))


def _read_mixtral(c: _Cfg) -> dict[str, Any]:
    """Mixtral, PhiMoE, OLMoE, gpt-oss: every layer MoE, experts of intermediate_size."""
    count, norm, bias_keys = "num_local_experts", "rmsnorm", ("attention_bias",)
    if c.model_type == "mixtral":
        bias_keys = ()
    elif c.model_type == "phimoe":
        norm = "layernorm"  # PhiMoE's decoder norms are LayerNorms with a bias
        c.notes.append("output-layer bias not counted (<0.01%)")
    elif c.model_type == "olmoe":
        count = "num_experts"
        c.notes.append("q/k norms not counted (<0.01%)")
    elif c.model_type == "gpt_oss":
        c.notes.append("expert and router biases and attention sinks not counted (<0.05%)")
    fields = _llama_like(c, bias_keys=bias_keys, norm=norm)
    fields.update(_experts(c, count, "num_experts_per_tok", "intermediate_size"))
    return fields


def _read_qwen_moe(c: _Cfg) -> dict[str, Any]:
    """Qwen2-MoE / Qwen3-MoE: fine-grained experts, Qwen2-MoE adds one shared expert."""
    fields = _llama_like(c, bias_keys=("attention_bias",) if c.model_type == "qwen3_moe" else ())
    fields.update(_experts(c, "num_experts", "num_experts_per_tok", "moe_intermediate_size",
                           lo=0))
    if c.model_type == "qwen2_moe" and fields.get("n_experts"):
        c.notes.append("q/k/v biases and the shared-expert gate not counted (<0.01%)")
        shared = c.integer("shared_expert_intermediate_size", 0)
        if shared:
            moe_ffn = fields["expert_ffn_hidden"]
            n_shared = max(1, round(shared / moe_ffn))
            if n_shared * moe_ffn != shared:  # pyengine's shared experts have the routed size
                c.notes.append(f"shared expert {shared} counted as {n_shared} x {moe_ffn}")
            fields["n_shared_experts"] = n_shared
    return _qwen_moe_layers(c, fields)


def _read_deepseek(c: _Cfg) -> dict[str, Any]:
    """DeepSeek-MoE (v1): Llama attention and DeepSeek's fine-grained + shared experts."""
    return _deepseek_moe(c, _llama_like(c, bias_keys=("attention_bias",)))


def _read_deepseek_mla(c: _Cfg) -> dict[str, Any]:
    """DeepSeek-V2/V3: multi-head latent attention and DeepSeek MoE."""
    hidden = c.integer("hidden_size")
    nope = c.integer("qk_nope_head_dim")
    fields = dict(
        n_layers=c.integer("num_hidden_layers"), hidden=hidden,
        n_heads=c.integer("num_attention_heads"), ffn_hidden=c.integer("intermediate_size"),
        vocab=c.integer("vocab_size"), tied_embeddings=c.flag("tie_word_embeddings"),
        norm="rmsnorm", gated_mlp=True, bias=c.flag("attention_bias"), dropout=_dropout(c),
        head_dim=nope, v_head_dim=c.integer("v_head_dim"),
        q_lora_rank=c.optional_int("q_lora_rank") or 0,  # null: no query compression
        kv_lora_rank=c.integer("kv_lora_rank"), rope_head_dim=c.integer("qk_rope_head_dim", 0),
        mtp_layers=c.integer("num_nextn_predict_layers", 0))
    if fields["mtp_layers"]:
        c.notes.append("multi-token-prediction modules: training only, their own embedding "
                       "and head copies in the checkpoint not counted (shared in training)")
    c.notes.append("router score-correction bias not counted (<0.01%)")
    fields = _deepseek_moe(c, fields)
    # group-limited routing (DeepSeek-V2 'group_limited_greedy', V3 'noaux_tc'): a token's
    # experts from its best topk_group of n_group groups; 'greedy' routes over all
    groups = c.optional_int("n_group") or 0
    method = c.raw("topk_method")
    if fields.get("n_experts") and groups > 1 and method != "greedy":
        fields.update(router_groups=groups,
                      router_group_topk=c.integer("topk_group", 1, groups))
    return fields


def _read_falcon(c: _Cfg) -> dict[str, Any]:
    """Falcon: parallel attention/MLP, MQA (multi_query) or GQA (new_decoder_architecture),
    a 4h GeLU MLP unless ffn_hidden_size, biases only with ``bias``, LayerNorm."""
    hidden = c.integer("hidden_size")
    heads = c.integer("num_attention_heads")
    if c.flag("new_decoder_architecture") or not c.flag("multi_query"):
        kv = c.optional_int("num_kv_heads") or heads
    else:
        kv = 1  # Falcon's modeling: multi_query without the new architecture = one KV head
    if heads % kv:
        raise c._bad("num_kv_heads", kv, f"a divisor of num_attention_heads ({heads})")
    if hidden % heads:
        raise c._bad("hidden_size", hidden, f"a multiple of num_attention_heads ({heads})")
    if not c.flag("new_decoder_architecture") and c.flag("parallel_attn"):
        c.notes.append("one LayerNorm per layer counted as two (<0.01%)")
    return dict(n_layers=c.integer("num_hidden_layers"), hidden=hidden, n_heads=heads,
                n_kv_heads=kv, ffn_hidden=c.optional_int("ffn_hidden_size") or 4 * hidden,
                vocab=c.integer("vocab_size"), tied_embeddings=c.flag("tie_word_embeddings"),
                bias=c.flag("bias"), norm="layernorm", gated_mlp=False,
                dropout=_dropout(c, ("attention_dropout", "hidden_dropout")))


def _read_gpt2(c: _Cfg) -> dict[str, Any]:
    """GPT-2: learned positions (n_positions), tied embeddings, biases, LayerNorm, a 4h
    GeLU MLP unless n_inner; transformers' default dropout probabilities are 0.1."""
    hidden = c.integer("n_embd")
    heads = c.integer("n_head")
    if hidden % heads:
        raise c._bad("n_embd", hidden, f"a multiple of n_head ({heads})")
    return dict(n_layers=c.integer("n_layer"), hidden=hidden, n_heads=heads,
                ffn_hidden=c.optional_int("n_inner") or 4 * hidden, vocab=c.integer("vocab_size"),
                learned_pos_emb=c.integer("n_positions"),
                tied_embeddings=c.flag("tie_word_embeddings"), bias=True, norm="layernorm",
                gated_mlp=False, dropout=_dropout(c, ("resid_pdrop", "embd_pdrop", "attn_pdrop")))


def _read_neox(c: _Cfg) -> dict[str, Any]:
    """GPT-NeoX / Pythia: rotary, LayerNorm, a GeLU MLP of intermediate_size, biases."""
    hidden = c.integer("hidden_size")
    heads = c.integer("num_attention_heads")
    if hidden % heads:
        raise c._bad("hidden_size", hidden, f"a multiple of num_attention_heads ({heads})")
    return dict(n_layers=c.integer("num_hidden_layers"), hidden=hidden, n_heads=heads,
                ffn_hidden=c.integer("intermediate_size"), vocab=c.integer("vocab_size"),
                tied_embeddings=c.flag("tie_word_embeddings"), bias=c.flag("attention_bias"),
                norm="layernorm", gated_mlp=False,
                dropout=_dropout(c, ("attention_dropout", "hidden_dropout")))


# ---- the family table: model_type -> reader, transformers defaults, required keys


def _defaults(vocab: int, hidden: int, ffn: int, layers: int, heads: int, kv: int | None,
              **more: Any) -> dict[str, Any]:
    """The keys (and transformers defaults) most families share; ``_ABSENT`` drops one
    (MLA has no KV heads to read)."""
    base = dict(vocab_size=vocab, hidden_size=hidden, intermediate_size=ffn,
                num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
                tie_word_embeddings=False, attention_dropout=0.0)
    base.update(more)
    return {k: v for k, v in base.items() if v is not _ABSENT}


_MOE_KEYS = {"mixtral": ("num_local_experts", "num_experts_per_tok"),
             "qwen_moe": ("num_experts", "num_experts_per_tok", "moe_intermediate_size"),
             "mla": ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim",
                     "n_routed_experts", "num_experts_per_tok", "moe_intermediate_size")}
# moe_layer_freq and num_nextn_predict_layers are DeepSeek's own (remote-code) keys.
_MLA = dict(num_key_value_heads=_ABSENT, kv_lora_rank=512, q_lora_rank=1536,
            qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128, attention_bias=False,
            moe_layer_freq=1, num_nextn_predict_layers=0, n_group=None, topk_group=None,
            topk_method="greedy")
_QWEN_MOE = dict(decoder_sparse_step=1, mlp_only_layers=None)

_FAMILIES: dict[str, _Family] = {
    "llama": _Family(_read_llama, _defaults(32000, 4096, 11008, 32, 32, None, head_dim=None,
                                            attention_bias=False, mlp_bias=False), _LLAMA_KEYS),
    "mistral": _Family(_read_plain, _defaults(32000, 4096, 14336, 32, 32, 8, head_dim=None),
                       _LLAMA_KEYS),
    "mixtral": _Family(_read_mixtral, _defaults(32000, 4096, 14336, 32, 32, 8, head_dim=None,
                                                num_local_experts=8, num_experts_per_tok=2),
                       _LLAMA_KEYS + _MOE_KEYS["mixtral"], {"num_local_experts": ("num_experts",)}),
    "qwen2": _Family(_read_plain, _defaults(151936, 4096, 22016, 32, 32, 32, head_dim=None),
                     _LLAMA_KEYS),
    "qwen2_moe": _Family(_read_qwen_moe, _defaults(
        151936, 2048, 5632, 24, 16, 16, head_dim=None, num_experts=60, num_experts_per_tok=4,
        moe_intermediate_size=1408, shared_expert_intermediate_size=5632, **_QWEN_MOE),
        _LLAMA_KEYS[:3] + ("vocab_size",) + _MOE_KEYS["qwen_moe"]),
    "qwen3": _Family(_read_biased, _defaults(151936, 4096, 22016, 32, 32, 32, head_dim=128,
                                             attention_bias=False), _LLAMA_KEYS),
    "qwen3_moe": _Family(_read_qwen_moe, _defaults(
        151936, 2048, 6144, 24, 32, 4, head_dim=None, attention_bias=False, num_experts=128,
        num_experts_per_tok=8, moe_intermediate_size=768, **_QWEN_MOE),
        _LLAMA_KEYS[:3] + ("vocab_size",) + _MOE_KEYS["qwen_moe"],
        {"num_experts": ("num_local_experts",)}),
    "deepseek": _Family(_read_deepseek, _defaults(
        102400, 4096, 11008, 30, 32, None, head_dim=None, attention_bias=False,
        n_routed_experts=None, n_shared_experts=None, num_experts_per_tok=None,
        moe_intermediate_size=1407, first_k_dense_replace=0, moe_layer_freq=1),
        _LLAMA_KEYS + ("moe_intermediate_size",)),
    "deepseek_v2": _Family(_read_deepseek_mla, _defaults(
        32000, 4096, 11008, 32, 32, None, first_k_dense_replace=0, n_routed_experts=64,
        n_shared_experts=2, num_experts_per_tok=None, moe_intermediate_size=1407, **_MLA),
        _LLAMA_KEYS + _MOE_KEYS["mla"], {"n_routed_experts": ("num_experts",)}),
    "deepseek_v3": _Family(_read_deepseek_mla, _defaults(
        129280, 7168, 18432, 61, 128, 128, first_k_dense_replace=3, n_routed_experts=256,
        n_shared_experts=1, num_experts_per_tok=8, moe_intermediate_size=2048,
        **{**_MLA, "n_group": 8, "topk_group": 4, "topk_method": "noaux_tc"}),
        _LLAMA_KEYS + _MOE_KEYS["mla"], {"n_routed_experts": ("num_local_experts",)}),
    "gemma": _Family(_read_biased, _defaults(256000, 3072, 24576, 28, 16, 16, head_dim=256,
                                             tie_word_embeddings=True, attention_bias=False),
                     _LLAMA_KEYS),
    "gemma2": _Family(_read_biased, _defaults(256000, 2304, 9216, 26, 8, 4, head_dim=256,
                                              tie_word_embeddings=True, attention_bias=False),
                      _LLAMA_KEYS),
    "gemma3_text": _Family(_read_biased, _defaults(
        262208, 2304, 9216, 26, 8, 4, head_dim=256, tie_word_embeddings=True,
        attention_bias=False), _LLAMA_KEYS),
    "phi3": _Family(_read_plain, _defaults(32064, 3072, 8192, 32, 32, None, head_dim=None,
                                           resid_pdrop=0.0, embd_pdrop=0.0), _LLAMA_KEYS),
    "phimoe": _Family(_read_mixtral, _defaults(
        32064, 4096, 6400, 32, 32, 8, head_dim=None, attention_bias=False, num_local_experts=16,
        num_experts_per_tok=2), _LLAMA_KEYS + _MOE_KEYS["mixtral"]),
    "olmo": _Family(_read_biased, _defaults(50304, 4096, 11008, 32, 32, None, head_dim=None,
                                            attention_bias=False), _LLAMA_KEYS),
    "olmo2": _Family(_read_plain, _defaults(50304, 4096, 11008, 32, 32, None, head_dim=None),
                     _LLAMA_KEYS),
    "olmoe": _Family(_read_mixtral, _defaults(
        50304, 2048, 2048, 16, 16, None, head_dim=None, attention_bias=False, num_experts=64,
        num_experts_per_tok=8), _LLAMA_KEYS + ("num_experts", "num_experts_per_tok"),
        {"num_experts": ("num_local_experts",)}),
    "gpt_oss": _Family(_read_mixtral, _defaults(
        201088, 2880, 2880, 36, 64, 8, head_dim=64, attention_bias=True, num_local_experts=128,
        num_experts_per_tok=4), _LLAMA_KEYS + _MOE_KEYS["mixtral"],
        {"num_local_experts": ("num_experts",), "num_experts_per_tok": ("experts_per_token",)}),
    "falcon": _Family(_read_falcon, dict(
        vocab_size=65024, hidden_size=4544, num_hidden_layers=32, num_attention_heads=71,
        num_kv_heads=None, multi_query=True, new_decoder_architecture=False, parallel_attn=True,
        bias=False, ffn_hidden_size=None, tie_word_embeddings=True, attention_dropout=0.0,
        hidden_dropout=0.0), ("num_hidden_layers", "hidden_size", "num_attention_heads",
                              "vocab_size"),
        {"num_hidden_layers": ("n_layer",), "num_attention_heads": ("n_head",),
         "num_kv_heads": ("n_head_kv",), "hidden_size": ("n_embed",)}),
    "gpt2": _Family(_read_gpt2, dict(
        vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12, n_inner=None,
        resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1, tie_word_embeddings=True),
        ("n_layer", "n_embd", "n_head", "vocab_size"),
        {"n_embd": ("hidden_size",), "n_layer": ("num_hidden_layers",),
         "n_head": ("num_attention_heads",), "n_positions": ("max_position_embeddings",)}),
    "gpt_neox": _Family(_read_neox, dict(
        vocab_size=50432, hidden_size=6144, num_hidden_layers=44, num_attention_heads=64,
        intermediate_size=24576, attention_bias=True, tie_word_embeddings=False,
        attention_dropout=0.0, hidden_dropout=0.0), _LLAMA_KEYS),
}
# Older names transformers still loads as these families.
_TYPE_ALIASES = {"RefinedWeb": "falcon", "RefinedWebModel": "falcon"}
# architectures[0] -> model_type, for configs without model_type.
_HF_ARCHITECTURES = {
    "LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral",
    "MixtralForCausalLM": "mixtral", "Qwen2ForCausalLM": "qwen2",
    "Qwen2MoeForCausalLM": "qwen2_moe", "Qwen3ForCausalLM": "qwen3",
    "Qwen3MoeForCausalLM": "qwen3_moe", "DeepseekForCausalLM": "deepseek",
    "DeepseekV2ForCausalLM": "deepseek_v2", "DeepseekV3ForCausalLM": "deepseek_v3",
    "GemmaForCausalLM": "gemma", "Gemma2ForCausalLM": "gemma2",
    "Gemma3ForCausalLM": "gemma3_text", "Gemma3ForConditionalGeneration": "gemma3",
    "Phi3ForCausalLM": "phi3", "PhimoeForCausalLM": "phimoe", "OlmoForCausalLM": "olmo",
    "Olmo2ForCausalLM": "olmo2", "OlmoeForCausalLM": "olmoe", "FalconForCausalLM": "falcon",
    "RWForCausalLM": "falcon", "GPT2LMHeadModel": "gpt2", "GPTNeoXForCausalLM": "gpt_neox",
    "GptOssForCausalLM": "gpt_oss",
}
# Wrappers whose language model is their text_config, and its model_type when unstated
# (transformers' Gemma3Config / LlavaConfig defaults).
_WRAPPER_TEXT_TYPE = {"gemma3": "gemma3_text", "llava": "llama"}
# Well-known model types that are not decoder-only transformers, refused with the reason.
_NOT_DECODERS = {
    **dict.fromkeys(("t5", "mt5", "umt5", "bart", "mbart", "pegasus", "marian", "whisper",
                     "encoder-decoder", "seamless_m4t", "speech_to_text"),
                    "an encoder-decoder model"),
    **dict.fromkeys(("bert", "roberta", "xlm-roberta", "deberta", "deberta-v2", "distilbert",
                     "electra", "albert", "modernbert", "camembert"), "an encoder-only model"),
    **dict.fromkeys(("mamba", "mamba2", "rwkv", "falcon_mamba"),
                    "a state-space model without attention"),
    **dict.fromkeys(("jamba", "zamba", "zamba2", "bamba", "falcon_h1"),
                    "a hybrid attention / state-space model"),
}


def _supported() -> str:
    return ", ".join(sorted(set(_FAMILIES) | {"gemma3"}))


def _model_type(cfg: Mapping[str, Any], where: str | None, prefix: str = "") -> str:
    """The config's model_type (else the one its architectures imply), or a SpecError."""
    key = prefix + "model_type"
    model_type = cfg.get("model_type")
    if model_type is None:
        archs = cfg.get("architectures")
        names = archs if isinstance(archs, list) else [archs]
        found = [_HF_ARCHITECTURES[a] for a in names if isinstance(a, str)
                 and a in _HF_ARCHITECTURES]
        if not found:
            raise _error(where, "HFConfig", key, None, "a supported model_type",
                         f"HFConfig.{key} is missing and {prefix}architectures {archs!r} "
                         f"names no supported model (supported model_type: {_supported()})")
        model_type = found[0]
    if not isinstance(model_type, str):
        raise _error(where, "HFConfig", key, model_type, "a string")
    model_type = _TYPE_ALIASES.get(model_type, model_type)
    if model_type not in _FAMILIES and (prefix or model_type not in _WRAPPER_TEXT_TYPE):
        reason = _NOT_DECODERS.get(model_type)
        why = f": {model_type} is {reason}, and pyengine models decoder-only transformers" \
            if reason else ""
        raise _error(where, "HFConfig", key, model_type,
                     "a supported model_type (" + _supported() + ")",
                     f"{key} {model_type!r} is not supported{why} (supported: {_supported()})")
    return model_type


def _language_model(cfg: Mapping[str, Any], where: str | None
                    ) -> tuple[Mapping[str, Any], str, str]:
    """(the config of the language model, its model_type, key prefix): a wrapper (Gemma 3,
    LLaVA, ...) is read from its text_config."""
    has_layers = any(k in cfg for k in ("num_hidden_layers", "n_layer"))
    text = cfg.get("text_config")
    if has_layers or text is None:
        model_type = _model_type(cfg, where)
        if model_type in _FAMILIES:
            return cfg, model_type, ""
        if text is None:
            raise _error(where, "HFConfig", "text_config", None, "a table",
                         f"HFConfig.text_config is missing: a {model_type} config holds its "
                         "language model under text_config")
    if not isinstance(text, Mapping):
        raise _error(where, "HFConfig", "text_config", text, "a JSON object")
    inner = dict(text)
    outer = cfg.get("model_type")
    if "model_type" not in inner and outer in _WRAPPER_TEXT_TYPE:
        inner["model_type"] = _WRAPPER_TEXT_TYPE[outer]
    return inner, _model_type(inner, where, "text_config."), "text_config."


def _hf_name(cfg: Mapping[str, Any], where: str | None, name: str | None,
             default_name: str | None, model_type: str) -> str:
    """``name``, else _name_or_path's last path component, else the file stem unless it
    is literally 'config', else the model_type."""
    if name:
        return name
    given = cfg.get("_name_or_path")
    if given is not None and not isinstance(given, str):
        raise _error(where, "HFConfig", "_name_or_path", given, "a string")
    tail = (given or "").replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    if tail:
        return tail
    stem = default_name if default_name is not None else (Path(where).stem if where else None)
    if stem and stem != "config":
        return stem
    return model_type


def model_from_hf_config(cfg: Mapping[str, Any], name: str | None = None, *,
                         where: str | None = None, default_name: str | None = None) -> Model:
    """A Model from a Hugging Face ``config.json`` dict.

    ``model_type`` (else ``architectures``) picks the family's reader; each reads that
    family's keys, with transformers' defaults for absent keys except the size keys of a
    top-level config. Supported: llama (Llama 2/3), mistral, mixtral, qwen2, qwen2_moe,
    qwen3, qwen3_moe, deepseek (DeepSeek-MoE), deepseek_v2, deepseek_v3 (MLA), gemma,
    gemma2, gemma3 / gemma3_text, phi3, phimoe, olmo, olmo2, olmoe, falcon, gpt2,
    gpt_neox, gpt_oss; a wrapper (gemma3, llava) is read from its ``text_config`` (the
    vision tower is not counted). Anything else is a SpecError naming the model_type;
    every bad value is a SpecError naming the file and the key.

    Parts pyengine does not count (q/k norms, Gemma 2/3's extra norms, Qwen2's q/k/v
    biases, gpt-oss's expert biases and sinks, ...) are each below 0.05% of the total and
    listed in ``source``; so is DeepSeek-V3's multi-token-prediction module.
    The name is ``name``, else the last component of ``_name_or_path``, else
    ``default_name`` (or the file stem) unless it is ``config``, else the model_type.
    """
    if not isinstance(cfg, Mapping):
        raise TypeError(f"expected a config dict, got {type(cfg).__name__}")
    inner, model_type, prefix = _language_model(cfg, where)
    c = _Cfg(inner, where, model_type, _FAMILIES[model_type], prefix)
    fields = c.family.reader(c)
    if prefix:
        c.notes.append(f"language model of a {cfg.get('model_type')} config (text_config); "
                       "other towers not counted")
    source = f"{where or 'Hugging Face config.json'} (Hugging Face {model_type} config)"
    if c.notes:
        source += "; " + "; ".join(c.notes)
    fields.update(name=_hf_name(cfg, where, name, default_name, model_type), source=source)
    return _construct(Model, fields, where)


def load_hf_config(path: str | os.PathLike[str], name: str | None = None) -> Model:
    """A Model from a Hugging Face ``config.json`` file; the name defaults to
    ``_name_or_path``'s last component, else the file's folder."""
    p = Path(path)
    data = read_file(p)
    return model_from_hf_config(data, name=name, where=str(p),
                                default_name=p.parent.name or p.stem)


__all__ = ["HARDWARE_UNITS", "hardware_from_dict", "is_hf_config", "load_hardware",
           "load_hf_config", "load_model", "model_from_dict", "model_from_hf_config",
           "read_file", "spec_to_toml"]
