"""Fixtures for every test folder (core, plugins, examples)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No DOCWIZ_* variable or docwiz.toml of the developer leaks into a test."""
    for name in list(os.environ):
        if name.startswith("DOCWIZ_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
