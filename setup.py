"""Build step that pyproject.toml cannot declare: ship the top-level ``datasets.yaml`` inside the package.

The dataset registry lives at the repository root (``datasets.yaml``, where the README points users
to edit it), outside the ``m6rec_bench`` package. A source checkout and an editable install read it
in place; a wheel gets a copy at ``m6rec_bench/datasets/datasets.yaml``, written here from the root
file at build time (a symlink would not survive an sdist, and ``package-data`` cannot reach outside
the package). The sdist carries the root file through MANIFEST.in. Everything else is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT_YAML = Path(__file__).resolve().parent / "datasets.yaml"
IN_PACKAGE = Path("m6rec_bench", "datasets", "datasets.yaml")


class BuildPy(build_py):
    """``build_py`` that also copies the root ``datasets.yaml`` into the built package."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / IN_PACKAGE
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT_YAML, target)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), str(Path(self.build_lib) / IN_PACKAGE)]


setup(cmdclass={"build_py": BuildPy})
