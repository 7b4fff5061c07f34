"""The local stack's Fernet key and webserver secret (``secrets.json``) are never readable by others."""

from __future__ import annotations

import json
import os
import pathlib
import stat

import pytest

from localdev.stack import Stack


@pytest.fixture
def permissive_umask():
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_secrets_json_is_created_owner_only_and_never_widened(tmp_path, monkeypatch, permissive_umask):
    opened = []
    real_open = os.open

    def recording_open(path, flags, mode=0o777, *args, **kwargs):
        opened.append((pathlib.Path(path).name, mode))
        return real_open(path, flags, mode, *args, **kwargs)

    def no_chmod(*args, **kwargs):
        raise AssertionError("secrets.json existed with wider permissions until this chmod")

    monkeypatch.setattr(os, "open", recording_open)
    monkeypatch.setattr(os, "chmod", no_chmod)
    monkeypatch.setattr(pathlib.Path, "chmod", no_chmod)

    values = Stack(state_dir=tmp_path)._secrets()

    path = tmp_path / "secrets.json"
    assert ("secrets.json", 0o600) in opened, "created by os.open with mode 0o600"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == values
    assert Stack(state_dir=tmp_path)._secrets() == values, "made once per state folder"
