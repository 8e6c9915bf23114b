"""Presets and loaders: every preset loads; parameter counts match publications; TOML/JSON
and Hugging Face config.json parse to the expected fields; bad files name the key.

Published figures are copied here with their source (the package never reads anything
outside itself); counts come from ``pyengine.reference.model_vector``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from importlib import resources

import pytest

from pyengine import presets
from pyengine import schema as S
from pyengine.errors import SpecError
from pyengine.loaders import (
    load_hardware,
    load_hf_config,
    load_model,
    model_from_hf_config,
    spec_to_toml,
)
from pyengine.reference import model_vector
from pyengine.specs import Hardware, Model

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MODEL_PRESETS = presets.list_models()
HARDWARE_PRESETS = presets.list_hardware()


def params(m: Model) -> tuple[float, float]:
    """Main-model counts, as publishers give them (DeepSeek-V3's 671B leaves out its
    multi-token-prediction module; tests/test_mtp.py checks that one)."""
    v = model_vector(dataclasses.replace(m, mtp_layers=0))
    return float(v[S.M_PARAMS_TOTAL]), float(v[S.M_PARAMS_ACTIVE])


def moe_layers(m: Model) -> list[int]:
    """Layer indices pyengine treats as MoE (specs.Model docstring rule)."""
    return [i for i in range(m.n_layers) if m.n_experts and i >= m.first_k_dense
            and (i - m.first_k_dense) % m.moe_every == 0]


# --------------------------------------------------------------------------- every preset


def test_preset_lists_are_sorted_and_complete():
    assert MODEL_PRESETS == sorted(MODEL_PRESETS)
    assert HARDWARE_PRESETS == sorted(HARDWARE_PRESETS)
    expected_models = {
        "gpt3-175b", "gpt-22b", "llama2-7b", "llama2-13b", "llama2-70b", "llama3-8b",
        "llama3-70b", "llama3-405b", "mixtral-8x7b", "mixtral-8x22b", "deepseek-v3",
        "qwen3-235b-a22b", "qwen3-30b-a3b",
        "moe-10b", *(f"megatron-gpt-{s}" for s in
                     ("1.7b", "3.6b", "7.5b", "18b", "39b", "76b", "145b", "310b", "530b",
                      "1t")),
    }
    assert expected_models <= set(MODEL_PRESETS)
    assert {"a100-80gb", "h100-sxm", "h200", "b200", "mi300x", "h800"} <= set(HARDWARE_PRESETS)


@pytest.mark.parametrize("slug", MODEL_PRESETS)
def test_model_preset_loads_with_source_and_citations(slug):
    m = presets.model(slug)
    assert isinstance(m, Model) and m.name == slug and m.source
    text = resources.files("pyengine.presets").joinpath("models", slug + ".toml").read_text()
    assert "source = " in text and text.lstrip().startswith("#")  # cited in comments
    total, active = params(m)
    assert 0 < active <= total
    assert Model.from_dict(m.to_dict()) == m  # validates again from its own fields


@pytest.mark.parametrize("slug", HARDWARE_PRESETS)
def test_hardware_preset_loads_with_source(slug):
    hw = presets.hardware(slug)
    assert isinstance(hw, Hardware) and hw.name == slug and hw.source
    # an HGX node of 8, or an NVL72 rack of 18 trays of 4 joined by one NVLink domain
    assert (hw.gpus_per_node, hw.nvlink_domain or hw.gpus_per_node) in ((8, 8), (4, 72))
    text = resources.files("pyengine.presets").joinpath("hardware", slug + ".toml").read_text()
    assert "source = " in text and text.lstrip().startswith("#")
    assert Hardware.from_dict(hw.to_dict()) == hw


@pytest.mark.parametrize("slug", MODEL_PRESETS + HARDWARE_PRESETS)
def test_spec_to_toml_round_trips_exactly(slug, tmp_path):
    spec = presets.model(slug) if slug in MODEL_PRESETS else presets.hardware(slug)
    path = tmp_path / f"{slug}.toml"
    path.write_text(spec_to_toml(spec))
    loaded = load_model(path) if isinstance(spec, Model) else load_hardware(path)
    assert loaded == spec


# GPU facts (published.json gpu_specs: vendor documents, MLPerf system JSONs, papers; see
# the comments in each preset). Per GPU, dense, one direction.
GPU_FACTS = {
    # slug: (bf16 TFLOP/s, fp8 TFLOP/s, HBM TB/s, NVLink GB/s, network GB/s)
    "a100-80gb": (312.0, 0.0, 2.039, 300.0, 25.0),
    "h100-sxm": (989.5, 1978.9, 3.35, 450.0, 50.0),
    "h200": (989.4, 1978.9, 4.8, 450.0, 50.0),
    "b200": (2250.0, 4500.0, 8.0, 900.0, 50.0),
    "mi300x": (1307.4, 2614.9, 5.3, 448.0, 50.0),
    "h800": (989.5, 1978.9, 3.35, 160.0, 50.0),
}


@pytest.mark.parametrize("slug", sorted(GPU_FACTS))
def test_hardware_presets_carry_published_figures(slug):
    hw = presets.hardware(slug)
    bf16, fp8, hbm_tbps, nvlink, net = GPU_FACTS[slug]
    assert hw.peak_bf16_flops_per_s == pytest.approx(bf16 * 1e12, rel=1e-12)
    assert hw.peak_fp8_flops_per_s == pytest.approx(fp8 * 1e12, rel=1e-12)
    assert hw.hbm_bandwidth_bytes_per_s == pytest.approx(hbm_tbps * 1e12, rel=1e-12)
    assert hw.intra_node_bandwidth_bytes_per_s == pytest.approx(nvlink * 1e9, rel=1e-12)
    assert hw.inter_node_bandwidth_bytes_per_s == pytest.approx(net * 1e9, rel=1e-12)


def test_hbm_capacities_are_the_usable_binary_figures():
    # NVML (nvidia-smi) totals: A100 80GB 81,920 MiB, H100 80GB 81,559 MiB, H200 143,771 MiB.
    assert presets.hardware("a100-80gb").hbm_capacity_bytes == 81920 * 2**20
    assert presets.hardware("h100-sxm").hbm_capacity_bytes == 81559 * 2**20
    assert presets.hardware("h200").hbm_capacity_bytes == 143771 * 2**20
    assert presets.hardware("mi300x").hbm_capacity_bytes == 192 * 2**30


# --------------------------------------------------------------------------- parameter counts

# (slug, published total, published active, relative tolerance, where the figure is from)
PUBLISHED_PARAMS = [
    # Hugging Face safetensors counts of the released Llama 3.1 checkpoints.
    ("llama3-8b", 8.03e9, None, 0.01),
    ("llama3-70b", 70.6e9, None, 0.01),
    ("llama3-405b", 405.9e9, None, 0.01),
    # Llama 2: released checkpoints (6.74B / 13.0B / 69.0B; the paper rounds to 7/13/70B).
    ("llama2-7b", 6.74e9, None, 0.01),
    ("llama2-13b", 13.0e9, None, 0.01),
    ("llama2-70b", 69.0e9, None, 0.01),
    # Mixtral paper (arXiv:2401.04088): "47B" / "13B" (46.7B / 12.9B in the released weights).
    ("mixtral-8x7b", 46.7e9, 12.9e9, 0.01),
    # Mistral AI announcement: 141B total, 39B active (rounded to 1B: 1%).
    ("mixtral-8x22b", 141e9, 39e9, 0.01),
    # DeepSeek-V3 report: 671B total, 37B activated, both rounded to 1B and excluding the
    # 14B MTP module, which pyengine does not model either. Active within 2%: "37B" is a
    # rounded figure and we count the embedding and output layer (1.85B) as touched by
    # every token, which the paper's convention may not; total agrees to 0.01%.
    ("deepseek-v3", 671e9, 37e9, 0.02),
    # GPT-3 (arXiv:2005.14165) "175.0B"; with V=51200, Eq. (2) gives 174.6B.
    ("gpt3-175b", 174.6e9, None, 0.001),
    # Qwen3 Technical Report (arXiv:2505.09388) Table 2: 235B / 22B and 30B / 3B activated
    # (the model cards: 30.5B / 3.3B).
    ("qwen3-235b-a22b", 235e9, 22e9, 0.01),
    ("qwen3-30b-a3b", 30.5e9, 3.3e9, 0.02),
    # Illustrative model designed to total ~10B (2.07B active, not a published figure).
    ("moe-10b", 10.0e9, None, 0.01),
]


@pytest.mark.parametrize("slug,total,active,rel", PUBLISHED_PARAMS)
def test_parameter_counts_match_publications(slug, total, active, rel):
    m = presets.model(slug)
    got_total, got_active = params(m)
    assert got_total == pytest.approx(total, rel=rel)
    if active is None:
        assert m.is_moe or got_active == got_total
    else:
        assert got_active == pytest.approx(active, rel=rel)


def test_deepseek_v3_total_is_close_to_671b():
    total, active = params(presets.model("deepseek-v3"))
    assert abs(total - 671e9) / 671e9 < 1e-3
    assert 37e9 <= active <= 38e9


# Narayanan et al. 2021 (arXiv:2104.04473) Table 1 rows: heads, hidden, layers, the Table 1
# parameter column, and Eq. (2) evaluated (published.json derived_params_eq2_billion).
MEGATRON_TABLE1 = [
    ("megatron-gpt-1.7b", 24, 2304, 24, 1.7, 1.65),
    ("megatron-gpt-3.6b", 32, 3072, 30, 3.6, 3.56),
    ("megatron-gpt-7.5b", 32, 4096, 36, 7.5, 7.47),
    ("megatron-gpt-18b", 48, 6144, 40, 18.4, 18.45),
    ("megatron-gpt-39b", 64, 8192, 48, 39.1, 39.1),
    ("megatron-gpt-76b", 80, 10240, 60, 76.1, 76.05),
    ("megatron-gpt-145b", 96, 12288, 80, 145.6, 145.62),
    ("megatron-gpt-310b", 128, 16384, 96, 310.1, 310.13),
    ("megatron-gpt-530b", 128, 20480, 105, 529.6, 529.6),
    ("megatron-gpt-1t", 160, 25600, 128, 1008.0, 1008.04),
]


def megatron_eq2(l: int, h: int, V: int = 51200, s: int = 2048) -> int:
    """Narayanan et al. 2021 Eq. (2), P = 12lh^2 (1 + 13/(12h) + (V+s)/(12lh)), in integers."""
    return 12 * l * h * h + 13 * l * h + (V + s) * h


@pytest.mark.parametrize("slug,heads,hidden,layers,table,eq2_b", MEGATRON_TABLE1)
def test_megatron_table1_models(slug, heads, hidden, layers, table, eq2_b):
    m = presets.model(slug)
    assert (m.n_heads, m.hidden, m.n_layers, m.vocab) == (heads, hidden, layers, 51200)
    total, active = params(m)
    eq2 = megatron_eq2(layers, hidden)
    assert total == eq2 + 2 * hidden  # Eq. (2) + the final LayerNorm, exactly
    assert active == total
    assert round(eq2 / 1e9, 2) == pytest.approx(eq2_b, abs=1e-9)
    assert total / 1e9 == pytest.approx(table, rel=0.03)  # Table 1 rounds differently


def test_korthikanti_gpt_models_follow_eq2():
    # Korthikanti et al. 2022 Table 3: 22B (64 heads, 6144, 48 layers), 175B (GPT-3).
    for slug, layers, hidden, heads in (("gpt-22b", 48, 6144, 64), ("gpt3-175b", 96, 12288, 96)):
        m = presets.model(slug)
        assert (m.n_layers, m.hidden, m.n_heads) == (layers, hidden, heads)
        assert params(m)[0] == megatron_eq2(layers, hidden) + 2 * hidden
    assert params(presets.model("gpt-22b"))[0] == pytest.approx(22.07e9, rel=1e-3)


def test_moe_layer_placement_of_presets():
    ds = presets.model("deepseek-v3")
    assert moe_layers(ds) == list(range(3, 61))  # 58 MoE layers (report Sec. 4.2)
    assert ds.n_moe_layers == 58
    assert moe_layers(presets.model("mixtral-8x7b")) == list(range(32))


# --------------------------------------------------------------------------- file loaders

H100_TOML = """
# a comment
name = "my-h100"
source = "test"
bf16_tflops = 989.5
fp8_tflops = 1978.9
hbm_gb = 80
hbm_tbps = 3.35
gpus_per_node = 8
nvlink_gbps = 450
network_gbps = 50
intra_latency_us = 2.5
inter_latency_us = 7
step_overhead_us = 200
request_overhead_us = 20
memory_overhead_gib = 4
gemm_eff_max = 0.7
net_eff = 0.9
"""


def test_load_hardware_toml_converts_friendly_units(tmp_path):
    path = tmp_path / "h.toml"
    path.write_text(H100_TOML)
    hw = load_hardware(path)
    assert hw.name == "my-h100"
    assert hw.peak_bf16_flops_per_s == 989.5e12
    assert hw.peak_fp8_flops_per_s == 1978.9e12
    assert hw.hbm_capacity_bytes == 80e9
    assert hw.hbm_bandwidth_bytes_per_s == 3.35e12
    assert hw.intra_node_bandwidth_bytes_per_s == 450e9
    assert hw.inter_node_bandwidth_bytes_per_s == 50e9
    assert hw.intra_node_latency_s == 2.5e-6 and hw.inter_node_latency_s == 7e-6
    assert hw.step_overhead_s == 200e-6 and hw.request_overhead_s == 20e-6
    assert hw.memory_overhead_bytes == 4 * 2**30
    assert hw.gemm_eff_max == 0.7 and hw.net_eff == 0.9
    assert hw.hbm_eff == Hardware.__dataclass_fields__["hbm_eff"].default  # default kept
    # presets.hardware accepts the path too, and the same content as JSON
    assert presets.hardware(path) == hw
    jpath = tmp_path / "h.json"
    jpath.write_text(json.dumps(tomllib.loads(H100_TOML)))
    assert load_hardware(jpath) == hw
    assert load_hardware(tomllib.loads(H100_TOML)) == hw  # a dict


def test_hardware_name_defaults_to_file_stem(tmp_path):
    text = "\n".join(line for line in H100_TOML.splitlines() if not line.startswith("name"))
    path = tmp_path / "cluster-x.toml"
    path.write_text(text)
    assert load_hardware(path).name == "cluster-x"


def test_load_model_toml_and_json_round_trip(tmp_path):
    m = presets.model("mixtral-8x7b")
    jpath = tmp_path / "mixtral.json"
    jpath.write_text(json.dumps(m.to_dict()))
    assert load_model(jpath) == m
    assert presets.model(str(jpath)) == m
    tpath = tmp_path / "small.toml"
    tpath.write_text('n_layers = 4\nhidden = 256\nn_heads = 4\nffn_hidden = 1024\n'
                     'vocab = 1000\nsource = "test"\n')
    small = load_model(tpath)
    assert small.name == "small" and small.n_kv_heads == 4 and small.head_dim == 64
    assert load_model(small) is small
    assert presets.model(small) is small


# --------------------------------------------------------------------------- Hugging Face

GPT2_CONFIG = {  # openai-community/gpt2 config.json (abridged)
    "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_ctx": 1024,
    "n_embd": 768, "n_head": 12, "n_layer": 12, "n_positions": 1024, "n_inner": None,
    "vocab_size": 50257, "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1,
}

NEOX_CONFIG = {  # EleutherAI/pythia-160m config.json (abridged)
    "architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox",
    "hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
    "num_hidden_layers": 12, "rotary_pct": 0.25, "vocab_size": 50304,
    "tie_word_embeddings": False, "use_parallel_residual": True,
}

LLAMA3_8B_CONFIG = {  # meta-llama/Llama-3.1-8B config.json (abridged)
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
    "intermediate_size": 14336, "num_attention_heads": 32, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": False,
    "attention_bias": False, "mlp_bias": False, "head_dim": 128, "hidden_act": "silu",
    "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "attention_dropout": 0.0,
}

MIXTRAL_CONFIG = {  # mistralai/Mixtral-8x7B-v0.1 config.json (abridged)
    "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": 4096,
    "intermediate_size": 14336, "num_attention_heads": 32, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "num_local_experts": 8, "num_experts_per_tok": 2,
    "vocab_size": 32000, "tie_word_embeddings": False, "sliding_window": None,
}

QWEN_MOE_CONFIG = {  # Qwen/Qwen1.5-MoE-A2.7B config.json (abridged)
    "architectures": ["Qwen2MoeForCausalLM"], "model_type": "qwen2_moe",
    "hidden_size": 2048, "intermediate_size": 5632, "num_attention_heads": 16,
    "num_hidden_layers": 24, "num_key_value_heads": 16, "num_experts": 60,
    "num_experts_per_tok": 4, "moe_intermediate_size": 1408,
    "shared_expert_intermediate_size": 5632, "decoder_sparse_step": 1,
    "mlp_only_layers": [], "vocab_size": 151936, "tie_word_embeddings": False,
}

DEEPSEEK_V3_CONFIG = {  # deepseek-ai/DeepSeek-V3 config.json (abridged)
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
    "hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048,
    "num_hidden_layers": 61, "num_attention_heads": 128, "num_key_value_heads": 128,
    "n_shared_experts": 1, "n_routed_experts": 256, "num_experts_per_tok": 8,
    "first_k_dense_replace": 3, "moe_layer_freq": 1, "q_lora_rank": 1536,
    "kv_lora_rank": 512, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128,
    "v_head_dim": 128, "vocab_size": 129280, "tie_word_embeddings": False,
    "num_nextn_predict_layers": 1, "attention_bias": False,
}

_IGNORED = {"name", "source"}


def same_shape(a: Model, b: Model) -> bool:
    da, db = a.to_dict(), b.to_dict()
    return {k: v for k, v in da.items() if k not in _IGNORED} == \
        {k: v for k, v in db.items() if k not in _IGNORED}


def test_hf_gpt2():
    m = model_from_hf_config(GPT2_CONFIG, name="gpt2")
    assert (m.n_layers, m.hidden, m.n_heads, m.ffn_hidden, m.vocab) == (12, 768, 12, 3072, 50257)
    assert m.learned_pos_emb == 1024 and m.tied_embeddings and m.bias and m.dropout
    assert m.norm == "layernorm" and not m.gated_mlp
    assert params(m)[0] == 124_439_808  # GPT-2 small, the exact published tensor count


def test_hf_gpt_neox():
    m = model_from_hf_config(NEOX_CONFIG, name="pythia-160m")
    assert m.norm == "layernorm" and m.bias and not m.tied_embeddings
    assert m.learned_pos_emb == 0 and not m.gated_mlp and m.ffn_hidden == 3072
    assert params(m)[0] == 162_322_944  # Pythia-160M's parameter count (Biderman et al.)


def test_hf_llama_matches_preset(tmp_path):
    m = model_from_hf_config(LLAMA3_8B_CONFIG, name="llama3-8b")
    assert same_shape(m, presets.model("llama3-8b"))
    path = tmp_path / "Llama-3.1-8B" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(LLAMA3_8B_CONFIG))
    assert same_shape(load_model(path), m)  # a JSON file with model_type is a HF config
    assert load_model(path).name == "llama"  # no _name_or_path, file stem "config": the model_type
    assert load_hf_config(path).name == "Llama-3.1-8B"
    assert same_shape(presets.model(path), m)


def test_hf_llama_head_dim_and_ties():
    cfg = dict(LLAMA3_8B_CONFIG, hidden_size=5120, head_dim=128, num_attention_heads=32,
               tie_word_embeddings=True)  # Mistral-Nemo-like: head_dim != hidden / heads
    m = model_from_hf_config(cfg, name="nemo-like")
    assert m.head_dim == 128 and m.tied_embeddings
    no_type = {k: v for k, v in LLAMA3_8B_CONFIG.items() if k != "model_type"}
    assert same_shape(model_from_hf_config(no_type), presets.model("llama3-8b"))


def test_hf_mixtral_matches_preset():
    m = model_from_hf_config(MIXTRAL_CONFIG, name="mixtral")
    assert same_shape(m, presets.model("mixtral-8x7b"))


def test_hf_qwen_moe():
    m = model_from_hf_config(QWEN_MOE_CONFIG, name="qwen1.5-moe-a2.7b")
    assert (m.n_experts, m.top_k, m.expert_ffn_hidden) == (60, 4, 1408)
    assert m.n_shared_experts == 4  # 5632 / 1408
    assert m.ffn_hidden == 5632 and m.first_k_dense == 0 and m.moe_every == 1
    total, active = params(m)
    # Qwen1.5-MoE-A2.7B model card: 14.3B total, 2.7B activated (qkv biases not counted).
    assert total == pytest.approx(14.3e9, rel=0.01)
    assert active == pytest.approx(2.7e9, rel=0.01)
    # decoder_sparse_step 2: HF makes layer i sparse when (i + 1) % 2 == 0.
    m2 = model_from_hf_config(dict(QWEN_MOE_CONFIG, decoder_sparse_step=2))
    assert moe_layers(m2) == [i for i in range(24) if (i + 1) % 2 == 0]
    m3 = model_from_hf_config(dict(QWEN_MOE_CONFIG, mlp_only_layers=[0, 1]))
    assert moe_layers(m3) == list(range(2, 24))


def test_hf_deepseek_v3_matches_preset():
    m = model_from_hf_config(DEEPSEEK_V3_CONFIG, name="deepseek-v3")
    assert same_shape(m, presets.model("deepseek-v3"))
    assert "multi-token-prediction" in m.source
    # moe_layer_freq 2 with first_k_dense_replace 3: HF rule i >= 3 and i % 2 == 0.
    m2 = model_from_hf_config(dict(DEEPSEEK_V3_CONFIG, moe_layer_freq=2))
    assert moe_layers(m2) == [i for i in range(61) if i >= 3 and i % 2 == 0]
    lite = dict(DEEPSEEK_V3_CONFIG, q_lora_rank=None)  # DeepSeek-V2-Lite: no q compression
    assert model_from_hf_config(lite).q_lora_rank == 0


def test_hf_text_config_is_unwrapped():
    wrapped = {"model_type": "llava", "text_config": dict(LLAMA3_8B_CONFIG)}
    assert same_shape(model_from_hf_config(wrapped), presets.model("llama3-8b"))


# --------------------------------------------------------------------------- errors


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_model_file_missing_key_names_file_and_key(tmp_path):
    path = write(tmp_path, "m.toml", "n_layers = 4\nn_heads = 4\nffn_hidden = 8\nvocab = 10\n")
    with pytest.raises(SpecError, match=r"m\.toml.*hidden") as info:
        load_model(path)
    assert info.value.field == "hidden"


def test_model_file_unknown_key_and_bad_value(tmp_path):
    path = write(tmp_path, "m.toml", "n_layers = 4\nhidden = 8\nn_heads = 2\nffn_hidden = 8\n"
                 "vocab = 10\nlayers = 3\n")
    with pytest.raises(SpecError, match=r"m\.toml.*unknown key 'layers'"):
        load_model(path)
    path = write(tmp_path, "m2.toml", 'n_layers = 4\nhidden = "big"\nn_heads = 2\n'
                 "ffn_hidden = 8\nvocab = 10\n")
    with pytest.raises(SpecError, match=r"m2\.toml: Model\.hidden = 'big'"):
        load_model(path)


def test_hardware_file_errors_name_the_key(tmp_path):
    text = "\n".join(line for line in H100_TOML.splitlines() if not line.startswith("hbm_gb"))
    with pytest.raises(SpecError, match=r"h\.toml.*hbm_gb.*hbm_gib"):
        load_hardware(write(tmp_path, "h.toml", text))
    with pytest.raises(SpecError, match=r"'hbm_gib' and 'hbm_gb' both set|'hbm_gb' and"):
        load_hardware(write(tmp_path, "h2.toml", H100_TOML + "hbm_gib = 80\n"))
    with pytest.raises(SpecError, match=r"h3\.toml.*unknown key 'tflops'"):
        load_hardware(write(tmp_path, "h3.toml", H100_TOML + "tflops = 1\n"))
    with pytest.raises(SpecError, match=r"h4\.toml.*nvlink_gbps"):
        load_hardware(write(tmp_path, "h4.toml", H100_TOML.replace("nvlink_gbps = 450",
                                                                   'nvlink_gbps = "fast"')))
    with pytest.raises(SpecError, match=r"h5\.toml.*net_eff"):
        load_hardware(write(tmp_path, "h5.toml", H100_TOML.replace("net_eff = 0.9",
                                                                   "net_eff = 1.5")))


def test_unparsable_files_name_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"bad\.toml: not valid TOML"):
        load_model(write(tmp_path, "bad.toml", "n_layers = = 3\n"))
    with pytest.raises(ValueError, match=r"bad\.json: not valid JSON"):
        load_hardware(write(tmp_path, "bad.json", "{nope"))
    with pytest.raises(ValueError, match=r"\.yaml"):
        load_model(write(tmp_path, "m.yaml", "a: 1\n"))
    with pytest.raises(FileNotFoundError, match="nowhere.toml"):
        load_model(tmp_path / "nowhere.toml")


def test_hf_config_missing_key_names_file_and_key(tmp_path):
    cfg = {k: v for k, v in LLAMA3_8B_CONFIG.items() if k != "num_hidden_layers"}
    path = write(tmp_path, "config.json", json.dumps(cfg))
    with pytest.raises(SpecError, match=r"config\.json.*num_hidden_layers"):
        load_model(path)
    cfg = {k: v for k, v in DEEPSEEK_V3_CONFIG.items() if k != "kv_lora_rank"}
    with pytest.raises(SpecError, match="kv_lora_rank"):
        model_from_hf_config(cfg)
    with pytest.raises(SpecError, match="n_embd"):
        model_from_hf_config({"model_type": "gpt2", "n_layer": 2})
    with pytest.raises(SpecError, match="model_type is missing"):
        model_from_hf_config({"architectures": ["SomethingNew"]})


def test_unknown_preset_suggests_close_names(tmp_path):
    with pytest.raises(SpecError, match=r"did you mean 'llama3-8b'") as info:
        presets.model("llama-3-8b")
    assert info.value.owner == "preset" and info.value.field == "model"
    assert "a path to a .toml/.json file" in str(info.value)
    with pytest.raises(SpecError, match="h100-sxm"):
        presets.hardware("h100")
    with pytest.raises(SpecError, match="no file"):
        presets.model(str(tmp_path / "missing.toml"))


def test_preset_names_are_case_insensitive():
    assert presets.model("Llama3-8B") == presets.model("llama3-8b")


def test_describe_lists_every_preset():
    text = presets.describe()
    for slug in MODEL_PRESETS + HARDWARE_PRESETS:
        assert slug in text
    assert "682.64B" in text and "38.24B" in text  # DeepSeek-V3 with its MTP module
    assert "h100-sxm" not in presets.describe("models")
    with pytest.raises(SpecError):
        presets.describe("gpus")
    facts = presets.model_facts("mixtral-8x7b")
    assert facts["params_total"] == pytest.approx(46.7e9, rel=0.01)
    assert presets.hardware_facts("h100-sxm")["nvlink_gbps"] == 450.0


def test_nvl72_keeps_tp_and_ep_groups_on_nvlink():
    """In an NVL72 rack a group of up to 72 GPUs stays on NVLink (placement uses the
    NVLink domain, not the 4-GPU tray): EP 64 costs far less than across HGX nodes."""
    from pyengine import reference as R
    h = R.hardware_vector(presets.hardware("gb200-nvl72"))
    b = R.hardware_vector(presets.hardware("b200"))
    assert R.group_bandwidth(1.0, 64.0, h) == R.group_bandwidth(1.0, 8.0, h)
    assert R.group_bandwidth(1.0, 64.0, b) < R.group_bandwidth(1.0, 8.0, b)
    # across racks: one GPU per rack rings over its NIC; a group holding whole racks runs
    # one ring per NIC, 72 NICs per rack at once, which NVLink then bounds
    assert R.group_bandwidth(72.0, 2.0, h) < R.group_bandwidth(1.0, 72.0, h)
    assert R.group_bandwidth(1.0, 144.0, h) == R.group_bandwidth(1.0, 72.0, h)
