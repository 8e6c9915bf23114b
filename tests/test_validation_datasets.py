"""Validation-only datasets (pyengine/data/validation.json): each loads, has rows, and its
plans are the ones the source prints; the summaries and the Markdown renderer run.

No accuracy bounds here: these results are never fitted and the cost model changes."""

from __future__ import annotations

import json
import math
from importlib import resources

import numpy as np
import pytest

from pyengine import validate as V
from pyengine.cli import main

RAW = json.loads(resources.files("pyengine").joinpath("data/validation.json").read_text())
DATA = RAW["datasets"]


@pytest.fixture(scope="module")
def sets():
    return {ds.name: ds for ds in V.run(list(V.VALIDATION))}


def row(ds, label, metric=""):
    found = [r for r in ds.rows if r.label == label and r.metric == metric]
    assert len(found) == 1, (label, [r.label for r in ds.rows])
    return found[0]


def test_every_validation_dataset_loads(sets):
    assert set(sets) == set(V.VALIDATION)
    for name, ds in sets.items():
        assert ds.name == name and not ds.fitted and ds.ok
        assert ds.kind in ("training", "serving"), name
        assert ds.rows, name
        assert "(validation, not fitted)" in ds.source
        for r in ds.rows:
            assert r.published > 0 and math.isfinite(r.published), (name, r.label)
            assert r.plan is not None, (name, r.label)
            assert r.feasible or r.note.startswith("infeasible"), (name, r.label)
            assert math.isfinite(r.predicted)
        labels = [(r.label, r.metric) for r in ds.rows]
        assert len(labels) == len(set(labels)), name


def test_every_validation_key_is_wired_or_said_why():
    wired = {"korthikanti_2022_table5", *V.NEMO_LONG, "megatron_core_h100_weak_scaling_gpt",
             *V.DGXC_KEYS, "llama3_2_1b_single_gpu_training_iteration_b200_h200_cudnn_frontend",
             "torch_compile_eager_vs_cudagraph_b200_mlengineering",
             "torchtitan_llama4_scout_mxfp8_gb200_torchao",
             "tensorrt_llm_perf_overview_v1_0_max_throughput",
             *(f"azure_trtllm_inference_tokens_per_s_{g}" for g in V.AZURE_GPUS),
             "nim_llama3_3_70b_2xh100_fp8_tp2_latency_vs_concurrency"}
    bridge = {k for k in DATA if k.startswith("megatron_bridge_perf_summary")}
    assert set(DATA) == wired | bridge | set(V.UNWIRED)
    assert not wired & set(V.UNWIRED)


def test_korthikanti_table5_data_and_plans(sets):
    d = DATA["korthikanti_2022_table5"]
    assert "arXiv:2205.05198" in d["source"] and "09bbcb7e8833edc169fbe2f2bf69fca04b894202" in \
        d["source"]
    printed = {r["model"]: r for r in d["values"]["rows"]}
    assert printed["22B"]["full_recompute_iteration_time_s"] == 1.42
    assert printed["1T"]["present_work_iteration_time_s"] == 71.49
    ds = sets["korthikanti_2022_table5"]
    assert len(ds.rows) == 8 and ds.metric == "iteration time (s)"
    r = row(ds, "175B present work")
    assert r.published == 13.75
    p = r.plan
    assert (p.tp, p.pp, p.dp, p.vpp, p.global_batch, p.micro_batch, p.seq_len) == \
        (8, 8, 1, 3, 64, 1, 2048)
    assert p.recompute == "selective" and p.recompute_core_attn and p.sequence_parallel
    assert p.zero == 0 and not p.flash_attention
    r = row(ds, "1T full recompute")
    assert r.published == 94.42
    p = r.plan
    assert (p.pp, p.vpp, p.global_batch) == (64, 1, 512)
    assert p.recompute == "full" and not p.sequence_parallel
    p = row(ds, "22B present work").plan
    assert (p.pp, p.micro_batch, p.global_batch) == (1, 4, 4)
    p = row(ds, "530B full recompute").plan
    assert (p.pp, p.vpp, p.global_batch) == (35, 3, 280)


def test_nemo_long_sequence_plans(sets):
    ds = sets["nemo_long_sequence_cp_llama2_7b_h100"]
    src = DATA["nemo_long_sequence_cp_llama2_7b_h100"]["values"]["rows"]
    assert len(ds.rows) == len(src)
    last = src[-1]
    r = ds.rows[-1]
    p = r.plan
    assert (p.tp, p.pp, p.dp, p.cp) == (last["with_cp_tp"], last["with_cp_pp"],
                                       last["with_cp_dp"], last["with_cp_cp"]) == (8, 1, 4, 32)
    assert p.seq_len == 1024 * 1024 and p.global_batch == last["batch_size"]
    assert p.dtype == "fp8" and r.published == last["with_cp_tflops_per_gpu"]
    # NeMo 24.03.01 runs Transformer Engine 1.2: CP only with flash-attn 2, cuDNN without
    assert {(r.plan.cp > 1, r.plan.attention_kernel) for r in ds.rows} == {
        (True, "fa2"), (False, "cudnn")}
    ds = sets["nemo_long_sequence_cp_llama3_8b_b200"]
    assert {r.plan.attention_kernel for r in ds.rows} == {"cudnn"}  # NeMo 25.04: TE 2.x
    first = DATA["nemo_long_sequence_cp_llama3_8b_b200"]["values"]["rows"][0]
    p = ds.rows[0].plan
    assert (p.tp, p.pp, p.dp, p.cp, p.global_batch, p.seq_len) == (1, 1, 2, 1, 512, 8192)
    assert first["with_cp_dp"] == p.dp and "printed 8 GPUs" in ds.rows[0].label
    assert any("without-CP" in s for s in ds.skipped)


def test_megatron_core_weak_scaling_plans(sets):
    ds = sets["megatron_core_h100_weak_scaling_gpt"]
    src = DATA["megatron_core_h100_weak_scaling_gpt"]["values"]["rows"]
    assert len(ds.rows) == len(src) == 9
    for i in (0, 4, 8):
        p, s = ds.rows[i].plan, src[i]
        assert (p.tp, p.pp, p.dp, p.global_batch) == (s["tp"], s["pp"], s["dp"],
                                                      s["global_batch_size_sequences"])
        assert p.n_gpus == s["num_gpus"] and p.seq_len == 4096 and p.dtype == "bf16"
        # PP runs interleave one layer per virtual stage (overlapped PP communication)
        assert p.pp * p.vpp == (int(s["num_layers"]) if p.pp > 1 else 1)
        assert ds.rows[i].published == s["per_gpu_tflops"]
    model = V.megatron_core_gpt(src[8], 131072, 4096)
    assert (model.n_layers, model.hidden, model.n_heads) == (112, 18432, 144)


def dgxc_rows(ds, label):
    return row(ds, label).plan


def test_dgxc_plans_as_printed(sets):
    ds = sets["dgxc_benchmarking_v25_03_gpt3_175b_h100"]
    p = dgxc_rows(ds, "NeMo Megatron BF16 on 128x H100")
    assert (p.tp, p.pp, p.vpp, p.micro_batch, p.seq_len, p.global_batch, p.dp) == \
        (4, 8, 12, 1, 2048, 256, 4)
    assert row(ds, "NeMo Megatron FP8 on 2048x H100").published == 5.96

    ds = sets["dgxc_benchmarking_v25_03_grok1_314b_h100"]
    cfg = DATA["dgxc_benchmarking_v25_03_grok1_314b_h100"]["values"]["config_tables"][0]["rows"]
    r = row(ds, "Grok 1 314b BF16 on 8x H100 (2-layer proxy)")
    assert (r.plan.tp, r.plan.ep, r.plan.dp, r.plan.seq_len, r.plan.global_batch) == \
        (cfg[0]["TP"], cfg[0]["EP"], 2, cfg[0]["SeqLen"], cfg[0]["GBS"])
    assert "printed DP 1" in r.note
    p = dgxc_rows(ds, "Grok 1 314b FP8 on 2048x H100")
    assert (p.tp, p.pp, p.cp, p.ep, p.vpp, p.dp, p.global_batch, p.dtype) == \
        (4, 8, 2, 8, 8, 32, 4096, "fp8")
    # v25.03 prints no ETP: Megatron-Core's default (expert TP = TP) of its NeMo 24.12
    assert "ETP" not in cfg[0] and p.etp == p.tp == 4
    # its configure.sh sets NVTE_FUSED_ATTN=0 (TE's flash-attn backend): flash-attn 2 in
    # nemo:24.12 (FlashAttention-3 was a separate install); the other NeMo recipes run
    # TE's cuDNN attention
    assert p.attention_kernel == "fa2"
    assert dgxc_rows(sets["dgxc_benchmarking_v25_03_nemotron4_340b_h100"],
                     "Nemotron4 340b BF16 on 128x H100").attention_kernel == "fa2"
    assert dgxc_rows(sets["dgxc_benchmarking_v25_03_nemotron4_15b_h100"],
                     "Nemotron4 15b BF16 on 16x H100").attention_kernel == "cudnn"
    assert dgxc_rows(sets["dgxc_benchmarking_v25_03_gpt3_175b_h100"],
                     "NeMo Megatron BF16 on 128x H100").attention_kernel == "cudnn"

    ds = sets["dgxc_benchmarking_v25_05_04_grok1_314b_gb200_h100"]
    p = dgxc_rows(ds, "Grok1 314b BF16 on 128x GB200")
    assert (p.tp, p.pp, p.ep, p.etp, p.dp, p.global_batch, p.seq_len) == \
        (4, 1, 8, 4, 32, 256, 8192)
    p = dgxc_rows(ds, "Grok1 314b FP8 on 512x H100")
    assert (p.tp, p.pp, p.cp, p.ep, p.etp, p.vpp, p.dp) == (4, 8, 2, 8, 1, 8, 8)

    ds = sets["dgxc_benchmarking_v25_04_llama3_1_8b_70b_405b_h100"]
    p = dgxc_rows(ds, "Llama 3.1 70b FP8 on 64x H100")
    assert (p.tp, p.pp, p.cp, p.vpp, p.dp, p.global_batch, p.seq_len) == \
        (4, 8, 1, 5, 2, 128, 8192)
    p = dgxc_rows(ds, "Llama 3.1 70b BF16 on 64x H100")
    assert (p.tp, p.pp, p.cp, p.vpp, p.dp) == (4, 4, 2, 5, 2)
    p = dgxc_rows(ds, "Llama 3.1 405b BF16 on 64x H100 (30-layer proxy)")
    assert (p.tp, p.pp, p.cp, p.vpp, p.dp) == (8, 4, 2, 8, 1) and p.pp_embedding

    ds = sets["dgxc_benchmarking_v25_05_04_llama3_1_405b_gb200_h100"]
    assert dgxc_rows(ds, "Llama3.1 405b BF16 on 512x GB200").tp == 4
    assert dgxc_rows(ds, "Llama3.1 405b BF16 on 512x H100").tp == 8

    ds = sets["dgxc_benchmarking_v25_05_04_nemotron4_340b_gb200_h100"]
    p = dgxc_rows(ds, "Nemotron 340b BF16 GB200 Strong Scaling on 128x GB200")
    assert (p.tp, p.pp, p.vpp, p.dp, p.global_batch, p.seq_len) == (8, 4, 12, 4, 512, 4096)
    assert row(ds, "Nemotron 340b BF16 GB200 Strong Scaling on 128x GB200").published == 32.66

    ds = sets["dgxc_benchmarking_v25_03_maxtext_llama3_70b_h100"]
    p = dgxc_rows(ds, "Maxtext Llama3 70b BF16 on 128x H100")
    assert (p.tp, p.dp, p.zero, p.micro_batch, p.global_batch, p.seq_len) == \
        (1, 128, 3, 2, 256, 8192)
    assert sum("hybrid sharding" in s for s in ds.skipped) == 6

    ds = sets["dgxc_benchmarking_v25_03_nemotron4_15b_h100"]
    p = dgxc_rows(ds, "Nemotron4 15b FP8 on 16x H100")
    assert (p.tp, p.pp, p.micro_batch, p.global_batch, p.dp, p.seq_len) == (4, 1, 4, 64, 4, 4096)

    ds = sets["dgxc_benchmarking_v25_03_llama3_70b_sft_h100"]
    assert len(ds.rows) == 2 and sum("LoRA" in s for s in ds.skipped) == 2


def test_single_gpu_and_torchtitan_plans(sets):
    ds = sets["llama3_2_1b_cudnn_frontend"]
    src = DATA["llama3_2_1b_single_gpu_training_iteration_b200_h200_cudnn_frontend"]
    assert len(ds.rows) == len(src["values"]["rows"]) == 36
    for i in (0, 17, 35):
        s, r = src["values"]["rows"][i], ds.rows[i]
        assert (r.plan.global_batch, r.plan.micro_batch, r.plan.seq_len) == \
            (s["batch_size"], s["batch_size"], s["seq_len_tokens"])
        assert r.plan.n_gpus == 1 and r.published == s["iteration_time_s"]
    # the B200's clock lock failed in its run log: no lock recorded, vendor peak; the H200
    # rows keep their 1500 MHz lock
    locks = {(s["gpu"], s["locked_clock_MHz"]) for s in src["values"]["rows"]}
    assert locks == {("NVIDIA B200", None), ("NVIDIA H200", 1500)}
    ds = sets["torch_compile_b200"]
    assert [r.plan.seq_len for r in ds.rows] == [512, 8192]
    assert all(r.plan.recompute == "full" and r.plan.global_batch == 1 for r in ds.rows)
    assert ds.rows[1].published == pytest.approx(0.6373)
    ds = sets["torchtitan_llama4_scout_gb200"]
    p = ds.rows[0].plan
    assert (p.dp, p.ep, p.zero, p.seq_len, p.micro_batch, p.recompute) == \
        (256, 16, 3, 8192, 1, "none")
    assert [r.published for r in ds.rows] == [6169, 7401]


def test_serving_plans(sets):
    ds = sets["trtllm_perf_overview"]
    r = row(ds, "Llama 3.1 405B H100 FP8 TP8 5000/500")
    assert r.published == 610
    assert (r.plan.mode, r.plan.tp, r.plan.seq_len, r.plan.gen_tokens, r.plan.dtype) == \
        ("decode", 8, 5000, 500, "fp8")
    # as trtllm-bench runs: in-flight batching in its heuristic's token budget, KV cache
    # 95% of free: 8 x 79.65 GiB less 405.9e9 B of FP8 weights, x 0.95, over 5500 tokens
    # x 2 x 126 layers x 8 heads x 128 x 1 B = 186.3 requests -> max batch 192; tokens
    # 186.3 x 11 = 2049 -> 2304, raised to ISL + 192 = 5192 (chunked prefill off)
    assert (r.plan.max_num_tokens, r.plan.kv_cache_fraction, r.plan.cuda_graphs) == \
        (5192, 0.95, True)
    assert row(ds, "Llama 3.3 70B H200 FP8 TP1 128/128").plan.tp == 1
    # MoE runs: attention data parallel over the printed TP, experts over EP = TP
    q = row(ds, "Qwen3-235B-A22B H200 FP8 TP8 2048/2048")
    assert q.published == 16672
    assert (q.plan.tp, q.plan.dp, q.plan.ep, q.plan.expert_tp) == (1, 8, 8, 1)
    # FP4 runs on Blackwell as NVFP4 weights
    assert row(ds, "Llama 3.3 70B B200 FP4 TP1 128/128").plan.dtype == "nvfp4"
    assert not any("RTX" in r.label for r in ds.rows)

    ds = sets["azure_trtllm_h100"]
    r = row(ds, "Llama 3 405B TP8 batch 32")
    assert r.published == 251.5
    assert (r.plan.tp, r.plan.global_batch, r.plan.seq_len, r.plan.gen_tokens, r.plan.dtype) == \
        (8, 32, 128, 8, "fp8")
    assert row(sets["azure_trtllm_a100"], "Llama 3 70B TP8 batch 16").plan.dtype == "bf16"
    assert len(sets["azure_trtllm_h200"].rows) == 6
    # benchmark.py -m dec without --enable_cuda_graph: steps launched kernel by kernel
    assert not any(r.plan.cuda_graphs for g in ("a100", "h100", "h200")
                   for r in sets[f"azure_trtllm_{g}"].rows)

    ds = sets["nim_llama3_3_70b_h100"]
    src = DATA["nim_llama3_3_70b_2xh100_fp8_tp2_latency_vs_concurrency"]["values"]["rows"]
    assert len(ds.rows) == 3 * len(src)
    assert {r.metric for r in ds.rows} == {"throughput", "TTFT", "ITL"}
    r = row(ds, "concurrency 25", "TTFT")
    assert r.published == pytest.approx(0.68869) and r.unit == "s"
    assert (r.plan.global_batch, r.plan.tp, r.plan.seq_len, r.plan.gen_tokens) == \
        (25, 2, 5000, 500)
    assert row(ds, "concurrency 1", "throughput").published == 51.67


def test_trtllm_bench_requests_use_the_configs_head_dim():
    """calc_engine_setting's KV bytes a token take the config's head size: Qwen3-235B's
    heads are 128 wide though hidden / heads is 64. 8 x 79.65 GiB less 235.09e9 B of FP8
    weights, x 0.95, over 2048 + 128 tokens x 2 x 94 layers x 8 heads x 128 x 1 B."""
    from pyengine import presets

    qwen, hw = presets.model("qwen3-235b-a22b"), presets.hardware("h100-sxm")
    assert qwen.head_dim == 128 != qwen.hidden // qwen.n_heads
    gib = 2.0 ** 30
    weights = V.R.model_vector(qwen)[V.S.M_PARAMS_TOTAL] / gib
    want = ((hw.hbm_capacity_bytes / gib * 8 - weights) * 0.95
            / (2 * 94 * 8 * 128 / gib * (2048 + 128)))
    assert V.trtllm_bench_requests(qwen, hw, 2048, 128, 8, "fp8") == pytest.approx(want)


@pytest.mark.parametrize("requests, isl, osl, want", [
    (186.3, 5000, 500, (192, 5192)),    # to 32 below 256; 2049 tokens -> 2304 < ISL + 192
    (10.0, 128, 128, (64, 2048)),        # at least 64 requests and 2048 tokens
    (700.0, 128, 2048, (768, 2048)),     # to 128 below 1024; 743.75 tokens -> 2048
    (2295.0, 2048, 128, (2304, 32768)),  # to 256; 39015 tokens capped at 32768
    (9000.0, 128, 128, (4096, 8192)),    # requests capped at 4096; 8192 tokens to 1024
    (300.0, 1000, 1000, (384, 2048)),    # ISL + 384 = 1384 below the 2048 floor
    (3000.0, 500, 2000, (3072, 3840)),   # 3750 tokens to 256: 3840 > ISL + 3072 = 3572
])
def test_trtllm_bench_limits_follow_its_heuristic(requests, isl, osl, want):
    """tuning.py finetune_setting (optimistic tuning) and general.py's ISL + max batch
    floor, worked by hand from their rules."""
    assert V.trtllm_bench_limits(requests, isl, osl) == want


def synthetic():
    a = V.Dataset("a", "s", "tok/s", 0.15, math.inf, fitted=False, kind="serving", rows=[
        V.Row("c1", 100.0, 110.0, "tok/s", metric="throughput"),
        V.Row("c1", 1.0, 3.0, "s", metric="TTFT"),
        V.Row("c2", 100.0, 0.0, "tok/s", "infeasible: MEMORY", False, metric="throughput"),
        V.Row("c2", 1.0, 0.0, "s", "infeasible: MEMORY", False, metric="TTFT")])
    b = V.Dataset("b", "s", "s", 0.10, math.inf, fitted=False, kind="training",
                  rows=[V.Row("x", 10.0, 9.0, "s")])
    return [a, b]


def test_pooled_summary_and_infeasible_runs():
    a, b = synthetic()
    p = V.pooled([a, b], "serving")
    assert p["rows"] == 2 and p["infeasible"] == 2 and p["mape"] == pytest.approx(1.05)
    assert V.pooled([a, b], "serving", "tok/s")["mape"] == pytest.approx(0.10)
    assert V.pooled([a, b], "training")["mape"] == pytest.approx(0.10)
    runs = V.infeasible_runs([a, b])
    assert runs == [{"dataset": "a", "label": "c2", "fitted": False, "known": False,
                     "violations": "infeasible: MEMORY", "metrics": ["throughput", "TTFT"]}]
    text = V.render([a, b], verbose=False)
    assert "c2 [throughput]" in text  # infeasible rows listed even when quiet
    assert "infeasible published runs: 1" in text
    assert text.rstrip().splitlines()[-1].startswith("validation only, not fitted: training 1")


def test_markdown_renderer_and_splice(tmp_path):
    a, b = synthetic()
    block = V.render_markdown([a, b])
    assert block.startswith(V.MARKDOWN_BEGIN) and block.endswith(V.MARKDOWN_END)
    assert "### a" in block and "### b" in block and "| c1 | TTFT |" in block
    assert "`a`: c2 (throughput, TTFT): infeasible: MEMORY" in block
    doc = f"# t\n\nprose\n\n{V.MARKDOWN_BEGIN}\nold\n{V.MARKDOWN_END}\n\nmore prose\n"
    new = V.splice_markdown(doc, block)
    assert new.startswith("# t\n\nprose\n\n") and new.endswith("\n\nmore prose\n")
    assert "old" not in new and V.splice_markdown(new, block) == new
    with pytest.raises(ValueError):
        V.splice_markdown("no markers", block)


def test_validation_plot(tmp_path, capsys):
    """`validate --plot` draws one line per dataset; times are inverted so that right of 1
    is always the model's optimism; a bad suffix is refused before anything runs."""
    pytest.importorskip("matplotlib")
    from pyengine.plot import plot_validation

    path = tmp_path / "v.png"
    assert main(["validate", "--quiet", "--plot", str(path), "--dataset", "zero_2019",
                 "--dataset", "korthikanti_2022_table5"]) == 0
    assert path.stat().st_size > 5000 and "plot saved to" in capsys.readouterr().err
    a, b = synthetic()  # b: a time metric predicted 9 s against 10 s published
    fig = plot_validation([a, b])
    ax = fig.axes[0]
    xs = {tuple(np.round(c.get_offsets()[:, 0], 6)) for c in ax.collections
          if len(c.get_offsets())}
    assert (round(10.0 / 9.0, 6),) in xs  # faster than measured: right of 1
    labels = [t.get_text() for t in ax.get_yticklabels()]
    # bottom to top: serving (a) below training (b); each with its mean |error|
    assert labels == ["a  105.0%", "b  10.0%"]
    capsys.readouterr()
    assert main(["validate", "--plot", str(tmp_path / "v.txt")]) == 2
    assert "--plot" in capsys.readouterr().err and not (tmp_path / "v.txt").exists()


def test_cli_markdown_json_and_summary(tmp_path, capsys):
    assert main(["validate", "--markdown", "--dataset", "korthikanti_2022_table5",
                 "--dataset", "zero_2019"]) == 0
    out = capsys.readouterr().out
    assert "### korthikanti_2022_table5" in out and "### zero_2019" in out
    doc = tmp_path / "acc.md"
    doc.write_text(f"x\n{V.MARKDOWN_BEGIN}\n{V.MARKDOWN_END}\ny\n")
    assert main(["validate", "--markdown", str(doc), "--dataset", "azure_trtllm_a100"]) == 0
    assert "### azure_trtllm_a100" in doc.read_text() and doc.read_text().endswith("y\n")
    capsys.readouterr()
    bad = tmp_path / "bad.md"
    bad.write_text("no block\n")
    assert main(["validate", "--markdown", str(bad), "--dataset", "azure_trtllm_a100"]) == 2
    assert "no '" in capsys.readouterr().err
    assert main(["validate", "--json", "--dataset", "nim_llama3_3_70b_h100"]) == 0
    d = json.loads(capsys.readouterr().out)
    nim = d["nim_llama3_3_70b_h100"]
    assert not nim["fitted"] and nim["kind"] == "serving" and nim["rows"][0]["metric"]
    assert d["_summary"]["validation_serving"]["rows"] > 0
    assert main(["validate", "--quiet", "--dataset", "megatron_bridge", "--dataset",
                 "torch_compile_b200"]) == 0
    last = capsys.readouterr().out.rstrip().splitlines()[-1]
    assert last.startswith("validation only, not fitted: training")


def test_accuracy_doc_has_the_generated_block():
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "accuracy.md").read_text()
    assert V.MARKDOWN_BEGIN in doc and V.MARKDOWN_END in doc
    fitted = ("zero_2019", "korthikanti_2022", "megatron_lm_2021", "nemo_24_07",
              "trtllm_llama31_8b")  # those of the time of writing; regenerate for new ones
    for name in [*fitted, *V.VALIDATION]:
        assert f"### {name}\n" in doc, name
    assert "### Published runs predicted infeasible" in doc


def test_transformer_engine_runs_use_cudnn_attention(sets):
    """Transformer Engine prefers its cuDNN FusedAttention on Hopper (attention.py, since
    v1.3): the NeMo / Megatron-Core plans name attention_kernel cudnn; cudnn-frontend's
    SDPA backends map to cudnn / fa2 / mem_efficient."""
    from pyengine import validate as V

    row = V.published()["nemo_24_07_pretraining_h100_fp8"]["rows"][0]
    assert V.nemo_plan(row).attention_kernel == "cudnn"
    ds = sets["megatron_core_h100_weak_scaling_gpt"]
    assert all(r.plan.attention_kernel == "cudnn" for r in ds.rows)
    ds = sets["llama3_2_1b_cudnn_frontend"]
    kernels = {r.label.split()[1]: r.plan.attention_kernel for r in ds.rows}
    assert kernels == {"CUDNN": "cudnn", "FLASH": "fa2", "EFFICIENT": "mem_efficient"}
