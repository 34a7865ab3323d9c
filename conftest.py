"""Fixtures for every test folder (core, plugins, examples)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No DOCWIZ_* variable or docwiz.toml of the developer leaks into a test."""
    for name in list(os.environ):
        if name.startswith("DOCWIZ_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    """`docwiz` commands configure logging; give each test a clean root logger."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
