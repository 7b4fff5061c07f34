"""The local platform's REST API, called as its admin user (the call itself: localdev/profile.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from localdev.profile import Profile, call_api
from localdev.services import BackingServices


@dataclass
class Rest:
    """Calls to one platform's web process: its health, its DAGs and their import errors."""

    profile: Profile
    services: BackingServices  # where the web process listens

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.services.ports.webserver}"

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        """One call to the REST API (``/api/v1`` or ``/api/v2`` + ``path``) as the admin user."""
        return call_api(self.profile, self.base_url, method, path, body)

    def healthy(self) -> bool:
        """Whether the web process's health endpoint says every part of this profile is healthy."""
        health = self.api("GET", "/health")
        return all((health.get(part) or {}).get("status") == "healthy" for part in self.profile.healthy_parts)

    def listed_dag_ids(self) -> set[str]:
        """The DAG ids the REST API lists."""
        return {dag["dag_id"] for dag in self.api("GET", "/dags?limit=100")["dags"]}

    def import_errors(self) -> dict[str, str]:
        """DAG files that do not import, as the REST API lists them: file name -> the error's last line."""
        errors = {}
        for error in self.api("GET", "/importErrors?limit=100")["import_errors"]:
            lines = (error.get("stack_trace") or "").strip().splitlines()
            errors[Path(error["filename"]).name] = lines[-1] if lines else ""
        return errors
