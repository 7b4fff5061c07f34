"""Apply ``airflow_settings.yaml`` (the Astro CLI's format) to an Airflow metadata database.

It reads what ``astro dev start`` reads and writes what the Astro CLI (v1.45) would write
through Airflow's REST API:

- only the CLI's keys: ``conn_id``, ``conn_type``, ``conn_host``, ``conn_schema``,
  ``conn_login``, ``conn_password``, ``conn_port``, ``conn_uri``, ``conn_extra``;
  ``variable_name``, ``variable_value``; ``pool_name``, ``pool_slot``, ``pool_description``;
- scalars are read as the CLI's YAML decoding reads them (``true`` is ``"1"``, ``0.05`` is
  ``"0.05"``, a port may be ``"5432"``);
- a ``conn_extra`` map becomes compact JSON with sorted keys, a string is taken as it is;
- a ``conn_uri`` is used only when no other connection field is set, split into type, host,
  login, password, port, schema and (from its query) extra, as the CLI splits it;
- a new connection gets the fields the entry sets; an existing one is updated in exactly those
  fields and keeps the others (the API's POST, then PATCH on 409); a variable is set anew, its
  description cleared (the API's POST); a pool gets its slots and description and
  ``include_deferred`` false (``default_pool``: only slots and ``include_deferred``).

Where the CLI silently drops or skips something (an unknown key such as ``conn_description``,
an entry without its name, a connection without ``conn_type`` or ``conn_uri``, an empty
variable value, a pool of 0 slots, a value it cannot decode), this loader stops with one line
naming the entry instead: such a file would not do under ``astro dev start`` what it says.
The whole file is checked first and written in one transaction, so a bad file changes nothing.

The file names hosts as ``docker-compose.override.yml`` does (``shopstream-db``, ``moto``...).
``make run`` starts the same services on loopback ports and passes an endpoint map, which
rewrites those hosts, and URLs in extras that name them, to where the services listen.

    python -m localdev.settings check airflow_settings.yaml
    python -m localdev.settings apply airflow_settings.yaml --endpoint moto=127.0.0.1:5000
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import yaml

from localdev import LocalDevError

CONNECTION_KEYS = {
    "conn_id",
    "conn_type",
    "conn_host",
    "conn_schema",
    "conn_login",
    "conn_password",
    "conn_port",
    "conn_extra",
    "conn_uri",
}
VARIABLE_KEYS = {"variable_name", "variable_value"}
POOL_KEYS = {"pool_name", "pool_slot", "pool_description"}


class SettingsError(LocalDevError):
    """The settings file is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class Endpoint:
    """Where a compose service of the file really listens (and, optionally, who logs in)."""

    host: str
    port: int
    login: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class ConnectionSpec:
    """The fields the Astro CLI sends for one connection; ``None`` is a field it leaves out."""

    conn_id: str
    conn_type: str | None = None
    host: str | None = None
    schema: str | None = None
    login: str | None = None
    password: str | None = None
    port: int | None = None
    extra: str | None = None

    def fields(self) -> dict[str, Any]:
        """The connection fields this entry sets, as Airflow's ``Connection`` names them."""
        names = ("conn_type", "host", "schema", "login", "password", "port", "extra")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


@dataclass(frozen=True)
class PoolSpec:
    name: str
    slots: int
    description: str = ""


@dataclass(frozen=True)
class Settings:
    connections: tuple[ConnectionSpec, ...] = ()
    variables: tuple[tuple[str, str], ...] = ()
    pools: tuple[PoolSpec, ...] = ()
    source: str = "airflow_settings.yaml"
    summary: dict = field(default_factory=dict, compare=False)


def _entries(section: Any, name: str, source: str) -> list[Mapping]:
    if section is None:
        return []
    if not isinstance(section, list):
        raise SettingsError(f"{source}: airflow.{name} must be a list, got {type(section).__name__}")
    for index, entry in enumerate(section):
        if not isinstance(entry, Mapping):
            raise SettingsError(f"{source}: {name}[{index}] must be a mapping, got {entry!r}")
    return section


def _text(value: Any, where: str = "", key: str = "") -> str | None:
    """A scalar as the CLI's YAML decoding turns it into a string; ``None`` for null or empty."""
    if value is None:
        return None
    if isinstance(value, bool):
        text = "1" if value else "0"
    elif isinstance(value, float):
        text = repr(value)
        if "e" in text or "E" in text:
            text = format(Decimal(text), "f")
    elif isinstance(value, (str, int)):
        text = str(value)
    else:
        raise SettingsError(f"{where}: {key} must be a plain value, got {value!r} (the Astro CLI cannot read it)")
    return text or None


def _go_json(value: Any) -> str:
    """JSON as Go's encoding/json writes it: compact, keys sorted, <, > and & escaped."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


def _split_uri(uri: str, where: str) -> dict[str, Any]:
    """A ``conn_uri`` split into fields the way the Astro CLI splits it (Go's net/url)."""
    parts = urlsplit(uri)
    auth, _, hostport = parts.netloc.rpartition("@")
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, _, port_text = hostport.partition(":")
    if port_text and not port_text.isdigit():
        raise SettingsError(f"{where}: conn_uri has an invalid port {port_text!r}")
    fields: dict[str, Any] = {"conn_type": parts.scheme.lower(), "host": unquote(host)}
    if auth:
        login, has_password, password = auth.partition(":")
        fields["login"] = unquote(login)
        if has_password:
            fields["password"] = unquote(password)
    if port_text:
        fields["port"] = int(port_text)
    if parts.path:
        fields["schema"] = unquote(parts.path).removeprefix("/")
    if parts.query:
        # The CLI writes '{"k": "v", ...}' itself, in Go's random map order; here in sorted order.
        query = parse_qs(parts.query, keep_blank_values=True)
        pairs = (
            f"{json.dumps(k, ensure_ascii=False)}: {json.dumps(','.join(v), ensure_ascii=False)}"
            for k, v in query.items()
        )
        fields["extra"] = "{" + ", ".join(sorted(pairs)) + "}"
    return fields


def _connection(entry: Mapping, where: str) -> ConnectionSpec:
    unknown = set(entry) - CONNECTION_KEYS
    if unknown:
        raise SettingsError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    port = entry.get("conn_port")
    if port is not None and (isinstance(port, bool) or not str(port).isdigit() or not 0 < int(port) < 65536):
        raise SettingsError(f"{where}: conn_port must be a port number, got {port!r}")
    extra = entry.get("conn_extra")
    if isinstance(extra, Mapping):
        extra = _go_json(dict(extra))
    elif isinstance(extra, str) and extra.strip():
        try:
            json.loads(extra)
        except json.JSONDecodeError as err:
            raise SettingsError(f"{where}: conn_extra is neither a map nor JSON ({err.msg})") from None
    elif extra not in (None, ""):
        raise SettingsError(f"{where}: conn_extra must be a map or a JSON string, got {extra!r}")
    text = {key: _text(entry.get(key), where, key) for key in CONNECTION_KEYS - {"conn_port", "conn_extra"}}
    uri = text["conn_uri"]
    if not uri and not text["conn_type"]:
        raise SettingsError(f"{where}: needs conn_type (or a conn_uri); the Astro CLI skips it")
    fields_set = [key for key in ("conn_type", "conn_host", "conn_login", "conn_password", "conn_schema") if text[key]]
    if uri and not fields_set and port is None:
        return ConnectionSpec(conn_id=str(entry["conn_id"]), **_split_uri(uri, where))
    # With any other field set, the CLI ignores conn_uri.
    return ConnectionSpec(
        conn_id=str(entry["conn_id"]),
        conn_type=text["conn_type"],
        host=text["conn_host"],
        schema=text["conn_schema"],
        login=text["conn_login"],
        password=text["conn_password"],
        port=int(port) if port is not None else None,
        extra=extra or None,
    )


def _variable(entry: Mapping, where: str) -> tuple[str, str]:
    unknown = set(entry) - VARIABLE_KEYS
    if unknown:
        raise SettingsError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    value = _text(entry.get("variable_value"), where, "variable_value")
    if value is None:
        raise SettingsError(f"{where}: needs a variable_value (the Astro CLI skips a variable without one)")
    return str(entry["variable_name"]), value


def _pool(entry: Mapping, where: str) -> PoolSpec:
    unknown = set(entry) - POOL_KEYS
    if unknown:
        raise SettingsError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    slots = entry.get("pool_slot")
    if isinstance(slots, str) and slots.lstrip("-").isdigit():
        slots = int(slots)
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < -1 or slots == 0:
        raise SettingsError(
            f"{where}: pool_slot must be a whole number of slots (-1 for unlimited;"
            f" the Astro CLI skips 0), got {slots!r}"
        )
    return PoolSpec(
        str(entry["pool_name"]), slots, _text(entry.get("pool_description"), where, "pool_description") or ""
    )


def _named(entries: list[Mapping], section: str, key: str, source: str, build) -> list:
    seen: set[str] = set()
    built = []
    for index, entry in enumerate(entries):
        name = entry.get(key)
        where = f"{source}: {section}[{index}]"
        if name in (None, "") or not isinstance(name, (str, int)):
            raise SettingsError(f"{where} has no {key}")
        where = f"{where} ({key} {name!r})"
        if str(name) in seen:
            raise SettingsError(f"{where} is defined twice")
        seen.add(str(name))
        built.append(build(entry, where))
    return built


def parse(document: Any, source: str = "airflow_settings.yaml") -> Settings:
    """Check a loaded YAML document and turn it into :class:`Settings`."""
    if document is None:
        return Settings(source=source)
    if not isinstance(document, Mapping) or set(document) - {"airflow"}:
        raise SettingsError(f"{source}: the top level must be a single 'airflow:' mapping")
    airflow = document.get("airflow") or {}
    if not isinstance(airflow, Mapping):
        raise SettingsError(f"{source}: 'airflow:' must be a mapping")
    unknown = set(airflow) - {"connections", "variables", "pools"}
    if unknown:
        raise SettingsError(f"{source}: unknown section(s) airflow.{', airflow.'.join(sorted(unknown))}")
    return Settings(
        connections=tuple(
            _named(
                _entries(airflow.get("connections"), "connections", source),
                "connections",
                "conn_id",
                source,
                _connection,
            )
        ),
        variables=tuple(
            _named(
                _entries(airflow.get("variables"), "variables", source), "variables", "variable_name", source, _variable
            )
        ),
        pools=tuple(_named(_entries(airflow.get("pools"), "pools", source), "pools", "pool_name", source, _pool)),
        source=source,
    )


def load(path: Path) -> Settings:
    """Read and check ``path``."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise SettingsError(f"cannot read {path}: {err.strerror}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise SettingsError(f"{path}: not valid YAML{at}: {getattr(err, 'problem', err)}") from None
    return parse(document, source=str(path))


def _rewrite_url(value: str, endpoints: Mapping[str, Endpoint]) -> str:
    parts = urlsplit(value)
    if not parts.scheme or parts.hostname not in endpoints:
        return value
    target = endpoints[parts.hostname]
    auth = parts.netloc.rpartition("@")[0]
    netloc = f"{auth}@" if auth else ""
    return urlunsplit(parts._replace(netloc=f"{netloc}{target.host}:{target.port}"))


def _rewrite_extra(extra: Any, endpoints: Mapping[str, Endpoint]) -> Any:
    if isinstance(extra, str):
        return _rewrite_url(extra, endpoints)
    if isinstance(extra, dict):
        return {key: _rewrite_extra(value, endpoints) for key, value in extra.items()}
    if isinstance(extra, list):
        return [_rewrite_extra(value, endpoints) for value in extra]
    return extra


def point_at(settings: Settings, endpoints: Mapping[str, Endpoint]) -> Settings:
    """Rewrite the compose host names of ``settings`` to the ``endpoints`` given."""
    rewritten = []
    for conn in settings.connections:
        target = endpoints.get(conn.host or "")
        if conn.host and "://" in conn.host:
            conn = replace(conn, host=_rewrite_url(conn.host, endpoints))
        elif target is not None:
            conn = replace(
                conn,
                host=target.host,
                port=target.port,
                login=target.login if target.login is not None else conn.login,
                password=target.password if target.password is not None else conn.password,
            )
        if conn.extra:
            conn = replace(conn, extra=_go_json(_rewrite_extra(json.loads(conn.extra), endpoints)))
        rewritten.append(conn)
    return replace(settings, connections=tuple(rewritten))


def apply(settings: Settings) -> dict:
    """Write ``settings`` to the metadata database that Airflow's config names, atomically."""
    # The metadata database's own models (Airflow 3's task-facing Connection and Variable live
    # in airflow.sdk and write nothing).
    from airflow.models.connection import Connection
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        for spec in settings.connections:
            conn = session.query(Connection).filter(Connection.conn_id == spec.conn_id).one_or_none()
            if conn is None:
                session.add(Connection(conn_id=spec.conn_id, **spec.fields()))
            else:  # PATCH: the fields the entry sets, nothing else
                for name, value in spec.fields().items():
                    setattr(conn, name, value)
        for key, value in settings.variables:
            Variable.set(key, value, session=session)  # POST: a new value, no description
        for spec in settings.pools:
            pool = session.query(Pool).filter(Pool.pool == spec.name).one_or_none()
            if pool is None:
                session.add(
                    Pool(pool=spec.name, slots=spec.slots, description=spec.description, include_deferred=False)
                )
            else:
                pool.slots, pool.include_deferred = spec.slots, False
                if spec.name != Pool.DEFAULT_POOL_NAME:  # the CLI's update mask for default_pool
                    pool.description = spec.description
    return {
        "connections": len(settings.connections),
        "variables": len(settings.variables),
        "pools": len(settings.pools),
    }


def parse_endpoint(text: str) -> tuple[str, Endpoint]:
    """``name=[login[:password]@]host:port`` as given on the command line."""
    name, _, address = text.partition("=")
    try:
        parts = urlsplit(f"//{address}")
        port = parts.port
    except ValueError:
        port = None
    if not name or not parts.hostname or port is None:
        raise SettingsError(f"--endpoint must look like name=[login[:password]@]host:port, got {text!r}")
    return name, Endpoint(
        parts.hostname,
        port,
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["check", "apply"])
    parser.add_argument("file", type=Path, nargs="?", default=Path("airflow_settings.yaml"))
    parser.add_argument(
        "--endpoint", action="append", default=[], help="name=[login[:password]@]host:port (repeatable)"
    )
    args = parser.parse_args(argv)
    try:
        settings = load(args.file)
        settings = point_at(settings, dict(parse_endpoint(e) for e in args.endpoint))
        if args.action == "check":
            counts = {
                "connections": len(settings.connections),
                "variables": len(settings.variables),
                "pools": len(settings.pools),
            }
        else:
            counts = apply(settings)
    except LocalDevError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    verb = "checked" if args.action == "check" else "applied"
    totals = ", ".join(f"{count} {kind}" for kind, count in counts.items())
    print(f"{args.file}: {verb} {totals}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
