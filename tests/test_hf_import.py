"""Hugging Face config.json import: one reader per model_type, published parameter counts,
and every bad input a SpecError that names the file and the key.

Configs are the published ``config.json`` of each checkpoint (the keys that size the model;
keys pyengine does not read are left out unless a test needs them). Counts come from
``pyengine.reference.model_vector``. Each published figure is cited where it is defined.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Any, NamedTuple

import pytest

from pyengine import schema as S
from pyengine.errors import SpecError
from pyengine.loaders import _FAMILIES, load_hf_config, load_model, model_from_hf_config
from pyengine.reference import model_vector
from pyengine.specs import Model

EMBED = [c.name for c in S.MODEL].index("embed_params")


def counts(m: Model) -> tuple[float, float, float]:
    """(params_total, params_active, embed_params) as pyengine counts them."""
    v = model_vector(m)
    return float(v[S.M_PARAMS_TOTAL]), float(v[S.M_PARAMS_ACTIVE]), float(v[EMBED])


def near(count: float, published: float, unit: float = 0.0) -> bool:
    """Within 0.5% of the published figure, or within one unit of its last digit when it
    is published to two significant digits only: publishers round and truncate alike
    (Qwen3-30B-A3B's 3.35B activated parameters are published as "3.3B")."""
    return abs(count - published) <= max(0.005 * published, unit)


B = 1e9
M = 1e6


class Vector(NamedTuple):
    cfg: dict[str, Any]
    total: float
    active: float | None = None  # MoE only
    unit_total: float = 0.0
    unit_active: float = 0.0
    # The publisher's activated count leaves out the input embedding (a table lookup):
    # gpt-oss's model card and DeepSeek-V2/V3's reports count that way.
    active_without_embedding: bool = False


def llama_like(model_type: str, layers: int, hidden: int, heads: int, kv: int, ffn: int,
               vocab: int, **more: Any) -> dict[str, Any]:
    cfg = dict(model_type=model_type, num_hidden_layers=layers, hidden_size=hidden,
               num_attention_heads=heads, num_key_value_heads=kv, intermediate_size=ffn,
               vocab_size=vocab)
    cfg.update(more)
    return cfg


VECTORS: dict[str, Vector] = {
    # meta-llama/Llama-2-7b-hf config.json. 6.74B: the released checkpoint's count on its
    # Hugging Face model page (the Llama 2 paper rounds to 7B).
    "llama2-7b": Vector(llama_like("llama", 32, 4096, 32, 32, 11008, 32000,
                                   tie_word_embeddings=False), 6.74 * B),
    # meta-llama/Llama-3.1-70B config.json; 70.6B on its Hugging Face model page.
    "llama3.1-70b": Vector(llama_like("llama", 80, 8192, 64, 8, 28672, 128256,
                                      tie_word_embeddings=False, rope_theta=500000.0),
                           70.6 * B),
    # mistralai/Mistral-7B-v0.1 config.json. Mistral AI's announcement "Mistral 7B":
    # "a 7.3B parameter model" (7.24B in the released weights).
    "mistral-7b": Vector(llama_like("mistral", 32, 4096, 32, 8, 14336, 32000,
                                    sliding_window=4096), 7.3 * B, unit_total=0.1 * B),
    # mistralai/Mixtral-8x7B-v0.1 config.json. Mistral AI, "Mixtral of experts" (Dec 2023):
    # "46.7B total parameters but only uses 12.9B parameters per token".
    "mixtral-8x7b": Vector(llama_like("mixtral", 32, 4096, 32, 8, 14336, 32000,
                                      num_local_experts=8, num_experts_per_tok=2),
                           46.7 * B, 12.9 * B),
    # Qwen/Qwen2.5-7B config.json; its model card: "Number of Parameters: 7.61B".
    "qwen2.5-7b": Vector(llama_like("qwen2", 28, 3584, 28, 4, 18944, 152064,
                                    tie_word_embeddings=False), 7.61 * B),
    # Qwen/Qwen1.5-MoE-A2.7B config.json; Qwen blog "Qwen1.5-MoE: Matching 7B Model
    # Performance with 1/3 Activated Parameters": 14.3B in total, 2.7B activated.
    "qwen1.5-moe-a2.7b": Vector(llama_like(
        "qwen2_moe", 24, 2048, 16, 16, 5632, 151936, num_experts=60, num_experts_per_tok=4,
        moe_intermediate_size=1408, shared_expert_intermediate_size=5632,
        decoder_sparse_step=1, mlp_only_layers=[]), 14.3 * B, 2.7 * B),
    # Qwen/Qwen3-8B config.json; model card: "Number of Parameters: 8.2B".
    "qwen3-8b": Vector(llama_like("qwen3", 36, 4096, 32, 8, 12288, 151936, head_dim=128,
                                  tie_word_embeddings=False), 8.2 * B),
    # Qwen/Qwen3-30B-A3B config.json; model card: "30.5B in total and 3.3B activated".
    "qwen3-30b-a3b": Vector(llama_like(
        "qwen3_moe", 48, 2048, 32, 4, 6144, 151936, head_dim=128, num_experts=128,
        num_experts_per_tok=8, moe_intermediate_size=768, decoder_sparse_step=1,
        mlp_only_layers=[], tie_word_embeddings=False), 30.5 * B, 3.3 * B,
        unit_active=0.1 * B),
    # deepseek-ai/deepseek-moe-16b-base config.json; DeepSeekMoE paper (arXiv:2401.06066):
    # 16.4B total parameters, 2.8B activated.
    "deepseek-moe-16b": Vector(llama_like(
        "deepseek", 28, 2048, 16, 16, 10944, 102400, moe_intermediate_size=1408,
        n_routed_experts=64, n_shared_experts=2, num_experts_per_tok=6,
        first_k_dense_replace=1, moe_layer_freq=1), 16.4 * B, 2.8 * B, unit_active=0.1 * B),
    # deepseek-ai/DeepSeek-V2-Lite config.json; DeepSeek-V2 report (arXiv:2405.04434) and
    # model card: 15.7B total parameters, 2.4B activated.
    "deepseek-v2-lite": Vector(llama_like(
        "deepseek_v2", 27, 2048, 16, 16, 10944, 102400, moe_intermediate_size=1408,
        n_routed_experts=64, n_shared_experts=2, num_experts_per_tok=6,
        first_k_dense_replace=1, moe_layer_freq=1, q_lora_rank=None, kv_lora_rank=512,
        qk_rope_head_dim=64, qk_nope_head_dim=128, v_head_dim=128), 15.7 * B, 2.4 * B,
        unit_active=0.1 * B, active_without_embedding=True),
    # deepseek-ai/DeepSeek-V3 config.json; DeepSeek-V3 report (arXiv:2412.19437): 671B total
    # parameters, 37B activated (the 14B multi-token-prediction module excluded).
    "deepseek-v3": Vector(llama_like(
        "deepseek_v3", 61, 7168, 128, 128, 18432, 129280, moe_intermediate_size=2048,
        n_routed_experts=256, n_shared_experts=1, num_experts_per_tok=8,
        first_k_dense_replace=3, moe_layer_freq=1, q_lora_rank=1536, kv_lora_rank=512,
        qk_rope_head_dim=64, qk_nope_head_dim=128, v_head_dim=128,
        num_nextn_predict_layers=1), 671 * B, 37 * B, unit_active=1 * B,
        active_without_embedding=True),
    # google/gemma-7b config.json (no tie_word_embeddings key: Gemma ties). Gemma report
    # (arXiv:2403.08295) Table 2: 786,825,216 embedding + 7,751,248,896 non-embedding
    # parameters (the report's embedding has 256,128 rows, the checkpoint 256,000).
    "gemma-7b": Vector(llama_like("gemma", 28, 3072, 16, 16, 24576, 256000, head_dim=256),
                       786_825_216 + 7_751_248_896),
    # google/gemma-2-9b config.json; Gemma 2 report (arXiv:2408.00118) Table 2:
    # 917,962,752 embedding + 8,324,201,984 non-embedding parameters.
    "gemma-2-9b": Vector(llama_like("gemma2", 42, 3584, 16, 8, 14336, 256000, head_dim=256,
                                    query_pre_attn_scalar=256, sliding_window=4096),
                         917_962_752 + 8_324_201_984),
    # google/gemma-3-27b-pt config.json: a gemma3 wrapper whose text_config omits what
    # equals Gemma3TextConfig's defaults (vocab_size 262208). Gemma 3 report
    # (arXiv:2503.19786) Table 1: 1,416M embedding + 25,600M non-embedding parameters
    # (the 417M vision encoder is not part of the language model).
    "gemma-3-27b": Vector(dict(model_type="gemma3", text_config=dict(
        model_type="gemma3_text", head_dim=128, hidden_size=5376, intermediate_size=21504,
        num_attention_heads=32, num_hidden_layers=62, num_key_value_heads=16,
        query_pre_attn_scalar=168, sliding_window=1024)), (1416 + 25600) * M),
    # microsoft/Phi-3-mini-4k-instruct config.json; Phi-3 report (arXiv:2404.14219):
    # "phi-3-mini, a 3.8 billion parameter language model".
    "phi-3-mini": Vector(llama_like("phi3", 32, 3072, 32, 32, 8192, 32064,
                                    tie_word_embeddings=False, resid_pdrop=0.0,
                                    embd_pdrop=0.0, attention_dropout=0.0),
                         3.8 * B, unit_total=0.1 * B),
    # microsoft/Phi-3.5-MoE-instruct config.json; its model card: 42B parameters, 6.6B
    # active with 2 of 16 experts.
    "phi-3.5-moe": Vector(llama_like("phimoe", 32, 4096, 32, 8, 6400, 32064,
                                     num_local_experts=16, num_experts_per_tok=2,
                                     attention_bias=True, lm_head_bias=True),
                          42 * B, 6.6 * B, unit_total=1 * B, unit_active=0.1 * B),
    # allenai/OLMo-7B-hf config.json; its model card calls it "OLMo 7B" and gives no finer
    # figure, so the check is only to the card's precision (1B).
    "olmo-7b": Vector(llama_like("olmo", 32, 4096, 32, 32, 11008, 50304, clip_qkv=None),
                      7 * B, unit_total=1 * B),
    # allenai/OLMo-2-1124-7B config.json; the OLMo 2 report (arXiv:2501.00656) calls it
    # "OLMo 2 7B": checked to that precision (1B) only.
    "olmo-2-7b": Vector(llama_like("olmo2", 32, 4096, 32, 32, 11008, 100352,
                                   rms_norm_eps=1e-6), 7 * B, unit_total=1 * B),
    # allenai/OLMoE-1B-7B-0924 config.json; OLMoE paper (arXiv:2409.02060) Table 1: 6.9B
    # total, 1.3B active parameters.
    "olmoe-1b-7b": Vector(llama_like("olmoe", 16, 2048, 16, 16, 1024, 50304, num_experts=64,
                                     num_experts_per_tok=8, clip_qkv=None),
                          6.9 * B, 1.3 * B, unit_active=0.1 * B),
    # tiiuae/falcon-7b config.json (no intermediate/ffn size key: Falcon's MLP is 4h;
    # multi_query: one KV head). Its model card: "a 7B parameters causal decoder-only model"
    # (no finer figure published; checked to 1B).
    "falcon-7b": Vector(dict(
        model_type="falcon", alibi=False, bias=False, hidden_size=4544, multi_query=True,
        new_decoder_architecture=False, num_attention_heads=71, num_hidden_layers=32,
        parallel_attn=True, vocab_size=65024, hidden_dropout=0.0, attention_dropout=0.0),
        7 * B, unit_total=1 * B),
    # openai-community/gpt2 config.json (no tie_word_embeddings, n_inner null); OpenAI's
    # gpt-2 repository names this checkpoint "124M".
    "gpt2": Vector(dict(model_type="gpt2", n_ctx=1024, n_embd=768, n_head=12, n_layer=12,
                        n_positions=1024, n_inner=None, vocab_size=50257, resid_pdrop=0.1,
                        embd_pdrop=0.1, attn_pdrop=0.1), 124 * M),
    # EleutherAI/gpt-neox-20b config.json; its model card's table: n_parameters
    # 20,554,567,680.
    "gpt-neox-20b": Vector(dict(model_type="gpt_neox", hidden_size=6144,
                                intermediate_size=24576, num_attention_heads=64,
                                num_hidden_layers=44, rotary_pct=0.25, vocab_size=50432,
                                tie_word_embeddings=False, use_parallel_residual=True),
                           20_554_567_680),
    # openai/gpt-oss-20b config.json; gpt-oss model card (arXiv:2508.10925): 20.9B total
    # parameters, 3.6B active per token.
    "gpt-oss-20b": Vector(llama_like(
        "gpt_oss", 24, 2880, 64, 8, 2880, 201088, head_dim=64, num_local_experts=32,
        num_experts_per_tok=4, experts_per_token=4, attention_bias=True,
        tie_word_embeddings=False, sliding_window=128), 20.9 * B, 3.6 * B,
        active_without_embedding=True),
    # openai/gpt-oss-120b config.json; same model card: 116.8B total, 5.1B active.
    "gpt-oss-120b": Vector(llama_like(
        "gpt_oss", 36, 2880, 64, 8, 2880, 201088, head_dim=64, num_local_experts=128,
        num_experts_per_tok=4, attention_bias=True, tie_word_embeddings=False),
        116.8 * B, 5.1 * B, unit_active=0.1 * B, active_without_embedding=True),
}


# --------------------------------------------------------------------------- counts


@pytest.mark.parametrize("slug", sorted(VECTORS))
def test_published_parameter_counts(slug):
    vec = VECTORS[slug]
    m = model_from_hf_config(vec.cfg, name=slug)
    # published counts are of the main model: DeepSeek-V3's 671B excludes its MTP module
    total, active, embed = counts(dataclasses.replace(m, mtp_layers=0))
    assert near(total, vec.total, vec.unit_total), (total, vec.total)
    if vec.active is None:
        assert not m.is_moe and active == total
    else:
        assert m.is_moe
        got = active - embed if vec.active_without_embedding else active
        assert near(got, vec.active, vec.unit_active), (got, vec.active)


def test_every_family_has_a_published_vector():
    covered = {v.cfg["model_type"] for v in VECTORS.values()}
    covered |= {v.cfg["text_config"]["model_type"] for v in VECTORS.values()
                if "text_config" in v.cfg}
    assert set(_FAMILIES) <= covered, set(_FAMILIES) - covered


def test_exact_counts_where_publications_give_every_digit():
    # GPT-2 small's tensors sum to 124,439,808; Pythia-160M's README: 162,322,944.
    gpt2 = model_from_hf_config(VECTORS["gpt2"].cfg)
    assert counts(gpt2)[0] == 124_439_808
    pythia = model_from_hf_config(dict(model_type="gpt_neox", hidden_size=768,
                                       intermediate_size=3072, num_attention_heads=12,
                                       num_hidden_layers=12, vocab_size=50304))
    assert counts(pythia)[0] == 162_322_944
    neox = model_from_hf_config(VECTORS["gpt-neox-20b"].cfg)
    assert counts(neox)[0] == 20_554_567_680
    # Gemma report Table 2: non-embedding parameters exactly (tied: total - embedding).
    gemma = model_from_hf_config(VECTORS["gemma-7b"].cfg)
    total, _, embed = counts(gemma)
    assert total - embed == 7_751_248_896


def test_more_checkpoints_of_the_same_readers():
    # meta-llama/Llama-3.1-8B: 8.03B (Hugging Face model page).
    m = model_from_hf_config(llama_like("llama", 32, 4096, 32, 8, 14336, 128256))
    assert near(counts(m)[0], 8.03 * B)
    # google/gemma-3-4b-pt: text_config without heads, head_dim or vocab_size (the
    # Gemma3TextConfig defaults 8, 4, 256, 262208). Gemma 3 report Table 1: 675M embedding
    # + 3,209M non-embedding parameters.
    m = model_from_hf_config(dict(model_type="gemma3", text_config=dict(
        model_type="gemma3_text", hidden_size=2560, intermediate_size=10240,
        num_hidden_layers=34, sliding_window=1024)))
    assert (m.n_heads, m.n_kv_heads, m.head_dim, m.vocab) == (8, 4, 256, 262208)
    assert m.tied_embeddings and near(counts(m)[0], (675 + 3209) * M)
    # google/gemma-3-1b-pt is a plain gemma3_text config: 302M + 698M (same table).
    m = model_from_hf_config(llama_like("gemma3_text", 26, 1152, 4, 1, 6912, 262144,
                                        head_dim=256))
    assert near(counts(m)[0], (302 + 698) * M)
    # Qwen/Qwen3-235B-A22B: 235B total, 22B activated (model card).
    m = model_from_hf_config(llama_like(
        "qwen3_moe", 94, 4096, 64, 4, 12288, 151936, head_dim=128, num_experts=128,
        num_experts_per_tok=8, moe_intermediate_size=1536))
    total, active, _ = counts(m)
    assert near(total, 235 * B, 1 * B) and near(active, 22 * B, 1 * B)


# --------------------------------------------------------------------------- dispatch


def test_olmoe_is_read_as_moe_not_dense():
    m = model_from_hf_config(VECTORS["olmoe-1b-7b"].cfg)
    assert (m.n_experts, m.top_k, m.expert_ffn_hidden) == (64, 8, 1024)
    assert m.first_k_dense == 0 and m.moe_every == 1


def test_gemma_ties_its_output_layer_by_default():
    m = model_from_hf_config(VECTORS["gemma-2-9b"].cfg)
    assert m.tied_embeddings and m.head_dim == 256 and m.n_kv_heads == 8
    untied = model_from_hf_config(dict(VECTORS["gemma-2-9b"].cfg, tie_word_embeddings=False))
    assert counts(untied)[0] - counts(m)[0] == 256000 * 3584


def test_gpt2_class_defaults_apply_to_absent_keys():
    # GPT2Config: dropout probabilities 0.1, tied embeddings, n_inner None = 4h.
    m = model_from_hf_config({"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 4,
                              "vocab_size": 100})
    assert m.dropout and m.tied_embeddings and m.ffn_hidden == 256
    assert m.learned_pos_emb == 1024
    no_drop = model_from_hf_config({"model_type": "gpt2", "n_layer": 2, "n_embd": 64,
                                    "n_head": 4, "vocab_size": 100, "resid_pdrop": 0,
                                    "embd_pdrop": 0, "attn_pdrop": 0})
    assert not no_drop.dropout
    # attribute_map: hidden_size / num_hidden_layers are the same settings as n_embd / n_layer
    alias = model_from_hf_config({"model_type": "gpt2", "num_hidden_layers": 2,
                                  "hidden_size": 64, "n_head": 4, "vocab_size": 100})
    assert (alias.n_layers, alias.hidden) == (2, 64)


def test_family_defaults_for_absent_structure_keys():
    base = dict(num_hidden_layers=2, hidden_size=2048, num_attention_heads=32,
                intermediate_size=64, vocab_size=100)
    # Qwen3Config: head_dim defaults to 128, not hidden / heads (64); 32 KV heads.
    m = model_from_hf_config(dict(base, model_type="qwen3"))
    assert (m.head_dim, m.n_kv_heads) == (128, 32)
    # MistralConfig.num_key_value_heads defaults to 8; null means = heads.
    assert model_from_hf_config(dict(base, model_type="mistral")).n_kv_heads == 8
    assert model_from_hf_config(dict(base, model_type="mistral",
                                     num_key_value_heads=None)).n_kv_heads == 32
    # LlamaConfig: num_key_value_heads None = heads; head_dim None = hidden / heads.
    m = model_from_hf_config(dict(base, model_type="llama"))
    assert (m.n_kv_heads, m.head_dim, m.tied_embeddings) == (32, 64, False)
    # DeepseekV3Config: q_lora_rank 1536, one shared expert, 3 dense layers by default.
    ds = {k: v for k, v in VECTORS["deepseek-v3"].cfg.items()
          if k not in ("q_lora_rank", "n_shared_experts", "first_k_dense_replace")}
    m = model_from_hf_config(ds)
    assert (m.q_lora_rank, m.n_shared_experts, m.first_k_dense) == (1536, 1, 3)
    # GPTNeoXConfig: attention_bias defaults to true.
    assert model_from_hf_config(dict(base, model_type="gpt_neox")).bias


def test_falcon_kv_heads_follow_the_modeling_rules():
    cfg = VECTORS["falcon-7b"].cfg
    m = model_from_hf_config(cfg)
    assert m.n_kv_heads == 1 and m.ffn_hidden == 4 * 4544 and m.tied_embeddings
    assert m.norm == "layernorm" and not m.gated_mlp and not m.bias
    # Saved configs repeat num_kv_heads = heads beside multi_query: still one KV head.
    assert model_from_hf_config(dict(cfg, num_kv_heads=71)).n_kv_heads == 1
    # tiiuae/falcon-40b: new_decoder_architecture with 8 KV heads (GQA).
    big = dict(model_type="falcon", hidden_size=8192, num_attention_heads=128,
               num_kv_heads=8, num_hidden_layers=60, vocab_size=65024,
               new_decoder_architecture=True)
    assert model_from_hf_config(big).n_kv_heads == 8
    # The RefinedWebModel configs of the first Falcon upload (n_layer / n_head keys).
    rw = {"model_type": "RefinedWebModel", "hidden_size": 4544, "n_head": 71, "n_layer": 32,
          "multi_query": True, "parallel_attn": True, "vocab_size": 65024}
    assert counts(model_from_hf_config(rw))[0] == counts(m)[0]


def test_moe_layer_rules():
    def moe_layers(m: Model) -> list[int]:
        return [i for i in range(m.n_layers) if m.n_experts and i >= m.first_k_dense
                and (i - m.first_k_dense) % m.moe_every == 0]

    qwen = VECTORS["qwen1.5-moe-a2.7b"].cfg
    # Qwen-MoE: layer i is sparse when (i + 1) % decoder_sparse_step == 0 ...
    m = model_from_hf_config(dict(qwen, decoder_sparse_step=2))
    assert moe_layers(m) == [i for i in range(24) if (i + 1) % 2 == 0]
    # ... unless listed in mlp_only_layers (with a step too, counted exactly).
    m = model_from_hf_config(dict(qwen, decoder_sparse_step=2, mlp_only_layers=[1, 3]))
    assert m.n_moe_layers == 10
    m = model_from_hf_config(dict(qwen, mlp_only_layers=[5]))
    assert m.n_moe_layers == 23 and "counted as the last 23 layers" in m.source
    m = model_from_hf_config(dict(qwen, mlp_only_layers=list(range(24))))
    assert not m.is_moe and "dense" in m.source
    # DeepSeek: i >= first_k_dense_replace and i % moe_layer_freq == 0.
    ds = VECTORS["deepseek-v3"].cfg
    m = model_from_hf_config(dict(ds, moe_layer_freq=2))
    assert moe_layers(m) == [i for i in range(61) if i >= 3 and i % 2 == 0]
    dense = model_from_hf_config(dict(VECTORS["deepseek-moe-16b"].cfg, n_routed_experts=None))
    assert not dense.is_moe


def test_deepseek_v3_mtp_module():
    """DeepSeek-V3 (arXiv:2412.19437 Sec. 2.2, 4.2): one MTP module of 14B parameters in the
    released checkpoint, which stores its own copies of the embedding and the output head
    (2 x 129280 x 7168); shared in training, pyengine counts the rest: an MoE block, the
    2h x h projection and two norms."""
    m = model_from_hf_config(VECTORS["deepseek-v3"].cfg)
    assert m.mtp_layers == 1
    total, active, _ = counts(m)
    main, main_active, _ = counts(dataclasses.replace(m, mtp_layers=0))
    copies = 2 * 129280 * 7168
    assert total - main == pytest.approx(14e9 - copies, rel=0.05)
    assert active - main_active == pytest.approx(
        (total - main) - 248 * 3 * 7168 * 2048, rel=1e-9)  # 8 of 256 experts active


def test_deepseek_group_limited_routing():
    """DeepSeek-V3 routes group-limited (transformers' DeepseekV3Config defaults n_group 8,
    topk_group 4, topk_method noaux_tc); V2-Lite's 'greedy' routes over all experts; an
    explicit config is read as given."""
    v3 = model_from_hf_config(VECTORS["deepseek-v3"].cfg)
    assert (v3.router_groups, v3.router_group_topk) == (8, 4)
    lite = model_from_hf_config(VECTORS["deepseek-v2-lite"].cfg)
    assert (lite.router_groups, lite.router_group_topk) == (0, 0)
    v2 = model_from_hf_config({**VECTORS["deepseek-v2-lite"].cfg, "n_group": 8,
                               "topk_group": 3, "topk_method": "group_limited_greedy"})
    assert (v2.router_groups, v2.router_group_topk) == (8, 3)
    with pytest.raises(SpecError, match="topk_group"):
        model_from_hf_config({**VECTORS["deepseek-v3"].cfg, "topk_group": 9})


def test_deepseek_v3_notes_what_is_not_counted():
    m = model_from_hf_config(VECTORS["deepseek-v3"].cfg)
    assert "multi-token-prediction" in m.source
    assert (m.q_lora_rank, m.kv_lora_rank, m.rope_head_dim, m.head_dim) == (1536, 512, 64, 128)
    lite = model_from_hf_config(VECTORS["deepseek-v2-lite"].cfg)
    assert lite.q_lora_rank == 0 and lite.first_k_dense == 1


@pytest.mark.parametrize("model_type,reason", [
    ("bert", "encoder-only"), ("roberta", "encoder-only"), ("t5", "encoder-decoder"),
    ("whisper", "encoder-decoder"), ("mamba", "state-space"), ("jamba", "hybrid"),
    ("phi", None), ("mpt", None), ("qwen2_vl", None),
])
def test_unsupported_model_types_are_refused_by_name(model_type, reason):
    cfg = {"model_type": model_type, "num_hidden_layers": 12, "hidden_size": 768,
           "num_attention_heads": 12, "intermediate_size": 3072, "vocab_size": 30522}
    with pytest.raises(SpecError, match=rf"model_type '{model_type}' is not supported") as info:
        model_from_hf_config(cfg)
    assert info.value.field == "model_type"
    assert "supported: deepseek, deepseek_v2" in str(info.value) and "qwen3_moe" in str(info.value)
    if reason:
        assert reason in str(info.value)


def test_model_type_from_architectures_or_refused():
    cfg = {k: v for k, v in VECTORS["mistral-7b"].cfg.items() if k != "model_type"}
    m = model_from_hf_config(dict(cfg, architectures=["MistralForCausalLM"]))
    assert m.n_kv_heads == 8 and "mistral config" in m.source
    with pytest.raises(SpecError, match=r"model_type is missing and architectures"):
        model_from_hf_config(dict(cfg, architectures=["SomethingNew"]))
    with pytest.raises(SpecError, match=r"model_type = 7"):
        model_from_hf_config(dict(cfg, model_type=7))


def test_wrappers_are_read_from_text_config():
    llava = {"model_type": "llava", "text_config": VECTORS["llama2-7b"].cfg,
             "vision_config": {"model_type": "clip_vision_model"}}
    m = model_from_hf_config(llava)
    assert counts(m)[0] == counts(model_from_hf_config(VECTORS["llama2-7b"].cfg))[0]
    assert "text_config" in m.source
    with pytest.raises(SpecError, match=r"text_config.model_type 'bert' is not supported"):
        model_from_hf_config({"model_type": "llava", "text_config": {"model_type": "bert"}})
    with pytest.raises(SpecError, match=r"HFConfig.text_config is missing"):
        model_from_hf_config({"model_type": "gemma3"})
    with pytest.raises(SpecError, match=r"HFConfig.text_config = 'x'"):
        model_from_hf_config({"model_type": "gemma3", "text_config": "x"})
    # A bad value inside text_config is named with its path.
    bad = json.loads(json.dumps(VECTORS["gemma-3-27b"].cfg))
    bad["text_config"]["num_attention_heads"] = 0
    with pytest.raises(SpecError, match=r"HFConfig.text_config.num_attention_heads = 0"):
        model_from_hf_config(bad)


# --------------------------------------------------------------------------- names


def test_names(tmp_path):
    cfg = VECTORS["llama2-7b"].cfg
    folder = tmp_path / "Llama-2-7b-hf"
    folder.mkdir()
    path = folder / "config.json"
    path.write_text(json.dumps(cfg))
    assert load_model(path).name == "llama"  # config.json, no _name_or_path: the model_type
    assert load_hf_config(path).name == "Llama-2-7b-hf"  # load_hf_config: the folder
    other = tmp_path / "my-llama.json"
    other.write_text(json.dumps(cfg))
    assert load_model(other).name == "my-llama"  # a file stem that is not "config"
    path.write_text(json.dumps(dict(cfg, _name_or_path="meta-llama/Llama-2-7b-hf")))
    assert load_model(path).name == "Llama-2-7b-hf"
    path.write_text(json.dumps(dict(cfg, _name_or_path="/data/ckpt/llama-run-3/")))
    assert load_model(path).name == "llama-run-3"
    assert load_hf_config(path, name="given").name == "given"
    assert model_from_hf_config(cfg).name == "llama"
    with pytest.raises(SpecError, match=r"_name_or_path"):
        model_from_hf_config(dict(cfg, _name_or_path=3))


# --------------------------------------------------------------------------- bad values


def write(tmp_path, text: str | bytes, name: str = "config.json"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_issue_tracebacks_are_spec_errors(tmp_path):
    qwen = VECTORS["qwen1.5-moe-a2.7b"].cfg
    path = write(tmp_path, json.dumps(dict(qwen, moe_intermediate_size=0)))
    with pytest.raises(SpecError, match=r"config\.json: HFConfig\.moe_intermediate_size = 0 "
                       r"is not allowed: an integer in \[1, "):
        load_model(path)
    path = write(tmp_path, json.dumps(dict(qwen, mlp_only_layers=[0, "x"])))
    with pytest.raises(SpecError, match=r"config\.json: HFConfig\.mlp_only_layers.*bad entry 'x'"):
        load_model(path)
    path = write(tmp_path, b'{"model_type": "llama", "name": "caf\xe9"}')
    with pytest.raises(SpecError, match=r"config\.json: not UTF-8 text: byte 0xe9 at offset "):
        load_model(path)
    for key, literal in (("num_hidden_layers", "Infinity"), ("hidden_size", "1e400"),
                         ("vocab_size", "NaN"), ("intermediate_size", "-Infinity")):
        text = json.dumps(VECTORS["llama2-7b"].cfg).replace(
            f'"{key}": {VECTORS["llama2-7b"].cfg[key]}', f'"{key}": {literal}')
        with pytest.raises(SpecError, match=rf"config\.json: HFConfig\.{key} = .* is not "
                           r"allowed: an integer") as info:
            load_model(write(tmp_path, text))
        assert info.value.field == key


@pytest.mark.parametrize("slug", ["falcon-7b", "deepseek-moe-16b"])
def test_configs_without_intermediate_size_keys_load(slug):
    model_from_hf_config(VECTORS[slug].cfg)  # no "intermediate_size is missing"


@pytest.mark.parametrize("model_type", ["t5", "whisper", "mamba"])
def test_non_decoders_named_in_the_error(model_type):
    with pytest.raises(SpecError, match=rf"model_type '{model_type}' is not supported: "
                       rf"{model_type} is an? "):
        model_from_hf_config({"model_type": model_type, "d_model": 512})


BAD = ["x", True, -1, 1.5, math.nan, math.inf, -math.inf, 2**40, 10**400, [1], {"a": 1}, 0,
       None]
# Keys where 0 or null is a meaning of its own (none, dense, no compression, = heads, ...).
ZERO_OK = {"n_shared_experts", "first_k_dense_replace", "shared_expert_intermediate_size",
           "num_nextn_predict_layers", "num_experts", "qk_rope_head_dim", "resid_pdrop",
           "embd_pdrop", "attn_pdrop", "attention_dropout", "hidden_dropout"}
NULL_OK = {"q_lora_rank", "num_key_value_heads", "head_dim", "n_inner", "mlp_only_layers",
           "n_routed_experts", "n_shared_experts", "num_kv_heads", "ffn_hidden_size",
           "resid_pdrop", "embd_pdrop", "attn_pdrop", "attention_dropout", "hidden_dropout"}


def _read_keys(cfg: dict[str, Any], prefix: tuple[str, ...] = ()):
    """(path, published value) of every key the config's reader reads."""
    if "text_config" in cfg:
        yield from _read_keys(cfg["text_config"], prefix + ("text_config",))
        return
    family = _FAMILIES[{"RefinedWebModel": "falcon"}.get(cfg["model_type"], cfg["model_type"])]
    known = set(family.defaults) | {a for al in family.aliases.values() for a in al}
    for key, value in cfg.items():
        if key in known:
            yield prefix + (key,), value


def _accepts(key: str, published: Any, value: Any) -> bool:
    """Whether ``value`` is a valid setting of ``key`` (the published value's kind)."""
    if value is None:
        return key in NULL_OK
    if isinstance(published, bool):
        return isinstance(value, bool)
    if isinstance(published, list):
        return value == [1]
    return value == 0 and not isinstance(value, bool) and key in ZERO_OK


def _set(cfg: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    new = json.loads(json.dumps(cfg))
    node = new
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return new


@pytest.mark.parametrize("slug", sorted(VECTORS))
def test_every_bad_value_is_a_spec_error_naming_the_key(slug):
    cfg = VECTORS[slug].cfg
    for path, published in _read_keys(cfg):
        dotted = ".".join(path)
        for bad in BAD:
            try:
                model_from_hf_config(_set(cfg, path, bad))
            except SpecError as err:
                assert f"HFConfig.{dotted}" in str(err) or f"'{path[-1]}'" in str(err), \
                    (dotted, bad, str(err))
            except Exception as err:  # pragma: no cover - what this test guards against
                pytest.fail(f"{slug}: {dotted} = {bad!r} raised {type(err).__name__}: {err}")
            else:
                assert _accepts(path[-1], published, bad), (slug, dotted, bad)


def test_bad_values_in_a_file_name_the_file(tmp_path):
    for slug in ("qwen3-30b-a3b", "gemma-3-27b", "gpt2", "falcon-7b", "deepseek-v2-lite"):
        cfg = VECTORS[slug].cfg
        path = tmp_path / f"{slug}.json"
        for key, _ in list(_read_keys(cfg))[:4]:
            path.write_text(json.dumps(_set(cfg, key, -7)))
            with pytest.raises(SpecError) as info:
                load_model(path)
            assert str(info.value).startswith(f"{path}: HFConfig.{'.'.join(key)} = -7 ")
            assert info.value.path == str(path)


def test_misspelled_keys(tmp_path):
    cfg = dict(VECTORS["llama2-7b"].cfg)
    cfg["num_hiden_layers"] = cfg.pop("num_hidden_layers")
    with pytest.raises(SpecError, match=r"config\.json: HFConfig\.num_hidden_layers is missing: "
                       r".*required.*did you mean 'num_hiden_layers'\?"):
        load_model(write(tmp_path, json.dumps(cfg)))
    cfg = dict(VECTORS["llama2-7b"].cfg, tie_word_embedding=True)  # an optional key
    del cfg["tie_word_embeddings"]
    with pytest.raises(SpecError, match=r"unknown key 'tie_word_embedding'; did you mean "
                       r"'tie_word_embeddings'"):
        model_from_hf_config(cfg)
    with pytest.raises(SpecError, match=r"HFConfig\.n_embd is missing"):
        model_from_hf_config({"model_type": "gpt2", "n_layer": 2})


def test_inconsistent_values_name_the_key():
    base = VECTORS["mistral-7b"].cfg
    with pytest.raises(SpecError, match=r"num_key_value_heads = 5 .*divisor of "
                       r"num_attention_heads \(32\)"):
        model_from_hf_config(dict(base, num_key_value_heads=5))
    with pytest.raises(SpecError, match=r"num_key_value_heads = 32 .*divisor of "
                       r"num_attention_heads \(16\).*absent; transformers' qwen2 default is 32"):
        model_from_hf_config({k: v for k, v in dict(VECTORS["qwen2.5-7b"].cfg,
                                                     num_attention_heads=16).items()
                              if k != "num_key_value_heads"})
    with pytest.raises(SpecError, match=r"num_experts_per_tok = 9 .*\[1, 8\]"):
        model_from_hf_config(dict(VECTORS["mixtral-8x7b"].cfg, num_experts_per_tok=9))
    with pytest.raises(SpecError, match=r"head_dim is missing: hidden_size \(4100\)"):
        model_from_hf_config(dict(base, hidden_size=4100))
    with pytest.raises(SpecError, match=r"'num_hidden_layers' and 'n_layer' are the same"):
        model_from_hf_config(dict(VECTORS["falcon-7b"].cfg, n_layer=31))
    with pytest.raises(SpecError, match=r"num_experts_per_tok = None"):
        model_from_hf_config(dict(VECTORS["deepseek-v2-lite"].cfg, num_experts_per_tok=None))


@pytest.mark.parametrize("text,match", [
    ('{"model_type": "llama", "num_hidden_layers": 3', r"not valid JSON: .*ends early"),
    ("", r"not valid JSON"),
    ("model_type: llama", r"not valid JSON"),
    ('[{"model_type": "llama"}]', r"expected a JSON table/object at the top level, got list"),
    ("[" * 100000 + "]" * 100000, r"not valid JSON"),
])
def test_unreadable_files_name_the_file(tmp_path, text, match):
    path = write(tmp_path, text)
    with pytest.raises(SpecError, match=rf"^{re.escape(str(path))}: {match}"):
        load_model(path)


def test_utf8_bom_is_accepted(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbf" + json.dumps(VECTORS["gpt2"].cfg).encode())
    assert load_model(path).n_layers == 12
