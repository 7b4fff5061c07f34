"""The code stays as ruff (configured in pyproject.toml) wants it."""

import subprocess
import sys

import pytest

from tests.conftest import PROJECT

pytestmark = pytest.mark.devtools


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=PROJECT, capture_output=True, text=True)


def test_ruff_finds_no_lint():
    result = ruff("check", ".")
    assert result.returncode == 0, result.stdout


def test_ruff_format_changes_nothing():
    result = ruff("format", "--check", ".")
    assert result.returncode == 0, result.stdout
