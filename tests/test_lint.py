"""The code is linted, formatted and type-checked with the pinned tools (pyproject: [tool.ruff], [tool.mypy])."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# what ruff checks and formats, and what mypy type-checks (paths from the project root)
LINTED = ["aiprod_studio", "engine", "ui", "tests", "benchmarks", "launch.py"]
TYPED = ["aiprod_studio"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "command",
    [("ruff", "check", *LINTED), ("ruff", "format", "--check", *LINTED), ("mypy", *TYPED)],
    ids=["ruff check", "ruff format", "mypy"],
)
def test_the_code_passes(command):
    result = run(*command)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
