"""The docwiz command: plugins, migrate, users create, worker refusals."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest

from docwiz.cli import main

INSTALLED_PLUGINS = {"gemini", "s3", "fairhealth", "cms1500"}


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def feed_stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def test_plugins_lists_the_four_plugins_and_the_builtins(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(["plugins", "--json"], capsys)

    assert code == 0
    listing = json.loads(out)
    names = {row["name"] for row in listing["plugins"]}
    assert names >= INSTALLED_PLUGINS, "install the plugins: see README"
    assert {
        "docwiz.builtin.local_storage",
        "docwiz.builtin.offline_generator",
        "docwiz.builtin.template_text",
    } <= names
    local = next(
        r for r in listing["plugins"] if r["name"] == "docwiz.builtin.local_storage"
    )
    assert local["hooks"] == ["docwiz_storage_backends"]
    assert local["providers"][0]["active"] is True
    assert listing["active"]["storage"] == "local"


def test_plugins_text_output_marks_active_providers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(["plugins"], capsys)

    assert code == 0
    assert "storage: local  [active]" in out
    assert "image_generator: offline  [active]" in out
    assert "pricing: (none configured)" in out


def test_migrate_creates_the_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["migrate"], capsys)

    assert code == 0
    assert "revision" in out
    with sqlite3.connect(tmp_path / "var" / "docwiz.db") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert {"users", "alembic_version"} <= tables


def test_users_create_reads_the_password_from_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_stdin(monkeypatch, "Sturdy-Password-9\n")

    code, out, err = run(["users", "create", "Dr.Who@Example.COM", "--admin"], capsys)

    assert code == 0, err
    assert "dr.who@example.com (admin)" in out
    assert "Sturdy-Password-9" not in out + err
    with sqlite3.connect(tmp_path / "var" / "docwiz.db") as db:
        row = db.execute("SELECT email, is_admin, password_hash FROM users").fetchone()
    assert row[0] == "dr.who@example.com"
    assert row[1] == 1
    assert row[2].startswith("$argon2id$")


def test_users_create_refuses_duplicates_and_weak_passwords(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_stdin(monkeypatch, "Sturdy-Password-9\n")
    assert run(["users", "create", "a@example.com"], capsys)[0] == 0

    feed_stdin(monkeypatch, "Sturdy-Password-9\n")
    code, _, err = run(["users", "create", "A@example.com"], capsys)
    assert code == 2
    assert "already registered" in err

    feed_stdin(monkeypatch, "short\n")
    code, _, err = run(["users", "create", "b@example.com"], capsys)
    assert code == 2
    assert "at least 10 characters" in err
    assert "short" not in err.replace("short\n", "")


def test_users_create_refuses_a_bad_email(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_stdin(monkeypatch, "Sturdy-Password-9\n")

    code, _, err = run(["users", "create", "not-an-email"], capsys)

    assert code == 2
    assert "invalid email address" in err


def test_worker_needs_scale_out(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["worker"], capsys)

    assert code == 2
    assert "DOCWIZ_MODE=scale-out" in err


def test_config_errors_are_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCWIZ_MODE", "scale-out")

    code, _, err = run(["migrate"], capsys)

    assert code == 2
    assert err.startswith("docwiz: error: invalid settings")
    assert "Traceback" not in err
    assert err.count("\n") == 1
