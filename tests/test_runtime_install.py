"""requirements.txt installs on the Astro Runtime's own packages without moving Airflow.

The runtime's ONBUILD step runs ``pip install -r requirements.txt`` in an environment that already
holds Airflow 2.10.5 and Astronomer's providers (tests/containers/astro-runtime/runtime-packages.txt,
at the versions of runtime-constraints.txt beside it, which the stand-in runtime image also installs).
pip keeps an installed package only while it satisfies every requirement; when a provider pinned
here needs a newer dependency than the runtime ships, pip takes that dependency at its newest, and
if the newest needs a newer Airflow, pip upgrades Airflow too. This test replays that install as a
dry run and fails when apache-airflow would change, naming what pulls it.

It needs the package index (marked ``network``): when the index cannot be reached it fails with
pip's or uv's own error, it never skips.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import PROJECT

RUNTIME = PROJECT / "tests" / "containers" / "astro-runtime"
RUNTIME_PACKAGES, RUNTIME_CONSTRAINTS = RUNTIME / "runtime-packages.txt", RUNTIME / "runtime-constraints.txt"

# uv (installed by `make venv`) builds the runtime's environment; it is not in the image.
pytestmark = [pytest.mark.network, pytest.mark.devtools, pytest.mark.timeout(900)]


def uv() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert found, "uv is missing: `make venv` installs it into .venv"
    return found


def run(*argv: str | Path) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=840, check=False)
    assert result.returncode == 0, f"`{' '.join(map(str, argv))}` failed:\n{result.stderr[-4000:]}"
    return result


def runtime_environment(folder: Path) -> tuple[Path, dict[str, str]]:
    """A virtual environment holding the runtime's package set; its python and what it holds."""
    run(uv(), "venv", "--quiet", "--seed", "--python", sys.executable, folder)
    python = folder / "bin" / "python"
    run(uv(), "pip", "install", "--quiet", "--python", python, "-r", RUNTIME_PACKAGES, "-c", RUNTIME_CONSTRAINTS)
    listed = json.loads(run(uv(), "pip", "list", "--python", python, "--format", "json").stdout)
    return python, {canonicalize_name(p["name"]): p["version"] for p in listed}


def dry_run(python: Path, requirements: Path, report: Path) -> dict[str, dict]:
    """What ``pip install -r requirements`` would install there: name -> the report's metadata."""
    run(python, "-m", "pip", "install", "--dry-run", "--quiet", "--disable-pip-version-check",
        "--report", report, "-r", requirements)  # fmt: skip
    installs = json.loads(report.read_text())["install"]
    return {canonicalize_name(i["metadata"]["name"]): {**i["metadata"], "requested": i["requested"]} for i in installs}


def requirements_of(metadata: dict) -> list[Requirement]:
    """A distribution's unconditional requirements (no extras) on this Python."""
    found = []
    for line in metadata.get("requires_dist") or []:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            found.append(requirement)
    return found


def who_needs(name: str, installed_version: str | None, changes: dict[str, dict]) -> list[str]:
    """The packages pip would install whose requirements rule out ``installed_version`` of ``name``."""
    reasons = []
    for metadata in changes.values():
        for requirement in requirements_of(metadata):
            if canonicalize_name(requirement.name) != name:
                continue
            if installed_version is None or not requirement.specifier.contains(installed_version, prereleases=True):
                reasons.append(f"{metadata['name']} {metadata['version']} requires {requirement}")
    return reasons


# The new Airflow's own distributions: what they require is a consequence of the upgrade, not its cause.
AIRFLOW_ITSELF = {"apache-airflow", "apache-airflow-core", "apache-airflow-task-sdk"}


def explain_airflow_change(changes: dict[str, dict], installed: dict[str, str]) -> str:
    """Why pip would replace the runtime's Airflow: the packages that pull it, and what pulls those."""
    airflow = installed["apache-airflow"]
    causes = {name: metadata for name, metadata in changes.items() if name not in AIRFLOW_ITSELF}
    pulled = {}  # package that needs a newer Airflow -> what makes pip install it
    for reason in who_needs("apache-airflow", airflow, causes):
        puller = canonicalize_name(reason.split()[0])
        pulled[puller] = (reason, who_needs(puller, installed.get(puller), causes))
    # Those that nothing but the new Airflow wants (its own providers) are consequences, not causes.
    consequences = {p for p, (_, by) in pulled.items() if not by and not causes[p].get("requested")}
    lines = [f"apache-airflow would change from {airflow} to {changes['apache-airflow']['version']}:"]
    for puller, (reason, pulled_by) in pulled.items():
        if puller in consequences:
            continue
        requested = causes[puller].get("requested")
        lines.append(f"  {reason}" + (" (requirements.txt names it)" if requested else ""))
        for cause in pulled_by:
            if canonicalize_name(cause.split()[0]) not in consequences:
                lines.append(f"    pulled in because {cause} (the runtime has {installed.get(puller, 'none')})")
    return "\n".join(lines)


def test_requirements_keep_the_runtimes_airflow(tmp_path):
    python, installed = runtime_environment(tmp_path / "runtime")
    assert installed.get("apache-airflow") == "2.10.5", "the runtime's package set must hold Airflow 2.10.5"
    changes = dry_run(python, PROJECT / "requirements.txt", tmp_path / "report.json")
    assert changes, "pip would install nothing: the dry run did not see requirements.txt"
    if "apache-airflow" in changes:
        pytest.fail(explain_airflow_change(changes, installed), pytrace=False)


def test_the_explanation_names_the_package_that_pulls_airflow():
    """The message for the case this test exists for: a provider's newest dependency needs Airflow 2.11."""
    changes = {
        "apache-airflow": {"name": "apache-airflow", "version": "3.1.8", "requires_dist": []},
        "apache-airflow-providers-common-compat": {
            "name": "apache-airflow-providers-common-compat",
            "version": "1.23.0",
            "requires_dist": ["apache-airflow>=2.11.0", "openlineage-python; extra == 'openlineage'"],
        },
        "apache-airflow-providers-slack": {
            "name": "apache-airflow-providers-slack",
            "version": "9.5.0",
            "requires_dist": ["apache-airflow>=2.10.0", "apache-airflow-providers-common-compat>=1.9.0"],
        },
    }
    installed = {"apache-airflow": "2.10.5", "apache-airflow-providers-common-compat": "1.6.0"}
    assert explain_airflow_change(changes, installed).splitlines() == [
        "apache-airflow would change from 2.10.5 to 3.1.8:",
        "  apache-airflow-providers-common-compat 1.23.0 requires apache-airflow>=2.11.0",
        "    pulled in because apache-airflow-providers-slack 9.5.0 requires"
        " apache-airflow-providers-common-compat>=1.9.0 (the runtime has 1.6.0)",
    ]
