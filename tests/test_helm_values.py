"""The Helm values and pod template in deploy/kubernetes/ against the chart's own schema.

The official chart (1.16.0) validates values with tests/helm/values.schema.json at `helm install`;
no cluster is needed to find out that a value is misspelt, misplaced or of the wrong type. The pod
template is checked against the Kubernetes definitions in the same schema and against values.yaml
(same image, user, secrets and service account). Nothing here installs anything.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

jsonschema = pytest.importorskip("jsonschema")

PROJECT = Path(__file__).resolve().parents[1]
DEPLOY = PROJECT / "deploy" / "kubernetes"
SCHEMA_FILE = Path(__file__).resolve().parent / "helm" / "values.schema.json"
RELEASE = "shopstream"

if not DEPLOY.is_dir():  # the deployment image holds tests/ but not deploy/ (astro dev pytest)
    pytest.skip("deploy/kubernetes/ is not here (not in the image)", allow_module_level=True)


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text())


def load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def merged(*names: str) -> dict:
    """Values files merged the way Helm merges several -f files: maps deeply, anything else replaced."""

    def merge(base: dict, top: dict) -> dict:
        out = copy.deepcopy(base)
        for key, value in top.items():
            out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        return out

    result: dict = {}
    for name in names:
        result = merge(result, load(name))
    return result


def pod_template_text() -> str:
    return (DEPLOY / "pod-template.yaml").read_text()


def rendered_pod_template() -> dict:
    """The pod template as the chart's `tpl` renders it for release RELEASE (it uses only the release name)."""
    text = pod_template_text().replace("{{ .Release.Name }}", RELEASE)
    assert "{{" not in text, "the pod template uses template expressions this test does not render"
    return yaml.safe_load(text)


def errors(schema: dict, values: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(values)]


def definition(schema: dict, name: str) -> dict:
    """A schema for one of the chart schema's Kubernetes definitions, resolving its $refs."""
    return {"$ref": f"#/definitions/{name}", "definitions": schema["definitions"]}


def test_kubernetes_values_with_the_pod_template_pass_the_chart_schema(schema):
    values = {**load("values.yaml"), "podTemplate": pod_template_text()}
    assert values["executor"] == "KubernetesExecutor"
    assert errors(schema, values) == []


def test_celery_values_pass_the_chart_schema(schema):
    values = merged("values.yaml", "values-celery.yaml")
    assert values["executor"] == "CeleryExecutor"
    assert values["redis"]["enabled"] is True
    assert values["workers"]["replicas"] >= 2
    assert errors(schema, values) == []


def test_the_schema_rejects_a_misspelt_or_mistyped_value(schema):
    """Proof that the check can fail: the mistakes a values file typically has."""
    values = load("values.yaml")
    misspelt = copy.deepcopy(values)
    misspelt["workers"]["resource"] = misspelt["workers"].pop("resources")
    assert any("resource" in e for e in errors(schema, misspelt))
    wrong_executor = {**values, "executor": "CeleryExecuter"}
    assert any(e.startswith("executor") for e in errors(schema, wrong_executor))
    wrong_type = {**values, "uid": "50000"}
    assert any(e.startswith("uid") for e in errors(schema, wrong_type))


def test_values_pin_airflow_2_10_5_and_the_runtime_user():
    values = load("values.yaml")
    assert values["airflowVersion"] == "2.10.5"
    assert (values["uid"], values["gid"], values["airflowHome"]) == (50000, 0, "/usr/local/airflow")
    assert values["dags"]["gitSync"]["enabled"] is False and values["dags"]["persistence"]["enabled"] is False


def test_the_pod_template_is_a_valid_pod_spec_for_kubernetes_executor(schema):
    pod = rendered_pod_template()
    assert (pod["apiVersion"], pod["kind"]) == ("v1", "Pod")
    containers = pod["spec"]["containers"]
    # KubernetesExecutor puts the task's command into the container named `base`.
    assert containers[0]["name"] == "base"
    parts = [("io.k8s.api.core.v1.Container", container) for container in containers] + [
        ("io.k8s.api.core.v1.PodSecurityContext", pod["spec"]["securityContext"]),
        ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", pod["metadata"]),
    ]
    for name, part in parts:
        assert [e.message for e in jsonschema.Draft7Validator(definition(schema, name)).iter_errors(part)] == []
    # The same check rejects a container with a mistyped field.
    broken = {**containers[0], "imagePullPolicy": ["IfNotPresent"]}
    assert not jsonschema.Draft7Validator(definition(schema, "io.k8s.api.core.v1.Container")).is_valid(broken)


def test_the_pod_template_agrees_with_the_values():
    values, pod = load("values.yaml"), rendered_pod_template()
    base = pod["spec"]["containers"][0]
    image = values["images"]["pod_template"]
    assert base["image"] == f"{image['repository']}:{image['tag']}"
    assert base["imagePullPolicy"] == image["pullPolicy"]
    assert pod["spec"]["securityContext"]["runAsUser"] == values["uid"]
    assert pod["spec"]["securityContext"]["runAsGroup"] == values["gid"]
    assert pod["spec"]["serviceAccountName"] == values["workers"]["serviceAccount"]["name"]
    assert base["resources"] == values["workers"]["resources"]

    env = {e["name"]: e for e in base["env"]}
    secret = {name: e["valueFrom"]["secretKeyRef"] for name, e in env.items() if "valueFrom" in e}
    assert secret["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == {
        "name": values["data"]["metadataSecretName"],
        "key": "connection",
    }
    assert secret["AIRFLOW__CORE__FERNET_KEY"] == {"name": values["fernetKeySecretName"], "key": "fernet-key"}
    # Every connection the scheduler gets, the task pod gets too.
    for entry in values["secret"]:
        assert secret[entry["envName"]] == {"name": entry["secretName"], "key": entry["secretKey"]}

    # The chart's airflow.cfg ConfigMap is <release>-config, mounted where the image's Airflow reads it.
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    mounts = {m["name"]: m for m in base["volumeMounts"]}
    assert volumes["config"]["configMap"]["name"] == f"{RELEASE}-config"
    assert mounts["config"]["mountPath"] == f"{values['airflowHome']}/airflow.cfg"
    assert mounts["logs"]["mountPath"] == f"{values['airflowHome']}/logs"


def test_every_connection_in_airflow_settings_reaches_the_deployment():
    """airflow_settings.yaml is local only; the deployment must name each of its connections."""
    settings = yaml.safe_load((PROJECT / "airflow_settings.yaml").read_text())
    conn_ids = {c["conn_id"] for c in settings["airflow"]["connections"]}
    env_names = {e["envName"] for e in load("values.yaml")["secret"]}
    assert {f"AIRFLOW_CONN_{c.upper()}" for c in conn_ids} <= env_names


def test_the_schema_copy_is_chart_1_16_0s(schema):
    readme = (SCHEMA_FILE.parent / "README.md").read_text()
    assert re.search(r"chart\s+\*\*1\.16\.0\*\*", readme)
    assert schema["properties"]["defaultAirflowTag"]["default"] == "2.10.5"
