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
    ``hbm_gb``                 ``hbm_capacity_bytes``                x 1e9 (decimal GB)
    ``hbm_gib``                ``hbm_capacity_bytes``                x 2**30
    ``hbm_mib``                ``hbm_capacity_bytes``                x 2**20 (as nvidia-smi)
    ``hbm_tbps``               ``hbm_bandwidth_bytes_per_s``         x 1e12 (TB/s)
    ``nvlink_gbps``            ``intra_node_bandwidth_bytes_per_s``  x 1e9 (GB/s, per GPU,
                                                                     one direction)
    ``network_gbps``           ``inter_node_bandwidth_bytes_per_s``  x 1e9 (GB/s, per GPU,
                                                                     one direction;
                                                                     400 Gb/s IB = 50)
    ``intra_latency_us``       ``intra_node_latency_s``              / 1e6
    ``inter_latency_us``       ``inter_node_latency_s``              / 1e6
    ``op_overhead_us``         ``op_overhead_s``                     / 1e6
    ``memory_overhead_gib``    ``memory_overhead_bytes``             x 2**30
    =========================  ====================================  =====================

    ``name``, ``source``, ``gpus_per_node`` and the efficiency parameters
    ``gemm_eff_max``, ``gemm_eff_max_fp8``, ``gemm_dim_half``, ``hbm_eff``, ``net_eff`` are
    read as they are.
    The SI field names themselves are accepted too (what :func:`spec_to_toml` writes), but a
    field may be given only once: ``hbm_gb`` together with ``hbm_gib`` is an error.

Every problem is a :class:`~pyengine.errors.SpecError` (a ValueError) whose message starts
with the file it came from and names the key: a missing key, an unknown key, a value of
the wrong type or out of range. A file that is not valid TOML/JSON is a ValueError naming
the file.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from .errors import SpecError
from .specs import Hardware, Model

PathOrDict = Union[str, "os.PathLike[str]", Mapping[str, Any]]

# friendly key -> (Hardware field, multiply by, divide by). Division keeps the sub-unit
# conversions correctly rounded (3 / 1e6 is the double nearest 3e-6; 3 * 1e-6 is not).
HARDWARE_UNITS: dict[str, tuple[str, float, float]] = {
    "bf16_tflops": ("peak_bf16_flops_per_s", 1e12, 1.0),
    "fp8_tflops": ("peak_fp8_flops_per_s", 1e12, 1.0),
    "hbm_gb": ("hbm_capacity_bytes", 1e9, 1.0),
    "hbm_gib": ("hbm_capacity_bytes", float(2**30), 1.0),
    "hbm_mib": ("hbm_capacity_bytes", float(2**20), 1.0),
    "hbm_tbps": ("hbm_bandwidth_bytes_per_s", 1e12, 1.0),
    "nvlink_gbps": ("intra_node_bandwidth_bytes_per_s", 1e9, 1.0),
    "network_gbps": ("inter_node_bandwidth_bytes_per_s", 1e9, 1.0),
    "intra_latency_us": ("intra_node_latency_s", 1.0, 1e6),
    "inter_latency_us": ("inter_node_latency_s", 1.0, 1e6),
    "op_overhead_us": ("op_overhead_s", 1.0, 1e6),
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


def read_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a ``.toml`` or ``.json`` file into a dict; errors name the file."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise ValueError(f"{p}: cannot read a '{suffix or 'extensionless'}' file; "
                         "give a .toml or .json file")
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{p}: is a directory, not a .toml/.json file") from None
    try:
        data = tomllib.loads(text) if suffix == ".toml" else json.loads(text)
    except ValueError as err:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        raise ValueError(f"{p}: not valid {suffix[1:].upper()}: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a {suffix[1:].upper()} table/object at the top "
                         f"level, got {type(data).__name__}")
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
        return model_from_hf_config(data, name=default_name, where=where)
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

# model_type -> reading style
_HF_STYLES = {
    "gpt2": "gpt2",
    "gpt_neox": "neox",
    "mixtral": "mixtral",
    "qwen2_moe": "qwen_moe",
    "qwen3_moe": "qwen_moe",
    "deepseek_v2": "deepseek",
    "deepseek_v3": "deepseek",
}
# architectures[0] -> model_type, for configs without model_type
_HF_ARCHITECTURES = {
    "GPT2LMHeadModel": "gpt2",
    "GPTNeoXForCausalLM": "gpt_neox",
    "MixtralForCausalLM": "mixtral",
    "Qwen2MoeForCausalLM": "qwen2_moe",
    "Qwen3MoeForCausalLM": "qwen3_moe",
    "DeepseekV2ForCausalLM": "deepseek_v2",
    "DeepseekV3ForCausalLM": "deepseek_v3",
}


class _Cfg:
    """Typed access to a HF config dict; a missing key is a SpecError naming it."""

    def __init__(self, cfg: Mapping[str, Any], where: str | None, style: str) -> None:
        self.cfg = cfg
        self.where = where
        self.style = style

    def has(self, key: str) -> bool:
        return self.cfg.get(key) is not None

    def get(self, key: str, default: Any = ...) -> Any:
        value = self.cfg.get(key)
        if value is None:  # absent or JSON null
            if default is ...:
                raise _missing(self.where, "HFConfig", key,
                               f" to read a {self.style}-style Hugging Face config")
            return default
        return value

    def integer(self, key: str, default: Any = ...) -> int:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise _error(self.where, "HFConfig", key, value, "an integer")
        return int(value)

    def number(self, key: str, default: Any = ...) -> float:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _error(self.where, "HFConfig", key, value, "a number")
        return float(value)

    def flag(self, key: str, default: Any = ...) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise _error(self.where, "HFConfig", key, value, "true or false")
        return value


def _hf_style(cfg: Mapping[str, Any]) -> str:
    model_type = cfg.get("model_type")
    if not model_type:
        archs = cfg.get("architectures") or []
        if isinstance(archs, list) and archs:
            model_type = _HF_ARCHITECTURES.get(str(archs[0]))
    if isinstance(model_type, str) and model_type in _HF_STYLES:
        return _HF_STYLES[model_type]
    # Unknown or absent model_type: decide by the keys present.
    if "n_embd" in cfg or "n_layer" in cfg:
        return "gpt2"
    if "kv_lora_rank" in cfg or "n_routed_experts" in cfg:
        return "deepseek"
    if "num_local_experts" in cfg:
        return "mixtral"
    if "num_experts" in cfg and "moe_intermediate_size" in cfg:
        return "qwen_moe"
    if "rotary_pct" in cfg:
        return "neox"
    return "llama"


def model_from_hf_config(cfg: Mapping[str, Any], name: str | None = None, *,
                         where: str | None = None) -> Model:
    """A Model from a Hugging Face ``config.json`` dict.

    Read styles (chosen by ``model_type``, else ``architectures``, else the keys present):

    * GPT-2 (``gpt2``): ``n_layer``, ``n_embd``, ``n_head``, ``n_positions`` (learned
      position embedding), ``vocab_size``, ``n_inner`` (default 4h); tied embeddings,
      biases, LayerNorm; dropout when any ``*_pdrop`` > 0.
    * GPT-NeoX (``gpt_neox``): ``num_hidden_layers``, ``hidden_size``,
      ``num_attention_heads``, ``intermediate_size``, ``vocab_size``; rotary, biases
      (``attention_bias``, default true), LayerNorm, untied unless ``tie_word_embeddings``.
    * Llama / Mistral / Qwen2 and any other type with these keys (the fallback):
      the NeoX keys plus ``num_key_value_heads`` (GQA), ``head_dim``,
      ``tie_word_embeddings`` (default false), ``attention_bias``/``mlp_bias``; SwiGLU,
      RMSNorm, rotary.
    * Mixtral: Llama keys plus ``num_local_experts``, ``num_experts_per_tok``; every layer
      is MoE with experts of ``intermediate_size``.
    * Qwen-MoE (``qwen2_moe``, ``qwen3_moe``): ``num_experts``, ``num_experts_per_tok``,
      ``moe_intermediate_size``, ``shared_expert_intermediate_size`` (read as
      ``n_shared_experts = shared / moe_intermediate_size`` experts of the routed size),
      ``decoder_sparse_step`` (layer i is MoE when (i+1) % step == 0), ``mlp_only_layers``.
    * DeepSeek-V2/V3: ``n_routed_experts``, ``n_shared_experts``, ``num_experts_per_tok``,
      ``moe_intermediate_size``, ``first_k_dense_replace``, ``moe_layer_freq``,
      ``intermediate_size`` (dense layers), MLA ranks ``q_lora_rank`` (null = no query
      compression), ``kv_lora_rank``, ``qk_rope_head_dim``, ``qk_nope_head_dim``,
      ``v_head_dim``.

    Not modelled (small or not parameters of the main model): Qwen2's q/k/v biases,
    Qwen-MoE's shared-expert gate (h values per layer), DeepSeek's router score-correction
    bias, DeepSeek-V3's multi-token-prediction module (``num_nextn_predict_layers``).
    A config nesting the language model under ``text_config`` is read from there.
    """
    if not isinstance(cfg, Mapping):
        raise TypeError(f"expected a config dict, got {type(cfg).__name__}")
    if "num_hidden_layers" not in cfg and "n_layer" not in cfg \
            and isinstance(cfg.get("text_config"), Mapping):
        inner = dict(cfg["text_config"])
        inner.setdefault("model_type", cfg.get("model_type"))
        cfg = inner
    style = _hf_style(cfg)
    c = _Cfg(cfg, where, style)
    notes: list[str] = []
    if name is None:
        name = str(cfg.get("_name_or_path") or cfg.get("model_type") or "hf-model")
    name = name or "hf-model"

    if style == "gpt2":
        h = c.integer("n_embd")
        pdrop = max(c.number(k, 0.0) for k in ("resid_pdrop", "embd_pdrop", "attn_pdrop"))
        fields: dict[str, Any] = dict(
            n_layers=c.integer("n_layer"), hidden=h, n_heads=c.integer("n_head"),
            ffn_hidden=c.integer("n_inner", 4 * h), vocab=c.integer("vocab_size"),
            learned_pos_emb=c.integer("n_positions"),
            tied_embeddings=c.flag("tie_word_embeddings", True), bias=True, norm="layernorm",
            gated_mlp=False, dropout=pdrop > 0)
    else:
        fields = dict(
            n_layers=c.integer("num_hidden_layers"), hidden=c.integer("hidden_size"),
            n_heads=c.integer("num_attention_heads"), vocab=c.integer("vocab_size"),
            tied_embeddings=c.flag("tie_word_embeddings", False))
        dropout = max(c.number(k, 0.0) for k in ("attention_dropout", "hidden_dropout"))
        fields["dropout"] = dropout > 0
        if style == "neox":
            fields.update(ffn_hidden=c.integer("intermediate_size"),
                          bias=c.flag("attention_bias", True), norm="layernorm", gated_mlp=False)
        else:
            fields.update(norm="rmsnorm", gated_mlp=True,
                          bias=c.flag("attention_bias", False) or c.flag("mlp_bias", False))
            if style != "deepseek":
                fields["n_kv_heads"] = c.integer("num_key_value_heads", fields["n_heads"])
                fields["head_dim"] = c.integer("head_dim", 0)
        if style in ("llama", "mixtral"):
            fields["ffn_hidden"] = c.integer("intermediate_size")
        if style == "mixtral":
            fields.update(n_experts=c.integer("num_local_experts"),
                          top_k=c.integer("num_experts_per_tok"),
                          expert_ffn_hidden=fields["ffn_hidden"])
        elif style == "qwen_moe":
            moe_ffn = c.integer("moe_intermediate_size")
            fields.update(n_experts=c.integer("num_experts"),
                          top_k=c.integer("num_experts_per_tok"), expert_ffn_hidden=moe_ffn,
                          ffn_hidden=c.integer("intermediate_size", moe_ffn))
            shared = c.integer("shared_expert_intermediate_size", 0)
            if shared:
                n_shared = max(1, round(shared / moe_ffn))
                if n_shared * moe_ffn != shared:
                    notes.append(f"shared expert {shared} approximated as {n_shared} x {moe_ffn}")
                fields["n_shared_experts"] = n_shared
            step = c.integer("decoder_sparse_step", 1)
            if step < 1:
                raise _error(where, "HFConfig", "decoder_sparse_step", step, "an integer >= 1")
            dense_only = cfg.get("mlp_only_layers") or []
            if not isinstance(dense_only, list):
                raise _error(where, "HFConfig", "mlp_only_layers", dense_only,
                             "a list of layer indices")
            n_dense_only = len(set(dense_only))
            if n_dense_only and step > 1:
                raise _error(where, "HFConfig", "mlp_only_layers", dense_only,
                             "empty when decoder_sparse_step > 1 (pyengine places dense "
                             "layers first, then every step-th layer MoE)")
            fields["first_k_dense"] = step - 1 + n_dense_only
            fields["moe_every"] = step
            if n_dense_only and sorted(set(dense_only)) != list(range(n_dense_only)):
                notes.append(f"mlp_only_layers {sorted(set(dense_only))} placed first")
        elif style == "deepseek":
            q_lora = c.integer("q_lora_rank", 0)
            nope = c.integer("qk_nope_head_dim")
            fields.update(
                ffn_hidden=c.integer("intermediate_size"), head_dim=nope,
                v_head_dim=c.integer("v_head_dim", nope), q_lora_rank=q_lora,
                kv_lora_rank=c.integer("kv_lora_rank"), rope_head_dim=c.integer("qk_rope_head_dim"))
            n_routed = c.integer("n_routed_experts", 0)
            if n_routed:
                freq = c.integer("moe_layer_freq", 1)
                if freq < 1:
                    raise _error(where, "HFConfig", "moe_layer_freq", freq, "an integer >= 1")
                k = c.integer("first_k_dense_replace", 0)
                # DeepSeek: layer i is MoE when i >= k and i % freq == 0; pyengine counts
                # from the first MoE layer, so start at the first multiple of freq >= k.
                first = -(-k // freq) * freq
                fields.update(n_experts=n_routed, top_k=c.integer("num_experts_per_tok"),
                              expert_ffn_hidden=c.integer("moe_intermediate_size"),
                              n_shared_experts=c.integer("n_shared_experts", 0),
                              first_k_dense=first, moe_every=freq)
            if c.integer("num_nextn_predict_layers", 0):
                notes.append("multi-token-prediction module not modelled")
    source = f"Hugging Face config.json ({style} style)"
    if where:
        source = f"{where} ({style}-style Hugging Face config)"
    if notes:
        source += "; " + "; ".join(notes)
    fields.update(name=name, source=source)
    return _construct(Model, fields, where)


def load_hf_config(path: str | os.PathLike[str], name: str | None = None) -> Model:
    """A Model from a Hugging Face ``config.json`` file (name defaults to its folder)."""
    p = Path(path)
    data = read_file(p)
    if name is None:
        name = str(data.get("_name_or_path") or p.parent.name or p.stem)
    return model_from_hf_config(data, name=name, where=str(p))


__all__ = ["HARDWARE_UNITS", "hardware_from_dict", "is_hf_config", "load_hardware",
           "load_hf_config", "load_model", "model_from_dict", "model_from_hf_config",
           "read_file", "spec_to_toml"]
