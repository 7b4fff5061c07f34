"""The deployment image's build context is what .dockerignore promises, and nothing more.

The context is computed with Docker's documented .dockerignore rules (Go ``filepath.Match``
patterns plus ``**``, ``!`` exceptions, the last matching line wins, a pattern that matches a
folder leaves out everything below it) over the files in the work tree, including untracked and
git-ignored ones (.venv, .local), since ``docker build`` sends those too. When a Docker engine
answers, the same context is also read back from a real ``docker build``.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from tests.conftest import PROJECT

# What the image needs: Airflow's folders, the runtime's ONBUILD inputs (Dockerfile.airflow3's
# install: requirements-airflow3.txt), and the Astro CLI's .astro/ (astro dev parse) and tests/
# (astro dev pytest).
IMAGE_TOP_LEVEL = {
    "dags",
    "include",
    "plugins",
    "tests",
    ".astro",
    "requirements.txt",
    "requirements-airflow3.txt",
    "packages.txt",
}
# Development tooling and local state that must never reach a deployment.
NEVER = {
    "localdev",
    "bench",
    "Makefile",
    "requirements.lock",
    "requirements-dev.in",
    "requirements-airflow3.lock",
    "requirements-airflow3.in",
    ".venv-airflow3",
    "Dockerfile.airflow3",
    "docker-compose.override.yml",
    "airflow_settings.yaml",
    ".env",
    ".env.example",
    ".local",
    ".venv",
    ".git",
    ".ci",
    "pyproject.toml",
    "README.md",
    "docs",
}


class Pattern:
    """One .dockerignore line, compiled as Docker's pattern matcher does."""

    def __init__(self, line: str) -> None:
        self.exclusion = line.startswith("!")
        text = line[1:].strip() if self.exclusion else line
        text = posixpath.normpath(text).lstrip("/") if text else text
        self.text = text
        self.regex = re.compile(self._translate(text))

    @staticmethod
    def _translate(pattern: str) -> str:
        out, i = "^", 0
        while i < len(pattern):
            ch = pattern[i]
            if ch == "*":
                if pattern[i + 1 : i + 2] == "*":  # "**" matches any number of folders, none included
                    i += 1
                    if pattern[i + 1 : i + 2] == "/":
                        i += 1
                    out += ".*" if i + 1 >= len(pattern) else "(.*/)?"
                else:
                    out += "[^/]*"
            elif ch == "?":
                out += "[^/]"
            elif ch == "\\" and i + 1 < len(pattern):
                i += 1
                out += re.escape(pattern[i])
            elif ch == "[":
                end = pattern.find("]", i + 1)
                if end == -1:
                    raise ValueError(f"unterminated character class in {pattern!r}")
                body = pattern[i + 1 : end]
                out += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
                i = end
            else:
                out += re.escape(ch)
            i += 1
        return out + "$"

    def matches(self, path: str) -> bool:
        """Whether the pattern matches ``path`` or one of the folders above it."""
        if self.regex.match(path):
            return True
        parts = path.split("/")
        return any(self.regex.match("/".join(parts[:n])) for n in range(1, len(parts)))


def read_dockerignore(path: Path) -> list[Pattern]:
    patterns = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        patterns.append(Pattern(line))
    return patterns


def excluded(path: str, patterns: list[Pattern]) -> bool:
    result = False
    for pattern in patterns:
        if pattern.matches(path):
            result = not pattern.exclusion
    return result


def build_context(root: Path, patterns: list[Pattern]) -> set[str]:
    """The files (relative paths) that ``docker build root`` would send for COPY and ADD."""
    # A left-out folder is not walked unless an exception might bring something below it back.
    exceptions = [p.text for p in patterns if p.exclusion]
    files = set()
    for folder, dirs, names in os.walk(root):
        rel = Path(folder).relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        dirs[:] = [
            d
            for d in dirs
            if not excluded(prefix + d, patterns)
            or any(e.startswith(prefix + d + "/") or "*" in e.split("/")[0] for e in exceptions)
        ]
        files.update(prefix + n for n in names if not excluded(prefix + n, patterns))
    return files


def test_dockerignore_matching_follows_dockers_documented_examples():
    """The examples of Docker's .dockerignore documentation, so the matcher itself can be trusted."""
    patterns = read_dockerignore_text("# comment\n*/temp*\n*/*/temp*\ntemp?\n")
    assert excluded("somedir/temporary.txt", patterns)
    assert excluded("somedir/temp", patterns)
    assert excluded("somedir/subdir/temp.txt", patterns)
    assert excluded("tempa", patterns) and excluded("tempb", patterns)
    assert not excluded("temp", patterns) and not excluded("temp.txt", patterns)
    assert not excluded("a/b/c/temp.txt", patterns)
    go = read_dockerignore_text("**/*.go\n")
    assert excluded("main.go", go) and excluded("a/b/main.go", go) and not excluded("main.goo", go)
    md = read_dockerignore_text("*.md\n!README*.md\nREADME-secret.md\n")
    assert excluded("CHANGES.md", md)
    assert not excluded("README.md", md)
    assert excluded("README-secret.md", md)
    folder = read_dockerignore_text("/logs/\n")
    assert excluded("logs/today/app.log", folder) and not excluded("app/logs", folder)


def read_dockerignore_text(text: str) -> list[Pattern]:
    return [Pattern(line.strip()) for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_the_image_gets_only_what_the_deployment_needs():
    context = build_context(PROJECT, read_dockerignore(PROJECT / ".dockerignore"))
    top_level = {path.split("/")[0] for path in context}
    assert top_level == IMAGE_TOP_LEVEL
    assert not top_level & NEVER
    assert not [p for p in context if "__pycache__" in p.split("/") or p.endswith((".pyc", ".pyo"))]
    for needed in (
        "requirements.txt",
        "requirements-airflow3.txt",
        "packages.txt",
        ".astro/test_dag_integrity_default.py",
        "tests/conftest.py",
    ):
        assert needed in context
    for folder in ("dags", "include/shopstream", "plugins"):
        tracked = subprocess.run(
            ["git", "ls-files", folder], cwd=PROJECT, capture_output=True, text=True, check=True
        ).stdout.split()
        assert tracked and set(tracked) <= context, f"{folder}: {sorted(set(tracked) - context)} left out"


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(
    not docker_answers() and os.environ.get("SHOPSTREAM_TEST_BACKEND") != "docker",
    reason="no Docker engine answers (SHOPSTREAM_TEST_BACKEND=docker makes this a failure)",
)
def test_docker_itself_sends_the_same_context(tmp_path):
    """`docker build` of the work tree, read back from the image's files: Docker's own matcher agrees."""
    expected = build_context(PROJECT, read_dockerignore(PROJECT / ".dockerignore"))
    tag = f"shopstream-context-check:{uuid.uuid4().hex[:12]}"
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM scratch\nCOPY . /context/\n")
    build = subprocess.run(
        ["docker", "build", "--quiet", "-f", str(dockerfile), "-t", tag, "."],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    container = None
    try:
        container = subprocess.run(
            ["docker", "create", tag, "none"], capture_output=True, text=True, check=True
        ).stdout.strip()
        exported = tmp_path / "context.tar"
        subprocess.run(["docker", "export", "-o", str(exported), container], check=True)
        with tarfile.open(exported) as tar:
            sent = {
                m.name.removeprefix("context/")
                for m in tar.getmembers()
                if m.isfile() and m.name.startswith("context/")
            }
    finally:
        if container:
            subprocess.run(["docker", "rm", "--force", container], capture_output=True, check=False)
        subprocess.run(["docker", "rmi", "--force", tag], capture_output=True, check=False)
    assert sent == expected
