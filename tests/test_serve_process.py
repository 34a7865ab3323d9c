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
from typing import Any

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


def start_serve(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`docwiz serve` on a free port with a bootstrap admin; output piped."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DOCWIZ_")},
        "DOCWIZ_DATA_DIR": str(folder / "var"),
        "DOCWIZ_ADMIN_EMAIL": "root@example.com",
        "DOCWIZ_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "docwiz.cli", "serve", "--port", str(port)],
        env=env,
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    return process, f"http://127.0.0.1:{port}"


async def test_serve_bootstraps_admin_and_stops_on_sigterm(tmp_path: Path) -> None:
    process, base = start_serve(tmp_path)
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


async def test_sigterm_lets_a_request_in_flight_finish(tmp_path: Path) -> None:
    process, base = start_serve(tmp_path)
    photo = (
        Path(__file__).parent / "fixtures" / "images" / "astronaut.jpg"
    ).read_bytes()
    halfway = asyncio.Event()
    resume = asyncio.Event()

    async def slow_body() -> Any:
        boundary = "docwizboundary"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="face.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
        ).encode()
        yield head + photo[:20_000]
        halfway.set()
        await resume.wait()
        yield photo[20_000:] + f"\r\n--{boundary}--\r\n".encode()

    try:
        await wait_until_healthy(base, process)
        async with aiohttp.ClientSession() as session:
            login = await session.post(
                f"{base}/api/auth/login",
                json={"email": "root@example.com", "password": ADMIN_PASSWORD},
            )
            token = (await login.json())["access_token"]
            upload = asyncio.create_task(
                session.post(
                    f"{base}/api/images/upload",
                    data=slow_body(),
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Content-Type": "multipart/form-data; boundary=docwizboundary",
                    },
                )
            )
            await asyncio.wait_for(halfway.wait(), 10)
            await asyncio.sleep(0.3)
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            resume.set()
            response = await asyncio.wait_for(upload, 30)
            assert response.status == 200, await response.text()
            assert (await response.json())["width"] == 512
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(process.communicate, timeout=30)

    assert process.returncode == 0, output.decode()
    assert "waiting up to 30 s for 1 requests" in output.decode()


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
