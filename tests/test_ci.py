"""`.ci/run` runs the README's test command exactly, then the slow tests as a second command, and the
pytest settings keep the slow tests out of the default run."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands(script: str) -> list[str]:
    return [line.strip() for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_ci_runs_the_readme_test_command_then_the_slow_tests():
    readme = (ROOT / "README.md").read_text()
    [command] = re.findall(r"Run the tests:\s*```bash\n(.*?)\n```", readme, flags=re.S)
    commands = _commands((ROOT / ".ci" / "run").read_text())
    assert command in commands, f".ci/run does not run the README's test command {command!r}"
    after = commands[commands.index(command) + 1:]
    assert "python -m pytest -m slow" in after, ".ci/run runs no slow tests after the README command"
    assert "python -m pytest -m slow" in readme  # the README says how the slow tests run
    assert [c for c in commands[:commands.index(command)] if "pytest" in c] == []


def test_slow_is_a_declared_marker_deselected_by_default():
    pytest_ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert any(m.startswith("slow:") for m in pytest_ini["markers"])
    assert pytest_ini["addopts"] == "-m 'not slow'"
