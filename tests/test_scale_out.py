"""Scale-out mode against real PostgreSQL and Redis servers and a worker process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from docwiz.app import create_app
from docwiz.appkeys import BROKER
from docwiz.cli import main
from docwiz.config import Settings
from docwiz.testing.servers import postgres_server, redis_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture
def scale_out_env(
    postgres_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    env = {
        "DOCWIZ_MODE": "scale-out",
        "DOCWIZ_DATABASE_URL": postgres_url,
        "DOCWIZ_REDIS_URL": redis_url,
        "DOCWIZ_JWT_SECRET": "j" * 48,
        "DOCWIZ_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


async def test_serve_refuses_an_unmigrated_database(
    scale_out_env: dict[str, str], aiohttp_client: Any, tmp_path: Path
) -> None:
    from docwiz.config import ConfigError

    settings = Settings(data_dir=tmp_path)
    with pytest.raises(ConfigError, match="run `docwiz migrate` first"):
        await aiohttp_client(create_app(settings))


async def test_migrate_then_serve_then_run_a_task_on_a_worker(
    scale_out_env: dict[str, str],
    aiohttp_client: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await asyncio.to_thread(main, ["migrate"]) == 0
    assert "revision" in capsys.readouterr().out

    client = await aiohttp_client(create_app(Settings(data_dir=tmp_path)))
    ready = await client.get("/api/ready")
    assert ready.status == 200, await ready.text()

    worker = subprocess.Popen(
        [sys.executable, "-m", "docwiz.cli", "worker"],
        env={**os.environ, **scale_out_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        broker = client.app[BROKER]
        task = broker.find_task("docwiz.ping")
        assert task is not None
        sent = await task.kiq()
        result = await sent.wait_result(timeout=30)
        assert not result.is_err
        assert result.return_value["pid"] == worker.pid
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(worker.communicate, timeout=30)
    assert worker.returncode == 0, output.decode()
    assert "worker stopped" in output.decode()
