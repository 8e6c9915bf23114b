"""Builds the pybind11 extension pyengine._native from csrc/ (OpenMP, GIL released)."""

import hashlib
import os
import platform
import sys
from glob import glob

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup
from setuptools.command.build_py import build_py

# The CUDA backend compiles these at run time (NVRTC): ship them as pyengine/_csrc/.
CUDA_SOURCES = sorted(glob("csrc/*.hpp") + glob("csrc/*.h") + glob("csrc/*.cu"))
NATIVE_SOURCES = sorted(glob("csrc/*.cpp") + glob("csrc/*.hpp") + glob("csrc/*.h"))


def source_hash(paths):
    """Digest of the native sources, compiled in as _native.SOURCE_HASH: in a checkout,
    pyengine.backends.native compares it with csrc/ and reports a stale build."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=os.path.basename):
        digest.update(os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()[:16]


class build_py_with_csrc(build_py):
    """build_py that also copies the kernel sources into the package (pyengine/_csrc)."""

    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "pyengine", "_csrc")
        self.mkpath(target)
        for src in CUDA_SOURCES:
            self.copy_file(src, os.path.join(target, os.path.basename(src)))

# Flags: -ffp-contract=off keeps results bit-comparable with the Python reference (no
# fused multiply-add); -fno-math-errno -fno-trapping-math let g++ vectorise the math.
# -march=native is opt-in only (PYENGINE_NATIVE_ARCH=1): wheels must run anywhere.
compile_args = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"]
link_args = []
if sys.platform != "win32":
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")
# x86-64-v2 (SSE4.2, every x86-64 CPU since 2009) turns floor/ceil into one instruction
# instead of a libm call; it is a portable baseline, not -march=native.
if platform.machine().lower() in ("x86_64", "amd64") and sys.platform != "win32":
    compile_args.append("-march=x86-64-v2")
if os.environ.get("PYENGINE_NATIVE_ARCH") == "1":
    compile_args.append("-march=native")

ext_modules = [
    Pybind11Extension(
        "pyengine._native",
        sorted(glob("csrc/*.cpp")),
        include_dirs=["csrc"],
        depends=CUDA_SOURCES,
        define_macros=[("PYENGINE_SOURCE_HASH", f'"{source_hash(NATIVE_SOURCES)}"')],
        cxx_std=17,
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    ),
]

setup(ext_modules=ext_modules, cmdclass={"build_ext": build_ext, "build_py": build_py_with_csrc})
