"""Builds the kiln Python package: the kiln._kiln module through the project's CMake (from the repository root, one
level up), then the pure-Python files of python/kiln. Install with `pip install ./python --no-build-isolation`.

Environment: CMAKE_ARGS (extra configure arguments, e.g. -DKILN_CUDA=OFF), KILN_BUILD_JOBS (parallel jobs)."""
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def version() -> str:
    m = re.search(r"project\(kiln VERSION ([0-9.]+)", (ROOT / "CMakeLists.txt").read_text())
    if not m:
        raise RuntimeError(f"{ROOT / 'CMakeLists.txt'}: no project version")
    return m.group(1)


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        build_dir = Path(self.build_temp).resolve() / "cmake"
        args = ["-S", str(ROOT), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
                f"-DPython_EXECUTABLE={sys.executable}", "-DKILN_PYTHON=ON", "-DKILN_PYTHON_TESTS=OFF"]
        if shutil.which("ninja") and not (build_dir / "CMakeCache.txt").exists():
            args += ["-G", "Ninja"]
        args += shlex.split(os.environ.get("CMAKE_ARGS", ""))
        subprocess.check_call(["cmake", *args])
        jobs = os.environ.get("KILN_BUILD_JOBS") or str(os.cpu_count() or 1)
        subprocess.check_call(["cmake", "--build", str(build_dir), "--target", "kiln_python", "-j", jobs])
        built = glob.glob(str(build_dir / "python" / "kiln" / "_kiln*.so"))
        if len(built) != 1:
            raise RuntimeError(f"expected one kiln/_kiln*.so under {build_dir / 'python'}, found {built}")
        dest = Path(self.get_ext_fullpath(ext.name))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built[0], dest)


setup(
    name="kiln",
    version=version(),
    description="kiln: convert, build and run LLM engines (C++/CUDA) from Python",
    python_requires=">=3.9",
    packages=["kiln"],
    package_dir={"kiln": "kiln"},
    package_data={"kiln": ["*.pyi", "py.typed"]},
    ext_modules=[Extension("kiln._kiln", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
    zip_safe=False,
)
