"""Imports point one way: the deployed folders never import the tooling (docs/layout.md)."""

from __future__ import annotations

import ast

from tests.conftest import PROJECT

DEPLOYED = ("dags", "include", "plugins")
TOOLING = ("localdev", "bench", "tests")


def imported_modules(source: str) -> set[str]:
    """Every module a Python source imports, at any depth of the file (function-level imports too)."""
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def tooling_imports(source: str) -> list[str]:
    return sorted(m for m in imported_modules(source) if m.split(".")[0] in TOOLING)


def test_the_deployed_folders_import_no_tooling():
    files = [path for folder in DEPLOYED for path in sorted((PROJECT / folder).rglob("*.py"))]
    assert len(files) >= 15
    found = {str(path.relative_to(PROJECT)): wrong for path in files if (wrong := tooling_imports(path.read_text()))}
    assert found == {}


def test_the_check_sees_imports_inside_functions_and_from_submodules():
    source = "import os\n\ndef f():\n    from localdev.generator import ShopStreamData\n    import bench.etl\n"
    assert tooling_imports(source) == ["bench.etl", "localdev.generator"]
    assert tooling_imports("from include.shopstream import outputs\nimport localdevices\n") == []


# Where Airflow 2 and Airflow 3 keep a name differently: only compat.py imports from these
# homes (and asks which Airflow it runs on); everything else imports the name from compat.
MOVED_MODULES = (
    "airflow.sdk",
    "airflow.decorators",
    "airflow.datasets",
    "airflow.exceptions",
    "airflow.hooks.base",
    "airflow.models.baseoperator",
    "airflow.models.baseoperatorlink",
    "airflow.models.mappedoperator",
    "airflow.models.xcom",
    "airflow.models.xcom_arg",
    "airflow.operators.python",
    "airflow.timetables",
    "airflow.utils.trigger_rule",
    "airflow.utils.types",
)
MOVED_NAMES = {"airflow": {"Dataset", "DAG", "__version__"}, "airflow.models": {"Variable", "BaseOperator", "XCom"}}
VERSION_NAMES = {"AIRFLOW_3", "AIRFLOW_VERSION"}
COMPAT = "include/shopstream/platform/compat.py"
SQL_STEPS = "include/shopstream/platform/sql_steps/"
# The back-ends that choose by the Airflow version: the SQL steps and the run-state questions.
BACK_ENDS = (SQL_STEPS, "include/shopstream/platform/run_states.py")


def version_dependent(source: str) -> list[str]:
    """What a module imports from a home that moved between Airflow 2 and 3, or how it asks the version."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            module = node.module
            if any(module == m or module.startswith(m + ".") for m in MOVED_MODULES):
                found.add(module)
            for alias in node.names:
                if alias.name in MOVED_NAMES.get(module, ()):
                    found.add(f"{module}.{alias.name}")
                if module.endswith("compat") and alias.name in VERSION_NAMES:
                    found.add(f"{module}.{alias.name}")
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if any(a.name.startswith(m) for m in MOVED_MODULES))
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in ({"__version__"} | VERSION_NAMES)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("airflow", "compat")
        ):
            found.add(f"{node.value.id}.{node.attr}")
    return sorted(found)


def test_only_compat_knows_where_airflow_keeps_things_and_which_airflow_runs():
    files = [path for folder in DEPLOYED for path in sorted((PROJECT / folder).rglob("*.py"))]
    found = {
        relative: wrong
        for path in files
        if (relative := str(path.relative_to(PROJECT))) != COMPAT
        and (wrong := version_dependent(path.read_text()))
        # The back-end choice (the Astro SDK runs on Airflow 2 only; the Task SDK's run-state calls
        # on Airflow 3 only) is the back-ends' own.
        and not (relative.startswith(BACK_ENDS) and set(wrong) <= {"include.shopstream.platform.compat.AIRFLOW_3"})
    }
    assert found == {}
    assert version_dependent((PROJECT / COMPAT).read_text()), "compat.py is where the homes are named"


def test_the_version_check_sees_every_way_of_asking():
    source = (
        "from airflow.decorators import task\nimport airflow.datasets\nfrom airflow.models import Variable, DagRun\n"
        "from airflow import __version__\nfrom include.shopstream.platform.compat import AIRFLOW_3, task\n"
        "def f():\n    import airflow\n    return airflow.__version__\n"
    )
    assert version_dependent(source) == [
        "airflow.__version__",
        "airflow.datasets",
        "airflow.decorators",
        "airflow.models.Variable",
        "include.shopstream.platform.compat.AIRFLOW_3",
    ]
    assert (
        version_dependent(
            "from include.shopstream.platform.compat import Dataset, task\nfrom airflow.models import DagRun\n"
        )
        == []
    )


def test_only_the_sdk_back_end_imports_the_astro_sdk():
    files = [path for folder in DEPLOYED for path in sorted((PROJECT / folder).rglob("*.py"))]
    importers = sorted(
        str(path.relative_to(PROJECT))
        for path in files
        if any(m == "astro" or m.startswith("astro.") for m in imported_modules(path.read_text()))
    )
    assert importers == [SQL_STEPS + "astro_sdk.py"]


# names.py spells the connection ids, the pools and the lake's bucket; the other deployed modules
# import them. Docstrings may show an example URI: they are read, not run.
NAMES = "include/shopstream/platform/names.py"


def spelled_names(source: str, names: set[str], bucket: str) -> list[str]:
    """The code literals of ``source`` (docstrings aside) that are one of ``names`` or hold an
    ``s3://`` URI of ``bucket``, f-strings included (``f"s3://{BUCKET}/..."`` reads as the URI)."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    in_fstrings = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}

    def text(node) -> str | None:
        if isinstance(node, ast.JoinedStr):
            return "".join(
                part.value
                if isinstance(part, ast.Constant)
                else bucket
                if isinstance(part.value, ast.Name) and part.value.id == "BUCKET"
                else "{}"
                for part in node.values
            )
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings | in_fstrings:
            return node.value
        return None

    found = []
    for node in ast.walk(tree):
        value = text(node)
        if value is not None and (value in names or f"s3://{bucket}/" in value or value == f"s3://{bucket}"):
            found.append((node.lineno, node.col_offset, value))
    return [f"line {line}: {value!r}" for line, _, value in sorted(found)]


def test_only_names_spells_the_connections_pools_and_bucket():
    from include.shopstream.platform import names

    spelled = {value for key, value in vars(names).items() if key.endswith(("_CONN_ID", "_POOL"))}
    assert {"shopstream_warehouse", "aws_default", "slack_alerts", "shopstream_source_db"} <= spelled
    files = [path for folder in DEPLOYED for path in sorted((PROJECT / folder).rglob("*.py"))]
    found = {
        relative: wrong
        for path in files
        if (relative := str(path.relative_to(PROJECT))) != NAMES
        and (wrong := spelled_names(path.read_text(), spelled, names.BUCKET))
    }
    assert found == {}


def test_the_names_check_sees_literals_and_f_strings_but_not_docstrings():
    source = (
        '"""Publishes s3://shopstream/gold/orders."""\n'
        'ORDERS = "s3://shopstream/gold/orders"\n'
        "def f(key):\n"
        '    """Writes to ``s3://shopstream/<key>``."""\n'
        '    hook = S3Hook(aws_conn_id="aws_default")\n'
        '    return f"s3://{BUCKET}/{key}", f"in s3://shopstream/{key}", f"s3://other/{key}", "s3://"\n'
    )
    assert spelled_names(source, {"aws_default"}, "shopstream") == [
        "line 2: 's3://shopstream/gold/orders'",
        "line 5: 'aws_default'",
        "line 6: 's3://shopstream/{}'",
        "line 6: 'in s3://shopstream/{}'",
    ]


# The rooms of include/shopstream/: each imports only the rooms before it, so a pipeline may
# use the platform and ops, ops may use the platform, and the platform stands alone.
ROOMS = ("platform", "ops", "pipelines")


def room_imports(path) -> set[str]:
    """The rooms of include/shopstream/ that one module imports from (other than its own)."""
    rooms = set()
    for module in imported_modules(path.read_text()):
        parts = module.split(".")
        if parts[:2] == ["include", "shopstream"] and len(parts) > 2 and parts[2] in ROOMS:
            rooms.add(parts[2])
    for node in ast.walk(ast.parse(path.read_text())):  # from include.shopstream import <room>
        if isinstance(node, ast.ImportFrom) and node.module == "include.shopstream":
            rooms.update(alias.name for alias in node.names if alias.name in ROOMS)
    return rooms


def test_the_rooms_import_one_way():
    package = PROJECT / "include" / "shopstream"
    wrong = {}
    for room in ROOMS:
        allowed = set(ROOMS[: ROOMS.index(room) + 1])
        files = sorted((package / room).rglob("*.py"))
        assert files, f"include/shopstream/{room}/ holds modules"
        for path in files:
            if extra := room_imports(path) - allowed:
                wrong[str(path.relative_to(PROJECT))] = sorted(extra)
    assert wrong == {}
    loose = sorted(p.name for p in package.glob("*.py") if p.name != "__init__.py")
    assert loose == [], "every module lives in a room"


def test_the_room_check_sees_a_backward_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from include.shopstream.pipelines import orders\n")
    assert room_imports(module) == {"pipelines"}
    module.write_text("from include.shopstream.platform.names import BUCKET\n")
    assert room_imports(module) == {"platform"}


# The unit tests mirror the rooms: include/shopstream/<room>/<module>.py is tested in
# tests/unit/<room>/test_<module>.py (a package's __init__.py by the package's own test files).
def missing_unit_tests(package, unit_tests) -> list[str]:
    """The modules under ``package`` without a mirror test file under ``unit_tests``."""
    missing = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if path.name == "__init__.py":
            tested = any((unit_tests / relative.parent).glob("test_*.py"))
        else:
            tested = (unit_tests / relative.parent / f"test_{path.name}").is_file()
        if not tested and relative.parent != relative.parent.parent:  # the rooms' own modules
            missing.append(str(relative))
    return missing


def test_every_module_has_its_unit_tests():
    assert missing_unit_tests(PROJECT / "include" / "shopstream", PROJECT / "tests" / "unit") == []


def test_the_mirror_check_names_an_untested_module(tmp_path):
    package, unit_tests = tmp_path / "shopstream", tmp_path / "unit"
    for module in ("__init__.py", "ops/__init__.py", "ops/links.py", "ops/outbox.py", "platform/steps/__init__.py"):
        (package / module).parent.mkdir(parents=True, exist_ok=True)
        (package / module).write_text("")
    (unit_tests / "ops").mkdir(parents=True)
    (unit_tests / "ops" / "test_links.py").write_text("")
    assert missing_unit_tests(package, unit_tests) == ["ops/outbox.py", "platform/steps/__init__.py"]
