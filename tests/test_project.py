"""The image and the local venv agree: same pins, same platform settings, the right base."""

from __future__ import annotations

import re
import shlex

from localdev.stack import PLATFORM_AIRFLOW_CONFIG
from tests.conftest import PROJECT


def pins(path) -> dict[str, str]:
    found = {}
    for line in (PROJECT / path).read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;]+)", line)
        if match:
            found[match.group(1).lower()] = match.group(2)
    return found


def test_requirements_txt_pins_exactly_what_the_lock_resolved():
    image, lock = pins("requirements.txt"), pins("requirements.lock")
    assert image, "requirements.txt pins nothing"
    assert {name: lock.get(name) for name in image} == image


def test_the_runtime_owns_airflow_itself():
    assert "apache-airflow" not in pins("requirements.txt")
    assert pins("requirements.lock")["apache-airflow"] == "2.10.5"


def test_the_image_is_astro_runtime_12_on_python_3_11():
    base = re.search(r"^FROM\s+(\S+)", (PROJECT / "Dockerfile").read_text(), re.M).group(1)
    assert re.fullmatch(r"quay\.io/astronomer/astro-runtime:12\.\d+\.\d+-python-3\.11", base), base


def test_the_image_and_make_run_share_the_platform_settings():
    text = (PROJECT / "Dockerfile").read_text().replace("\\\n", " ")
    env = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(dict(item.split("=", 1) for item in shlex.split(line[4:])))
    assert env == PLATFORM_AIRFLOW_CONFIG
