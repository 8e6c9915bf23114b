"""The one native source compiles everywhere it is used, without a GPU.

- csrc/kernels.cu with nvcc (the flags NVRTC gets: C++17, no FMA contraction), for
  Hopper (sm_90 SASS) and as PTX; and the single self-contained text the cupy backend
  hands to NVRTC, with no include path at all.
- csrc/cost_model.hpp as plain C++ with warnings as errors, and in "NVRTC mode"
  (__CUDACC_RTC__) with no standard headers at all: NVRTC has no STL.
Skipped (with the reason) where nvcc or g++ is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pyengine.backends import cupy_gpu

ROOT = Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"
NVCC = shutil.which("nvcc") or next(
    (str(p) for p in (Path("/usr/local/cuda/bin/nvcc"),) if p.exists()), None)
GXX = shutil.which("g++") or shutil.which("c++")

needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc (CUDA toolkit) is not installed")
needs_gxx = pytest.mark.skipif(GXX is None, reason="no C++ compiler (g++) is installed")
# the flags cupy_gpu passes to NVRTC, minus the include path
NVRTC_FLAGS = [o.replace("--std=", "-std=") for o in cupy_gpu.OPTIONS]


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"


@needs_nvcc
def test_kernels_compile_for_hopper(tmp_path):
    _run([NVCC, *NVRTC_FLAGS, "-arch=sm_90", "-c", "-o", str(tmp_path / "kernels.o"),
          "-I", str(CSRC), str(CSRC / "kernels.cu")])


@needs_nvcc
def test_nvrtc_source_is_self_contained(tmp_path):
    """What cupy_gpu compiles: kernels.cu with its headers inlined; PTX has every kernel."""
    src = tmp_path / "pyengine_kernels.cu"
    src.write_text(cupy_gpu.kernel_source(CSRC))
    ptx = tmp_path / "pyengine_kernels.ptx"
    _run([NVCC, *NVRTC_FLAGS, "-arch=sm_90", "--ptx", "-diag-suppress", "177", "-o",
          str(ptx), str(src)])
    text = ptx.read_text()
    for name in cupy_gpu.KERNELS:
        assert f".entry {name}(" in text, name


@needs_gxx
def test_header_compiles_as_plain_cpp_without_warnings(tmp_path):
    src = tmp_path / "use.cpp"
    src.write_text('#include "cost_model.hpp"\n'
                   "long long f(const double* a, double* o) {\n"
                   "    pyengine::Stages stages = pyengine::no_stages();\n"
                   "    return pyengine::evaluate_plan(a, a, a, a, o, stages, 0);\n}\n")
    _run([GXX, "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Wshadow", "-Werror",
          "-I", str(CSRC), str(src)])


@needs_gxx
def test_header_needs_no_standard_headers_under_nvrtc(tmp_path):
    """Under __CUDACC_RTC__ the header must compile with only NVRTC's math builtins."""
    prelude = tmp_path / "nvrtc_builtins.h"
    unary = ("floor", "ceil", "log2", "sqrt", "log", "exp", "lgamma", "expm1", "log1p")
    prelude.write_text("".join(f'extern "C" double {f}(double);\n' for f in unary)
                       + 'extern "C" double fmod(double, double);\n'
                       + 'extern "C" double pow(double, double);\n')
    # NVRTC's CUDA math builtins the header uses
    src = tmp_path / "use.cpp"
    src.write_text('#include "cost_model.hpp"\n')
    _run([GXX, "-std=c++17", "-fsyntax-only", "-nostdinc", "-nostdinc++", "-D__CUDACC_RTC__",
          "-include", str(prelude), "-I", str(CSRC), str(src)])


# ------------------------------------------------------------------ host emulation

# Just enough CUDA to run kernels.cu serially on the host: one "thread" at a time, so the
# count kernel's block reduction is exact only with one thread per block (blocks > 1
# still exercise its shared-memory totals and atomics per block).
HOST_SHIM = r"""
#pragma once
#include <cstring>
#define __global__
#define __device__
#define __shared__ static
struct pyengine_dim3 { unsigned int x; };
static pyengine_dim3 threadIdx, blockIdx, blockDim, gridDim;
inline long long __double_as_longlong(double d) { long long r; std::memcpy(&r, &d, 8); return r; }
inline int __ffsll(long long v) { return __builtin_ffsll(v); }
template <typename T> inline T atomicAdd(T* p, T v) { T old = *p; *p += v; return old; }
inline unsigned long long __shfl_down_sync(unsigned, unsigned long long, int) { return 0ULL; }
inline void __syncthreads() {}
"""

HOST_DRIVER = r"""
#include "host_shim.h"
#include "kernels.cu"
#define PYENGINE_GRID(blocks, threads, call)                                   \
    gridDim.x = blocks; blockDim.x = threads;                                  \
    for (unsigned bi = 0; bi < blocks; ++bi)                                   \
        for (unsigned ti = 0; ti < threads; ++ti) { blockIdx.x = bi; threadIdx.x = ti; call; }
extern "C" void keys(unsigned g, unsigned t, const double* plans, long long n,
                     unsigned long long* keys, int* invalid) {
    PYENGINE_GRID(g, t, row_keys_kernel(plans, n, keys, invalid))
}
extern "C" void rows(unsigned g, unsigned t, const double* m, const double* h, const double* k,
                     const double* plans, const long long* order, long long run, double* out,
                     long long* codes, long long n) {
    PYENGINE_GRID(g, t, evaluate_rows_kernel(m, h, k, plans, order, run, out, codes, n))
}
extern "C" void space(unsigned g, unsigned t, const double* m, const double* h, const double* k,
                      const double* v, const long long* o, const long long* l, long long start,
                      long long stop, double* out, long long* codes) {
    PYENGINE_GRID(g, t, evaluate_space_kernel(m, h, k, v, o, l, start, stop, out, codes))
}
extern "C" void count(unsigned g, const double* m, const double* h, const double* k,
                      const double* v, const long long* o, const long long* l, long long start,
                      long long stop, long long run, int n_bits, unsigned long long* feasible,
                      unsigned long long* by_bit) {
    PYENGINE_GRID(g, 1u, count_space_kernel(m, h, k, v, o, l, start, stop, run, n_bits,
                                            feasible, by_bit))
}
"""


@needs_gxx
def test_kernels_emulated_on_the_host_match_the_reference(tmp_path):
    """kernels.cu's indexing, decoding, odometer runs and reductions, run on the CPU."""
    import ctypes

    import numpy as np

    from pyengine import reference as R
    from pyengine import schema as S
    from pyengine.space import Space
    from pyengine.specs import Hardware, Limits, Model, Plan

    (tmp_path / "host_shim.h").write_text(HOST_SHIM)
    (tmp_path / "driver.cpp").write_text(HOST_DRIVER)
    lib = tmp_path / "libkernels.so"
    _run([GXX, "-std=c++17", "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-I", str(CSRC),
          "-I", str(tmp_path), "-o", str(lib), str(tmp_path / "driver.cpp")])
    so = ctypes.CDLL(str(lib))
    ptr = np.ctypeslib.as_ctypes

    model = Model(name="mix", n_layers=30, hidden=2048, n_heads=16, n_kv_heads=4,
                  ffn_hidden=8192, vocab=32000, gated_mlp=True, n_experts=8, top_k=2,
                  expert_ffn_hidden=4096, first_k_dense=1)
    hw = Hardware(name="g", peak_bf16_flops_per_s=1e15, peak_fp8_flops_per_s=2e15,
                  hbm_capacity_bytes=8e10, hbm_bandwidth_bytes_per_s=3e12, gpus_per_node=8,
                  intra_node_bandwidth_bytes_per_s=4e11, inter_node_bandwidth_bytes_per_s=5e10)
    space = Space(base=Plan(global_batch=256, gen_tokens=64), mode=["train", "decode"],
                  dtype=["bf16", "fp8"], tp=[1, 2, 3, 4], cp=[1, 2], ep=[1, 2, 8],
                  capacity_factor=[0.0, 1.0], global_batch=[64, 256], pp=[1, 2, 5],
                  dp=[1, 2, 4], zero=[0, 3], recompute=["none", "full"],
                  limits=Limits(gpus_max=64))
    m, h, k = R.model_vector(model), R.hardware_vector(hw), R.limits_vector(space.limits)
    P = space.packed
    start, stop = 1234, 1234 + 3001
    n = stop - start
    plans = np.ascontiguousarray(space.decode(np.arange(start, stop)))
    want = np.empty((S.N_OUTPUTS, n))
    want_codes = np.empty(n, dtype=np.int64)
    stages = R.no_stages()
    for i in range(n):
        want_codes[i], stages = R.evaluate_plan(m, h, k, plans[i], want[:, i], stages, 0)

    # rows: keyed and checked on the "device", sorted (as cupy.argsort would), evaluated
    # in runs of the sorted order; shuffled, so that the grouping has work to do
    shuffled = np.ascontiguousarray(plans[np.random.default_rng(1).permutation(n)])
    back = np.argsort(np.random.default_rng(1).permutation(n))
    keys = np.zeros(n, dtype=np.uint64)
    invalid = np.full(n, -2, dtype=np.int32)
    so.keys(3, 7, ptr(shuffled), ctypes.c_longlong(n), ptr(keys), ptr(invalid))
    assert (invalid == -1).all()
    order = np.argsort(keys, kind="stable").astype(np.int64)
    bad = shuffled.copy()
    bad[[5, 17], [S.P_TP, S.P_CAPACITY_FACTOR]] = [0.5, np.nan]
    so.keys(2, 3, ptr(bad), ctypes.c_longlong(n), ptr(keys), ptr(invalid))
    assert np.flatnonzero(invalid >= 0).tolist() == [5, 17]
    assert invalid[5] == S.P_TP and invalid[17] == S.P_CAPACITY_FACTOR
    for grid, block, run in ((1, 1, 1), (3, 5, 8), (7, 64, 3)):
        out = np.full((S.N_OUTPUTS, n), np.nan)
        codes = np.full(n, -1, dtype=np.int64)
        so.rows(grid, block, ptr(m), ptr(h), ptr(k), ptr(shuffled), ptr(order),
                ctypes.c_longlong(run), ptr(out), ptr(codes), ctypes.c_longlong(n))
        np.testing.assert_array_equal(codes[back], want_codes)
        np.testing.assert_allclose(out[:, back], want, rtol=1e-9, atol=1e-300)
    for grid, block in ((1, 1), (3, 5), (7, 64)):
        out = np.full((S.N_OUTPUTS, n), np.nan)
        codes = np.full(n, -1, dtype=np.int64)
        so.space(grid, block, ptr(m), ptr(h), ptr(k), ptr(P.values), ptr(P.offsets),
                 ptr(P.lengths), ctypes.c_longlong(start), ctypes.c_longlong(stop), ptr(out),
                 ptr(codes))
        np.testing.assert_array_equal(codes, want_codes)
        np.testing.assert_allclose(out, want, rtol=1e-9, atol=1e-300)

    n_bits = len(S.VIOLATIONS)
    want_by_bit = [int(((want_codes >> b) & 1).sum()) for b in range(n_bits)]
    for grid, run in ((1, 1), (5, 16), (9, 7), (2000, 16)):
        feasible = np.zeros(1, dtype=np.uint64)
        by_bit = np.zeros(n_bits, dtype=np.uint64)
        so.count(grid, ptr(m), ptr(h), ptr(k), ptr(P.values), ptr(P.offsets), ptr(P.lengths),
                 ctypes.c_longlong(start), ctypes.c_longlong(stop), ctypes.c_longlong(run),
                 ctypes.c_int(n_bits), ptr(feasible), ptr(by_bit))
        assert int(feasible[0]) == int((want_codes == 0).sum())
        assert by_bit.tolist() == want_by_bit
