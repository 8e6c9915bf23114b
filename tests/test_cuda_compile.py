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
                   "long long f(const double* a, double* o, double* c) {\n"
                   "    return pyengine::evaluate_plan(a, a, a, a, o, c, false);\n}\n")
    _run([GXX, "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Wshadow", "-Werror",
          "-I", str(CSRC), str(src)])


@needs_gxx
def test_header_needs_no_standard_headers_under_nvrtc(tmp_path):
    """Under __CUDACC_RTC__ the header must compile with only NVRTC's math builtins."""
    prelude = tmp_path / "nvrtc_builtins.h"
    prelude.write_text("extern \"C\" double floor(double);\nextern \"C\" double ceil(double);\n"
                       "extern \"C\" double log2(double);\nextern \"C\" double fmod(double, "
                       "double);\n")
    src = tmp_path / "use.cpp"
    src.write_text('#include "cost_model.hpp"\n')
    _run([GXX, "-std=c++17", "-fsyntax-only", "-nostdinc", "-nostdinc++", "-D__CUDACC_RTC__",
          "-include", str(prelude), "-I", str(CSRC), str(src)])
