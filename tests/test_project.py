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


def dockerfile_env(name: str) -> dict[str, str]:
    text = (PROJECT / name).read_text().replace("\\\n", " ")
    env = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(dict(item.split("=", 1) for item in shlex.split(line[4:])))
    return env


def test_the_image_and_make_run_share_the_platform_settings():
    assert dockerfile_env("Dockerfile") == PLATFORM_AIRFLOW_CONFIG


# The Airflow 3 profile's image (Dockerfile.airflow3, requirements-airflow3.txt).


def test_requirements_airflow3_txt_pins_exactly_what_its_lock_resolved():
    image, lock = pins("requirements-airflow3.txt"), pins("requirements-airflow3.lock")
    assert image, "requirements-airflow3.txt pins nothing"
    assert {name: lock.get(name) for name in image} == image
    assert "apache-airflow" not in image
    assert lock["apache-airflow"] == "3.3.2"


def test_the_airflow3_image_is_astro_runtime_3_3_on_python_3_11():
    base = re.search(r"^FROM\s+(\S+)", (PROJECT / "Dockerfile.airflow3").read_text(), re.M).group(1)
    assert re.fullmatch(r"astrocrpublic\.azurecr\.io/runtime:3\.3-\d+-python-3\.11-base", base), base


def test_the_airflow3_image_has_the_platform_settings_without_the_astro_sdk():
    expected = {k: v for k, v in PLATFORM_AIRFLOW_CONFIG.items() if not k.startswith("AIRFLOW__ASTRO_SDK__")}
    allowed = "AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES"
    expected[allowed] = " ".join(c for c in expected[allowed].split() if not c.startswith("astro."))
    expected["AIRFLOW__SCHEDULER__CREATE_CRON_DATA_INTERVALS"] = "True"  # Airflow 2's cron data intervals
    assert dockerfile_env("Dockerfile.airflow3") == expected


def test_the_airflow3_runtime_stand_in_holds_the_locked_airflow_and_providers():
    stand_in = pins("tests/containers/astro-runtime-3/runtime-packages.txt")
    lock = pins("requirements-airflow3.lock")
    assert stand_in["apache-airflow"] == "3.3.2"
    assert {name: lock.get(name) for name in stand_in} == stand_in
