"""Build of fastdiv's compiled kernels (everything else is in pyproject.toml).

One extension, ``fastdiv._backends.cython._kernels``. Its C kernels carry
their own AVX2 / AVX-512 variants and pick one at run time, so the build
itself targets plain x86-64 (never ``-march=native``: wheels must run on any
x86-64 CPU) and every other architecture compiles the portable path only.

OpenMP is probed by compiling and linking a tiny program; without it (or with
``FASTDIV_OPENMP=0``) the extension is built serial and still works.

Build in place for development::

    pip install -e . --no-build-isolation
    python setup.py build_ext --inplace
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

KERNEL_DIR = Path("fastdiv") / "_backends" / "cython"

# The loops need IEEE semantics (NaN, inf) but no errno and no traps, so that
# they vectorise; contraction stays explicit (fma where the code says so).
# Never -ffast-math: it makes every isnan() constant-false.
GNU_FLAGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"]
MSVC_FLAGS = ["/O2", "/fp:precise"]

OPENMP_PROBE = r"""
#include <omp.h>
#include <stdio.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+ : n)
    n += 1;
    printf("%d %d\n", n, omp_get_max_threads());
    return 0;
}
"""


def _env_flag(name, default=True):
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    return value not in ("0", "false", "no", "off")


def _compiles(compiler, source, compile_args, link_args):
    """Whether `source` compiles and links with these flags."""
    tmp = tempfile.mkdtemp(prefix="fastdiv-probe-")
    try:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as f:
            f.write(source)
        objects = compiler.compile([path], output_dir=tmp, extra_postargs=compile_args)
        compiler.link_executable(
            objects, "probe", output_dir=tmp, extra_postargs=link_args
        )
        return True
    except Exception:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildKernels(build_ext):
    """build_ext with per-compiler flags and an OpenMP probe."""

    def build_extensions(self):
        compiler = self.compiler
        msvc = compiler.compiler_type == "msvc"
        compile_args = list(MSVC_FLAGS if msvc else GNU_FLAGS)
        link_args = []

        openmp = None
        if _env_flag("FASTDIV_OPENMP"):
            candidates = (
                [(["/openmp"], [])]
                if msvc
                else [
                    (["-fopenmp"], ["-fopenmp"]),
                    (["-Xpreprocessor", "-fopenmp"], ["-lomp"]),  # Apple clang + libomp
                ]
            )
            for c_args, l_args in candidates:
                if _compiles(compiler, OPENMP_PROBE, c_args, l_args):
                    openmp = (c_args, l_args)
                    break
        if openmp is not None:
            compile_args += openmp[0]
            link_args += openmp[1]
        elif not msvc and _compiles(compiler, "int main(void){return 0;}", ["-fopenmp-simd"], []):
            compile_args.append("-fopenmp-simd")  # keeps `omp simd` loops vectorised
        print(
            f"fastdiv: OpenMP {'enabled' if openmp else 'disabled'}; "
            f"compile flags {' '.join(compile_args)}",
            file=sys.stderr,
        )

        for ext in self.extensions:
            ext.extra_compile_args = compile_args + ext.extra_compile_args
            ext.extra_link_args = link_args + ext.extra_link_args
        super().build_extensions()


extensions = [
    Extension(
        "fastdiv._backends.cython._kernels",
        sources=[str(KERNEL_DIR / "_kernels.pyx")],
        include_dirs=[str(KERNEL_DIR)],
        depends=[str(path) for path in KERNEL_DIR.glob("*.h")],
    ),
    Extension(
        "fastdiv._backends.cython._logit_kernels",
        sources=[str(KERNEL_DIR / "_logit_kernels.pyx")],
        include_dirs=[str(KERNEL_DIR)],
        depends=[str(path) for path in KERNEL_DIR.glob("*.h")],
    ),
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": "3"},
    ),
    cmdclass={"build_ext": BuildKernels},
)
