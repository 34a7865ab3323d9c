"""`docwiz serve` as a real process: start, admin bootstrap, clean SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from docwiz.testing.servers import free_port

pytestmark = pytest.mark.integration

ADMIN_PASSWORD = "Bootstrap-Admin-77"


async def wait_until_healthy(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert process.poll() is None, "docwiz serve exited early"
            try:
                async with session.get(f"{base}/api/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
    raise AssertionError("docwiz serve did not become healthy in 30 s")


async def test_serve_bootstraps_admin_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DOCWIZ_")},
        "DOCWIZ_DATA_DIR": str(tmp_path / "var"),
        "DOCWIZ_ADMIN_EMAIL": "root@example.com",
        "DOCWIZ_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "docwiz.cli", "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_until_healthy(base, process)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/api/ready") as response:
                assert response.status == 200
            async with session.get(f"{base}/api/nope?token=secret-value") as response:
                assert response.status == 404
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)

    assert process.returncode == 0, output.decode()
    log = output.decode()
    assert "GET /api/health 200" in log
    assert "secret-value" not in log
    assert ADMIN_PASSWORD not in log
    with sqlite3.connect(tmp_path / "var" / "docwiz.db") as db:
        assert db.execute(
            "SELECT is_admin FROM users WHERE email='root@example.com'"
        ).fetchone() == (1,)


def test_serve_refuses_an_unknown_provider_with_one_line(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DOCWIZ_")},
        "DOCWIZ_DATA_DIR": str(tmp_path / "var"),
        "DOCWIZ_STORAGE_BACKEND": "floppy",
    }
    result = subprocess.run(
        [sys.executable, "-m", "docwiz.cli", "serve", "--port", str(free_port())],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "no storage provider named 'floppy'" in result.stderr
    assert "Traceback" not in result.stderr
